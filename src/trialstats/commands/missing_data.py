"""``trialstats missing-data``: completeness and predictors of dropout, for reviewers."""

from __future__ import annotations

import argparse
from pathlib import Path

from trialstats.commands.inputs import add_trial_arguments, read_trial
from trialstats.data.io import write_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``missing-data`` subcommand."""
    parser = subparsers.add_parser(
        "missing-data",
        help="completeness by arm x month x outcome and predictors of dropout",
        description="Write DIR/completeness.csv (observed values by arm, month and outcome) and "
        "DIR/dropout.csv (logistic regression of returning each follow-up questionnaire on arm, "
        "covariates and baseline scores; odds ratios with cluster-robust 95% CIs).",
    )
    add_trial_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Summarise the missing data and write both tables."""
    from trialstats.analysis.missingness import missing_data_summary

    config, patients = read_trial(args)
    completeness, dropout = missing_data_summary(patients, config)
    write_csv(completeness, args.out / "completeness.csv")
    write_csv(dropout, args.out / "dropout.csv")
    print(f"Wrote completeness ({len(completeness)} rows) and dropout predictors "
          f"({len(dropout)} rows) to {args.out}.")
