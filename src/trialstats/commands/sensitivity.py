"""``trialstats sensitivity``: one prespecified sensitivity analysis into a tidy CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from trialstats.commands.inputs import add_trial_arguments, progress_bar, read_trial
from trialstats.data.io import write_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sensitivity`` subcommand."""
    parser = subparsers.add_parser(
        "sensitivity",
        help="run sensitivity analyses (imputation, repeated measures, cluster-level, GEE, "
        "CR2, subgroups)",
        description="Run the named sensitivity analyses (default: those in the configuration's "
        "sensitivity.analyses) and write their rows (primary columns plus `analysis`) to a CSV.",
    )
    add_trial_arguments(parser)
    parser.add_argument(
        "--analysis", action="append", metavar="NAME",
        help="run only this analysis (repeatable; default: sensitivity.analyses)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output CSV")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the analyses and write one table; print one line per analysis."""
    from trialstats.analysis.imputation import ITERATIONS
    from trialstats.analysis.sensitivity import run_analysis

    config, patients = read_trial(args)
    names = args.analysis or config["sensitivity"]["analyses"]
    frames = []
    for name in names:
        steps = ITERATIONS if name == "multiple-imputation" else None
        with progress_bar(name, steps, unit="cycle", quiet=steps is None) as bar:
            frames.append(run_analysis(name, patients, config, progress=bar.update))
    table = pd.concat(frames, ignore_index=True)
    write_csv(table, args.out)
    for name, frame in zip(names, frames, strict=True):
        print(f"{name}: {len(frame)} rows ({frame['analysis'].nunique()} analyses)")
