"""Repeated-measures logistic GLMM (practice and patient intercepts): trialstats before and after
its exact gradient, beside glmer.

Simulates one trial of realistic size (``--practices`` practices of ``--patients`` patients,
default 44 x 127 = 5,588 as the SMS trial, half per arm, two follow-up months with 10% of the
measurements missing; ``y ~ arm * month + age + (1 | practice/patient)``) and, in one run, fits
it with

* :func:`trialstats.analysis.glmm_nested.fit_nested_glmm` of this checkout (exact gradient,
  Hessian by forward differences of it) at 1 node (Laplace) and the default 15 x 15 nested
  nodes;
* the same function at ``--before REV`` (default ``a5ab123``, the last commit whose gradient and
  Hessian were central differences of the log-likelihood), extracted with ``git archive`` into a
  temporary folder; each fit in a fresh process on the same data, the two versions alternated,
  the median of ``--repeat`` fits of each;
* when ``Rscript`` is on the PATH, lme4's ``glmer(nAGQ = 1)`` (the only quadrature lme4 allows
  for nested random effects; default control, as a user would, and again with tight
  tolerances), timed inside R;

and prints the times, the ratios and the largest differences of the estimates and SEs.

    .venv/bin/python benchmarks/glmm_repeated.py
    .venv/bin/python benchmarks/glmm_repeated.py --practices 20 --patients 25 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from glmm import field, run_r
from scipy import special

from trialstats.analysis.glmm import DEFAULT_N_AGQ

SEED = 1314
REPOSITORY = Path(__file__).resolve().parents[1]
BEFORE = "a5ab123"

# One fit_nested_glmm per node count, timed in a fresh process of whichever trialstats is first
# on PYTHONPATH: data file, node counts.
PY_NESTED_FIT = r"""
import sys, time
import numpy as np
from trialstats.analysis import glmm_nested
try:  # the data moved to glmm_nested_likelihood with the exact gradient
    from trialstats.analysis.glmm_nested_likelihood import nested_data
except ImportError:
    nested_data = glmm_nested.nested_data
z = np.load(sys.argv[1])
data = nested_data(z["y"], z["X"], z["practice"], z["patient"], "binomial")
print("MODULE", glmm_nested.__file__)
for n_agq in map(int, sys.argv[2:]):
    start = time.perf_counter()
    fit = glmm_nested.fit_nested_glmm(data, n_agq)
    print(f"SECONDS_{n_agq}", time.perf_counter() - start)
    print(f"ESTIMATES_{n_agq}", *np.r_[fit.beta, fit.sigma_practice, fit.sigma_patient])
    print(f"SE_{n_agq}", *fit.se)
"""

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
cat("PRECISE_SE", sqrt(diag(as.matrix(vcov(f)))), "\n")
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


def time_fits(source: Path, data_file: Path) -> dict[int, tuple]:
    """(seconds, estimates, SEs) by nodes of one ``fit_nested_glmm`` from the package in
    ``source``, timed in a fresh process."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-c", PY_NESTED_FIT, str(data_file), "1", str(DEFAULT_N_AGQ)]
    out = subprocess.run(command, check=True, capture_output=True, text=True,
                         env=environment).stdout
    module = Path(out.split("MODULE")[1].split()[0])
    if not module.is_relative_to(source):
        raise RuntimeError(f"{source}: trialstats was imported from {module}")
    return {n_agq: (field(out, f"SECONDS_{n_agq}")[0], field(out, f"ESTIMATES_{n_agq}"),
                    field(out, f"SE_{n_agq}")) for n_agq in (1, DEFAULT_N_AGQ)}


def median_fits(runs: list[dict[int, tuple]]) -> dict[int, tuple]:
    """The median time of each node count over ``runs`` (the fits are deterministic)."""
    return {n_agq: (float(np.median([run[n_agq][0] for run in runs])), *runs[0][n_agq][1:])
            for n_agq in runs[0]}


def checkout(revision: str, folder: Path) -> Path:
    """The ``src`` folder of ``revision`` of this repository, extracted under ``folder``."""
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", revision, "src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=44)
    parser.add_argument("--patients", type=int, default=127)
    parser.add_argument("--repeat", type=int, default=3, help="timings per fit")
    parser.add_argument("--before", default=BEFORE, help="revision with the old derivatives")
    args = parser.parse_args()
    d = one_trial(np.random.default_rng(SEED), args.practices, args.patients)
    late = (d["month"] == 12).to_numpy(float)
    X = np.column_stack([np.ones(len(d)), d["arm"], late, d["age"], d["arm"] * late])
    print(f"One fit: {args.practices} practices x {args.patients} patients x 2 months "
          f"({len(d):,} observations), y ~ arm * month + age + (1 | practice/patient); "
          f"median of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "trial.npz"
        np.savez(data_file, y=d["y"], X=X, practice=d["practice"], patient=d["patient"])
        old_source = checkout(args.before, Path(tmp))
        # alternated, so that a change in the load of a shared machine hits both alike
        runs = [(time_fits(REPOSITORY / "src", data_file), time_fits(old_source, data_file))
                for _ in range(args.repeat)]
    after, before = (median_fits(list(side)) for side in zip(*runs, strict=True))
    for n_agq in (1, DEFAULT_N_AGQ):
        (new, new_est, new_se), (old, old_est, old_se) = after[n_agq], before[n_agq]
        print(f"  fit_nested_glmm, {n_agq:2d} x {n_agq:2d} nodes: exact gradient {new:7.2f} s, "
              f"finite differences ({args.before}) {old:7.2f} s; ratio {old / new:.1f}x "
              f"(max |difference| in (beta, SDs) {np.max(np.abs(new_est - old_est)):.1e}, "
              f"largest relative SE difference {np.max(np.abs(new_se / old_se - 1)):.1e}); "
              f"log OR {new_est[1]:.6f}, SDs {new_est[-2]:.5f}, {new_est[-1]:.5f}")
    out = run_r(R_NESTED_FIT, d, args.repeat)
    if out is None:
        print("  lme4 glmer: Rscript not found, skipped")
        return
    seconds, estimates = field(out, "SECONDS")[0], field(out, "ESTIMATES")
    laplace = after[1]
    print(f"  lme4 glmer (in R), nAGQ = 1: {seconds:7.2f} s; ratio glmer / trialstats "
          f"Laplace {seconds / laplace[0]:.2f}x, glmer / trialstats {DEFAULT_N_AGQ} x "
          f"{DEFAULT_N_AGQ} nodes {seconds / after[DEFAULT_N_AGQ][0]:.2f}x (max |difference| in "
          f"(beta, SDs) at Laplace {np.max(np.abs(estimates - laplace[1])):.1e}, glmer at its "
          "default tolerances)")
    tight_seconds, tight = field(out, "TIGHT_SECONDS")[0], field(out, "PRECISE")
    print(f"  lme4 glmer (in R), nAGQ = 1, tight tolerances (tolPwrss 1e-12, rhoend 1e-11): "
          f"{tight_seconds:7.2f} s; ratio glmer / trialstats Laplace "
          f"{tight_seconds / laplace[0]:.2f}x (max |difference| "
          f"{np.max(np.abs(tight - laplace[1])):.1e}; largest relative SE difference to vcov() "
          f"{np.max(np.abs(laplace[2] / field(out, 'PRECISE_SE') - 1)):.1e})")


if __name__ == "__main__":
    main()
