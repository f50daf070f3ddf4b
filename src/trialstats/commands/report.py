"""``trialstats report``: the journal outputs (CONSORT flow, tables, figures, methods) of a run."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
from pathlib import Path

import pandas as pd

import trialstats
from trialstats.atomic import staged_outputs
from trialstats.config import load_config
from trialstats.contract import read_tidy
from trialstats.data.fingerprint import check_fingerprint
from trialstats.errors import TrialstatsError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write the trial report (HTML, Word, LaTeX, Markdown, CSV tables, figures)",
        description="Build the CONSORT flow diagram, baseline and outcome tables, forest plot, "
        "statistical-methods paragraph and provenance from the validated data and the "
        "analysis results, and write them as report.html (self-contained), report.docx, "
        "report.tex, report.md, the supplement (all sensitivity analyses, subgroups, missing data) "
        "as supplement.{html,docx,tex,md}, tables/*.csv and figures/*.{svg,png,pdf}. With "
        "--power, add a section planning the next trial from the power-grid table.",
    )
    parser.add_argument("--config", required=True, type=Path, help="run configuration (YAML)")
    parser.add_argument(
        "--results", required=True, type=Path,
        help="results folder: data/practices.parquet, data/patients.parquet, primary.csv "
        "and optionally sensitivity.csv",
    )
    parser.add_argument(
        "--power", type=Path, metavar="FILE",
        help="power-grid table from `trialstats power gather` (results/power/power.csv): "
        "adds the 'Planning the next trial' section with power curves and the clusters per "
        "arm needed for 80%% and 90%% power",
    )
    parser.add_argument(
        "--missing-data", type=Path, metavar="DIR",
        help="folder holding completeness.csv and dropout.csv from `trialstats missing-data` "
        "(results/missing_data): adds the missing-data tables to the supplement",
    )
    parser.add_argument(
        "--tipping", type=Path, metavar="FILE",
        help="the tipping-point table of the delta-adjustment analysis (`trialstats sensitivity "
        "--tipping-out`): adds its sentences and figures",
    )
    parser.add_argument(
        "--allocation", type=Path, metavar="DIR",
        help="--out folder of `trialstats allocate`: adds the 'Allocation' section (method, "
        "balance table A1, balance-score figure A1)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(run=run)


def _sha256(path: Path) -> str:
    if not path.is_file():
        return "not found"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_commit() -> str:
    """Commit of the trialstats source tree, ``-dirty`` when its files are modified."""
    source = Path(trialstats.__file__).parent
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "."],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not available"
    return head + ("-dirty" if status else "")


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TrialstatsError(
            f"{path}: file not found; run `trialstats validate --out` into the results folder."
        )
    return pd.read_parquet(path)


def run(args: argparse.Namespace) -> None:
    """Read the run's data and results, build the report, and write every output."""
    from trialstats.report.build import MissingData, Provenance, build_report
    from trialstats.report.files import write_report
    from trialstats.report.methods import software_versions
    from trialstats.report.render import csv_text

    config = load_config(args.config)
    data = args.results / "data"
    practices = _read_parquet(data / "practices.parquet")
    patients = _read_parquet(data / "patients.parquet")
    check_fingerprint(data, config)
    primary_path, sensitivity_path = args.results / "primary.csv", args.results / "sensitivity.csv"
    results = read_tidy(primary_path)
    sensitivity = read_tidy(sensitivity_path) if sensitivity_path.is_file() else None
    inputs = [
        ("Configuration", args.config),
        ("Input: practices", Path(config["data"]["practices"])),
        ("Input: patients", Path(config["data"]["patients"])),
        ("Validated practices", data / "practices.parquet"),
        ("Validated patients", data / "patients.parquet"),
        ("Primary results", primary_path),
    ]
    if sensitivity is not None:
        inputs.append(("Sensitivity results", sensitivity_path))
    power = None
    if args.power is not None:
        power = read_tidy(args.power,
                          missing="run the power stage (trialstats power gather) first")
        inputs.append(("Power results", args.power))
    missing = None
    if args.missing_data is not None:
        paths = [args.missing_data / f"{name}.csv" for name in ("completeness", "dropout")]
        tables = [read_tidy(path, missing="run the missing-data stage first") for path in paths]
        missing = MissingData(*tables)
        inputs += [("Missing data", path) for path in paths]
    tipping = None
    if args.tipping is not None:
        tipping = read_tidy(args.tipping, missing="run the delta-adjustment analysis first")
        inputs.append(("Tipping points", args.tipping))
    allocation = None
    if args.allocation is not None:
        from trialstats.report.allocation import allocation_section, read_allocation
        allocation = allocation_section(*read_allocation(args.allocation))
        inputs.append(("Allocation", args.allocation / "summary.json"))
    provenance = Provenance(
        files=[(role, str(path), _sha256(path)) for role, path in inputs],
        versions=software_versions(), commit=_git_commit(),
    )
    report, supplement, counts = build_report(practices, patients, config, results,
                                              sensitivity, provenance, power, missing, tipping,
                                              allocation)
    with staged_outputs(args.out) as stage:
        write_report(report, stage, "report", tables=True)
        write_report(supplement, stage, "supplement", tables=True)
        (stage / "tables" / "consort_counts.csv").write_text(csv_text(counts), "utf-8")
    print(
        f"Wrote report and supplement (.html, .docx, .tex, .md), "
        f"{len(report.tables()) + len(supplement.tables())} tables and "
        f"{len(report.figures()) + len(supplement.figures())} figures to {args.out}."
    )
