"""``trialstats validate``: check a trial's tables and write the analysis-ready data."""

from __future__ import annotations

import argparse
import json

from trialstats.atomic import staged_files
from trialstats.commands.inputs import VALIDATED, add_config_argument, add_outputs, named_outputs
from trialstats.config import load_config
from trialstats.data.columns import identifier_columns
from trialstats.data.fingerprint import fingerprint
from trialstats.data.validate import TREATED, Trial, load_trial, outcome_columns, summarise


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` subcommand."""
    parser = subparsers.add_parser(
        "validate",
        help="check the input tables against the data contract",
        description="Check the practices and patients tables named in the configuration. "
        "On valid data print a summary (clusters and patients per arm, completeness of every "
        "outcome at every month); on bad input name the file, rows and column and exit 2. "
        "With --practices-out, --patients-out, --summary-out and --fingerprint-out (all four, "
        "or --out-dir), also write the analysis-ready tables, the summary and the "
        "fingerprint of what they were validated with; nothing is written unless the data "
        "are valid.",
    )
    add_config_argument(parser)
    add_outputs(parser, VALIDATED, "the analysis-ready tables, summary and fingerprint")
    parser.set_defaults(run=run)


def input_notes(trial: Trial) -> str:
    """What was read from each input, and which columns reports will never show."""
    design = trial.config["design"]
    skip = {design["cluster"], design["patient"], design["arm"], design["withdrawn"], TREATED,
            *outcome_columns(trial.config)}
    lines = ["", "Inputs read:"]
    lines += [f"  {frame.attrs['source']}" for frame in (trial.practices, trial.patients)
              if "source" in frame.attrs]
    hidden = identifier_columns(trial.practices, skip)
    hidden |= identifier_columns(trial.patients, skip | set(trial.practices.columns))
    if hidden:
        lines += ["", "Identifier-like or free-text columns, never shown in reports:"]
        lines += [f"  {name}: {reason}" for name, reason in hidden.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    """Validate, print the summary, and write the analysis-ready tables and their fingerprint
    when asked (all files together: a failed or killed run leaves the previous ones whole)."""
    outputs = named_outputs(args, VALIDATED, "the analysis-ready tables, summary and "
                            "fingerprint", optional=True)
    config = load_config(args.config)
    trial = load_trial(config)
    summary = summarise(trial) + "\n" + input_notes(trial)
    if outputs:
        with staged_files(outputs) as stage:
            trial.practices.to_parquet(stage["practices"])
            trial.patients.to_parquet(stage["patients"])
            stage["summary"].write_text(summary + "\n")
            stage["fingerprint"].write_text(
                json.dumps(fingerprint(config), indent=1, sort_keys=True) + "\n")
    print(summary)
