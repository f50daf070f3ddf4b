"""Writing outputs so that a failed or killed run never leaves a mix of two runs.

One file: :func:`write_atomically` writes a temporary file beside the target and renames it
into place. Several files: :func:`staged_outputs` hands out a temporary folder beside the
target folder; the command writes everything there, and only when every file has been
written are the entries moved into the target folder, each top-level entry by one rename (a
subfolder such as ``tables/`` replaces the old one whole, so no file of the previous run
survives in it); should a rename fail, those already made are undone. A failure before then
leaves the target untouched and removes the staging folder; a run killed before then leaves
the target untouched and at worst a hidden ``.<target>.staging-*`` folder beside it, which
can be deleted. Only a kill during the final renames (microseconds) could leave a mix.

Files get the usual permissions (``0666`` and directories ``0777``, less the umask), not
the ``0600``/``0700`` of :mod:`tempfile`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from trialstats.errors import TrialstatsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A run killed mid-write leaves no truncated ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_outputs(target: str | Path) -> Iterator[Path]:
    """Stage a command's output files and move them into ``target`` together.

    Yields an empty folder beside ``target`` (on the same file system); write every output
    there under its final relative path. On normal exit each top-level entry replaces the
    entry of the same name in ``target`` (created if absent), a folder as a whole; entries of
    ``target`` the command did not write are left alone. On an exception nothing in
    ``target`` changes; if a move itself fails, the moves already made are undone.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise TrialstatsError(f"{target}: is a file; the output must be a folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        yield stage
        mode = 0o777 & ~_umask()
        for entry in stage.rglob("*"):
            if entry.is_dir():
                entry.chmod(mode)
        target.mkdir(exist_ok=True)
        _commit(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _commit(stage: Path, target: Path) -> None:
    """Move every entry of ``stage`` into ``target``, retiring what it replaces into
    ``stage/.retired``; on any failure put everything back as it was."""
    retired = stage / ".retired"
    entries = sorted(stage.iterdir())
    retired.mkdir()
    moves: list[tuple[Path, Path]] = []
    try:
        for entry in entries:
            old = target / entry.name
            if old.exists() or old.is_symlink():
                os.replace(old, retired / entry.name)
                moves.append((old, retired / entry.name))
            os.replace(entry, old)
            moves.append((entry, old))
    except BaseException:
        for source, destination in reversed(moves):
            os.replace(destination, source)
        raise
