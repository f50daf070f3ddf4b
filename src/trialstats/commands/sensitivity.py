"""``trialstats sensitivity``: one prespecified sensitivity analysis into a tidy CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from trialstats.atomic import staged_files
from trialstats.commands.inputs import add_trial_arguments, progress_bar, read_trial
from trialstats.data.io import write_csv
from trialstats.errors import TrialstatsError


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
    parser.add_argument(
        "--tipping-out", type=Path, metavar="FILE",
        help="also write the tipping points of the delta adjustment (primary outcomes at the "
        "primary month) to this CSV; needs the delta-adjustment analysis",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the analyses and write one table; print one line per analysis."""
    from trialstats.analysis.delta import imputed_trial, tipping_analysis
    from trialstats.analysis.imputation import ITERATIONS
    from trialstats.analysis.sensitivity import run_analysis

    config, patients = read_trial(args)
    names = args.analysis or config["sensitivity"]["analyses"]
    if args.tipping_out is not None and "delta-adjustment" not in names:
        raise TrialstatsError("--tipping-out needs the delta-adjustment analysis: add it to "
                              "sensitivity.analyses or pass --analysis delta-adjustment.")
    # the delta rows and the tipping points shift one imputation
    trial = None if args.tipping_out is None else imputed_trial(patients, config)
    frames = []
    for name in names:
        steps = ITERATIONS if name == "multiple-imputation" else None
        with progress_bar(name, steps, unit="cycle", quiet=steps is None) as bar:
            frames.append(run_analysis(name, patients, config, progress=bar.update,
                                       trial=trial))
    table = pd.concat(frames, ignore_index=True)
    tipping = None if trial is None else tipping_analysis(patients, config, trial=trial)
    outputs = {"rows": args.out} | ({} if tipping is None else {"tipping": args.tipping_out})
    with staged_files(outputs) as stage:
        write_csv(table, stage["rows"])
        if tipping is not None:
            write_csv(tipping, stage["tipping"])
    for name, frame in zip(names, frames, strict=True):
        print(f"{name}: {len(frame)} rows ({frame['analysis'].nunique()} analyses)")
