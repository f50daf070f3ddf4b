"""Speed of the REML kernel against statsmodels' MixedLM on one trial, and on a batch.

Run from the repository root::

    .venv/bin/python benchmarks/bench_reml.py [--repeats 5] [--batch 1000]

Data: ``tests/fixtures/reml/sms_like_design.csv`` (43 practices, about 4,000 patients,
``y ~ arm + baseline + condition + (1 | cluster)``, simulated in R with a fixed seed by
``tests/fixtures/r/make_reml_fixtures.R``). Prints wall-clock seconds (best of ``--repeats``)
for a full fit from the patient-level arrays (cluster sums included) with each tool, their ratio,
the largest differences between the two answers and against lme4's reference, and the time per
replicate of a batched fit (the power engine's use).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

from trialstats.analysis.reml import ClusterSums, fit_reml

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reml"


def best_time(func, repeats: int) -> tuple[float, object]:
    """Fastest of ``repeats`` calls and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000, help="replicates in the batched fit")
    parser.add_argument("--seed", type=int, default=20240108)
    args = parser.parse_args()

    reference = json.loads((FIXTURES / "reference.json").read_text())["datasets"]["sms_like"]
    design = pd.read_csv(FIXTURES / "sms_like_design.csv")
    codes, _ = pd.factorize(design["cluster"])
    X = design[reference["coef_names"]].to_numpy(float)
    y = design["y"].to_numpy(float)
    print(f"data: {len(y)} patients in {codes.max() + 1} clusters, p = {X.shape[1]}")

    def ours():
        return fit_reml(ClusterSums.from_data(y, X, codes))

    def statsmodels_fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sm.MixedLM(y, X, groups=codes).fit(reml=True)

    t_ours, fit = best_time(ours, args.repeats)
    t_sm, sm_fit = best_time(statsmodels_fit, args.repeats)
    print(f"trialstats fit_reml : {t_ours:.5f} s")
    print(f"statsmodels MixedLM : {t_sm:.5f} s")
    print(f"ratio (statsmodels / trialstats): {t_sm / t_ours:.0f}x")

    sm_beta = np.asarray(sm_fit.fe_params)
    sm_cluster, sm_resid = float(np.asarray(sm_fit.cov_re)[0, 0]), float(sm_fit.scale)
    print("max relative difference, statsmodels vs trialstats:")
    print(f"  fixed effects {np.max(np.abs(sm_beta - fit.beta) / np.abs(fit.beta)):.2e}")
    se = np.sqrt(np.diag(fit.vcov))
    print(f"  SEs           {np.max(np.abs(np.asarray(sm_fit.bse_fe) - se) / se):.2e}")
    print(f"  var_cluster   {abs(sm_cluster - fit.var_cluster) / fit.var_cluster:.2e}")
    print(f"  var_residual  {abs(sm_resid - fit.var_residual) / fit.var_residual:.2e}")
    print(f"  REML loglik   statsmodels {sm_fit.llf:.8f}, trialstats {fit.reml_loglik:.8f}")
    ref_beta = np.asarray(reference["fixef"]["value"])
    ref_cluster = reference["var_cluster"]["value"]
    print("max relative difference vs lme4 (reference.json):")
    print(f"  trialstats  beta {np.max(np.abs(fit.beta - ref_beta) / np.abs(ref_beta)):.2e}, "
          f"var_cluster {abs(fit.var_cluster - ref_cluster) / ref_cluster:.2e}")
    print(f"  statsmodels beta {np.max(np.abs(sm_beta - ref_beta) / np.abs(ref_beta)):.2e}, "
          f"var_cluster {abs(sm_cluster - ref_cluster) / ref_cluster:.2e}")

    # A batch of simulated outcomes on the same design: the power engine's workload.
    rng = np.random.default_rng(args.seed)
    n_clusters = codes.max() + 1
    mean = X @ fit.beta
    y_batch = (mean + rng.normal(0, np.sqrt(fit.var_cluster), (args.batch, n_clusters))[:, codes]
               + rng.normal(0, np.sqrt(fit.var_residual), (args.batch, len(y))))
    sums = ClusterSums.from_data(y_batch, X, codes)
    t_batch, batch_fit = best_time(lambda: fit_reml(sums), args.repeats)
    print(f"batched fit_reml, {args.batch} replicates (sums precomputed): {t_batch:.4f} s "
          f"({1e6 * t_batch / args.batch:.1f} us per replicate; all converged: "
          f"{bool(np.all(batch_fit.converged))})")
    print(f"per-replicate ratio vs one statsmodels fit: {t_sm / (t_batch / args.batch):.0f}x")


if __name__ == "__main__":
    main()
