"""``trialstats design show`` and the design words of ``trialstats power analytic``.

::

    trialstats design show --design stepped-wedge --sequences 4 --clusters-per-sequence 6
    trialstats design show --design layout.csv --out layout.svg
    trialstats power analytic --design stepped-wedge --sequences 4 --clusters-per-sequence 6 \\
        --periods 5 --cluster-size 120 --icc 0.0024 --cluster-autocorr 1 --p0 0.05 --p1 0.035

A design is named (``parallel``, ``parallel-baseline``, ``stepped-wedge``, ``crossover``) or
read from a CSV file (header of period labels plus an optional ``clusters`` column, one row
per sequence, cells 0/1, blank = not measured); see :mod:`trialstats.power.designs`. The
power formulas are in :mod:`trialstats.power.design_power`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trialstats.commands.power_options import binary_unused, emit_record, plain

DESIGN_ONLY = ("sequences", "clusters_per_sequence", "periods", "decay", "individual_autocorr")
JSON_KEYS = (
    "method", "design", "outcome", "unknown", "target_power", "power", "sequences",
    "clusters_per_sequence", "clusters", "periods", "cluster_size", "cluster_size_exact", "icc",
    "cluster_autocorr", "decay", "individual_autocorr", "effect", "difference", "sd", "p0", "p1",
    "variance", "se", "df", "df_method", "alpha", "design_effect", "relative_efficiency",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``design`` subcommand and its ``show`` verb."""
    parser = subparsers.add_parser(
        "design",
        help="show a trial design's sequence x period grid and draw its schematic",
        description="Trial designs: parallel, parallel with a baseline period, stepped wedge, "
        "cluster crossover, or a design file.",
    )
    verbs = parser.add_subparsers(dest="design_command", required=True, metavar="VERB")
    show = verbs.add_parser(
        "show",
        help="print the sequence x period grid (1 intervention, 0 control, . not measured)",
        description="Print the sequence x period grid of a design and, with --out, draw "
        "its schematic (.svg, .png or .pdf).",
    )
    _layout_arguments(show.add_argument_group("design"), required=True)
    show.add_argument("--out", type=Path, metavar="FIG", help="schematic figure to write")
    show.set_defaults(run=run)


def _layout_arguments(group: argparse._ArgumentGroup, *, required: bool) -> None:
    group.add_argument(
        "--design", required=required, metavar="NAME|FILE.csv",
        help="parallel, parallel-baseline, stepped-wedge, crossover, or a design CSV (header "
        "of period labels plus optional 'clusters'; one row per sequence; 0/1, blank = not "
        "measured)",
    )
    group.add_argument("--sequences", type=int, metavar="S",
                       help="sequences (stepped wedge; the others have 2)")
    group.add_argument("--clusters-per-sequence", type=int, metavar="K",
                       help="clusters randomised to each sequence")
    group.add_argument("--periods", type=int, metavar="T",
                       help="periods (default: 1 parallel, 2 parallel-baseline and crossover, "
                       "S + 1 stepped wedge)")


def add_power_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the design words to ``power analytic`` (its other flags are shared)."""
    group = parser.add_argument_group(
        "any design (with --design; --icc, --cluster-autocorr, --cluster-size, --effect, "
        "--difference/--sd, --alpha and --target-power keep their names)"
    )
    _layout_arguments(group, required=False)
    group.add_argument("--decay", type=float, metavar="r",
                       help="the between-period cluster correlation is multiplied by r^|s-t| "
                       "(default 1: none)")
    group.add_argument("--individual-autocorr", type=float, metavar="IAC",
                       help="closed cohort: the share of the within-cluster variance that is a "
                       "patient's own, persisting across periods (default 0: cross-sectional)")
    group.add_argument("--p0", type=float, metavar="P0", help="control proportion (binary)")
    group.add_argument("--p1", type=float, metavar="P1", help="intervention proportion (binary)")


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the design words to ``power simulate`` (--icc, --cluster-autocorr, --cluster-size,
    --effect, --reps, --seed and --alpha keep their names)."""
    group = parser.add_argument_group(
        "stepped-wedge, crossover and baseline-period designs (with --design): trials drawn "
        "as cluster-period sums and analysed by REML with cluster and cluster-period "
        "intercepts (trialstats.simulation.periods); --df-method satterthwaite, "
        "kenward-roger or between-within"
    )
    _layout_arguments(group, required=False)


def run_simulation(args: argparse.Namespace) -> None:
    """``power simulate --design``: power and type I error of a period design by simulation."""
    from trialstats.errors import TrialstatsError
    from trialstats.simulation.periods import simulate_period_power

    design, clusters_known = load_design(args)
    missing = [flag for flag, value in (("--icc", args.icc), ("--effect", args.effect),
                                        ("--cluster-size", args.cluster_size)) if value is None]
    if not clusters_known:
        missing.append("--clusters-per-sequence")
    if missing:
        raise TrialstatsError(f"power simulate --design needs {', '.join(missing)}.")
    if len(set(design.clusters.tolist())) != 1:
        raise TrialstatsError(f"{design.name}: simulation needs the same number of clusters "
                              "in every sequence.")
    df_method = args.df_method
    result = simulate_period_power(
        design.treatment, int(design.clusters[0]), args.cluster_size, icc=args.icc,
        cac=1.0 if args.cluster_autocorr is None else args.cluster_autocorr,
        effect=args.effect, reps=args.reps, seed=args.seed, df_method=df_method,
        alpha=args.alpha,
    )
    result["design"] = design.name
    if args.json:
        print(json.dumps({key: plain(value) for key, value in result.items()}))
        return
    print(
        f"Power {result['power']:.4f} (Monte Carlo SE {result['mc_se']:.4f}, {args.reps} "
        f"trials) of a {design.name} design ({result['sequences']} sequences x "
        f"{result['periods']} periods, {int(design.clusters[0])} clusters per sequence, "
        f"{args.cluster_size:g} per cluster-period) to detect {args.effect:g} SD with ICC "
        f"{args.icc:g}, CAC {result['cac']:g}; type I error "
        f"{result['type_i_error']:.4f} (MC SE {result['type_i_error_mc_se']:.4f}); "
        f"{df_method} df; {result['n_failed']} fits did not converge."
    )


def run_without_design(args: argparse.Namespace) -> bool:
    """``power analytic`` without ``--design``: the two-arm parallel formulas.

    Refuses the design-only flags; with ``--p0 --p1`` computes binary power (or solves for
    clusters per arm or cluster size) with arm-specific variances and returns True; otherwise
    returns False and the continuous parallel formulas run.
    """
    from trialstats.errors import TrialstatsError

    given = [name for name in DESIGN_ONLY if getattr(args, name, None) is not None]
    if args.df == "between-within":
        given.append("df between-within")
    if given:
        flags = ", ".join("--" + g.replace("_", "-") for g in given)
        raise TrialstatsError(
            f"{flags} only apply with --design (e.g. --design parallel); without it the "
            "two-arm parallel formulas are used."
        )
    if args.p0 is None and args.p1 is None:
        return False
    _parallel_binary(args)
    return True


def _parallel_binary(args: argparse.Namespace) -> None:
    from trialstats.errors import TrialstatsError
    from trialstats.power.binary import solve_binary

    unused = binary_unused(args)
    if unused:
        raise TrialstatsError(f"{', '.join(unused)} do not apply to a binary outcome "
                              "(--p0 --p1) in the parallel formulas.")
    if args.icc is None:
        raise TrialstatsError("Give the intracluster correlation with --icc.")
    missing = [k for k in ("clusters_per_arm", "cluster_size") if getattr(args, k) is None]
    if len(missing) != (0 if args.target_power is None else 1):
        raise TrialstatsError(
            "Give --clusters-per-arm and --cluster-size for power, or leave out one of them "
            "and give --target-power to solve for it."
        )
    frame = solve_binary(
        unknown=missing[0] if missing else "power",
        target_power=args.target_power or 0.8, p_control=args.p0, p_intervention=args.p1,
        cluster_size=args.cluster_size, icc=args.icc, clusters_per_arm=args.clusters_per_arm,
        allocation_ratio=args.allocation_ratio, cv=args.cv, alpha=args.alpha,
        attrition=args.attrition, distribution="t" if args.df == "t" else "normal",
    )
    row = frame.iloc[0]
    test = (f"noncentral t on {row['df']:g} df" if args.df == "t" else "normal approximation")
    record = {"method": "two-arm parallel, arm-specific binomial variances p0(1-p0) and "
              "p1(1-p1) with the Eldridge et al. (2006) design effect (Donner & Klar 2000; "
              f"clusterPower cpa.binary); two-sided test, {test}"}
    keys = ("unknown", "target_power", "power", "clusters_per_arm", "k_intervention",
            "clusters_per_arm_exact", "cluster_size", "cluster_size_exact", "p_control",
            "p_intervention", "difference", "icc", "cv", "attrition", "alpha", "design_effect",
            "df")
    record.update({key: plain(row[key]) for key in keys})
    emit_record(args, record, lambda: (
        f"Power {record['power']:.4f} to detect {args.p0:g} vs {args.p1:g} with "
        f"{record['clusters_per_arm']:g} control and {record['k_intervention']:g} "
        f"intervention clusters of mean size {record['cluster_size']:g}; design effect "
        f"{record['design_effect']:.4g}.\nMethod: {record['method']}."))


def load_design(args: argparse.Namespace) -> tuple[Any, bool]:
    """The design named or read by ``--design`` with the layout flags applied, and whether its
    clusters per sequence are known (given, or a ``clusters`` column of the file)."""
    from trialstats.data.io import read_table
    from trialstats.errors import TrialstatsError
    from trialstats.power.designs import DESIGNS, design_from_table, standard_design

    if args.design in DESIGNS:
        design = standard_design(
            args.design, sequences=args.sequences, periods=args.periods,
            clusters_per_sequence=1 if args.clusters_per_sequence is None
            else args.clusters_per_sequence,
        )
        return design, args.clusters_per_sequence is not None
    path = Path(args.design)
    if path.suffix == "" and not path.exists():
        raise TrialstatsError(
            f"--design {args.design}: not a design name ({', '.join(DESIGNS)}) or a file."
        )
    if args.sequences is not None or args.periods is not None:
        raise TrialstatsError(f"{path}: a design file sets the sequences and periods itself; "
                              "leave out --sequences and --periods.")
    table = read_table(path)
    design = design_from_table(table, str(path), args.clusters_per_sequence)
    return design, "clusters" in table.columns or args.clusters_per_sequence is not None


def run(args: argparse.Namespace) -> None:
    """``design show``: print the grid; with ``--out`` draw the schematic."""
    from trialstats.power.designs import grid_text

    design, _ = load_design(args)
    print(grid_text(design))
    if args.out is not None:
        from trialstats.report.files import save_figure
        from trialstats.report.schematic import schematic_figure

        save_figure(schematic_figure(design), args.out)
        print(f"Wrote the schematic to {args.out}.")


def run_power(args: argparse.Namespace) -> None:
    """``power analytic --design``: power, or solve for the one quantity left out."""
    from trialstats.errors import TrialstatsError
    from trialstats.power.design_power import solve_design

    parallel_only = [flag for flag, used in (
        ("--clusters-per-arm", args.clusters_per_arm is not None),
        ("--allocation-ratio", args.allocation_ratio != 1.0), ("--cv", args.cv != 0.0),
        ("--attrition", args.attrition != 0.0), ("--baseline-corr", args.baseline_corr),
        ("--baseline", args.baseline), ("--from", args.from_dir),
    ) if used is not None and used is not False]
    if parallel_only:
        raise TrialstatsError(
            f"{', '.join(parallel_only)} belong to the two-arm parallel formulas; with --design "
            "give --clusters-per-sequence, and cluster-period sizes with --cluster-size."
        )
    design, clusters_known = load_design(args)
    if args.icc is None:
        raise TrialstatsError("Give the intracluster correlation with --icc.")
    outcome, effect, sd = _outcome(args)
    unknown = _unknown(args, clusters_known, effect)
    options = {
        "icc": args.icc,
        "cluster_autocorr": 1.0 if args.cluster_autocorr is None else args.cluster_autocorr,
        "decay": 1.0 if args.decay is None else args.decay,
        "individual_autocorr": 0.0 if args.individual_autocorr is None
        else args.individual_autocorr,
        "df_method": args.df,
        "alpha": args.alpha,
        "p0": args.p0,
        "p1": args.p1,
    }
    row = solve_design(unknown, design, target_power=args.target_power or 0.8,
                       cluster_size=args.cluster_size, effect=effect, **options)
    scale = 1.0 if sd is None else sd
    if outcome == "continuous":
        row["difference"] *= scale
        row["variance"] *= scale**2
        row["se"] *= scale
    row.update(options, design=design.name, outcome=outcome, sd=sd,
               sequences=len(design.clusters), periods=len(design.periods))
    record = {key: plain(row.get(key)) for key in JSON_KEYS}
    emit_record(args, record, lambda: _describe(record))


def _outcome(args: argparse.Namespace) -> tuple[str, float | None, float | None]:
    """Outcome type, effect in total-SD units (None: to be solved) and the SD given."""
    from trialstats.errors import TrialstatsError

    binary = args.p0 is not None or args.p1 is not None
    if binary and (args.p0 is None or args.p1 is None):
        raise TrialstatsError("A binary outcome needs both --p0 and --p1.")
    if binary + (args.effect is not None) + (args.difference is not None) > 1:
        raise TrialstatsError("Give the effect once: --effect D, --difference X --sd S, "
                              "or --p0 P0 --p1 P1.")
    if binary:
        return "binary", None, None
    if args.difference is not None and args.sd is None:
        raise TrialstatsError("--difference needs the total SD of the outcome: --sd S.")
    if args.sd is not None and args.sd <= 0:
        raise TrialstatsError("The outcome SD must be positive.")
    if args.difference is not None:
        return "continuous", args.difference / args.sd, args.sd
    return "continuous", args.effect, args.sd


def _unknown(args: argparse.Namespace, clusters_known: bool, effect: float | None) -> str:
    from trialstats.errors import TrialstatsError

    missing = [flag for flag, absent in (
        ("--clusters-per-sequence", not clusters_known),
        ("--cluster-size", args.cluster_size is None),
        ("--effect", effect is None and args.p0 is None),
    ) if absent]
    if args.target_power is None:
        if missing:
            raise TrialstatsError(
                f"Missing {', '.join(missing)}: give every design quantity to compute power, "
                "or leave out exactly one and give --target-power to solve for it."
            )
        return "power"
    if len(missing) != 1:
        raise TrialstatsError(
            "With --target-power leave out exactly one of --clusters-per-sequence, "
            f"--cluster-size and --effect (left out: {', '.join(missing) or 'none'})."
        )
    return missing[0].lstrip("-").replace("-", "_")


def _describe(r: dict[str, Any]) -> str:
    lines = []
    if r["unknown"] != "power":
        lines.append(f"Solved for {r['unknown'].replace('_', ' ')} "
                     f"(target power {r['target_power']:g}).")
    k = r["clusters_per_sequence"]
    clusters = (f"{k:g} clusters per sequence ({r['clusters']:g} in all)" if k is not None
                else f"{r['clusters']:g} clusters")
    target = (f"{r['p0']:g} vs {r['p1']:g}" if r["outcome"] == "binary"
              else f"a difference of {r['difference']:.4g}"
              + (f" ({r['effect']:.4g} SD)" if r["sd"] is not None else " SD"))
    lines.append(
        f"Power {r['power']:.4f} to detect {target} in a {r['design']} design with "
        f"{r['sequences']:g} sequences x {r['periods']:g} periods, {clusters}, "
        f"{r['cluster_size']:g} patients per cluster-period."
    )
    lines.append(f"Design effect {r['design_effect']:.4g}; relative efficiency against the "
                 f"parallel design with the same clusters {r['relative_efficiency']:.4g}.")
    lines.append(f"Method: {r['method']}.")
    return "\n".join(lines)
