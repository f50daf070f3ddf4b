"""The files of a new trial, as written by ``trialstats init``.

A new trial directory holds a commented ``config.yaml`` (the keys of the default run, its
``data:`` pointing at the directory's ``data/`` tables), header-only input templates whose
columns are those the configuration expects, and a ``README.md`` of next steps. The texts
come from the templates ``config.yaml.tmpl`` and ``README.md.tmpl`` beside this module, the
example outcome sets from ``examples.yaml``.

The ``starter`` example is neutral: one placeholder outcome, no covariates, no subgroup
analysis and no power planning (a commented example instead), so nothing of the bundled
synthetic self-management-support trial enters a new trial unless asked for with
``--example sms``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path, PurePath
from string import Template
from typing import Any

import yaml

__all__ = ["MONTHS", "PATIENT_COLUMNS", "PRACTICE_COLUMNS", "outcomes_block", "scaffold_files"]

# Example outcome sets (``starter``, ``sms``) and the comment above them in the config, from
# the packaged ``examples.yaml`` beside this module.
_EXAMPLES: dict[str, dict[str, Any]] = yaml.safe_load(
    resources.files(__name__).joinpath("examples.yaml").read_text()
)
OUTCOME_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    name: example["outcomes"] for name, example in _EXAMPLES.items()
}

# Columns of the input templates besides the outcomes: the design's default column names,
# and for ``sms`` the covariates the default run's config and report refer to, in
# data_synthetic's order.
PRACTICE_COLUMNS = {"starter": ("practice_id", "arm", "withdrawn"),
                    "sms": ("practice_id", "arm", "list_size", "imd_score", "withdrawn")}
PATIENT_COLUMNS = {"starter": ("patient_id", "practice_id"),
                   "sms": ("patient_id", "practice_id", "age", "sex", "condition")}
MONTHS = (0, 6, 12)  # baseline and follow-up months of the template config's design

# The settings of the default run that only the ``sms`` example copies.
_SMS = {
    "covariates": "[condition]",
    "labels": "{ imd_score: IMD score, list_size: List size, age: Age (years) }",
    "table1": "[list_size, imd_score, age, sex]",
    "analyses": "[multiple-imputation, repeated-measures, cluster-level, gee, cr2, subgroups]",
    "subgroup": "  subgroup: condition # prespecified subgroups (exploratory)",
}
_STARTER = {
    "covariates": "[]",
    "labels": "{}",
    "table1": "[]",
    "analyses": "[multiple-imputation, repeated-measures, cluster-level, gee, cr2]",
    "subgroup": "",
}
_POWER = """power:
  # Planning the next trial: every combination of the grid values below is one scenario,
  # computed analytically and by simulating `reps` trials analysed with the primary model.
  methods: [analytic, simulation]
  reps: 1000
  seed: 20130
  df_method: between-within # df of the simulated trials' test: J - 2, robust with few clusters
  grid:
    clusters_per_arm: [8, 12, 16, 20, 24]
    cluster_size: [127]
    cv: [0.6]
    icc: [0.01, 0.03, 0.05, 0.08, 0.1]
    effect: [0.2, 0.25] # standardised: the MCID and a larger effect
    attrition: [0.27]
    rho_s: [0.5] # baseline-follow-up correlation within patients
    rho_c: [0.8] # baseline-follow-up correlation of practice means
"""

_CONSORT = {"assessed": 62, "excluded": {"Declined to participate": 14,
                                         "Did not meet inclusion criteria": 4}}


def _scalar(value: Any) -> str:
    """``value`` as a YAML scalar that reads back as itself, also inside ``[...]``/``{...}``."""
    text = value if isinstance(value, str) else json.dumps(value)
    plain = not any(c in text for c in ":,[]{}#&*!|>'\"%@`") and yaml.safe_load(text) == value
    return text if plain else json.dumps(value)


def _flow(value: Any) -> str:
    """A list or mapping in the YAML flow style of config/config.yaml."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def outcomes_block(outcomes: list[dict[str, Any]]) -> str:
    """The ``outcomes:`` entries as indented YAML, one key per line."""
    lines = []
    for outcome in outcomes:
        for i, (key, value) in enumerate(outcome.items()):
            lines.append(f"{'  - ' if i == 0 else '    '}{key}: {_flow(value)}")
    return "\n".join(lines)


def _consort_block(example: str) -> str:
    block = f"  consort:\n    assessed: {_CONSORT['assessed']}\n    excluded: "
    block += _flow(_CONSORT["excluded"])
    if example == "sms":
        return block
    return "  # Uncomment and give your trial's numbers, e.g.:\n" + "\n".join(
        "  #" + line[1:] for line in block.splitlines()
    )


def _power_block(example: str, grid: dict[str, list[float]] | None, origin: str) -> str:
    """The planning section: a grid taken from a finished trial when ``grid`` is given; the
    SMS grid for ``sms``; for ``starter`` the same keys commented out, because a planning grid
    must come from the user's own assumptions or data."""
    if grid is not None:
        lines = ["power:",
                 f"  # Planning the next trial. The grid was taken from the finished trial "
                 f"{origin}",
                 "  # (cluster size and CV, attrition, ICC and MCID of the primary outcomes,",
                 "  # autocorrelations of baseline and follow-up); widen it to explore.",
                 "  methods: [analytic, simulation]", "  reps: 1000", "  seed: 20130",
                 "  df_method: between-within", "  grid:"]
        lines += [f"    {key}: {_flow(values)}" for key, values in grid.items()]
        return "\n".join(lines) + "\n"
    if example == "sms":
        return _POWER
    lines = ["# Planning the next trial (power and sample size) is off until you add a `power:`",
             "# section with your own assumptions, for example (every combination of the grid",
             "# values is one scenario):"]
    example_lines = ["power:", *_POWER.splitlines()[3:]]
    return "\n".join([*lines, *("# " + line for line in example_lines)]) + "\n"


def _template(name: str) -> Template:
    return Template(resources.files(__name__).joinpath(f"{name}.tmpl").read_text())


def scaffold_files(
    directory: str | PurePath, example: str = "starter",
    grid: dict[str, list[float]] | None = None, origin: str = "",
) -> dict[str, str]:
    """The texts of a new trial's files.

    Parameters
    ----------
    directory : str or PurePath
        The trial directory as the user gave it (commands shown in the README start with it);
        the configuration's data paths are relative to it.
    example : {"starter", "sms"}
        Outcome set of the configuration and the templates (see ``OUTCOME_EXAMPLES``); ``sms``
        also fills in the SMS trial's CONSORT screening numbers.
    grid : dict, optional
        A planning grid taken from a finished trial
        (:func:`trialstats.power.plan.grid_from_analysis`), written as ``power.grid``.
    origin : str
        Which trial the grid came from, for the config's comment.

    Returns
    -------
    dict of str to str
        File path relative to ``directory`` (``config.yaml``, ``README.md``,
        ``data/practices.csv``, ``data/patients.csv``) to its text.
    """
    outcomes = OUTCOME_EXAMPLES[example]
    root = PurePath(directory)
    config = (root / "config.yaml").as_posix()
    outcome_columns = [f"{o['name']}_m{month}" for o in outcomes for month in MONTHS]
    settings = _SMS if example == "sms" else _STARTER
    return {
        "config.yaml": _template("config.yaml").substitute(
            directory=root.as_posix(),
            config=config,
            practices="data/practices.csv",
            patients="data/patients.csv",
            outcomes_note=_EXAMPLES[example]["note"],
            outcomes=outcomes_block(outcomes),
            consort=_consort_block(example),
            power=_power_block(example, grid, origin),
            **settings,
        ),
        "README.md": _template("README.md").substitute(
            name=Path(root).resolve().name,
            config=config,
            columns_example=", ".join(f"`{c}`" for c in outcome_columns[: len(MONTHS)]),
        ),
        "data/practices.csv": ",".join(PRACTICE_COLUMNS[example]) + "\n",
        "data/patients.csv": ",".join((*PATIENT_COLUMNS[example], *outcome_columns)) + "\n",
    }
