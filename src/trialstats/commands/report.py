"""``trialstats report``: the journal outputs (CONSORT flow, tables, figures, methods) of a run."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
from pathlib import Path

import trialstats
from trialstats.atomic import staged_files
from trialstats.commands.inputs import (
    MISSING_DATA,
    VALIDATED,
    add_config_argument,
    add_files,
    add_outputs,
    check_figures_beside,
    document_files,
    from_folder,
    named_outputs,
    read_parquet,
    require,
    write_set,
)
from trialstats.config import load_config
from trialstats.contract import read_tidy
from trialstats.data.fingerprint import check_fingerprint

#: The report's outputs and their names in the folder form (``--out-dir``).
REPORT = {**document_files("report"), **document_files("supplement", "supplement_"),
          "tables": "tables", "figures": "figures"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write the trial report (HTML, Word, LaTeX, Markdown, CSV tables, figures)",
        description="Build the CONSORT flow diagram, baseline and outcome tables, forest plot, "
        "statistical-methods paragraph and provenance from the validated data and the "
        "analysis results, and write them as report.html (self-contained), report.docx, "
        "report.tex, report.md, the supplement (all sensitivity analyses, subgroups, missing data) "
        "as supplement.{html,docx,tex,md}, tables/*.csv and figures/*.{svg,png,pdf}, each "
        "named by its --*-out option (or all in --out-dir). With --power, add a section "
        "planning the next trial from the power-grid table.",
    )
    add_config_argument(parser)
    add_files(parser, {
        "practices": "analysis-ready practices (`trialstats validate --practices-out`)",
        "patients": "analysis-ready patients (`trialstats validate --patients-out`)",
        "fingerprint": "their fingerprint (`validate --fingerprint-out`): tables validated "
                       "with another configuration or other inputs are refused",
        "primary": "primary results (`trialstats analyse`, gathered)",
        "sensitivity": "sensitivity results (`trialstats sensitivity`, gathered): adds the "
                       "sensitivity tables",
        "completeness": "completeness table of `trialstats missing-data` (with --dropout): "
                        "adds the missing-data tables to the supplement",
        "dropout": "dropout table of `trialstats missing-data` (with --completeness)",
        "power": "power-grid table from `trialstats power gather`: adds the 'Planning the next "
                 "trial' section with power curves and the clusters per arm needed for 80%% "
                 "and 90%% power",
        "tipping": "the tipping-point table of the delta-adjustment analysis (`trialstats "
                   "sensitivity --tipping-out`): adds its sentences and figures",
    })
    add_files(parser, {
        "results": "folder form of the first five: DIR/data/{practices.parquet,"
                   "patients.parquet,fingerprint.json} (the --out-dir of validate), "
                   "DIR/primary.csv and, when present, DIR/sensitivity.csv",
        "missing_data": "folder form of --completeness and --dropout (the --out-dir of "
                        "missing-data)",
        "allocation": "--out folder of `trialstats allocate`: adds the 'Allocation' section "
                      "(method, balance table A1, balance-score figure A1)",
    }, metavar="DIR")
    add_outputs(parser, REPORT, "the report, supplement, tables/ and figures/")
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


def run(args: argparse.Namespace) -> None:
    """Read the run's data and results, build the report, and write every output."""
    from trialstats.report.build import MissingData, Provenance, build_report
    from trialstats.report.files import write_report
    from trialstats.report.methods import software_versions
    from trialstats.report.render import csv_text

    outputs = _named_files(args)
    config = load_config(args.config)
    practices, patients = read_parquet(args.practices), read_parquet(args.patients)
    check_fingerprint(args.fingerprint, config)
    results = read_tidy(args.primary)
    inputs = [
        ("Configuration", args.config),
        ("Input: practices", Path(config["data"]["practices"])),
        ("Input: patients", Path(config["data"]["patients"])),
        ("Validated practices", args.practices),
        ("Validated patients", args.patients),
        ("Primary results", args.primary),
    ]
    sensitivity = None
    if args.sensitivity is not None:
        sensitivity = read_tidy(args.sensitivity)
        inputs.append(("Sensitivity results", args.sensitivity))
    power = None
    if args.power is not None:
        power = read_tidy(args.power,
                          missing="run the power stage (trialstats power gather) first")
        inputs.append(("Power results", args.power))
    missing = None
    if args.completeness is not None:
        paths = [args.completeness, args.dropout]
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

    def write(folder: Path) -> None:
        write_report(report, folder, "report", tables=True)
        write_report(supplement, folder, "supplement", tables=True)
        (folder / "tables" / "consort_counts.csv").write_text(csv_text(counts), "utf-8")

    with staged_files(outputs) as stage:
        write_set(stage, REPORT, write)
    print(
        f"Wrote the report and supplement (HTML, Word, LaTeX, Markdown; {outputs['html']} "
        f"...), {len(report.tables()) + len(supplement.tables())} tables to "
        f"{outputs['tables']} and "
        f"{len(report.figures()) + len(supplement.figures())} figures to {outputs['figures']}."
    )


def _named_files(args: argparse.Namespace) -> dict[str, Path]:
    """Expand the folder forms, check the inputs given together, and return the outputs."""
    validated = ("practices", "patients", "fingerprint")
    from_folder(args, "results", {**{name: f"data/{VALIDATED[name]}" for name in validated},
                                  "primary": "primary.csv", "sensitivity": "sensitivity.csv"})
    if args.results is not None and not args.sensitivity.is_file():
        args.sensitivity = None  # the folder form holds sensitivity.csv only when it was run
    require(args, (*validated, "primary"),
            "the report needs the analysis-ready tables and the primary results")
    from_folder(args, "missing_data", MISSING_DATA)
    if (args.completeness is None) != (args.dropout is None):
        require(args, MISSING_DATA, "the missing-data tables are read together")
    outputs = named_outputs(args, REPORT, "the report, supplement, tables and figures")
    check_figures_beside(outputs, ("markdown", "latex", "supplement_markdown",
                                   "supplement_latex"))
    return outputs
