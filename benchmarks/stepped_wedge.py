"""Stepped-wedge simulation: trialstats' exact REML kernel side by side with an lmer loop in R.

Scenario (issue 14): 5 sequences x 4 clusters, 6 periods, 20 patients per cluster-period,
ICC 0.05, CAC 0.8, effect 0.2 SD, analysed with
``lmer(y ~ treat + factor(period) + (1 | cluster) + (1 | cluster:period))`` and Satterthwaite df.
In one process this script

1. runs ``--reps`` simulated trials with
   :func:`trialstats.simulation.periods.simulate_period_power` (drawing, REML fits and
   Satterthwaite df; after a short warm-up) and times the REML fits alone as well;
2. draws ``--peer-reps`` patient-level trials (:func:`simulate_period_patients`), fits them with
   the kernel (:meth:`PeriodSums.from_data`, then fit and Satterthwaite df) and, when
   ``Rscript`` is on the PATH, with ``lmerTest::lmer`` (default control, as a user would) and
   ``summary()`` for the Satterthwaite df, and with ``lme4::lmer`` alone; R times its own loop,
   so start-up and CSV reading are excluded. The R times are scaled to 1,000 fits (said so in
   the output), and the largest differences between the two fits of the same trials printed.

Seconds are per 1,000 trials; the kernel's include drawing the trials, R's do not.

    .venv/bin/python benchmarks/stepped_wedge.py
    .venv/bin/python benchmarks/stepped_wedge.py --reps 1000 --peer-reps 100
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trialstats.analysis.period_inference import satterthwaite_periods
from trialstats.analysis.reml_periods import PeriodSums, fit_period_reml
from trialstats.power.simulate import replicate_rng
from trialstats.simulation.periods import (
    period_design,
    simulate_period_patients,
    simulate_period_power,
    simulate_period_sums,
    stepped_wedge_treatment,
)

TREATMENT = stepped_wedge_treatment(5)
SCENARIO = dict(clusters_per_sequence=4, cluster_size=20, icc=0.05, cac=0.8, effect=0.2)
SEED = 2026
R_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$period <- factor(d$period)
reps <- split(d, d$rep)
formula <- y ~ treat + period + (1 | cluster) + (1 | cluster:period)
out <- data.frame(rep = as.integer(names(reps)), estimate = NA, se = NA, df = NA,
                  loglik = NA)
t0 <- proc.time()[["elapsed"]]
for (k in seq_along(reps)) {
  fit <- lmerTest::lmer(formula, data = reps[[k]])
  row <- summary(fit)$coefficients["treat", ]
  out[k, c("estimate", "se", "df")] <- row[c("Estimate", "Std. Error", "df")]
  out$loglik[k] <- as.numeric(logLik(fit))
}
lmertest <- proc.time()[["elapsed"]] - t0
t0 <- proc.time()[["elapsed"]]
for (k in seq_along(reps)) fit <- lme4::lmer(formula, data = reps[[k]])
lme4_only <- proc.time()[["elapsed"]] - t0
write.csv(out, args[2], row.names = FALSE)
cat(lmertest, lme4_only, "\n")
"""


def kernel_run(reps: int) -> tuple[float, float, dict]:
    """Seconds for ``reps`` simulated trials end to end, and for their REML fits alone."""
    simulate_period_power(TREATMENT, **SCENARIO, reps=20, seed=SEED)  # warm-up
    start = time.perf_counter()
    result = simulate_period_power(TREATMENT, **SCENARIO, reps=reps, seed=SEED)
    total = time.perf_counter() - start
    sums = simulate_period_sums(TREATMENT, **SCENARIO, seed=SEED, replicates=range(reps))
    icc, cac = SCENARIO["icc"], SCENARIO["cac"]
    generating = np.array([icc * cac, icc * (1 - cac)]) / (1 - icc)  # as simulate_period_power
    start = time.perf_counter()
    fit_period_reml(sums, start=generating)
    return total, time.perf_counter() - start, result


def peer_trials(reps: int) -> pd.DataFrame:
    frames = [
        simulate_period_patients(TREATMENT, **SCENARIO, rng=replicate_rng(SEED, 1, r)).assign(rep=r)
        for r in range(reps)
    ]
    return pd.concat(frames, ignore_index=True)


def kernel_on(trials: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """Fit the patient-level trials with the kernel: seconds, and estimate/se/df per trial."""
    n_reps = trials["rep"].nunique()
    one = trials[trials["rep"] == 0]
    X = period_design(TREATMENT)[one["sequence"] - 1, one["period"] - 1]
    y = trials["y"].to_numpy().reshape(n_reps, -1)  # every trial has the same layout
    start = time.perf_counter()
    sums = PeriodSums.from_data(y, X, one["cluster"].to_numpy(), one["period"].to_numpy() - 1)
    fit = fit_period_reml(sums)
    df = satterthwaite_periods(sums, fit, np.eye(X.shape[1])[1])
    seconds = time.perf_counter() - start
    return seconds, pd.DataFrame(
        {
            "estimate": fit.beta[:, 1],
            "se": np.sqrt(fit.vcov[:, 1, 1]),
            "df": df,
            "loglik": fit.reml_loglik,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--peer-reps", type=int, default=100)
    args = parser.parse_args()

    total, fits, result = kernel_run(args.reps)
    per = 1000.0 / args.reps
    print("scenario: 5 sequences x 4 clusters, 6 periods, 20 per cluster-period; ICC 0.05, "
          "CAC 0.8, effect 0.2; Satterthwaite df")
    print(f"trialstats: {args.reps} trials (draw + REML + Satterthwaite) {total:.2f} s "
          f"= {total * per:.2f} s per 1,000; REML fits alone {fits * per:.2f} s per 1,000")
    print(f"  power {result['power']:.3f} (MC SE {result['mc_se']:.3f}), type I error "
          f"{result['type_i_error']:.3f}, failed {result['n_failed']}")

    trials = peer_trials(args.peer_reps)
    ours_seconds, ours = kernel_on(trials)
    print(f"trialstats on {args.peer_reps} patient-level trials (sums + REML + Satterthwaite): "
          f"{ours_seconds:.3f} s")
    if shutil.which("Rscript") is None:
        print("Rscript not found: the lmer side is skipped.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data, out, script = Path(tmp, "trials.csv"), Path(tmp, "lmer.csv"), Path(tmp, "fit.R")
        trials.to_csv(data, index=False)
        script.write_text(R_SCRIPT)
        run = subprocess.run(
            ["Rscript", str(script), str(data), str(out)], capture_output=True, text=True,
            check=True,
        )
        lmertest, lme4_only = (float(x) for x in run.stdout.split())
        theirs = pd.read_csv(out).sort_values("rep").reset_index(drop=True)
    scale = 1000.0 / args.peer_reps
    print(f"lmerTest::lmer + summary (Satterthwaite): {args.peer_reps} fits {lmertest:.1f} s, "
          f"scaled to 1,000: {lmertest * scale:.0f} s")
    print(f"lme4::lmer alone: {args.peer_reps} fits {lme4_only:.1f} s, "
          f"scaled to 1,000: {lme4_only * scale:.0f} s")
    print(f"ratio (lmerTest per 1,000) / (trialstats per 1,000, end to end): "
          f"{lmertest * scale / (total * per):.0f}x")
    print(f"ratio (lme4 alone per 1,000) / (trialstats REML fits alone per 1,000): "
          f"{lme4_only * scale / (fits * per):.0f}x")
    for key in ("estimate", "se", "df"):
        rel = np.max(np.abs(ours[key] - theirs[key]) / np.abs(theirs[key]))
        print(f"largest relative difference in {key} over the {args.peer_reps} trials "
              f"(lmer at its default tolerance): {rel:.1e}")
    excess = ours["loglik"] - theirs["loglik"]
    print(f"REML log-likelihood, trialstats minus lmer: min {excess.min():.1e}, "
          f"max {excess.max():.1e} (>= 0 up to rounding: the kernel's optimum is at least as high)")


if __name__ == "__main__":
    main()
