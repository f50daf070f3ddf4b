"""Design vocabulary and analytic power for any design (trialstats.power.designs/design_power).

Reference values: tests/fixtures/designs/reference.json, made by
tests/fixtures/designs/make_design_fixtures.R from swCRTdesign 4.0 ``swPwr`` and SteppedPower
0.3.4 ``glsPower``/``VarClosed_Kasza`` on their documented examples (each case keeps its R
call); and the closed forms of Hussey & Hughes (2007) and Woertman et al. (2013), written
out below.

How each package's parameters map onto ours (module docstring of design_power):
swCRTdesign ``tau, gamma, zeta, sigma`` and SteppedPower ``tau, gamma, psi, sigma`` are the SDs
of the cluster, cluster-period, persistent-patient and residual effects, so with
``s2 = tau^2 + gamma^2 + zeta^2 + sigma^2``: ICC ``= (tau^2 + gamma^2) / s2``,
CAC ``= tau^2 / (tau^2 + gamma^2)``, IAC ``= zeta^2 / (zeta^2 + sigma^2)``, effect
``= (mu1 - mu0) / sqrt(s2)``, decay ``= AR``. Binary: swCRTdesign's ``sigma^2 = pbar (1 - pbar)``
is our default; SteppedPower's per-arm ``p (1 - p)`` is ``binary_variance="arm"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trialstats.cli import main
from trialstats.errors import TrialstatsError
from trialstats.power.analytic import power_continuous
from trialstats.power.binary import power_binary
from trialstats.power.design_power import (
    Components,
    components_from_correlations,
    design_power,
    solve_design,
    treatment_variance,
    wald_power,
)
from trialstats.power.designs import (
    Design,
    design_from_table,
    grid_text,
    standard_design,
)

FIXTURE = Path(__file__).parent / "fixtures" / "designs" / "reference.json"
REFERENCE = json.loads(FIXTURE.read_text())
CASES = {case["id"]: case for case in REFERENCE["cases"]}


def _matrix(rows: list) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _per_cluster_design(case: dict) -> Design:
    """The case's layout with every cluster as its own sequence (as the peers expand it)."""
    x = _matrix(case["treatment"])
    return Design(name=case["id"], treatment=x, clusters=np.ones(len(x), dtype=int),
                  periods=tuple(str(t) for t in range(1, x.shape[1] + 1)))


def _binary_residual(case: dict, x: np.ndarray) -> np.ndarray | float:
    p0, p1 = case["mu0"], case["mu1"]
    if case["binary_variance"] == "arm":
        p = np.where(x == 1, p1, p0)
        return p * (1 - p)
    pbar = (p0 + p1) / 2
    return pbar * (1 - pbar)


def _peer_components(case: dict) -> Components:
    sigma2 = 0.0 if case["family"] == "binomial" else case["sigma"] ** 2
    return Components(cluster=case["tau"] ** 2, cluster_period=case["gamma"] ** 2,
                      individual=case["zeta"] ** 2, residual=sigma2, decay=case["decay"])


def _df(case: dict, design: Design) -> float:
    measured = np.any(~np.isnan(design.treatment) & (_matrix(case["sizes"]) > 0), axis=0)
    return design.n_clusters - (measured.sum() + 1)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_gls_variance_and_power_equal_the_peers(case_id: str) -> None:
    """From the peer's own variance components: variance 1e-8 relative, power 1e-6 absolute."""
    case = CASES[case_id]
    design = _per_cluster_design(case)
    residual = None
    if case["family"] == "binomial":
        residual = np.broadcast_to(_binary_residual(case, design.treatment),
                                   design.treatment.shape)
    variance = treatment_variance(design, _peer_components(case), _matrix(case["sizes"]),
                                  residual=residual)
    assert variance == pytest.approx(case["variance"], rel=1e-8)
    df = _df(case, design)
    if case["df"] != "z":
        assert df == case["df_value"]
    power = wald_power(abs(case["mu1"] - case["mu0"]) / math.sqrt(variance), 0.05, df,
                       case["df"])
    assert power == pytest.approx(case["power"], abs=1e-6)


def _correlations(case: dict) -> dict:
    """The case in our words: ICC, CAC, IAC, decay and effect (or p0, p1)."""
    tau2, gamma2, zeta2 = case["tau"] ** 2, case["gamma"] ** 2, case["zeta"] ** 2
    if case["family"] == "binomial":
        pbar = (case["mu0"] + case["mu1"]) / 2
        within = pbar * (1 - pbar)
        outcome = {"p0": case["mu0"], "p1": case["mu1"],
                   "binary_variance": case["binary_variance"]}
    else:
        within = zeta2 + case["sigma"] ** 2
        outcome = {"effect": (case["mu1"] - case["mu0"]) / math.sqrt(within + tau2 + gamma2)}
    between = tau2 + gamma2
    return {
        "icc": between / (between + within),
        "cluster_autocorr": tau2 / between if between > 0 else 1.0,
        "individual_autocorr": zeta2 / within,
        "decay": case["decay"],
        "df_method": case["df"],
        **outcome,
    }


MAPPED = [c for c in sorted(CASES) if not (CASES[c]["family"] == "binomial"
                                           and CASES[c]["zeta"] > 0)]


@pytest.mark.parametrize("case_id", MAPPED)
def test_icc_cac_iac_parameterisation_reproduces_the_peers(case_id: str) -> None:
    """The same cases through the user's words (ICC, CAC, IAC, decay; effect in total SDs)."""
    case = CASES[case_id]
    row = design_power(_per_cluster_design(case), cluster_size=_matrix(case["sizes"]),
                       **_correlations(case))
    assert row["power"] == pytest.approx(case["power"], abs=1e-6)


def test_swcrtdesign_icc_cac_arguments_are_ours() -> None:
    """swPwr(icc = 0.02, cac = 0.125, sigma = 0.1): its sigma is the within-cluster SD."""
    case = CASES["swpwr_ex8_icc_cac_nested"]
    c = components_from_correlations(0.02, 0.125, within=0.1**2)
    assert math.sqrt(c.cluster) == pytest.approx(case["tau"], rel=1e-12)
    assert math.sqrt(c.cluster_period) == pytest.approx(case["gamma"], rel=1e-12)
    assert _correlations(case)["icc"] == pytest.approx(0.02, rel=1e-12)
    assert _correlations(case)["cluster_autocorr"] == pytest.approx(0.125, rel=1e-12)


def test_steppedpower_alpha012_is_icc_cac_iac() -> None:
    """alpha_0_1_2 = (R, R CAC, R CAC + IAC (1 - R)) (Li et al. 2018)."""
    case = CASES["glspower_alpha012_cohort"]
    a0, a1, a2 = case["alpha_0_1_2"]
    ours = _correlations(case)
    r, cac, iac = ours["icc"], ours["cluster_autocorr"], ours["individual_autocorr"]
    assert (r, r * cac, r * cac + iac * (1 - r)) == pytest.approx((a0, a1, a2), rel=1e-12)


def test_binary_variance_explains_the_two_packages() -> None:
    """Issue 14: swCRTdesign 0.7862 (pbar(1-pbar), our default) vs SteppedPower 0.7893 (arm)."""
    design = standard_design("stepped-wedge", sequences=4, clusters_per_sequence=6)
    pbar = (0.05 + 0.035) / 2
    icc = 0.01**2 / (0.01**2 + pbar * (1 - pbar))
    powers = {
        variance: design_power(design, cluster_size=120, icc=icc, p0=0.05, p1=0.035,
                               binary_variance=variance)["power"]
        for variance in ("mean", "arm")
    }
    assert powers["mean"] == pytest.approx(CASES["swpwr_ex1_exchangeable_binary"]["power"],
                                           abs=1e-6)
    assert powers["arm"] == pytest.approx(CASES["glspower_binary_arm_variance"]["power"],
                                          abs=1e-6)
    assert round(powers["mean"], 4) == 0.7862
    assert round(powers["arm"], 4) == 0.7893


NAMED = {
    "swpwr_ex1_exchangeable_binary": ("stepped-wedge", {"sequences": 4}),
    "glspower_exchangeable": ("stepped-wedge", {"sequences": 5}),
    "glspower_parallel_longitudinal": ("parallel", {"periods": 5}),
    "glspower_parallel_one_period": ("parallel", {}),
    "glspower_parallel_baseline": ("parallel-baseline", {"periods": 5}),
    "glspower_crossover": ("crossover", {"periods": 4}),
}


@pytest.mark.parametrize("case_id", sorted(NAMED))
def test_named_layouts_equal_the_peers(case_id: str) -> None:
    """Each named design's sequences are the peer's, and its power through the CLI words."""
    case = CASES[case_id]
    name, options = NAMED[case_id]
    k = case["clusters"][0]
    design = standard_design(name, clusters_per_sequence=k, **options)
    ours = sorted(map(tuple, design.treatment.tolist()))
    assert ours == sorted(map(tuple, _matrix(case["sequences"]).tolist()))
    assert list(design.clusters) == case["clusters"]
    size = _matrix(case["sizes"])[0, 0]
    row = design_power(design, cluster_size=size, **_correlations(case))
    assert row["power"] == pytest.approx(case["power"], abs=1e-6)


def hussey_hughes_variance(x: np.ndarray, tau2: float, sigma2_mean: float) -> float:
    """Hussey & Hughes (2007) eq. 8: Var(theta) for I clusters x T periods, cluster means
    with variance ``sigma2_mean`` (= sigma^2 / n) and cluster variance ``tau2``."""
    i, t = x.shape
    u = x.sum()
    w = (x.sum(axis=0) ** 2).sum()
    v = (x.sum(axis=1) ** 2).sum()
    return (i * sigma2_mean * (sigma2_mean + t * tau2)
            / ((i * u - w) * sigma2_mean + (u**2 + i * t * u - t * w - i * v) * tau2))


@pytest.mark.parametrize(("sequences", "k", "m", "icc"),
                         [(4, 6, 120, 0.0024), (3, 2, 20, 0.05), (6, 1, 10, 0.2), (2, 5, 1, 0.5)])
def test_hussey_hughes_closed_form(sequences: int, k: int, m: int, icc: float) -> None:
    design = standard_design("stepped-wedge", sequences=sequences, clusters_per_sequence=k)
    c = components_from_correlations(icc)
    ours = treatment_variance(design, c, m)
    x = np.repeat(design.treatment, k, axis=0)
    assert ours == pytest.approx(hussey_hughes_variance(x, c.cluster, c.residual / m), rel=1e-10)


@pytest.mark.parametrize(("steps", "k", "n", "icc"),
                         [(4, 6, 120, 0.0024), (3, 2, 20, 0.05), (6, 1, 10, 0.2)])
def test_stepped_wedge_design_effect_is_woertmans(steps: int, k: int, n: int,
                                                   icc: float) -> None:
    """Woertman et al. (2013, J Clin Epidemiol 66:752) with b = 1 baseline and t = 1
    measurement per step: the overall number of measurements is T DE_w N_u, T = kt + b, so
    our design effect (per measurement) is T DE_w."""
    design = standard_design("stepped-wedge", sequences=steps, clusters_per_sequence=k)
    row = design_power(design, cluster_size=n, icc=icc, effect=0.2)
    b = t = 1
    de_w = ((1 + icc * (steps * t * n + b * n - 1)) / (1 + icc * (0.5 * steps * t * n + b * n - 1))
            * 3 * (1 - icc) / (2 * t * (steps - 1 / steps)))
    assert row["design_effect"] == pytest.approx((steps * t + b) * de_w, rel=1e-10)


def test_parallel_one_period_is_the_classic_formula() -> None:
    """T = 1: design effect 1 + (m - 1) R, relative efficiency 1, and --df t equals the
    parallel-trial noncentral t with 2k - 2 df (power.analytic)."""
    design = standard_design("parallel", clusters_per_sequence=7)
    row = design_power(design, cluster_size=25, icc=0.05, effect=0.4, df_method="t")
    assert row["design_effect"] == pytest.approx(1 + 24 * 0.05, rel=1e-12)
    assert row["relative_efficiency"] == pytest.approx(1.0, rel=1e-12)
    assert row["df"] == 12
    classic = power_continuous(effect=0.4, cluster_size=25, icc=0.05, clusters_per_arm=7,
                               distribution="t")
    assert row["power"] == pytest.approx(classic["power"].iloc[0], abs=1e-12)


def test_decay_and_cac_semantics() -> None:
    """tau2 = R CAC, gamma2 = R (1 - CAC), sigma2 = 1 - R; between-period cluster
    correlation CAC r^|s-t| (a cohort splits 1 - R by IAC)."""
    c = components_from_correlations(0.1, 0.6, decay=0.8, individual_autocorr=0.3)
    assert (c.cluster, c.cluster_period, c.individual, c.residual, c.decay) == pytest.approx(
        (0.06, 0.04, 0.27, 0.63, 0.8))
    # Kasza et al. (2019) exponential decay with CAC = 1 equals SteppedPower's AR on tau alone
    case = CASES["glspower_decay"]
    assert _correlations(case)["cluster_autocorr"] == 1.0


def test_relative_efficiency_of_a_stepped_wedge_against_parallel() -> None:
    design = standard_design("stepped-wedge", sequences=4, clusters_per_sequence=3)
    row = design_power(design, cluster_size=20, icc=0.1, cluster_autocorr=0.8, effect=0.3)
    parallel = dataclass_parallel(design.n_clusters, 5)
    c = components_from_correlations(0.1, 0.8)
    expected = treatment_variance(parallel, c, 20) / row["variance"]
    assert row["relative_efficiency"] == pytest.approx(expected, rel=1e-12)
    assert row["relative_efficiency"] > 1


def dataclass_parallel(n_clusters: int, periods: int) -> Design:
    base = standard_design("parallel", periods=periods)
    return Design(base.name, base.treatment, np.full(2, n_clusters / 2), base.periods)


def test_solve_cluster_size_matches_glspower() -> None:
    """glsPower(power = 0.8) returns ceiling(uniroot(N)); we return the same rounded size."""
    for case in REFERENCE["solves"]:
        clusters = case["clusters"]
        design = standard_design("stepped-wedge", sequences=len(clusters),
                                 clusters_per_sequence=clusters[0])
        s2 = case["tau"] ** 2 + case["sigma"] ** 2
        row = solve_design("cluster_size", design, target_power=case["target_power"],
                           icc=case["tau"] ** 2 / s2,
                           effect=(case["mu1"] - case["mu0"]) / math.sqrt(s2))
        assert row["cluster_size"] == case["n_opt"]
        assert row["power"] == pytest.approx(case["power"], abs=1e-6)
        exact = design_power(design, cluster_size=row["cluster_size_exact"],
                             icc=case["tau"] ** 2 / s2,
                             effect=(case["mu1"] - case["mu0"]) / math.sqrt(s2))
        assert exact["power"] == pytest.approx(case["target_power"], abs=1e-9)


def test_solve_clusters_per_sequence_is_the_smallest() -> None:
    design = standard_design("stepped-wedge", sequences=5)
    options = {"cluster_size": 20, "icc": 0.05, "cluster_autocorr": 0.8, "effect": 0.2,
               "df_method": "between-within"}
    row = solve_design("clusters_per_sequence", design, target_power=0.9, **options)
    k = int(row["clusters_per_sequence"])
    assert row["power"] >= 0.9
    assert row["clusters"] == 5 * k
    below = design_power(design.with_clusters(k - 1), **options)
    assert below["power"] < 0.9


def test_solve_effect_gives_the_target() -> None:
    design = standard_design("crossover", clusters_per_sequence=4)
    row = solve_design("effect", design, target_power=0.8, cluster_size=30, icc=0.05,
                       cluster_autocorr=0.5, df_method="between-within")
    check = design_power(design, cluster_size=30, icc=0.05, cluster_autocorr=0.5,
                         effect=row["effect"], df_method="between-within")
    assert check["power"] == pytest.approx(0.8, abs=1e-9)


def test_unreachable_cluster_size_is_a_clear_error() -> None:
    design = standard_design("parallel", clusters_per_sequence=2)
    with pytest.raises(TrialstatsError, match="only approaches"):
        solve_design("cluster_size", design, target_power=0.9, icc=0.3, effect=0.2)


def test_confounded_design_is_refused() -> None:
    design = Design("all treated", np.ones((2, 3)), np.array([2, 2]), ("1", "2", "3"))
    with pytest.raises(TrialstatsError, match="cannot be estimated"):
        design_power(design, cluster_size=10, icc=0.05, effect=0.2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "stepped-wedge"}, "needs --sequences"),
    ({"name": "stepped-wedge", "sequences": 3, "periods": 5}, "T = S \\+ 1"),
    ({"name": "crossover", "periods": 3}, "even number"),
    ({"name": "parallel", "sequences": 3}, "2 sequences"),
    ({"name": "parallel-baseline", "periods": 1}, "at least 2 periods"),
    ({"name": "factorial"}, "Unknown design"),
])
def test_standard_design_errors(kwargs: dict, message: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(TrialstatsError, match=message):
        standard_design(name, **kwargs)


def test_stepped_wedge_layout() -> None:
    """Sequence s is treated from period s + 1."""
    design = standard_design("stepped-wedge", sequences=3, clusters_per_sequence=2)
    np.testing.assert_array_equal(design.treatment, [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])
    assert design.n_clusters == 6
    assert grid_text(design).splitlines()[1:] == [
        "sequence  clusters  1  2  3  4",
        "       1         2  0  1  1  1",
        "       2         2  0  0  1  1",
        "       3         2  0  0  0  1",
    ]


def _table(text: str) -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(StringIO(text), dtype=str, keep_default_na=False).replace("", np.nan)


def test_design_file_with_blank_cells_and_clusters() -> None:
    design = design_from_table(_table("jan,feb,mar,clusters\n0,1,,3\n,0,1,2\n"), "d.csv")
    np.testing.assert_array_equal(design.treatment, [[0, 1, np.nan], [np.nan, 0, 1]])
    assert list(design.clusters) == [3, 2]
    assert design.periods == ("jan", "feb", "mar")
    case = CASES["swpwr_swblk_incomplete_binary"]
    x = _matrix(case["sequences"])
    frame = pd.DataFrame({str(t + 1): [None if np.isnan(v) else str(int(v)) for v in x[:, t]]
                          for t in range(x.shape[1])})
    frame["clusters"] = [str(k) for k in case["clusters"]]
    row = design_power(design_from_table(frame, "swblk.csv"), cluster_size=120,
                       **_correlations(case))
    assert row["power"] == pytest.approx(case["power"], abs=1e-6)


@pytest.mark.parametrize(("text", "message"), [
    ("1,2\n0,x\n", "row 2, column '2': 'x' is not 0"),
    ("1,2,clusters\n0,1,0\n", "row 2, column 'clusters'"),
    ("1,2,clusters\n0,1,\n", "row 2, column 'clusters'"),
    ("1,2\n0,1\n,\n", "row 3: the sequence is never measured"),
    ("clusters\n3\n", "no period columns"),
])
def test_design_file_errors(text: str, message: str) -> None:
    with pytest.raises(TrialstatsError, match=message):
        design_from_table(_table(text), "d.csv")


def test_design_file_clusters_twice() -> None:
    with pytest.raises(TrialstatsError, match="leave out"):
        design_from_table(_table("1,2,clusters\n0,1,2\n"), "d.csv", clusters_per_sequence=3)


# ------------------------------------------------------------------------------ command line


@pytest.fixture
def cli(capsys):
    """Run ``trialstats ARGS`` in-process; returns (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_cli_stepped_wedge_binary_json(cli) -> None:
    case = CASES["swpwr_ex1_exchangeable_binary"]
    icc = _correlations(case)["icc"]
    status, out, err = cli("power", "analytic", "--design", "stepped-wedge", "--sequences", "4",
               "--clusters-per-sequence", "6", "--periods", "5", "--cluster-size", "120",
               "--icc", repr(icc), "--cluster-autocorr", "1", "--p0", "0.05", "--p1", "0.035",
               "--df", "z", "--json")
    assert status == 0, err
    record = json.loads(out)
    assert record["power"] == pytest.approx(case["power"], abs=1e-6)
    assert record["design"] == "stepped-wedge"
    assert "Hussey & Hughes 2007" in record["method"]
    assert record["clusters"] == 24


def test_cli_design_file_and_difference(cli, tmp_path: Path) -> None:
    case = CASES["glspower_crossover"]
    path = tmp_path / "crossover.csv"
    path.write_text("p1,p2,p3,p4,clusters\n1,1,0,0,3\n0,0,1,1,3\n")
    ours = _correlations(case)
    sd = math.sqrt(case["sigma"] ** 2 + case["tau"] ** 2)
    status, out, err = cli("power", "analytic", "--design", str(path), "--cluster-size", "10",
               "--icc", repr(ours["icc"]), "--cluster-autocorr", "1",
               "--difference", "1", "--sd", repr(sd), "--df", "z", "--json")
    assert status == 0, err
    assert json.loads(out)["power"] == pytest.approx(case["power"], abs=1e-6)


def test_cli_solves_and_bad_input(cli, tmp_path: Path) -> None:
    status, out, err = cli("power", "analytic", "--design", "stepped-wedge", "--sequences", "5",
               "--cluster-size", "20", "--icc", "0.05", "--cluster-autocorr", "0.8",
               "--effect", "0.2", "--df", "between-within", "--target-power", "0.9", "--json")
    assert status == 0, err
    record = json.loads(out)
    assert record["unknown"] == "clusters_per_sequence" and record["power"] >= 0.9
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n0,2\n")
    status, out, err = cli("power", "analytic", "--design", str(bad), "--cluster-size", "20",
               "--icc", "0.05", "--cluster-autocorr", "0.8", "--effect", "0.2")
    assert status == 2
    assert "bad.csv: row 2, column '2'" in err
    assert "Traceback" not in err


def test_cli_design_show_prints_and_draws(cli, tmp_path: Path) -> None:
    figure = tmp_path / "sw.svg"
    status, out, err = cli("design", "show", "--design", "stepped-wedge", "--sequences", "3",
               "--clusters-per-sequence", "2", "--out", str(figure))
    assert status == 0, err
    assert "       3         2  0  0  0  1" in out
    first = figure.read_bytes()
    assert first.startswith(b"<?xml")
    cli("design", "show", "--design", "stepped-wedge", "--sequences", "3",
         "--clusters-per-sequence", "2", "--out", str(figure))
    assert figure.read_bytes() == first


def test_cli_without_design_refuses_design_words(cli) -> None:
    status, _, err = cli("power", "analytic", "--clusters-per-arm", "10", "--cluster-size",
                         "20", "--icc", "0.05", "--effect", "0.3", "--df", "between-within")
    assert status == 2
    assert "--df between-within only apply with --design" in err
    status, _, err = cli("power", "analytic", "--design", "parallel", "--clusters-per-arm",
                         "10", "--cluster-size", "20", "--icc", "0.05", "--effect", "0.3")
    assert status == 2
    assert "--clusters-per-arm belong to the two-arm parallel formulas" in err


def test_cli_text_and_csv_output(cli, tmp_path: Path) -> None:
    """Without --json a sentence naming power, design effect and method; --out a CSV row."""
    table = tmp_path / "row.csv"
    status, out, err = cli("power", "analytic", "--design", "parallel-baseline",
                           "--clusters-per-sequence", "5", "--periods", "3", "--cluster-size",
                           "20", "--icc", "0.05", "--cluster-autocorr", "0.7", "--decay", "0.9",
                           "--effect", "0.3", "--out", str(table))
    assert status == 0, err
    assert out.startswith("Power 0.")
    assert "exponential decay correlation (Kasza et al. 2019)" in out
    row = pd.read_csv(table).iloc[0]
    expected = design_power(standard_design("parallel-baseline", clusters_per_sequence=5,
                                            periods=3),
                            cluster_size=20, icc=0.05, cluster_autocorr=0.7, decay=0.9,
                            effect=0.3, df_method="t")
    assert row["power"] == pytest.approx(expected["power"], rel=1e-12)
    assert row["df"] == 10 - 4


def test_cli_binary_without_design_is_the_parallel_formula(cli) -> None:
    """Contract: without --design, --p0 --p1 use arm-specific variances (as clusterPower)."""
    status, out, err = cli("power", "analytic", "--clusters-per-arm", "12", "--cluster-size",
                           "30", "--icc", "0.05", "--p0", "0.2", "--p1", "0.3", "--json")
    assert status == 0, err
    record = json.loads(out)
    expected = power_binary(p_control=0.2, p_intervention=0.3, cluster_size=30, icc=0.05,
                            clusters_per_arm=12)
    assert record["power"] == pytest.approx(expected["power"].iloc[0], rel=1e-12)
    assert "arm-specific binomial variances" in record["method"]
    status, out, err = cli("power", "analytic", "--cluster-size", "30", "--icc", "0.05",
                           "--p0", "0.2", "--p1", "0.3", "--target-power", "0.8", "--json")
    assert status == 0, err
    solved = json.loads(out)
    assert solved["unknown"] == "clusters_per_arm" and solved["power"] >= 0.8


def test_simulated_stepped_wedge_power_agrees_with_the_gls_formula(capsys):
    """`power simulate --design`: trials analysed by REML (Satterthwaite) reach the power of
    the GLS formula (z test) within Monte Carlo error, and the type I error is near alpha."""
    words = ["--design", "stepped-wedge", "--sequences", "4", "--clusters-per-sequence", "3",
             "--cluster-size", "15", "--icc", "0.05", "--cluster-autocorr", "0.8",
             "--effect", "0.25", "--json"]
    assert main(["power", "analytic", *words, "--df", "z"]) == 0
    analytic = json.loads(capsys.readouterr().out)["power"]
    assert main(["power", "simulate", *words, "--reps", "600", "--seed", "11",
                 "--df-method", "satterthwaite"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert simulated["n_failed"] == 0
    assert abs(simulated["power"] - analytic) < 4 * simulated["mc_se"] + 0.02
    assert 0.02 <= simulated["type_i_error"] <= 0.09


def test_simulated_design_power_needs_its_words(capsys):
    assert main(["power", "simulate", "--design", "stepped-wedge", "--sequences", "4",
                 "--icc", "0.05", "--effect", "0.3", "--cluster-size", "10"]) == 2
    assert "--clusters-per-sequence" in capsys.readouterr().err
