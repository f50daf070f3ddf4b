"""``trialstats sensitivity``: one prespecified sensitivity analysis into a tidy CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from trialstats.config import load_config
from trialstats.data.io import write_csv
from trialstats.data.validate import load_trial


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sensitivity`` subcommand."""
    parser = subparsers.add_parser(
        "sensitivity",
        help="run sensitivity analyses (imputation, repeated measures, cluster-level, GEE, "
        "CR2, subgroups)",
        description="Run the named sensitivity analyses (default: those in the configuration's "
        "sensitivity.analyses) and write their rows (primary columns plus `analysis`) to a CSV.",
    )
    parser.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    parser.add_argument(
        "--data", type=Path,
        help="analysis-ready tables from `trialstats validate --out DIR` (default: read and "
        "validate the tables named in the configuration)",
    )
    parser.add_argument(
        "--analysis", action="append", metavar="NAME",
        help="run only this analysis (repeatable; default: sensitivity.analyses)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output CSV")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the analyses and write one table; print one line per analysis."""
    from trialstats.analysis.sensitivity import run_analysis

    config = load_config(args.config)
    if args.data is None:
        patients = load_trial(config).patients
    else:
        patients = pd.read_parquet(args.data / "patients.parquet")
    names = args.analysis or config["sensitivity"]["analyses"]
    frames = [run_analysis(name, patients, config) for name in names]
    table = pd.concat(frames, ignore_index=True)
    write_csv(table, args.out)
    for name, frame in zip(names, frames, strict=True):
        print(f"{name}: {len(frame)} rows ({frame['analysis'].nunique()} analyses)")
