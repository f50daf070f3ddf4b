"""Display formatting of a report: the only place where numbers are rounded, and the labels
(arms, months, variables, df methods) every table and figure shares."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trialstats.contract import primary_method

__all__ = [
    "Words",
    "arm_names",
    "arm_order",
    "arm_title",
    "contrast_text",
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
    "sentence",
    "truthy",
    "variable_label",
    "words",
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


@dataclass(frozen=True)
class Words:
    """The trial's own words for the report (``report.cluster_name``,
    ``report.participant_name``, ``report.arm_labels``, ``report.value_labels``).

    Attributes
    ----------
    cluster, clusters, participant, participants : str
        What a cluster and a participant are called, singular and plural (lower case).
    arms : dict
        Display label of each arm label of the data.
    values : dict
        Display label of each value, by column.
    """

    cluster: str = "practice"
    clusters: str = "practices"
    participant: str = "patient"
    participants: str = "patients"
    arms: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def arm(self, label: str) -> str:
        """Display label of an arm (the data label when none is configured)."""
        return self.arms.get(str(label), str(label))

    def value(self, column: str, value: str) -> str:
        """Display label of a value of a categorical column."""
        return self.values.get(column, {}).get(str(value), str(value))

    def count(self, n: float, participants: bool = False) -> str:
        """``"12 schools"``, ``"1 pupil"``: a count with the right noun."""
        n = int(n)
        one, many = ((self.participant, self.participants) if participants
                     else (self.cluster, self.clusters))
        return f"{n:,} {one if n == 1 else many}"


def words(config: dict[str, Any]) -> Words:
    """The :class:`Words` of a run configuration (defaults: practice, patient)."""
    report = config.get("report", {})
    cluster = report.get("cluster_name", ["practice", "practices"])
    participant = report.get("participant_name", ["patient", "patients"])
    return Words(cluster[0], cluster[1], participant[0], participant[1],
                 {str(k): v for k, v in report.get("arm_labels", {}).items()},
                 {c: {str(k): v for k, v in m.items()}
                  for c, m in report.get("value_labels", {}).items()})


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:]


def arm_names(config: dict[str, Any]) -> tuple[str, str]:
    """Display names of the intervention and the control arm: from ``report.arm_labels``
    when it names them, else ``("intervention", "control")``."""
    w = words(config)
    intervention = config["design"]["intervention"]
    if not w.arms:
        return "intervention", "control"
    others = [label for label in w.arms if label != intervention]
    return w.arm(intervention), w.arm(others[0]) if others else "control"


def contrast_text(config: dict[str, Any]) -> str:
    """``"<intervention> minus <control>"`` in the arms' display names (:func:`arm_names`)."""
    return " minus ".join(arm_names(config))


def arm_title(label: str, config: dict[str, Any]) -> str:
    """An arm as a column heading: its display label, first letter capitalised."""
    return sentence(words(config).arm(label))


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
    """Rows of a results table for each outcome's primary df method
    (:func:`~trialstats.contract.primary_method`)."""
    method = results["outcome"].map({o["name"]: primary_method(config, o)
                                     for o in config["outcomes"]})
    return results[results["method"] == method].reset_index(drop=True)


def ordered_outcomes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Outcomes in configuration order, primary ones first."""
    return sorted(config["outcomes"], key=lambda o: not o["primary"])


def truthy(value: Any) -> bool:
    """A ``converged`` cell as bool (True, "True", "true", 1 are true; missing is false)."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value) if not pd.isna(value) else False
