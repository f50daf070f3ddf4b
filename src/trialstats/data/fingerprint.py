"""The fingerprint of analysis-ready tables: what they were validated with.

``trialstats validate`` writes it with the Parquet tables (``--fingerprint-out FILE``;
``fingerprint.json`` in the folder form ``--out-dir DIR``): one SHA-256 digest per part of
the configuration that validation depends on (``data``, ``design``, ``outcomes``,
``analysis.covariates``; each part as canonical JSON) and one per input table's bytes.
Commands that read the tables (``--fingerprint FILE``) compute the same digests from the
current configuration and inputs, and refuse tables whose fingerprint differs, naming the
parts that changed, so that an analysis never runs on tables checked against another
configuration (a new covariate read as text, an outcome range no longer enforced).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from trialstats.errors import TrialstatsError

__all__ = ["FINGERPRINT_FILE", "check_fingerprint", "fingerprint"]

#: Name of the fingerprint in the folder form of the analysis-ready tables.
FINGERPRINT_FILE = "fingerprint.json"
# Configuration parts validation depends on, as (section, key or None for the whole section).
_PARTS = (("data", None), ("design", None), ("outcomes", None), ("analysis", "covariates"))
_CHUNK = 1 << 20


def _digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(config: dict[str, Any]) -> dict[str, str]:
    """SHA-256 digests of what validation of ``config``'s tables depends on.

    Parameters
    ----------
    config : dict
        The loaded configuration (:func:`trialstats.config.load_config`).

    Returns
    -------
    dict
        ``{"data": ..., "design": ..., "outcomes": ..., "analysis.covariates": ...,
        "input practices": ..., "input patients": ...}``: hex digests of each configuration
        part as canonical JSON and of each input file's bytes.
    """
    parts = {}
    for section, key in _PARTS:
        value = config[section] if key is None else config[section][key]
        text = json.dumps(value, sort_keys=True, default=str)
        parts[section if key is None else f"{section}.{key}"] = hashlib.sha256(
            text.encode()).hexdigest()
    for table in ("practices", "patients"):
        parts[f"input {table}"] = _digest_file(Path(config["data"][table]))
    return parts


def check_fingerprint(path: Path, config: dict[str, Any]) -> None:
    """Refuse the analysis-ready tables whose fingerprint is the file ``path`` unless they
    were validated with the configuration parts and input files of ``config``.

    Raises
    ------
    TrialstatsError
        No fingerprint, an unreadable one, or one that differs (naming what changed).
    """
    again = f"run `trialstats validate --config CONFIG` again (--fingerprint-out {path})."
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrialstatsError(
            f"{path} not found: the analysis-ready tables do not say which configuration and "
            f"inputs they were validated with; {again}") from None
    except (OSError, ValueError) as error:
        raise TrialstatsError(f"{path} cannot be read ({error}); {again}") from None
    current = fingerprint(config)
    changed = [part for part, digest in current.items()
               if not isinstance(recorded, dict) or recorded.get(part) != digest]
    if changed:
        raise TrialstatsError(
            f"the analysis-ready tables of {path} were validated with a different "
            f"configuration or inputs: {', '.join(changed)} changed; {again}")
