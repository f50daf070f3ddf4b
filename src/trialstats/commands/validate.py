"""``trialstats validate``: check a trial's tables and write the analysis-ready data."""

from __future__ import annotations

import argparse
from pathlib import Path

from trialstats.config import load_config
from trialstats.data.io import write_atomically
from trialstats.data.validate import load_trial, summarise


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    parser = subparsers.add_parser(
        "validate",
        help="check the input tables against the data contract",
        description="Check the practices and patients tables named in the configuration. "
        "On valid data print a summary (clusters and patients per arm, completeness of every "
        "outcome at every month); on bad input name the file, rows and column and exit 2.",
    )
    parser.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    parser.add_argument(
        "--out", type=Path,
        help="directory for the analysis-ready tables (practices.parquet, patients.parquet, "
        "validation.txt); nothing is written unless the data are valid",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Validate, print the summary, and write the analysis-ready tables when asked."""
    trial = load_trial(load_config(args.config))
    summary = summarise(trial)
    if args.out is not None:
        write_atomically(args.out / "practices.parquet", trial.practices.to_parquet)
        write_atomically(args.out / "patients.parquet", trial.patients.to_parquet)
        write_atomically(
            args.out / "validation.txt", lambda tmp: tmp.write_text(summary + "\n")
        )
    print(summary)
