"""Option groups of ``trialstats power`` for other outcomes and designs of the trial:
count outcomes (analytic), binary outcomes (simulation) and constrained allocation
(simulation). Kept apart from :mod:`trialstats.commands.power` so that each stays short."""

from __future__ import annotations

import argparse


def constraint_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the constrained-allocation options of ``power simulate``."""
    group = parser.add_argument_group(
        "constrained allocation (see trialstats.simulation.constrained)",
        "Give the practices a covariate that explains part of the cluster variance, allocate "
        "each simulated trial by constrained randomisation on it (as `trialstats allocate "
        "--method constrained`), and report power without and with the constraint on the "
        "same trials (two rows; --json prints a list of the two records).")
    group.add_argument("--constrain-cutoff", type=float, metavar="Q",
                       help="keep the best fraction Q of allocations by l2 balance (e.g. 0.1)")
    group.add_argument("--covariate-share", type=float, metavar="R2",
                       help="share of the cluster variance (the ICC) explained by the "
                       "balancing covariate, in [0, 1); needed with --constrain-cutoff")
    group.add_argument("--constrain-sample", type=int, default=10_000, metavar="N",
                       help="allocations sampled when there are more than 200,000 "
                       "(default 10000)")
    group.add_argument("--analysis", choices=("mixed-model", "mixed-model-adjusted",
                                              "permutation"), default="mixed-model",
                       help="analyse each trial by the primary mixed model (default), the "
                       "mixed model adjusted for the balancing covariate, or the clustered "
                       "permutation test over its accepted allocations, adjusted for the "
                       "covariate")

def count_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the count-outcome options of ``power analytic``."""
    group = parser.add_argument_group(
        "count outcome",
        "--rate0 R0 --rate-ratio RR: two event rates, Hayes & Bennett (1999) (see "
        "trialstats.power.rates); --cluster-size is then the person-time per cluster; give "
        "--clusters-per-arm for power or --target-power for clusters per arm",
    )
    group.add_argument("--rate0", type=float, metavar="R0",
                       help="control event rate per unit of person-time")
    group.add_argument("--rate-ratio", type=float, metavar="RR",
                       help="intervention / control rate ratio")
    group.add_argument("--cv-between", type=float, default=0.0, metavar="K",
                       help="between-cluster coefficient of variation of the rates (default 0)")

def binary_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the binary-outcome options of ``power simulate``."""
    group = parser.add_argument_group(
        "binary outcome",
        "--p0 P0 --p1 P1 simulate a binary outcome analysed by the random-intercept logistic "
        "GLMM (see trialstats.power.simulate_glmm); --icc is then the latent-scale ICC and "
        "--df-method one of between-within, z, residual",
    )
    group.add_argument("--p0", type=float, metavar="P0",
                       help="risk of a typical control cluster (random intercept 0)")
    group.add_argument("--p1", type=float, metavar="P1",
                       help="risk of a typical intervention cluster")
    group.add_argument("--quadrature-points", type=int, default=15, metavar="K",
                       help="adaptive Gauss-Hermite nodes of the GLMM fits (default 15)")
