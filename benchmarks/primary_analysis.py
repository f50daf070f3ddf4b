"""Primary analysis speed on the synthetic trial, side by side with the peers.

Runs, in one process, the full primary analysis of the committed synthetic trial (every
outcome at every follow-up month, Kenward–Roger and Satterthwaite df) with trialstats, then the
same REML fits with statsmodels MixedLM (no small-sample df: it has none), and, when Rscript
with lme4/lmerTest/pbkrtest is installed, the same fits with lmerTest (Satterthwaite and
Kenward–Roger, timed inside R so R's start-up is excluded). Prints seconds and ratios, and
the largest differences between the estimates.

    .venv/bin/python benchmarks/primary_analysis.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from trialstats.analysis.primary import analyse_trial
from trialstats.config import load_config
from trialstats.data.validate import load_trial

ROOT = Path(__file__).resolve().parents[1]
R_SCRIPT = r"""
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(pbkrtest)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fits <- read.csv(args[2])
start <- proc.time()[["elapsed"]]
out <- do.call(rbind, lapply(seq_len(nrow(fits)), function(i) {
  f <- as.formula(fits$formula[i])
  m <- lmer(f, data = d, REML = TRUE)
  s <- summary(m, ddf = "Satterthwaite")$coefficients["treated", ]
  k <- summary(m, ddf = "Kenward-Roger")$coefficients["treated", ]
  data.frame(estimate = s[["Estimate"]], se = s[["Std. Error"]], df_s = s[["df"]],
             se_kr = k[["Std. Error"]], df_kr = k[["df"]])
}))
cat("SECONDS", proc.time()[["elapsed"]] - start, "\n")
write.csv(out, args[3], row.names = FALSE)
"""


def fits_of(config: dict) -> list[tuple[str, int, str]]:
    """(outcome, month, formula) of every primary model."""
    covariates = " + ".join(config["analysis"]["covariates"])
    base = config["design"]["baseline_month"]
    return [
        (o["name"], m,
         f"{o['name']}_m{m} ~ treated + {o['name']}_m{base}"
         + (f" + {covariates}" if covariates else "") + " + (1 | practice_id)")
        for o in config["outcomes"] for m in config["design"]["followup_months"]
    ]


def main() -> None:
    config = load_config(ROOT / "config" / "config.yaml")
    config["data"] = {k: str(ROOT / v) for k, v in config["data"].items()}
    config["analysis"]["df_method"] = ["kenward-roger", "satterthwaite"]
    patients = load_trial(config).patients
    start = time.perf_counter()
    ours = analyse_trial(patients, config)
    ours_seconds = time.perf_counter() - start
    sat = ours[ours["method"] == "satterthwaite"].reset_index(drop=True)
    fits = fits_of(config)
    print(f"trialstats: {len(fits)} models x 2 df methods in {ours_seconds:.3f} s")

    frame = patients.copy()
    frame["condition"] = frame["condition"].astype(object)
    start = time.perf_counter()
    sm = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, _, formula in fits:
            fixed = formula.split(" + (1 |")[0]
            columns = [c.strip() for c in fixed.replace("~", "+").split("+")]
            data = frame.dropna(subset=columns)
            result = smf.mixedlm(fixed, data, groups=data["practice_id"]).fit(reml=True)
            sm.append((result.params["treated"], result.bse["treated"]))
    sm_seconds = time.perf_counter() - start
    sm = np.array(sm)
    print(f"statsmodels MixedLM: {len(fits)} REML fits in {sm_seconds:.3f} s "
          f"(ratio {sm_seconds / ours_seconds:.1f}x; no Satterthwaite/KR df available)")
    print(f"  max |estimate difference| vs trialstats: "
          f"{np.max(np.abs(sm[:, 0] - sat['estimate'])):.3g}; max relative SE difference: "
          f"{np.max(np.abs(sm[:, 1] / sat['se'] - 1)):.3g}")

    if shutil.which("Rscript") is None:
        print("lme4: Rscript not found, skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame.to_csv(tmp / "d.csv", index=False)
        pd.DataFrame({"formula": [f for _, _, f in fits]}).to_csv(tmp / "f.csv", index=False)
        (tmp / "bench.R").write_text(R_SCRIPT)
        done = subprocess.run(
            ["Rscript", str(tmp / "bench.R"), str(tmp / "d.csv"), str(tmp / "f.csv"),
             str(tmp / "out.csv")], capture_output=True, text=True, check=True,
        )
        r_seconds = float(done.stdout.split("SECONDS")[1].split()[0])
        lme4 = pd.read_csv(tmp / "out.csv")
    kr = ours[ours["method"] == "kenward-roger"].reset_index(drop=True)
    print(f"lme4 + lmerTest (Satterthwaite and KR): {len(fits)} models in {r_seconds:.3f} s "
          f"(ratio {r_seconds / ours_seconds:.1f}x)")
    for name, theirs, mine in [("estimate", lme4["estimate"], sat["estimate"]),
                               ("SE", lme4["se"], sat["se"]),
                               ("Satterthwaite df", lme4["df_s"], sat["df"]),
                               ("KR SE", lme4["se_kr"], kr["se"]),
                               ("KR df", lme4["df_kr"], kr["df"])]:
        print(f"  max relative difference in {name}: {np.max(np.abs(mine / theirs - 1)):.2e}")


if __name__ == "__main__":
    main()
