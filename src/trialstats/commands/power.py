"""``trialstats power``: analytic and simulated power, scenario grids and power curves.

Subcommands::

    trialstats power analytic  --clusters-per-arm K --cluster-size M --icc R --effect D ...
    trialstats power simulate  ... --reps N --seed S --df-method between-within
    trialstats power grid      --config config.yaml [--chunk I --n-chunks N] --out chunk.csv
    trialstats power gather    chunk-*.csv --out power.csv [--figure power.svg]
    trialstats power plan      --results primary.csv [--patients patients.parquet] --out plan.csv

Leave out one of ``--clusters-per-arm``, ``--cluster-size`` or ``--effect`` and give
``--target-power`` to solve for it (``simulate`` solves for clusters per arm only, by
bisection over integers). ``--from DIR`` takes the planning inputs from a finished analysis;
see :func:`trialstats.power.plan.inputs_from_analysis` for exactly what is taken. Flags given
explicitly always win over values taken with ``--from``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from trialstats.commands import design as design_words
from trialstats.commands import power_options
from trialstats.commands.inputs import add_config_argument, progress_bar
from trialstats.contract import SIMULATION_DF_METHODS, read_tidy

JSON_KEYS = ("power", "mc_se", "clusters_per_arm", "cluster_size", "effect", "design_effect")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``power`` subcommand and its ``analytic``/``simulate``/``grid``/``gather`` verbs."""
    parser = subparsers.add_parser(
        "power",
        help="power and sample size for the next trial (analytic or simulated)",
        description="Power and sample size for a two-arm cluster-randomised trial with a "
        "continuous outcome: analytic formulas, an exact vectorised simulation of the primary "
        "analysis, and scenario grids with a power-curve figure.",
    )
    verbs = parser.add_subparsers(dest="power_command", required=True, metavar="VERB")

    analytic = verbs.add_parser(
        "analytic",
        help="closed-form power or sample size",
        description="Analytic power (Eldridge et al. 2006 design effect, Teerenstra et al. 2012 "
        "baseline adjustment, noncentral t with 2k - 2 df or normal). Leave out one of "
        "--clusters-per-arm, --cluster-size, --effect and give --target-power to solve for it.",
    )
    _design_arguments(analytic)
    design_words.add_power_arguments(analytic)
    power_options.count_arguments(analytic)
    analytic.add_argument(
        "--df", choices=("t", "z", "between-within"), default="t",
        help="t: noncentral t with k_c + k_i - 2 df (default; with --design: clusters minus "
        "fixed effects); z: normal approximation; between-within (--design only): central t "
        "on clusters minus fixed effects, as SteppedPower",
    )
    _output_arguments(analytic)
    analytic.set_defaults(run=run)

    simulate = verbs.add_parser(
        "simulate",
        help="power by simulating and analysing trials",
        description="Simulate trials from the random-intercept model with baseline (see "
        "trialstats.simulation.draw) and analyse each by REML as the primary analysis would; "
        "report power with its Monte Carlo SE and the type I error at effect 0. With "
        "--target-power and no --clusters-per-arm, find the smallest clusters per arm whose "
        "simulated power reaches the target (bisection, the same seed at every size).",
    )
    _design_arguments(simulate)
    _simulation_arguments(simulate)
    power_options.constraint_arguments(simulate)
    power_options.binary_arguments(simulate)
    power_options.count_arguments(simulate, simulation=True)
    design_words.add_simulation_arguments(simulate)
    _output_arguments(simulate)
    simulate.set_defaults(run=run)

    grid = verbs.add_parser(
        "grid",
        help="run a scenario grid (or one chunk of it) from the power: section of a config",
        description="Expand the power.grid of a run configuration into scenarios and compute "
        "analytic and/or simulated power for each scenario of the chosen chunk. Chunks take "
        "scenarios round-robin; every replicate has its own seed stream, so any split gives the "
        "same numbers as one run.",
    )
    add_config_argument(grid)
    grid.add_argument("--chunk", type=int, default=0, help="chunk to run, 0-based (default 0)")
    grid.add_argument("--n-chunks", type=int, default=1, help="number of chunks (default 1)")
    grid.add_argument("--out", required=True, type=Path, help="tidy CSV of this chunk")
    grid.add_argument("--quiet", action="store_true", help="no progress bar")
    grid.set_defaults(run=run)

    gather = verbs.add_parser(
        "gather",
        help="combine grid chunks into one table and draw the power curves",
        description="Concatenate chunk tables written by 'power grid', check that every "
        "scenario is present exactly once, and write one table sorted by scenario.",
    )
    gather.add_argument("chunks", nargs="+", type=Path, help="chunk CSV files")
    gather.add_argument("--out", required=True, type=Path, help="combined tidy CSV")
    gather.add_argument(
        "--figure", type=Path, action="append", default=[],
        help="power-curve figure (.svg, .png or .pdf); may be repeated",
    )
    gather.set_defaults(run=run)

    plan = verbs.add_parser(
        "plan",
        help="plan the next trial from this one: clusters per arm to detect each MCID",
        description="Take the ICC, baseline SD and MCID of each outcome from a finished "
        "analysis (primary.csv) and, with the analysis-ready patients, the subject and cluster "
        "autocorrelations of baseline and follow-up; write the clusters per arm the next trial "
        "needs to detect each outcome's MCID (analytic formulas) as a tidy CSV.",
    )
    plan.add_argument("--results", required=True, type=Path, metavar="FILE",
                      help="primary.csv of the finished analysis")
    plan.add_argument("--patients", type=Path, metavar="FILE",
                      help="its analysis-ready patients (patients.parquet); without them the "
                      "plan assumes no baseline adjustment")
    plan.add_argument("--outcome", action="append", metavar="NAME",
                      help="plan for this outcome (repeatable; default: every outcome with an "
                      "MCID)")
    plan.add_argument("--month", type=int,
                      help="follow-up month of the rows used (default: the latest present)")
    plan.add_argument("--baseline-month", type=int, default=0,
                      help="month of the baseline columns (default 0)")
    plan.add_argument("--cluster-column", default="practice_id",
                      help="cluster column of the patients (default practice_id)")
    plan.add_argument("--cluster-size", type=float, metavar="M",
                      help="mean recruited patients per cluster of the next trial (default: "
                      "the analysed patients per cluster of the analysis)")
    plan.add_argument("--cv", type=float, default=0.0, metavar="C",
                      help="coefficient of variation of cluster size (default 0)")
    plan.add_argument("--attrition", type=float, default=0.0, metavar="F",
                      help="fraction of recruited patients without follow-up (default 0)")
    plan.add_argument("--allocation-ratio", type=float, default=1.0, metavar="Q",
                      help="intervention clusters / control clusters (default 1)")
    plan.add_argument("--alpha", type=float, default=0.05, metavar="A",
                      help="two-sided significance level (default 0.05)")
    plan.add_argument("--target-power", type=float, default=0.8, metavar="P",
                      help="power to reach (default 0.8)")
    plan.add_argument("--out", required=True, type=Path, help="planning table (CSV)")
    plan.set_defaults(run=run)


def _design_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("design")
    group.add_argument("--clusters-per-arm", type=int, metavar="K",
                       help="control clusters (each arm's with the default allocation ratio)")
    group.add_argument("--allocation-ratio", type=float, default=1.0, metavar="Q",
                       help="intervention clusters / control clusters (default 1)")
    group.add_argument("--cluster-size", type=float, metavar="M",
                       help="mean recruited patients per cluster")
    group.add_argument("--cv", type=float, default=0.0, metavar="C",
                       help="coefficient of variation of cluster size (default 0)")
    group.add_argument("--icc", type=float, metavar="R", help="intracluster correlation")
    group.add_argument("--effect", type=float, metavar="D",
                       help="difference in means in SD units")
    group.add_argument("--difference", type=float, metavar="X",
                       help="raw difference in means (needs --sd, or --from for sd_baseline)")
    group.add_argument("--sd", type=float, metavar="S", help="outcome SD for --difference")
    group.add_argument("--alpha", type=float, default=0.05, metavar="A",
                       help="two-sided significance level (default 0.05)")
    group.add_argument("--attrition", type=float, default=0.0, metavar="F",
                       help="fraction of recruited patients without follow-up (default 0)")
    group.add_argument("--baseline-corr", type=float, metavar="RS",
                       help="subject autocorrelation of baseline and follow-up")
    group.add_argument("--cluster-autocorr", type=float, metavar="RC",
                       help="cluster autocorrelation of baseline and follow-up")
    group.add_argument(
        "--baseline", choices=("ancova", "none", "change"),
        help="use of the baseline score; default ancova when an autocorrelation is given "
        "(or taken with --from), else none",
    )
    group.add_argument("--target-power", type=float, metavar="P",
                       help="solve for the one design quantity left out")
    source = parser.add_argument_group("plan from a finished analysis")
    source.add_argument(
        "--from", dest="from_dir", type=Path, metavar="DIR",
        help="analysis directory with primary.csv (and data/patients.parquet)",
    )
    source.add_argument("--outcome", help="outcome whose row of primary.csv is used")
    source.add_argument("--month", type=int,
                        help="follow-up month of that row (default: the latest present)")
    source.add_argument("--baseline-month", type=int, default=0,
                        help="month of the baseline column (default 0)")
    source.add_argument("--cluster-column", default="practice_id",
                        help="cluster column of patients.parquet (default practice_id)")


def _simulation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulation")
    group.add_argument("--reps", type=int, default=1000, metavar="N",
                       help="simulated trials (default 1000)")
    group.add_argument("--seed", type=int, default=1, metavar="S", help="base seed (default 1)")
    group.add_argument("--df-method", choices=SIMULATION_DF_METHODS, default="between-within",
                       help="denominator df of the t test (default between-within)")
    group.add_argument("--min-cluster-size", type=int, default=2, metavar="N",
                       help="floor on simulated recruited cluster sizes (default 2)")
    group.add_argument(
        "--generator", choices=("patients", "sums"), default="patients",
        help="draw every patient (default) or each cluster's sums from their exact "
        "distribution (same results in distribution, faster for large clusters)",
    )
    group.add_argument("--batch-size", type=int, metavar="B",
                       help="replicates per batch (default: as many as fit in 200 MB)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true",
                       help="print " + ", ".join(JSON_KEYS) + " as JSON")
    group.add_argument("--out", type=Path, metavar="FILE", help="write the tidy row as CSV")


def run(args: argparse.Namespace) -> None:
    """Dispatch to the chosen verb."""
    {
        "analytic": _run_analytic, "simulate": _run_simulate, "grid": _run_grid,
        "gather": _run_gather, "plan": _run_plan,
    }[args.power_command](args)


# --------------------------------------------------------------------------- inputs


def _resolve_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The design from the flags, with the values taken ``--from`` an analysis filled in."""
    from trialstats.errors import TrialstatsError
    from trialstats.power.plan import resolve_inputs

    taken: dict[str, Any] = {}
    if args.from_dir is not None:
        taken = _from_analysis(args)
    elif args.outcome is not None or args.month is not None:
        raise TrialstatsError("--outcome and --month only apply with --from DIR.")
    return resolve_inputs(vars(args), taken, None if args.from_dir is None else str(args.from_dir))


def _from_analysis(args: argparse.Namespace) -> dict[str, Any]:
    from trialstats.data.io import read_table
    from trialstats.errors import TrialstatsError
    from trialstats.power.plan import inputs_from_analysis

    if args.outcome is None:
        raise TrialstatsError("--from needs --outcome NAME to choose the row of primary.csv.")
    primary = read_tidy(args.from_dir / "primary.csv", missing="expected a finished analysis")
    patients_path = args.from_dir / "data" / "patients.parquet"
    patients = read_table(patients_path) if patients_path.is_file() else None
    return inputs_from_analysis(
        primary, patients, outcome=args.outcome, month=args.month,
        baseline_month=args.baseline_month, cluster=args.cluster_column, source=str(args.from_dir),
    )


# --------------------------------------------------------------------------- analytic


def _run_analytic(args: argparse.Namespace) -> None:
    from trialstats.errors import TrialstatsError
    from trialstats.power.analytic import solve_continuous

    if args.rate0 is not None or args.rate_ratio is not None:
        return _run_count_analytic(args)
    if args.design is not None:
        return design_words.run_power(args)
    if design_words.run_without_design(args):
        return None
    inputs = _resolve_inputs(args)
    unknown = _unknown(inputs, args.target_power)
    distribution = "t" if args.df == "t" else "normal"
    given = {key: inputs[key] for key in ("clusters_per_arm", "cluster_size", "effect")}
    given[unknown] = None
    if unknown == "effect" and inputs["sd"] is not None:
        sd = inputs["sd"]
    else:
        sd = None
    try:
        frame = solve_continuous(
            unknown=unknown, target_power=0.8 if args.target_power is None else args.target_power,
            cluster_size=given["cluster_size"], icc=inputs["icc"],
            clusters_per_arm=given["clusters_per_arm"], effect=given["effect"], sd=sd,
            allocation_ratio=inputs["allocation_ratio"], cv=inputs["cv"], alpha=inputs["alpha"],
            attrition=inputs["attrition"], baseline=inputs["baseline"], rho_c=inputs["rho_c"],
            rho_s=inputs["rho_s"], distribution=distribution,
        )
    except ValueError as error:
        raise TrialstatsError(str(error)) from None
    frame.insert(0, "method", "analytic")
    frame.insert(2, "mc_se", math.nan)
    frame["rho_s"] = inputs["rho_s"]
    frame["rho_c"] = inputs["rho_c"]
    frame["source"] = "" if args.from_dir is None else str(args.from_dir)
    _emit(args, frame, inputs["notes"])


def _run_count_analytic(args: argparse.Namespace) -> None:
    """``power analytic --rate0 --rate-ratio``: two event rates (Hayes & Bennett 1999)."""
    from trialstats.errors import TrialstatsError
    from trialstats.power.rates import power_rates

    if args.rate0 is None:
        raise TrialstatsError("A count outcome needs --rate0 (with --rate-ratio and "
                              "--cluster-size, the person-time per cluster, unless one of them "
                              "is solved for with --target-power).")
    unused = [flag for flag, value in (
        ("--design", args.design), ("--icc", args.icc), ("--effect", args.effect),
        ("--p0", args.p0), ("--p1", args.p1), ("--from", args.from_dir),
        ("--baseline-corr", args.baseline_corr), ("--cluster-autocorr", args.cluster_autocorr),
    ) if value is not None] + [flag for flag, value in (
        ("--cv", args.cv), ("--attrition", args.attrition)) if value] + (
        ["--allocation-ratio"] if args.allocation_ratio != 1 else [])
    if unused:
        raise TrialstatsError(f"{', '.join(unused)} do not apply to the count formula "
                              "(--rate0 --rate-ratio, equal arms); the clustering is "
                              "--cv-between.")
    row = power_rates(rate0=args.rate0, rate_ratio=args.rate_ratio,
                      person_time=args.cluster_size, cv_between=args.cv_between,
                      clusters_per_arm=args.clusters_per_arm, target_power=args.target_power,
                      alpha=args.alpha)
    row = {"method": "two event rates, Hayes & Bennett (1999) with the between-cluster CV; "
                     "two-sided normal test", **row}
    power_options.emit_record(args, row, lambda: (
        f"Power {row['power']:.4f} to detect rates {row['rate0']:g} vs {row['rate1']:g} "
        f"(rate ratio {row['rate_ratio']:g}) with {row['clusters_per_arm']:g} clusters per "
        f"arm of {row['person_time']:g} person-time, between-cluster CV "
        f"{row['cv_between']:g}.\nMethod: {row['method']}."))


def _unknown(inputs: dict[str, Any], target_power: float | None) -> str:
    from trialstats.errors import TrialstatsError

    missing = [k for k in ("clusters_per_arm", "cluster_size", "effect") if inputs[k] is None]
    flags = {"clusters_per_arm": "--clusters-per-arm", "cluster_size": "--cluster-size",
             "effect": "--effect"}
    if target_power is None:
        if missing:
            raise TrialstatsError(
                f"Missing {', '.join(flags[m] for m in missing)}: give every design quantity "
                "to compute power, or leave out exactly one and give --target-power to solve "
                "for it."
            )
        return "power"
    if len(missing) != 1:
        raise TrialstatsError(
            "With --target-power leave out exactly one of --clusters-per-arm, --cluster-size "
            f"and --effect (left out: {', '.join(flags[m] for m in missing) or 'none'})."
        )
    return missing[0]


# --------------------------------------------------------------------------- simulation


def _run_simulate(args: argparse.Namespace) -> None:
    from trialstats.errors import TrialstatsError
    from trialstats.power.simulate import simulate_power, solve_clusters
    from trialstats.simulation.draw import SimulationDesign

    if args.rate0 is not None or args.rate_ratio is not None:
        return power_options.run_count_simulation(args)
    if args.p0 is not None or args.p1 is not None:
        return _run_simulate_binary(args)
    if args.design is not None:
        return design_words.run_simulation(args)
    inputs = _resolve_inputs(args)
    unknown = _unknown(inputs, args.target_power)
    if unknown not in ("power", "clusters_per_arm"):
        raise TrialstatsError(
            "'power simulate' solves for --clusters-per-arm only; use 'power analytic' to "
            f"solve for {unknown.replace('_', ' ')}."
        )
    if args.reps < 2:
        raise TrialstatsError("--reps must be at least 2.")

    def design(k: int) -> SimulationDesign:
        k_i = max(math.ceil(inputs["allocation_ratio"] * k - 1e-9), 1)
        return SimulationDesign(
            clusters_per_arm=k, k_intervention=k_i, cluster_size=inputs["cluster_size"],
            icc=inputs["icc"], effect=inputs["effect"], cv=inputs["cv"],
            attrition=inputs["attrition"], rho_s=inputs["rho_s"], rho_c=inputs["rho_c"],
            min_cluster_size=args.min_cluster_size, baseline=inputs["baseline"],
        )

    options = {
        "reps": args.reps, "seed": args.seed, "df_method": args.df_method, "alpha": inputs["alpha"],
        "batch_size": args.batch_size, "generator": args.generator,
    }
    if args.constrain_cutoff is not None or args.analysis != "mixed-model":
        from trialstats.simulation.constrained import Constraint

        if args.constrain_cutoff is None or args.covariate_share is None or unknown != "power":
            raise TrialstatsError(
                "Constrained allocation needs --constrain-cutoff and --covariate-share (and "
                "--analysis permutation needs both), with --clusters-per-arm given: power is "
                "simulated, not solved for.")
        rows = []
        with progress_bar("simulating", 2 * args.reps, unit="trial", quiet=args.quiet) as bar:
            for cutoff in (1.0, args.constrain_cutoff):
                constraint = Constraint(cutoff, args.covariate_share, args.constrain_sample)
                rows.append(simulate_power(design(args.clusters_per_arm), progress=bar.update,
                                           constraint=constraint, analysis=args.analysis,
                                           **options))
        frame = _frame(rows)
    elif unknown == "power":
        with progress_bar("simulating", args.reps, unit="trial", quiet=args.quiet) as bar:
            row = simulate_power(design(args.clusters_per_arm), progress=bar.update, **options)
        frame = _frame([row])
    else:
        if not 0 < args.target_power < 1:
            raise TrialstatsError("--target-power must lie in (0, 1).")
        with progress_bar("solving", unit="trial", quiet=args.quiet) as bar:
            frame = solve_clusters(
                design, target_power=args.target_power, progress=bar.update,
                start=_analytic_clusters(inputs, args.target_power), **options
            )
    frame["source"] = "" if args.from_dir is None else str(args.from_dir)
    _emit(args, frame, inputs["notes"])


def _run_simulate_binary(args: argparse.Namespace) -> None:
    """``power simulate --p0 --p1``: the logistic-GLMM simulation of a binary outcome."""
    from trialstats.errors import TrialstatsError
    from trialstats.power.simulate_glmm import simulate_binary_power

    unused = power_options.binary_unused(args, (
        ("--target-power", args.target_power), ("--batch-size", args.batch_size),
    )) + (["--attrition"] if args.attrition else []) + (
        ["--generator"] if args.generator != "patients" else [])
    if unused:
        raise TrialstatsError(
            f"{', '.join(unused)} do not apply to the binary simulation (--p0 --p1); give the "
            "analysed cluster size as --cluster-size and --clusters-per-arm (it computes power, "
            "it does not solve for a design)."
        )
    missing = [flag for flag, value in (
        ("--clusters-per-arm", args.clusters_per_arm), ("--cluster-size", args.cluster_size),
        ("--icc", args.icc)) if value is None]
    if missing:
        raise TrialstatsError(f"Missing {', '.join(missing)} for the binary simulation.")
    k_i = max(math.ceil(args.allocation_ratio * args.clusters_per_arm - 1e-9), 1)
    row = simulate_binary_power(
        p0=args.p0, p1=args.p1, clusters_per_arm=args.clusters_per_arm, k_intervention=k_i,
        cluster_size=args.cluster_size, cv=args.cv, icc=args.icc, reps=args.reps,
        seed=args.seed, df_method=args.df_method, alpha=args.alpha,
        n_agq=args.quadrature_points, min_cluster_size=args.min_cluster_size,
    )
    power_options.emit_record(args, row, lambda: (
        f"Power {row['power']:.4f} (Monte Carlo SE {row['mc_se']:.4f}, {row['reps']} trials) "
        f"to detect risks {row['p0']:g} vs {row['p1']:g} (odds ratio "
        f"{row['odds_ratio']:.4g}) with {row['clusters_per_arm']} control + "
        f"{row['k_intervention']} intervention clusters of mean size {row['cluster_size']:g}, "
        f"latent ICC {row['icc']:g}.\n"
        f"Type I error at odds ratio 1: {row['type_i_error']:.4f} (Monte Carlo SE "
        f"{row['type_i_error_mc_se']:.4f}); df method {row['df_method']}; "
        f"{row['n_failed']} fits did not converge.\nMethod: {row['method']}."))


def _analytic_clusters(inputs: dict[str, Any], target_power: float) -> int:
    """The analytic answer for clusters per arm, as the simulation search's starting point."""
    from trialstats.errors import TrialstatsError
    from trialstats.power.analytic import solve_continuous

    try:
        frame = solve_continuous(
            unknown="clusters_per_arm", target_power=target_power,
            cluster_size=inputs["cluster_size"], icc=inputs["icc"], effect=inputs["effect"],
            allocation_ratio=inputs["allocation_ratio"], cv=inputs["cv"],
            alpha=inputs["alpha"], attrition=inputs["attrition"], baseline=inputs["baseline"],
            rho_c=inputs["rho_c"], rho_s=inputs["rho_s"],
        )
    except TrialstatsError:
        return 2
    return int(frame["clusters_per_arm"].iloc[0])


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- grid


def _run_grid(args: argparse.Namespace) -> None:
    from trialstats.config import load_config
    from trialstats.data.io import write_atomically
    from trialstats.errors import TrialstatsError
    from trialstats.power.grid import chunk_scenarios, expand_grid, grid_workload, run_scenarios

    config = load_config(args.config)
    spec = config.get("power")
    if not spec:
        raise TrialstatsError(f"{args.config}: has no 'power' section to expand into a grid.")
    if args.n_chunks < 1 or not 0 <= args.chunk < args.n_chunks:
        raise TrialstatsError("--chunk must lie in 0 .. --n-chunks - 1.")
    scenarios = chunk_scenarios(expand_grid(spec), args.chunk, args.n_chunks)
    with progress_bar("grid", grid_workload(scenarios, spec), unit="trial",
                      quiet=args.quiet) as bar:
        table = run_scenarios(scenarios, spec, progress=bar.update)
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(
        f"Wrote {len(table)} rows ({len(scenarios)} scenarios, chunk {args.chunk + 1} of "
        f"{args.n_chunks}) to {args.out}."
    )


def _run_gather(args: argparse.Namespace) -> None:

    from trialstats.data.io import write_atomically
    from trialstats.power.grid import gather
    from trialstats.report.files import save_figure
    from trialstats.report.power_curves import power_curve_figure

    table = gather([read_tidy(path, missing="run its `power grid` chunk first")
                    for path in args.chunks])
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    for figure_path in args.figure:
        save_figure(power_curve_figure(table), figure_path)
    print(f"Wrote {len(table)} rows to {args.out}"
          + "".join(f" and {p}" for p in args.figure) + ".")


def _run_plan(args: argparse.Namespace) -> None:
    from trialstats.contract import write_tidy
    from trialstats.data.io import read_table
    from trialstats.errors import TrialstatsError
    from trialstats.power.plan import plan_from_analysis

    primary = read_tidy(args.results, columns=("outcome", "month", "n_patients", "n_clusters",
                                               "icc", "sd_baseline", "mcid"))
    if args.patients is not None and not args.patients.is_file():
        raise TrialstatsError(f"{args.patients}: file not found.")
    patients = None if args.patients is None else read_table(args.patients)
    table = plan_from_analysis(
        primary, patients, outcomes=args.outcome, month=args.month,
        baseline_month=args.baseline_month, cluster=args.cluster_column,
        cluster_size=args.cluster_size, cv=args.cv, attrition=args.attrition,
        allocation_ratio=args.allocation_ratio, alpha=args.alpha,
        target_power=args.target_power, source=str(args.results),
    )
    write_tidy(table, args.out)
    for row in table.itertuples():
        if str(row.notes).startswith("not planned"):
            print(f"{row.outcome}: {row.notes}")
            continue
        print(f"{row.outcome} (month {row.month}): {row.clusters_per_arm} clusters per arm of "
              f"{row.cluster_size:.4g} patients for {row.target_power:g} power at the MCID "
              f"({row.effect:.3g} SD, ICC {row.icc:.3g})")
    print(f"Wrote {len(table)} rows to {args.out}.")


# --------------------------------------------------------------------------- output


def _emit(args: argparse.Namespace, frame: Any, notes: list[str]) -> None:
    from trialstats.data.io import write_atomically

    if args.out is not None:
        write_atomically(args.out, lambda tmp: frame.to_csv(tmp, index=False))
    if "allocation" in frame:
        if args.json:
            print(json.dumps([_json_record(row, frame) for _, row in frame.iterrows()]))
            return
        for note in notes:
            print(f"note: {note}")
        for _, row in frame.iterrows():
            kept = ("all allocations" if row["constrain_cutoff"] == 1
                    else f"best {100 * row['constrain_cutoff']:g}% of allocations")
            print(f"{row['allocation'].capitalize()} allocation ({kept}; covariate share "
                  f"{row['covariate_share']:g}), {row['analysis']}:\n{_describe(row)}")
        return
    row = frame[frame["solution"]].iloc[0] if "solution" in frame else frame.iloc[-1]
    if args.json:
        print(json.dumps(_json_record(row, frame)))
        return
    for note in notes:
        print(f"note: {note}")
    print(_describe(row))


def _json_record(row: Any, frame: Any) -> dict[str, Any]:
    record = {key: power_options.plain(row.get(key)) for key in JSON_KEYS}
    extra = ("k_intervention", "type_i_error", "type_i_error_mc_se", "reps", "seed", "df_method",
             "generator", "allocation", "constrain_cutoff", "covariate_share", "analysis")
    record.update({key: power_options.plain(row[key]) for key in extra if key in frame.columns})
    return record


def _describe(row: Any) -> str:
    k_c, k_i = int(row["clusters_per_arm"]), int(row["k_intervention"])
    clusters = f"{k_c} clusters per arm" if k_c == k_i else f"{k_c} control + {k_i} intervention"
    lines = []
    unknown = row.get("unknown", "clusters_per_arm" if "solution" in row else "power")
    if unknown != "power":
        lines.append(f"Solved for {unknown.replace('_', ' ')} "
                     f"(target power {row['target_power']:g}).")
    power = f"Power {row['power']:.4f}"
    if isinstance(row.get("mc_se"), float) and not math.isnan(row["mc_se"]):
        power += f" (Monte Carlo SE {row['mc_se']:.4f}, {int(row['reps'])} trials)"
    lines.append(
        f"{power} to detect {row['effect']:.4g} SD with {clusters} of mean size "
        f"{row['cluster_size']:g}; design effect {row['design_effect']:.4g}."
    )
    if "type_i_error" in row:
        lines.append(f"Type I error at effect 0: {row['type_i_error']:.4f} "
                     f"(Monte Carlo SE {row['type_i_error_mc_se']:.4f}); "
                     f"df method {row['df_method']}.")
    return "\n".join(lines)
