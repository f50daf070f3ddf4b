"""Simulation-based power: trialstats' vectorised engine side by side with per-trial loops.

The scenario is the SMS trial's: 44 practices (22 per arm), mean recruited size 127 with
CV 0.6, 27% attrition, ICC 0.05, subject autocorrelation 0.5, cluster autocorrelation 0.8,
effect 0.2 SD, analysed with follow-up ~ arm + baseline + (1 | practice) by REML and
between-within df. In one process this script

1. runs ``--reps`` simulated trials with :func:`trialstats.power.simulate.simulate_power`
   (generation and analysis, after a short warm-up), once generating every patient and once
   drawing the cluster sums from their exact distribution (``generator="sums"``);
2. fits ``--peer-reps`` of the *same* trials (``simulate_patients``) with a statsmodels
   ``MixedLM`` REML loop, timing only the fits;
3. when ``Rscript`` is on the PATH, fits ``--peer-reps`` of them with lme4's ``lmer``
   (default control, as a user would), timed inside R so that R's start-up and the CSV
   reading are excluded;
4. runs ``--big-reps`` trials (patient generator) and reports the peak memory: the peak of
   Python/numpy allocations during the run (``tracemalloc``) and the process' peak resident set size
   (``resource.getrusage``), which includes the interpreter, the imported libraries and
   the statsmodels fits.

Seconds are per 1,000 replicates; the peers' times exclude data generation, ours include it.

    .venv/bin/python benchmarks/power_simulation.py
    .venv/bin/python benchmarks/power_simulation.py --reps 1000 --peer-reps 20 --big-reps 0
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from trialstats.power.analytic import power_continuous
from trialstats.power.simulate import analyse_replicates, simulate_power
from trialstats.simulation.draw import SimulationDesign, simulate_patients

DESIGN = SimulationDesign(
    clusters_per_arm=22, cluster_size=127, cv=0.6, attrition=0.27, icc=0.05, rho_s=0.5,
    rho_c=0.8, effect=0.2,
)
SEED = 2013
R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
parts <- split(d, d$replicate)
start <- proc.time()[["elapsed"]]
est <- vapply(parts, function(x) {
  f <- lmer(y1 ~ arm + y0 + (1 | cluster), data = x, REML = TRUE)
  fixef(f)[["arm"]]
}, numeric(1))
cat("SECONDS", proc.time()[["elapsed"]] - start, "\n")
write.csv(data.frame(replicate = as.integer(names(parts)), estimate = est), args[2],
          row.names = FALSE)
"""


def time_engine(reps: int, generator: str) -> tuple[float, dict]:
    # warm-up: imports, first-call costs
    simulate_power(DESIGN, reps=50, seed=SEED + 1, generator=generator)
    start = time.perf_counter()
    result = simulate_power(DESIGN, reps=reps, seed=SEED, generator=generator)
    return time.perf_counter() - start, result


def peer_data(reps: int) -> list[pd.DataFrame]:
    return [simulate_patients(DESIGN, SEED, r).assign(replicate=r) for r in range(reps)]


def time_statsmodels(trials: list[pd.DataFrame]) -> tuple[float, np.ndarray]:
    estimates = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in trials:
            fit = smf.mixedlm("y1 ~ arm + y0", data, groups=data["cluster"]).fit(reml=True)
            estimates.append(fit.fe_params["arm"])
    return time.perf_counter() - start, np.array(estimates)


def time_lme4(trials: list[pd.DataFrame]) -> tuple[float, np.ndarray] | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pd.concat(trials).to_csv(folder / "reps.csv", index=False, float_format="%.17g")
        (folder / "fit.R").write_text(R_SCRIPT)
        run = subprocess.run(
            ["Rscript", str(folder / "fit.R"), str(folder / "reps.csv"), str(folder / "out.csv")],
            check=True, capture_output=True, text=True,
        )
        seconds = float(run.stdout.split("SECONDS")[1].split()[0])
        return seconds, pd.read_csv(folder / "out.csv")["estimate"].to_numpy()


def peak_memory(reps: int) -> tuple[float, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    simulate_power(DESIGN, reps=reps, seed=SEED)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == "darwin" else rss * 1024
    return seconds, peak / 2**20, rss_bytes / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="engine replicates")
    parser.add_argument("--peer-reps", type=int, default=20, help="statsmodels/lme4 replicates")
    parser.add_argument("--big-reps", type=int, default=100_000,
                        help="replicates of the memory run (0 to skip)")
    args = parser.parse_args()

    analytic = power_continuous(
        cluster_size=DESIGN.cluster_size, icc=DESIGN.icc, clusters_per_arm=22,
        effect=DESIGN.effect, cv=DESIGN.cv, attrition=DESIGN.attrition, baseline="ancova",
        rho_c=DESIGN.rho_c, rho_s=DESIGN.rho_s,
    )["power"].iloc[0]
    print(f"Scenario: {DESIGN}; analytic power {analytic:.4f}")
    engine = {}
    for generator in ("patients", "sums"):
        seconds, result = time_engine(args.reps, generator)
        engine[generator] = 1000 * seconds / args.reps
        print(f"trialstats engine, generator={generator:8s}: {args.reps} replicates in "
              f"{seconds:.3f} s -> {engine[generator]:.3f} s per 1,000 (generation + exact REML "
              f"+ test); power {result['power']:.4f} (MC SE {result['mc_se']:.4f}), type I "
              f"error {result['type_i_error']:.4f}")
    ours = engine["patients"]

    trials = peer_data(args.peer_reps)
    sm_seconds, sm_estimates = time_statsmodels(trials)
    sm = 1000 * sm_seconds / args.peer_reps
    our_estimates = analyse_replicates(DESIGN, SEED, range(args.peer_reps))["estimate"].to_numpy()
    print(f"statsmodels MixedLM: {args.peer_reps} fits in {sm_seconds:.2f} s -> {sm:.1f} s per "
          f"1,000; ratio {sm / ours:.0f}x ({sm / engine['sums']:.0f}x with sums) "
          f"(max |estimate difference| {np.max(np.abs(sm_estimates - our_estimates)):.1e}; "
          f"{np.sum(np.abs(sm_estimates - our_estimates) > 1e-6)} of {args.peer_reps} default "
          "statsmodels fits differ by more than 1e-6: lower REML likelihood or failed)")
    lme4 = time_lme4(trials)
    if lme4 is None:
        print("lme4: Rscript not found, skipped")
    else:
        r_seconds, r_estimates = lme4
        r_per = 1000 * r_seconds / args.peer_reps
        print(f"lme4 lmer (in R)   : {args.peer_reps} fits in {r_seconds:.2f} s -> {r_per:.1f} s "
              f"per 1,000; ratio {r_per / ours:.0f}x ({r_per / engine['sums']:.0f}x with sums) "
              f"(max |estimate difference| "
              f"{np.max(np.abs(r_estimates - our_estimates)):.1e})")
    if args.big_reps:
        big_seconds, traced, rss = peak_memory(args.big_reps)
        print(f"memory run         : {args.big_reps} replicates in {big_seconds:.1f} s; peak "
              f"traced allocations {traced:.0f} MB; process peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
