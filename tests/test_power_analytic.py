"""Tests for trialstats.power.analytic and trialstats.power.design_effect.

Reference numbers come from published worked examples (R package
documentation whose printed results are quoted beside the call that made
them), from base R run by hand (call and output quoted), from statsmodels, and
from closed forms. Where a reference was found by root finding with a loose
tolerance the test says so and uses that tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from trialstats.errors import TrialstatsError
from trialstats.power.analytic import power_continuous, power_means, solve_continuous
from trialstats.power.binary import (
    clusters_hayes_bennett,
    power_binary,
    power_proportions,
    solve_binary,
)
from trialstats.power.design_effect import (
    baseline_correlation,
    baseline_factor,
    design_effect,
)
from trialstats.power.solving import two_sided_power

Z_975 = stats.norm.ppf(0.975)
Z_80 = stats.norm.ppf(0.80)


def _upper_tail_t_power(ncp: float, df: float, alpha: float = 0.05) -> float:
    """Upper tail only, as R's power.t.test(strict = FALSE) and clusterPower compute it."""
    return float(stats.nct.sf(stats.t.isf(alpha / 2, df), df, ncp))


# --------------------------------------------------------------------------- published examples


class TestClusterPowerContinuous:
    """clusterPower (Kleinman, Moyer, Sakrejda et al.), cpa.normal help page, Examples.

    The package evaluates power with a noncentral t on 2(k - 1) df and
    ``sqrt(k m / (2 VIF)) d / sqrt(vart)`` as noncentrality, as here.
    """

    def test_clusters_needed(self):
        # cpa.normal(nsubjects=10, d=1, ICC=.1, vart=5)
        # "The result, showing nclusters of greater than 15, suggests 16 clusters per
        # condition should be used."
        res = solve_continuous(
            unknown="clusters_per_arm", cluster_size=10, icc=0.1, difference=1, sd=math.sqrt(5)
        ).iloc[0]
        assert 15 < res["clusters_per_arm_exact"] < 16
        assert res["clusters_per_arm"] == 16
        assert res["power"] >= 0.8

    def test_power_with_16_clusters(self):
        # cpa.normal(power = NA, nclusters= 16, nsubjects=10 ,d=1, sigma_b_sq=.5, vart=5)
        # "The result shows the power is 0.801766."  (ICC = 0.5 / 5 = 0.1)
        res = power_continuous(
            cluster_size=10, icc=0.1, clusters_per_arm=16, difference=1, sd=math.sqrt(5)
        ).iloc[0]
        assert res["df"] == 30
        assert res["design_effect"] == pytest.approx(1.9)
        # clusterPower counts the upper tail only; reproduce it to the printed 6 dp ...
        assert round(_upper_tail_t_power(res["noncentrality"], 30), 6) == 0.801766
        # ... and our two-sided power adds the lower tail, P(T < -c) = 9.05e-7.
        assert res["power"] == pytest.approx(0.801766, abs=1.5e-6)
        assert res["power"] > _upper_tail_t_power(res["noncentrality"], 30)

    def test_difference_in_differences(self):
        # crtpwr.2meanD(n = 100, d = 0.5, icc = 0.05, rho_c = 0.50, rho_s = 0.70, varw = 1)
        # "The result, m = 4.683358, suggests 5 clusters per condition should be used."
        # (also cpa.did.normal; variance factor DE * 2(1 - r), r from Teerenstra et al. 2012).
        # uniroot's default tol (.Machine$double.eps^0.25 = 1.2e-4) limits the printed
        # digits, so the comparison uses that tolerance.
        res = solve_continuous(
            unknown="clusters_per_arm",
            cluster_size=100,
            icc=0.05,
            effect=0.5,
            baseline="change",
            rho_c=0.5,
            rho_s=0.7,
        ).iloc[0]
        assert res["clusters_per_arm_exact"] == pytest.approx(4.683358, abs=1.3e-4)
        assert res["clusters_per_arm"] == 5
        r = (100 * 0.05 * 0.5 + 0.95 * 0.7) / (1 + 99 * 0.05)
        assert res["baseline_correlation"] == pytest.approx(r)
        assert res["baseline_factor"] == pytest.approx(2 * (1 - r))


class TestClusterPowerBinary:
    """clusterPower crtpwr.2prop help page, Examples (normal approximation, unpooled variance,
    Donner & Klar design effect); the same printed results are repeated on cpa.binary's page."""

    def test_clusters_needed(self):
        # crtpwr.2prop(n=10 ,p1=.1, p2=.2, icc=.1)
        # "The result, showimg m of greater than 37, suggests 38 clusters per condition
        # should be used."
        res = solve_binary(
            unknown="clusters_per_arm",
            cluster_size=10,
            icc=0.1,
            p_control=0.1,
            p_intervention=0.2,
            distribution="normal",
        ).iloc[0]
        assert 37 < res["clusters_per_arm_exact"] < 38
        assert res["clusters_per_arm"] == 38

    def test_minimum_detectable_proportion(self):
        # cpa.binary(nsubjects=10, nclusters = 38, p1=.1, p2=NA, ICC=.1, p1inc = FALSE)
        # "The result shows that p2 greater than 0.198922 can be detected with at least 80%
        # power." (normal approximation, as in crtpwr.2prop)
        res = solve_binary(
            unknown="p_intervention",
            cluster_size=10,
            icc=0.1,
            p_control=0.1,
            clusters_per_arm=38,
            distribution="normal",
        ).iloc[0]
        assert round(res["p_intervention"], 6) == 0.198922
        assert res["power"] == pytest.approx(0.8, abs=1e-9)

    def test_t_version_needs_more_clusters(self):
        # With cpa.binary's current default tdist=TRUE the t on 2(k-1) df is used; it can
        # only need more clusters than the normal approximation.
        kwargs = dict(cluster_size=10, icc=0.1, p_control=0.1, p_intervention=0.2)
        t_res = solve_binary(unknown="clusters_per_arm", distribution="t", **kwargs).iloc[0]
        assert t_res["clusters_per_arm"] > 38


class TestIndividuallyRandomisedLimit:
    """With m = 1 and ICC = 0 the design is the two-sample t test."""

    def test_r_power_t_test_power(self):
        # R, ?power.t.test Examples: power.t.test(n = 20, delta = 1) prints
        # "power = 0.8689528" (upper tail only). Run by hand in R 4.x:
        # power.t.test(n = 20, delta = 1, strict = TRUE)$power -> 0.868953027724586
        res = power_continuous(cluster_size=1, icc=0, clusters_per_arm=20, effect=1).iloc[0]
        assert res["power"] == pytest.approx(0.868953027724586, abs=1e-12)
        assert round(_upper_tail_t_power(res["noncentrality"], res["df"]), 7) == 0.8689528

    def test_r_power_t_test_n(self):
        # R, ?power.t.test Examples: power.t.test(power = .90, delta = 1) prints
        # "n = 22.02110". Run by hand with a tight tolerance:
        # power.t.test(power=.90, delta=1, tol=1e-13, strict=TRUE)$n -> 22.0210884263736
        res = solve_continuous(
            unknown="clusters_per_arm", target_power=0.9, cluster_size=1, icc=0, effect=1
        ).iloc[0]
        assert res["clusters_per_arm_exact"] == pytest.approx(22.0210884263736, abs=1e-8)
        # The printed 22.02110 carries uniroot's default tolerance (1.2e-4).
        assert res["clusters_per_arm_exact"] == pytest.approx(22.02110, abs=1.3e-4)
        assert res["clusters_per_arm"] == 23

    @pytest.mark.parametrize(
        ("nobs1", "ratio", "d"), [(20, 1.0, 0.5), (15, 2.0, 0.8), (30, 0.5, 0.3)]
    )
    def test_statsmodels_unequal_allocation(self, nobs1, ratio, d):
        expected = TTestIndPower().power(effect_size=d, nobs1=nobs1, alpha=0.05, ratio=ratio)
        got = power_means(d, nobs1, 1, 0.0, allocation_ratio=ratio)
        assert got == pytest.approx(expected, rel=1e-10)

    def test_statsmodels_cluster_means(self):
        # Equal cluster sizes: the analysis of cluster means is a two-sample t test on k
        # clusters per arm with standardised effect d * sqrt(m / DE).
        m, icc, d, k = 12.0, 0.04, 0.3, 9
        deff = 1 + (m - 1) * icc
        expected = TTestIndPower().power(effect_size=d * math.sqrt(m / deff), nobs1=k, alpha=0.05)
        assert power_means(d, k, m, icc) == pytest.approx(expected, rel=1e-10)


# --------------------------------------------------------------------------- closed forms


class TestDesignEffect:
    def test_equal_sizes_is_classic_formula(self):
        m = np.array([1, 5, 20, 100])
        np.testing.assert_allclose(design_effect(m, 0.05), 1 + (m - 1) * 0.05)

    def test_unequal_sizes_eldridge(self):
        # Eldridge, Ashby & Kerry (2006) eq. (2), with their typical UK general-practice
        # cv = 0.65: 1 + ((0.65**2 + 1) * 20 - 1) * 0.05 = 2.3725.
        assert float(design_effect(20, 0.05, 0.65)) == pytest.approx(2.3725, abs=1e-12)

    def test_m_equal_one_no_clustering(self):
        assert float(design_effect(1, 0.3)) == pytest.approx(1.0)

    def test_broadcasts(self):
        out = design_effect(np.array([[10.0], [20.0]]), np.array([0.01, 0.05, 0.1]), 0.5)
        assert out.shape == (2, 3)

    @pytest.mark.parametrize("icc", [-0.1, 1.0])
    def test_rejects_bad_icc(self, icc):
        with pytest.raises(TrialstatsError, match="ICC"):
            design_effect(10, icc)


class TestBaselineCorrelation:
    def test_matches_covariance_of_cluster_means(self):
        # Build the covariance matrix of one cluster's m baseline and m follow-up values
        # under the Teerenstra et al. (2012) model (total variance 1) and compute the
        # correlation of the two cluster means directly.
        m, icc, rho_c, rho_s = 7, 0.08, 0.6, 0.45
        within_time = icc * np.ones((m, m)) + (1 - icc) * np.eye(m)
        across_time = icc * rho_c * np.ones((m, m)) + (1 - icc) * rho_s * np.eye(m)
        sigma = np.block([[within_time, across_time], [across_time, within_time]])
        a = np.r_[np.ones(m) / m, np.zeros(m)]
        b = np.r_[np.zeros(m), np.ones(m) / m]
        r_direct = (a @ sigma @ b) / math.sqrt((a @ sigma @ a) * (b @ sigma @ b))
        assert float(baseline_correlation(m, icc, rho_c, rho_s)) == pytest.approx(r_direct)

    def test_limits(self):
        assert float(baseline_correlation(1, 0.1, 0.9, 0.3)) == pytest.approx(0.1 * 0.9 + 0.9 * 0.3)
        assert float(baseline_correlation(50, 0.0, 0.9, 0.3)) == pytest.approx(0.3)
        assert float(baseline_correlation(1e9, 0.1, 0.9, 0.3)) == pytest.approx(0.9, abs=1e-6)

    def test_factors(self):
        r = float(baseline_correlation(20, 0.05, 0.8, 0.5))
        assert float(baseline_factor(20, 0.05, 0.8, 0.5)) == pytest.approx(1 - r**2)
        assert float(baseline_factor(20, 0.05, 0.8, 0.5, "change")) == pytest.approx(2 * (1 - r))
        assert float(baseline_factor(20, 0.05, 0.8, 0.5, "none")) == 1.0

    def test_rejects_bad_method_and_correlation(self):
        with pytest.raises(TrialstatsError, match="baseline method"):
            baseline_factor(20, 0.05, 0.8, 0.5, "regression")
        with pytest.raises(TrialstatsError, match="autocorrelations"):
            baseline_correlation(20, 0.05, 1.2, 0.5)


class TestNormalApproximation:
    def test_clusters_formula(self):
        # Donner & Klar (2000) eq. (5.1): k = 2 (z_{a/2} + z_b)^2 DE / (m d^2) per arm.
        m, icc, cv, d = 25, 0.05, 0.6, 0.25
        deff = 1 + ((cv**2 + 1) * m - 1) * icc
        k_formula = 2 * (Z_975 + Z_80) ** 2 * deff / (m * d**2)
        res = solve_continuous(
            unknown="clusters_per_arm",
            cluster_size=m,
            icc=icc,
            cv=cv,
            effect=d,
            distribution="normal",
        ).iloc[0]
        # The formula ignores the far rejection tail (probability ~ 1e-6 here).
        assert res["clusters_per_arm_exact"] == pytest.approx(k_formula, rel=1e-5)
        assert res["clusters_per_arm"] == math.ceil(k_formula)
        assert np.isinf(res["df"])

    def test_mde_formula(self):
        m, icc, k = 30, 0.02, 12
        deff = 1 + (m - 1) * icc
        mde = (Z_975 + Z_80) * math.sqrt(2 * deff / (k * m))
        res = solve_continuous(
            unknown="effect",
            clusters_per_arm=k,
            cluster_size=m,
            icc=icc,
            sd=4.0,
            distribution="normal",
        ).iloc[0]
        assert res["effect"] == pytest.approx(mde, rel=1e-5)
        assert res["difference"] == pytest.approx(4.0 * res["effect"])

    def test_ancova_scales_clusters_by_one_minus_r_squared(self):
        # Teerenstra et al. (2012): ANCOVA needs a fraction 1 - r^2 of the clusters of a
        # follow-up-only analysis (exact for the normal approximation).
        common = dict(cluster_size=20, icc=0.05, effect=0.3, distribution="normal")
        plain = solve_continuous(unknown="clusters_per_arm", **common).iloc[0]
        adj = solve_continuous(
            unknown="clusters_per_arm", baseline="ancova", rho_c=0.8, rho_s=0.5, **common
        ).iloc[0]
        r = (20 * 0.05 * 0.8 + 0.95 * 0.5) / (1 + 19 * 0.05)
        assert adj["clusters_per_arm_exact"] / plain["clusters_per_arm_exact"] == pytest.approx(
            1 - r**2, rel=1e-9
        )

    def test_binary_individual_limit(self):
        # m = 1, ICC = 0: the two-proportion z test, n = z^2 (p0 q0 + p1 q1) / delta^2.
        p0, p1 = 0.5, 0.65
        n = (Z_975 + Z_80) ** 2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p1 - p0) ** 2
        res = solve_binary(
            unknown="clusters_per_arm",
            cluster_size=1,
            icc=0,
            p_control=p0,
            p_intervention=p1,
            distribution="normal",
        ).iloc[0]
        # The formula ignores the far rejection tail (probability ~ 1e-6 here).
        assert res["clusters_per_arm_exact"] == pytest.approx(n, rel=1e-5)


class TestHayesBennett:
    def test_no_between_cluster_variation(self):
        # k = 0: c = 1 + n_individual / m (Hayes & Bennett 1999, eq. 3).
        p0, p1, m = 0.2, 0.1, 50
        n = (Z_975 + Z_80) ** 2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p0 - p1) ** 2
        assert float(clusters_hayes_bennett(p0, p1, m, 0.0)) == pytest.approx(1 + n / m)

    def test_hand_calculation(self):
        # pi0 = 0.2, pi1 = 0.1, m = 50, k = 0.25, alpha 0.05, power 0.8:
        # 1 + 7.8489 * (0.0032 + 0.0018 + 0.0625 * 0.05) / 0.01 = 7.3772
        got = float(clusters_hayes_bennett(0.2, 0.1, 50, 0.25))
        assert got == pytest.approx(1 + (Z_975 + Z_80) ** 2 * 0.008125 / 0.01)
        assert got == pytest.approx(7.3772, abs=1e-4)

    def test_rejects_equal_proportions(self):
        with pytest.raises(TrialstatsError, match="differ"):
            clusters_hayes_bennett(0.2, 0.2, 50, 0.25)


# --------------------------------------------------------------------------- behaviour


class TestPower:
    def test_far_tail_underflow_is_not_nan(self):
        # scipy's nct.cdf returns NaN for this far lower tail; power must still be finite.
        got = two_sided_power(np.array([9.0, 12.0, 20.0]), 0.05, np.array([2.0, 38.0, 1000.0]))
        assert np.all(np.isfinite(got))
        assert got[2] == pytest.approx(1.0)

    def test_zero_effect_gives_alpha(self):
        assert float(two_sided_power(0.0, 0.05, 10)) == pytest.approx(0.05)
        assert float(two_sided_power(0.0, 0.05, np.inf)) == pytest.approx(0.05)

    def test_vectorised_grid(self):
        k = np.arange(5, 25)[:, None, None]
        m = np.array([10, 20, 40])[None, :, None]
        icc = np.array([0.01, 0.05])[None, None, :]
        grid = power_means(0.3, k, m, icc)
        assert grid.shape == (20, 3, 2)
        assert np.all(np.diff(grid, axis=0) > 0)
        assert np.all(np.diff(grid, axis=1) > 0)
        assert np.all(np.diff(grid, axis=2) < 0)
        assert grid[3, 1, 0] == pytest.approx(float(power_means(0.3, 8, 20, 0.01)))

    def test_frame_rows_and_columns(self):
        frame = power_continuous(
            cluster_size=[10, 20], icc=0.05, clusters_per_arm=[[8], [12]], effect=0.3
        )
        assert len(frame) == 4
        for col in ("power", "clusters_per_arm", "cluster_size", "effect", "design_effect", "df"):
            assert col in frame
        assert frame["k_control"].tolist() == [8, 8, 12, 12]

    def test_attrition_shrinks_analysed_cluster_size(self):
        lossy = power_continuous(
            cluster_size=40, attrition=0.25, icc=0.05, clusters_per_arm=10, effect=0.3
        ).iloc[0]
        full = power_continuous(cluster_size=30, icc=0.05, clusters_per_arm=10, effect=0.3).iloc[0]
        assert lossy["cluster_size_analysed"] == 30
        assert lossy["power"] == pytest.approx(full["power"])
        assert lossy["n_total"] == 600

    def test_raw_and_standardised_effect_agree(self):
        raw = power_continuous(cluster_size=20, icc=0.05, clusters_per_arm=10, difference=3, sd=10)
        std = power_continuous(cluster_size=20, icc=0.05, clusters_per_arm=10, effect=0.3)
        assert raw["power"].iloc[0] == pytest.approx(std["power"].iloc[0])

    def test_k_intervention_matches_ratio(self):
        a = power_means(0.3, 10, 20, 0.05, allocation_ratio=1.5)
        b = power_continuous(
            cluster_size=20, icc=0.05, clusters_per_arm=10, k_intervention=15, effect=0.3
        )
        assert b["power"].iloc[0] == pytest.approx(float(a))

    def test_binary_frame(self):
        frame = power_binary(
            p_control=0.3, p_intervention=0.2, cluster_size=30, icc=0.02, clusters_per_arm=15
        )
        row = frame.iloc[0]
        assert row["difference"] == pytest.approx(-0.1)
        assert row["power"] == pytest.approx(float(power_proportions(0.3, 0.2, 15, 30, 0.02)))


class TestSolveSelfConsistency:
    @pytest.mark.parametrize("distribution", ["t", "normal"])
    @pytest.mark.parametrize("ratio", [1.0, 1.5, 0.5])
    def test_clusters_smallest_integer(self, distribution, ratio):
        kwargs = dict(
            cluster_size=15,
            icc=0.05,
            cv=0.4,
            effect=0.35,
            attrition=0.2,
            baseline="ancova",
            rho_c=0.7,
            rho_s=0.5,
            distribution=distribution,
        )
        res = solve_continuous(unknown="clusters_per_arm", allocation_ratio=ratio, **kwargs).iloc[0]
        k_c, k_i = res["k_control"], res["k_intervention"]
        assert k_c == int(k_c) and k_i == int(k_i)
        assert k_i == math.ceil(ratio * k_c - 1e-9)
        assert res["power"] >= 0.8
        fewer = power_continuous(
            clusters_per_arm=k_c - 1, k_intervention=math.ceil(ratio * (k_c - 1) - 1e-9), **kwargs
        ).iloc[0]
        assert fewer["power"] < 0.8
        exact = power_continuous(
            clusters_per_arm=res["clusters_per_arm_exact"], allocation_ratio=ratio, **kwargs
        ).iloc[0]
        assert exact["power"] == pytest.approx(0.8, abs=1e-9)

    def test_cluster_size(self):
        kwargs = dict(icc=0.05, clusters_per_arm=12, effect=0.3, attrition=0.1)
        res = solve_continuous(unknown="cluster_size", **kwargs).iloc[0]
        assert res["cluster_size"] == math.ceil(res["cluster_size_exact"])
        assert res["power"] >= 0.8
        at_exact = power_continuous(cluster_size=res["cluster_size_exact"], **kwargs).iloc[0]
        assert at_exact["power"] == pytest.approx(0.8, abs=1e-9)
        below = power_continuous(cluster_size=res["cluster_size"] - 1, **kwargs).iloc[0]
        assert below["power"] < 0.8

    def test_effect(self):
        res = solve_continuous(
            unknown="effect", clusters_per_arm=10, cluster_size=20, icc=0.05, target_power=0.9
        ).iloc[0]
        assert res["power"] == pytest.approx(0.9, abs=1e-9)
        assert np.isnan(res["difference"])

    def test_power_passthrough(self):
        res = solve_continuous(
            unknown="power", clusters_per_arm=10, cluster_size=20, icc=0.05, effect=0.3
        ).iloc[0]
        assert res["power"] == pytest.approx(float(power_means(0.3, 10, 20, 0.05)))

    def test_vectorised_solve_matches_scalar(self):
        iccs = np.array([0.01, 0.05, 0.1])
        frame = solve_continuous(unknown="clusters_per_arm", cluster_size=20, icc=iccs, effect=0.3)
        for icc, k in zip(iccs, frame["clusters_per_arm_exact"], strict=True):
            single = solve_continuous(
                unknown="clusters_per_arm", cluster_size=20, icc=icc, effect=0.3
            ).iloc[0]
            assert k == pytest.approx(single["clusters_per_arm_exact"])
        assert frame["clusters_per_arm_exact"].is_monotonic_increasing

    def test_already_powered_at_minimum(self):
        res = solve_continuous(
            unknown="clusters_per_arm", cluster_size=50, icc=0.0, effect=2.0
        ).iloc[0]
        assert res["clusters_per_arm"] == 2
        assert res["power"] >= 0.8

    def test_binary_cluster_size_and_decrease(self):
        res = solve_binary(
            unknown="cluster_size",
            p_control=0.3,
            p_intervention=0.2,
            icc=0.01,
            clusters_per_arm=20,
        ).iloc[0]
        assert res["power"] >= 0.8
        lower = solve_binary(
            unknown="p_intervention",
            p_control=0.3,
            icc=0.01,
            clusters_per_arm=20,
            cluster_size=40,
            direction="decrease",
        ).iloc[0]
        assert lower["p_intervention"] < 0.3
        assert lower["power"] == pytest.approx(0.8, abs=1e-9)


class TestImpossibleAndInvalid:
    def test_cluster_size_cannot_reach_target(self):
        # With 5 clusters per arm and ICC 0.1, power is bounded as m grows.
        with pytest.raises(TrialstatsError, match=r"only approaches 0\.\d{4}"):
            solve_continuous(unknown="cluster_size", icc=0.1, clusters_per_arm=5, effect=0.3)

    def test_bound_is_the_large_cluster_limit(self):
        # The reported bound agrees with the power at an enormous cluster size.
        with pytest.raises(TrialstatsError) as info:
            solve_continuous(
                unknown="cluster_size",
                icc=0.1,
                cv=0.5,
                clusters_per_arm=5,
                effect=0.3,
                baseline="ancova",
                rho_c=0.5,
                rho_s=0.3,
            )
        bound = float(str(info.value).split("approaches ")[1].split(" ")[0])
        huge = power_means(0.3, 5, 1e9, 0.1, cv=0.5, baseline="ancova", rho_c=0.5, rho_s=0.3)
        assert bound == pytest.approx(float(huge), abs=1e-4)

    def test_binary_cluster_size_cannot_reach_target(self):
        with pytest.raises(TrialstatsError, match="only approaches"):
            solve_binary(
                unknown="cluster_size",
                p_control=0.3,
                p_intervention=0.25,
                icc=0.1,
                clusters_per_arm=4,
            )

    def test_binary_bound_is_the_large_cluster_limit(self):
        # As for continuous outcomes: the bound in the message (solving.limit_power) agrees
        # with the binary formula at an enormous cluster size.
        with pytest.raises(TrialstatsError) as info:
            solve_binary(unknown="cluster_size", p_control=0.3, p_intervention=0.25, icc=0.1,
                         cv=0.5, clusters_per_arm=4)
        bound = float(str(info.value).split("approaches ")[1].split(" ")[0])
        huge = power_proportions(0.3, 0.25, 4, 1e9, 0.1, cv=0.5)
        assert bound == pytest.approx(float(huge), abs=1e-4)

    def test_binary_no_detectable_proportion(self):
        with pytest.raises(TrialstatsError, match="No intervention proportion"):
            solve_binary(
                unknown="p_intervention",
                p_control=0.99,
                icc=0.2,
                clusters_per_arm=2,
                cluster_size=5,
            )

    def test_effect_given_twice(self):
        with pytest.raises(TrialstatsError, match="not both"):
            power_continuous(
                cluster_size=10, icc=0.05, clusters_per_arm=10, effect=0.3, difference=1, sd=3
            )

    def test_unknown_supplied(self):
        with pytest.raises(TrialstatsError, match="leave it out"):
            solve_continuous(
                unknown="clusters_per_arm",
                clusters_per_arm=5,
                cluster_size=10,
                icc=0.05,
                effect=0.3,
            )

    def test_missing_input(self):
        with pytest.raises(TrialstatsError, match="needed"):
            solve_continuous(unknown="clusters_per_arm", icc=0.05, effect=0.3)

    def test_target_not_above_alpha(self):
        with pytest.raises(TrialstatsError, match="exceed"):
            solve_continuous(
                unknown="clusters_per_arm",
                target_power=0.04,
                cluster_size=10,
                icc=0.05,
                effect=0.3,
            )

    def test_too_few_clusters_for_t(self):
        with pytest.raises(TrialstatsError, match="degrees of freedom"):
            power_means(0.3, 1, 10, 0.05)

    def test_bad_attrition(self):
        with pytest.raises(TrialstatsError, match="Attrition"):
            power_means(0.3, 10, 10, 0.05, attrition=1.0)

    def test_bad_unknown(self):
        with pytest.raises(TrialstatsError, match="Unknown quantity"):
            solve_continuous(unknown="icc", icc=0.05)
