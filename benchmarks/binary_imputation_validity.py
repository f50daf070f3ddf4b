"""Validity of multiple imputation of a binary outcome by simulation: bias and coverage.

Each replicate is a two-arm CRT of ``2 x clusters_per_arm`` practices of about 30 patients
with a binary outcome at months 0 and 12: practice effect :math:`b_j \\sim N(0, 0.6^2)` on the
logit scale, :math:`P(y_0 = 1) = \\mathrm{expit}(-0.5 + b_j)`,
:math:`P(y_{12} = 1) = \\mathrm{expit}(-0.5 + 0.5\\,T_j + 1.0\\,y_0 + b_j)` (true conditional log
odds ratio ``0.5``). The baseline is 5% missing completely at random; the 12-month value is
missing at random given the baseline and the arm, :math:`P(\\text{missing}) =
\\mathrm{expit}(-1.2 + 0.8\\,y_0 + 0.4\\,T_j)` (about 30%). With ``--shift S`` the intervention
patients who drop out have log-odds ``S`` higher than the model (missing not at random); the
target of every analysis is then the full-data GLMM fit of the same replicate before any value
was deleted.

Every replicate is imputed once (:func:`trialstats.analysis.imputation.impute_trial`;
two-level logistic chained equations) and analysed by the multiple-imputation rows
(:func:`trialstats.analysis.imputation_glmm.glmm_pooled_rows`: the primary GLMM with
between-within df in each completed dataset, Rubin's rules) and by the delta-adjustment rows
at delta 0 and delta = ``shift`` (:func:`trialstats.analysis.delta.delta_rows`), and, for
comparison, by the primary GLMM
on the complete cases and on the full data. Prints bias, empirical and model SE and 95% CI
coverage of the log odds ratio with Monte Carlo SEs, and the largest |difference| between the
delta = 0 rows and the multiple-imputation rows (0 means identical).

    .venv/bin/python benchmarks/binary_imputation_validity.py [--reps 200] [--seed 2026]
        [--imputations 10] [--shift 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from trialstats.analysis.delta import delta_rows
from trialstats.analysis.glmm_rows import glmm_outcome_rows
from trialstats.analysis.imputation import impute_trial
from trialstats.analysis.imputation_glmm import glmm_pooled_rows

TRUE = 0.5
NUMBERS = ["estimate", "se", "df", "ci_low", "ci_high", "p_value", "var_cluster", "icc"]


def config(imputations: int, seed: int, shift: float) -> dict:
    """The configuration of one replicate's analyses."""
    return {
        "design": {"cluster": "practice_id", "baseline_month": 0, "primary_month": 12,
                   "followup_months": [12]},
        "outcomes": [{"name": "y", "type": "binary", "primary": True,
                      "higher_is_better": True}],
        "analysis": {"covariates": [], "df_method": ["satterthwaite"], "alpha": 0.05,
                     "glmm_df_method": ["between-within"], "quadrature_points": 15},
        "sensitivity": {"imputations": imputations, "seed": seed,
                        "delta": sorted({0.0, shift}), "delta_arm": "intervention",
                        "delta_scale": "raw"},
    }


def simulate_trial(rng: np.random.Generator, *, clusters_per_arm: int = 10,
                   cluster_size: int = 30, shift: float = 0.0) -> tuple[pd.DataFrame, ...]:
    """One simulated trial: (patients with missing values, the same before deletion)."""
    n_clusters = 2 * clusters_per_arm
    sizes = np.maximum(rng.poisson(cluster_size, n_clusters), 5)
    codes = np.repeat(np.arange(n_clusters), sizes)
    treated = (np.arange(n_clusters) % 2 == 0).astype(float)[codes]
    b = rng.normal(0.0, 0.6, n_clusters)[codes]
    y0 = (rng.random(codes.size) < 1 / (1 + np.exp(0.5 - b))).astype(float)
    lost = rng.random(codes.size) < 1 / (1 + np.exp(1.2 - 0.8 * y0 - 0.4 * treated))
    eta = -0.5 + TRUE * treated + 1.0 * y0 + b + shift * (lost & (treated == 1))
    y12 = (rng.random(codes.size) < 1 / (1 + np.exp(-eta))).astype(float)
    full = pd.DataFrame({"practice_id": [f"P{j:03d}" for j in codes], "treated": treated,
                         "y_m0": y0, "y_m12": y12})
    patients = full.copy()
    patients.loc[rng.random(codes.size) < 0.05, "y_m0"] = np.nan
    patients.loc[lost, "y_m12"] = np.nan
    return patients, full


def _log_or(row) -> tuple[float, float, float]:
    """log OR, its SE and whether the CI covers the target (filled in later)."""
    return float(np.log(row["estimate"])), float(row["se"]), (np.log(row["ci_low"]),
                                                              np.log(row["ci_high"]))


def replicate(seed: np.random.SeedSequence, *, imputations: int, shift: float) -> list[dict]:
    """The analyses of one simulated trial."""
    data_seed, mi_seed = seed.spawn(2)
    patients, full = simulate_trial(np.random.default_rng(data_seed), shift=shift)
    settings = config(imputations, int(mi_seed.generate_state(1)[0]), shift)
    outcome = settings["outcomes"][0]

    def odds_ratio(rows):
        frame = pd.DataFrame(rows)
        return frame[frame["effect_measure"] == "odds ratio"].iloc[0]

    full_fit = odds_ratio(glmm_outcome_rows(full, outcome, 12, settings))
    target = TRUE if shift == 0 else float(np.log(full_fit["estimate"]))
    trial = impute_trial(patients, settings, imputations=imputations,
                         seed=settings["sensitivity"]["seed"])
    mi = odds_ratio(glmm_pooled_rows(trial, settings, outcome, 12))
    deltas = delta_rows(trial, settings, settings["sensitivity"]["delta"])
    deltas = deltas[deltas["effect_measure"] == "odds ratio"].set_index("delta")
    difference = float(np.max(np.abs(deltas.loc[0.0, NUMBERS].to_numpy(float)
                                     - mi[NUMBERS].to_numpy(float))))
    analyses = [("full data", full_fit),
                ("complete cases", odds_ratio(glmm_outcome_rows(patients, outcome, 12,
                                                                settings))),
                ("MI, MAR (delta = 0)", deltas.loc[0.0])]
    if shift != 0:
        analyses.append((f"MI, delta = {shift:g}", deltas.loc[shift]))
    out = []
    for name, row in analyses:
        estimate, se, (low, high) = _log_or(row)
        out.append({"analysis": name, "estimate": estimate, "se": se, "target": target,
                    "cover": float(low <= target <= high), "diff_vs_mi": difference})
    return out


def study(reps: int, seed: int, *, imputations: int, shift: float) -> pd.DataFrame:
    """Summary of ``reps`` replicates, one row per analysis: ``bias, bias_mcse, emp_se,
    model_se, coverage, coverage_mcse, max_abs_diff_delta0_vs_mi``."""
    streams = np.random.SeedSequence(seed).spawn(reps)
    runs = pd.DataFrame([row for s in streams
                         for row in replicate(s, imputations=imputations, shift=shift)])
    out = []
    for name, group in runs.groupby("analysis", sort=False):
        error = group["estimate"] - group["target"]
        cover = group["cover"].mean()
        out.append({
            "analysis": name, "reps": len(group), "bias": error.mean(),
            "bias_mcse": error.std(ddof=1) / np.sqrt(len(group)),
            "emp_se": group["estimate"].std(ddof=1), "model_se": group["se"].mean(),
            "coverage": cover, "coverage_mcse": np.sqrt(cover * (1 - cover) / len(group)),
            "max_abs_diff_delta0_vs_mi": group["diff_vs_mi"].max(),
        })
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--imputations", type=int, default=10)
    parser.add_argument("--shift", type=float, default=0.0)
    args = parser.parse_args()
    start = time.perf_counter()
    summary = study(args.reps, args.seed, imputations=args.imputations, shift=args.shift)
    target = (f"true log OR {TRUE:g}" if args.shift == 0 else
              "target: the full-data GLMM log OR of each replicate")
    print(f"{target}; shift {args.shift:g}; {args.reps} trials of 20 practices x ~30 "
          f"patients, m = {args.imputations}")
    with pd.option_context("display.width", 160, "display.precision", 4):
        print(summary.to_string(index=False))
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
