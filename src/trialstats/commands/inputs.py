"""Arguments, named files, reading and progress bars shared by the commands.

Every file a command reads or writes is named on its command line: one option per input
table (``--patients FILE``), ``--out FILE`` for a command's single output and
``--<name>-out FILE`` for each output of a command that writes a set (written together,
:func:`trialstats.atomic.staged_files`). The folder forms kept for interactive use
(``--out-dir DIR``, ``--data DIR``, ``--results DIR``, ``--missing-data DIR``) expand to
named files in :func:`from_folder`, with the file names of :data:`VALIDATED`,
:data:`MISSING_DATA` and the commands' own sets; the workflow names every file itself.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from trialstats.config import load_config
from trialstats.data.fingerprint import FINGERPRINT_FILE, check_fingerprint
from trialstats.data.validate import load_trial
from trialstats.errors import TrialstatsError

#: The analysis-ready tables of ``validate`` in its folder form (``--out-dir``, ``--data``).
VALIDATED = {"practices": "practices.parquet", "patients": "patients.parquet",
             "summary": "validation.txt", "fingerprint": FINGERPRINT_FILE}
#: The tables of ``missing-data`` in its folder form.
MISSING_DATA = {"completeness": "completeness.csv", "dropout": "dropout.csv"}


def flag(dest: str) -> str:
    """The command-line flag of the argument ``dest`` (``practices_out`` ->
    ``--practices-out``)."""
    return "--" + dest.replace("_", "-")


def add_config_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                        help: str = "run configuration (YAML)") -> None:
    """Add the required ``--config FILE``."""
    parser.add_argument("--config", required=True, type=Path, help=help)


def add_files(parser: argparse.ArgumentParser, files: Mapping[str, str], *,
              metavar: str = "FILE") -> None:
    """Add one ``--<name> FILE`` (or ``metavar``) option per entry of ``files`` (name ->
    help)."""
    for name, text in files.items():
        parser.add_argument(flag(name), type=Path, metavar=metavar, help=text)


def add_outputs(parser: argparse.ArgumentParser, files: Mapping[str, str], folder: str) -> None:
    """Add ``--<name>-out FILE`` per output of a set (name -> file name in the folder form)
    and the folder form ``--out-dir DIR`` (``folder`` describes what it holds)."""
    for name, file in files.items():
        parser.add_argument(flag(f"{name}_out"), type=Path,
                            metavar="FILE" if "." in file else "DIR",
                            help=f"where to write {file} (folder form: DIR/{file})")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help=f"folder form: write {folder} into DIR under the names above")


def from_folder(args: argparse.Namespace, option: str, files: Mapping[str, str],
                *, suffix: str = "") -> None:
    """Expand the folder option ``option`` (a dest, e.g. ``out_dir``) into the named files
    ``args.<name><suffix> = folder / file`` for ``files`` (name -> file name).

    Raises
    ------
    TrialstatsError
        When the folder is given with any of the files it stands for, or is a file.
    """
    folder = getattr(args, option)
    if folder is None:
        return
    dests = [name + suffix for name in files]
    given = [flag(dest) for dest in dests if getattr(args, dest) is not None]
    if given:
        raise TrialstatsError(f"{flag(option)} {folder} stands for {', '.join(map(flag, dests))}; "
                              f"give the folder or the files, not both ({', '.join(given)}).")
    if folder.exists() and not folder.is_dir():
        raise TrialstatsError(f"{folder}: is a file; {flag(option)} must be a folder.")
    for file, dest in zip(files.values(), dests, strict=True):
        setattr(args, dest, folder / file)


def named_outputs(args: argparse.Namespace, files: Mapping[str, str], what: str, *,
                  optional: bool = False) -> dict[str, Path]:
    """The output set of ``add_outputs``: ``{name: --<name>-out}``, or ``--out-dir``
    expanded; all of them, or (``optional``) none, which gives ``{}``. ``what`` names the set
    in the message refusing some of it."""
    from_folder(args, "out_dir", files, suffix="_out")
    paths = {name: getattr(args, f"{name}_out") for name in files}
    if optional and all(path is None for path in paths.values()):
        return {}
    require(args, [f"{name}_out" for name in files],
            f"{what} are written together (or give the folder form --out-dir DIR)")
    return paths


def document_files(stem: str, prefix: str = "") -> dict[str, str]:
    """The documents of a report in the folder form: ``{prefix}html`` -> ``<stem>.html``,
    and likewise ``docx``, ``latex`` (``.tex``) and ``markdown`` (``.md``)."""
    return {f"{prefix}{name}": f"{stem}.{suffix}"
            for name, suffix in (("html", "html"), ("docx", "docx"), ("latex", "tex"),
                                 ("markdown", "md"))}


def check_figures_beside(outputs: Mapping[str, Path], linking: Iterable[str]) -> None:
    """Refuse unless the ``figures`` output is the ``figures`` folder beside each document of
    ``linking`` (Markdown and LaTeX link their figures as ``figures/<name>``)."""
    for name in linking:
        if outputs[name].parent / "figures" != outputs["figures"]:
            raise TrialstatsError(
                f"{flag(name + '_out')} {outputs[name]} links its figures as figures/<name>: "
                f"give --figures-out {outputs[name].parent / 'figures'}.")


def write_set(stage: Mapping[str, Path], files: Mapping[str, str],
              write: Callable[[Path], None]) -> None:
    """Call ``write(folder)``, which writes the folder form of an output set (``files``:
    name -> file or folder name), in a scratch folder, and move each entry to its staged
    path ``stage[name]`` (:func:`trialstats.atomic.staged_files`).

    Raises
    ------
    TrialstatsError
        When ``write`` wrote an entry that is not in ``files`` (nothing is dropped silently).
    """
    beside = next(iter(stage.values())).parent
    with tempfile.TemporaryDirectory(dir=beside, prefix=".scratch-") as scratch:
        folder = Path(scratch)
        write(folder)
        for name, file in files.items():
            shutil.move(folder / file, stage[name])
        left = sorted(entry.name for entry in folder.iterdir())
        if left:
            raise TrialstatsError(f"{', '.join(left)} written but not named as an output.")


def require(args: argparse.Namespace, dests: Iterable[str], why: str) -> None:
    """Refuse unless every argument of ``dests`` is given; ``why`` ends the message."""
    missing = [flag(dest) for dest in dests if getattr(args, dest) is None]
    if missing:
        raise TrialstatsError(f"missing {', '.join(missing)}: {why}.")


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and the analysis-ready tables of ``validate``: ``--patients FILE``
    with its ``--fingerprint FILE``, or the folder form ``--data DIR``."""
    add_config_argument(parser)
    add_files(parser, {
        "patients": "analysis-ready patients from `trialstats validate --patients-out` "
                    "(default: read and validate the tables named in the configuration)",
        "fingerprint": "their fingerprint (`validate --fingerprint-out`): tables validated "
                       "with another configuration or other inputs are refused",
    })
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="folder form: the --out-dir of `trialstats validate`")


def read_trial(args: argparse.Namespace) -> tuple[dict[str, Any], pd.DataFrame]:
    """The validated configuration and patients named by ``--config`` and ``--patients``
    (or ``--data``); tables whose ``--fingerprint`` records another configuration or other
    inputs are refused (:func:`~trialstats.data.fingerprint.check_fingerprint`)."""
    from_folder(args, "data", {name: VALIDATED[name] for name in ("patients", "fingerprint")})
    config = load_config(args.config)
    if args.patients is None and args.fingerprint is None:
        return config, load_trial(config).patients
    require(args, ("patients", "fingerprint"), "analysis-ready patients are read with the "
            "fingerprint `trialstats validate` wrote with them")
    check_fingerprint(args.fingerprint, config)
    return config, read_parquet(args.patients)


def read_parquet(path: Path) -> pd.DataFrame:
    """An analysis-ready table written by ``trialstats validate``."""
    if not path.is_file():
        raise TrialstatsError(f"{path}: file not found; run `trialstats validate` to write it.")
    return pd.read_parquet(path)


def progress_bar(desc: str, total: int | None = None, *, unit: str = "it",
                 quiet: bool = False) -> tqdm:
    """A tqdm progress bar on stderr for a long step; silent when stderr is not a terminal
    (e.g. under Snakemake, whose logs it would fill) or with ``quiet``. Library functions
    advance it through their ``progress`` callback (``progress=bar.update``)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=True if quiet else None)
