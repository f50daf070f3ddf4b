"""Simulated trials under constrained randomisation: the permutation test's size and power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trialstats.errors import TrialstatsError
from trialstats.simulation.constrained import PERMUTATION_COLUMNS, permutation_validity

CELL = [(12, "continuous", None)]


@pytest.fixture(scope="module")
def validity():
    return permutation_validity(trials=400, seed=3, cells=CELL)


def test_permutation_test_holds_its_size_on_constrained_designs(validity):
    # 12 practices: the best 10% of the C(12, 6) = 924 allocations, 92 accepted; the test is
    # exact, its size the largest multiple of 2/92 (mirror images tie) not above 0.05.
    exact = 4 / 92
    row = validity.iloc[0]
    assert list(validity.columns) == list(PERMUTATION_COLUMNS)
    assert row["trials"] == 400 and row["space"] == "all" and row["cutoff"] == 0.1
    se = math.sqrt(exact * (1 - exact) / 400)
    assert abs(row["type_i_error"] - exact) < 3.5 * se
    assert row["type_i_error_mc_se"] == pytest.approx(
        math.sqrt(row["type_i_error"] * (1 - row["type_i_error"]) / 400))


def test_same_seed_same_table_other_seed_other_draws(validity):
    again = permutation_validity(trials=400, seed=3, cells=CELL)
    assert again.equals(validity)
    other = permutation_validity(trials=60, seed=4, cells=[(14, "binary", 2000)])
    assert other["space"].iloc[0] == "2000"
    assert 0 <= other["type_i_error"].iloc[0] <= 0.2


def test_bad_cells_are_user_errors():
    with pytest.raises(TrialstatsError, match="even number"):
        permutation_validity(trials=10, seed=1, cells=[(7, "continuous", None)])
    with pytest.raises(TrialstatsError, match="at least two"):
        permutation_validity(trials=1, seed=1)
    assert np.isfinite(permutation_validity(trials=2, seed=1, cells=CELL)["type_i_error"]).all()
