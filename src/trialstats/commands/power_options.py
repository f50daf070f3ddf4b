"""Option groups of ``trialstats power`` for other outcomes and designs of the trial:
count outcomes (analytic), binary outcomes (simulation) and constrained allocation
(simulation), with what the verbs of :mod:`trialstats.commands.power` and
:mod:`trialstats.commands.design` share about them: the options a binary outcome leaves
unused, and the output of one power record (``--out`` CSV, ``--json`` or a sentence). Kept
apart from :mod:`trialstats.commands.power` so that each stays short."""

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
        "GLMM (see trialstats.power.simulate_binary); --icc is then the latent-scale ICC and "
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
