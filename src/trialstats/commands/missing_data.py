"""``trialstats missing-data``: completeness and predictors of dropout, for reviewers."""

from __future__ import annotations

import argparse

from trialstats.atomic import staged_files
from trialstats.commands.inputs import (
    MISSING_DATA,
    add_outputs,
    add_trial_arguments,
    named_outputs,
    read_trial,
)
from trialstats.data.io import write_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``missing-data`` subcommand."""
    parser = subparsers.add_parser(
        "missing-data",
        help="completeness by arm x month x outcome and predictors of dropout",
        description="Write the completeness table (observed values by arm, month and outcome) "
        "and the dropout table (logistic regression of returning each follow-up questionnaire "
        "on arm, covariates and baseline scores; odds ratios with cluster-robust 95% CIs) to "
        "--completeness-out and --dropout-out (or --out-dir).",
    )
    add_trial_arguments(parser)
    add_outputs(parser, MISSING_DATA, "both tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Summarise the missing data and write both tables."""
    from trialstats.analysis.missingness import missing_data_summary

    outputs = named_outputs(args, MISSING_DATA, "the completeness and dropout tables")
    config, patients = read_trial(args)
    completeness, dropout = missing_data_summary(patients, config)
    with staged_files(outputs) as stage:
        write_csv(completeness, stage["completeness"])
        write_csv(dropout, stage["dropout"])
    print(f"Wrote completeness ({len(completeness)} rows) to {args.completeness_out} and "
          f"dropout predictors ({len(dropout)} rows) to {args.dropout_out}.")
