"""Writing outputs so that a failed or killed run never leaves a mix of two runs.

One file: :func:`write_atomically` writes a temporary file beside the target and renames it
into place. A set of named files or folders (a command's outputs, wherever each goes):
:func:`staged_files` hands out one temporary path beside each target; the command writes
everything there, and only when every output has been written are they moved into place,
each by one rename (a folder such as ``tables/`` replaces the old one whole, so no file of the
previous run survives in it); should a rename fail, those already made are undone. A failure
before then leaves every target untouched and removes the staging folders; a run killed
before then leaves the targets untouched and at worst hidden ``.<target>.staging-*`` folders
beside them, which can be deleted. Only a kill during the final renames (microseconds) could
leave a mix.

Files get the usual permissions (``0666`` and directories ``0777``, less the umask), not
the ``0600``/``0700`` of :mod:`tempfile` (only the hidden staging folders have those).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
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
def staged_files(targets: Mapping[str, str | Path]) -> Iterator[dict[str, Path]]:
    """Stage a set of named output files (or folders) and move them into place together.

    Yields ``{name: temporary path}``, each temporary path in a hidden folder beside its
    target (on the same file system) and not yet existing: write output ``name`` there, as a
    file or a folder. On normal exit every target is replaced by its staged entry (a folder
    as a whole); a target not written is an error and nothing changes. On an exception
    nothing changes; if a move itself fails, the moves already made are undone.

    Raises
    ------
    TrialstatsError
        When two outputs name the same path, or a file stands where a folder must be.
    """
    paths = {name: Path(target) for name, target in targets.items()}
    resolved = [path.resolve() for path in paths.values()]
    if len(set(resolved)) < len(resolved):
        twice = sorted({str(path) for path, r in zip(paths.values(), resolved, strict=True)
                        if resolved.count(r) > 1})
        raise TrialstatsError(f"{', '.join(twice)}: named for two outputs; give each its own file.")
    folders: dict[str, Path] = {}
    try:
        for name, path in paths.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise TrialstatsError(f"{path}: a file stands where its folder must be; "
                                      "name an output in a folder.") from None
            folders[name] = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.staging-"))
        yield {name: folders[name] / path.name for name, path in paths.items()}
        _commit([(folders[name] / path.name, path, folders[name] / ".retired")
                 for name, path in paths.items()])
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def _commit(moves: list[tuple[Path, Path, Path]]) -> None:
    """For each ``(new, target, retired)``: move an existing ``target`` to ``retired``, then
    ``new`` to ``target``; on any failure put everything back as it was."""
    done: list[tuple[Path, Path]] = []
    try:
        for new, target, retired in moves:
            if target.exists() or target.is_symlink():
                os.replace(target, retired)
                done.append((target, retired))
            os.replace(new, target)
            done.append((new, target))
    except BaseException:
        for source, destination in reversed(done):
            os.replace(destination, source)
        raise
