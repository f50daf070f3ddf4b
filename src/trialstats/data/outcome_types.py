"""What binary and count outcome columns may hold, and the 0/1 column declared continuous.

An outcome's ``type`` (configuration) is ``continuous`` (default), ``binary`` or ``count``.
A binary column holds 0 and 1, or the two ``labels`` [no, yes] of its entry (the second is the
event, coded 1); a count column holds whole numbers >= 0, with an optional ``exposure`` column
(> 0 wherever the count is observed) whose log is the model offset. These checks return masks;
:mod:`trialstats.data.validate` words the messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["bad_exposure", "binary_looking", "code_labels", "disallowed"]

#: Per type: the rule in words and the test of the parsed values.
_RULES = {
    "binary": ("0 or 1 (or set labels: [no, yes])", lambda v: v.isin([0.0, 1.0])),
    "count": ("whole numbers >= 0", lambda v: (v >= 0) & (v == np.floor(v))),
}


def disallowed(values: pd.Series, outcome: dict[str, Any]) -> tuple[pd.Series, str]:
    """Cells of parsed ``values`` that ``outcome``'s type does not allow, and the rule in
    words (no cells for continuous outcomes)."""
    kind = outcome.get("type", "continuous")
    if kind not in _RULES:
        return pd.Series(False, index=values.index), ""
    rule, allowed = _RULES[kind]
    return values.notna() & ~allowed(values), rule


def code_labels(raw: pd.Series, labels: list[Any]) -> pd.Series:
    """A labelled binary column as 0/1 floats (the second label is 1; a cell that is neither
    label is NaN); labels match as trimmed text, so 1, 1.0 and '1' agree."""
    def text(value: Any) -> str:
        if isinstance(value, float | np.floating) and float(value).is_integer():
            value = int(value)
        return str(value).strip()

    codes = {text(labels[0]): 0.0, text(labels[1]): 1.0}
    return raw.map(lambda v: np.nan if pd.isna(v) else codes.get(text(v), np.nan)).astype(float)


def bad_exposure(values: pd.Series, counts: pd.DataFrame) -> pd.Series:
    """Patients with a count observed (any column of ``counts``) whose parsed exposure
    ``values`` is not a positive number."""
    return counts.notna().any(axis=1) & ~(values > 0)


def binary_looking(outcome: dict[str, Any], columns: list[pd.Series]) -> str:
    """A warning when a continuous outcome's observed values (its ``columns``) are all 0 or 1
    ("" otherwise)."""
    if outcome.get("type", "continuous") != "continuous":
        return ""
    values = pd.concat(columns).dropna()
    if not len(values) or not values.isin([0.0, 1.0]).all():
        return ""
    return (f"warning: outcome '{outcome['name']}' holds only 0 and 1 but is analysed as "
            f"continuous (a linear model, mean (SD), SD-standardised effects); if it is a "
            f"yes/no outcome set type: binary on its entry in the configuration.")
