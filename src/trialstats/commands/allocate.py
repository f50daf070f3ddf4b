"""``trialstats allocate``: allocate a trial's practices to its two arms.

Writes, only when the whole allocation succeeded: ``allocation.csv`` (practice id, arm),
``balance.csv`` (:func:`trialstats.allocation.balance.balance_table`), ``summary.json``; for
constrained randomisation also ``accepted.csv`` (a 0/1 column per practice and ``score``,
one row per accepted allocation: the allocation set of the permutation test),
``pairs.csv`` (:func:`trialstats.allocation.constrained.pair_coallocation`), the
score-distribution figure ``scores.svg``/``scores.png`` and its histogram ``scores.csv``
(:func:`trialstats.report.allocation.score_histogram`, read by ``trialstats report
--allocation``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trialstats.errors import TrialstatsError

METHODS = ("constrained", "minimisation", "simple", "stratified")
INTERVENTION, CONTROL = "intervention", "control"


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _numbers(text: str) -> list[float]:
    try:
        return [float(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``allocate`` subcommand."""
    parser = subparsers.add_parser(
        "allocate",
        help="allocate practices: constrained randomisation, minimisation, blocks, simple",
        description="Allocate the practices of a new trial to intervention and control. "
        "Constrained randomisation scores every allocation (or a uniform sample) for "
        "covariate balance as cvcrand does, keeps the best and draws one; its accepted set is "
        "the allocation set of the permutation test (design.allocation_set).",
    )
    parser.add_argument("--practices", required=True, type=Path,
                        help="practices table (csv, tsv, xlsx, parquet, dta, sav)")
    parser.add_argument("--id", default="practice_id", help="practice id column "
                        "(default practice_id)")
    parser.add_argument("--method", choices=METHODS, default="constrained",
                        help="allocation method (default constrained)")
    parser.add_argument("--balance", type=_names, default=[], metavar="COLS",
                        help="comma-separated covariates to balance (minimisation factors)")
    parser.add_argument("--weights", type=_numbers, metavar="W,...",
                        help="one weight per --balance covariate (constrained; default 1)")
    parser.add_argument("--categorical", type=_names, default=[], metavar="COLS",
                        help="which covariates are categorical (first sorted level = reference)")
    parser.add_argument("--strata", type=_names, default=[], metavar="COLS",
                        help="stratification columns (stratified blocks)")
    parser.add_argument("--ratio", type=float, default=1.0, metavar="Q",
                        help="intervention:control ratio (default 1)")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--cutoff", type=float, metavar="Q",
                      help="keep the best fraction Q of allocations (default 0.1)")
    keep.add_argument("--top", type=int, metavar="N", help="keep the N best allocations")
    parser.add_argument("--metric", choices=("l2", "l1"), default="l2",
                        help="balance score (default l2)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="score N allocations sampled uniformly without replacement "
                        "instead of enumerating all (needed beyond 3,000,000)")
    parser.add_argument("--probability", type=float, default=0.8, metavar="P",
                        help="minimisation: probability of the arm that minimises imbalance "
                        "(default 0.8)")
    parser.add_argument("--seed", type=int, default=12345, help="seed (default 12345)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.set_defaults(run=run)


def _check_options(args: argparse.Namespace) -> None:
    constrained = args.method == "constrained"
    problems = []
    if not constrained:
        for flag, value in (("--weights", args.weights), ("--cutoff", args.cutoff),
                            ("--top", args.top), ("--sample", args.sample)):
            if value is not None:
                problems.append(f"{flag} applies to --method constrained only")
    if args.method in ("constrained", "minimisation") and not args.balance:
        problems.append(f"--method {args.method} needs covariates (--balance COLS)")
    if args.strata and args.method != "stratified":
        problems.append("--strata applies to --method stratified only")
    stray = set(args.categorical) - set(args.balance) - set(args.strata)
    if stray:
        problems.append(f"--categorical names {', '.join(sorted(stray))}, which are neither "
                        f"--balance nor --strata columns")
    if problems:
        raise TrialstatsError("; ".join(problems) + ".")


def allocate(practices: pd.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    """Allocate ``practices`` as ``args`` ask; return the tables and summary to write."""
    from trialstats.allocation import balance, constrained, sequential

    rng = np.random.default_rng(args.seed)
    summary: dict[str, Any] = {"method": args.method, "seed": args.seed, "ratio": args.ratio,
                               "n_allocations": None, "n_accepted": None, "cutoff": None,
                               "top": None, "cutoff_score": None, "score": None,
                               "metric": args.metric, "warnings": []}
    outputs: dict[str, Any] = {}
    z = (balance.covariate_matrix(practices, args.balance, args.categorical, args.weights)[0]
         if args.balance else None)
    if args.method == "constrained":
        n_treated = constrained.n_treated_for(len(practices), args.ratio)
        cutoff = 0.1 if args.cutoff is None and args.top is None else args.cutoff
        result = constrained.constrained_randomisation(
            z, n_treated, metric=args.metric, cutoff=cutoff, top=args.top,
            sample=args.sample, seed=args.seed)
        treated = result.allocation
        ids = list(practices[args.id])
        pairs = constrained.pair_coallocation(result.accepted, ids)
        accepted = pd.DataFrame(result.accepted.astype(int), columns=ids)
        accepted["score"] = result.accepted_scores
        summary.update(n_allocations=len(result.scores), n_accepted=len(result.accepted),
                       n_possible=result.n_possible, enumerated=result.enumerated,
                       cutoff=cutoff, top=args.top, cutoff_score=result.cutoff_score,
                       warnings=constrained.over_constraint(pairs, len(result.accepted)))
        outputs.update(accepted=accepted, pairs=pairs, result=result)
    elif args.method == "minimisation":
        factors = sequential.minimisation_factors(practices, args.balance, args.categorical)
        treated = sequential.minimisation(factors, args.ratio, rng, args.probability) == 1
        summary["probability"] = args.probability
    elif args.method == "stratified":
        strata = (practices[args.strata].astype(str).agg(" / ".join, axis=1)
                  if args.strata else pd.Series("all", index=practices.index))
        treated = sequential.permuted_blocks(strata, args.ratio, rng) == 1
    else:
        treated = sequential.simple_randomisation(len(practices), args.ratio, rng) == 1
    if z is not None:
        summary["score"] = float(balance.balance_scores(treated[None, :], z, args.metric)[0])
    summary.update(n_practices=len(practices), n_intervention=int(treated.sum()),
                   n_control=int((~treated).sum()))
    if min(summary["n_intervention"], summary["n_control"]) < 2:
        summary["warnings"].append("an arm has fewer than two practices; a cluster "
                                   "randomised trial cannot be analysed so.")
    outputs["allocation"] = pd.DataFrame({
        args.id: practices[args.id], "arm": np.where(treated, INTERVENTION, CONTROL)})
    outputs["balance"] = balance.balance_table(
        practices, treated, list(dict.fromkeys([*args.balance, *args.strata])),
        [*args.categorical, *args.strata])
    outputs["summary"] = summary
    return outputs


def run(args: argparse.Namespace) -> None:
    """Read, allocate, then write every output; print a short summary."""
    from trialstats.allocation.balance import practice_table
    from trialstats.data.io import read_table, write_atomically, write_csv

    _check_options(args)
    practices = practice_table(
        read_table(args.practices), args.practices, id_column=args.id,
        columns=[*args.balance, *args.strata], categorical=[*args.categorical, *args.strata])
    outputs = allocate(practices, args)
    summary = outputs["summary"]
    if "result" in outputs:
        from trialstats.report.allocation import score_figure, score_histogram
        from trialstats.report.files import save_figure

        result = outputs["result"]
        histogram = score_histogram(result.scores)
        figure = score_figure(histogram, result.cutoff_score, result.score,
                              metric=args.metric, n_accepted=len(result.accepted),
                              enumerated=result.enumerated)
        write_csv(histogram, args.out / "scores.csv")
        write_csv(outputs["accepted"], args.out / "accepted.csv")
        write_csv(outputs["pairs"], args.out / "pairs.csv")
        for suffix in ("svg", "png"):
            save_figure(figure, args.out / f"scores.{suffix}")
    write_csv(outputs["allocation"], args.out / "allocation.csv")
    write_csv(outputs["balance"], args.out / "balance.csv")
    write_atomically(args.out / "summary.json", lambda tmp: tmp.write_text(
        json.dumps(summary, indent=2) + "\n"))
    print(f"{args.method}: {summary['n_intervention']} practices to {INTERVENTION}, "
          f"{summary['n_control']} to {CONTROL}"
          + (f"; {summary['n_accepted']:,} of {summary['n_allocations']:,} allocations "
             f"accepted (cut-off score {summary['cutoff_score']:.4g})"
             if summary["n_accepted"] else "")
          + (f"; balance score {summary['score']:.4g}" if summary["score"] is not None else ""))
    for warning in summary["warnings"]:
        print(f"warning: {warning}")
