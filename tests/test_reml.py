"""The REML kernel against lme4 (fixtures from tests/fixtures/r/make_reml_fixtures.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reml_fixtures import FIXTURES, NAMES, REFERENCE, load, value
from trialstats.analysis.reml import ClusterSums, RemlFit, fit_reml, profile_terms
from trialstats.errors import TrialstatsError


@pytest.fixture(scope="module")
def fits() -> dict[str, RemlFit]:
    return {name: fit_reml(ClusterSums.from_data(*load(name))) for name in NAMES}


def test_fixtures_cover_the_required_designs():
    ref = REFERENCE
    assert ref["balanced"]["cluster_size_cv"] == 0
    assert any(r["n_clusters"] <= 12 for r in ref.values())
    assert any(r["cluster_size_cv"] >= 0.8 for r in ref.values())
    assert ref["boundary"]["theta"]["value"] == 0 and ref["boundary"]["singular"]["value"]
    assert "list_size" in ref["covariates"]["coef_names"]
    assert any(c.startswith("condition") for c in ref["covariates"]["coef_names"])
    data = pd.read_csv(FIXTURES / "missing_baseline_data.csv")
    assert data["baseline"].notna().all() and len(data) == ref["missing_baseline"]["n_obs"]


@pytest.mark.parametrize("name", NAMES)
def test_fixed_effects_and_standard_errors_match_lme4(fits, name):
    fit = fits[name]
    np.testing.assert_allclose(fit.beta, value(name, "fixef"), rtol=1e-6, atol=0)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), value(name, "se"), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_variance_components_and_loglik_match_lme4(fits, name):
    fit = fits[name]
    ref_cluster = float(value(name, "var_cluster"))
    if ref_cluster < 1e-8:
        assert abs(fit.var_cluster - ref_cluster) <= 1e-8
    else:
        assert fit.var_cluster == pytest.approx(ref_cluster, rel=1e-5)
    assert fit.var_residual == pytest.approx(float(value(name, "var_residual")), rel=1e-5)
    assert fit.reml_loglik == pytest.approx(float(value(name, "reml_loglik")), rel=1e-10)
    assert fit.n_obs == REFERENCE[name]["n_obs"]
    assert fit.n_clusters == REFERENCE[name]["n_clusters"]
    assert bool(fit.converged)
    assert bool(fit.boundary) == bool(REFERENCE[name]["singular"]["value"])


@pytest.mark.parametrize("name", NAMES)
def test_optimum_is_at_least_as_good_as_lme4s(fits, name):
    sums = ClusterSums.from_data(*load(name))
    fit = fits[name]
    at_lme4 = profile_terms(sums, float(value(name, "theta")) ** 2).reml_loglik()
    assert fit.reml_loglik >= at_lme4 - 1e-13 * abs(at_lme4)  # rounding only
    if not fit.boundary:
        terms = profile_terms(sums, fit.gamma)
        # stationary to rounding: |f'| tiny against the scale of its terms
        assert abs(terms.d_criterion()) < 1e-8 * terms.sum_n_h


def test_boundary_fit_is_exactly_zero(fits):
    fit = fits["boundary"]
    assert fit.var_cluster == 0 and fit.gamma == 0 and bool(fit.boundary)
    # at gamma = 0 the fit is ordinary least squares
    y, X, _ = load("boundary")
    ols, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(fit.beta, ols, rtol=1e-12)
    resid = y - X @ ols
    assert fit.var_residual == pytest.approx(resid @ resid / (len(y) - X.shape[1]), rel=1e-12)


def test_profile_derivatives_match_finite_differences():
    sums = ClusterSums.from_data(*load("unequal"))
    gamma = np.array([0.01, 0.05, 0.3, 2.0])
    stacked = ClusterSums(*(np.stack([getattr(sums, k)] * 4) for k in _FIELDS))
    terms = profile_terms(stacked, gamma)
    step = 1e-6 * gamma
    up, down = profile_terms(stacked, gamma + step), profile_terms(stacked, gamma - step)
    np.testing.assert_allclose(
        terms.d_criterion(), (up.criterion() - down.criterion()) / (2 * step), rtol=1e-5
    )
    np.testing.assert_allclose(
        terms.d2_criterion(), (up.d_criterion() - down.d_criterion()) / (2 * step), rtol=1e-5
    )


def test_reml_loglik_equals_the_dense_formula():
    """Independent of lme4: -2 l_R = log|V| + log|X'V^-1X| + r'V^-1 r + (N-p) log 2 pi."""
    y, X, codes = load("few_clusters")
    fit = fit_reml(ClusterSums.from_data(y, X, codes))
    same = codes[:, None] == codes[None, :]
    V = fit.var_residual * np.eye(len(y)) + fit.var_cluster * same
    Vinv = np.linalg.inv(V)
    xvx = X.T @ Vinv @ X
    beta = np.linalg.solve(xvx, X.T @ Vinv @ y)
    r = y - X @ beta
    n, p = X.shape
    minus2 = (np.linalg.slogdet(V)[1] + np.linalg.slogdet(xvx)[1] + r @ Vinv @ r
              + (n - p) * np.log(2 * np.pi))
    assert fit.reml_loglik == pytest.approx(-0.5 * minus2, rel=1e-12)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov, np.linalg.inv(xvx), rtol=1e-9)


_FIELDS = ("n", "xtx", "xty", "yty", "xsum", "ysum")


def _simulated_batch(n_reps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 40, 14)
    codes = np.repeat(np.arange(14), sizes)
    arm = (np.arange(14) % 2)[codes]
    X = np.column_stack([np.ones(codes.size), arm, rng.normal(50, 10, codes.size)])
    u = rng.normal(0, 2.0, (n_reps, 14))
    y = 5 + arm + 0.5 * X[:, 2] + u[:, codes] + rng.normal(0, 6, (n_reps, codes.size))
    return y, X, codes


def test_batched_fit_equals_per_replicate_fits():
    y, X, codes = _simulated_batch(40, seed=11)
    batch = fit_reml(ClusterSums.from_data(y.reshape(5, 8, -1), X, codes))
    assert batch.beta.shape == (5, 8, 3) and batch.vcov.shape == (5, 8, 3, 3)
    assert batch.boundary.any() and not batch.boundary.all()  # both kinds of fit in the batch
    for r in range(40):
        single = fit_reml(ClusterSums.from_data(y[r], X, codes))
        i, j = divmod(r, 8)
        for name in ("beta", "vcov", "var_residual", "reml_loglik"):
            np.testing.assert_allclose(getattr(batch, name)[i, j], getattr(single, name),
                                       rtol=1e-10, err_msg=name)
        assert batch.var_cluster[i, j] == pytest.approx(single.var_cluster, rel=1e-8, abs=1e-12)
        assert batch.boundary[i, j] == single.boundary


def test_empty_cluster_is_ignored_in_a_batch():
    y, X, codes = _simulated_batch(3, seed=5)
    sums = ClusterSums.from_data(y, X, codes)
    # replicate 1 loses cluster 4 entirely: its sums become zero, n = 0
    emptied = {k: np.array(getattr(sums, k)) for k in _FIELDS}
    for k in _FIELDS:
        emptied[k][1, 4] = 0
    fit = fit_reml(ClusterSums(**emptied))
    keep = codes != 4
    dropped = fit_reml(ClusterSums.from_data(y[1, keep], X[keep], codes[keep], n_clusters=14))
    assert fit.n_clusters.tolist() == [14, 13, 14]
    assert fit.n_obs[1] == keep.sum()
    np.testing.assert_allclose(fit.beta[1], dropped.beta, rtol=1e-10)
    assert fit.var_cluster[1] == pytest.approx(dropped.var_cluster, rel=1e-8)
    # an extra empty slot changes nothing
    padded = fit_reml(ClusterSums.from_data(y[0], X, codes, n_clusters=20))
    np.testing.assert_allclose(padded.beta, fit.beta[0], rtol=1e-10)
    assert padded.reml_loglik == pytest.approx(fit.reml_loglik[0], rel=1e-12)


def test_from_data_sums():
    y, X, codes = load("few_clusters")
    sums = ClusterSums.from_data(y, X, codes)
    j = 3
    rows = codes == j
    assert sums.n[j] == rows.sum()
    np.testing.assert_allclose(sums.xtx[j], X[rows].T @ X[rows])
    np.testing.assert_allclose(sums.xty[j], X[rows].T @ y[rows])
    assert sums.yty[j] == pytest.approx(y[rows] @ y[rows])
    np.testing.assert_allclose(sums.xsum[j], X[rows].sum(axis=0))
    assert sums.ysum[j] == pytest.approx(y[rows].sum())


def test_rank_deficient_design_raises():
    y, X, codes = load("covariates")
    with pytest.raises(TrialstatsError, match="rank deficient"):
        fit_reml(ClusterSums.from_data(y, np.column_stack([X, X[:, 1] + X[:, 2]]), codes))
    with pytest.raises(TrialstatsError, match="rank deficient"):
        fit_reml(ClusterSums.from_data(y, np.column_stack([X, np.zeros(len(y))]), codes))
    yb, Xb, cb = _simulated_batch(4, seed=2)
    Xb = np.broadcast_to(Xb, (4, *Xb.shape)).copy()
    Xb[2, :, 2] = Xb[2, :, 1] * 3.0  # only replicate 2 is aliased
    with pytest.raises(TrialstatsError, match=r"1 replicate\(s\), first at batch index \(2,\)"):
        fit_reml(ClusterSums.from_data(yb, Xb, cb))


def test_unidentifiable_data_raise():
    y, X, codes = load("few_clusters")
    with pytest.raises(TrialstatsError, match="single observation"):
        fit_reml(ClusterSums.from_data(y, X, np.arange(len(y))))
    with pytest.raises(TrialstatsError, match="two non-empty clusters"):
        fit_reml(ClusterSums.from_data(y, X[:, [0, 2]], np.zeros(len(y), dtype=int)))
    with pytest.raises(TrialstatsError, match="exact linear function"):
        fit_reml(ClusterSums.from_data(X @ np.arange(1.0, 4.0), X, codes))
    with pytest.raises(TrialstatsError, match="must be finite"):
        ClusterSums.from_data(np.where(codes == 0, np.nan, y), X, codes)


def test_variance_ratio_beyond_the_search_range_is_flagged_not_raised():
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(8), 6)
    X = np.column_stack([np.ones(48), (np.arange(8) % 2)[codes]])
    y = rng.normal(0, 1e4, 8)[codes] + rng.normal(0, 1e-3, 48)  # gamma ~ 1e14
    fit = fit_reml(ClusterSums.from_data(y, X, codes))
    assert not bool(fit.converged)
    assert fit.gamma >= 1e4


def test_single_dataset_returns_scalars():
    fit = fit_reml(ClusterSums.from_data(*load("balanced")))
    assert np.ndim(fit.var_cluster) == 0 and isinstance(float(fit.var_cluster), float)
    assert fit.beta.shape == (3,)
