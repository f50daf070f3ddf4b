"""``trialstats synth``: generate a synthetic cluster-randomised trial."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` subcommand."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic trial (practices.csv, patients.csv)",
        description="Generate a synthetic trial from a generating specification "
        "(see config/synthetic.yaml). The same seed gives byte-identical files.",
    )
    parser.add_argument("--config", required=True, type=Path, help="generating spec (YAML)")
    parser.add_argument("--seed", required=True, type=int, help="random seed")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Generate the trial and write it to ``args.out``."""
    from trialstats.data.synthetic import generate_trial, load_synthetic_spec, write_trial_csv

    practices, patients = generate_trial(load_synthetic_spec(args.config), args.seed)
    write_trial_csv(practices, patients, args.out)
    print(
        f"Wrote {len(practices)} practices and {len(patients)} patients to {args.out} "
        f"(seed {args.seed})."
    )
