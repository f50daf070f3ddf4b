"""Option groups of ``trialstats power`` for other outcomes and designs of the trial:
count outcomes (analytic and simulation, with the run of the count simulation), binary
outcomes (simulation) and constrained allocation (simulation), with what the verbs of
:mod:`trialstats.commands.power` and :mod:`trialstats.commands.design` share about them: the
options a binary outcome leaves unused, and the output of one power record (``--out`` CSV,
``--json`` or a sentence). Kept apart from :mod:`trialstats.commands.power` so that each
stays short."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from trialstats.errors import TrialstatsError


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

def count_arguments(parser: argparse.ArgumentParser, *, simulation: bool = False) -> None:
    """Add the count-outcome options of ``power analytic`` (or, with ``simulation``, of
    ``power simulate``, which adds ``--dispersion``)."""
    group = parser.add_argument_group(
        "count outcome",
        "--rate0 R0 --rate-ratio RR: two event rates, Hayes & Bennett (1999) (see "
        "trialstats.power.rates); --cluster-size is then the person-time per cluster; give "
        "--clusters-per-arm for power, or leave out one of --clusters-per-arm, --cluster-size "
        "and --rate-ratio (the detectable reduction) and give --target-power to solve for it"
        if not simulation
        else "--rate0 R0 --rate-ratio RR simulate counts analysed by the random-intercept "
        "Poisson (or, with --dispersion, negative binomial) GLMM (see "
        "trialstats.power.simulate_glmm); --cluster-size is the mean number of patients per "
        "cluster, each followed for one unit of person-time; --df-method one of "
        "between-within, z, residual",
    )
    group.add_argument("--rate0", type=float, metavar="R0",
                       help="control event rate per unit of person-time (mean over clusters)")
    group.add_argument("--rate-ratio", type=float, metavar="RR",
                       help="intervention / control rate ratio")
    group.add_argument("--cv-between", type=float, default=0.0, metavar="K",
                       help="between-cluster coefficient of variation of the rates (default 0)")
    if simulation:
        group.add_argument("--dispersion", type=float, default=0.0, metavar="K",
                           help="negative binomial dispersion of a patient's count, Var = mu + "
                           "K mu^2 (default 0: Poisson)")


def run_count_simulation(args: argparse.Namespace) -> None:
    """``power simulate --rate0 --rate-ratio``: counts analysed by the Poisson or negative
    binomial GLMM (:func:`trialstats.power.simulate_glmm.simulate_count_power`)."""
    from trialstats.power.simulate_glmm import simulate_count_power

    if args.rate0 is None or args.rate_ratio is None:
        raise TrialstatsError("A count outcome needs both --rate0 and --rate-ratio.")
    unused = [flag for flag, value in (
        ("--p0", args.p0), ("--p1", args.p1), ("--icc", args.icc), ("--effect", args.effect),
        ("--difference", args.difference), ("--sd", args.sd), ("--design", args.design),
        ("--baseline-corr", args.baseline_corr), ("--cluster-autocorr", args.cluster_autocorr),
        ("--baseline", args.baseline), ("--from", args.from_dir),
        ("--target-power", args.target_power), ("--batch-size", args.batch_size),
        ("--constrain-cutoff", args.constrain_cutoff), ("--covariate-share", args.covariate_share),
        ("--sequences", args.sequences), ("--clusters-per-sequence", args.clusters_per_sequence),
    ) if value is not None] + (["--attrition"] if args.attrition else []) + (
        ["--generator"] if args.generator != "patients" else []) + (
        ["--analysis"] if args.analysis != "mixed-model" else [])
    if unused:
        raise TrialstatsError(
            f"{', '.join(unused)} do not apply to the count simulation (--rate0 --rate-ratio); "
            "the clustering is --cv-between, give the patients per cluster as --cluster-size "
            "and --clusters-per-arm (it computes power, it does not solve for a design).")
    missing = [flag for flag, value in (
        ("--clusters-per-arm", args.clusters_per_arm), ("--cluster-size", args.cluster_size),
    ) if value is None]
    if missing:
        raise TrialstatsError(f"Missing {', '.join(missing)} for the count simulation.")
    k_i = max(math.ceil(args.allocation_ratio * args.clusters_per_arm - 1e-9), 1)
    row = simulate_count_power(
        rate0=args.rate0, rate_ratio=args.rate_ratio, clusters_per_arm=args.clusters_per_arm,
        k_intervention=k_i, cluster_size=args.cluster_size, cv=args.cv,
        cv_between=args.cv_between, dispersion=args.dispersion, reps=args.reps, seed=args.seed,
        df_method=args.df_method, alpha=args.alpha, n_agq=args.quadrature_points,
        min_cluster_size=args.min_cluster_size,
    )
    emit_record(args, row, lambda: (
        f"Power {row['power']:.4f} (Monte Carlo SE {row['mc_se']:.4f}, {row['reps']} trials) "
        f"to detect rates {row['rate0']:g} vs {row['rate1']:g} (rate ratio "
        f"{row['rate_ratio']:g}) with {row['clusters_per_arm']} control + "
        f"{row['k_intervention']} intervention clusters of mean size {row['cluster_size']:g}, "
        f"between-cluster CV {row['cv_between']:g}, dispersion {row['dispersion']:g}.\n"
        f"Type I error at rate ratio 1: {row['type_i_error']:.4f} (Monte Carlo SE "
        f"{row['type_i_error_mc_se']:.4f}); df method {row['df_method']}; "
        f"{row['n_failed']} fits did not converge; {row['n_negative_binomial']} analysed "
        f"by the negative binomial GLMM.\nMethod: {row['method']}."))


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


def binary_unused(args: argparse.Namespace,
                  extra: Iterable[tuple[str, Any]] = ()) -> list[str]:
    """The flags given that a binary outcome (``--p0 --p1``) does not use: the
    continuous-outcome options, and those of ``extra`` (flag, value) that are not None.

    Raises
    ------
    TrialstatsError
        When only one of ``--p0`` and ``--p1`` is given.
    """
    if args.p0 is None or args.p1 is None:
        raise TrialstatsError("A binary outcome needs both --p0 and --p1.")
    return [flag for flag, value in (
        ("--effect", args.effect), ("--difference", args.difference), ("--sd", args.sd),
        ("--baseline-corr", args.baseline_corr), ("--cluster-autocorr", args.cluster_autocorr),
        ("--baseline", args.baseline), ("--from", args.from_dir), *extra,
    ) if value is not None]


def plain(value: Any) -> Any:
    """A JSON-safe scalar: NaN and infinity become null, numpy scalars Python numbers and
    whole numbers integers."""
    if value is None or isinstance(value, str):
        return value
    number = float(value)
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def emit_record(args: argparse.Namespace, record: dict[str, Any],
                sentence: Callable[[], str]) -> None:
    """Write one power record as a one-row CSV to ``--out`` (when given), then print it as
    JSON (``--json``, values made :func:`plain`) or as ``sentence()``."""
    if args.out is not None:
        import pandas as pd

        from trialstats.data.io import write_csv

        write_csv(pd.DataFrame([record]), args.out)
    if args.json:
        print(json.dumps({key: plain(value) for key, value in record.items()}))
    else:
        print(sentence())
