"""``trialstats analyse``: the primary analysis into ``primary.csv``."""

from __future__ import annotations

import argparse
from pathlib import Path

from trialstats.commands.inputs import add_trial_arguments, read_trial
from trialstats.contract import primary_method
from trialstats.data.io import write_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyse`` subcommand."""
    parser = subparsers.add_parser(
        "analyse",
        help="primary analysis: mixed model per outcome x follow-up month x df method",
        description="Fit the baseline-adjusted random-intercept model (exact REML) to every "
        "configured outcome at every follow-up month and write the tidy results "
        "(primary.csv) to --out.",
    )
    add_trial_arguments(parser)
    parser.add_argument(
        "--outcome", action="append", metavar="NAME",
        help="analyse only this outcome (repeatable; default: all)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FILE",
                        help="the tidy results (CSV)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the primary analysis and write its table to ``--out``; print one line per outcome."""
    from trialstats.analysis.primary import analyse_trial

    config, patients = read_trial(args)
    results = analyse_trial(patients, config, args.outcome)
    write_csv(results, args.out)
    methods = results["outcome"].map({o["name"]: primary_method(config, o)
                                      for o in config["outcomes"]})
    for row in results[results["method"] == methods].itertuples():
        print(
            f"{row.outcome} month {row.month}: {row.n_patients:,} patients in "
            f"{row.n_clusters} clusters; {row.effect_measure} {row.estimate:.4g} "
            f"({row.ci_low:.4g} to {row.ci_high:.4g}), {row.mcid_verdict or 'no verdict'}"
            + (f" [{row.notes}]" if isinstance(row.notes, str) and row.notes else "")
        )
