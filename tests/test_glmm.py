"""Random-intercept GLMMs by adaptive quadrature and the standardised marginal RD / RR.

References: tests/fixtures/r/make_glmm_fixtures.R (lme4 1.1.31; glmer at nAGQ 1, 5, 10, 15, 25,
glmer.nb, and the standardisation computed in R with integrate() and numDeriv); each R call is
stored next to its numbers in tests/fixtures/glmm/reference.json. The negative binomial is checked
against the exact likelihood by brute-force integration (scipy.integrate.quad per cluster).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from trialstats.analysis import glmm, glmm_likelihood
from trialstats.analysis.marginal import marginal_effects
from trialstats.errors import TrialstatsError

FIXTURES = Path(__file__).parent / "fixtures" / "glmm"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())["datasets"]
FAMILY = {"binomial": "binomial", "poisson": "poisson", "negative binomial": "negative-binomial"}
BINARY = ["few_clusters", "unequal", "binary_baseline", "rare_boundary"]
GLMER_FITS = [
    (name, key)
    for name in [*BINARY, "poisson", "few_clusters_aggregated"]
    for key in REFERENCE[name]["fits"]
]


def frame(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / f"{name}.csv")


def design(name: str) -> tuple[np.ndarray, list[str]]:
    """lme4's model matrix of the fixture: intercept plus the named columns."""
    names = next(iter(REFERENCE[name]["fits"].values()))["coef_names"]
    d = frame(name)
    return np.column_stack([np.ones(len(d))] + [d[c] for c in names[1:]]), names


def load(name: str) -> glmm_likelihood.GlmmData:
    d = frame(name)
    X, _ = design(name)
    offset = np.log(d["exposure"]) if "exposure" in d else None
    trials = d["trials"] if "trials" in d else None
    family = FAMILY[REFERENCE[name]["family"]]
    return glmm_likelihood.glmm_data(d["y"], X, d["cluster"], family, trials=trials, offset=offset)


def saturated_loglik(data: glmm_likelihood.GlmmData) -> float:
    """Log-likelihood of the saturated GLM (0 for 0/1 rows): lme4 leaves it out at nAGQ > 1."""
    y, n = data.y, data.trials
    if data.family == "poisson":
        return float(np.sum(stats.poisson.logpmf(y, y)))
    return float(np.sum(stats.binom.logpmf(y, n, y / n)))


_FITS: dict[tuple[str, int], glmm.GlmmFit] = {}


def fitted(name: str, n_agq: int) -> glmm.GlmmFit:
    if (name, n_agq) not in _FITS:
        _FITS[name, n_agq] = glmm.fit_glmm(load(name), n_agq)
    return _FITS[name, n_agq]


def n_agq_of(key: str) -> int:
    return int(key.removeprefix("agq"))


@pytest.mark.parametrize(("name", "key"), GLMER_FITS)
def test_estimates_match_glmer(name, key):
    ref = REFERENCE[name]["fits"][key]
    fit = fitted(name, n_agq_of(key))
    assert fit.converged
    np.testing.assert_allclose(fit.beta, ref["beta"], rtol=1e-5)
    if name == "rare_boundary":
        assert fit.boundary and fit.sigma == 0.0
        assert abs(fit.sigma**2 - ref["sigma"] ** 2) < 1e-6
    else:
        assert not fit.boundary
        np.testing.assert_allclose(fit.sigma**2, ref["sigma"] ** 2, rtol=1e-4)


@pytest.mark.parametrize(("name", "key"), GLMER_FITS)
def test_standard_errors_match_glmer(name, key):
    """SEs against vcov() (twice the inverse finite-difference Hessian over theta and beta).

    glmer's deviance at nAGQ = 1 is not smooth to the last digits, so its two finite-difference
    Hessians (lme4's deriv12 behind vcov(), numDeriv's Richardson) can disagree; where they differ
    by more than 1e-4 the SE must lie between the two (widened by 1e-4), else within 1e-4 of vcov().
    """
    ref = REFERENCE[name]["fits"][key]
    se = fitted(name, n_agq_of(key)).se
    vcov_se, numderiv_se = np.array(ref["se"]), np.array(ref["se_numderiv"])
    agree = np.abs(vcov_se / numderiv_se - 1.0) <= 1e-4
    np.testing.assert_allclose(se[agree], vcov_se[agree], rtol=1e-4)
    low = np.minimum(vcov_se, numderiv_se) * (1 - 1e-4)
    high = np.maximum(vcov_se, numderiv_se) * (1 + 1e-4)
    assert np.all((se >= low) & (se <= high))


def test_glmer_hessian_disagreement_is_real():
    """The unequal trial at nAGQ = 1: the two R Hessians disagree (age SE 0.041 vs 0.059)."""
    ref = REFERENCE["unequal"]["fits"]["agq1"]
    assert abs(ref["se"][2] / ref["se_numderiv"][2] - 1) > 0.3
    np.testing.assert_allclose(fitted("unequal", 1).se[2], ref["se_numderiv"][2], rtol=1e-4)


@pytest.mark.parametrize(("name", "key"), GLMER_FITS)
def test_loglik_matches_glmer(name, key):
    """logLik() of glmer; at nAGQ > 1 lme4 reports it relative to the saturated model."""
    ref = REFERENCE[name]["fits"][key]
    fit = fitted(name, n_agq_of(key))
    shift = saturated_loglik(load(name)) if n_agq_of(key) > 1 else 0.0
    assert fit.loglik - shift == pytest.approx(ref["loglik"], abs=1e-6)


def test_events_and_trials_rows_equal_patient_rows():
    single = fitted("few_clusters", 15)
    agg = frame("few_clusters_aggregated")
    clustered = glmm_likelihood.binary_cluster_data(
        agg["y"], agg["trials"], np.column_stack([np.ones(len(agg)), agg["arm"]])
    )
    fit = glmm.fit_glmm(clustered, 15)
    np.testing.assert_allclose(fit.beta, single.beta, rtol=1e-7)
    np.testing.assert_allclose(fit.se, single.se, rtol=1e-6)
    assert fit.sigma == pytest.approx(single.sigma, rel=1e-7)
    log_choose = np.sum(
        special.gammaln(agg["trials"] + 1)
        - special.gammaln(agg["y"] + 1)
        - special.gammaln(agg["trials"] - agg["y"] + 1)
    )
    assert fit.loglik == pytest.approx(single.loglik + log_choose, abs=1e-8)


def test_replicates_are_fitted_as_one_by_one():
    rng = np.random.default_rng(2026)
    sizes = rng.integers(5, 60, 12)
    arm = np.arange(12) % 2
    X = np.column_stack([np.ones(12), arm])
    b = rng.normal(0, 0.5, (6, 12))
    events = rng.binomial(sizes, special.expit(-1.0 + 0.4 * arm + b))
    events[0] = rng.binomial(sizes, 0.02)  # a rare-outcome replicate, likely at the boundary
    batch = glmm.fit_glmm(glmm_likelihood.binary_cluster_data(events.reshape(2, 3, 12), sizes, X))
    assert batch.beta.shape == (2, 3, 2) and batch.sigma.shape == (2, 3)
    for r in range(6):
        one = glmm.fit_glmm(glmm_likelihood.binary_cluster_data(events[r], sizes, X))
        i, j = divmod(r, 3)
        np.testing.assert_allclose(batch.beta[i, j], one.beta, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(batch.se[i, j], one.se, rtol=1e-7)
        assert batch.sigma[i, j] == pytest.approx(one.sigma, rel=1e-8, abs=1e-12)
        assert batch.boundary[i, j] == one.boundary and batch.converged[i, j]


def test_one_design_per_replicate_fits_each_as_alone():
    """Replicates with their own designs (the imputation models of multiple imputation):
    the batched Poisson fit with an offset equals each replicate fitted on its own."""
    rng = np.random.default_rng(11)
    codes = np.repeat(np.arange(10), rng.integers(4, 15, 10))
    n = codes.size
    X = np.stack([np.column_stack([np.ones(n), codes % 2, rng.normal(0, 1, n)])
                  for _ in range(4)])
    offset = np.log(rng.uniform(2, 12, n))
    y = rng.poisson(np.exp(offset + 0.3 * X[:, :, 2] - 1.0 + rng.normal(0, 0.4, 10)[codes]))
    batch = glmm.fit_glmm(glmm_likelihood.glmm_data(y, X, codes, "poisson", offset=offset))
    assert batch.beta.shape == (4, 3)
    for r in range(4):
        one = glmm.fit_glmm(glmm_likelihood.glmm_data(y[r], X[r], codes, "poisson",
                                                      offset=offset))
        np.testing.assert_allclose(batch.beta[r], one.beta, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(batch.se[r], one.se, rtol=1e-6)
        assert batch.sigma[r] == pytest.approx(one.sigma, rel=1e-7, abs=1e-12)
        assert batch.converged[r] and one.converged
    with pytest.raises(TrialstatsError, match="one entry"):
        glmm_likelihood.glmm_data(y[:2], X, codes, "poisson")


@pytest.mark.parametrize("n_agq", [1, 15])
@pytest.mark.parametrize("name", ["unequal", "poisson", "negbin"])
def test_gradient_is_exact_for_the_approximation(name, n_agq):
    data = glmm_likelihood.flatten(load(name))
    rng = np.random.default_rng(7)
    point = np.r_[
        fitted(name, 15).beta,
        0.7,
        [np.log(1.5)] if name == "negbin" else [],
    ] + rng.normal(0, 0.05, data.n_params)
    _, grad, _ = glmm_likelihood.loglik_and_gradient(data, point[None, :], n_agq)
    numeric = []
    for i in range(point.size):
        step = np.zeros_like(point)
        step[i] = 1e-5
        up, _, _ = glmm_likelihood.loglik_and_gradient(data, (point + step)[None, :], n_agq)
        down, _, _ = glmm_likelihood.loglik_and_gradient(data, (point - step)[None, :], n_agq)
        numeric.append((up[0] - down[0]) / 2e-5)
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-6, atol=1e-5)


def test_default_nodes_are_converged():
    """Doubling the default nodes changes nothing that matters; Laplace does (module notes)."""
    for name in [*BINARY, "poisson", "negbin"]:
        default = fitted(name, glmm.DEFAULT_N_AGQ)
        double = glmm.fit_glmm(load(name), 2 * glmm.DEFAULT_N_AGQ)
        for attr in ("beta", "se", "sigma"):
            np.testing.assert_allclose(
                getattr(double, attr), getattr(default, attr), rtol=1e-7, atol=1e-12
            )
    laplace, default = fitted("few_clusters", 1), fitted("few_clusters", glmm.DEFAULT_N_AGQ)
    assert abs(laplace.sigma / default.sigma - 1) > 5e-3


def exact_nb_loglik(data: glmm_likelihood.GlmmData, beta, sigma, theta) -> float:
    """The NB GLMM log-likelihood with each cluster's integral done by scipy.integrate.quad."""
    eta0 = data.X @ beta + data.offset
    total = 0.0
    for j in range(data.starts.size):
        rows = data.cluster == j

        def log_joint(z, y=data.y[rows], eta=eta0[rows]):
            mu = np.exp(eta + sigma * z)
            logpmf = stats.nbinom.logpmf(y, theta, theta / (theta + mu))
            return np.sum(logpmf) + stats.norm.logpdf(z)

        mode = optimize.minimize_scalar(lambda z, f=log_joint: -f(z), bounds=(-10, 10)).x
        peak = log_joint(mode)
        value, _ = integrate.quad(
            lambda z, f=log_joint, top=peak: np.exp(f(z) - top),
            mode - 15, mode + 15, epsabs=0, epsrel=1e-13, limit=200, points=[mode],
        )
        total += peak + np.log(value)
    return total


def test_negative_binomial_maximises_the_exact_likelihood():
    data = load("negbin")
    fit = fitted("negbin", glmm.DEFAULT_N_AGQ)
    assert fit.converged and not fit.boundary
    params = np.r_[fit.beta, fit.sigma, np.log(fit.theta)]

    def exact(par):
        return exact_nb_loglik(data, par[:-2], par[-2], np.exp(par[-1]))

    assert fit.loglik == pytest.approx(exact(params), abs=1e-7)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = 1e-4
        slope = (exact(params + step) - exact(params - step)) / 2e-4
        assert abs(slope) < 1e-4


def test_negative_binomial_gap_to_glmer_nb():
    """glmer.nb maximises its own Laplace-type approximation (PIRLS with Fisher weights, not the
    observed curvature of the non-canonical NB log link), so it is not the ML fit. The gap on
    this trial: log rate ratio 3e-3 relative, theta 2e-4, SEs 2e-3."""
    ref = REFERENCE["negbin"]["fits"]["glmer_nb"]
    fit = fitted("negbin", glmm.DEFAULT_N_AGQ)
    beta_gap = np.max(np.abs(fit.beta / ref["beta"] - 1))
    theta_gap = abs(fit.theta / ref["theta"] - 1)
    se_gap = np.max(np.abs(fit.se / ref["se"] - 1))
    assert 1e-4 < beta_gap < 5e-3
    assert theta_gap < 1e-3
    assert se_gap < 5e-3


@pytest.mark.parametrize("name", BINARY)
def test_sigma_profile_interval_matches_lme4(name):
    """lme4's confint(method = "profile") interpolates a spline through its profile: 1e-3."""
    data, fit = load(name), fitted(name, 15)
    low, high = glmm.sigma_profile_interval(data, fit)
    ref_low, ref_high = REFERENCE[name]["sigma_profile_ci_agq15"]
    assert low == pytest.approx(ref_low, rel=1e-3, abs=1e-6)
    assert high == pytest.approx(ref_high, rel=1e-3)
    icc = glmm.latent_icc(np.array([low, fit.sigma, high]))
    assert np.all(np.diff(icc) >= 0) and icc[1] == pytest.approx(
        fit.sigma**2 / (fit.sigma**2 + np.pi**2 / 3)
    )


@pytest.mark.parametrize("name", BINARY)
def test_marginal_effects_match_r_standardisation(name):
    ref = REFERENCE[name]["marginal"]
    X, names = design(name)
    table = marginal_effects(fitted(name, 15), X, names.index("arm")).set_index("effect_measure")
    rd, rr = table.loc["risk difference"], table.loc["risk ratio"]
    assert rd["risk_control"] == pytest.approx(ref["p0"], rel=1e-5)
    assert rd["risk_intervention"] == pytest.approx(ref["p1"], rel=1e-5)
    assert rd["estimate"] == pytest.approx(ref["rd"], rel=1e-5)
    assert np.log(rr["estimate"]) == pytest.approx(ref["log_rr"], rel=1e-5)
    assert rd["se"] == pytest.approx(ref["rd_se"], rel=1e-4)
    assert rr["se"] == pytest.approx(ref["log_rr_se"], rel=1e-4)
    z = stats.norm.ppf(0.975)
    assert rd["ci_low"] == pytest.approx(rd["estimate"] - z * rd["se"])
    assert rr["ci_high"] == pytest.approx(rr["estimate"] * np.exp(z * rr["se"]))


def test_bad_input_is_a_trialstats_error():
    X = np.column_stack([np.ones(4), [0, 0, 1, 1]])
    with pytest.raises(TrialstatsError, match="family"):
        glmm_likelihood.glmm_data([0, 1, 0, 1], X, [1, 1, 2, 2], "gaussian")
    with pytest.raises(TrialstatsError, match="trials"):
        glmm_likelihood.glmm_data([0, 2, 0, 1], X, [1, 1, 2, 2], "binomial")
    with pytest.raises(TrialstatsError, match="whole numbers"):
        glmm_likelihood.glmm_data([0, -1, 0, 1], X, [1, 1, 2, 2], "poisson")
    with pytest.raises(TrialstatsError, match="two clusters"):
        glmm_likelihood.glmm_data([0, 1, 0, 1], X, [1, 1, 1, 1], "binomial")
    with pytest.raises(TrialstatsError, match="rank"):
        glmm_likelihood.glmm_data([0, 1, 0, 1], np.ones((4, 2)), [1, 1, 2, 2], "binomial")
    with pytest.raises(TrialstatsError, match="quadrature"):
        glmm.fit_glmm(glmm_likelihood.glmm_data([0, 1, 0, 1], X, [1, 1, 2, 2], "binomial"), 0)


def test_separated_replicates_are_flagged_not_hidden():
    """No events in one arm sends its log odds to minus infinity: not converged, no crash."""
    X = np.column_stack([np.ones(10), np.arange(10) % 2])
    events = np.array([[0, 3, 0, 2, 0, 4, 0, 1, 0, 2], [1, 3, 0, 2, 2, 4, 0, 1, 1, 2]])
    fit = glmm.fit_glmm(glmm_likelihood.binary_cluster_data(events, np.full(10, 20), X))
    assert list(fit.converged) == [False, True]
    assert fit.beta[0, 0] < -10


def test_marginal_interval_with_t_reference():
    X, names = design("few_clusters")
    fit = fitted("few_clusters", 15)
    z_table = marginal_effects(fit, X, names.index("arm"))
    t_table = marginal_effects(fit, X, names.index("arm"), df=8, level=0.9)
    np.testing.assert_allclose(t_table["estimate"], z_table["estimate"])
    half = t_table["ci_high"].iloc[0] - t_table["estimate"].iloc[0]
    assert half == pytest.approx(stats.t.ppf(0.95, 8) * t_table["se"].iloc[0])
    with pytest.raises(TrialstatsError, match="binomial"):
        marginal_effects(fitted("poisson", 15), X, 1)
