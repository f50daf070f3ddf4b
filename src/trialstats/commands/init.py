"""``trialstats init``: scaffold a new trial directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from trialstats.errors import TrialstatsError
from trialstats.scaffold import OUTCOME_EXAMPLES, scaffold_files


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``init`` subcommand."""
    parser = subparsers.add_parser(
        "init",
        help="start a new trial: commented config, input templates and next steps",
        description="Write DIR/config.yaml (the keys of the default run, with example "
        "outcomes, reading DIR/data/practices.csv and DIR/data/patients.csv), those two "
        "tables as header-only templates with the columns the config expects, and "
        "DIR/README.md with the next steps. Existing files are never overwritten.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="the new trial's directory")
    parser.add_argument(
        "--example", choices=sorted(OUTCOME_EXAMPLES), default="starter",
        help="outcomes of the config and templates: starter (two example outcomes to replace; "
        "default) or sms (the synthetic SMS trial of the default run, whose data_synthetic/ "
        "tables then reproduce the default results)",
    )
    parser.add_argument(
        "--from", dest="origin", type=Path, metavar="CONFIG",
        help="plan the new trial from a finished one: its configuration; the power grid is "
        "taken from its results (cluster sizes, attrition, ICC, MCID, autocorrelations)",
    )
    parser.add_argument(
        "--results", type=Path,
        help="with --from: the finished trial's results folder (default: results/ beside CONFIG)",
    )
    parser.set_defaults(run=run)


def _grid_from(origin: Path, results: Path | None) -> dict[str, list[float]]:
    """The planning grid of the finished trial configured in ``origin``."""
    import pandas as pd

    from trialstats.config import load_config
    from trialstats.contract import read_tidy
    from trialstats.power.plan import grid_from_analysis

    config = load_config(origin)
    results = results if results is not None else origin.parent / "results"
    patients_path = results / "data" / "patients.parquet"
    if not patients_path.is_file():
        raise TrialstatsError(
            f"{patients_path}: not found; run the finished trial first "
            f"(`trialstats run --config {origin}`) or give its results folder with --results."
        )
    primary = read_tidy(results / "primary.csv", missing="run the finished trial first")
    return grid_from_analysis(primary, pd.read_parquet(patients_path), config)


def run(args: argparse.Namespace) -> None:
    """Write the trial's files, or none of them if any already exists."""
    grid = None if args.origin is None else _grid_from(args.origin, args.results)
    files = {args.directory / name: text for name, text in scaffold_files(
        args.directory, args.example, grid, str(args.origin)).items()}
    if args.directory.exists() and not args.directory.is_dir():
        raise TrialstatsError(f"{args.directory}: exists and is not a directory.")
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise TrialstatsError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "trialstats init never overwrites files. Choose a new directory or move them away."
        )
    for path, text in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(text)
        except OSError as exc:
            raise TrialstatsError(f"{path}: cannot be written ({exc.strerror}).") from None
    config = args.directory / "config.yaml"
    print(
        f"Wrote a new trial in {args.directory}: config.yaml, README.md and header-only "
        f"templates data/practices.csv and data/patients.csv.\n"
        f"Next: fill in the data, edit the config, then run "
        f"`trialstats validate --config {config}` and "
        f"`trialstats run --config {config} --cores 2` (see {args.directory / 'README.md'})."
    )
