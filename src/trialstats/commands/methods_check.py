"""``trialstats methods-check``: type I error and coverage of the analysis methods by simulation."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``methods-check`` subcommand."""
    parser = subparsers.add_parser(
        "methods-check",
        help="validity study: type I error and CI coverage of every df method by simulation",
        description="Simulate trials with and without an effect over 6-44 clusters, ICC "
        "0.01-0.1 and cluster-size CV 0 and 0.8, analyse each with the primary mixed model "
        "(every df method), the cluster-level analysis, GEE and CR2, and write "
        "DIR/validity.csv (type I error, coverage and power with Monte Carlo SEs) and "
        "DIR/validity.svg / .png. See trialstats.validity.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--reps", type=int, default=10_000,
        help="trials per cell and hypothesis for the mixed model and the cluster-level "
        "analysis (default 10000: Monte Carlo SE 0.0022 at 5%%)",
    )
    parser.add_argument(
        "--patient-reps", type=int, default=2000,
        help="trials per cell and hypothesis for GEE and CR2, which need every patient "
        "generated (default 2000: Monte Carlo SE 0.0049 at 5%%)",
    )
    parser.add_argument("--seed", type=int, default=20260611, help="base seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the study, write the table and figures, and print the cells outside the band."""
    from trialstats.data.io import write_csv
    from trialstats.power.grid import save_figure
    from trialstats.validity import MIXED_MODEL, SIZE_BAND, validity_figure, validity_study

    start = time.perf_counter()
    table = validity_study(reps=args.reps, patient_reps=min(args.patient_reps, args.reps),
                           seed=args.seed)
    write_csv(table, args.out / "validity.csv")
    figure = validity_figure(table)
    for suffix in (".svg", ".png"):
        save_figure(figure, args.out / f"validity{suffix}")
    outside = table[~table["within_band"]]
    print(
        f"{len(table)} method x cell rows in {time.perf_counter() - start:.1f} s; "
        f"{len(outside)} outside the type I error band [{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}]:"
    )
    for row in outside.itertuples():
        name = row.method if row.analysis == MIXED_MODEL else row.analysis
        print(
            f"  {name}: {row.n_clusters} clusters, ICC {row.icc:g}, CV {row.cv:g}: "
            f"type I error {row.type_i_error:.4f} (MC SE {row.type_i_error_mc_se:.4f}), "
            f"coverage {row.coverage:.4f}"
        )
