r"""The primary analysis of binary and count outcomes: random-intercept GLMM rows.

Model (maximum likelihood, adaptive Gauss-Hermite quadrature with ``analysis.quadrature_points``
nodes; :mod:`trialstats.analysis.glmm`), for patient *i* in practice *j*:

.. math::

    g\{E(y_{ij} \mid b_j)\} = \beta_0 + \beta_1 T_j + \beta_2 y^{(0)}_{ij} + x_{ij}'\gamma
        + o_{ij} + b_j, \qquad b_j \sim N(0, \sigma_b^2),

with the baseline value :math:`y^{(0)}_{ij}` on its own scale (0/1, or the baseline count) and
the configured covariates as in the continuous model, analysed in the same population
(:func:`~trialstats.analysis.rows.primary_population`).

* **binary**: logit link, Bernoulli :math:`y`. Rows: the odds ratio :math:`e^{\beta_1}`, and
  the marginal risk difference and risk ratio standardised from the same fit
  (:mod:`trialstats.analysis.marginal`). ``var_cluster`` is :math:`\sigma_b^2` on the logit
  scale, ``var_residual`` :math:`\pi^2/3` (the standard logistic), ``icc`` the latent-scale
  :math:`\sigma_b^2/(\sigma_b^2 + \pi^2/3)` with the interval mapped from the profile
  interval of :math:`\sigma_b`.
* **count**: log link with offset :math:`o_{ij} = \log(\text{exposure})` (0 without an
  exposure column); Poisson, or negative binomial (NB2, :math:`\operatorname{Var} = \mu +
  \mu^2/\vartheta`) when over-dispersed. The rule: both are fitted and the negative binomial is
  used when its fit converged and the likelihood-ratio test of :math:`1/\vartheta = 0`, whose
  null distribution at the boundary is :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1` (Self &
  Liang 1987), has :math:`p < 0.05`; ``notes`` names the family, :math:`\hat\vartheta` and the
  p-value. Row: the rate ratio :math:`e^{\beta_1}`; ``var_cluster`` :math:`\sigma_b^2` on the
  log scale; no residual variance or ICC (not defined on one scale for counts).

Inference on :math:`\hat\beta_1` uses the joint observed information (as glmer's ``vcov``) and,
by ``analysis.glmm_df_method``: ``between-within`` (default), a *t* on :math:`J - p_b` df,
:math:`p_b` the cluster-level columns of the design (intercept included) — Li & Redden (2015,
BMC Med Res Methodol 15:38) found it kept the nominal size of GLMM tests in CRTs with 10 to 30
clusters where Wald *z* was liberal; ``z``, Wald normal; ``residual``, *t* on :math:`N - p`. For
ratio measures ``estimate``/``ci_*`` are ratios and ``se`` is that of the log ratio.

An MCID gives a verdict on the row of its own measure only: a risk difference on the risk
difference row, a ratio :math:`r` (the band :math:`1/r` to :math:`r`) on the row of that ratio,
compared on the log scale. ``sd_baseline`` and the standardised effect are empty (not defined
for binary or count outcomes).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.analysis.design import ModelData
from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.glmm import (
    DEFAULT_N_AGQ,
    GlmmFit,
    fit_glmm,
    latent_icc,
    sigma_profile_interval,
)
from trialstats.analysis.glmm_likelihood import glmm_data
from trialstats.analysis.inference import between_within_df
from trialstats.analysis.marginal import marginal_effects
from trialstats.analysis.rows import join_notes, primary_population
from trialstats.contract import ODDS_RATIO, RATE_RATIO, RISK_DIFFERENCE, RISK_RATIO
from trialstats.data.validate import TREATED
from trialstats.errors import TrialstatsError

__all__ = [
    "GLMM_OUTCOME_TYPES", "OVERDISPERSION_ALPHA", "contrast_row", "glmm_outcome_rows",
    "interval_row", "measure_row", "measures_of", "overdispersion_p_value",
]

#: Outcome types analysed by a GLMM.
GLMM_OUTCOME_TYPES = ("binary", "count")
#: Level of the boundary likelihood-ratio test that switches a count outcome to the negative
#: binomial.
OVERDISPERSION_ALPHA = 0.05
#: MCID scale -> the effect measure it is judged on.
_MCID_MEASURE = {"risk-difference": RISK_DIFFERENCE, "risk-ratio": RISK_RATIO,
                 "odds-ratio": ODDS_RATIO, "rate-ratio": RATE_RATIO}
_NO_EFFECT_SIZE = "no standardised effect size for a {} outcome"


def measures_of(outcome: dict[str, Any]) -> tuple[str, ...]:
    """The ``effect_measure`` of each row an outcome's GLMM analysis gives, in row order."""
    if outcome.get("type") == "binary":
        return (ODDS_RATIO, RISK_DIFFERENCE, RISK_RATIO)
    return (RATE_RATIO,)


def glmm_df(method: str, y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray,
            contrast: np.ndarray) -> float:
    """Reference df of a GLMM Wald test of ``contrast`` (a row of coefficients, or rows whose
    smallest df is taken) for ``analysis.glmm_df_method``: ``z`` inf, ``residual``
    :math:`N - p`, ``between-within`` Li & Redden's (2015) between-within df
    (:func:`~trialstats.analysis.inference.between_within_df`) of the design ``X`` with
    clusters ``cluster_codes``."""
    if method == "z":
        return np.inf
    if method == "residual":
        return float(len(y) - X.shape[1])
    data = SimpleNamespace(y=y, X=X, cluster_codes=cluster_codes)
    return float(min(between_within_df(data, row) for row in np.atleast_2d(contrast)))


def _mcid(outcome: dict[str, Any], measure: str) -> tuple[float, float]:
    """(``mcid`` column, the MCID on the scale the verdict compares) for a row of ``measure``:
    the value and the value for a risk difference, the ratio >= 1 and its log for ratios;
    NaN for a row of another measure."""
    mcid = outcome.get("mcid")
    if mcid is None or _MCID_MEASURE.get(mcid["scale"]) != measure:
        return np.nan, np.nan
    if measure == RISK_DIFFERENCE:
        return float(mcid["value"]), float(mcid["value"])
    log_mcid = abs(np.log(float(mcid["value"])))
    return float(np.exp(log_mcid)), log_mcid


def interval_row(base, outcome, measure, *, estimate, low, high) -> dict[str, Any]:
    """``base`` completed with ``effect_measure``, the estimate and interval (given as a
    difference, or a log ratio for ratio measures) on the measure's own scale, and the MCID and
    its verdict on the MCID's own scale (see the module notes)."""
    mcid, mcid_scale = _mcid(outcome, measure)
    back = float if measure == RISK_DIFFERENCE else np.exp
    with np.errstate(over="ignore"):  # a separated fit's limit may be an infinite ratio
        estimate_back, low_back, high_back = (float(back(v)) for v in (estimate, low, high))
    return {
        **base, "effect_measure": measure, "estimate": estimate_back, "ci_low": low_back,
        "ci_high": high_back, "mcid": mcid,
        "mcid_verdict": mcid_verdict(low, high, mcid_scale, outcome["higher_is_better"]),
    }


def measure_row(base, outcome, measure, *, estimate, se, df, alpha) -> dict[str, Any]:
    """:func:`interval_row` with the *t* test (``df`` inf: z) of ``estimate`` (a difference,
    or a log ratio for ratio measures)."""
    quantile = stats.t.ppf(1 - alpha / 2, df)
    low, high = estimate - quantile * se, estimate + quantile * se
    return {
        **interval_row(base, outcome, measure, estimate=estimate, low=low, high=high),
        "se": float(se), "df": df if np.isfinite(df) else np.nan,
        "p_value": float(2 * stats.t.sf(abs(estimate / se), df)),
    }


def contrast_row(base, outcome, measure, fit: GlmmFit, contrast: np.ndarray, *, method: str,
                 y: np.ndarray, X: np.ndarray, cluster_codes: np.ndarray,
                 alpha: float) -> dict[str, Any]:
    """:func:`measure_row` of the linear combination :math:`c^\\top\\beta` of a GLMM fit:
    its SE from the fixed-effects block of ``fit.cov`` (``X`` has the fit's fixed-effect
    columns) and its df by ``method`` (:func:`glmm_df`)."""
    p = X.shape[1]
    return measure_row(base, outcome, measure, estimate=float(contrast @ fit.beta),
                       se=float(np.sqrt(contrast @ fit.cov[:p, :p] @ contrast)),
                       df=glmm_df(method, y, X, cluster_codes, contrast), alpha=alpha)


def overdispersion_p_value(loglik_negbin: Any, loglik_poisson: Any) -> np.ndarray:
    """p-value of the likelihood-ratio test of :math:`1/\\vartheta = 0` (Poisson within the
    negative binomial), whose null distribution at the boundary is :math:`\\tfrac12\\chi^2_0 +
    \\tfrac12\\chi^2_1` (Self & Liang 1987): 1 when the statistic is 0. Both log-likelihoods
    must be of the same patient-level data (with every constant)."""
    statistic = np.maximum(2.0 * (np.asarray(loglik_negbin) - np.asarray(loglik_poisson)), 0.0)
    return np.where(statistic > 0, 0.5 * stats.chi2.sf(statistic, 1), 1.0)


def _count_fit(data: ModelData, n_agq: int) -> tuple[GlmmFit, str]:
    """The Poisson or negative binomial fit (the module's rule) and the note naming it."""
    def fit(family: str) -> GlmmFit:
        return fit_glmm(glmm_data(data.y, data.X, data.cluster_codes, family,
                                  offset=data.offset), n_agq)

    poisson = fit("poisson")
    try:
        negbin = fit("negative-binomial")
    except TrialstatsError:
        negbin = None
    if negbin is None or not bool(negbin.converged):
        return poisson, ("family: Poisson (the negative binomial fit did not converge, "
                         "no evidence of over-dispersion)")
    p_value = float(overdispersion_p_value(negbin.loglik, poisson.loglik))
    test = f"likelihood-ratio test of over-dispersion p = {p_value:.3g}"
    if p_value < OVERDISPERSION_ALPHA:
        return negbin, f"family: negative binomial (theta = {float(negbin.theta):.4g}; {test})"
    return poisson, f"family: Poisson ({test})"


def _observed(data: ModelData, arm: int, kind: str) -> str:
    """Observed events (binary) or rate (count) per arm of the analysed patients."""
    parts = []
    for label, value in (("intervention", 1.0), ("control", 0.0)):
        rows = data.X[:, arm] == value
        y = data.y[rows]
        if kind == "binary":
            parts.append(f"{label} {int(y.sum())}/{rows.sum()} ({100 * y.mean():.1f}%)")
        else:
            exposure = np.exp(data.offset[rows]).sum()
            parts.append(f"{label} {int(y.sum())} in {exposure:.6g} exposure "
                         f"({y.sum() / exposure:.4g} per unit)")
    return "observed " + ", ".join(parts)


def glmm_outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The primary rows of a binary or count outcome at one follow-up month.

    Parameters
    ----------
    patients : DataFrame
        Validated patients (binary outcomes coded 0/1).
    outcome : dict
        The outcome's configuration entry (``type`` binary or count, optional ``exposure``,
        ``mcid``).
    month : int
        Follow-up month.
    config : dict
        ``design`` (``cluster``, ``baseline_month``) and ``analysis`` (``covariates``,
        ``alpha``, optional ``glmm_df_method`` list and ``quadrature_points``).

    Returns
    -------
    list of dict
        For each df method, one row per measure of :func:`measures_of` with the contract's
        columns (see the module notes); a row saying why when the model cannot be estimated.
    """
    analysis = config["analysis"]
    methods = analysis.get("glmm_df_method", ["between-within"])
    n_agq = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    alpha, kind = analysis["alpha"], outcome["type"]
    population = primary_population(patients, outcome, month, config)
    data = population.data
    base = {**population.base, "sd_baseline": np.nan, "mcid": np.nan}
    arm = data.columns.index(TREATED)
    notes = [population.exclusions]
    problem = population.problem
    if not problem and np.ptp(data.y) == 0:
        problem = f"not estimable: every analysed patient has {data.y[0]:g} as the outcome"
    if not problem:
        notes.insert(0, _observed(data, arm, kind))
        try:
            if kind == "binary":
                binary = glmm_data(data.y, data.X, data.cluster_codes, "binomial")
                fit, family_note = fit_glmm(binary, n_agq), "family: binomial (logit)"
            else:
                fit, family_note = _count_fit(data, n_agq)
        except TrialstatsError as error:
            problem = f"not estimable: {error}"
    if problem:
        return [{**base, "method": method, "effect_measure": measure, "converged": False,
                 "notes": join_notes(problem, *notes)}
                for method in methods for measure in measures_of(outcome)]
    notes += [family_note, f"{n_agq}-node adaptive quadrature",
              _NO_EFFECT_SIZE.format(kind)]
    if bool(fit.boundary):
        notes.append("practice variance estimated at 0 (boundary fit): ICC 0")
    if not bool(fit.converged):
        notes.append("GLMM fit did not converge (e.g. all or no events in an arm); "
                     "estimates are unreliable")
    sigma = float(fit.sigma)
    base.update(var_cluster=sigma**2, converged=bool(fit.converged),
                notes=join_notes(*notes))
    if kind == "binary":
        low, high = (sigma_profile_interval(binary, fit, level=1 - alpha) if fit.converged
                     else (np.nan, np.nan))
        base.update(var_residual=np.pi**2 / 3, icc=float(latent_icc(sigma)),
                    icc_ci_low=float(latent_icc(low)), icc_ci_high=float(latent_icc(high)))
    rows = []
    for method in methods:
        df = glmm_df(method, data.y, data.X, data.cluster_codes,
                     np.eye(data.X.shape[1])[arm])
        row = {**base, "method": method}
        first = measures_of(outcome)[0]
        rows.append(measure_row(row, outcome, first, estimate=float(fit.beta[arm]),
                               se=float(fit.se[arm]), df=df, alpha=alpha))
        if kind == "binary":
            with np.errstate(over="ignore"):  # separated fits: infinite ratio limits
                marginal = marginal_effects(fit, data.X, arm, level=1 - alpha,
                                            df=df if np.isfinite(df) else None)
            for measure, (_, effect) in zip((RISK_DIFFERENCE, RISK_RATIO), marginal.iterrows(),
                                            strict=True):
                estimate = effect["estimate"] if measure == RISK_DIFFERENCE else np.log(
                    effect["estimate"])
                rows.append(measure_row(row, outcome, measure, estimate=float(estimate),
                                       se=float(effect["se"]), df=df, alpha=alpha))
    return rows
