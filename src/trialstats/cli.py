"""Command-line interface: ``trialstats <command>`` (also ``python -m trialstats``).

Each command lives in its own module under :mod:`trialstats.commands` exposing
``register(subparsers)`` and ``run(args)`` (which may return an exit status). A
:class:`~trialstats.errors.TrialstatsError` becomes a one-paragraph message on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trialstats import __version__
from trialstats.commands import COMMANDS
from trialstats.errors import TrialstatsError


def build_parser() -> argparse.ArgumentParser:
    """The ``trialstats`` argument parser with one subcommand per command module."""
    parser = argparse.ArgumentParser(
        prog="trialstats",
        description="Analyse and plan cluster-randomised trials.",
    )
    parser.add_argument("--version", action="version", version=f"trialstats {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trialstats`` with ``argv``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
    except TrialstatsError as error:
        print(f"trialstats {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
