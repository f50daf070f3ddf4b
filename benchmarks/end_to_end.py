"""End-to-end benchmark: the default workflow from a clean checkout, timed stage by stage.

Clones the repository at a revision (default ``HEAD``) into a temporary directory, so
``results/`` and ``reports/`` start empty and uncommitted edits play no part, and runs the
whole default job there: ``snakemake --cores 2`` on the synthetic trial (validation, every
analysis, the power grid in chunks, the gathers and the report). It reuses the Python
environment that runs this script, with the clone's ``src/`` first on ``PYTHONPATH``, so the
code timed is the clone's.

The time of each job comes from its ``benchmark:`` file where the rule has one (wall-clock
seconds ``s``) and otherwise from the start and finish stamps of Snakemake's job log (whole
seconds). Per stage it prints the number of jobs, their summed and longest times and the wall
span from the first job's start to the last one's end; then the total wall time against the
3-minute target of issue 7.

Usage::

    .venv/bin/python benchmarks/end_to_end.py [--rev HEAD] [--cores 2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 180
# Stages in pipeline order, each with a test on the rule name; the first match wins.
STAGES = (
    ("gather", lambda rule: "gather" in rule),
    ("sensitivity", lambda rule: "sensitivity" in rule),
    ("missing data", lambda rule: rule.startswith("missing")),
    ("validate", lambda rule: rule.startswith("validat")),
    ("per-outcome analysis", lambda rule: rule.startswith("analyse")),
    ("power chunks", lambda rule: rule.startswith("power")),
    ("report", lambda rule: "report" in rule),
)
STAGE_ORDER = (
    "validate", "per-outcome analysis", "missing data", "sensitivity", "power chunks", "gather",
    "report",
)
_STAMP = re.compile(r"^\[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_BENCHMARK = re.compile(r"^\s+benchmark: (\S+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def stage_of(rule: str) -> str:
    """The pipeline stage a rule belongs to (the rule's own name if none matches)."""
    return next((stage for stage, test in STAGES if test(rule)), rule)


def parse_job_log(text: str) -> pd.DataFrame:
    """Jobs of a Snakemake log: one row per finished job.

    Parameters
    ----------
    text : str
        The log Snakemake writes to ``.snakemake/log/`` (the same text as its stderr).

    Returns
    -------
    DataFrame
        ``jobid``, ``rule``, ``benchmark`` (path or None), ``start`` and ``end``
        (datetimes to the second).
    """
    jobs: dict[str, dict] = {}
    stamp = current = None
    for line in text.splitlines():
        if match := _STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := _RULE.match(line):
            current = {"rule": match.group(1), "start": stamp, "benchmark": None}
        elif current is not None and (match := _JOBID.match(line)):
            jobs[match.group(1)] = current
        elif current is not None and (match := _BENCHMARK.match(line)):
            current["benchmark"] = match.group(1)
        elif match := _FINISHED.match(line):
            jobs[match.group(1)]["end"] = stamp
    rows = [{"jobid": jobid, **job} for jobid, job in jobs.items() if "end" in job]
    return pd.DataFrame(rows, columns=["jobid", "rule", "benchmark", "start", "end"])


def job_seconds(jobs: pd.DataFrame, checkout: Path) -> pd.Series:
    """Each job's time: its ``benchmark:`` file's ``s`` if it has one, else end - start."""
    from_log = (jobs["end"] - jobs["start"]).dt.total_seconds()
    from_benchmark = jobs["benchmark"].map(
        lambda path: pd.read_csv(checkout / path, sep="\t")["s"].iloc[0],
        na_action="ignore",
    )
    return from_benchmark.astype(float).fillna(from_log)


def stage_table(jobs: pd.DataFrame, seconds: pd.Series) -> pd.DataFrame:
    """Per stage: jobs, summed and longest job time, wall span; in pipeline order.

    Returns
    -------
    DataFrame
        Indexed by stage, with ``rules``, ``jobs``, ``job_seconds`` (sum), ``longest_job``
        and ``wall_span`` (first start to last end, seconds).
    """
    frame = jobs.assign(stage=jobs["rule"].map(stage_of), seconds=seconds)
    frame = frame[frame["rule"] != "all"]
    table = frame.groupby("stage").agg(
        rules=("rule", lambda rules: ", ".join(dict.fromkeys(rules))),
        jobs=("jobid", "size"),
        job_seconds=("seconds", "sum"),
        longest_job=("seconds", "max"),
        first_start=("start", "min"),
        last_end=("end", "max"),
    )
    table["wall_span"] = (table["last_end"] - table["first_start"]).dt.total_seconds()
    order = [s for s in STAGE_ORDER if s in table.index]
    order += sorted(set(table.index) - set(order))
    return table.loc[order, ["rules", "jobs", "job_seconds", "longest_job", "wall_span"]]


def clone(rev: str, into: Path) -> str:
    """Check out ``rev`` of this repository into ``into``; return its short commit."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(into)], check=True)
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", "--detach", rev], check=True)
    return subprocess.run(
        ["git", "-C", str(into), "rev-parse", "--short", "HEAD"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def run_workflow(checkout: Path, cores: int) -> subprocess.CompletedProcess:
    """Run the default workflow in ``checkout``; Snakemake's log is the run's stderr."""
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(checkout / "src"),
    )
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores)],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )


def failed_job_logs(checkout: Path, log: str) -> str:
    """The ``log:`` files of the jobs Snakemake reports as failed, with their contents."""
    paths = dict.fromkeys(re.findall(r"^\s+log: (\S+) \(check log", log, re.MULTILINE))
    return "\n".join(
        f"--- {path}:\n{(checkout / path).read_text().strip()}"
        for path in paths
        if (checkout / path).is_file()
    )


def main() -> None:
    """Clone, run, and print the time per stage and in total."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="revision to check out (default HEAD)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the checkout with its results and logs"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="trialstats-e2e-"))
    checkout = workdir / "trialstats"
    commit = clone(args.rev, checkout)
    print(f"clean checkout of {args.rev} ({commit}) in {checkout}; snakemake --cores {args.cores}")
    started = time.perf_counter()
    run = run_workflow(checkout, args.cores)
    total = time.perf_counter() - started
    jobs = parse_job_log(run.stderr)
    table = stage_table(jobs, job_seconds(jobs, checkout))

    print(f"\n{'stage':<22}{'jobs':>5}{'job s':>9}{'longest':>9}{'wall':>8}  rules")
    for stage, row in table.iterrows():
        print(
            f"{stage:<22}{row.jobs:>5}{row.job_seconds:>9.1f}{row.longest_job:>9.1f}"
            f"{row.wall_span:>8.0f}  {row.rules}"
        )
    busy = table["job_seconds"].sum()
    print(
        f"\ntotal wall time {total:.1f} s for {table['jobs'].sum()} jobs ({busy:.1f} job-seconds, "
        f"{busy / total:.2f} cores busy on average)"
    )
    if run.returncode != 0:
        sys.exit(
            f"the workflow FAILED, so the table covers only the jobs that finished; checkout "
            f"kept: {checkout}\n{run.stderr[-2000:]}\n{failed_job_logs(checkout, run.stderr)}"
        )
    print(f"target {TARGET_SECONDS} s: {'met' if total < TARGET_SECONDS else 'NOT met'}")
    if args.keep:
        print(f"checkout kept: {checkout}")
    else:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
