"""``trialstats analyse``: the primary analysis into ``primary.csv``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from trialstats.config import load_config
from trialstats.data.io import write_csv
from trialstats.data.validate import load_trial


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyse`` subcommand."""
    parser = subparsers.add_parser(
        "analyse",
        help="primary analysis: mixed model per outcome x follow-up month x df method",
        description="Fit the baseline-adjusted random-intercept model (exact REML) to every "
        "configured outcome at every follow-up month and write DIR/primary.csv.",
    )
    parser.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    parser.add_argument(
        "--data", type=Path,
        help="analysis-ready tables from `trialstats validate --out DIR` (default: read and "
        "validate the tables named in the configuration)",
    )
    parser.add_argument(
        "--outcome", action="append", metavar="NAME",
        help="analyse only this outcome (repeatable; default: all)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the primary analysis and write ``primary.csv``; print one line per outcome."""
    from trialstats.analysis.primary import analyse_trial

    config = load_config(args.config)
    if args.data is None:
        patients = load_trial(config).patients
    else:
        patients = pd.read_parquet(args.data / "patients.parquet")
    results = analyse_trial(patients, config, args.outcome)
    write_csv(results, args.out / "primary.csv")
    primary_method = config["analysis"]["df_method"][0]
    for row in results[results["method"] == primary_method].itertuples():
        print(
            f"{row.outcome} month {row.month}: {row.n_patients:,} patients in "
            f"{row.n_clusters} clusters; difference {row.estimate:.4g} "
            f"({row.ci_low:.4g} to {row.ci_high:.4g}), {row.mcid_verdict or 'no verdict'}"
            + (f" [{row.notes}]" if isinstance(row.notes, str) and row.notes else "")
        )
