"""``trialstats summary``: one line per finished stage of a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``summary`` subcommand."""
    parser = subparsers.add_parser(
        "summary",
        help="one line per finished stage of a run (printed when the workflow ends)",
        description="Summarise a finished run from its tidy results: data, primary analysis "
        "(models and MCID verdicts), sensitivity analyses, power scenarios, report.",
    )
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results directory (default: results)")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="reports directory (default: reports)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Print the summary lines."""
    from trialstats.summary import stage_lines

    for line in stage_lines(args.results, args.reports):
        print(line)
