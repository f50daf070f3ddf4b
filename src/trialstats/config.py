"""Reading and checking the run configuration.

The configuration is a YAML file validated against ``schemas/config.schema.yaml``
(JSON Schema written in YAML). Defaults from the schema are filled in, so the rest of
the package can rely on every key being present.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trialstats.errors import TrialstatsError


def load_schema(name: str) -> dict[str, Any]:
    """Return the packaged JSON Schema ``schemas/<name>.schema.yaml`` as a dict."""
    text = resources.files("trialstats").joinpath("schemas", f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning unreadable or malformed files into a user-facing error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TrialstatsError(f"{path}: file not found.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrialstatsError(f"{path}: cannot be read ({exc}).") from None
    try:
        return yaml.safe_load(text)
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


def load_config(path: str | Path) -> dict[str, Any]:
    """Read, validate and complete a run configuration.

    Besides the schema, checks the rules that span keys: unique outcome names, a
    primary month among the follow-up months, a baseline month that is not a
    follow-up month, and ranges with low < high. ``analysis.df_method`` is always
    returned as a list (first = primary method).
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
    if isinstance(analysis["df_method"], str):
        analysis["df_method"] = [analysis["df_method"]]
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise TrialstatsError(f"{path}: the configuration is not valid:\n{lines}")
    return config
