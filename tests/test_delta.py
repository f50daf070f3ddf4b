"""Delta-adjusted multiple imputation and the tipping point (trialstats.analysis.delta).

References: ``tests/fixtures/delta/reference.json`` made by
``tests/fixtures/delta/make_delta_fixture.R`` (mice 3.15 ``mnar.norm``, m = 1000, lm analysis,
``pool``; the call is stored in the file) for an individually randomised trial; the MAR rows of
:func:`trialstats.analysis.imputation.multiple_imputation`; and the simulation of
``benchmarks/delta_validity.py`` run small.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trialstats.analysis.delta import (
    DELTA_COLUMNS,
    TIPPING_COLUMNS,
    delta_adjustment,
    delta_rows,
    shifted_cells,
    tipping_points,
)
from trialstats.analysis.effects import mcid_verdict
from trialstats.analysis.imputation import impute_trial, multiple_imputation, rubin_pool
from trialstats.cli import main
from trialstats.config import load_config
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError
from trialstats.report.tipping import tipping_figure, tipping_sentences

ROOT = Path(__file__).resolve().parents[1]
DELTA = ROOT / "tests" / "fixtures" / "delta"
PRIMARY = ROOT / "tests" / "fixtures" / "primary"


def _config_file(folder: Path, data: Path, **sensitivity) -> Path:
    path = folder / "config.yaml"
    outcome = "score" if data == PRIMARY else "y"
    path.write_text(yaml.safe_dump({
        "data": {"practices": str(data / "practices.csv"),
                 "patients": str(data / "patients.csv")},
        "design": {"intervention": "intervention", "followup_months": [12]},
        "outcomes": [{"name": outcome, "primary": True,
                      "mcid": {"scale": "raw", "value": 3.0}}],
        "analysis": {"covariates": ["age", "condition"] if data == PRIMARY else []},
        "sensitivity": {"imputations": 5, "seed": 11, **sensitivity},
    }))
    return path


@pytest.fixture(scope="module")
def crt(tmp_path_factory):
    """The small CRT of tests/fixtures/primary: validated config and patients."""
    config = load_config(_config_file(tmp_path_factory.mktemp("crt"), PRIMARY))
    return config, load_trial(config).patients


@pytest.fixture(scope="module")
def crt_trial(crt):
    config, patients = crt
    return impute_trial(patients, config, imputations=5, seed=11)


# --- delta = 0 is the MAR analysis ----------------------------------------------------------


def test_delta_zero_equals_multiple_imputation_exactly(crt):
    config, patients = crt
    mar = multiple_imputation(patients, config, imputations=5, seed=11)
    rows = delta_adjustment(patients, {**config, "sensitivity": {
        **config["sensitivity"], "delta": [0, -2]}})
    zero = rows[rows["delta"] == 0].reset_index(drop=True)
    same = [c for c in DELTA_COLUMNS if c not in ("analysis", "notes", "delta")]
    pd.testing.assert_frame_equal(zero[same], mar[same], check_exact=True)
    assert (rows["analysis"] == "delta-adjustment").all()
    for zero_note, mar_note in zip(zero["notes"], mar["notes"], strict=True):
        assert zero_note.endswith(mar_note)
    assert rows["notes"].str.startswith("delta adjustment: ").all()


def test_shifted_cells_are_the_imputed_scores_of_the_arm(crt_trial):
    missing = crt_trial.missing[:, crt_trial.score_columns.index("score_m12")]
    treated = crt_trial.treated == 1
    cells = {arm: shifted_cells(crt_trial, "score", 12, arm)
             for arm in ("intervention", "control", "both")}
    np.testing.assert_array_equal(cells["intervention"], missing & treated)
    np.testing.assert_array_equal(cells["control"], missing & ~treated)
    np.testing.assert_array_equal(cells["both"], missing)
    assert 0 < cells["intervention"].sum() < cells["both"].sum()


def test_only_the_imputed_scores_move(crt, crt_trial):
    """A shift of the control arm moves the estimate up; one of the intervention arm down by
    the same order; standardised delta = raw delta x baseline SD."""
    config, _ = crt
    raw = delta_rows(crt_trial, config, [0.0, -2.0], arm="intervention")
    control = delta_rows(crt_trial, config, [-2.0], arm="control")
    assert raw["estimate"].iloc[1] < raw["estimate"].iloc[0] < control["estimate"].iloc[0]
    sd = raw["sd_baseline"].iloc[0]
    standardised = delta_rows(crt_trial, config, [-2.0 / sd], scale="standardised")
    np.testing.assert_allclose(standardised["estimate"], raw["estimate"].iloc[1], rtol=1e-12)
    assert standardised["delta"].iloc[0] == pytest.approx(-2.0 / sd)
    assert "baseline SD" in standardised["notes"].iloc[0]


def test_bad_arm_or_scale_is_a_user_error(crt, crt_trial):
    with pytest.raises(TrialstatsError, match="got arm 'treated'"):
        delta_rows(crt_trial, crt[0], [1.0], arm="treated")


# --- agreement with mice's mnar.norm ----------------------------------------------------------


@pytest.fixture(scope="module")
def mice_agreement(tmp_path_factory):
    """Our imputation of the fixture trial (each patient their own practice), the delta shift,
    the fixture's analysis model lm(y12 ~ trt + y0) in each completed dataset, Rubin's rules."""
    reference = json.loads((DELTA / "reference.json").read_text())
    config = load_config(_config_file(tmp_path_factory.mktemp("mice"), DELTA))
    trial = impute_trial(load_trial(config).patients, config, imputations=reference["m"],
                         seed=5, iterations=1)
    cells = shifted_cells(trial, "y", 12, "intervention")
    x = np.column_stack([np.ones(len(cells)), trial.treated,
                         trial.completed("y_m0")[0]])
    inverse = np.linalg.inv(x.T @ x)
    n, p = x.shape
    ours = []
    for result in reference["results"]:
        y = trial.completed("y_m12") + result["delta"] * cells
        beta = y @ (inverse @ x.T).T
        variance = ((y - beta @ x.T) ** 2).sum(axis=1) / (n - p) * inverse[1, 1]
        ours.append(rubin_pool(beta[:, 1], variance, n - p))
    return reference, ours, int(cells.sum())


def test_same_patients_shifted_as_mice(mice_agreement):
    reference, _, shifted = mice_agreement
    assert shifted == reference["n_missing_treated"]


def test_delta_adjusted_estimates_agree_with_mnar_norm(mice_agreement):
    """Pooled estimate and SE within 4 Monte Carlo SEs of mice (m = 1000 on both sides)."""
    reference, ours, _ = mice_agreement
    m = reference["m"]
    for result, pooled in zip(reference["results"], ours, strict=True):
        mcse = np.sqrt(pooled.between / m + result["b"] / m)
        assert abs(pooled.estimate - result["estimate"]) < 4 * mcse, result["delta"]
        # Var(B-hat) = 2 B^2 / (m - 1); se = sqrt(T)
        se_mcse = np.hypot(pooled.between, result["b"]) * np.sqrt(2 / (m - 1)) / (2 * result["se"])
        assert abs(pooled.se - result["se"]) < 4 * se_mcse, result["delta"]


def test_shift_of_the_estimate_equals_mnar_norm_exactly(mice_agreement):
    """The baseline is complete, so est(delta) - est(0) is the same linear function of delta
    in both programs, whatever the draws (mice uses the same seed for every delta)."""
    reference, ours, _ = mice_agreement
    for result, pooled in zip(reference["results"][1:], ours[1:], strict=True):
        theirs = result["estimate"] - reference["results"][0]["estimate"]
        np.testing.assert_allclose(pooled.estimate - ours[0].estimate, theirs, rtol=1e-9)


# --- tipping point ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tipping(crt, crt_trial):
    return tipping_points(crt_trial, crt[0])


def _conclusions(row: pd.Series, alpha: float = 0.05) -> tuple[str, str]:
    return (("significant" if row["p_value"] < alpha else "not significant"),
            mcid_verdict(row["ci_low"], row["ci_high"], row["mcid"], True))


def test_tipping_table_shape(tipping):
    assert tuple(tipping.columns) == TIPPING_COLUMNS
    assert list(tipping["criterion"]) == ["significance", "mcid verdict"]
    assert (tipping["outcome"] == "score").all() and (tipping["month"] == 12).all()
    assert tipping["delta"].notna().all()


def test_tipping_point_is_where_the_conclusion_changes(crt, crt_trial, tipping):
    """At the root a CI bound sits on its threshold (p = alpha for significance); just inside
    it the conclusion is the MAR one, just beyond the tipped one, and every delta of smaller
    size on a fine grid in both directions keeps the MAR conclusion."""
    config = crt[0]
    for index, row in tipping.iterrows():
        delta = row["delta"]
        if row["criterion"] == "significance":
            assert row["p_value"] == pytest.approx(0.05, abs=1e-6)
        else:
            mcid = 3.0
            gaps = [abs(abs(row[b]) - mcid) for b in ("ci_low", "ci_high")]
            assert min(gaps) < 1e-5
        grid = [delta * f for f in (1 - 1e-4, 1 + 1e-4)]
        grid += list(np.linspace(-abs(delta), abs(delta), 41)[1:-1])
        rows = delta_rows(crt_trial, config, grid)
        conclusions = [_conclusions(r)[index] for _, r in rows.iterrows()]
        assert conclusions[0] == row["conclusion_mar"]
        assert conclusions[1] == row["conclusion_tipped"] != row["conclusion_mar"]
        assert set(conclusions[2:]) == {row["conclusion_mar"]}


def test_tipping_point_is_reproducible(crt, tipping):
    config, patients = crt
    again = tipping_points(impute_trial(patients, config, imputations=5, seed=11), config)
    pd.testing.assert_frame_equal(again, tipping, check_exact=True)


def test_no_mcid_and_no_change_are_reported_not_hidden(crt):
    config, patients = crt
    config = {**config, "outcomes": [{**config["outcomes"][0], "mcid": None}]}
    trial = impute_trial(patients, config, imputations=5, seed=11)
    table = tipping_points(trial, config, limit=0.01, step=0.005)
    assert table["delta"].isna().all()
    assert table["notes"].tolist()[1] == "no MCID configured"
    assert "holds for |delta| up to 0.01 baseline SD" in table["notes"].iloc[0]


# --- command line -----------------------------------------------------------------------------


def test_cli_writes_rows_and_tipping_table(tmp_path, capsys):
    config = _config_file(tmp_path, PRIMARY, delta=[0, -1.5], delta_arm="both")
    out, tip = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["sensitivity", "--config", str(config), "--analysis", "delta-adjustment",
                 "--out", str(out), "--tipping-out", str(tip)]) == 0
    rows, table = pd.read_csv(out), pd.read_csv(tip)
    assert tuple(rows.columns) == DELTA_COLUMNS
    assert rows["delta"].tolist() == [0.0, -1.5]
    assert "of the both arms" in rows["notes"].iloc[1]
    assert tuple(table.columns) == TIPPING_COLUMNS
    assert "delta-adjustment: 2 rows" in capsys.readouterr().out


def test_cli_imputes_once_for_the_rows_and_the_tipping_points(tmp_path, monkeypatch):
    """The delta rows and the tipping points shift one imputation, and give what each
    gives from its own."""
    import trialstats.analysis.delta as delta

    config = _config_file(tmp_path, PRIMARY, delta=[0, -1.5])
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return impute_trial(*args, **kwargs)

    monkeypatch.setattr(delta, "impute_trial", counted)
    out, tip = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["sensitivity", "--config", str(config), "--analysis", "delta-adjustment",
                 "--out", str(out), "--tipping-out", str(tip)]) == 0
    assert len(calls) == 1
    config_dict = load_config(config)
    patients = load_trial(config_dict).patients
    alone = delta.tipping_analysis(patients, config_dict)
    pd.testing.assert_frame_equal(pd.read_csv(tip), alone.reset_index(drop=True),
                                  check_dtype=False)
    rows = delta.delta_adjustment(patients, config_dict)
    assert pd.read_csv(out)["estimate"].tolist() == pytest.approx(rows["estimate"].tolist(),
                                                                  rel=1e-12)


def test_other_analyses_have_no_delta_column(tmp_path):
    config = _config_file(tmp_path, PRIMARY)
    assert main(["sensitivity", "--config", str(config), "--analysis", "multiple-imputation",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert "delta" not in pd.read_csv(tmp_path / "s.csv").columns


def test_tipping_out_needs_the_delta_analysis(tmp_path, capsys):
    config = _config_file(tmp_path, PRIMARY)
    status = main(["sensitivity", "--config", str(config), "--analysis", "cluster-level",
                   "--out", str(tmp_path / "s.csv"), "--tipping-out", str(tmp_path / "t.csv")])
    assert status == 2
    assert "--tipping-out needs the delta-adjustment analysis" in capsys.readouterr().err


def test_schema_refuses_an_unknown_arm(tmp_path, capsys):
    config = _config_file(tmp_path, PRIMARY, delta_arm="treated")
    status = main(["sensitivity", "--config", str(config), "--out", str(tmp_path / "s.csv")])
    assert status == 2
    assert "delta_arm" in capsys.readouterr().err


# --- validity under a known MNAR mechanism ----------------------------------------------------


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "delta_validity", ROOT / "benchmarks" / "delta_validity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matching_delta_recovers_the_true_effect():
    """40 simulated trials: MAR imputation is biased by +pi*shift; the matching delta is not
    (bias within 3.5 Monte Carlo SEs), and delta = 0 equals the MAR analysis in every trial."""
    summary = _load_benchmark().study(reps=40, seed=3, imputations=5)
    by = summary.set_index("analysis")
    mar, matching = by.loc["MAR (delta = 0)"], by.loc["matching delta"]
    assert abs(matching["bias"]) < 3.5 * matching["bias_mcse"]
    assert mar["bias"] > 3.5 * mar["bias_mcse"]
    assert by.loc["MAR (delta = 0)", "max_abs_diff_vs_mi"] == 0.0


# --- report: figure and sentence --------------------------------------------------------------


def test_tipping_figure_marks_the_tipping_deltas(crt, crt_trial, tipping):
    config = crt[0]
    rows = delta_rows(crt_trial, config, [0.0, -2.0, -4.0, -6.0, 2.0])
    figure = tipping_figure(rows, tipping, "score", config)
    ax = figure.axes[0]
    vertical = sorted(line.get_xdata()[0] for line in ax.lines
                      if line.get_linestyle() == "--")
    np.testing.assert_allclose(vertical, sorted(tipping["delta"]))
    curve = max(ax.lines, key=lambda line: len(line.get_xdata()))
    np.testing.assert_allclose(curve.get_xdata(), sorted([*rows["delta"], *tipping["delta"]]))
    assert "intervention arm" in ax.get_xlabel()
    with pytest.raises(TrialstatsError, match="no delta-adjustment rows"):
        tipping_figure(rows.iloc[:0], tipping.iloc[:0], "score", config)


def test_one_sentence_per_primary_outcome(crt, tipping):
    config = crt[0]
    sentences = tipping_sentences(tipping, config)
    assert list(sentences) == ["score"]
    text = sentences["score"]
    significance, verdict = tipping.iloc[0], tipping.iloc[1]
    assert text.startswith(f"For score at 12 months (missing at random: "
                           f"{significance['conclusion_mar']}; {verdict['conclusion_mar']})")
    for row in (significance, verdict):
        direction = "lower" if row["delta"] < 0 else "higher"
        assert f"(to {row['conclusion_tipped']})" in text
        assert f"outcome units {direction} than MAR predicts" in text
    assert text.count(". ") == 0 and text.endswith(").")
