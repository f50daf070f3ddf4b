"""Multilevel multiple imputation: pooling against mice, the posterior draws, the analysis.

References: ``tests/fixtures/mice/reference.json`` made by
``tests/fixtures/r/make_mice_fixture.R`` (mice 3.15 ``2l.lmer`` imputations, lmerTest fits,
``pool.scalar``; the call is stored in the file); the REML criterion of
:mod:`trialstats.analysis.reml`; and the simulation study of
``benchmarks/imputation_validity.py`` run small.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trialstats.analysis import chained
from trialstats.analysis.design import ModelData
from trialstats.analysis.imputation import (
    IMPUTATION_COLUMNS,
    _imputed_sums,
    impute_chained,
    multiple_imputation,
    rubin_pool,
)
from trialstats.analysis.primary import analyse_outcome
from trialstats.analysis.reml import ClusterSums, fit_reml, profile_terms
from trialstats.errors import TrialstatsError

ROOT = Path(__file__).resolve().parents[1]
MICE = ROOT / "tests" / "fixtures" / "mice"
MICE_CONFIG = {
    "design": {"cluster": "practice_id", "baseline_month": 0, "followup_months": [6, 12]},
    "outcomes": [{"name": "y", "higher_is_better": True},
                 {"name": "w", "higher_is_better": True}],
    "analysis": {"covariates": ["condition"], "df_method": ["satterthwaite"], "alpha": 0.05},
}


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "imputation_validity", ROOT / "benchmarks" / "imputation_validity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mice_reference() -> dict:
    return json.loads((MICE / "reference.json").read_text())


@pytest.fixture(scope="module")
def mice_patients() -> pd.DataFrame:
    return pd.read_csv(MICE / "patients.csv", dtype={"practice_id": str, "condition": str})


# --- pooling -----------------------------------------------------------------------------


def test_pooling_equals_mice_pool_scalar(mice_reference):
    """Same per-imputation estimates and variances in, same pooled numbers out (1e-8)."""
    for result in mice_reference["results"]:
        pooled = rubin_pool(result["estimates"], result["variances"], result["dfcom"])
        for ours, theirs in [(pooled.estimate, "qbar"), (pooled.within, "ubar"),
                             (pooled.between, "b"), (pooled.total, "t"), (pooled.df, "df"),
                             (pooled.riv, "r"), (pooled.fmi, "fmi")]:
            np.testing.assert_allclose(ours, result[theirs], rtol=1e-8, err_msg=theirs)


def test_pooling_closed_form():
    """Q = (1, 2, 3), U = 1: B = 1, T = 7/3, r = 4/3, lambda = 4/7, Rubin df = 2/lambda^2."""
    pooled = rubin_pool([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert pooled.estimate == pytest.approx(2.0)
    assert pooled.total == pytest.approx(7 / 3)
    assert pooled.riv == pytest.approx(4 / 3)
    assert pooled.lambda_ == pytest.approx(4 / 7)
    assert pooled.df == pytest.approx(2 / (4 / 7) ** 2)
    finite = rubin_pool([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], 10.0)
    df_obs = 11 / 13 * 10 * (1 - 4 / 7)
    assert finite.df == pytest.approx(1 / (1 / pooled.df + 1 / df_obs))
    batched = rubin_pool(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]), np.ones((2, 3)), 10.0)
    assert batched.df[0] == pytest.approx(finite.df)


def test_pooling_needs_two_imputations():
    with pytest.raises(TrialstatsError, match="at least two imputations"):
        rubin_pool([1.0], [1.0])


# --- the posterior draw of the conditional ICC ---------------------------------------------


def _two_level(rng, n_clusters=12, size=15, icc=0.1):
    codes = np.repeat(np.arange(n_clusters), rng.integers(size // 2, 2 * size, n_clusters))
    x = rng.standard_normal((len(codes), 2))
    y = (x @ np.array([1.0, -0.5]) + np.sqrt(icc) * rng.standard_normal(n_clusters)[codes]
         + np.sqrt(1 - icc) * rng.standard_normal(len(codes)))
    return x, y, codes


def test_rho_draws_follow_the_reml_posterior():
    """Draws of rho match the density exp(REML log-likelihood) (uniform prior on rho), computed
    independently with the REML kernel and integrated numerically."""
    rng = np.random.default_rng(11)
    x, y, codes = _two_level(rng)
    design = np.column_stack([np.ones(len(y)), x])
    copies = 4000
    full = np.column_stack([design, y])
    sums = np.zeros((codes.max() + 1, full.shape[1]))
    np.add.at(sums, codes, full)
    regression = chained._Regression(
        np.broadcast_to(full.T @ full, (copies, 4, 4)).copy(),
        np.broadcast_to(sums, (copies, *sums.shape)).copy(),
        np.bincount(codes).astype(float),
    )
    draws = chained._draw_rho(regression, np.random.default_rng(3).random((copies, 2)))

    grid = np.linspace(0.0, 0.8, 4001)[:-1] + 0.0001
    terms = profile_terms(ClusterSums.from_data(y, design, codes), grid / (1 - grid))
    density = np.exp(terms.reml_loglik() - terms.reml_loglik().max())
    cdf = np.cumsum(density) / density.sum()
    # Kolmogorov-Smirnov distance against the numerical posterior CDF
    distance = np.max(np.abs(np.searchsorted(np.sort(draws), grid, side="right") / copies - cdf))
    assert distance < 1.63 / np.sqrt(copies)  # KS 1% critical value
    mean = np.sum(grid * density) / density.sum()
    assert draws.mean() == pytest.approx(mean, abs=4 * draws.std() / np.sqrt(copies))


# --- the chained imputation ----------------------------------------------------------------


def test_impute_chained_keeps_observed_values_and_is_seeded():
    rng = np.random.default_rng(5)
    x, y, codes = _two_level(rng)
    scores = np.column_stack([y, y + rng.standard_normal(len(y))])
    scores[rng.random(scores.shape) < 0.3] = np.nan
    first = impute_chained(scores, x, codes, imputations=5, iterations=3, seed=9)
    again = impute_chained(scores, x, codes, imputations=5, iterations=3, seed=9)
    fewer = impute_chained(scores, x, codes, imputations=3, iterations=3, seed=9)
    assert first.shape == (5, *scores.shape)
    observed = ~np.isnan(scores)
    kept = np.broadcast_to(scores[observed], (5, observed.sum()))
    assert np.array_equal(first[:, observed], kept)
    assert np.isfinite(first).all()
    assert np.array_equal(first, again)
    np.testing.assert_array_equal(first[:3], fewer)  # imputation m has its own stream
    assert not np.array_equal(first[0], first[1])


def test_impute_chained_recovers_the_two_level_model():
    """MCAR-missing outcome in 30 practices: the completed data give back the slope and the
    ICC (a fixed-effect imputation would inflate the ICC)."""
    rng = np.random.default_rng(21)
    x, y, codes = _two_level(rng, n_clusters=30, size=40, icc=0.05)
    scores = y.copy()[:, None]
    scores[rng.random(len(y)) < 0.4] = np.nan
    completed = impute_chained(scores, x, codes, imputations=20, iterations=1, seed=2)
    design = np.column_stack([np.ones(len(y)), x])
    fit = fit_reml(ClusterSums.from_data(completed[:, :, 0], design, codes))
    observed = ~np.isnan(scores[:, 0])
    reference = fit_reml(ClusterSums.from_data(y[observed], design[observed], codes[observed]))
    icc = fit.var_cluster / (fit.var_cluster + fit.var_residual)
    ref_icc = reference.var_cluster / (reference.var_cluster + reference.var_residual)
    assert icc.mean() == pytest.approx(ref_icc, abs=0.02)
    assert fit.beta[:, 1].mean() == pytest.approx(reference.beta[1], abs=0.05)


def test_impute_chained_practice_without_observed_values():
    """A practice whose target is all missing gets intercepts drawn from N(0, tau^2)."""
    rng = np.random.default_rng(8)
    x, y, codes = _two_level(rng)
    scores = y.copy()[:, None]
    scores[codes == 0, 0] = np.nan
    completed = impute_chained(scores, x, codes, imputations=4, iterations=2, seed=1)
    assert np.isfinite(completed).all()


def test_impute_chained_rejects_an_empty_column():
    with pytest.raises(TrialstatsError, match="no observed value"):
        impute_chained(np.full((10, 1), np.nan), np.zeros((10, 0)), np.arange(10) % 2,
                       imputations=2, iterations=1, seed=0)


def _patterned(rng):
    """Scores in 12 practices with questionnaire-like missingness: the last two columns of a
    month not returned, single scores missing at random, one row missing every score (a
    pattern of one row) and practice 0 missing column 1 in every row."""
    x, y, codes = _two_level(rng, n_clusters=12, size=30)
    scores = np.column_stack([y + rng.standard_normal(len(y)) for _ in range(4)])
    scores[rng.random(len(y)) < 0.3, 2:] = np.nan
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[codes == 0, 1] = np.nan
    scores[7] = np.nan
    return scores, x, codes


@pytest.mark.parametrize("rows", [0.0, 1.0])
def test_pattern_path_draws_as_the_direct_path(monkeypatch, rows):
    """Cross products kept per missingness pattern (all patterns: rows 0, including the
    one-row pattern; patterns of at least q rows: rows 1, the rest direct) give the draws of
    forming every missing row's products afresh (no pattern kept), to rounding."""
    scores, x, codes = _patterned(np.random.default_rng(4))
    missing = np.pad(np.isnan(scores), ((0, 0), (3, 0)))
    monkeypatch.setattr(chained, "_PATTERN_ROWS", np.inf)
    assert chained._Layout(missing, codes, 12).blocks.tolist() == [0]  # every row direct
    direct = chained.impute_missing(scores, x, codes, imputations=3, iterations=4, seed=6)
    monkeypatch.setattr(chained, "_PATTERN_ROWS", rows)
    layout = chained._Layout(missing, codes, 12)
    sizes = np.diff(layout.blocks)
    if rows == 0.0:
        assert layout.blocks[-1] == len(scores) and sizes.min() == 1
    else:
        assert sizes.min() >= missing.shape[1] and 0 < layout.blocks[-1] < len(scores)
    patterned = chained.impute_missing(scores, x, codes, imputations=3, iterations=4, seed=6)
    for ours, theirs in zip(patterned, direct, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
    assert not np.array_equal(patterned[1][0], patterned[1][1])


def test_imputed_sums_are_those_of_the_stacked_data():
    """One imputation at a time, the fixed columns' products once: the very numbers of
    ClusterSums.from_data on the (M, n, p) stack."""
    rng = np.random.default_rng(12)
    n, n_clusters = 300, 9
    codes = np.sort(rng.integers(0, n_clusters, n))
    X = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.standard_normal((n, 2))])
    frame = ModelData(y=np.zeros(n), X=X, columns=("a", "b", "c", "d"), cluster_codes=codes,
                      cluster_ids=tuple(map(str, range(n_clusters))), excluded={},
                      n_randomised=n, offset=np.zeros(n))
    response = 50 + 30 * rng.standard_normal((3, n))
    base = 40 + 20 * rng.standard_normal((3, n))
    for scores in (base, None):
        stacked = np.broadcast_to(X, (3, *X.shape))
        if scores is not None:
            stacked = np.insert(stacked, 2, scores, axis=2)
        expected = ClusterSums.from_data(response, stacked, codes, n_clusters)
        ours = _imputed_sums(frame, ((response[m], None if scores is None else scores[m])
                                     for m in range(3)))
        for field in fields(ClusterSums):
            assert np.array_equal(getattr(ours, field.name), getattr(expected, field.name))


# --- multiple_imputation --------------------------------------------------------------------


def test_complete_data_reproduce_the_primary_analysis(mice_patients):
    """Without missing scores every imputation is the data: estimate, SE and variance
    components are the primary analysis's. B = 0, so lambda is floored at 1e-4 as in mice and
    the Barnard-Rubin df is nu_obs = (nu + 1)/(nu + 3) nu (1 - 1e-4), below the complete-data nu."""
    complete = mice_patients.dropna().reset_index(drop=True)
    result = multiple_imputation(complete, MICE_CONFIG, imputations=3, seed=1)
    assert list(result.columns) == list(IMPUTATION_COLUMNS)
    for row in result.itertuples():
        outcome = next(o for o in MICE_CONFIG["outcomes"] if o["name"] == row.outcome)
        primary = analyse_outcome(complete, outcome, row.month, cluster="practice_id",
                                  baseline_month=0, covariates=["condition"],
                                  df_methods=["satterthwaite"]).iloc[0]
        for column in ("estimate", "se", "var_cluster", "var_residual", "icc", "sd_baseline",
                       "n_patients", "n_clusters"):
            assert getattr(row, column) == pytest.approx(primary[column], rel=1e-10), column
        assert row.riv == 0.0
        nu = primary["df"]
        assert row.df == pytest.approx((nu + 1) / (nu + 3) * nu * (1 - 1e-4), rel=1e-6)
        assert row.analysis == "multiple imputation (m=3)"


def test_rows_and_reruns(mice_patients):
    first = multiple_imputation(mice_patients, MICE_CONFIG, imputations=5, seed=4)
    again = multiple_imputation(mice_patients, MICE_CONFIG, imputations=5, seed=4)
    only_w = multiple_imputation(mice_patients, MICE_CONFIG, imputations=5, seed=4,
                                 outcomes=["w"])
    assert first.to_csv(index=False) == again.to_csv(index=False)
    assert only_w.to_csv(index=False) == first[first["outcome"] == "w"].to_csv(index=False)
    assert list(zip(first["outcome"], first["month"], strict=True)) == [
        ("y", 6), ("y", 12), ("w", 6), ("w", 12)]
    assert (first["method"] == "satterthwaite").all()
    assert first["n_patients"].eq(len(mice_patients)).all()
    assert first["icc_ci_low"].isna().all()
    row = first.iloc[1]
    half = stats.t.ppf(0.975, row["df"]) * row["se"]
    assert row["ci_low"] == pytest.approx(row["estimate"] - half)
    assert f"FMI {row['fmi']:.3f}" in row["notes"]
    assert "averaged over imputations" in row["notes"]
    with pytest.raises(TrialstatsError, match="unknown outcome"):
        multiple_imputation(mice_patients, MICE_CONFIG, seed=1, outcomes=["z"])


def test_batches_of_imputations_change_no_value(mice_patients, monkeypatch):
    """A large trial imputes and pools in batches of imputations (issue 16: memory); the
    imputations are independent chains, so the smallest batches (two or three imputations)
    give the same bytes as one batch."""
    whole = multiple_imputation(mice_patients, MICE_CONFIG, imputations=5, seed=4)
    monkeypatch.setattr(chained, "_BATCH_BYTES", 1)
    assert chained.imputation_batches(5, 10) == [range(0, 3), range(3, 5)]
    batched = multiple_imputation(mice_patients, MICE_CONFIG, imputations=5, seed=4)
    assert batched.to_csv(index=False) == whole.to_csv(index=False)


def test_missing_covariate_is_excluded_and_counted(mice_patients):
    patients = mice_patients.copy()
    patients.loc[:4, "condition"] = np.nan
    result = multiple_imputation(patients, MICE_CONFIG, imputations=3, seed=1)
    assert result["n_patients"].eq(len(patients) - 5).all()
    assert result["notes"].str.contains("5 without condition").all()


def test_pooled_estimate_agrees_with_mice(mice_reference, mice_patients):
    """m = 200 on both sides (mice ``2l.lmer``). Each pooled estimate has Monte Carlo SE
    sqrt(B/m), so the two differ by N(0, B_R/m + B_py/m) when the imputation models agree;
    allow 4 of those SEs (observed: 0.3 to 2.9). The two-level models differ in how the
    practice variance is drawn (2l.lmer's approximate draw, often at the boundary with 16
    practices; here the exact posterior under a uniform prior on the ICC), which moves the
    completed data's ICC and so the pooled SE sqrt(T): allow 10% (observed: 3% to 7.5%, ours
    larger; B itself is estimated on 199 df, relative SE 10%)."""
    m = mice_reference["m"]
    ours = multiple_imputation(mice_patients, MICE_CONFIG, imputations=m, seed=2024,
                               iterations=mice_reference["maxit"])
    for row, theirs in zip(ours.itertuples(), mice_reference["results"], strict=True):
        assert (row.outcome, row.month) == (theirs["outcome"], theirs["month"])
        between = row.se**2 * row.riv / (1 + row.riv) / (1 + 1 / m)
        tolerance = 4 * np.sqrt(theirs["b"] / m + between / m)
        assert abs(row.estimate - theirs["qbar"]) < tolerance
        assert row.se == pytest.approx(np.sqrt(theirs["t"]), rel=0.10)


# --- validity by simulation (small; the full study is benchmarks/imputation_validity.py) ---


def test_validity_small_simulation():
    """MCAR: MI agrees with complete cases within Monte Carlo error. MAR driven by the 6-month
    (or baseline) score: complete cases are biased, MI is not."""
    bench = _load_benchmark()
    settings = {"clusters_per_arm": 6, "cluster_size": 25, "imputations": 5, "iterations": 5}
    mcar = bench.study(40, 7, mechanism="MCAR", **settings)
    difference = mcar["mi_estimate"] - mcar["cc_estimate"]
    assert abs(difference.mean()) < 3 * difference.std(ddof=1) / np.sqrt(len(mcar))
    mar = bench.study(40, 7, mechanism="MAR", **settings)
    summary = bench.summarise(mar).set_index("analysis")
    complete, imputed = summary.loc["complete cases"], summary.loc["multiple imputation"]
    assert complete["bias"] > 4 * complete["bias_mcse"]
    assert abs(imputed["bias"]) < 3 * imputed["bias_mcse"]
