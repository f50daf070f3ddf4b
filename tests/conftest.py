"""Shared fixtures: a small valid trial written to disk with a matching config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml


def small_trial(seed: int = 1, clusters_per_arm: int = 3, per_cluster: int = 4):
    """A tiny valid two-arm trial with one outcome measured at months 0 and 12."""
    rng = np.random.default_rng(seed)
    n_clusters = 2 * clusters_per_arm
    practices = pd.DataFrame({
        "practice_id": [f"P{i + 1}" for i in range(n_clusters)],
        "arm": ["intervention", "control"] * clusters_per_arm,
        "list_size": rng.integers(2000, 9000, n_clusters),
        "withdrawn": ["false"] * n_clusters,
    })
    rows = []
    for j, pid in enumerate(practices["practice_id"]):
        for i in range(per_cluster):
            rows.append({
                "patient_id": f"{pid}-{i + 1}",
                "practice_id": pid,
                "age": int(rng.integers(30, 80)),
                "condition": ["diabetes", "copd"][(i + j) % 2],
                "score_m0": round(float(rng.uniform(10, 90)), 1),
                "score_m12": round(float(rng.uniform(10, 90)), 1),
            })
    return practices, pd.DataFrame(rows)


def trial_config(practices: Path, patients: Path) -> dict:
    """The config matching :func:`small_trial`."""
    return {
        "data": {"practices": str(practices), "patients": str(patients)},
        "design": {"intervention": "intervention", "followup_months": [12], "primary_month": 12},
        "outcomes": [{"name": "score", "range": [0, 100],
                      "mcid": {"scale": "standardised", "value": 0.2}}],
        "analysis": {"covariates": ["age", "condition"]},
    }


class TrialFiles:
    """A small trial on disk: edit ``practices``/``patients``/``config``, then ``write()``."""

    def __init__(self, root: Path):
        self.root = root
        self.practices, self.patients = small_trial()
        self.practices_path = root / "practices.csv"
        self.patients_path = root / "patients.csv"
        self.config = trial_config(self.practices_path, self.patients_path)
        self.config_path = root / "config.yaml"

    def write(self) -> Path:
        self.practices.to_csv(self.practices_path, index=False)
        self.patients.to_csv(self.patients_path, index=False)
        self.config_path.write_text(yaml.safe_dump(self.config))
        return self.config_path


@pytest.fixture
def trial_files(tmp_path: Path) -> TrialFiles:
    """A small valid trial in ``tmp_path`` that a test may edit before writing."""
    return TrialFiles(tmp_path)
