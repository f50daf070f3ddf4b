"""Helpers for the report tests: a small trial with withdrawals and dropout, and results
tables shaped like ``primary.csv`` / ``sensitivity.csv`` made from it by a simple method."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from trialstats.analysis.effects import baseline_sd, mcid_raw, mcid_verdict
from trialstats.config import load_config
from trialstats.contract import COLUMNS as RESULT_COLUMNS
from trialstats.data.fingerprint import FINGERPRINT_FILE, fingerprint
from trialstats.data.validate import Trial, load_trial, outcome_column
from trialstats.power.grid import expand_grid, gather

#: Tables of the flow trial's report (with sensitivity results), in report order.
TABLES = ("table1_baseline", "table2_primary", "table3_other", "table4_sensitivity", "provenance")

#: Practices that withdraw after randomisation (P4 control, P5 intervention) in :func:`flow_trial`.
WITHDRAWN = ("P4", "P5")


def flow_trial(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eight practices (two withdrawn), two outcomes at months 0, 6 and 12, known dropout.

    Patients of withdrawn practices have baseline values only. Elsewhere, every fifth
    patient has no follow-up at all, every seventh none at 12 months, and the third
    patient of each practice lacks the ``sdm`` baseline; two ages are missing.
    """
    rng = np.random.default_rng(seed)
    ids = [f"P{i}" for i in range(1, 9)]
    practices = pd.DataFrame({
        "practice_id": ids,
        "arm": ["intervention", "control"] * 4,
        "list_size": rng.integers(2000, 15000, 8),
        "imd_score": rng.gamma(2.0, 10.0, 8).round(2),
        "withdrawn": [pid in WITHDRAWN for pid in ids],
    })
    rows = []
    k = 0
    for j, pid in enumerate(ids):
        effect = rng.normal(0, 4)
        for i in range(6 + j % 3):
            k += 1
            base = float(np.clip(rng.normal(60 + effect, 15), 0, 100))
            row = {
                "patient_id": f"{pid}-{i + 1}", "practice_id": pid,
                "age": float(rng.integers(30, 85)), "sex": ["female", "male"][(i + j) % 2],
                "condition": ["diabetes", "copd", "ibs"][(i * 2 + j) % 3],
                "sdm_m0": round(base, 0), "eq5d_m0": round(float(rng.uniform(0.2, 1)), 3),
            }
            for month in (6, 12):
                row[f"sdm_m{month}"] = round(float(np.clip(
                    base + rng.normal(3 * (j % 2 == 0) + effect, 10), 0, 100)), 0)
                row[f"eq5d_m{month}"] = round(float(rng.uniform(0.2, 1)), 3)
            if pid in WITHDRAWN or k % 5 == 0:
                for month in (6, 12):
                    row[f"sdm_m{month}"] = row[f"eq5d_m{month}"] = np.nan
            elif k % 7 == 0:
                row["sdm_m12"] = row["eq5d_m12"] = np.nan
            if i == 2:
                row["sdm_m0"] = np.nan
            rows.append(row)
    patients = pd.DataFrame(rows)
    patients.loc[[4, 30], "age"] = np.nan
    return practices, patients


def flow_config(practices: Path, patients: Path) -> dict:
    """The configuration of :func:`flow_trial`."""
    return {
        "data": {"practices": str(practices), "patients": str(patients)},
        "design": {"intervention": "intervention", "followup_months": [6, 12],
                   "primary_month": 12},
        "outcomes": [
            {"name": "sdm", "label": "Shared decision-making", "primary": True,
             "range": [0, 100], "mcid": {"scale": "standardised", "value": 0.2}},
            {"name": "eq5d", "label": "EQ-5D index", "range": [-0.594, 1],
             "mcid": {"scale": "raw", "value": 0.074}},
        ],
        "analysis": {"covariates": ["age", "condition"],
                     "df_method": ["kenward-roger", "satterthwaite"]},
        "report": {"table1": ["list_size", "imd_score", "sex"]},
    }


def write_flow_trial(root: Path) -> Path:
    """Write :func:`flow_trial` and its config under ``root``; return the config path."""
    practices, patients = flow_trial()
    practices.to_csv(root / "practices.csv", index=False)
    patients.to_csv(root / "patients.csv", index=False)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(flow_config(root / "practices.csv", root / "patients.csv")))
    return path


def _fit(trial: Trial, outcome: dict, month: int, method: str, shift: float) -> dict:
    """A cluster-inflated ANCOVA: OLS on treatment and baseline, SE times the design
    effect; ``shift`` (in baseline SDs) is added to the estimate."""
    config = trial.config
    design = config["design"]
    patients = trial.patients
    y_col = outcome_column(outcome["name"], month)
    b_col = outcome_column(outcome["name"], design["baseline_month"])
    needed = [y_col, b_col, *config["analysis"]["covariates"]]
    data = patients[patients[needed].notna().all(axis=1)]
    x = np.column_stack([np.ones(len(data)), data["treated"], data[b_col]])
    y = data[y_col].to_numpy(float)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    sigma2 = resid @ resid / (len(y) - 3)
    se_ols = float(np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[1, 1]))
    groups = pd.Series(resid).groupby(data[design["cluster"]].to_numpy())
    m = groups.size().mean()
    between = float(groups.mean().var(ddof=1))
    var_cluster = max(between - sigma2 / m, 0.0)
    icc = var_cluster / (var_cluster + sigma2)
    se = se_ols * np.sqrt(1 + (m - 1) * icc)
    n_clusters = data[design["cluster"]].nunique()
    df = n_clusters - 2 - (0.4 if method == "satterthwaite" else 0)
    sd0 = baseline_sd(patients[b_col])
    estimate = float(beta[1]) + shift * sd0
    t = stats.t.ppf(0.975, df)
    mcid = mcid_raw(outcome.get("mcid"), sd0)
    low, high = estimate - t * se, estimate + t * se
    return {
        "outcome": outcome["name"], "month": month, "method": method,
        "n_patients": len(data), "n_clusters": n_clusters, "estimate": estimate, "se": se,
        "df": df, "ci_low": low, "ci_high": high,
        "p_value": float(2 * stats.t.sf(abs(estimate / se), df)),
        "var_cluster": var_cluster, "var_residual": sigma2, "icc": icc,
        "icc_ci_low": max(icc - 0.05, 0.0), "icc_ci_high": min(icc + 0.08, 1.0),
        "sd_baseline": sd0, "effect_size": estimate / sd0, "es_ci_low": low / sd0,
        "es_ci_high": high / sd0, "mcid": mcid,
        "mcid_verdict": mcid_verdict(low, high, mcid, outcome["higher_is_better"]),
        "converged": True, "notes": "",
    }


def fake_results(trial: Trial) -> pd.DataFrame:
    """A ``primary.csv`` for ``trial``: every outcome x follow-up month x df method."""
    config = trial.config
    rows = [
        _fit(trial, outcome, month, method, 0.0)
        for outcome in config["outcomes"]
        for month in config["design"]["followup_months"]
        for method in config["analysis"]["df_method"]
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def fake_sensitivity(trial: Trial) -> pd.DataFrame:
    """A ``sensitivity.csv`` for ``trial``: two analyses of every outcome at the primary month;
    the second marked as not converged."""
    config = trial.config
    method = config["analysis"]["df_method"][0]
    month = config["design"]["primary_month"]
    rows = []
    for outcome in config["outcomes"]:
        for analysis, shift in (("multiple imputation", 0.03), ("cluster-level", -0.05)):
            row = _fit(trial, outcome, month, method, shift) | {"analysis": analysis}
            if analysis == "cluster-level":
                row |= {"converged": False, "notes": "singular fit"}
            rows.append(row)
    return pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "analysis"])


def write_results(trial: Trial, results: Path, sensitivity: bool = True) -> None:
    """Write the validated tables and fake results the way the workflow lays them out."""
    (results / "data").mkdir(parents=True, exist_ok=True)
    trial.practices.to_parquet(results / "data" / "practices.parquet")
    trial.patients.to_parquet(results / "data" / "patients.parquet")
    (results / "data" / FINGERPRINT_FILE).write_text(json.dumps(fingerprint(trial.config)))
    fake_results(trial).to_csv(results / "primary.csv", index=False)
    if sensitivity:
        fake_sensitivity(trial).to_csv(results / "sensitivity.csv", index=False)


def fake_power(methods: tuple[str, ...] = ("analytic", "simulation"), **grid) -> pd.DataFrame:
    """A power-grid table shaped like ``results/power/power.csv`` with known answers.

    Clusters per arm 4, 6, 8 x ICC 0.01, 0.05, 0.1 x effect 0.3, 0.5 (``grid`` overrides any
    grid key); analytic power ``1 - exp(-k * effect / (1 + 20 * icc))``, simulated power 0.03
    higher (at most 1) with the binomial Monte Carlo SE of 200 trials.
    """
    values = {"clusters_per_arm": [4, 6, 8], "allocation_ratio": [1], "cluster_size": [20],
              "cv": [0.4], "icc": [0.01, 0.05, 0.1], "effect": [0.3, 0.5],
              "attrition": [0.2], "rho_s": [0.5], "rho_c": [0.5]} | grid
    scenarios = expand_grid({"grid": values})
    analytic = 1 - np.exp(-scenarios["clusters_per_arm"] * scenarios["effect"]
                          / (1 + 20 * scenarios["icc"]))
    parts = []
    for method in methods:
        part = scenarios.assign(method=method, baseline="ancova", alpha=0.05,
                                k_intervention=scenarios["clusters_per_arm"])
        if method == "analytic":
            part = part.assign(power=analytic, df_method="analytic-t")
        else:
            power = np.minimum(analytic + 0.03, 1.0)
            part = part.assign(power=power, mc_se=np.sqrt(power * (1 - power) / 200),
                               df_method="between-within", generator="patients", reps=200,
                               seed=7)
        parts.append(part)
    return gather(parts)


def load(config_path: Path) -> Trial:
    """Validate the trial a config file describes."""
    return load_trial(load_config(config_path))


def ascii_minus(text: str) -> str:
    """``text`` with the true minus sign of the documents as the display CSVs write it."""
    return text.replace("−", "-")


def table_cells(out: Path, name: str) -> list[list[str]]:
    """Header and body cells of the report table ``name`` as written to its CSV."""
    frame = pd.read_csv(out / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
    return [list(frame.columns), *frame.to_numpy().tolist()]


class HtmlTables(HTMLParser):
    """Cell texts of every <table>, header row included, and every image source."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_sensitivity_methods_are_described_once_per_family():
    from trialstats.report.methods import _sensitivity_descriptions

    labels = ["multiple imputation (m=5)", "GEE (Mancl-DeRouen)", "GEE (Kauermann-Carroll)",
              "subgroup: copd (exploratory)", "subgroup: ibs (exploratory)", "bootstrap"]
    described = _sensitivity_descriptions(labels)
    assert len(described) == 4
    assert described[0].startswith("multiple imputation (m=5): ")
    assert "Rubin's rules" in described[0]
    assert "Mancl–DeRouen and Kauermann–Carroll" in described[1]
    assert described[3] == "bootstrap"


def test_permutation_and_delta_analyses_are_described_with_their_references():
    from trialstats.report.methods import REFERENCES, _sensitivity_descriptions

    labels = ["clustered permutation test (Gail et al. 1996)", "delta-adjustment"]
    cites = ["consort", "gail", "li-constrained", "carpenter-kenward"]
    permutation, delta = _sensitivity_descriptions(labels, cites)
    assert "test inversion" in permutation and permutation.endswith("[2, 3]")
    assert "missing not at random" in delta and "tipping point" in delta
    assert delta.endswith("[4]")
    assert "logistic" not in permutation  # continuous outcomes only
    families = {"clustered permutation test", "delta-adjustment"}
    permutation, delta = _sensitivity_descriptions(labels, cites, glmm=families)
    assert "logistic regression (risk difference)" in permutation
    assert "log odds or log rate" in delta
    assert REFERENCES["gail"].startswith("Gail MH") and "1996;15:1069" in REFERENCES["gail"]


def test_layout_counts_capitals_wider():
    """An abbreviation in capitals (MCID) needs more room than as many lower-case letters: in
    Latin Modern bold at 8 pt, MCID is 0.33 in wide, and the layout gives its column at least
    that."""
    import pandas as pd

    from trialstats.report.document import Table
    from trialstats.report.layout import table_layout

    table = Table(name="t", title="T", columns=("Outcome", "MCID", "mcid"),
                  rows=(("a", "1", "1"),), depth=(0,), notes="", data=pd.DataFrame())
    layout = table_layout(table)
    assert layout.widths[1] > layout.widths[2]
    assert layout.widths[1] * 72 / layout.size >= 0.33 * 72 / 8
