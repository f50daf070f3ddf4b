"""Display formatting of a report: the only place where numbers are rounded, and the labels
(arms, months, variables, df methods) every table and figure shares."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "arm_order",
    "arm_title",
    "digits_for",
    "fmt",
    "fmt_ci",
    "fmt_count",
    "fmt_p",
    "method_name",
    "month_label",
    "ordered_outcomes",
    "primary_rows",
    "printable",
    "truthy",
    "variable_label",
]

# C0 and C1 control characters other than tab and newline: invalid in XML (Word, SVG),
# invisible or terminal escapes elsewhere.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(value: Any) -> Any:
    """``value`` with every control character (other than tab and newline) in its text
    replaced by U+FFFD: strings, the keys and values of dicts and lists, and the text cells
    of a DataFrame; anything else is returned as it is."""
    if isinstance(value, str):
        return _CONTROL.sub("\ufffd", value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable(v) for v in value)
    if isinstance(value, pd.DataFrame):
        text = [c for c in value.columns
                if pd.api.types.is_object_dtype(value[c]) or pd.api.types.is_string_dtype(value[c])]
        cleaned = value.assign(**{c: value[c].map(printable) for c in text})
        cleaned.columns = [printable(c) for c in cleaned.columns]
        cleaned.attrs = value.attrs
        return cleaned
    return value


_METHOD_NAMES = {
    "kenward-roger": "Kenward-Roger",
    "satterthwaite": "Satterthwaite",
    "between-within": "between-within",
    "residual": "residual",
}


def fmt(value: float, digits: int) -> str:
    """``value`` rounded to ``digits`` decimals with a true minus sign; ``""`` when missing."""
    if value is None or not np.isfinite(value):
        return ""
    text = f"{value:,.{digits}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def fmt_count(value: float) -> str:
    """An integer count with thousands separators; ``""`` when missing."""
    if value is None or not np.isfinite(value):
        return ""
    return f"{int(value):,}"


def fmt_ci(estimate: float, low: float, high: float, digits: int) -> str:
    """``estimate (low to high)``; ``""`` when the estimate is missing."""
    if not np.isfinite(estimate):
        return ""
    return f"{fmt(estimate, digits)} ({fmt(low, digits)} to {fmt(high, digits)})"


def fmt_p(p: float) -> str:
    """A p-value: three decimals, ``<0.001`` below that; ``""`` when missing."""
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def digits_for(scale: float) -> int:
    """Decimals for values of a given spread (an SD or IQR): two to three significant
    figures of the spread (20 -> 1 decimal, 1.9 and 0.6 -> 2, 0.26 -> 3), at most 4."""
    if not np.isfinite(scale) or scale <= 0:
        return 1
    return int(np.clip(1 - math.floor(math.log10(scale / 3)), 0, 4))


def method_name(method: str) -> str:
    """Display name of a denominator-df method."""
    return _METHOD_NAMES.get(method, method)


def arm_order(config: dict[str, Any], labels: pd.Series) -> list[str]:
    """Arm labels, the intervention arm first."""
    intervention = config["design"]["intervention"]
    return sorted(pd.unique(labels.dropna()).tolist(), key=lambda a: (a != intervention, a))


def arm_title(label: str) -> str:
    """An arm label as a column heading (first letter capitalised)."""
    return label[:1].upper() + label[1:]


def month_label(month: int, baseline_month: int) -> str:
    """``Baseline`` or ``<m> months``."""
    if month == baseline_month:
        return "Baseline"
    return f"{month} month{'s' if month != 1 else ''}"


def variable_label(config: dict[str, Any], column: str) -> str:
    """Label of a data column: ``report.labels`` in the config, else the humanised name."""
    labels = config.get("report", {}).get("labels", {})
    if column in labels:
        return labels[column]
    text = column.replace("_", " ")
    return text[:1].upper() + text[1:]


def primary_rows(results: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Rows of a results table for the primary df method (the first of ``analysis.df_method``)."""
    method = config["analysis"]["df_method"][0]
    return results[results["method"] == method].reset_index(drop=True)


def ordered_outcomes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Outcomes in configuration order, primary ones first."""
    return sorted(config["outcomes"], key=lambda o: not o["primary"])


def truthy(value: Any) -> bool:
    """A ``converged`` cell as bool (True, "True", "true", 1 are true; missing is false)."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value) if not pd.isna(value) else False
