"""Speed of constrained randomisation: scoring every allocation of 20 practices, beside cvcrand.

Run from the repository root::

    .venv/bin/python benchmarks/allocation.py [--repeats 5] [--practices 20]

Data: ``--practices`` practices (10 per arm: C(20, 10) = 184,756 allocations) with three
continuous covariates and a three-level categorical one, drawn with a fixed seed. Prints the
wall-clock seconds (best of ``--repeats``) to enumerate and score every allocation, and of the
whole constrained randomisation (enumerate, score, keep the best 10%, draw, pair
co-allocation). When ``Rscript`` with cvcrand is on the PATH, runs ``cvrall`` on the same data
(``nosim = TRUE``: every allocation; ``bhist``/``check_validity`` off) in the same run, prints
its time (R's ``system.time`` around the call, R start-up excluded), the ratio, and whether the
two give the same cut-off score.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trialstats.allocation.balance import balance_scores, covariate_matrix
from trialstats.allocation.constrained import (
    constrained_randomisation,
    enumerate_allocations,
    pair_coallocation,
)

R_SCRIPT = """
suppressPackageStartupMessages(library(cvcrand))
x <- read.csv("{data}", stringsAsFactors = FALSE)
best <- Inf
for (i in seq_len({repeats})) {{
  elapsed <- system.time(result <- cvrall(
    clustername = x$id, x = x[, c("a", "b", "c", "region")], categorical = "region",
    ntotal_cluster = nrow(x), ntrt_cluster = nrow(x) / 2, cutoff = 0.1, seed = 1,
    balancemetric = "l2", nosim = TRUE, bhist = FALSE, check_validity = FALSE))[["elapsed"]]
  best <- min(best, elapsed)
}}
cat(best, result$bscores[[2]][2], "\\n")
"""


def best_time(func, repeats: int):
    """Fastest of ``repeats`` calls and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def cvcrand_time(practices: pd.DataFrame, repeats: int) -> tuple[float, float] | None:
    """cvcrand's best time and its (rounded) cut-off score, or None without R/cvcrand."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "practices.csv"
        practices.to_csv(data, index=False)
        run = subprocess.run(
            ["Rscript", "-e", R_SCRIPT.format(data=data, repeats=repeats)],
            capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(f"cvcrand not run: {run.stderr.strip().splitlines()[-1:]}")
        return None
    elapsed, cutoff = run.stdout.split()
    return float(elapsed), float(cutoff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20251130)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.practices
    practices = pd.DataFrame({
        "id": [f"P{j:02d}" for j in range(n)], "a": rng.normal(5000, 2000, n).round(),
        "b": rng.uniform(5, 50, n).round(1), "c": rng.integers(20, 80, n),
        "region": rng.choice(["north", "south", "west"], n),
    })
    covariates = ["a", "b", "c", "region"]
    z, _ = covariate_matrix(practices, covariates, ["region"])

    def score_all():
        return balance_scores(enumerate_allocations(n, n // 2), z, "l2")

    def whole():
        result = constrained_randomisation(z, n // 2, cutoff=0.1, seed=1)
        pair_coallocation(result.accepted, list(practices["id"]))
        return result

    seconds, scores = best_time(score_all, args.repeats)
    whole_seconds, result = best_time(whole, args.repeats)
    print(f"{n} practices, {len(scores):,} allocations, {z.shape[1]} score columns")
    print(f"trialstats: enumerate + score {seconds:.3f} s; whole constrained randomisation "
          f"{whole_seconds:.3f} s; cut-off score {result.cutoff_score:.3f}")
    peer = cvcrand_time(practices, max(1, min(args.repeats, 3)))
    if peer is None:
        print("cvcrand: not available (Rscript with cvcrand not found)")
        return
    r_seconds, r_cutoff = peer
    print(f"cvcrand::cvrall (nosim, no histogram, no validity check): {r_seconds:.3f} s; "
          f"cut-off score {r_cutoff:.3f} (same as trialstats: "
          f"{round(result.cutoff_score, 3) == r_cutoff})")
    print(f"ratio cvcrand / trialstats (whole): {r_seconds / whole_seconds:.1f}x")


if __name__ == "__main__":
    main()
