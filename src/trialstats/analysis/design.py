"""Building the analysis model's data: response, design matrix, clusters, exclusions.

For outcome *k* at follow-up month *t* the primary model is

.. math:: y_{ij,t} = \\beta_0 + \\beta_1 T_j + \\beta_2 y_{ij,0} + x_{ij}'\\gamma + b_j + e_{ij},

with :math:`T_j` the intervention indicator of cluster *j*, :math:`y_{ij,0}` the baseline
score, :math:`x_{ij}` the configured covariates (text covariates as treatment-coded dummies,
reference = first level in sorted order), :math:`b_j \\sim N(0, \\sigma_b^2)` and
:math:`e_{ij} \\sim N(0, \\sigma_e^2)`. Patients with the follow-up score, the baseline score and
every covariate observed are analysed; the others are counted by reason. An outcome without a
baseline measurement (``baseline: false``) drops the :math:`\\beta_2 y_{ij,0}` term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trialstats.data.validate import TREATED, outcome_column

INTERCEPT = "(Intercept)"


@dataclass(frozen=True)
class ModelData:
    """The arrays of one model fit.

    Attributes
    ----------
    y : ndarray (n,)
        Follow-up scores of the analysed patients.
    X : ndarray (n, p)
        Design matrix; columns named in ``columns``.
    columns : tuple of str
        ``(Intercept)``, ``treated``, the baseline column, then covariate columns.
    cluster_codes : ndarray (n,)
        Cluster of each row as 0..J−1.
    cluster_ids : tuple of str
        The cluster id of each code.
    excluded : dict
        Reason → number of patients excluded for it (first reason that applies).
    n_randomised : int
        Patients in the input table.
    offset : ndarray (n,)
        Log exposure of each analysed patient (count outcomes with an ``exposure`` column;
        zeros otherwise).
    """

    y: np.ndarray
    X: np.ndarray
    columns: tuple[str, ...]
    cluster_codes: np.ndarray
    cluster_ids: tuple[str, ...]
    excluded: dict[str, int]
    n_randomised: int
    offset: np.ndarray | None = None

    @property
    def n_clusters(self) -> int:
        """Clusters with at least one analysed patient."""
        return len(self.cluster_ids)

    def exclusion_note(self) -> str:
        """One sentence counting the excluded patients by reason ("" when none)."""
        return exclusion_note(self.excluded, self.n_randomised)


def exclusion_note(excluded: dict[str, int], n_randomised: int) -> str:
    """One sentence counting excluded patients by reason ("" when none are excluded)."""
    total = sum(excluded.values())
    if total == 0:
        return ""
    reasons = ", ".join(f"{n:,} {reason}" for reason, n in excluded.items() if n)
    return f"excluded {total:,} of {n_randomised:,} patients: {reasons}"


def complete_rows(
    index: pd.Index, reasons: list[tuple[str, pd.Series]]
) -> tuple[pd.Series, dict[str, int]]:
    """The rows of ``index`` missing none of the ``(reason, missing mask)`` pairs, and the
    number of rows excluded for each reason: the first reason that applies, in the order
    given (:func:`exclusion_note` words them)."""
    keep = pd.Series(True, index=index)
    excluded = {}
    for reason, missing in reasons:
        excluded[reason] = int((keep & missing).sum())
        keep &= ~missing
    return keep, excluded


def _covariate_matrix(values: pd.Series, name: str) -> pd.DataFrame:
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float).to_frame(name)
    levels = sorted(values.dropna().unique())
    return pd.DataFrame(
        {f"{name}[{level}]": (values == level).astype(float) for level in levels[1:]},
        index=values.index,
    )


def model_data(
    patients: pd.DataFrame,
    outcome: str,
    month: int,
    *,
    cluster: str,
    baseline_month: int | None,
    covariates: list[str],
    exposure: str | None = None,
) -> ModelData:
    """Assemble the baseline-adjusted model for ``outcome`` at ``month``.

    Parameters
    ----------
    patients : DataFrame
        Validated patients (``treated`` column, float outcomes, typed covariates).
    outcome, month : str, int
        Outcome stem and follow-up month.
    cluster : str
        Cluster id column.
    baseline_month : int or None
        Month of the baseline score adjusted for; None: no baseline term.
    covariates : list of str
        Further adjustment columns.
    exposure : str, optional
        Column of positive exposures whose log is the offset (count outcomes); patients
        without it are excluded.
    """
    response = outcome_column(outcome, month)
    baseline = None if baseline_month is None else outcome_column(outcome, baseline_month)
    keep, excluded = complete_rows(patients.index, [
        (f"without {response}", patients[response].isna()),
        *([(f"without {baseline}", patients[baseline].isna())] if baseline else []),
        *[(f"without {c}", patients[c].isna()) for c in covariates],
        *([(f"without {exposure}", patients[exposure].isna())] if exposure else []),
    ])
    rows = patients.loc[keep]
    blocks = [
        pd.DataFrame({INTERCEPT: 1.0, TREATED: rows[TREATED].astype(float),
                      **({baseline: rows[baseline]} if baseline else {})}, index=rows.index),
        *[_covariate_matrix(rows[c], c) for c in covariates],
    ]
    design = pd.concat(blocks, axis=1)
    codes, ids = pd.factorize(rows[cluster], sort=True)
    return ModelData(
        y=rows[response].to_numpy(dtype=float),
        X=design.to_numpy(dtype=float),
        columns=tuple(design.columns),
        cluster_codes=codes.astype(np.intp),
        cluster_ids=tuple(str(i) for i in ids),
        excluded=excluded,
        n_randomised=len(patients),
        offset=(np.log(rows[exposure].to_numpy(dtype=float)) if exposure
                else np.zeros(len(rows))),
    )

