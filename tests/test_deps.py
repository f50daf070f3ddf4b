"""``trialstats deps COMMAND``: the source files a command imports, for workflow inputs."""

from __future__ import annotations

from pathlib import Path

import trialstats
from trialstats.cli import main
from trialstats.commands.deps import command_module, module_files

PACKAGE = Path(trialstats.__file__).parent


def listed(capsys, command: str) -> set[str]:
    assert main(["deps", command]) == 0
    paths = [Path(line) for line in capsys.readouterr().out.splitlines()]
    assert all(path.is_file() for path in paths)
    return {path.relative_to(PACKAGE).as_posix() for path in paths}


def test_each_command_lists_what_it_imports_and_no_more(capsys):
    analyse = listed(capsys, "analyse")
    assert {"commands/analyse.py", "analysis/primary.py", "analysis/reml.py", "contract.py",
            "data/validate.py", "cli.py", "analysis/__init__.py"} <= analyse
    assert not any(p.startswith(("power/", "report/", "simulation/")) for p in analyse)
    assert "commands/power.py" not in analyse  # commands/__init__ imports every command
    sensitivity = listed(capsys, "sensitivity")
    assert {"analysis/imputation.py", "analysis/nested_reml.py"} <= sensitivity
    power = listed(capsys, "power")
    assert {"power/simulate.py", "simulation/draw.py", "report/power_curves.py"} <= power
    # editing the imputation re-runs the sensitivity jobs, not the power chunks
    assert "analysis/imputation.py" not in power
    assert "simulation/validity.py" in listed(capsys, "methods-check")


def test_imports_inside_functions_and_of_submodules_are_followed():
    files = {p.relative_to(PACKAGE).as_posix()
             for p in module_files(command_module("missing-data"))}
    assert "analysis/missingness.py" in files  # imported inside run()
    assert command_module("methods-check") == "trialstats.commands.methods_check"


def test_unknown_command_is_a_clear_error(capsys):
    assert main(["deps", "analyze"]) == 2
    assert "unknown command 'analyze'" in capsys.readouterr().err
