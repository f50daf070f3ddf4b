"""Reading and checking the run configuration.

The configuration is a YAML file validated against ``schemas/config.schema.yaml``
(JSON Schema written in YAML). Defaults from the schema are filled in, so the rest of
the package can rely on every key being present, and relative data paths are resolved
against the folder of the configuration file, so a trial's folder can be run from anywhere.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Hashable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trialstats.errors import TrialstatsError

#: Keys that name files, as (section, key); relative ones are resolved against the config's
#: folder. Optional ones may be null.
PATH_KEYS = (("data", "practices"), ("data", "patients"), ("design", "allocation_set"))


def load_schema(name: str) -> dict[str, Any]:
    """Return the packaged JSON Schema ``schemas/<name>.schema.yaml`` as a dict."""
    text = resources.files("trialstats").joinpath("schemas", f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


#: Keys whose values are labels, as they appear in the data or as shown: YAML 1.1 would turn the
#: plain words yes/no/on/off/y/n into booleans (``labels: [no, yes]`` into ``[False, True]``),
#: which no longer match the text in the data, so those words are read as written (true and
#: false stay booleans, which match boolean columns).
_DATA_LABEL_KEYS = ("labels", "intervention", "arm_labels", "value_labels")
#: Of those, the keys whose plain value is always text: an arm label is compared as text, so
#: ``intervention: 1`` means "1".
_TEXT_KEYS = ("intervention",)
_BOOL_TAG, _STR_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:str"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader for which a key repeated in one mapping is an error (YAML says
    keys are unique; PyYAML would silently keep the last value)."""

    labels_as_written = False

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if self.labels_as_written and key in _DATA_LABEL_KEYS:
                _as_written(value_node, every_word=key in _TEXT_KEYS)
            if not isinstance(key, Hashable):
                continue  # PyYAML itself refuses it
            if key in seen:
                raise yaml.YAMLError(
                    f"key {key!r} appears twice in one mapping, on lines {seen[key]} and "
                    f"{line}; remove one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _ConfigLoader(_UniqueKeyLoader):
    """:class:`_UniqueKeyLoader` reading the words of :data:`_DATA_LABEL_KEYS` values as
    written."""

    labels_as_written = True


def _as_written(node: yaml.Node, *, every_word: bool = False) -> None:
    """Retag the YAML 1.1 boolean words other than true/false as text as written, in a scalar
    and in every item, key and value below it (``every_word``: a plain scalar, number or
    word, is always text)."""
    if isinstance(node, yaml.ScalarNode):
        plain_word = every_word and node.style is None
        if plain_word or (node.tag == _BOOL_TAG and node.value.lower() not in ("true", "false")):
            node.tag = _STR_TAG
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _as_written(item)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _as_written(key)
            _as_written(value)


def read_yaml(path: str | Path, *, labels_as_written: bool = True) -> Any:
    """Read a YAML file, turning unreadable or malformed files (including a key repeated in
    one mapping) into a user-facing error; with ``labels_as_written`` (the default) the
    yes/no words of data labels stay text (:data:`_DATA_LABEL_KEYS`), otherwise the file is
    read as PyYAML (and so Snakemake) reads it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TrialstatsError(f"{path}: file not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrialstatsError(f"{path}: cannot be read ({exc}).") from None
    try:
        return yaml.load(text, Loader=_ConfigLoader if labels_as_written else _UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise TrialstatsError(f"{path}: is not valid YAML ({exc}).") from None


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into a sentence that names the offending key."""
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(f"'{where}.{k}'" if where != "(top level)" else f"'{k}'" for k in unknown)
        return f"unknown key {keys}; allowed here: {', '.join(allowed)}"
    if error.validator == "required":
        return f"key '{where}' is missing a required entry: {error.message}"
    if error.validator == "oneOf":
        hint = error.schema.get("description", "").strip()
        return f"key '{where}' has an invalid value {error.instance!r}: {hint}"
    return f"key '{where}' {error.message}"


def validate_against_schema(
    document: Any, schema: dict[str, Any], source: str | Path
) -> dict[str, Any]:
    """Validate ``document`` against ``schema``, fill defaults, and return a new dict.

    Raises
    ------
    TrialstatsError
        Naming the source file and every offending key.
    """
    if not isinstance(document, dict):
        raise TrialstatsError(f"{source}: expected a mapping of keys at the top level.")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "\n".join(f"  - {describe_schema_error(e)}" for e in errors)
        raise TrialstatsError(f"{source}: the configuration is not valid:\n{lines}")
    return _with_defaults(copy.deepcopy(document), schema)


def _with_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                instance[key] = _with_defaults(instance[key], sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [_with_defaults(item, schema["items"]) for item in instance]
    return instance


#: MCID scales allowed for each outcome type.
MCID_SCALES = {
    "continuous": ("standardised", "raw"),
    "binary": ("risk-difference", "risk-ratio", "odds-ratio"),
    "count": ("rate-ratio",),
}


def _outcome_type_problems(outcome: dict[str, Any], where: str) -> list[str]:
    """The keys of one outcome entry that do not fit its ``type``."""
    kind, problems = outcome["type"], []
    mcid = outcome.get("mcid")
    if mcid is not None:
        allowed = MCID_SCALES[kind]
        if mcid["scale"] not in allowed:
            problems.append(f"{where}.mcid.scale '{mcid['scale']}' does not fit a {kind} "
                            f"outcome; use {' or '.join(allowed)}")
        elif mcid["scale"].endswith("ratio") and mcid["value"] == 1:
            problems.append(f"{where}.mcid.value must differ from 1 on a ratio scale")
        elif mcid["scale"] == "risk-difference" and mcid["value"] >= 1:
            problems.append(f"{where}.mcid.value must be a proportion below 1 on the "
                            f"risk-difference scale")
    for key, owner in (("labels", "binary"), ("exposure", "count")):
        if key in outcome and kind != owner:
            problems.append(f"{where}.{key} is for {owner} outcomes; this one has type: {kind}")
    labels = outcome.get("labels")
    if labels is not None and str(labels[0]).strip() == str(labels[1]).strip():
        problems.append(f"{where}.labels must be two different values")
    if kind != "continuous" and "range" in outcome:
        problems.append(f"{where}.range is for continuous outcomes; a {kind} outcome's "
                        f"values are checked by its type")
    return problems


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate and complete a run configuration.

    Besides the schema, checks the rules that span keys: unique outcome names, a
    primary month among the follow-up months, a baseline month that is not a
    follow-up month, ranges with low < high, and outcome keys that fit the outcome's
    ``type`` (MCID scale, ``labels``, ``exposure``). ``analysis.df_method`` and
    ``analysis.glmm_df_method`` are always returned as lists (first = primary method).
    Relative paths under ``data`` are returned resolved against the folder of ``path``
    (see :func:`resolve_paths`).
    """
    config = validate_against_schema(read_yaml(path), load_schema("config"), path)
    design, outcomes, analysis = config["design"], config["outcomes"], config["analysis"]
    problems = []
    names = [o["name"] for o in outcomes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"outcome names must be unique; repeated: {', '.join(repeated)}")
    if design["primary_month"] not in design["followup_months"]:
        problems.append(
            f"design.primary_month ({design['primary_month']}) must be one of "
            f"design.followup_months {design['followup_months']}"
        )
    if design["baseline_month"] in design["followup_months"]:
        problems.append("design.baseline_month must not also be a follow-up month")
    for i, outcome in enumerate(outcomes):
        outcome.setdefault("label", outcome["name"])
        low_high = outcome.get("range")
        if low_high is not None and not low_high[0] < low_high[1]:
            problems.append(f"outcomes[{i}].range must be [low, high] with low < high")
        problems += _outcome_type_problems(outcome, f"outcomes[{i}]")
    if design["type"] != "parallel" and config["data"]["format"] != "long":
        problems.append(
            f"design.type {design['type']} needs the patients table in long format with a "
            f"period per measurement: set `data: {{format: long}}`"
        )
    if analysis["time_on_treatment"] and design["type"] in ("parallel", "crossover"):
        problems.append("analysis.time_on_treatment needs a stepped-wedge or "
                        "parallel-baseline design")
    for key in ("df_method", "glmm_df_method"):
        if isinstance(analysis[key], str):
            analysis[key] = [analysis[key]]
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise TrialstatsError(f"{path}: the configuration is not valid:\n{lines}")
    return resolve_paths(config, Path(path).parent)


def resolve_paths(config: dict[str, Any], base: str | Path) -> dict[str, Any]:
    """Resolve the relative file paths of :data:`PATH_KEYS` against the folder ``base``.

    Absolute paths are kept; relative ones become absolute and normalised, so that the
    files are found wherever the command is started from.
    """
    for section, key in PATH_KEYS:
        value = config.get(section, {}).get(key)
        if value is not None:
            config[section][key] = os.path.normpath(
                Path(base).absolute() / Path(value).expanduser()
            )
    return config


def workflow_config_file(
    configfiles: list[str], cli_configfiles: list[str], cli_overrides: dict[str, Any],
    config: dict[str, Any],
) -> Path:
    """The one configuration file a Snakemake run stands for, or an error.

    Every job of the workflow re-reads its configuration from a file, so the configuration
    Snakemake holds must be exactly one file's contents: not merged from several files, not
    changed by ``--config key=value`` overrides, and equal to the file as read now.

    Parameters
    ----------
    configfiles : list of str
        Every configuration file Snakemake loaded (``workflow.configfiles``).
    cli_configfiles : list of str
        Those given with ``--configfile``.
    cli_overrides : dict
        Values given with ``--config``.
    config : dict
        The configuration Snakemake holds, before defaults are filled in.

    Raises
    ------
    TrialstatsError
        Saying what was mixed and to use ``trialstats run --config FILE``.
    """
    advice = (
        "Run a trial with `trialstats run --config PATH/config.yaml` (or `snakemake "
        "--configfile PATH/config.yaml` with no other configuration), and change settings "
        "by editing that file."
    )
    if cli_overrides:
        keys = ", ".join(sorted(cli_overrides))
        raise TrialstatsError(
            f"--config overrides ({keys}) are not passed on to the workflow's jobs, which read "
            f"the configuration file. {advice}"
        )
    files = list(dict.fromkeys(os.path.abspath(f) for f in configfiles))
    if len(files) != 1:
        named = ", ".join(files) if files else "none"
        raise TrialstatsError(
            f"the workflow needs exactly one configuration file; Snakemake loaded {named}"
            f"{' (merged)' if files else ''}. {advice}"
        )
    file = Path(files[0])
    if cli_configfiles and os.path.abspath(cli_configfiles[-1]) != str(file):
        raise TrialstatsError(f"{cli_configfiles[-1]}: not the configuration in use. {advice}")
    if read_yaml(file, labels_as_written=False) != config:
        raise TrialstatsError(
            f"{file}: the configuration Snakemake holds differs from this file (it was changed "
            f"after loading, or merged with another). {advice}"
        )
    return file
