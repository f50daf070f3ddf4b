"""Invariance properties of the primary analysis (``analyse_outcome``), checked with hypothesis,
and degenerate trials (an arm with no outcome, a constant score, one cluster per arm, a
covariate aliased with arm) that every sensitivity analysis must turn into rows.

Each example is a small trial (2-4 practices per arm, 2-8 patients each, one outcome at
baseline and month 12 with some values missing, a numeric and a categorical covariate) drawn
from a seeded generator; hypothesis chooses the structure and the seed. The analysis of the
transformed trial is compared with the analysis of the original to ``1e-8`` relative to each
quantity's own scale (estimates to their standard error), far above the rounding error of the
sums the REML kernel works from and far below any real change.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from trialstats.analysis.primary import analyse_outcome
from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.data.validate import TREATED

METHODS = ["kenward-roger", "satterthwaite", "between-within", "residual"]
OUTCOME = {"name": "score", "higher_is_better": True,
           "mcid": {"scale": "standardised", "value": 0.2}}
RTOL = 1e-8
# derandomize: the same examples on every run, so CI is reproducible (the properties were also
# checked at 200-300 random examples on several seeds when they were written)
PROPERTY = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def trials(draw) -> pd.DataFrame:
    """A validated-looking patients table (``treated``, ids as text, float outcomes)."""
    n_int, n_ctl = draw(st.integers(2, 4)), draw(st.integers(2, 4))
    sizes = draw(st.lists(st.integers(2, 8), min_size=n_int + n_ctl, max_size=n_int + n_ctl))
    icc = draw(st.sampled_from([0.0, 0.05, 0.3]))
    effect = draw(st.sampled_from([0.0, 0.5, 3.0]))
    missing = draw(st.sampled_from([0.0, 0.15]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    treated = np.repeat(np.r_[np.ones(n_int), np.zeros(n_ctl)], sizes)
    practice = np.repeat(np.arange(n_int + n_ctl), sizes)
    u = rng.normal(0.0, np.sqrt(icc), n_int + n_ctl)[practice]
    y0 = u + rng.normal(0.0, np.sqrt(1 - icc), practice.size)
    y1 = 0.5 * y0 + u + effect * treated + rng.normal(0.0, 1.0, practice.size)
    frame = pd.DataFrame({
        "patient_id": [f"S{i:03d}" for i in range(practice.size)],
        "practice_id": [f"P{j:02d}" for j in practice],
        "arm": np.where(treated == 1, "intervention", "control"),
        TREATED: treated.astype(np.int64),
        "age": rng.integers(30, 80, practice.size).astype(float),
        "condition": rng.choice(["copd", "diabetes"], practice.size),
        "score_m0": np.round(50 + 10 * y0, 1),
        "score_m12": np.round(50 + 10 * y1, 1),
    })
    for column in ("score_m0", "score_m12"):
        frame.loc[rng.uniform(size=len(frame)) < missing, column] = np.nan
    return frame


def analyse(patients: pd.DataFrame) -> pd.DataFrame:
    """The four df methods' rows.

    Not used as examples: trials with fewer than 10 analysed patients (at most 5 residual df
    for 5 fixed effects: with 1 or 2 the REML likelihood is nearly flat, so rounding decides
    between a boundary and an interior optimum, and Kenward-Roger df near 0 give intervals of
    1e154), and trials whose REML fit does not converge (flagged in ``converged``/``notes``).
    """
    rows = analyse_outcome(
        patients, OUTCOME, 12, cluster="practice_id", baseline_month=0,
        covariates=["age", "condition"], df_methods=METHODS,
    )
    if rows["notes"].str.contains("did not converge").any() or rows["n_patients"].iloc[0] < 10:
        reject()
    return rows.set_index("method")


def close(got: pd.Series, want: pd.Series, scale: pd.Series | float = 1.0) -> None:
    """Equal to ``RTOL`` relative to ``scale`` (default: to the values themselves)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    atol = RTOL * np.abs(np.asarray(scale, dtype=float))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=np.max(atol, initial=0.0))


def verdicts(results: pd.DataFrame) -> list[str]:
    return [v if isinstance(v, str) else "" for v in results["mcid_verdict"]]


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every column of two result tables equal (numbers to RTOL of their scale)."""
    for column in ("outcome", "month", "n_patients", "n_clusters", "converged", "notes"):
        assert got[column].tolist() == want[column].tolist(), column
    assert verdicts(got) == verdicts(want)
    se = want["se"]
    for column in ("estimate", "ci_low", "ci_high"):
        close(got[column], want[column], se)
    for column in ("se", "df", "sd_baseline", "mcid", "var_residual"):
        close(got[column], want[column])
    close(got["var_cluster"], want["var_cluster"], want["var_residual"])
    for column in ("p_value", "icc", "icc_ci_low", "icc_ci_high"):
        close(got[column], want[column], 1.0)
    for column in ("effect_size", "es_ci_low", "es_ci_high"):
        close(got[column], want[column], se / want["sd_baseline"])


@PROPERTY
@given(trials(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(patients, random):
    order = list(range(len(patients)))
    random.shuffle(order)
    assert_same(analyse(patients.iloc[order].reset_index(drop=True)), analyse(patients))


@PROPERTY
@given(trials(), st.randoms(use_true_random=False))
def test_relabelling_practices_and_patients_does_not_matter(patients, random):
    practices = sorted(patients["practice_id"].unique())
    new = [f"practice-{random.randrange(10**6)}-{i}" for i in range(len(practices))]
    random.shuffle(new)
    relabelled = patients.assign(
        practice_id=patients["practice_id"].map(dict(zip(practices, new, strict=True))),
        patient_id=[f"X{random.randrange(10**9)}-{i}" for i in range(len(patients))],
    )
    assert_same(analyse(relabelled), analyse(patients))


MIRROR = {"important benefit shown": "important harm shown",
          "important harm shown": "important benefit shown"}


@PROPERTY
@given(trials())
def test_swapping_arms_flips_the_estimate(patients):
    swapped = patients.assign(**{
        TREATED: 1 - patients[TREATED],
        "arm": patients["arm"].map({"intervention": "control", "control": "intervention"}),
    })
    got, want = analyse(swapped), analyse(patients)
    se = want["se"]
    close(got["estimate"], -want["estimate"], se)
    close(got["ci_low"], -want["ci_high"], se)
    close(got["ci_high"], -want["ci_low"], se)
    close(got["es_ci_low"], -want["es_ci_high"], se / want["sd_baseline"])
    for column in ("se", "df", "var_residual"):
        close(got[column], want[column])
    for column in ("p_value", "icc", "icc_ci_low", "icc_ci_high"):
        close(got[column], want[column], 1.0)
    assert verdicts(got) == [MIRROR.get(v, v) for v in verdicts(want)]
    assert got["converged"].tolist() == want["converged"].tolist()


@PROPERTY
@given(
    trials(),
    st.floats(1e-2, 1e2).flatmap(lambda a: st.sampled_from([a, -a])),
    st.floats(-100.0, 100.0),
)
def test_linear_rescaling_of_the_outcome(patients, a, b):
    """``a y + b`` of baseline and follow-up: estimate and SE scale by ``a`` (|a|); p-values,
    df, ICC and effect sizes stay (effect sizes change sign with ``a``). The offset ``b`` is
    in units of ``a``, i.e. up to 100 of the new scale's units per unit of the old one."""
    scaled = patients.assign(score_m0=a * patients["score_m0"] + a * b,
                             score_m12=a * patients["score_m12"] + a * b)
    got, want = analyse(scaled), analyse(patients)
    sign, se = np.sign(a), want["se"]
    close(got["estimate"], a * want["estimate"], abs(a) * se)
    low, high = ("ci_low", "ci_high") if a > 0 else ("ci_high", "ci_low")
    close(got[low], a * want["ci_low"], abs(a) * se)
    close(got[high], a * want["ci_high"], abs(a) * se)
    for column in ("se", "sd_baseline", "mcid"):
        close(got[column], abs(a) * want[column])
    close(got["var_residual"], a**2 * want["var_residual"])
    close(got["var_cluster"], a**2 * want["var_cluster"], a**2 * want["var_residual"])
    for column in ("df",):
        close(got[column], want[column])
    for column in ("p_value", "icc", "icc_ci_low", "icc_ci_high"):
        close(got[column], want[column], 1.0)
    close(got["effect_size"], sign * want["effect_size"], se / want["sd_baseline"])
    if a > 0:
        assert verdicts(got) == verdicts(want)
    assert got["converged"].tolist() == want["converged"].tolist()


@PROPERTY
@given(trials(), st.floats(-1000.0, 1000.0))
def test_constant_added_to_baseline_leaves_the_arm_effect(patients, shift):
    moved = patients.assign(score_m0=patients["score_m0"] + shift)
    got, want = analyse(moved), analyse(patients)
    se = want["se"]
    for column in ("estimate", "ci_low", "ci_high"):
        close(got[column], want[column], se)
    for column in ("se", "df", "var_residual", "sd_baseline"):
        close(got[column], want[column])
    close(got["var_cluster"], want["var_cluster"], want["var_residual"])
    close(got["p_value"], want["p_value"], 1.0)
    assert verdicts(got) == verdicts(want)


def test_the_generator_makes_fittable_trials():
    """Guard against vacuous properties: most drawn trials must actually be fitted."""
    fitted = []

    @settings(max_examples=20, deadline=None, database=None, derandomize=True)
    @given(trials())
    def record(patients):
        fitted.append(bool(analyse(patients)["converged"].all()))

    record()
    assert np.mean(fitted) > 0.5


# --- degenerate trials (issue 16): rows that say why, never a traceback or a garbage number ---

DEGENERATE = ["an arm with no outcome", "a constant score", "one cluster per arm",
              "a covariate aliased with arm"]
#: Every sensitivity analysis but the permutation test (which needs an allocation set).
SENSITIVITY = ["multiple-imputation", "delta-adjustment", "repeated-measures", "cluster-level",
               "gee", "cr2", "subgroups"]


@functools.cache
def _sensitivity_config() -> dict:
    folder = Path(tempfile.mkdtemp(prefix="trialstats-properties-"))
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"practices": "practices.csv", "patients": "patients.csv"},
        "design": {"intervention": "intervention", "followup_months": [12],
                   "primary_month": 12},
        "outcomes": [OUTCOME],
        "analysis": {"covariates": ["age", "condition"]},
        "sensitivity": {"imputations": 3, "subgroup": "condition"},
    }))
    return load_config(path)


def degenerate(patients: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``patients`` made degenerate in the way ``kind`` of :data:`DEGENERATE` names."""
    out = patients.copy()
    treated = out[TREATED] == 1
    if kind == "an arm with no outcome":
        out.loc[treated, "score_m12"] = np.nan
    elif kind == "a constant score":
        out["score_m12"] = out["score_m12"].where(out["score_m12"].isna(), 50.0)
    elif kind == "one cluster per arm":  # every other practice's outcome missing
        first = out.groupby(TREATED)["practice_id"].transform("min")
        out.loc[out["practice_id"] != first, "score_m12"] = np.nan
    else:
        out["age"] = 30.0 + 10.0 * out[TREATED]
    return out


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(trials(), st.sampled_from(DEGENERATE))
def test_degenerate_trials_give_rows_that_say_why(patients, kind):
    config = _sensitivity_config()
    broken = degenerate(patients, kind)
    for name in SENSITIVITY:
        table = run_analysis(name, broken, config)
        assert len(table) >= 1, name
        untried = table["notes"].fillna("").str.startswith(("not estimable", "skipped"))
        reported = table[~untried]
        numbers = reported[["estimate", "se", "df", "ci_low", "ci_high"]].to_numpy(float)
        assert np.isfinite(numbers).all(), (name, kind)
        assert (reported["df"] > 0).all() and (reported["se"] > 0).all(), (name, kind)
        assert table.loc[untried, "estimate"].isna().all(), (name, kind)
        if kind != "a covariate aliased with arm" or name in ("multiple-imputation",
                                                              "delta-adjustment"):
            # no comparison of arms exists (the cluster-level test of residuals, which
            # leaves arm out of its regression, may still compare the aliased trial)
            assert untried.all(), (name, kind, table["notes"].tolist())
