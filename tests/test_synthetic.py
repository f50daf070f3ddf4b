"""Tests of the synthetic trial generator and of the committed data in data_synthetic/."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import yaml

from trialstats.data.synthetic import (
    generate_trial,
    load_synthetic_spec,
    validate_synthetic_spec,
    write_trial_csv,
)
from trialstats.errors import TrialstatsError

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "config" / "synthetic.yaml"
DATA_DIR = ROOT / "data_synthetic"
SEED = 2013  # the seed stated in data_synthetic/README.md
MONTHS = (0, 6, 12)


@pytest.fixture(scope="module")
def spec() -> dict:
    return load_synthetic_spec(SPEC_PATH)


@pytest.fixture(scope="module")
def committed() -> tuple[pd.DataFrame, pd.DataFrame]:
    practices = pd.read_csv(DATA_DIR / "practices.csv")
    patients = pd.read_csv(DATA_DIR / "patients.csv")
    return practices, patients


@pytest.fixture(scope="module")
def analysis_outcomes() -> list[dict]:
    """The outcomes of the analysis config that the committed data must serve."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    return config["outcomes"]


def anova_icc(values: pd.Series, groups: pd.Series) -> float:
    """One-way ANOVA estimator of the ICC with the unequal-size n0 (Donner 1986)."""
    frame = pd.DataFrame({"y": values.to_numpy(dtype=float), "g": groups}).dropna()
    grouped = frame.groupby("g")["y"]
    sizes, means = grouped.size(), grouped.mean()
    n, k = len(frame), len(sizes)
    msb = (sizes * (means - frame["y"].mean()) ** 2).sum() / (k - 1)
    msw = ((frame["y"] - frame["g"].map(means)) ** 2).sum() / (n - k)
    n0 = (n - (sizes**2).sum() / n) / (k - 1)
    return float((msb - msw) / (msb + (n0 - 1) * msw))


def returned(patients: pd.DataFrame, names: list[str], month: int) -> pd.Series:
    """A questionnaire counts as returned if any outcome of that month is present."""
    return patients[[f"{name}_m{month}" for name in names]].notna().any(axis=1)


def test_committed_files_regenerate_byte_for_byte(spec, tmp_path):
    write_trial_csv(*generate_trial(spec, SEED), tmp_path)
    for name in ("practices.csv", "patients.csv"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patients.csv", "practices.csv"]


def test_readme_states_the_seed_and_command():
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    command = f"trialstats synth --config config/synthetic.yaml --seed {SEED} --out data_synthetic"
    assert command in readme


def test_practice_counts_allocation_and_withdrawal(committed):
    practices, patients = committed
    assert len(practices) == 44
    assert practices["practice_id"].is_unique
    assert practices["arm"].value_counts().to_dict() == {"intervention": 22, "control": 22}
    assert practices["withdrawn"].dtype == bool
    withdrawn = practices.loc[practices["withdrawn"], "practice_id"]
    assert len(withdrawn) == 1
    assert not patients["practice_id"].isin(withdrawn).any()
    contributing = practices.loc[~practices["withdrawn"], "practice_id"]
    assert set(patients["practice_id"]) == set(contributing)
    assert practices["list_size"].between(2000, 20000).all()
    assert practices["imd_score"].between(5, 60).all()


def test_minimisation_balances_factors(committed):
    practices, _ = committed
    for factor in ("list_size", "imd_score"):
        tertile = pd.qcut(practices[factor].rank(method="first"), 3, labels=False)
        counts = pd.crosstab(tertile, practices["arm"])
        assert (counts["intervention"] - counts["control"]).abs().max() <= 2, factor


def test_patient_counts_and_covariates(committed):
    _, patients = committed
    assert len(patients) == 5599
    assert patients["patient_id"].is_unique
    assert patients["condition"].value_counts().to_dict() == {
        "diabetes": 2546,
        "copd": 1634,
        "ibs": 1419,
    }
    assert set(patients["sex"]) == {"female", "male"}
    assert patients["age"].dtype == np.int64
    assert patients["age"].between(18, 95).all()
    assert patients.groupby("condition")["age"].mean()["ibs"] < 60


def test_practice_sizes_are_unequal(committed):
    _, patients = committed
    sizes = patients.groupby("practice_id").size()
    assert len(sizes) == 43
    assert 0.5 <= sizes.std() / sizes.mean() <= 0.7
    assert sizes.min() >= 25


def test_questionnaire_return_counts(committed, analysis_outcomes):
    _, patients = committed
    names = [o["name"] for o in analysis_outcomes]
    assert returned(patients, names, 0).all()
    for month, rate in ((6, 0.810), (12, 0.728)):
        assert abs(returned(patients, names, month).mean() - rate) <= 0.001, month


def test_dropout_is_mostly_monotone(committed, analysis_outcomes):
    _, patients = committed
    names = [o["name"] for o in analysis_outcomes]
    r6, r12 = returned(patients, names, 6), returned(patients, names, 12)
    missed_both = (~r6 & ~r12).sum() / (~r12).sum()
    assert 0.5 < missed_both < 1


def test_item_nonresponse_includes_baseline(committed, analysis_outcomes):
    _, patients = committed
    names = [o["name"] for o in analysis_outcomes]
    for month in MONTHS:
        back = returned(patients, names, month)
        for name in names:
            rate = patients.loc[back, f"{name}_m{month}"].isna().mean()
            assert 0.01 <= rate <= 0.03, (name, month, rate)


def test_dropout_depends_on_observed_data(committed):
    """Logistic regression of 12-month return on age and baseline EQ-5D: not MCAR."""
    _, patients = committed
    frame = patients.loc[patients["eq5d_m0"].notna()]
    design = sm.add_constant(
        pd.DataFrame({"age10": frame["age"] / 10, "eq5d_m0": frame["eq5d_m0"]}).astype(float)
    )
    fit = sm.Logit(frame["eq5d_m12"].notna().astype(float), design).fit(disp=0)
    assert fit.tvalues["age10"] > 5
    assert fit.tvalues["eq5d_m0"] > 5


def test_values_inside_ranges_and_on_the_grid(committed, analysis_outcomes, spec):
    _, patients = committed
    steps = {o["name"]: o["step"] for o in spec["outcomes"]}
    for outcome in analysis_outcomes:
        low, high = outcome["range"]
        for month in MONTHS:
            values = patients[f"{outcome['name']}_m{month}"].dropna().to_numpy(dtype=float)
            assert values.min() >= low and values.max() <= high, outcome["name"]
            k = (values - low) / steps[outcome["name"]]
            np.testing.assert_allclose(k, np.round(k), atol=1e-6)


def test_floors_and_ceilings(committed):
    _, patients = committed
    baseline = patients["eq5d_m0"].dropna()
    assert 0.15 <= (baseline == 1).mean() <= 0.25
    assert (patients["sdm_m0"].dropna() == 100).mean() >= 0.1
    assert (patients["enablement_m0"].dropna() == 0).mean() >= 0.05


def test_icc_and_baseline_followup_correlation(committed, analysis_outcomes):
    _, patients = committed
    for outcome in analysis_outcomes:
        name = outcome["name"]
        for month in MONTHS:
            icc = anova_icc(patients[f"{name}_m{month}"], patients["practice_id"])
            assert 0.005 <= icc <= 0.08, (name, month, icc)
        r = patients[f"{name}_m0"].corr(patients[f"{name}_m12"])
        assert 0.35 <= r <= 0.75, (name, r)


def test_outcomes_are_correlated_with_each_other(committed):
    _, patients = committed
    assert patients["eq5d_m0"].corr(patients["gen_health_m0"]) > 0.3


def test_no_effect_by_default_and_configurable_effect(spec):
    def difference(s: dict) -> float:
        practices, patients = generate_trial(s, 5)
        arm = patients["practice_id"].map(practices.set_index("practice_id")["arm"])
        change = patients["gen_health_m12"] - patients["gen_health_m0"]
        return float(change[arm == "intervention"].mean() - change[arm == "control"].mean())

    assert abs(difference(spec)) < 3
    boosted = copy.deepcopy(spec)
    boosted["outcomes"][3]["effect"] = 1.0  # gen_health, latent sd 22
    assert 12 < difference(boosted) < 25


def test_same_seed_same_data_other_seed_other_data(spec):
    first, second = generate_trial(spec, SEED), generate_trial(spec, SEED)
    pd.testing.assert_frame_equal(first[1], second[1])
    other = generate_trial(spec, SEED + 1)
    assert not other[1].equals(first[1])
    assert not other[0].equals(first[0])


SMALL_SPEC = {
    "practices": {"n": 10, "n_withdrawn": 0, "id_prefix": "C"},
    "allocation": {"intervention": "sms", "control": "usual", "factors": ["imd_score"]},
    "patients": {
        "conditions": [{"name": "asthma", "n": 150}, {"name": "copd", "n": 90}],
        "cluster_size": {"cv": 0.4, "min": 8},
    },
    "followup": {
        "baseline_month": 0,
        "months": [{"month": 3, "response_rate": 0.65}],
        "predictors": {"age_per_10y": 0.3, "condition": {"copd": -0.2}},
    },
    "outcomes": [
        {"name": "pain", "range": [0, 10], "step": 1, "mean": 5, "sd": 2.5, "effect": 0.3},
        {"name": "qol", "range": [-0.5, 1], "step": 0.001, "mean": 0.8, "sd": 0.25},
        {"name": "steps", "range": [1, 5], "step": 0.2, "mean": 3, "sd": 1, "icc": 0.05},
    ],
}


def test_a_different_small_spec_generates_valid_data(tmp_path):
    practices, patients = generate_trial(SMALL_SPEC, 11)
    assert list(practices["practice_id"]) == [f"C{i:02d}" for i in range(1, 11)]
    assert practices["arm"].value_counts().to_dict() == {"sms": 5, "usual": 5}
    assert len(patients) == 240
    assert patients["condition"].value_counts().to_dict() == {"asthma": 150, "copd": 90}
    sizes = patients.groupby("practice_id").size()
    assert len(sizes) == 10 and sizes.min() >= 8
    assert sizes.std() / sizes.mean() == pytest.approx(0.4, abs=0.02)
    expected = ["patient_id", "practice_id", "age", "sex", "condition"] + [
        f"{o}_m{m}" for o in ("pain", "qol", "steps") for m in (0, 3)
    ]
    assert list(patients.columns) == expected
    for outcome in SMALL_SPEC["outcomes"]:
        low, high = outcome["range"]
        values = patients[[f"{outcome['name']}_m0", f"{outcome['name']}_m3"]]
        assert values.min().min() >= low and values.max().max() <= high
    assert returned(patients, ["pain", "qol", "steps"], 3).sum() == round(0.65 * 240)
    assert patients["pain_m0"].dtype == "Int64"
    write_trial_csv(practices, patients, tmp_path / "small")
    assert pd.read_csv(tmp_path / "small" / "patients.csv").shape == patients.shape


def test_csv_format_is_fixed(tmp_path):
    practices, patients = generate_trial(SMALL_SPEC, 1)
    practices.loc[0, "withdrawn"] = True
    write_trial_csv(practices, patients, tmp_path)
    text = (tmp_path / "practices.csv").read_text(encoding="utf-8")
    assert "\r" not in text
    assert text.splitlines()[1].endswith(",true")
    assert text.splitlines()[2].endswith(",false")
    assert ",," in (tmp_path / "patients.csv").read_text(encoding="utf-8")


def test_empty_spec_gives_a_generic_trial():
    practices, patients = generate_trial({}, 3)
    assert len(practices) == 44 and len(patients) == 1000
    assert "y_m12" in patients.columns


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: s["practices"].update(size=3), "size"),
        (lambda s: s["practices"].update(n="many"), "practices.n"),
        (lambda s: s["outcomes"][1].update(sd=-1), "outcomes[1].sd"),
        (lambda s: s["outcomes"][0].update(condition={"asthma": 0.1}), "asthma"),
        (lambda s: s["outcomes"][2].update(range=[1, 0]), "outcomes[2].range"),
        (lambda s: s["followup"]["months"][1].update(month=6), "followup.months[1].month"),
        (lambda s: s["followup"].update(item_missing=1.5), "followup.item_missing"),
        (lambda s: s["patients"]["cluster_size"].update(min=200), "cluster_size.min"),
        (lambda s: s["patients"]["cluster_size"].update(cv=50.0), "cluster_size.cv"),
        (lambda s: s["practices"].update(n_withdrawn=44), "practices.n_withdrawn"),
    ],
)
def test_bad_spec_names_the_key(spec, edit, key):
    bad = copy.deepcopy(spec)
    edit(bad)
    with pytest.raises(TrialstatsError, match=key.replace("[", r"\[").replace("]", r"\]")):
        generate_trial(bad, 1)


def test_load_names_the_file_and_key(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text("outcomes:\n  - name: x\n    stepp: 1\n", encoding="utf-8")
    with pytest.raises(TrialstatsError, match=r"synthetic\.yaml: outcomes\[0\].*stepp"):
        load_synthetic_spec(path)
    with pytest.raises(TrialstatsError, match="cannot read"):
        load_synthetic_spec(tmp_path / "missing.yaml")


def test_validation_fills_defaults_without_mutating_input():
    raw = {"outcomes": [{"name": "x"}]}
    filled = validate_synthetic_spec(raw)
    assert raw == {"outcomes": [{"name": "x"}]}
    assert filled["outcomes"][0]["icc"] == 0.03
    assert filled["practices"]["list_size"]["median"] == 7000
    assert filled["allocation"]["p_minimising"] == 0.8
