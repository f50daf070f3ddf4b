"""Type I error of the clustered permutation test on constrained designs, by simulation.

Run from the repository root::

    nice .venv/bin/python benchmarks/permutation_validity.py [--trials 4000] [--seed 1]

A scenario like those of Li et al. (2016, *Stat Med* 35:1565). Each
simulated trial draws J practices with two prognostic practice covariates, ``x1 ~ N(0, 1)``
and ``x2 ~ Bernoulli(0.5)``, and sizes uniform on 10..40 patients; allocates J/2 of them by
constrained randomisation (l2 balance on x1 and x2, the best 10% of all C(J, J/2) allocations
or of a uniform sample of 10,000 of them, one drawn); then generates outcomes with no
intervention effect,

    continuous: y_ij = x1_j + 0.5 x2_j + u_j + e_ij,  u_j ~ N(0, 0.05), e_ij ~ N(0, 0.95)
    binary:     logit P(y_ij = 1) = -0.5 + 0.5 x1_j + 0.5 x2_j + u_j,  u_j ~ N(0, 0.2)

and tests the intervention with the clustered permutation test over the accepted allocations,
adjusted for x1 and x2 (:func:`trialstats.analysis.permutation.permutation_test`), rejecting
at p <= 0.05. Prints the rejection rate per scenario with its Monte Carlo 95% interval. The
test is exact by construction when the trial's allocation is drawn from the set it is
permuted over, so the rates should lie in [0.04, 0.06] (the discreteness of p-values puts the
exact size a little under 0.05: 64/1287 = 0.0497 for J = 16).

``type_one_error`` is a plain function of its arguments so that ``trialstats methods-check``
can call it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from trialstats.allocation.balance import balance_scores, covariate_matrix
from trialstats.allocation.constrained import (
    accepted_indices,
    enumerate_allocations,
    sample_allocations,
)
from trialstats.analysis.design import ModelData
from trialstats.analysis.permutation import permutation_test, practice_residuals

SCENARIOS = (
    {"practices": 16, "outcome": "continuous", "sample": None},
    {"practices": 16, "outcome": "binary", "sample": None},
    {"practices": 24, "outcome": "continuous", "sample": 10_000},
)


def _trial(rng, practices, outcome, space, sample):
    x1 = rng.normal(size=practices)
    x2 = (rng.random(practices) < 0.5).astype(float)
    if x2.min() == x2.max():
        x2[0] = 1 - x2[0]
    z, _ = covariate_matrix(pd.DataFrame({"x1": x1, "x2": x2}), ["x1", "x2"])
    allocations = space if sample is None else sample_allocations(
        practices, practices // 2, sample, rng)
    accepted = allocations[accepted_indices(balance_scores(allocations, z), cutoff=0.1)]
    observed = accepted[rng.integers(len(accepted))]
    sizes = rng.integers(10, 41, size=practices)
    codes = np.repeat(np.arange(practices), sizes)
    if outcome == "continuous":
        u = rng.normal(0, np.sqrt(0.05), practices)
        y = x1[codes] + 0.5 * x2[codes] + u[codes] + rng.normal(0, np.sqrt(0.95), codes.size)
    else:
        u = rng.normal(0, np.sqrt(0.2), practices)
        eta = -0.5 + 0.5 * x1[codes] + 0.5 * x2[codes] + u[codes]
        y = (rng.random(codes.size) < 1 / (1 + np.exp(-eta))).astype(float)
    x = np.column_stack([np.ones(codes.size), observed[codes], x1[codes], x2[codes]])
    data = ModelData(y=y, X=x, columns=("(Intercept)", "treated", "x1", "x2"),
                     cluster_codes=codes, cluster_ids=tuple(map(str, range(practices))),
                     excluded={}, n_randomised=codes.size)
    residuals, shift, treated = practice_residuals(data, outcome == "binary")
    return permutation_test(residuals, shift, treated, accepted)["p_value"]


def type_one_error(
    practices: int, outcome: str, trials: int, seed: int, sample: int | None = None,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Rejection rate of the permutation test under the null on constrained designs.

    Returns
    -------
    dict
        ``practices, outcome, trials, rejection_rate, mc_low, mc_high`` (normal 95% Monte
        Carlo interval).
    """
    space = enumerate_allocations(practices, practices // 2) if sample is None else None
    streams = np.random.SeedSequence([seed, practices, outcome == "binary"]).spawn(trials)
    rejected = sum(
        _trial(np.random.default_rng(s), practices, outcome, space, sample) <= alpha
        for s in streams
    )
    rate = rejected / trials
    half = 1.96 * np.sqrt(rate * (1 - rate) / trials)
    return {"practices": practices, "outcome": outcome, "trials": trials,
            "rejection_rate": rate, "mc_low": rate - half, "mc_high": rate + half}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for scenario in SCENARIOS:
        start = time.perf_counter()
        result = type_one_error(scenario["practices"], scenario["outcome"], args.trials,
                                args.seed, scenario["sample"])
        space = ("all allocations" if scenario["sample"] is None
                 else f"{scenario['sample']:,} sampled allocations")
        print(f"J = {result['practices']}, {result['outcome']}, best 10% of {space}: "
              f"type I error {result['rejection_rate']:.4f} (95% MC interval "
              f"{result['mc_low']:.4f}-{result['mc_high']:.4f}) over {result['trials']} trials "
              f"[{time.perf_counter() - start:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
