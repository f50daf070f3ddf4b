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
    parser.add_argument("--config", type=Path,
                        help="the run's configuration: the summary uses its words for "
                        "clusters and participants (default practices and patients)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="results directory (default: results)")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="reports directory (default: reports)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Print the summary lines."""
    from trialstats.config import load_config
    from trialstats.report.format import words
    from trialstats.summary import stage_lines

    w = None if args.config is None else words(load_config(args.config))
    for line in stage_lines(args.results, args.reports, w):
        print(line)
