r"""Synthetic cluster-randomised trials with realistic structure.

A trial is generated from a spec (see ``config/synthetic.yaml`` and
``schemas/synthetic.schema.yaml``) and one integer seed, in five steps.

1. **Practices** :math:`j = 1..J` get a list size and an IMD score, each drawn from a
   lognormal distribution truncated to :math:`[\min, \max]`.
2. **Allocation** by Pocock-Simon minimisation: practices arrive in random order; for
   each arm :math:`a` the imbalance :math:`D_a = \sum_f \operatorname{range}_b n_{f,\ell_j,b}`
   (counts at the practice's level :math:`\ell_j` of factor :math:`f`, after a notional
   allocation to :math:`a`) is computed, and the minimising arm is taken with
   probability :math:`p` (ties at random). ``n_withdrawn`` practices then withdraw.
3. **Patients** per contributing practice: :math:`m_j = m_{\min} + \operatorname{LR}
   \bigl((N - J' m_{\min})\, w_j^a / \sum_k w_k^a\bigr)` with LR the largest-remainder
   rounding, :math:`w_j = \text{list size}_j \cdot g_j`, :math:`g_j \sim \Gamma` with mean 1,
   and :math:`a` solved so that :math:`\operatorname{CV}(m) = ` ``cv``. Conditions (exact
   totals) are dealt by a random permutation; age is a truncated normal and sex a
   Bernoulli draw, both by condition.
4. **Outcomes** :math:`k` at months :math:`t` (baseline :math:`t_0`) from a latent
   random-intercept model

   .. math::

      Y^*_{ijtk} = \mu_k + \sigma_k\bigl(x_i'\beta_k - \overline{x'\beta_k}
      + \delta_k (t - t_0)/12 + \theta_k T_j [t > t_0]
      + \sqrt{\rho_k}\, u_{jk} + \sqrt{1 - \rho_k}\, e_{itk}\bigr),

   .. math::

      e_{itk} = \sqrt{\lambda_k}\bigl(\sqrt{r_k} f_i + \sqrt{1 - r_k} g_{it}\bigr)
      + \sqrt{1 - \lambda_k}\bigl(\sqrt{r_k} a_{ik} + \sqrt{1 - r_k} \eta_{itk}\bigr),

   with :math:`u, f, g, a, \eta` independent standard normals, so :math:`\rho_k` is the
   latent ICC, :math:`r_k` the within-patient correlation across months and
   :math:`\lambda_k` the loading on the patient factor shared by all outcomes;
   :math:`x_i` holds age/10, female, condition and practice IMD/10, and :math:`\theta_k`
   is the intervention effect in latent SD units. The observed score is :math:`Y^*`
   clipped to the instrument's range and rounded to its step.
5. **Missing data**: at follow-up :math:`t` exactly :math:`\operatorname{round}(\pi_t N)`
   questionnaires are returned, chosen by Gumbel top-:math:`k` sampling without
   replacement with log-weights :math:`z_i'\alpha + \alpha_b b_i + \alpha_p R_{i,t-1} + v_j`
   (covariates, the observed baseline composite :math:`b_i`, return of the previous
   follow-up, a practice effect :math:`v_j`): missing at random. A returned questionnaire
   loses each item independently with probability ``item_missing``.

Every random draw comes from children of ``numpy.random.SeedSequence(seed)``, one per
step, so a seed always gives the same tables and changing one step's settings leaves the
draws of the other steps as they were.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from scipy import special

from trialstats.atomic import write_atomically
from trialstats.errors import TrialstatsError

__all__ = ["generate_trial", "load_synthetic_spec", "validate_synthetic_spec", "write_trial_csv"]

_SCHEMA_FILE = "synthetic.schema.yaml"


def _schema() -> dict[str, Any]:
    text = resources.files("trialstats").joinpath("schemas", _SCHEMA_FILE).read_text("utf-8")
    return yaml.safe_load(text)


def _key_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _fill_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """Return ``value`` with every missing property set to its schema default, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for key, sub in schema["properties"].items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = _fill_defaults(out[key], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [_fill_defaults(item, schema["items"]) for item in value]
    return value


def _check_consistency(spec: Mapping[str, Any]) -> None:
    """Raise TrialstatsError for constraints a JSON Schema cannot express."""
    prac, alloc, pats, fu = (
        spec["practices"],
        spec["allocation"],
        spec["patients"],
        spec["followup"],
    )
    for key in ("list_size", "imd_score"):
        if prac[key]["min"] >= prac[key]["max"]:
            raise TrialstatsError(f"practices.{key}: min must be below max")
    if prac["n_withdrawn"] >= prac["n"]:
        raise TrialstatsError("practices.n_withdrawn: at least one practice must contribute")
    if alloc["intervention"] == alloc["control"]:
        raise TrialstatsError("allocation.control: must differ from allocation.intervention")
    names = [c["name"] for c in pats["conditions"]]
    if len(set(names)) != len(names):
        raise TrialstatsError("patients.conditions: condition names must be unique")
    for i, cond in enumerate(pats["conditions"]):
        if cond["age"]["min"] >= cond["age"]["max"]:
            raise TrialstatsError(f"patients.conditions[{i}].age: min must be below max")
    n_total = sum(c["n"] for c in pats["conditions"])
    n_contrib = prac["n"] - prac["n_withdrawn"]
    if pats["cluster_size"]["min"] * n_contrib > n_total:
        raise TrialstatsError(
            f"patients.cluster_size.min: {n_contrib} practices of at least "
            f"{pats['cluster_size']['min']} exceed the {n_total} patients"
        )
    previous = fu["baseline_month"]
    for i, visit in enumerate(fu["months"]):
        if visit["month"] <= previous:
            raise TrialstatsError(
                f"followup.months[{i}].month: months must increase and follow baseline_month"
            )
        previous = visit["month"]
    for key in fu["predictors"]["condition"]:
        if key not in names:
            raise TrialstatsError(f"followup.predictors.condition.{key}: unknown condition")
    outcome_names = [o["name"] for o in spec["outcomes"]]
    if len(set(outcome_names)) != len(outcome_names):
        raise TrialstatsError("outcomes: outcome names must be unique")
    for i, out in enumerate(spec["outcomes"]):
        low, high = out["range"]
        if low >= high:
            raise TrialstatsError(f"outcomes[{i}].range: lower limit must be below upper limit")
        if out["step"] > high - low:
            raise TrialstatsError(f"outcomes[{i}].step: larger than the range")
        for key in out["condition"]:
            if key not in names:
                raise TrialstatsError(f"outcomes[{i}].condition.{key}: unknown condition")


def validate_synthetic_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a synthetic-trial spec and fill in its defaults.

    Parameters
    ----------
    spec : mapping
        The spec as read from YAML (see ``schemas/synthetic.schema.yaml``).

    Returns
    -------
    dict
        A new spec with every default filled in; ``spec`` is not modified.

    Raises
    ------
    TrialstatsError
        If a key is unknown, a value has the wrong type or range, or the parts of the spec
        contradict each other; the message names the offending key.
    """
    schema = _schema()
    if not isinstance(spec, Mapping):
        raise TrialstatsError("synthetic spec: must be a mapping of keys to values")
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(spec)))
    if error is not None:
        raise TrialstatsError(f"{_key_path(error.absolute_path)}: {error.message}")
    filled = _fill_defaults(copy.deepcopy(dict(spec)), schema)
    _check_consistency(filled)
    return filled


def load_synthetic_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a synthetic-trial spec from YAML, validate it and fill its defaults.

    Parameters
    ----------
    path : str or path-like
        YAML file, e.g. ``config/synthetic.yaml``; an empty file gives the defaults.

    Returns
    -------
    dict
        The validated spec with defaults filled in.

    Raises
    ------
    TrialstatsError
        If the file cannot be read or parsed, or the spec is invalid (the message names
        the file and the offending key).
    """
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrialstatsError(f"{path}: cannot read the synthetic spec ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise TrialstatsError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return validate_synthetic_spec({} if spec is None else spec)
    except TrialstatsError as exc:
        raise TrialstatsError(f"{path}: {exc}") from exc


def _truncated_normal(
    rng: np.random.Generator, mean: Any, sd: Any, low: float, high: float, size: int
) -> np.ndarray:
    """Draw N(mean, sd^2) truncated to [low, high] by inversion of the CDF."""
    p_low = special.ndtr((low - mean) / sd)
    p_high = special.ndtr((high - mean) / sd)
    u = rng.uniform(p_low, p_high, size)
    return np.clip(mean + sd * special.ndtri(u), low, high)


def _truncated_lognormal(
    rng: np.random.Generator, par: Mapping[str, float], size: int
) -> np.ndarray:
    log_x = _truncated_normal(
        rng, math.log(par["median"]), par["sdlog"], math.log(par["min"]), math.log(par["max"]), size
    )
    return np.exp(log_x)


def _minimise(
    rng: np.random.Generator, levels: np.ndarray, n_arms: int, p_min: float, cap: bool
) -> np.ndarray:
    """Allocate units to arms by Pocock-Simon minimisation (range method).

    Parameters
    ----------
    rng : numpy.random.Generator
    levels : ndarray of int, shape (n_units, n_factors)
        Category of each unit on each factor.
    n_arms : int
    p_min : float
        Probability of choosing the arm of least imbalance.
    cap : bool
        Exclude arms already holding ``ceil(n_units / n_arms)`` units.

    Returns
    -------
    ndarray of int
        Arm index per unit.
    """
    n_units, n_factors = levels.shape
    n_levels = int(levels.max()) + 1 if levels.size else 1
    counts = np.zeros((n_factors, n_levels, n_arms), dtype=int)
    totals = np.zeros(n_arms, dtype=int)
    arm = np.empty(n_units, dtype=int)
    cap_size = -(-n_units // n_arms)
    for unit in rng.permutation(n_units):
        open_arms = np.flatnonzero(totals < cap_size) if cap else np.arange(n_arms)
        current = counts[np.arange(n_factors), levels[unit]]  # (n_factors, n_arms)
        imbalance = np.empty(open_arms.size)
        for idx, a in enumerate(open_arms):
            trial = current.copy()
            trial[:, a] += 1
            imbalance[idx] = (trial.max(axis=1) - trial.min(axis=1)).sum()
        best = open_arms[imbalance == imbalance.min()]
        others = np.setdiff1d(open_arms, best)
        if others.size == 0 or rng.uniform() < p_min:
            chosen = rng.choice(best)
        else:
            chosen = rng.choice(others)
        arm[unit] = chosen
        counts[np.arange(n_factors), levels[unit], chosen] += 1
        totals[chosen] += 1
    return arm


def _quantile_groups(x: np.ndarray, n_groups: int) -> np.ndarray:
    """Category 0..n_groups-1 of each value by sample quantiles (ties to the lower group)."""
    ranks = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    return ranks * n_groups // x.size


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total`` proportional to ``shares`` (Hamilton's method)."""
    exact = total * shares / shares.sum()
    base = np.floor(exact).astype(int)
    order = np.argsort(-(exact - base), kind="stable")
    base[order[: total - base.sum()]] += 1
    return base


def _cluster_sizes(weights: np.ndarray, total: int, minimum: int, cv: float) -> np.ndarray:
    """Integer sizes >= ``minimum`` summing to ``total``, monotone in ``weights``, with CV ``cv``.

    Sizes are ``minimum + LR((total - J minimum) w^a / sum w^a)``; the exponent ``a`` is
    found by bisection on the coefficient of variation (SD with ddof 1 over mean).
    """
    spare = total - minimum * weights.size
    log_w = np.log(weights) - np.log(weights).max()

    def sizes(a: float) -> np.ndarray:
        return minimum + _largest_remainder(np.exp(a * log_w), spare)

    def cv_of(a: float) -> float:
        m = sizes(a)
        return float(m.std(ddof=1) / m.mean()) if m.size > 1 else 0.0

    low, high = 0.0, 1.0
    while cv_of(high) < cv:
        if high > 256:
            raise TrialstatsError(
                f"patients.cluster_size.cv: {cv} cannot be reached with {weights.size} "
                f"practices of at least {minimum} patients"
            )
        low, high = high, 2 * high
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cv_of(mid) < cv else (low, mid)
    return sizes(high)


def _decimals(*values: float) -> int:
    """Fewest decimals (at most 6) that represent every value exactly."""
    for d in range(7):
        if all(abs(round(v, d) - v) < 1e-9 for v in values):
            return d
    return 6


def _to_scale(latent: np.ndarray, low: float, high: float, step: float) -> np.ndarray:
    """Clip to [low, high] and round to the grid low + k * step."""
    k = np.round((np.clip(latent, low, high) - low) / step)
    k = np.minimum(k, np.floor((high - low) / step + 1e-9))
    return np.round(low + k * step, _decimals(low, step)) + 0.0


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


def _covariate_index(
    coefs: Mapping[str, Any],
    age: np.ndarray,
    female: np.ndarray,
    cond: np.ndarray,
    cond_names: list[str],
    imd: np.ndarray,
) -> np.ndarray:
    """Centred linear predictor ``x_i'beta - mean(x'beta)`` from per-covariate coefficients."""
    cond_effect = np.array([coefs["condition"].get(name, 0.0) for name in cond_names])
    index = (
        coefs["age_per_10y"] * age / 10
        + coefs["female"] * female
        + cond_effect[cond]
        + coefs["imd_per_10"] * imd / 10
    )
    return _centred(index)


def generate_trial(spec: Mapping[str, Any], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate one synthetic cluster-randomised trial.

    The generating model is stated in the module docstring; all numbers come from ``spec``.

    Parameters
    ----------
    spec : mapping
        Synthetic-trial spec (validated and completed with defaults here, so the output of
        :func:`load_synthetic_spec` and a hand-written partial dict both work).
    seed : int
        Non-negative seed of the ``numpy.random.SeedSequence`` behind every draw.

    Returns
    -------
    practices : pandas.DataFrame
        One row per randomised practice: ``practice_id``, ``arm``, ``list_size`` (int),
        ``imd_score`` (2 decimals), ``withdrawn`` (bool).
    patients : pandas.DataFrame
        One row per patient, sorted by practice: ``patient_id``, ``practice_id``, ``age``
        (int), ``sex`` (``female``/``male``), ``condition``, then ``<outcome>_m<month>`` for
        each outcome and month (baseline first), rounded to the outcome's step; integer
        scales are nullable ``Int64``, others ``float64``; missing is ``NA``/``NaN``.

    Raises
    ------
    TrialstatsError
        If the spec is invalid or the seed is negative.
    """
    spec = validate_synthetic_spec(spec)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise TrialstatsError(f"seed: must be a non-negative integer, got {seed!r}")
    rng_prac, rng_alloc, rng_size, rng_pat, rng_out, rng_resp = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(6)
    )
    practices = _make_practices(spec, rng_prac, rng_alloc)
    patients = _make_patients(spec, practices, rng_size, rng_pat)
    latent_frame = _add_outcomes(spec, practices, patients, rng_out)
    patients = _apply_missingness(spec, practices, latent_frame, rng_resp)
    return practices, patients


def _make_practices(
    spec: Mapping[str, Any], rng: np.random.Generator, rng_alloc: np.random.Generator
) -> pd.DataFrame:
    prac, alloc = spec["practices"], spec["allocation"]
    n = prac["n"]
    list_size = np.round(_truncated_lognormal(rng, prac["list_size"], n)).astype(np.int64)
    imd = np.round(_truncated_lognormal(rng, prac["imd_score"], n), 2)
    covariates = {"list_size": list_size, "imd_score": imd}
    if alloc["factors"]:
        levels = np.column_stack(
            [_quantile_groups(covariates[f], alloc["n_categories"]) for f in alloc["factors"]]
        )
    else:
        levels = np.zeros((n, 0), dtype=int)
    arm_index = _minimise(rng_alloc, levels, 2, alloc["p_minimising"], alloc["cap_arm_size"])
    labels = np.array([alloc["intervention"], alloc["control"]], dtype=object)
    withdrawn = np.zeros(n, dtype=bool)
    withdrawn[rng_alloc.choice(n, prac["n_withdrawn"], replace=False)] = True
    width = max(2, len(str(n)))
    return pd.DataFrame(
        {
            "practice_id": [f"{prac['id_prefix']}{i:0{width}d}" for i in range(1, n + 1)],
            "arm": labels[arm_index],
            "list_size": list_size,
            "imd_score": imd,
            "withdrawn": withdrawn,
        }
    )


def _make_patients(
    spec: Mapping[str, Any],
    practices: pd.DataFrame,
    rng_size: np.random.Generator,
    rng: np.random.Generator,
) -> pd.DataFrame:
    pats = spec["patients"]
    conditions = pats["conditions"]
    n_total = sum(c["n"] for c in conditions)
    contributing = practices.loc[~practices["withdrawn"]]
    size_spec = pats["cluster_size"]
    noise_shape = 1 / size_spec["noise_cv"] ** 2
    gamma = rng_size.gamma(noise_shape, 1 / noise_shape, len(contributing))
    weights = contributing["list_size"].to_numpy(dtype=float) * gamma
    sizes = _cluster_sizes(weights, n_total, size_spec["min"], size_spec["cv"])

    cond = rng.permutation(np.repeat(np.arange(len(conditions)), [c["n"] for c in conditions]))
    age = np.empty(n_total)
    female = np.empty(n_total, dtype=bool)
    for k, c in enumerate(conditions):
        sel = np.flatnonzero(cond == k)
        a = c["age"]
        age[sel] = _truncated_normal(rng, a["mean"], a["sd"], a["min"], a["max"], sel.size)
        female[sel] = rng.uniform(size=sel.size) < c["p_female"]
    age = np.floor(age).astype(np.int64)
    width = len(str(n_total))
    names = np.array([c["name"] for c in conditions], dtype=object)
    return pd.DataFrame(
        {
            "patient_id": [f"{pats['id_prefix']}{i:0{width}d}" for i in range(1, n_total + 1)],
            "practice_id": np.repeat(contributing["practice_id"].to_numpy(dtype=object), sizes),
            "age": age,
            "sex": np.where(female, "female", "male").astype(object),
            "condition": names[cond],
        }
    )


def _months(spec: Mapping[str, Any]) -> list[int]:
    fu = spec["followup"]
    return [fu["baseline_month"], *(v["month"] for v in fu["months"])]


def _design_arrays(
    spec: Mapping[str, Any], practices: pd.DataFrame, patients: pd.DataFrame
) -> dict[str, Any]:
    """Patient-level numeric covariates and the practice index of each patient."""
    cond_names = [c["name"] for c in spec["patients"]["conditions"]]
    practice_pos = pd.Index(practices["practice_id"]).get_indexer(patients["practice_id"])
    return {
        "practice": practice_pos,
        "age": _centred(patients["age"].to_numpy(dtype=float)),
        "female": _centred((patients["sex"] == "female").to_numpy(dtype=float)),
        "cond": pd.Index(cond_names).get_indexer(patients["condition"]),
        "cond_names": cond_names,
        "imd": _centred(practices["imd_score"].to_numpy(dtype=float)[practice_pos]),
        "treated": (practices["arm"] == spec["allocation"]["intervention"]).to_numpy()[
            practice_pos
        ],
    }


def _add_outcomes(
    spec: Mapping[str, Any],
    practices: pd.DataFrame,
    patients: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Complete (no missing) observed outcomes for every patient, month and outcome."""
    months = _months(spec)
    outcomes = spec["outcomes"]
    d = _design_arrays(spec, practices, patients)
    n, n_t, n_k = len(patients), len(months), len(outcomes)
    u = rng.standard_normal((len(practices), n_k))
    f = rng.standard_normal((n, 1))
    g = rng.standard_normal((n, n_t))
    a = rng.standard_normal((n, n_k))
    eta = rng.standard_normal((n, n_t, n_k))
    since = (np.array(months, dtype=float) - months[0]) / 12
    followup = np.array([t > months[0] for t in months])
    columns: dict[str, Any] = {}
    for k, out in enumerate(outcomes):
        lam, r, icc = out["shared_factor_loading"], out["within_patient_correlation"], out["icc"]
        shared = math.sqrt(r) * f + math.sqrt(1 - r) * g
        own = math.sqrt(r) * a[:, [k]] + math.sqrt(1 - r) * eta[:, :, k]
        resid = math.sqrt(lam) * shared + math.sqrt(1 - lam) * own
        x_beta = _covariate_index(out, d["age"], d["female"], d["cond"], d["cond_names"], d["imd"])
        z = (
            x_beta[:, None]
            + out["drift"] * since[None, :]
            + out["effect"] * (d["treated"][:, None] & followup[None, :])
            + math.sqrt(icc) * u[d["practice"], k][:, None]
            + math.sqrt(1 - icc) * resid
        )
        low, high = out["range"]
        scores = _to_scale(out["mean"] + out["sd"] * z, low, high, out["step"])
        for t, month in enumerate(months):
            columns[f"{out['name']}_m{month}"] = scores[:, t]
    return pd.concat([patients, pd.DataFrame(columns, index=patients.index)], axis=1)


def _gumbel_top_k(rng: np.random.Generator, log_weight: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of ``k`` units sampled without replacement with P proportional to weight."""
    keys = log_weight + rng.gumbel(size=log_weight.size)
    chosen = np.zeros(log_weight.size, dtype=bool)
    chosen[np.argsort(-keys, kind="stable")[:k]] = True
    return chosen


def _apply_missingness(
    spec: Mapping[str, Any],
    practices: pd.DataFrame,
    frame: pd.DataFrame,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Blank unreturned questionnaires and missing items; cast integer scales to Int64."""
    fu = spec["followup"]
    months = _months(spec)
    pred = fu["predictors"]
    d = _design_arrays(spec, practices, frame)
    n = len(frame)
    frame = frame.copy()
    observed = {}
    for out in spec["outcomes"]:
        for month in months:
            col = f"{out['name']}_m{month}"
            keep = rng.uniform(size=n) >= fu["item_missing"]
            observed[col] = np.where(keep, frame[col].to_numpy(dtype=float), np.nan)

    base = np.column_stack([observed[f"{o['name']}_m{months[0]}"] for o in spec["outcomes"]])
    with np.errstate(invalid="ignore", divide="ignore"):
        zscores = (base - np.nanmean(base, axis=0)) / np.nanstd(base, axis=0)
    n_obs = np.sum(~np.isnan(zscores), axis=1)
    composite = np.where(n_obs > 0, np.nansum(zscores, axis=1) / np.maximum(n_obs, 1), 0.0)
    composite = composite / composite.std() if composite.std() > 0 else composite

    v = pred["practice_sd"] * rng.standard_normal(len(practices))
    fixed = (
        _covariate_index(pred, d["age"], d["female"], d["cond"], d["cond_names"], d["imd"])
        + pred["baseline_score"] * composite
        + v[d["practice"]]
    )
    previous = np.ones(n, dtype=bool)
    for visit in fu["months"]:
        returned = _gumbel_top_k(
            rng,
            fixed + pred["previous_response"] * previous,
            round(visit["response_rate"] * n),
        )
        for out in spec["outcomes"]:
            col = f"{out['name']}_m{visit['month']}"
            observed[col] = np.where(returned, observed[col], np.nan)
        previous = returned

    for out in spec["outcomes"]:
        low = out["range"][0]
        integer = _decimals(low, out["step"]) == 0
        for month in months:
            col = f"{out['name']}_m{month}"
            frame[col] = pd.array(observed[col], dtype="Int64") if integer else observed[col]
    return frame


def _format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Booleans as lowercase ``true``/``false``; everything else as pandas writes it."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col]):
            out[col] = np.where(out[col].to_numpy(dtype=bool), "true", "false")
    return out


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda tmp: _format_frame(frame).to_csv(
        tmp, index=False, lineterminator="\n", na_rep="", encoding="utf-8"))


def write_trial_csv(
    practices: pd.DataFrame, patients: pd.DataFrame, out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``practices.csv`` and ``patients.csv`` into ``out_dir``, byte-reproducibly.

    Each file is written to a temporary file in ``out_dir`` and moved into place with
    :func:`os.replace`, so a reader never sees a half-written table. Formatting is fixed:
    UTF-8, comma-separated, ``\\n`` line ends, no index, missing as an empty field,
    booleans as ``true``/``false``, floats in their shortest round-trip form.

    Parameters
    ----------
    practices, patients : pandas.DataFrame
        The tables returned by :func:`generate_trial`.
    out_dir : str or path-like
        Output directory, created if absent.

    Returns
    -------
    tuple of pathlib.Path
        Paths of the practices and patients files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "practices.csv", out / "patients.csv")
    for frame, path in zip((practices, patients), paths, strict=True):
        _write_atomic(frame, path)
    return paths
