"""Speed of the validity study (``trialstats methods-check``), side by side with a peer.

1. Times one cell of the study (44 clusters, ICC 0.05, CV 0.8, the default settings) with the
   vectorised engine: ``--reps`` trials drawn as cluster sums, one REML fit each and the five
   df methods (:func:`trialstats.simulation.analyse.mixed_model`).
2. Times statsmodels' MixedLM (REML, the same model; Wald z only, it has no small-sample df)
   looping over ``--peer-reps`` of the same cell's trials drawn patient by patient, and the
   engine on exactly those trials, and compares the arm estimates.
3. With ``--full``, times the whole study as ``trialstats methods-check`` runs it.

Prints seconds per trial and the ratio, and what the full study's mixed-model fits
(24 cells x 2 hypotheses x 10,000 trials) would take with the peer.

    .venv/bin/python benchmarks/validity_study.py [--reps 10000] [--peer-reps 100] [--full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import statsmodels.formula.api as smf

from trialstats.cli import main as trialstats
from trialstats.simulation.analyse import MIXED_MODEL, mixed_model
from trialstats.simulation.draw import simulate_patients, simulate_sums
from trialstats.simulation.validity import StudySettings, study_designs

FULL_FITS = 24 * 2 * 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--peer-reps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="also time the whole study")
    args = parser.parse_args()

    settings = StudySettings()
    (design,) = study_designs(settings, clusters=(44,), iccs=(0.05,), cvs=(0.8,))

    start = time.perf_counter()
    mixed_model(simulate_sums(design, args.seed, range(args.reps), generator="sums"), design)
    engine = (time.perf_counter() - start) / args.reps
    print(f"engine, {args.reps:,} trials as cluster sums, 5 df methods: "
          f"{engine * 1e3:.3f} ms per trial")

    trials = [simulate_patients(design, args.seed, r) for r in range(args.peer_reps)]
    start = time.perf_counter()
    peer_estimates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary-fit and convergence warnings
        for trial in trials:
            fit = smf.mixedlm("y1 ~ arm + y0", trial, groups=trial["cluster"]).fit(reml=True)
            peer_estimates.append(fit.params["arm"])
    peer = (time.perf_counter() - start) / args.peer_reps
    start = time.perf_counter()
    ours = mixed_model(simulate_sums(design, args.seed, range(args.peer_reps)), design)
    same_trials = (time.perf_counter() - start) / args.peer_reps
    difference = np.abs(ours[MIXED_MODEL, "z"].estimate - np.array(peer_estimates))
    print(f"statsmodels MixedLM, {args.peer_reps} trials patient by patient (z only): "
          f"{peer * 1e3:.1f} ms per trial")
    print(f"engine on the same {args.peer_reps} trials (patients generated, 5 df methods): "
          f"{same_trials * 1e3:.3f} ms per trial")
    print(f"ratio MixedLM / engine (cluster sums): {peer / engine:,.0f}")
    print(f"arm estimates: median difference {np.median(difference):.2g}; "
          f"{np.sum(difference > 1e-4)} of {args.peer_reps} trials differ by more than 1e-4 "
          f"(largest {difference.max():.2g}: MixedLM fits short of the REML optimum or failed, "
          "as benchmarks/power_simulation.py finds)")
    print(f"the full study's {FULL_FITS:,} mixed-model fits: engine about "
          f"{FULL_FITS * engine / 60:.1f} min at this cell's size, MixedLM about "
          f"{FULL_FITS * peer / 3600:.0f} h")

    if args.full:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            trialstats(["methods-check", "--out-dir", str(Path(out)), "--seed", str(args.seed)])
            print(f"full study (trialstats methods-check, defaults): "
                  f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
