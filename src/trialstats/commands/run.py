"""``trialstats run``: the whole workflow for one trial's configuration, from anywhere.

Drives Snakemake (its command line, in this Python environment) with the workflow shipped
inside the package, so an installed ``trialstats`` runs it as well as a source checkout.
Relative paths in the configuration are resolved against the configuration file's folder;
intermediate results (``results/``), finished reports (``reports/``) and logs go under
``--out`` (default: the configuration's folder).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

from trialstats.commands.inputs import add_config_argument
from trialstats.config import load_config
from trialstats.errors import TrialstatsError

#: Profiles shipped with the workflow; ``--profile`` also takes a folder.
PROFILES = ("default", "slurm")


def workflow_dir() -> Path:
    """The folder of the packaged workflow (``Snakefile``, ``rules/``, ``profiles/``)."""
    return Path(str(resources.files("trialstats").joinpath("workflow")))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run the whole workflow (validate, analyse, sensitivity, power, report) for a trial",
        description="Run the workflow for the trial described by a configuration file. Data "
        "paths in the file are relative to its folder; results/, reports/ and logs/ are written "
        "under --out. Arguments after `--` go to Snakemake unchanged (e.g. `-- --dry-run`, "
        "`-- --rerun-incomplete` after an interrupted run).",
    )
    add_config_argument(parser, help="the trial's configuration")
    parser.add_argument(
        "--out", type=Path,
        help="folder for results/, reports/ and logs/ (default: the configuration's folder)",
    )
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to use (default 1)")
    parser.add_argument(
        "--profile", default="default",
        help=f"Snakemake profile: {' or '.join(PROFILES)} (shipped), or a profile folder",
    )
    parser.add_argument(
        "snakemake_args", nargs=argparse.REMAINDER,
        help="after `--`: further Snakemake arguments, e.g. a target or --dry-run",
    )
    parser.set_defaults(run=run)


def snakemake_command(
    config: Path, out: Path, cores: int, profile: str, extra: list[str]
) -> list[str]:
    """The Snakemake command line that runs ``config`` into ``out``."""
    profile_dir = workflow_dir() / "profiles" / profile if profile in PROFILES else Path(profile)
    if not profile_dir.is_dir():
        raise TrialstatsError(
            f"--profile {profile}: no such profile; use {' or '.join(PROFILES)} or a folder "
            "holding a Snakemake config.yaml."
        )
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(workflow_dir() / "Snakefile"),
        "--directory", str(out),
        "--configfile", str(config),
        "--profile", str(profile_dir.absolute()),
        "--cores", str(cores),
        *extra,
    ]


def run(args: argparse.Namespace) -> int:
    """Check the configuration, then run Snakemake on it; return Snakemake's exit status."""
    config = args.config.absolute()
    load_config(config)  # a bad configuration stops here, before any job is planned
    out = (args.out if args.out is not None else config.parent).absolute()
    if out.exists() and not out.is_dir():
        raise TrialstatsError(f"--out {args.out}: exists and is not a folder.")
    extra = list(args.snakemake_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    command = snakemake_command(config, out, args.cores, args.profile, extra)
    out.mkdir(parents=True, exist_ok=True)
    # The rules call `trialstats`: put this environment's scripts first on PATH, so the jobs
    # use this installation even when its environment is not activated.
    scripts = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    return subprocess.run(command, env=env, check=False).returncode
