"""The README's "Your own trial" commands work as written.

The block after the marker comment is executed line by line with bash, from a fresh folder
holding a copy of data_synthetic/ (the README's commands run from the repository root);
`source .venv/bin/activate` stands for this test environment's scripts on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from trialstats.cli import main

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- The commands of this block are executed by tests/test_readme.py. -->"


def readme_block() -> list[str]:
    """The command lines of the marked block, comments stripped."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER):]
    block = re.search(r"```bash\n(.*?)```", after, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_own_trial_commands_run_as_written(tmp_path):
    lines = readme_block()
    assert lines[0] == "source .venv/bin/activate"
    assert any(line.startswith("trialstats run --config") for line in lines)
    shutil.copytree(REPO / "data_synthetic", tmp_path / "data_synthetic")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for line in lines[1:]:
        done = subprocess.run(["bash", "-ec", line], cwd=tmp_path, env=env, capture_output=True,
                              text=True, check=False, timeout=1200)
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    trial = tmp_path / "my_trial"
    for name in ("report.html", "report.docx", "report.tex", "report.md"):
        assert (trial / "reports" / name).stat().st_size > 0
    # The synthetic data in a new trial give the default run's primary results.
    default = tmp_path / "default"
    assert main(["analyse", "--config", str(REPO / "config" / "config.yaml"),
                 "--out", str(default / "primary.csv")]) == 0
    assert (trial / "results" / "primary.csv").read_bytes() == (
        default / "primary.csv"
    ).read_bytes()
