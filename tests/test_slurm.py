"""The power grid run through a real Slurm cluster equals the same grid run locally.

The cluster is the single-node one of ``scripts/slurm/start.sh``, found running or started
here and left running: test sessions side by side share it, and stopping it under another
session's jobs would fail that session (``scripts/slurm/stop.sh`` stops it). The test is
skipped, saying why, when the executor plugin is missing, when
``TRIALSTATS_SLURM_UNAVAILABLE`` holds a reason (``.ci/run`` sets it when it could not start
Slurm), or when the start script fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "slurm"
WORKFLOW = REPO / "src" / "trialstats" / "workflow"
TARGET = "results/power/power.csv"
# Slurm-side settings of the local test cluster, on top of workflow/profiles/slurm: it has no
# accounting database (so no sacct and no accounts), and its jobs take seconds, so the first
# status check comes after 1 s instead of the plugin's 40 s.
LOCAL_CLUSTER_FLAGS = [
    "--slurm-status-command", "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "1",
]


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node Slurm cluster, or a skip that says why there is none."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip(
            "Slurm test skipped: snakemake-executor-plugin-slurm is not installed "
            "(pip install snakemake-executor-plugin-slurm)."
        )
    reason = os.environ.get("TRIALSTATS_SLURM_UNAVAILABLE")
    if reason:
        pytest.skip(f"Slurm test skipped: Slurm could not be started here: {reason}")
    start = subprocess.run(
        [str(SCRIPTS / "start.sh")], capture_output=True, text=True, check=False, timeout=600
    )
    if start.returncode != 0:
        why = (start.stderr or start.stdout).strip() or f"exit status {start.returncode}"
        pytest.skip(f"Slurm test skipped: scripts/slurm/start.sh could not start Slurm: {why}")


def _small_power_run(directory: Path) -> Path:
    """A run folder whose config has a 6-scenario, 100-rep grid of the synthetic trial."""
    directory.mkdir()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"] = {key: str((REPO / "config" / path).resolve())
                      for key, path in config["data"].items()}
    config["power"]["reps"] = 100
    config["power"]["grid"].update(clusters_per_arm=[8, 16], icc=[0.01, 0.05, 0.1], effect=[0.2])
    (directory / "config").mkdir()
    (directory / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def _snakemake(directory: Path, *flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(WORKFLOW / "Snakefile"),
         "--configfile", "config/config.yaml", *flags, TARGET],
        cwd=directory, env=env, capture_output=True, text=True, check=False, timeout=300,
    )


def test_power_grid_on_slurm_equals_local_run(slurm_cluster, tmp_path):
    local = _small_power_run(tmp_path / "local")
    slurm = _small_power_run(tmp_path / "slurm")
    local_run = _snakemake(local, "--cores", "2")
    assert local_run.returncode == 0, local_run.stderr[-3000:]

    slurm_run = _snakemake(
        slurm, "--executor", "slurm", "--profile", str(WORKFLOW / "profiles" / "slurm"),
        *LOCAL_CLUSTER_FLAGS,
    )
    assert slurm_run.returncode == 0, slurm_run.stderr[-3000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", slurm_run.stderr)
    assert len(submitted) == 6, slurm_run.stderr[-3000:]  # 5 chunks + gather, all as Slurm jobs

    assert (slurm / TARGET).read_bytes() == (local / TARGET).read_bytes()
