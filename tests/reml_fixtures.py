"""The lme4/lmerTest/pbkrtest reference datasets of the REML kernel.

Made by tests/fixtures/r/make_reml_fixtures.R; shared by test_reml, test_inference, test_icc.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).parent / "fixtures" / "reml"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())["datasets"]
NAMES = sorted(REFERENCE)


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y, X (lme4's model matrix) and 0-based cluster codes of a fixture dataset."""
    design = pd.read_csv(FIXTURES / f"{name}_design.csv")
    codes, _ = pd.factorize(design["cluster"])
    X = design[REFERENCE[name]["coef_names"]].to_numpy(float)
    return design["y"].to_numpy(float), X, codes


def value(name: str, key: str) -> np.ndarray:
    """The reference value ``key`` of dataset ``name``."""
    return np.asarray(REFERENCE[name][key]["value"], dtype=float)
