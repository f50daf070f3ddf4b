"""Validity of the multilevel multiple imputation by simulation: bias, coverage, Monte Carlo SEs.

Each replicate is a two-arm CRT with one outcome measured at months 0, 6 and 12: for patient
*i* in practice *j*, :math:`(y_0, y_6, y_{12})_{ij} = \\mu + \\delta T_j (0, 1, 1) + b_j +
e_{ij}`, practice effects :math:`b_j` with variance ``icc`` and correlation 0.8 between months,
patient errors with variance ``1 - icc`` and correlation 0.6 between months (so every score has
variance 1 and the intra-cluster correlation is ``icc``). Baseline is 2% and 6-month 10% missing
completely at random; the 12-month score is missing

- MCAR: with probability 0.3;
- MAR: with :math:`\\mathrm{logit}\\,P = -1 - s_T \\beta z`, where :math:`z` is the standardised
  6-month score when observed and the baseline score otherwise, :math:`s_T = +1` in the
  intervention arm and :math:`-1` in control (intervention patients doing badly at 6 months drop
  out, control patients doing well drop out) — missing at random given arm and the observed
  scores, and a bias of the complete-case analysis away from the null.

Every replicate is analysed by the primary model on complete cases
(:func:`trialstats.analysis.primary.analyse_outcome`) and after multiple imputation
(:func:`trialstats.analysis.imputation.multiple_imputation`), both with Kenward–Roger df; the
12-month effect is compared with the true :math:`\\delta`. Prints, for each scenario and
analysis, the bias, the empirical SE, the mean model SE, the 95% CI coverage, each with its Monte
Carlo SE, and the mean MI − complete-case difference.

    .venv/bin/python benchmarks/imputation_validity.py [--reps 1000] [--seed 2024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from trialstats.analysis.imputation import multiple_imputation
from trialstats.analysis.primary import analyse_outcome

EFFECT = 0.3
MONTHS = (0, 6, 12)
CONFIG = {
    "design": {"cluster": "practice_id", "baseline_month": 0, "followup_months": [6, 12]},
    "outcomes": [{"name": "y", "higher_is_better": True}],
    "analysis": {"covariates": [], "df_method": ["kenward-roger"], "alpha": 0.05},
}


def simulate_trial(
    rng: np.random.Generator,
    *,
    mechanism: str,
    clusters_per_arm: int,
    cluster_size: int,
    icc: float = 0.05,
    mar_strength: float = 1.5,
) -> pd.DataFrame:
    """One simulated trial as validated patients (``practice_id``, ``treated``, ``y_m*``).

    Parameters
    ----------
    rng : Generator
    mechanism : {"MCAR", "MAR"}
        Missingness of the 12-month score (see the module docstring).
    clusters_per_arm, cluster_size : int
        Practices per arm; patients per practice (Poisson around it, at least 5).
    icc : float
        Intra-cluster correlation of every score.
    mar_strength : float
        :math:`\\beta` of the MAR mechanism.
    """
    n_clusters = 2 * clusters_per_arm
    sizes = np.maximum(rng.poisson(cluster_size, n_clusters), 5)
    codes = np.repeat(np.arange(n_clusters), sizes)
    treated = (np.arange(n_clusters) % 2 == 0).astype(int)[codes]
    months = len(MONTHS)
    cluster_corr = np.full((months, months), 0.8) + 0.2 * np.eye(months)
    patient_corr = np.full((months, months), 0.6) + 0.4 * np.eye(months)
    cluster_effects = rng.multivariate_normal(np.zeros(months), icc * cluster_corr, n_clusters)
    errors = rng.multivariate_normal(np.zeros(months), (1 - icc) * patient_corr, len(codes))
    scores = 50.0 + 10.0 * (cluster_effects[codes] + errors
                            + EFFECT * treated[:, None] * np.array([0.0, 1.0, 1.0]))
    scores[rng.random(len(codes)) < 0.02, 0] = np.nan
    scores[rng.random(len(codes)) < 0.10, 1] = np.nan
    if mechanism == "MCAR":
        lost = rng.random(len(codes)) < 0.3
    else:
        driver = np.where(np.isnan(scores[:, 1]), scores[:, 0], scores[:, 1])
        driver = np.where(np.isnan(driver), 50.0, driver)
        z = (driver - 50.0) / 10.0
        sign = np.where(treated == 1, 1.0, -1.0)
        lost = rng.random(len(codes)) < 1.0 / (1.0 + np.exp(1.0 + sign * mar_strength * z))
    scores[lost, 2] = np.nan
    patients = pd.DataFrame(scores, columns=[f"y_m{m}" for m in MONTHS])
    patients.insert(0, "treated", treated)
    patients.insert(0, "practice_id", [f"P{j:03d}" for j in codes])
    return patients


def replicate(
    seed: np.random.SeedSequence,
    *,
    mechanism: str,
    clusters_per_arm: int,
    cluster_size: int,
    imputations: int,
    iterations: int,
) -> dict[str, float]:
    """Complete-case and MI estimates, SEs and CI coverage of the 12-month effect."""
    data_seed, mi_seed = seed.spawn(2)
    patients = simulate_trial(np.random.default_rng(data_seed), mechanism=mechanism,
                              clusters_per_arm=clusters_per_arm, cluster_size=cluster_size)
    cc = analyse_outcome(patients, CONFIG["outcomes"][0], 12, cluster="practice_id",
                         baseline_month=0, covariates=[], df_methods=["kenward-roger"]).iloc[0]
    mi = multiple_imputation(patients, CONFIG, imputations=imputations, iterations=iterations,
                             seed=int(mi_seed.generate_state(1)[0]))
    mi = mi[mi["month"] == 12].iloc[0]
    true = EFFECT * 10.0
    return {
        "cc_estimate": cc["estimate"], "cc_se": cc["se"],
        "cc_cover": float(cc["ci_low"] <= true <= cc["ci_high"]),
        "mi_estimate": mi["estimate"], "mi_se": mi["se"],
        "mi_cover": float(mi["ci_low"] <= true <= mi["ci_high"]), "mi_fmi": mi["fmi"],
    }


def study(
    reps: int,
    seed: int,
    *,
    mechanism: str,
    clusters_per_arm: int = 10,
    cluster_size: int = 40,
    imputations: int = 20,
    iterations: int = 10,
) -> pd.DataFrame:
    """``reps`` replicates of one scenario; one row per replicate (see :func:`replicate`)."""
    streams = np.random.SeedSequence([seed, ["MCAR", "MAR"].index(mechanism)]).spawn(reps)
    return pd.DataFrame([
        replicate(s, mechanism=mechanism, clusters_per_arm=clusters_per_arm,
                  cluster_size=cluster_size, imputations=imputations, iterations=iterations)
        for s in streams
    ])


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Bias, empirical SE, mean SE and coverage of each analysis, with Monte Carlo SEs."""
    reps = len(results)
    true = EFFECT * 10.0
    rows = []
    for analysis in ("cc", "mi"):
        estimate, cover = results[f"{analysis}_estimate"], results[f"{analysis}_cover"]
        coverage = cover.mean()
        rows.append({
            "analysis": {"cc": "complete cases", "mi": "multiple imputation"}[analysis],
            "bias": estimate.mean() - true, "bias_mcse": estimate.std(ddof=1) / np.sqrt(reps),
            "empirical_se": estimate.std(ddof=1), "mean_se": results[f"{analysis}_se"].mean(),
            "coverage": coverage, "coverage_mcse": np.sqrt(coverage * (1 - coverage) / reps),
        })
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    pd.set_option("display.width", 140)
    for mechanism in ("MCAR", "MAR"):
        start = time.perf_counter()
        results = study(args.reps, args.seed, mechanism=mechanism)
        difference = results["mi_estimate"] - results["cc_estimate"]
        print(f"\n{mechanism}: {args.reps} replicates, 2 x 10 practices x ~40 patients, ICC 0.05, "
              f"true effect {EFFECT * 10:.1f} (0.3 SD), m = 20; "
              f"{time.perf_counter() - start:.0f} s")
        print(summarise(results).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"MI - CC: mean {difference.mean():.4f} (MC SE "
              f"{difference.std(ddof=1) / np.sqrt(args.reps):.4f}); "
              f"mean FMI {results['mi_fmi'].mean():.3f}")


if __name__ == "__main__":
    main()
