"""``trialstats deps COMMAND``: the source files a command runs, for workflow inputs.

A command's module and every ``trialstats`` module it imports, directly or through other
modules (at the top of a module or inside a function), plus the ``__init__.py`` of the
packages that hold them and the CLI entry point ``cli.py``. Imports are read from the source
(``ast``) and resolved with :mod:`importlib`, so the files are found wherever trialstats is
installed, a source checkout or ``site-packages``. The imports of package ``__init__`` files
and of ``cli.py`` are not followed: they only register and dispatch (``commands/__init__.py``
imports every command).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path

from trialstats.errors import TrialstatsError

PACKAGE = "trialstats"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``deps`` subcommand."""
    parser = subparsers.add_parser(
        "deps",
        help="list the trialstats source files a command imports (workflow inputs)",
        description="Print, one per line and sorted, the paths of the trialstats source files "
        "that COMMAND's module imports transitively (e.g. `trialstats deps sensitivity`), so a "
        "workflow can re-run a step when the code it runs changes.",
    )
    parser.add_argument("name", metavar="COMMAND", help="a trialstats command, e.g. analyse")
    parser.set_defaults(run=run)


def _imported(path: Path, module: str) -> set[str]:
    """Names of the trialstats modules ``module`` (source at ``path``) imports."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(f"{PACKAGE}.")}


def _source(module: str) -> Path | None:
    """The source file of ``module``, or None when it is not a module (an imported name)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    return None if spec is None or spec.origin is None else Path(spec.origin)


def module_files(module: str) -> list[Path]:
    """The source files of ``module``, the trialstats modules it imports transitively, the
    ``__init__.py`` of every package holding them and ``cli.py``, sorted.

    Raises
    ------
    TrialstatsError
        When ``module`` cannot be found.
    """
    if _source(module) is None:
        raise TrialstatsError(f"no module {module!r}.")
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _source(name)
        if name in seen or path is None or path.name == "__init__.py":
            continue
        seen[name] = path
        pending.extend(_imported(path, name))
    packages = {".".join(name.split(".")[:k])
                for name in seen for k in range(1, name.count(".") + 1)}
    entry = {_source(f"{PACKAGE}.cli")} | {_source(p) for p in packages}
    return sorted((set(seen.values()) | entry) - {None})


def command_module(name: str) -> str:
    """The module of the trialstats command ``name`` (``missing-data`` ->
    ``trialstats.commands.missing_data``)."""
    from trialstats.commands import COMMANDS

    modules = {m.__name__.rpartition(".")[2].replace("_", "-"): m.__name__ for m in COMMANDS}
    if name not in modules:
        raise TrialstatsError(f"unknown command {name!r}; choose from {', '.join(modules)}.")
    return modules[name]


def run(args: argparse.Namespace) -> None:
    """Print the source files of the command's module, one per line."""
    for path in module_files(command_module(args.name)):
        print(path)
