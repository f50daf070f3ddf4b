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
    parser.add_argument(
        "--stepped-wedge", type=int, metavar="S",
        help="write the stepped-wedge variant instead: the spec's practices in S sequences, "
        "S + 1 periods, one column per outcome (see trialstats.data.synthetic_periods)",
    )
    parser.add_argument(
        "--cluster-period-size", type=int, default=20, metavar="M",
        help="with --stepped-wedge: participants per cluster-period (default 20)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Generate the trial and write it to ``args.out``."""
    from trialstats.data.synthetic import generate_trial, load_synthetic_spec, write_trial_csv

    spec = load_synthetic_spec(args.config)
    if args.stepped_wedge is None:
        practices, patients = generate_trial(spec, args.seed)
    else:
        from trialstats.data.synthetic_periods import stepped_wedge_trial

        practices, patients = stepped_wedge_trial(
            spec, args.seed, n_sequences=args.stepped_wedge,
            cluster_period_size=args.cluster_period_size,
        )
    write_trial_csv(practices, patients, args.out)
    print(
        f"Wrote {len(practices)} practices and {len(patients)} patients to {args.out} "
        f"(seed {args.seed})."
    )
