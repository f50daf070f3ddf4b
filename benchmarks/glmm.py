"""Random-intercept logistic GLMM: trialstats' adaptive quadrature side by side with its peers.

In one process this script

1. fits one binary trial (40 clusters of 50 patients, arm and a patient-level covariate, so
   the fit works on all 2,000 patient rows) with :func:`trialstats.analysis.glmm.fit_glmm` at the
   default nodes and at 1 node (Laplace), the median of ``--repeat`` runs; the same data with
   statsmodels' ``BinomialBayesMixedGLM.fit_vb`` (variational Bayes, the only mixed GLM in
   statsmodels) and, when ``Rscript`` is on the PATH, with lme4's ``glmer`` at the same nodes
   (default control, as a user would), timed inside R;
2. simulates binary power: ``--reps`` trials of 40 clusters of 50 (half per arm, control risk
   0.3, odds ratio 1.5, cluster SD 0.4 on the logit scale), drawn and fitted in one batch from
   the exact cluster summaries (events, size), Wald test of the arm at 5%; and, when R is
   present, fits the first ``--peer-reps`` of the same trials with a ``glmer`` loop on the
   patient-level 0/1 rows (as a per-trial simulation such as simr does) and on events/trials
   per cluster, timed inside R (excluding start-up and reading) and scaled to 1,000; and
   times the product's ``simulate_binary_power`` (``trialstats power simulate --p0 --p1``),
   which also fits the null replicates for the type I error;
3. simulates count power the same way (``--reps`` trials of 40 clusters of 50, mean control
   rate 0.5 per patient, rate ratio 0.8, between-cluster CV 0.25; Poisson GLMM fitted to the
   exact cluster totals with a log person-time offset), and fits the first ``--peer-reps``
   with a ``glmer(family = poisson)`` loop on the patients' rows (each total split among its
   patients, which leaves the fit unchanged) and on the cluster totals with
   ``offset(log(size))``, timed inside R and scaled to 1,000; and times the product's
   ``simulate_count_power`` (``trialstats power simulate --rate0 --rate-ratio``).

    .venv/bin/python benchmarks/glmm.py
    .venv/bin/python benchmarks/glmm.py --reps 1000 --peer-reps 50 --repeat 5
    .venv/bin/python benchmarks/glmm.py --only counts
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

from trialstats.analysis.glmm import DEFAULT_N_AGQ, fit_glmm
from trialstats.analysis.glmm_likelihood import binary_cluster_data, glmm_data
from trialstats.power.simulate_glmm import (
    fit_count_replicates,
    simulate_binary_power,
    simulate_count_power,
)
from trialstats.simulation.draw import draw_count_trials

SEED = 1313
N_CLUSTERS, SIZE, SIGMA = 40, 50, 0.4
INTERCEPT, LOG_OR = special.logit(0.3), np.log(1.5)
ARM = np.arange(N_CLUSTERS) % 2

R_ONE_FIT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
n_agq <- as.integer(args[2]); n_repeat <- as.integer(args[3])
seconds <- numeric(n_repeat)
for (i in seq_len(n_repeat)) {
  start <- proc.time()[["elapsed"]]
  f <- glmer(y ~ arm + age + (1 | cluster), data = d, family = binomial, nAGQ = n_agq)
  seconds[i] <- proc.time()[["elapsed"]] - start
}
cat("SECONDS", median(seconds), "\n")
cat("ESTIMATES", fixef(f), getME(f, "theta"), "\n")
"""

R_POWER = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
n_agq <- as.integer(args[2])
parts <- split(d, d$replicate)
patients <- lapply(parts, function(x) data.frame(
  cluster = rep(x$cluster, x$size), arm = rep(x$arm, x$size),
  y = unlist(Map(function(e, n) rep(1:0, c(e, n - e)), x$events, x$size))))
start <- proc.time()[["elapsed"]]
est <- vapply(patients, function(x) {
  f <- glmer(y ~ arm + (1 | cluster), data = x, family = binomial, nAGQ = n_agq)
  fixef(f)[["arm"]]
}, numeric(1))
cat("PATIENT_SECONDS", proc.time()[["elapsed"]] - start, "\n")
start <- proc.time()[["elapsed"]]
est_agg <- vapply(parts, function(x) {
  f <- glmer(cbind(events, size - events) ~ arm + (1 | cluster), data = x, family = binomial,
             nAGQ = n_agq)
  fixef(f)[["arm"]]
}, numeric(1))
cat("CLUSTER_SECONDS", proc.time()[["elapsed"]] - start, "\n")
cat("ESTIMATES", est, "\n")
"""


R_COUNT_POWER = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
n_agq <- as.integer(args[2])
patients <- split(d, d$replicate)
totals <- lapply(patients, function(x) {
  t <- aggregate(cbind(y, size = 1) ~ cluster + arm, data = x, FUN = sum)
  t[order(t$cluster), ]
})
start <- proc.time()[["elapsed"]]
est <- vapply(patients, function(x) {
  f <- glmer(y ~ arm + (1 | cluster), data = x, family = poisson, nAGQ = n_agq)
  fixef(f)[["arm"]]
}, numeric(1))
cat("PATIENT_SECONDS", proc.time()[["elapsed"]] - start, "\n")
start <- proc.time()[["elapsed"]]
est_agg <- vapply(totals, function(x) {
  f <- glmer(y ~ arm + offset(log(size)) + (1 | cluster), data = x, family = poisson,
             nAGQ = n_agq)
  fixef(f)[["arm"]]
}, numeric(1))
cat("CLUSTER_SECONDS", proc.time()[["elapsed"]] - start, "\n")
cat("ESTIMATES", est, "\n")
cat("ESTIMATES_TOTALS", est_agg, "\n")
"""
COUNT_RATE0, COUNT_RR, COUNT_CV_BETWEEN = 0.5, 0.8, 0.25


def run_r(script: str, frame: pd.DataFrame, *args: object) -> str | None:
    """Run an R script on a CSV of ``frame``; its stdout, or None without Rscript."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame.to_csv(folder / "data.csv", index=False, float_format="%.17g")
        (folder / "run.R").write_text(script)
        command = ["Rscript", str(folder / "run.R"), str(folder / "data.csv"), *map(str, args)]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def field(output: str, name: str) -> np.ndarray:
    return np.array(output.split(name)[1].splitlines()[0].split(), dtype=float)


def one_trial(rng: np.random.Generator) -> pd.DataFrame:
    cluster = np.repeat(np.arange(N_CLUSTERS), SIZE)
    age = np.round(rng.normal(0.0, 1.0, cluster.size), 2)
    eta = INTERCEPT + LOG_OR * ARM[cluster] + 0.3 * age + rng.normal(0, SIGMA, N_CLUSTERS)[cluster]
    y = rng.binomial(1, special.expit(eta))
    return pd.DataFrame({"cluster": cluster, "arm": ARM[cluster], "age": age, "y": y})


def median_seconds(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def bench_one_fit(repeat: int) -> None:
    d = one_trial(np.random.default_rng(SEED))
    X = np.column_stack([np.ones(len(d)), d["arm"], d["age"]])
    print(f"One fit: {N_CLUSTERS} clusters x {SIZE} patients, y ~ arm + age + (1 | cluster)")
    ours = {}
    for n_agq in (DEFAULT_N_AGQ, 1):
        seconds, fit = median_seconds(
            lambda k=n_agq: fit_glmm(glmm_data(d["y"], X, d["cluster"], "binomial"), k), repeat
        )
        ours[n_agq] = (seconds, fit)
        print(f"  trialstats fit_glmm, nAGQ {n_agq:2d}: {1000 * seconds:8.1f} ms "
              f"(log OR {fit.beta[1]:.6f}, sigma {fit.sigma:.6f})")
    model = BinomialBayesMixedGLM.from_formula("y ~ arm + age", {"cluster": "0 + C(cluster)"}, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, vb = median_seconds(model.fit_vb, repeat)
    print(f"  statsmodels BinomialBayesMixedGLM.fit_vb: {1000 * seconds:8.1f} ms "
          f"(posterior mean log OR {vb.fe_mean[1]:.6f}, cluster SD {np.exp(vb.vcp_mean[0]):.6f}); "
          f"ratio {seconds / ours[DEFAULT_N_AGQ][0]:.1f}x")
    for n_agq in (DEFAULT_N_AGQ, 1):
        out = run_r(R_ONE_FIT, d, n_agq, repeat)
        if out is None:
            print("  lme4 glmer: Rscript not found, skipped")
            break
        seconds, estimates = field(out, "SECONDS")[0], field(out, "ESTIMATES")
        fit = ours[n_agq][1]
        print(f"  lme4 glmer (in R), nAGQ {n_agq:2d}: {1000 * seconds:8.1f} ms; ratio "
              f"{seconds / ours[n_agq][0]:.1f}x (max |difference| in (beta, sigma) "
              f"{np.max(np.abs(estimates - np.r_[fit.beta, fit.sigma])):.1e}, glmer at its "
              "default tolerances)")


def simulate_events(reps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    b = rng.normal(0.0, SIGMA, (reps, N_CLUSTERS))
    events = rng.binomial(SIZE, special.expit(INTERCEPT + LOG_OR * ARM + b))
    return events, np.full(N_CLUSTERS, SIZE)


def power_run(reps: int, n_agq: int):
    events, sizes = simulate_events(reps)
    X = np.column_stack([np.ones(N_CLUSTERS), ARM])
    fit = fit_glmm(binary_cluster_data(events, sizes, X), n_agq)
    reject = np.abs(fit.beta[:, 1] / fit.se[:, 1]) > stats.norm.ppf(0.975)
    return events, fit, reject


def time_power_runs(run, reps: int):
    """Time ``run(reps, n_agq)`` (draw, fit, Wald test) at the default nodes and at 1 after a
    warm-up, print each, and return the times by nodes with the default run's data and fit."""
    run(20, DEFAULT_N_AGQ)  # warm-up
    ours = {}
    for n_agq in (DEFAULT_N_AGQ, 1):
        start = time.perf_counter()
        data, fit, reject = run(reps, n_agq)
        ours[n_agq] = time.perf_counter() - start
        print(f"  trialstats, nAGQ {n_agq:2d}: {ours[n_agq]:.2f} s for {reps} (generation + fit + "
              f"Wald test) -> {1000 * ours[n_agq] / reps:.2f} s per 1,000; power "
              f"{reject.mean():.3f}; {fit.converged.mean():.1%} converged, "
              f"{fit.boundary.mean():.1%} at sigma = 0")
        if n_agq == DEFAULT_N_AGQ:
            default = data, fit
    return ours, *default


def print_loop_ratios(out, ours: dict, n_agq: int, reps: int, peer_reps: int,
                      summary: str, command_name: str) -> None:
    """Print the glmer loop's time per 1,000 trials (patient rows and cluster summaries,
    ``summary``) and its ratio to ours at ``n_agq`` nodes, and at the default nodes to the
    product's command ``command_name`` (which also fits the null replicates)."""
    ours_per = 1000 * ours[n_agq] / reps
    width = len(summary)
    for label, key in (("patient rows", "PATIENT"), (summary, "CLUSTER")):
        per = 1000 * field(out, f"{key}_SECONDS")[0] / peer_reps
        print(f"  lme4 glmer loop (in R), nAGQ {n_agq:2d}, {label:{width}s}: {peer_reps} fits "
              f"timed, scaled -> {per:.1f} s per 1,000; ratio {per / ours_per:.0f}x")
        if n_agq == DEFAULT_N_AGQ:
            command = 1000 * ours["command"] / reps
            print(f"    vs {command_name} (power only, as the loop): ratio "
                  f"{per / command:.0f}x; with its type I error fits counted, "
                  f"{2 * per / command:.0f}x")


def bench_power(reps: int, peer_reps: int) -> None:
    print(f"Power: {reps} trials of {N_CLUSTERS} clusters x {SIZE}, control risk 0.3, OR 1.5, "
          f"sigma {SIGMA}")
    ours, default_events, default_fit = time_power_runs(power_run, reps)
    # The product's command (`trialstats power simulate --p0 --p1`): per-replicate seeded
    # streams, unequal-size-ready drawing, and the null replicates for the type I error fitted
    # in the same call (2 x reps fits).
    icc = SIGMA**2 / (SIGMA**2 + np.pi**2 / 3)
    start = time.perf_counter()
    row = simulate_binary_power(p0=0.3, p1=float(special.expit(INTERCEPT + LOG_OR)),
                                clusters_per_arm=N_CLUSTERS // 2, cluster_size=SIZE, icc=icc,
                                reps=reps, seed=SEED, df_method="z")
    ours["command"] = time.perf_counter() - start
    print(f"  trialstats simulate_binary_power (power and type I error, {2 * reps} fits): "
          f"{ours['command']:.2f} s -> {1000 * ours['command'] / reps:.2f} s per 1,000 trials; "
          f"power {row['power']:.3f}, type I error {row['type_i_error']:.3f}")
    frame = pd.DataFrame({
        "replicate": np.repeat(np.arange(peer_reps), N_CLUSTERS),
        "cluster": np.tile(np.arange(N_CLUSTERS), peer_reps),
        "arm": np.tile(ARM, peer_reps),
        "events": default_events[:peer_reps].ravel(),
        "size": SIZE,
    })
    for n_agq in (DEFAULT_N_AGQ, 1):
        out = run_r(R_POWER, frame, n_agq)
        if out is None:
            print("  lme4 glmer loop: Rscript not found, skipped")
            return
        print_loop_ratios(out, ours, n_agq, reps, peer_reps, "events/trials",
                          "simulate_binary_power")
        if n_agq == DEFAULT_N_AGQ:
            gap = np.max(np.abs(field(out, "ESTIMATES") - default_fit.beta[:peer_reps, 1]))
            print(f"  max |log OR difference| over the {peer_reps} trials: {gap:.1e}")


def count_power_run(reps: int, n_agq: int):
    """Draw ``reps`` count trials (the product's drawing) and fit them (power only)."""
    sigma = np.sqrt(np.log1p(COUNT_CV_BETWEEN**2))
    sizes, (totals, _) = draw_count_trials(
        SEED, reps, ARM.astype(float), SIZE, 0.0, 2, log_rate=np.log(COUNT_RATE0) - sigma**2 / 2,
        log_rate_ratio=np.log(COUNT_RR), sigma=sigma)
    fit, _, _ = fit_count_replicates(totals, sizes, ARM.astype(float), n_agq)
    reject = np.abs(fit.beta[:, 1] / fit.se[:, 1]) > stats.norm.ppf(0.975)
    return totals, fit, reject


def bench_count_power(reps: int, peer_reps: int) -> None:
    print(f"Count power: {reps} trials of {N_CLUSTERS} clusters x {SIZE}, mean control rate "
          f"{COUNT_RATE0}, rate ratio {COUNT_RR}, between-cluster CV {COUNT_CV_BETWEEN}")
    ours, default_totals, default_fit = time_power_runs(count_power_run, reps)
    start = time.perf_counter()
    row = simulate_count_power(rate0=COUNT_RATE0, rate_ratio=COUNT_RR,
                               clusters_per_arm=N_CLUSTERS // 2, cluster_size=SIZE,
                               cv_between=COUNT_CV_BETWEEN, reps=reps, seed=SEED, df_method="z")
    ours["command"] = time.perf_counter() - start
    print(f"  trialstats simulate_count_power (power and type I error, {2 * reps} fits): "
          f"{ours['command']:.2f} s -> {1000 * ours['command'] / reps:.2f} s per 1,000 trials; "
          f"power {row['power']:.3f}, type I error {row['type_i_error']:.3f}")
    # Patient rows for glmer: each cluster total split among its patients (multinomial); the
    # Poisson likelihood, hence the fit, depends on the patients' counts only through it.
    rng = np.random.default_rng(SEED + 2)
    counts = rng.multinomial(default_totals[:peer_reps].astype(np.int64),
                             np.full(SIZE, 1.0 / SIZE))
    frame = pd.DataFrame({
        "replicate": np.repeat(np.arange(peer_reps), N_CLUSTERS * SIZE),
        "cluster": np.tile(np.repeat(np.arange(N_CLUSTERS), SIZE), peer_reps),
        "arm": np.tile(np.repeat(ARM, SIZE), peer_reps),
        "y": counts.ravel(),
    })
    for n_agq in (DEFAULT_N_AGQ, 1):
        out = run_r(R_COUNT_POWER, frame, n_agq)
        if out is None:
            print("  lme4 glmer loop: Rscript not found, skipped")
            return
        print_loop_ratios(out, ours, n_agq, reps, peer_reps, "cluster totals",
                          "simulate_count_power")
        if n_agq == DEFAULT_N_AGQ:
            ours_est = default_fit.beta[:peer_reps, 1]
            gaps = [np.max(np.abs(field(out, name) - ours_est))
                    for name in ("ESTIMATES", "ESTIMATES_TOTALS")]
            print(f"  max |log rate ratio difference| over the {peer_reps} trials: patient rows "
                  f"{gaps[0]:.1e}, totals {gaps[1]:.1e} (glmer at its default tolerances)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated trials")
    parser.add_argument("--peer-reps", type=int, default=50, help="trials fitted by glmer")
    parser.add_argument("--repeat", type=int, default=5, help="timings per single fit")
    parser.add_argument("--only", choices=("one-fit", "binary", "counts"),
                        help="run one part only (default: all three)")
    args = parser.parse_args()
    if args.only in (None, "one-fit"):
        bench_one_fit(args.repeat)
    if args.only in (None, "binary"):
        bench_power(args.reps, args.peer_reps)
    if args.only in (None, "counts"):
        bench_count_power(args.reps, args.peer_reps)


if __name__ == "__main__":
    main()
