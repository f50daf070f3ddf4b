"""The output contract: the tidy result tables, their vocabularies, and how they are read.

Every analysis writes rows of :data:`COLUMNS` (``primary.csv``) or :data:`SENSITIVITY_COLUMNS`
(``sensitivity.csv``: the same plus ``analysis``), one row per outcome x month x method
(x analysis) x ``effect_measure``. ``estimate`` is the intervention - control contrast
measured as :data:`EFFECT_MEASURES` says (a ratio for :data:`RATIO_MEASURES`, whose ``se`` is
that of the log ratio); its inference is
``se``, ``df``, ``ci_low``/``ci_high`` and ``p_value``; ``effect_size = estimate /
sd_baseline`` with ``es_ci_*`` its interval; ``mcid_verdict`` one of :data:`MCID_VERDICTS`.
The words a row may hold in ``method`` (:data:`DF_METHODS`, :data:`GLMM_DF_METHODS`,
:data:`CLUSTER_DF`, :data:`BELL_MCCAFFREY`, :data:`FAY_GRAUBARD_DF`) and in ``analysis``
(the labels below) are defined here once, as is the ``effect_measure`` vocabulary
(:data:`EFFECT_MEASURES`). Tables are written by :func:`write_tidy` and read back by
:func:`read_tidy`, so every reader parses them alike (empty cell = missing, every other text
kept as written, floats round-trip exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from trialstats.data.io import write_csv
from trialstats.errors import TrialstatsError

__all__ = [
    "ADJUSTED",
    "BELL_MCCAFFREY",
    "CLUSTER_DF",
    "COLUMNS",
    "CR2",
    "DF_METHODS",
    "EFFECT_MEASURES",
    "FAY_GRAUBARD",
    "FAY_GRAUBARD_DF",
    "GLMM_DF_METHODS",
    "KAUERMANN_CARROLL",
    "MANCL_DEROUEN",
    "MCID_VERDICTS",
    "MEAN_DIFFERENCE",
    "ODDS_RATIO",
    "RATE_RATIO",
    "RATIO_MEASURES",
    "REPEATED_MEASURES",
    "RISK_DIFFERENCE",
    "RISK_RATIO",
    "SENSITIVITY_COLUMNS",
    "SIMULATION_DF_METHODS",
    "UNADJUSTED",
    "check_columns",
    "imputation_label",
    "primary_method",
    "read_tidy",
    "subgroup_interaction_label",
    "subgroup_label",
    "write_tidy",
]

#: Columns of ``primary.csv``, in order.
COLUMNS = (
    "outcome", "month", "method", "effect_measure", "n_patients", "n_clusters", "estimate", "se",
    "df", "ci_low", "ci_high", "p_value", "var_cluster", "var_residual", "icc", "icc_ci_low",
    "icc_ci_high", "sd_baseline", "effect_size", "es_ci_low", "es_ci_high", "mcid",
    "mcid_verdict", "converged", "notes",
)
#: Columns of ``sensitivity.csv``: the primary columns plus the analysis label.
SENSITIVITY_COLUMNS = (*COLUMNS, "analysis")

#: Denominator-df methods of the mixed-model t test (``analysis.df_method``), in the order
#: the default configuration reports them.
DF_METHODS = ("kenward-roger", "satterthwaite", "between-within", "residual")
#: The df methods of simulated trials: those of the analysis plus the Wald z test.
SIMULATION_DF_METHODS = (*DF_METHODS, "z")
#: Reference distributions of the GLMM tests of binary and count outcomes
#: (``analysis.glmm_df_method``; ``z`` is the Wald normal test).
GLMM_DF_METHODS = ("between-within", "z", "residual")
#: ``method`` of tests on the practice (cluster) df J - 2.
CLUSTER_DF = "J-2"
#: ``method`` of the CR2 test (Bell-McCaffrey df).
BELL_MCCAFFREY = "bell-mccaffrey"
#: ``method`` of the Fay-Graubard GEE test (their df d~_H, saws' method "d5").
FAY_GRAUBARD_DF = "fay-graubard"

#: ``mcid_verdict`` values (empty when there is no MCID or no interval).
MCID_VERDICTS = (
    "important benefit shown", "important harm shown", "important effect ruled out",
    "inconclusive",
)

#: ``effect_measure`` values (DESIGN.md, contract additions): what ``estimate`` is.
MEAN_DIFFERENCE = "mean difference"
ODDS_RATIO = "odds ratio"
RISK_DIFFERENCE = "risk difference"
RISK_RATIO = "risk ratio"
RATE_RATIO = "rate ratio"
EFFECT_MEASURES = (MEAN_DIFFERENCE, ODDS_RATIO, RISK_DIFFERENCE, RISK_RATIO, RATE_RATIO)
#: Measures whose ``estimate``/``ci_*`` are ratios and whose ``se`` is that of the log ratio.
RATIO_MEASURES = (ODDS_RATIO, RISK_RATIO, RATE_RATIO)

#: ``analysis`` labels of the sensitivity analyses.
ADJUSTED = "cluster-level (Hayes & Moulton)"
UNADJUSTED = "cluster-level, unadjusted practice means"
MANCL_DEROUEN = "GEE (Mancl-DeRouen)"
KAUERMANN_CARROLL = "GEE (Kauermann-Carroll)"
FAY_GRAUBARD = "GEE (Fay-Graubard)"
CR2 = "CR2 (Bell-McCaffrey)"
REPEATED_MEASURES = "repeated measures"


def primary_method(config: dict, outcome: dict) -> str:
    """The primary ``method`` of an outcome's rows: the first of ``analysis.glmm_df_method``
    (default between-within) for binary and count outcomes, of ``analysis.df_method``
    otherwise."""
    analysis = config["analysis"]
    if outcome.get("type", "continuous") == "continuous":
        return analysis["df_method"][0]
    return analysis.get("glmm_df_method", GLMM_DF_METHODS)[0]


def imputation_label(imputations: int) -> str:
    """``analysis`` label of multiple imputation with ``imputations`` datasets."""
    return f"multiple imputation (m={imputations})"


def subgroup_interaction_label(variable: str) -> str:
    """``analysis`` label of the arm x ``variable`` interaction test."""
    return f"subgroup interaction: arm x {variable} (exploratory)"


def subgroup_label(level: object) -> str:
    """``analysis`` label of the effect within the subgroup ``level``."""
    return f"subgroup: {level} (exploratory)"


def check_columns(
    table: pd.DataFrame, source: str, required: Sequence[str], hint: str = ""
) -> None:
    """Raise a user-facing error naming the ``required`` columns ``table`` lacks.

    The message ends with ``hint`` (e.g. which command writes the table) when given, else
    with the columns the table has.
    """
    absent = [c for c in required if c not in table.columns]
    if absent:
        ending = hint or f"the file has: {', '.join(table.columns)}"
        raise TrialstatsError(
            f"{source}: required column{'s' if len(absent) > 1 else ''} "
            f"{', '.join(absent)} not found; {ending}."
        )


def write_tidy(table: pd.DataFrame, path: str | Path) -> None:
    """Write a tidy result table as CSV (floats round-trip exactly), atomically."""
    write_csv(table, path)


def read_tidy(
    path: str | Path, *, columns: Sequence[str] = (), missing: str = "run the analysis first"
) -> pd.DataFrame:
    """Read a tidy result table written by :func:`write_tidy`.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    columns : sequence of str
        Columns the table must have (e.g. :data:`COLUMNS`).
    missing : str
        What the user should do when the file does not exist, for the message.

    Returns
    -------
    pandas.DataFrame
        Empty cells are missing values; every other text is kept as written (a note reading
        "NA" stays "NA"); floats read back exactly as written.

    Raises
    ------
    TrialstatsError
        When the file does not exist, cannot be parsed as CSV or lacks a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise TrialstatsError(f"{path}: file not found; {missing}.")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TrialstatsError(f"{path}: cannot be read as CSV ({exc}).") from None
    check_columns(table, str(path), columns)
    return table
