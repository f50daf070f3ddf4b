"""Scale: validate, analyse and run every sensitivity analysis of a 2,000-practice,
250,000-patient trial within 2 GB.

Generates a synthetic trial with the committed generating spec (config/synthetic.yaml) scaled
to ``--practices`` practices and ``--patients`` patients (conditions in the same proportions),
writes it as CSV, and runs, each in its own subprocess,

1. ``trialstats validate --config C --out-dir D`` (read the CSVs, check the data contract,
   write the analysis-ready parquet tables), and
2. ``trialstats analyse --config C --out D/primary.csv`` (read and validate again, then the
   primary model for every configured outcome at every follow-up month with Kenward-Roger
   and Satterthwaite df), and
3. ``trialstats sensitivity --config C --data D --analysis NAME`` for each analysis of the
   configuration's ``sensitivity.analyses`` (the whole sensitivity stage, one process per
   analysis as the workflow runs it; ``--skip-sensitivity`` leaves it out),

reporting wall time, CPU time (user + system) and peak resident memory of each
(``os.wait4`` rusage of a process started by a small launcher, so each figure is that
process's own) and the machine's 1-minute load average when it ended (other processes slow
the wall time down, much less the CPU time). The same steps run on
the committed 44-practice synthetic trial (config/config.yaml) for comparison.

    .venv/bin/python benchmarks/scale.py [--practices 2000] [--patients 250000] [--seed 1]
        [--skip-sensitivity | --analyses multiple-imputation ...]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from trialstats.config import load_config, read_yaml
from trialstats.data.synthetic import generate_trial, load_synthetic_spec, write_trial_csv

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 2 * 2**30


def scaled_spec(spec: dict, practices: int, patients: int) -> dict:
    """The generating spec with ``practices`` practices and ``patients`` patients."""
    out = copy.deepcopy(spec)
    out["practices"]["n"] = practices
    counts = np.array([c["n"] for c in out["patients"]["conditions"]], dtype=float)
    exact = patients * counts / counts.sum()
    sizes = np.floor(exact).astype(int)
    sizes[np.argsort(sizes - exact)[: patients - sizes.sum()]] += 1
    for condition, n in zip(out["patients"]["conditions"], sizes, strict=True):
        condition["n"] = int(n)
    return out


# Runs a command and prints its own peak RSS. A child inherits its parent's high-water mark
# across fork and exec on Linux, so the command is started from this small launcher rather
# than from the benchmark process, which holds the generated trial.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print("MAXRSS_KIB", usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(args: list[str]) -> tuple[float, int, float]:
    """Run ``python -m trialstats *args``; wall seconds, peak RSS in bytes, CPU seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "trialstats", *args],
        capture_output=True, text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"trialstats {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    usage = next(line for line in done.stderr.splitlines() if line.startswith("MAXRSS_KIB"))
    return seconds, int(usage.split()[1]) * 1024, float(usage.split()[2])


def measure(label: str, config: Path, out: Path,
            analyses: list[str]) -> list[tuple[str, str, float, int]]:
    """Validate, analyse, then run each sensitivity analysis of ``analyses`` on the trial of
    ``config``; one result row per step."""
    steps = [("validate", ["validate", "--config", str(config), "--out-dir", str(out)]),
             ("analyse", ["analyse", "--config", str(config),
                          "--out", str(out / "primary.csv")])]
    steps += [(name, ["sensitivity", "--config", str(config), "--data", str(out),
                      "--analysis", name, "--out", str(out / f"sensitivity-{name}.csv")])
              for name in analyses]
    rows = []
    for step, args in steps:
        seconds, peak, cpu = run_measured(args)
        rows.append((label, step, seconds, peak))
        print(f"  {label:<28} {step:<20} {seconds:8.1f} s ({cpu:7.1f} s CPU) "
              f"{peak / 2**20:8.0f} MiB  (load {os.getloadavg()[0]:.1f})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=2000)
    parser.add_argument("--patients", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-sensitivity", action="store_true",
                        help="validate and analyse only")
    parser.add_argument("--analyses", nargs="+", metavar="NAME",
                        help="these sensitivity analyses only (default: the configuration's)")
    args = parser.parse_args()

    base = read_yaml(ROOT / "config" / "config.yaml")
    base["data"] = {key: str((ROOT / "config" / base["data"][key]).resolve())
                    for key in ("practices", "patients")}  # relative to the config's folder
    with tempfile.TemporaryDirectory(prefix="trialstats-scale-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        spec = scaled_spec(load_synthetic_spec(ROOT / "config" / "synthetic.yaml"),
                           args.practices, args.patients)
        practices, patients = generate_trial(spec, args.seed)
        paths = write_trial_csv(practices, patients, tmp / "data")
        print(f"generated {len(practices):,} practices and {len(patients):,} patients "
              f"({paths[1].stat().st_size / 2**20:.0f} MiB CSV) in "
              f"{time.perf_counter() - start:.1f} s")
        del practices, patients
        large = copy.deepcopy(base)
        large["data"] = {"practices": str(paths[0]), "patients": str(paths[1])}
        configs = {}
        for name, config in (("small", base), ("large", large)):
            configs[name] = tmp / f"{name}.yaml"
            configs[name].write_text(yaml.safe_dump(config, sort_keys=False))
        n_fits = len(base["outcomes"]) * len(base["design"]["followup_months"])
        print(f"each analyse: {n_fits} models x {base['analysis']['df_method']}")
        analyses = [] if args.skip_sensitivity else args.analyses or list(load_config(
            configs["small"])["sensitivity"]["analyses"])
        rows = measure("44-practice synthetic trial", configs["small"], tmp / "small",
                       analyses)
        rows += measure(f"{args.practices:,} practices", configs["large"], tmp / "large",
                        analyses)
    worst = max(row[3] for row in rows)
    steps = len(rows) // 2
    small = {step: (s, m) for label, step, s, m in rows[:steps]}
    for _, step, seconds, peak in rows[steps:]:
        print(f"{step}: {seconds / small[step][0]:.1f}x the time and "
              f"{peak / small[step][1]:.1f}x the memory of the 44-practice trial")
    if analyses:
        stage = sum(row[2] for row in rows[steps + 2:])
        print(f"sensitivity stage on {args.patients:,} patients: {stage:.1f} s in all, "
              f"largest peak {max(row[3] for row in rows[steps + 2:]) / 2**20:.0f} MiB")
    verdict = "within" if worst <= LIMIT_BYTES else "OVER"
    print(f"largest peak {worst / 2**20:.0f} MiB: {verdict} the 2 GiB limit")


if __name__ == "__main__":
    main()
