"""``trialstats methods-check``: type I error and coverage of the analysis methods by simulation."""

from __future__ import annotations

import argparse
import time

import pandas as pd

from trialstats.atomic import staged_files
from trialstats.commands.inputs import (
    add_files,
    add_outputs,
    check_figures_beside,
    document_files,
    named_outputs,
    progress_bar,
    write_set,
)
from trialstats.errors import TrialstatsError

#: Defaults of the simulation options (kept out of argparse so --from-table can refuse them).
REPS = 10_000
#: Trials per cell and hypothesis of the binary study (Monte Carlo SE 0.0049 at 5%).
BINARY_REPS = 2000
PATIENT_REPS = 2000
PERMUTATION_TRIALS = 4000
SEED = 20260611
#: The tables of the study and their names in the folder form (``--out-dir``).
TABLES = {"table": "validity.csv", "permutation": "permutation_validity.csv"}
#: The report of the study and its names in the folder form.
REPORT = {**document_files("validity"), "figures": "figures"}
#: The same for ``--outcome-type binary``.
BINARY_TABLES = {"table": "validity_binary.csv"}
BINARY_REPORT = {**document_files("validity_binary"), "figures": "figures"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``methods-check`` subcommand."""
    parser = subparsers.add_parser(
        "methods-check",
        help="validity study: type I error and CI coverage of every df method by simulation",
        description="Simulate trials with and without an effect over 6-44 clusters, ICC "
        "0.01-0.1 and cluster-size CV 0 and 0.8, analyse each with the primary mixed model "
        "(every df method), the cluster-level analysis, GEE and CR2; simulate "
        "constrained-randomisation trials of 16 practices analysed by the permutation test; "
        "and write the table validity.csv (type I error, coverage and power with Monte Carlo "
        "SEs), permutation_validity.csv, the "
        "figure figures/validity.{svg,png,pdf} and the report (methods, type I error and "
        "coverage tables, figure) as validity.html (self-contained), validity.docx, "
        "validity.tex and validity.md, each named by its --*-out option (or all in --out-dir). "
        "With --from-table (and --from-permutation), render the figure and report from "
        "an existing validity.csv (and permutation_validity.csv) instead of simulating. See "
        "trialstats.simulation.validity and trialstats.simulation.constrained.",
    )
    add_outputs(parser, TABLES | REPORT, "the tables, report and figures")
    parser.add_argument(
        "--outcome-type", choices=("continuous", "binary"), default="continuous",
        help="binary: simulate binary trials over 6-40 clusters, control risk 0.05-0.3 and "
        "ICC 0.01 and 0.05, analysed by the logistic GLMM (between-within, residual and z), "
        "GEE with Mancl-DeRouen, Kauermann-Carroll and Fay-Graubard SEs (t on J - 2 and z; "
        "Fay-Graubard also on its own df) and the cluster-level t tests, and write the table "
        "validity_binary.csv (--table-out), figures/validity_binary.{svg,png,pdf} and the "
        "report validity_binary.{html,docx,tex,md} (--permutation-out does not apply; "
        "default: continuous, the study above)",
    )
    parser.add_argument(
        "--reps", type=int,
        help="trials per cell and hypothesis for the mixed model and the cluster-level "
        f"analysis (default {REPS}: Monte Carlo SE 0.0022 at 5%%); with --outcome-type "
        f"binary, for every method (default {BINARY_REPS}: Monte Carlo SE 0.0049 at 5%%)",
    )
    parser.add_argument(
        "--patient-reps", type=int,
        help="trials per cell and hypothesis for GEE and CR2, which need every patient "
        f"generated (default {PATIENT_REPS}: Monte Carlo SE 0.0049 at 5%%)",
    )
    parser.add_argument(
        "--permutation-trials", type=int,
        help="null trials per cell for the permutation test on constrained designs "
        f"(default {PERMUTATION_TRIALS}, at most --reps: Monte Carlo SE 0.0034 at 5%%)",
    )
    parser.add_argument("--seed", type=int, help=f"base seed (default {SEED})")
    add_files(parser, {
        "from_table": "validity.csv of an earlier run: write the figure and report from it "
                      "without simulating (the tables are then not written; --reps, "
                      "--patient-reps and --seed do not apply)",
        "from_permutation": "with --from-table: the permutation_validity.csv of that run, to "
                            "report the permutation test too",
    })
    parser.set_defaults(run=run)


def _simulate(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the study and the permutation test's, and print the cells outside the band."""
    from trialstats.simulation.analyse import MIXED_MODEL
    from trialstats.simulation.constrained import permutation_validity
    from trialstats.simulation.validity import CLUSTERS, CVS, ICCS, SIZE_BAND, validity_study

    start = time.perf_counter()
    reps = REPS if args.reps is None else args.reps
    patient_reps = PATIENT_REPS if args.patient_reps is None else args.patient_reps
    trials = PERMUTATION_TRIALS if args.permutation_trials is None else args.permutation_trials
    seed = SEED if args.seed is None else args.seed
    cells = len(CLUSTERS) * len(ICCS) * len(CVS)
    with progress_bar("validity study", cells, unit="cell") as bar:
        table = validity_study(reps=reps, patient_reps=min(patient_reps, reps), seed=seed,
                               progress=bar.update)
    permutation = permutation_validity(trials=min(trials, reps), seed=seed)
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
    for row in permutation.itertuples():
        print(f"permutation test, {row.n_clusters} practices, {row.outcome}, constrained "
              f"(best {row.cutoff:g}): type I error {row.type_i_error:.4f} (MC SE "
              f"{row.type_i_error_mc_se:.4f}){'' if row.within_band else ' OUTSIDE the band'}")
    return table, permutation


def _simulate_binary(args: argparse.Namespace) -> pd.DataFrame:
    """Run the binary study and print the cells outside the band."""
    from trialstats.report.validity_binary import BINARY_METHODS
    from trialstats.simulation.validity import SIZE_BAND
    from trialstats.simulation.validity_binary import (
        CLUSTERS,
        ICCS,
        PREVALENCES,
        binary_validity_study,
    )

    start = time.perf_counter()
    reps = BINARY_REPS if args.reps is None else args.reps
    with progress_bar("binary validity study", len(CLUSTERS) * len(PREVALENCES) * len(ICCS),
                      unit="cell") as bar:
        table = binary_validity_study(reps=reps, seed=SEED if args.seed is None else args.seed,
                                      progress=bar.update)
    outside = table[~table["within_band"]]
    print(
        f"{len(table)} method x cell rows in {time.perf_counter() - start:.1f} s; "
        f"{len(outside)} outside the type I error band [{SIZE_BAND[0]:g}, {SIZE_BAND[1]:g}]:"
    )
    for row in outside.itertuples():
        name = BINARY_METHODS.get((row.analysis, row.method), (row.analysis,))[0]
        print(f"  {name}: {row.n_clusters} clusters, prevalence {row.prevalence:g}, ICC "
              f"{row.icc:g}: type I error {row.type_i_error:.4f} (MC SE "
              f"{row.type_i_error_mc_se:.4f}, {row.n_analysed} trials analysed), coverage "
              f"{row.coverage:.4f}")
    return table


def _run_binary(args: argparse.Namespace) -> None:
    """``--outcome-type binary``: the binary study's table and report (no permutation table)."""
    from trialstats.contract import read_tidy, write_tidy
    from trialstats.report.files import write_report
    from trialstats.report.validity_binary import (
        binary_validity_report,
        check_binary_validity_table,
    )

    given = [f"--{n.replace('_', '-')}" for n in ("patient_reps", "permutation_trials",
                                                   "permutation_out", "from_permutation")
             if getattr(args, n) is not None]
    if given:
        raise TrialstatsError(f"{', '.join(given)} do not apply to --outcome-type binary "
                              "(every method runs on the same --reps trials).")
    written = BINARY_REPORT if args.from_table is not None else BINARY_TABLES | BINARY_REPORT
    outputs = named_outputs(args, written, "the report and its figures")
    check_figures_beside(outputs, ("markdown", "latex"))
    if args.from_table is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("reps", "seed", "table_out")
                 if getattr(args, n) is not None]
        if given:
            raise TrialstatsError(f"{', '.join(given)} only apply when simulating; "
                                  "--from-table renders the study already in the table.")
        table = read_tidy(args.from_table, missing="run `trialstats methods-check "
                          "--outcome-type binary` first")
        check_binary_validity_table(table, str(args.from_table))
    else:
        table = _simulate_binary(args)
    report = binary_validity_report(table)
    with staged_files(outputs) as stage:
        if args.from_table is None:
            write_tidy(table, stage["table"])
        write_set({name: stage[name] for name in BINARY_REPORT}, BINARY_REPORT,
                  lambda folder: write_report(report, folder, "validity_binary"))
    print(f"Wrote validity_binary.html, .docx, .tex, .md to {outputs['html'].parent} and "
          f"validity_binary.{{svg,png,pdf}} to {outputs['figures']}.")


def run(args: argparse.Namespace) -> None:
    """Run the study (or read its table), then write the table, figure and report."""
    from trialstats.contract import read_tidy, write_tidy
    from trialstats.report.files import write_report
    from trialstats.report.validity import check_validity_table, validity_report

    if args.outcome_type == "binary":
        _run_binary(args)
        return
    written = REPORT if args.from_table is not None else TABLES | REPORT
    outputs = named_outputs(args, written, "the report and its figures")
    check_figures_beside(outputs, ("markdown", "latex"))
    if args.from_table is not None:
        given = [f"--{n.replace('_', '-')}"
                 for n in ("reps", "patient_reps", "permutation_trials", "seed", "table_out",
                           "permutation_out")
                 if getattr(args, n) is not None]
        if given:
            raise TrialstatsError(
                f"{', '.join(given)} only apply when simulating; --from-table renders the "
                "study already in the table."
            )
        table = read_tidy(args.from_table, missing="run `trialstats methods-check` first")
        check_validity_table(table, str(args.from_table))
        permutation = None if args.from_permutation is None else read_tidy(
            args.from_permutation, missing="run `trialstats methods-check` first")
    elif args.from_permutation is not None:
        raise TrialstatsError("--from-permutation goes with --from-table.")
    else:
        table, permutation = _simulate(args)
    report = validity_report(table, permutation)
    with staged_files(outputs) as stage:
        if args.from_table is None:
            write_tidy(table, stage["table"])
            write_tidy(permutation, stage["permutation"])
        write_set({name: stage[name] for name in REPORT}, REPORT,
                  lambda folder: write_report(report, folder, "validity"))
    print(f"Wrote validity.html, validity.docx, validity.tex, validity.md to "
          f"{outputs['html'].parent} and validity.{{svg,png,pdf}} to {outputs['figures']}.")
