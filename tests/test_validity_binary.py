"""The binary-outcome validity study (``trialstats methods-check --outcome-type binary``).

The batch machinery (cluster-summary GEE, vectorised GLMM and cluster-level tests, Monte Carlo
rates) is checked against a direct loop over the same replicates, each trial drawn again here
from its own seed stream and analysed one at a time by the product's patient-level
functions (``gee_glm`` on every patient's 0/1 row, one ``fit_glmm`` per trial,
``practice_t_test``); the coverage targets against ``scipy.integrate.quad``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from trialstats.analysis.cluster_level import practice_t_test
from trialstats.analysis.gee_glm import gee_glm
from trialstats.analysis.glmm import fit_glmm
from trialstats.analysis.glmm_likelihood import binary_cluster_data
from trialstats.cli import main
from trialstats.contract import (
    ADJUSTED,
    FAY_GRAUBARD,
    KAUERMANN_CARROLL,
    MANCL_DEROUEN,
    UNADJUSTED,
)
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import draw_cluster_sizes, replicate_rng
from trialstats.simulation.validity_binary import (
    BINARY_COLUMNS,
    GLMM,
    BinaryDesign,
    BinarySettings,
    binary_designs,
    binary_validity_study,
    draw_binary_trials,
    gee_summaries,
    marginal_risks,
)

SETTINGS = BinarySettings(cluster_size=15, cv=0.6, odds_ratio=2.0)
SEED, REPS = 11, 60


def _direct_trial(design: BinaryDesign, scenario: int, r: int):
    """Trial ``r`` drawn again from its stream, as the module docstring says."""
    rng = replicate_rng(SEED, scenario, r)
    sizes = draw_cluster_sizes(rng, design.n_clusters, SETTINGS.cluster_size, SETTINGS.cv, 2)
    normal, uniform = rng.standard_normal(design.n_clusters), rng.random(design.n_clusters)
    arm = np.repeat([0, 1], design.n_clusters // 2)
    sigma = math.sqrt(design.icc * (math.pi**2 / 3) / (1 - design.icc))
    risk = special.expit(special.logit(design.prevalence) + design.log_or * arm + sigma * normal)
    return sizes, stats.binom.ppf(uniform, sizes, risk).astype(int), arm


def _patients(sizes, events, arm):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    y = np.concatenate([np.r_[np.ones(e), np.zeros(m - e)] for e, m in zip(events, sizes,
                                                                             strict=True)])
    return y, np.column_stack([np.ones(codes.size), arm[codes]]), codes


def _true_log_or_marginal(design: BinaryDesign) -> float:
    sigma = design.sigma

    def risk(shift):
        def integrand(z):
            return special.expit(special.logit(design.prevalence) + shift + sigma * z) \
                * stats.norm.pdf(z)
        return integrate.quad(integrand, -12, 12, epsabs=1e-13, epsrel=1e-12)[0]
    return float(special.logit(risk(design.log_or)) - special.logit(risk(0.0)))


def _direct_rejections(design: BinaryDesign, scenario: int, targets: dict) -> dict:
    """Rejections of each method's test of its target, trial by trial."""
    hits: dict[tuple[str, str], list[bool]] = {}
    for r in range(REPS):
        sizes, events, arm = _direct_trial(design, scenario, r)
        J = len(sizes)
        critical = {"J-2": stats.t.isf(0.025, J - 2), "z": stats.norm.isf(0.025)}
        fit = fit_glmm(binary_cluster_data(events, sizes, np.column_stack([np.ones(J), arm])))
        if np.isfinite(fit.se[1]):
            for method, df in (("between-within", J - 2), ("residual", sizes.sum() - 2),
                               ("z", np.inf)):
                t = abs(fit.beta[1] - targets["glmm"]) / fit.se[1]
                hits.setdefault((GLMM, method), []).append(t > stats.t.isf(0.025, df))
        if 0 < events[arm == 0].sum() < sizes[arm == 0].sum() and \
                0 < events[arm == 1].sum() < sizes[arm == 1].sum():
            try:
                gee = gee_glm(*_patients(sizes, events, arm), "binomial")
            except np.linalg.LinAlgError:  # diverged: no positive-definite bread
                gee = None
            if gee is not None and gee.converged:
                for label, vcov in ((MANCL_DEROUEN, gee.vcov_mancl_derouen),
                                    (KAUERMANN_CARROLL, gee.vcov_kauermann_carroll),
                                    (FAY_GRAUBARD, gee.vcov_fay_graubard)):
                    t = abs(gee.beta[1] - targets["gee"]) / np.sqrt(vcov[1, 1])
                    for method in ("J-2", "z"):
                        hits.setdefault((label, method), []).append(t > critical[method])
                    if label == FAY_GRAUBARD:
                        df = gee.fay_graubard_df(np.array([0.0, 1.0]))
                        hits.setdefault((label, "fay-graubard"), []).append(
                            t > stats.t.isf(0.025, df))
        estimate, se, _ = practice_t_test(events / sizes, arm)
        if se > 0:
            hits.setdefault((UNADJUSTED, "J-2"), []).append(
                abs(estimate - targets["rd"]) / se > critical["J-2"])
        if (events > 0).all():
            ratio = np.log(events / (sizes * events.sum() / sizes.sum()))
            estimate, se, _ = practice_t_test(ratio, arm)
            hits.setdefault((ADJUSTED, "J-2"), []).append(abs(estimate) / se > critical["J-2"])
    return {k: (int(np.sum(v)), len(v)) for k, v in hits.items()}


@pytest.fixture(scope="module")
def small_study() -> pd.DataFrame:
    return binary_validity_study(reps=REPS, seed=SEED, settings=SETTINGS, clusters=(6,),
                                 prevalences=(0.2,), iccs=(0.05,))


def test_type_i_error_and_coverage_equal_a_direct_loop_over_the_same_trials(small_study):
    design = binary_designs((6,), (0.2,), (0.05,))[0]
    null = _direct_rejections(design, 0, {"glmm": 0.0, "gee": 0.0, "rd": 0.0})
    shifted = BinaryDesign(6, 0.2, 0.05, math.log(2.0))
    p0, p1 = marginal_risks(shifted)
    alternative = _direct_rejections(
        shifted, 1, {"glmm": math.log(2.0), "gee": _true_log_or_marginal(shifted),
                     "rd": p1 - p0})
    assert list(small_study.columns) == list(BINARY_COLUMNS)
    assert len(small_study) == 12
    for row in small_study.itertuples():
        key = (row.analysis, row.method)
        rejected, analysed = null[key]
        assert (row.n_analysed, row.type_i_error) == (analysed, pytest.approx(
            rejected / analysed, abs=1e-12)), key
        assert row.type_i_error_mc_se == pytest.approx(
            math.sqrt(row.type_i_error * (1 - row.type_i_error) / analysed))
        if key == (ADJUSTED, "J-2"):
            assert math.isnan(row.coverage) and math.isnan(row.target)
            continue
        missed, analysed = alternative[key]
        assert row.n_analysed_coverage == analysed, key
        assert row.coverage == pytest.approx(1 - missed / analysed, abs=1e-12), key
    # the GEE rows analyse some trials of 6 small clusters but not all (an arm without events)
    assert 0 < small_study.loc[small_study["analysis"] == MANCL_DEROUEN, "n_analysed"].iloc[0]


def test_gee_from_cluster_summaries_is_gee_glm_on_the_patients():
    design = BinaryDesign(10, 0.1, 0.05, 0.4)
    events, sizes = draw_binary_trials(design, SETTINGS, reps=15, seed=3, scenario=0)
    X = np.column_stack([np.ones(10), design.arm])
    batch = gee_summaries(events, sizes, X)
    compared = 0
    for r in range(15):
        if not batch.analysed[r]:
            continue
        fit = gee_glm(*_patients(sizes[r], events[r].astype(int), design.arm), "binomial")
        assert fit.converged
        assert batch.beta[r] == pytest.approx(fit.beta, rel=1e-8)
        assert batch.alpha[r] == pytest.approx(fit.alpha, rel=1e-7)
        for label, vcov in ((MANCL_DEROUEN, fit.vcov_mancl_derouen),
                            (KAUERMANN_CARROLL, fit.vcov_kauermann_carroll),
                            (FAY_GRAUBARD, fit.vcov_fay_graubard)):
            np.testing.assert_allclose(batch.vcov[label][r], vcov, rtol=1e-7)
        assert batch.fg_df[r] == pytest.approx(fit.fay_graubard_df(np.eye(2)[1]), rel=1e-7)
        compared += 1
    assert compared >= 12


def test_marginal_risks_against_quadrature_and_the_icc_zero_case():
    design = BinaryDesign(10, 0.1, 0.05, math.log(1.5))
    p0, p1 = marginal_risks(design)
    shift = _true_log_or_marginal(design)
    assert special.logit(p1) - special.logit(p0) == pytest.approx(shift, abs=1e-10)
    # population-averaged odds ratios are attenuated towards 1
    assert 0 < shift < math.log(1.5)
    flat = marginal_risks(BinaryDesign(10, 0.1, 0.0, math.log(1.5)))
    assert flat == pytest.approx((0.1, special.expit(special.logit(0.1) + math.log(1.5))),
                                 abs=1e-14)


def test_bad_grids_and_settings_are_refused():
    with pytest.raises(TrialstatsError, match="even and at least 4"):
        binary_designs((5,), (0.1,), (0.05,))
    with pytest.raises(TrialstatsError, match="prevalences in"):
        binary_designs((6,), (1.2,), (0.05,))
    with pytest.raises(TrialstatsError, match="odds ratio"):
        BinarySettings(odds_ratio=1.0)
    with pytest.raises(TrialstatsError, match="two replicates"):
        binary_validity_study(reps=1, seed=1)


def test_cli_binary_writes_table_and_report_and_rerenders(tmp_path, capsys):
    out = tmp_path / "mc"
    assert main(["methods-check", "--outcome-type", "binary", "--out-dir", str(out), "--reps", "3",
                 "--seed", "4"]) == 0
    table = pd.read_csv(out / "validity_binary.csv")
    assert list(table.columns) == list(BINARY_COLUMNS)
    assert len(table) == 24 * 12 and (table["reps"] == 3).all()
    for name in ("validity_binary.html", "validity_binary.docx", "validity_binary.tex",
                 "validity_binary.md", "figures/validity_binary.svg"):
        assert (out / name).is_file()
    markdown = (out / "validity_binary.md").read_text()
    assert "Table 1. Type I error by number of clusters, prevalence and ICC" in markdown
    assert "FG dH" in markdown and "Fay MP, Graubard BI" in markdown
    assert "outside the type I error band" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["methods-check", "--outcome-type", "binary", "--out-dir", str(again),
                 "--from-table", str(out / "validity_binary.csv")]) == 0
    assert (again / "validity_binary.md").read_text() == markdown
    assert main(["methods-check", "--outcome-type", "binary", "--out-dir", str(again),
                 "--patient-reps", "5"]) == 2
    assert "do not apply to --outcome-type binary" in capsys.readouterr().err
    assert main(["methods-check", "--outcome-type", "binary", "--out-dir", str(again),
                 "--from-table", str(out / "validity_binary.csv"), "--reps", "4"]) == 2
