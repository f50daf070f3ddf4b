"""Which data columns may be described in a report: identifiers and free text never.

A column is *identifier-like* when its name says so (``id``, ``nhs``, ``name``, ``postcode``,
``dob``, ``date_of_birth``, ``..._number`` ...), or its values do: NHS-number-like digits (ten
digits, as ``943 476 5919`` or ``9434765919``), dates, or text that differs on every row. A
text column with more than :data:`MAX_CATEGORIES` distinct values is *free text*. Tabulating
either would print one row per person (with the arm beside it), so reports leave them out
and say which and why. The rules look at names and values only and never at what a column is
used for, so they can be checked against any table.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: A text column with more distinct values than this is free text, not a category.
MAX_CATEGORIES = 30
#: Integer columns unique on every row are identifiers only from this many rows on (a
#: practice table's list sizes may all differ).
UNIQUE_MIN_ROWS = 100
#: A text column unique on every row is an identifier from this many rows on.
UNIQUE_TEXT_MIN_ROWS = 10
#: Fraction of values (of distinct texts) that must match a pattern for the column to match.
_MOSTLY = 0.9

_ID_WORDS = frozenset({
    "id", "ids", "identifier", "uid", "uuid", "guid", "nhs", "chi", "mrn", "ssn", "nino",
    "passport", "dob", "birth", "birthdate", "birthday", "name", "names", "forename",
    "forenames", "surname", "firstname", "lastname", "initials", "address", "postcode",
    "zipcode", "email", "phone", "telephone", "mobile",
})
_NUMBER_WORDS = frozenset({"number", "no", "num", "nr"})
_TOKENS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_NHS = re.compile(r"^\d{3}[ -]?\d{3}[ -]?\d{4}$")
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?)?|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})$"
)


def _name_reason(name: str) -> str | None:
    tokens = [t.lower() for t in _TOKENS.findall(name)]
    if _ID_WORDS.intersection(tokens) or (len(tokens) > 1 and tokens[-1] in _NUMBER_WORDS):
        return "identifier-like name"
    return None


def _number_reason(numbers: pd.Series) -> str | None:
    integers = numbers[np.isclose(np.mod(numbers, 1), 0)]
    if len(integers) < _MOSTLY * len(numbers):
        return None
    if integers.between(1e9, 1e10 - 1).mean() >= _MOSTLY:
        return "NHS-number-like digits"
    if len(numbers) >= UNIQUE_MIN_ROWS and numbers.is_unique:
        return "unique per row"
    return None


def identifier_reason(name: str, values: pd.Series) -> str | None:
    """Why column ``name`` must not be tabulated, or None when it may be.

    Parameters
    ----------
    name : str
        The column name.
    values : Series
        Its values (any dtype; missing values are ignored).

    Returns
    -------
    str or None
        ``"identifier-like name"``, ``"NHS-number-like digits"``, ``"dates"``, ``"unique per
        row"``, ``"free text (N distinct values)"``, or None.
    """
    reason = _name_reason(str(name))
    if reason is not None:
        return reason
    present = values.dropna()
    if not len(present) or pd.api.types.is_bool_dtype(present):
        return None
    if pd.api.types.is_datetime64_any_dtype(present):
        return "dates"
    if pd.api.types.is_numeric_dtype(present):
        return _number_reason(present.astype(float))
    text = present.astype(str).str.strip()
    distinct = pd.Series(text.unique())  # the patterns are tried on each distinct value once
    if pd.to_numeric(distinct, errors="coerce").notna().all():
        return _number_reason(pd.to_numeric(text).astype(float))
    if distinct.str.match(_NHS).mean() >= _MOSTLY:
        return "NHS-number-like digits"
    if distinct.str.match(_DATE).mean() >= _MOSTLY:
        return "dates"
    if len(text) >= UNIQUE_TEXT_MIN_ROWS and len(distinct) == len(text):
        return "unique per row"
    if len(distinct) > MAX_CATEGORIES:
        return f"free text ({len(distinct):,} distinct values)"
    return None


def identifier_columns(frame: pd.DataFrame, skip: set[str] | frozenset[str] = frozenset()
                       ) -> dict[str, str]:
    """Every column of ``frame`` (except ``skip``) that must not be tabulated, with why."""
    reasons = {name: identifier_reason(name, frame[name])
               for name in frame.columns if name not in skip}
    return {name: reason for name, reason in reasons.items() if reason is not None}
