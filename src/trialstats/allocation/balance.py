r"""Balance of an allocation: covariates as cvcrand encodes them, balance scores, balance table.

Notation: practices :math:`j = 1..n`; an allocation is :math:`a \in \{0,1\}^n` (1 =
intervention) with :math:`n_1` ones. A categorical covariate with sorted levels
:math:`L_1 < \dots < L_m` becomes the indicators of :math:`L_2..L_m` (the first level is the
reference, as R's ``model.matrix`` on a factor). Every resulting column *k* is centred, scaled
by its sample SD :math:`s_k` (divisor :math:`n - 1`) and multiplied by its weight
:math:`w_k` (the weight of a categorical covariate is repeated on each of its indicators):

.. math:: z_{jk} = w_k\,(x_{jk} - \bar x_k) / s_k .

The balance score of an allocation is, exactly as ``cvcrand::cvrall`` (Yu et al. 2019,
Gallis et al. 2018),

.. math::

    B_{\ell_2}(a) = \sum_k \Big(\sum_j a_j z_{jk}\Big)^2, \qquad
    B_{\ell_1}(a) = \sum_k \Big|\sum_j a_j z_{jk}\Big| .

Because :math:`\sum_j z_{jk} = 0`, :math:`\sum_j a_j z_{jk} = (n_1 n_0 / n)\, w_k
(\bar x_{1k} - \bar x_{0k}) / s_k`: the score is the weighted sum of squared (or absolute)
standardised differences of arm means, up to a constant factor. With weights, cvcrand
multiplies inside the square, so a weight *w* counts :math:`w^2` in :math:`B_{\ell_2}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from trialstats.data.validate import _as_id, _rows, _to_number, _values
from trialstats.errors import TrialstatsError

METRICS = ("l2", "l1")
#: Allocations scored per matrix product (bounds the memory of the float copy).
_CHUNK = 100_000


def practice_table(
    raw: pd.DataFrame, path: Path, *, id_column: str, columns: Sequence[str],
    categorical: Sequence[str] = (),
) -> pd.DataFrame:
    """Check a practices table for allocation and return its id and covariate columns.

    Parameters
    ----------
    raw : DataFrame
        The table as read by :func:`trialstats.data.io.read_table`.
    path : Path
        Its file, for messages.
    id_column : str
        Practice id column (unique, no blanks).
    columns : sequence of str
        Covariates used (balance, strata, minimisation factors).
    categorical : sequence of str
        Those of ``columns`` that are categorical (kept as text); the others must be numbers.

    Returns
    -------
    DataFrame
        ``id_column`` as text, the categorical columns as text and the others as float, in
        file order.

    Raises
    ------
    TrialstatsError
        Naming the file, column and rows: a missing column, a missing or repeated id, a blank
        covariate, or a numeric covariate with a value that is not a number.
    """
    needed = list(dict.fromkeys([id_column, *columns]))
    absent = [c for c in needed if c not in raw.columns]
    if absent:
        raise TrialstatsError(
            f"{path}: column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} "
            f"not found; the file has: {', '.join(map(str, raw.columns))}."
        )
    table = pd.DataFrame({id_column: _as_id(raw[id_column])})
    problems = []
    ids = table[id_column]
    if ids.isna().any():
        problems.append(f"{path}, column '{id_column}': {_rows(ids.isna())} have no practice id.")
    repeated = ids.notna() & ids.duplicated(keep=False)
    if repeated.any():
        problems.append(f"{path}, column '{id_column}': duplicate practice ids "
                        f"{_values(ids[repeated])} at {_rows(repeated)}.")
    for column in dict.fromkeys(columns):
        if column == id_column:
            continue
        if column in categorical:
            values = _as_id(raw[column])
        else:
            values = _to_number(raw[column])
            bad = values.isna() & raw[column].notna()
            if bad.any():
                problems.append(
                    f"{path}, column '{column}': values {_values(raw[column][bad])} at "
                    f"{_rows(bad)} are not numbers (declare the column categorical if it is)."
                )
                continue
        if values.isna().any():
            problems.append(f"{path}, column '{column}': {_rows(values.isna())} are blank; "
                            f"every practice needs a value to be allocated.")
        table[column] = values
    if problems:
        raise TrialstatsError("Invalid input:\n" + "\n".join(f"  - {p}" for p in problems))
    return table


def levels(values: pd.Series) -> list:
    """The sorted levels of a categorical covariate: numerically when every level is a
    number (as R sorts a factor made from numbers), else as text."""
    found = list(values.unique())
    numbers = pd.to_numeric(pd.Series(found, dtype=object), errors="coerce")
    if numbers.notna().all():
        return [level for _, level in sorted(zip(numbers, found, strict=True))]
    return sorted(found)


def covariate_matrix(
    practices: pd.DataFrame, balance: Sequence[str], categorical: Sequence[str] = (),
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The standardised, weighted covariate matrix :math:`z_{jk}` of the module notes.

    Parameters
    ----------
    practices : DataFrame
        One row per practice (:func:`practice_table`).
    balance : sequence of str
        Covariates to balance.
    categorical : sequence of str
        Those of ``balance`` to expand into indicators of every level but the first (sorted).
    weights : sequence of float, optional
        One weight per covariate in ``balance`` (default all 1).

    Returns
    -------
    Z : ndarray (n, p)
        Centred, SD-scaled, weighted columns.
    names : list of str
        Column names: the covariate, or ``covariate[level]`` for an indicator.

    Raises
    ------
    TrialstatsError
        No covariate, a weight count that differs from the covariates, a negative weight, or
        a covariate with one value only (it cannot be balanced and its SD is 0).
    """
    if not balance:
        raise TrialstatsError("constrained randomisation needs covariates to balance "
                              "(--balance COLS).")
    weights = [1.0] * len(balance) if weights is None else [float(w) for w in weights]
    if len(weights) != len(balance):
        raise TrialstatsError(f"{len(weights)} weights given for {len(balance)} balance "
                              f"covariates ({', '.join(balance)}); give one weight each.")
    if any(w < 0 for w in weights):
        raise TrialstatsError("weights must not be negative.")
    columns, names, column_weights = [], [], []
    for name, weight in zip(balance, weights, strict=True):
        values = practices[name]
        if values.nunique() < 2:
            raise TrialstatsError(f"covariate '{name}' takes one value only "
                                  f"({values.iloc[0]!r}) and cannot be balanced; leave it out.")
        if name in categorical:
            for level in levels(values)[1:]:
                columns.append((values == level).to_numpy(dtype=float))
                names.append(f"{name}[{level}]")
                column_weights.append(weight)
        else:
            columns.append(values.to_numpy(dtype=float))
            names.append(name)
            column_weights.append(weight)
    x = np.column_stack(columns)
    z = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1) * np.asarray(column_weights)
    return z, names


def balance_scores(allocations: np.ndarray, z: np.ndarray, metric: str = "l2") -> np.ndarray:
    """Balance score of every allocation (rows of ``allocations``; module notes).

    Parameters
    ----------
    allocations : ndarray (R, n) of bool or 0/1
        One allocation per row, 1 = intervention.
    z : ndarray (n, p)
        :func:`covariate_matrix`.
    metric : {"l2", "l1"}
        Squared or absolute sums.

    Returns
    -------
    ndarray (R,)
    """
    if metric not in METRICS:
        raise TrialstatsError(f"unknown balance metric '{metric}'; choose l2 or l1.")
    sums = np.concatenate([
        allocations[start:start + _CHUNK].astype(np.float64) @ z
        for start in range(0, max(len(allocations), 1), _CHUNK)
    ])
    if metric == "l2":
        return np.einsum("ij,ij->i", sums, sums)
    return np.abs(sums).sum(axis=1)


def balance_table(
    practices: pd.DataFrame, treated: np.ndarray, covariates: Sequence[str],
    categorical: Sequence[str] = (),
) -> pd.DataFrame:
    r"""Practice-level balance of one allocation.

    A numeric covariate gets the arm means and SDs and the standardised difference
    :math:`(\bar x_1 - \bar x_0) / \sqrt{(s_1^2 + s_0^2)/2}`; each level of a categorical
    covariate the proportions of practices and :math:`(p_1 - p_0) / \sqrt{(p_1(1-p_1) +
    p_0(1-p_0))/2}` (Austin 2009). A difference with a zero denominator is NaN.

    Returns
    -------
    DataFrame
        ``covariate, level`` (empty for numeric), ``statistic`` (``mean`` or ``proportion``),
        ``intervention, control`` (mean or proportion), ``sd_intervention, sd_control``
        (numeric only), ``standardised_difference``, ``n_intervention, n_control``.
    """
    treated = np.asarray(treated, dtype=bool)
    rows = []
    counts = {"n_intervention": int(treated.sum()), "n_control": int((~treated).sum())}
    for name in covariates:
        values = practices[name]
        if name in categorical:
            for level in levels(values):
                p1, p0 = (float(np.mean(values[arm] == level)) for arm in (treated, ~treated))
                spread = np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
                rows.append({"covariate": name, "level": level, "statistic": "proportion",
                             "intervention": p1, "control": p0,
                             "standardised_difference": (p1 - p0) / spread if spread else np.nan,
                             **counts})
        else:
            x = values.to_numpy(dtype=float)
            one, zero = x[treated], x[~treated]
            s1, s0 = (np.std(v, ddof=1) if v.size > 1 else np.nan for v in (one, zero))
            spread = np.sqrt((s1**2 + s0**2) / 2)
            rows.append({"covariate": name, "level": "", "statistic": "mean",
                         "intervention": one.mean(), "control": zero.mean(),
                         "sd_intervention": s1, "sd_control": s0,
                         "standardised_difference": (one.mean() - zero.mean()) / spread
                         if spread else np.nan, **counts})
    columns = ["covariate", "level", "statistic", "intervention", "control", "sd_intervention",
               "sd_control", "standardised_difference", "n_intervention", "n_control"]
    return pd.DataFrame(rows, columns=columns)
