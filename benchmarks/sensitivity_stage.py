"""Time of the whole sensitivity stage on the synthetic trial, analysis by analysis.

Runs every configured sensitivity analysis (20 imputations for nine outcomes at two follow-up
months, repeated measures, cluster-level, GEE, CR2, subgroups) in one process on the committed
synthetic trial and prints the seconds each took and the total against the 60-second target.

    .venv/bin/python benchmarks/sensitivity_stage.py
"""

from __future__ import annotations

import time
from pathlib import Path

from trialstats.analysis.sensitivity import run_analysis
from trialstats.config import load_config
from trialstats.data.validate import load_trial

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    config = load_config(ROOT / "config" / "config.yaml")
    config["data"] = {k: str(ROOT / v) for k, v in config["data"].items()}
    start = time.perf_counter()
    patients = load_trial(config).patients
    print(f"{'read and validate':<24}{time.perf_counter() - start:8.2f} s")
    total = 0.0
    for name in config["sensitivity"]["analyses"]:
        start = time.perf_counter()
        rows = run_analysis(name, patients, config)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{name:<24}{seconds:8.2f} s  ({len(rows)} rows)")
    months = len(config["design"]["followup_months"])
    print(f"{'total':<24}{total:8.2f} s  (target < 60 s; "
          f"{config['sensitivity']['imputations']} imputations, "
          f"{len(config['outcomes'])} outcomes x {months} months)")


if __name__ == "__main__":
    main()
