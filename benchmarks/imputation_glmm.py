"""Time of multiple imputation with binary and count columns (two-level GLMM draws).

Imputes and analyses, in one process, (a) the count trial of ``tests/fixtures/count_mi``
(619 patients, 16 practices, one count with an exposure offset) and (b) the trial of
``tests/fixtures/binary_trial`` (433 patients, 14 practices; a binary, a count with an
exposure and a continuous outcome), each with 20 imputations and 10 iterations, and prints
the seconds of the imputation (the chained equations, whose GLMM columns need one
imputation-model fit per imputation and visit) and of the analysis (the GLMM of each completed
dataset, pooled), best of ``REPEATS`` runs, in wall-clock and in CPU seconds (the CPU time
of this process is the steadier figure on a shared machine).

    .venv/bin/python benchmarks/imputation_glmm.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from trialstats.analysis.imputation import impute_trial
from trialstats.analysis.imputation_glmm import glmm_pooled_rows
from trialstats.config import load_config
from trialstats.data.validate import load_trial

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
IMPUTATIONS, ITERATIONS, REPEATS = 20, 10, 3


def main() -> None:
    for name in ("count_mi", "binary_trial"):
        config = load_config(FIXTURES / name / "config.yaml")
        patients = load_trial(config).patients
        best = np.full((2, 2), np.inf)  # (imputation, analyses) x (wall, CPU)
        for _ in range(REPEATS):
            start = _clocks()
            trial = impute_trial(patients, config, imputations=IMPUTATIONS, seed=1,
                                 iterations=ITERATIONS)
            middle = _clocks()
            for outcome in config["outcomes"]:
                if outcome.get("type", "continuous") != "continuous":
                    for month in config["design"]["followup_months"]:
                        glmm_pooled_rows(trial, config, outcome, month)
            end = _clocks()
            best = np.minimum(best, [middle - start, end - middle])
        print(f"{name:<14} imputation {best[0, 0]:6.2f} s ({best[0, 1]:6.2f} s CPU)   "
              f"GLMM analyses {best[1, 0]:5.2f} s ({best[1, 1]:5.2f} s CPU)   "
              f"({len(patients)} patients, {IMPUTATIONS} imputations x {ITERATIONS} "
              f"iterations)")


def _clocks() -> np.ndarray:
    """Wall-clock and CPU seconds now."""
    return np.array([time.perf_counter(), time.process_time()])


if __name__ == "__main__":
    main()
