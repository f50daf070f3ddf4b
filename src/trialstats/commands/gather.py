"""``trialstats gather``: stack tidy result tables written by parallel jobs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from trialstats.contract import read_tidy, write_tidy
from trialstats.errors import TrialstatsError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gather`` subcommand."""
    parser = subparsers.add_parser(
        "gather",
        help="stack tidy CSV tables with the same columns into one",
        description="Concatenate tidy CSV tables (e.g. one per outcome) in the order given. "
        "They share their leading columns; a table may add columns at the end (e.g. the "
        "delta of the delta-adjustment analysis), left empty in the others' rows.",
    )
    parser.add_argument("tables", nargs="+", type=Path, help="CSV tables to stack")
    parser.add_argument("--out", required=True, type=Path, help="output CSV")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Stack the tables (each one's columns a prefix of the widest's) and write the result."""
    frames = [read_tidy(path, missing="is a job's output missing?") for path in args.tables]
    widest = max(frames, key=lambda frame: frame.shape[1])
    columns = list(widest.columns)
    for path, frame in zip(args.tables, frames, strict=True):
        if list(frame.columns) != columns[: frame.shape[1]]:
            raise TrialstatsError(
                f"{path}: its columns differ from those of the other tables; only tables "
                "that share their leading columns can be stacked."
            )
    write_tidy(pd.concat(frames, ignore_index=True).reindex(columns=columns), args.out)
