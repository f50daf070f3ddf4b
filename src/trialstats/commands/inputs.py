"""Arguments, reading and progress bars shared by the commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from trialstats.config import load_config
from trialstats.data.fingerprint import check_fingerprint
from trialstats.data.validate import load_trial


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and ``--data`` (the analysis-ready tables of ``validate --out``)."""
    parser.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    parser.add_argument(
        "--data", type=Path,
        help="analysis-ready tables from `trialstats validate --out DIR` (default: read and "
        "validate the tables named in the configuration); refused when they were validated "
        "with another configuration or other inputs",
    )


def read_trial(args: argparse.Namespace) -> tuple[dict[str, Any], pd.DataFrame]:
    """The validated configuration and patients named by ``--config`` and ``--data``; tables
    of ``--data`` validated with another configuration or other inputs are refused
    (:func:`~trialstats.data.fingerprint.check_fingerprint`)."""
    config = load_config(args.config)
    if args.data is None:
        return config, load_trial(config).patients
    check_fingerprint(args.data, config)
    return config, pd.read_parquet(args.data / "patients.parquet")


def progress_bar(desc: str, total: int | None = None, *, unit: str = "it",
                 quiet: bool = False) -> tqdm:
    """A tqdm progress bar on stderr for a long step; silent when stderr is not a terminal
    (e.g. under Snakemake, whose logs it would fill) or with ``quiet``. Library functions
    advance it through their ``progress`` callback (``progress=bar.update``)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=True if quiet else None)
