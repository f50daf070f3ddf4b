"""Speed of the clustered permutation test of a count outcome, beside the same test in R.

Run from the repository root::

    .venv/bin/python benchmarks/permutation_counts.py [--repeats 3]

Two trials: the 12-practice fixture of ``tests/fixtures/count_permutation`` (254 analysed
patients, offset log(months), all 924 allocations), and 44 practices of 50 to 199 patients
(5,000-odd, drawn with a fixed seed) over 20,000 allocations sampled uniformly. Each is run
through :func:`trialstats.analysis.permutation_counts.count_permutation_test` (p-value, rate
ratio and 95% interval by test inversion) and, when ``Rscript`` is on the PATH, through the same
computation written in R in the same run: ``glm(family = poisson)`` with offset log exposure +
delta * arm, cptest's practice means of ``residuals(type = "response")``, the +-1 allocation
matrix, the same tie rule, the estimate by ``uniroot`` and each bound by the same doubling steps
and bisection to 1e-10 (R's ``system.time``, start-up excluded). Prints the best wall-clock
seconds of ``--repeats``, the ratio, and the largest difference of the log rate ratio and its
bounds.
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

from trialstats.allocation.constrained import enumerate_allocations, sample_allocations
from trialstats.analysis.design import ModelData
from trialstats.analysis.permutation_counts import TOLERANCE, count_permutation_test

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "count_permutation"

R_SCRIPT = """
d <- read.csv("{data}")
signs <- 2 * as.matrix(read.csv("{allocations}")) - 1
own <- tapply(d$treated, d$cluster, mean)
rw <- which(apply(signs, 1, function(a) all(a == 2 * own - 1)))
ctrl <- glm.control(epsilon = 1e-13, maxit = 200)
means_at <- function(delta) {{
  fit <- glm(y ~ . - cluster - treated - exposure + offset(log(exposure) + delta * treated),
             family = poisson, data = d, control = ctrl)
  tapply(residuals(fit, type = "response"), d$cluster, mean)
}}
p_at <- function(delta) {{
  diffs <- drop(signs %*% means_at(delta))
  observed <- abs(diffs[rw])
  mean(abs(diffs) >= observed - 1e-9 * (observed + max(abs(diffs))))  # trialstats' tie rule
}}
observed <- function(delta) sum(signs[rw, ] * means_at(delta))
bound <- function(estimate, direction) {{
  step <- 0.25
  inside <- estimate
  outside <- estimate + direction * step
  for (k in 1:7) {{
    if (p_at(outside) <= 0.05) break
    if (k == 7) return(direction * Inf)
    inside <- outside
    step <- 2 * step
    outside <- estimate + direction * step
  }}
  while (abs(outside - inside) > {tolerance}) {{
    middle <- (inside + outside) / 2
    if (p_at(middle) > 0.05) inside <- middle else outside <- middle
  }}
  (inside + outside) / 2
}}
best <- Inf
for (i in seq_len({repeats})) {{
  elapsed <- system.time({{
    p <- p_at(0)
    estimate <- uniroot(observed, c(-4, 4), tol = 1e-13)$root
    ci <- c(bound(estimate, -1), bound(estimate, 1))
  }})[["elapsed"]]
  best <- min(best, elapsed)
}}
cat(sprintf("%.17g", c(best, p, estimate, ci)), "\\n")
"""


def fixture_trial() -> tuple[ModelData, np.ndarray]:
    """The fixture's analysed patients (count, baseline count, age, log months offset) and
    every allocation of its 12 practices."""
    patients = pd.read_csv(FIXTURE / "patients.csv").dropna()
    arms = pd.read_csv(FIXTURE / "practices.csv").set_index("practice_id")["arm"]
    codes, ids = pd.factorize(patients["practice_id"], sort=True)
    treated = (arms.loc[ids] == "intervention").to_numpy()[codes].astype(float)
    x = np.column_stack([np.ones(len(codes)), treated, patients["visits_m0"], patients["age"]])
    data = ModelData(y=patients["visits_m12"].to_numpy(float), X=x,
                     columns=("(Intercept)", "treated", "visits_m0", "age"),
                     cluster_codes=codes, cluster_ids=tuple(ids), excluded={},
                     n_randomised=len(codes), offset=np.log(patients["months"].to_numpy()))
    return data, enumerate_allocations(12, 6)


def large_trial(seed: int = 7) -> tuple[ModelData, np.ndarray]:
    """44 practices of 50 to 199 patients, rate ratio 0.8, 20,000 sampled allocations."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(50, 200, 44)
    codes = np.repeat(np.arange(44), sizes)
    arm = np.zeros(44, dtype=bool)
    arm[rng.choice(44, 22, replace=False)] = True
    baseline = rng.poisson(3, codes.size).astype(float)
    exposure = rng.uniform(3, 12, codes.size)
    rate = np.exp(0.9 + np.log(0.8) * arm[codes] + 0.08 * baseline
                  + rng.normal(0, 0.3, 44)[codes])
    y = rng.poisson(exposure / 12 * rate).astype(float)
    x = np.column_stack([np.ones(codes.size), arm[codes], baseline])
    data = ModelData(y=y, X=x, columns=("(Intercept)", "treated", "baseline"),
                     cluster_codes=codes, cluster_ids=tuple(map(str, range(44))), excluded={},
                     n_randomised=codes.size, offset=np.log(exposure))
    allocations = sample_allocations(44, 22, 20_000, np.random.default_rng(seed + 1))
    own = (allocations == arm).all(axis=1)
    return data, allocations if own.any() else np.vstack([allocations, arm])


def r_time(data: ModelData, allocations: np.ndarray, repeats: int) -> list[float] | None:
    """R's best time, p-value, log rate ratio and bounds, or None without R."""
    if shutil.which("Rscript") is None:
        return None
    frame = pd.DataFrame(data.X[:, 2:], columns=[f"x{k}" for k in range(data.X.shape[1] - 2)])
    frame = frame.assign(y=data.y, treated=data.X[:, 1], cluster=data.cluster_codes,
                         exposure=np.exp(data.offset))
    with tempfile.TemporaryDirectory() as folder:
        paths = Path(folder) / "data.csv", Path(folder) / "allocations.csv"
        frame.to_csv(paths[0], index=False)
        pd.DataFrame(allocations.astype(int)).to_csv(paths[1], index=False)
        run = subprocess.run(
            ["Rscript", "-e", R_SCRIPT.format(data=paths[0], allocations=paths[1],
                                              repeats=repeats, tolerance=TOLERANCE)],
            capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(f"R not run: {run.stderr.strip().splitlines()[-1:]}")
        return None
    return [float(v) for v in run.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, (data, allocations) in (("12 practices, all allocations", fixture_trial()),
                                      ("44 practices, sampled allocations", large_trial())):
        best, result = np.inf, None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = count_permutation_test(data, allocations)
            best = min(best, time.perf_counter() - start)
        ours = [result["p_value"], result["estimate"], result["ci_low"], result["ci_high"]]
        print(f"{name}: {data.n_clusters} practices, {len(data.y):,} patients, "
              f"{len(allocations):,} allocations")
        print(f"  trialstats {best:.3f} s: p = {ours[0]:.6f}, rate ratio "
              f"{np.exp(ours[1]):.6f} ({np.exp(ours[2]):.6f} to {np.exp(ours[3]):.6f})")
        peer = r_time(data, allocations, args.repeats)
        if peer is not None:
            print(f"  R (glm loop) {peer[0]:.3f} s: p = {peer[1]:.6f}, ratio {peer[0] / best:.1f}x;"
                  f" p equal: {peer[1] == ours[0]}, largest difference of the log rate ratio "
                  f"and bounds {np.max(np.abs(np.subtract(peer[2:], ours[1:]))):.2g}")


if __name__ == "__main__":
    main()
