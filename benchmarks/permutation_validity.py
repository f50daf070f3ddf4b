"""Type I error of the clustered permutation test on constrained designs, by simulation.

Run from the repository root::

    nice .venv/bin/python benchmarks/permutation_validity.py [--trials 4000] [--seed 1]

The study of :func:`trialstats.simulation.constrained.permutation_validity` (its module
docstring gives the scenario, after Li et al. 2016) over the cells that ``trialstats
methods-check`` runs by default plus one whose randomisation space is sampled (24 practices,
10,000 of the C(24, 12) allocations scored per trial). Prints the rejection rate per cell with
its Monte Carlo 95% interval and the time taken; the rates should lie in [0.04, 0.06].
"""

from __future__ import annotations

import argparse
import time

from trialstats.simulation.constrained import PERMUTATION_CELLS, permutation_validity

CELLS = (*PERMUTATION_CELLS, (24, "continuous", 10_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for cell in CELLS:
        start = time.perf_counter()
        row = permutation_validity(trials=args.trials, seed=args.seed, cells=[cell]).iloc[0]
        space = ("all allocations" if row["space"] == "all"
                 else f"{int(row['space']):,} sampled allocations")
        half = 1.96 * row["type_i_error_mc_se"]
        print(f"J = {row['n_clusters']}, {row['outcome']}, best 10% of {space}: "
              f"type I error {row['type_i_error']:.4f} (95% MC interval "
              f"{row['type_i_error'] - half:.4f}-{row['type_i_error'] + half:.4f}) over "
              f"{row['trials']} trials [{time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
