"""Repeated-measures logistic GLMM (practice and patient intercepts): trialstats beside glmer.

Fits one simulated trial (``--practices`` practices of ``--patients`` patients, half per arm,
two follow-up months, ``y ~ arm * month + age + (1 | practice/patient)``) with
:func:`trialstats.analysis.glmm_nested.fit_nested_glmm` at 1 node (Laplace) and at the default
15 x 15 nested nodes, the median of ``--repeat`` runs, and, when ``Rscript`` is on the PATH,
with lme4's ``glmer(nAGQ = 1)`` (the only quadrature lme4 allows for nested random effects;
default control, as a user would, and again with tight tolerances), timed inside R, and prints
the ratios and the largest difference of the Laplace estimates from glmer's.

    .venv/bin/python benchmarks/glmm_repeated.py
    .venv/bin/python benchmarks/glmm_repeated.py --practices 40 --patients 50 --repeat 3
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from glmm import field, median_seconds, run_r
from scipy import special

from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.analysis.glmm_nested import fit_nested_glmm, nested_data

SEED = 1314

R_NESTED_FIT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$month <- factor(d$month)
n_repeat <- as.integer(args[2])
seconds <- numeric(n_repeat)
for (i in seq_len(n_repeat)) {
  start <- proc.time()[["elapsed"]]
  f <- glmer(y ~ arm * month + age + (1 | practice/patient), data = d, family = binomial,
             nAGQ = 1)
  seconds[i] <- proc.time()[["elapsed"]] - start
}
cat("SECONDS", median(seconds), "\n")
th <- getME(f, "theta")
cat("ESTIMATES", fixef(f), th[["practice.(Intercept)"]], th[["patient:practice.(Intercept)"]],
    "\n")
# the same fit with PIRLS and bobyqa run to tight tolerances (as the test fixtures)
tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-11, maxfun = 100000))
start <- proc.time()[["elapsed"]]
f <- glmer(y ~ arm * month + age + (1 | practice/patient), data = d, family = binomial,
           nAGQ = 1, control = tight)
cat("TIGHT_SECONDS", proc.time()[["elapsed"]] - start, "\n")
th <- getME(f, "theta")
cat("PRECISE", fixef(f), th[["practice.(Intercept)"]], th[["patient:practice.(Intercept)"]], "\n")
"""


def one_trial(rng: np.random.Generator, practices: int, patients: int) -> pd.DataFrame:
    """Two binary follow-ups per patient, 10% of them missing."""
    practice = np.repeat(np.arange(practices), patients)
    arm = (np.arange(practices) % 2)[practice]
    age = np.round(rng.normal(0.0, 1.0, practice.size), 2)
    u = rng.normal(0.0, 0.5, practices)[practice] + rng.normal(0.0, 1.0, practice.size)
    rows = []
    for month, shift in ((6, 0.0), (12, 0.3)):
        eta = -1.0 + shift - 0.4 * arm + 0.1 * arm * (month == 12) + 0.3 * age + u
        rows.append(pd.DataFrame({"practice": practice, "patient": np.arange(practice.size),
                                  "arm": arm, "month": month, "age": age,
                                  "y": rng.binomial(1, special.expit(eta))}))
    d = pd.concat(rows, ignore_index=True)
    return d[rng.uniform(size=len(d)) > 0.1].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--patients", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3, help="timings per fit")
    args = parser.parse_args()
    d = one_trial(np.random.default_rng(SEED), args.practices, args.patients)
    late = (d["month"] == 12).to_numpy(float)
    X = np.column_stack([np.ones(len(d)), d["arm"], late, d["age"], d["arm"] * late])
    data = nested_data(d["y"], X, d["practice"], d["patient"], "binomial")
    print(f"One fit: {args.practices} practices x {args.patients} patients x 2 months "
          f"({len(d):,} observations), y ~ arm * month + age + (1 | practice/patient)")
    ours = {}
    for n_agq in (1, DEFAULT_N_AGQ):
        seconds, fit = median_seconds(lambda k=n_agq: fit_nested_glmm(data, k), args.repeat)
        ours[n_agq] = (seconds, fit)
        print(f"  trialstats fit_nested_glmm, {n_agq:2d} x {n_agq:2d} nodes: {seconds:7.2f} s "
              f"(log OR {fit.beta[1]:.6f}, SDs {fit.sigma_practice:.5f}, "
              f"{fit.sigma_patient:.5f})")
    out = run_r(R_NESTED_FIT, d, args.repeat)
    if out is None:
        print("  lme4 glmer: Rscript not found, skipped")
        return
    seconds, estimates = field(out, "SECONDS")[0], field(out, "ESTIMATES")
    seconds_laplace, fit = ours[1]
    order = [0, 1, 2, 3, 4]  # (Intercept), arm, month12, age, arm:month12 in both
    ours_laplace = np.r_[fit.beta[order], fit.sigma_practice, fit.sigma_patient]
    print(f"  lme4 glmer (in R), nAGQ = 1: {seconds:7.2f} s; ratio glmer / trialstats "
          f"Laplace {seconds / seconds_laplace:.2f}x, glmer / trialstats {DEFAULT_N_AGQ} x "
          f"{DEFAULT_N_AGQ} nodes {seconds / ours[DEFAULT_N_AGQ][0]:.2f}x (max |difference| in "
          f"(beta, SDs) at Laplace {np.max(np.abs(estimates - ours_laplace)):.1e}, glmer at "
          "its default tolerances)")
    tight_seconds, tight = field(out, "TIGHT_SECONDS")[0], field(out, "PRECISE")
    print(f"  lme4 glmer (in R), nAGQ = 1, tight tolerances (tolPwrss 1e-12, rhoend 1e-11): "
          f"{tight_seconds:7.2f} s; ratio glmer / trialstats Laplace "
          f"{tight_seconds / seconds_laplace:.2f}x (max |difference| "
          f"{np.max(np.abs(tight - ours_laplace)):.1e})")


if __name__ == "__main__":
    main()
