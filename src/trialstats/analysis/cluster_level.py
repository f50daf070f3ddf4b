r"""Cluster-level (two-stage) analysis.

Two-stage covariate-adjusted analysis
-------------------------------------
After Hayes & Moulton (2017, *Cluster Randomised Trials*, 2nd ed., ch. 9, adjustment by
residuals). Stage 1 fits, ignoring arm, the individual-level regression of the follow-up
score on the baseline score and the covariates by ordinary least squares,

.. math:: y_{ij} = \alpha_0 + \alpha_1 y^{(0)}_{ij} + x_{ij}^\top\gamma + \varepsilon_{ij},

and stage 2 averages the residuals :math:`e_{ij} = y_{ij} - \hat y_{ij}` within each practice,
:math:`\bar e_j = n_j^{-1}\sum_i e_{ij}`, and compares those practice means between the arms
with the two-sample *t* test (pooled variance, practices weighted equally):

.. math::

    \hat\delta = \bar e_{(1)} - \bar e_{(0)}, \qquad
    \mathrm{SE} = s_p \sqrt{1/J_1 + 1/J_0}, \qquad \nu = J - 2,

with :math:`\bar e_{(a)}` the mean of the practice means in arm *a*, :math:`J_a` practices in
arm *a* and :math:`s_p^2` the pooled within-arm variance of the practice means. The unadjusted
analysis is the same test on the practice means of the follow-up score itself. Both use the
primary analysis population (follow-up, baseline and covariates observed), so that the two
rows differ only by the adjustment. The test is exact under normality of the practice means
whatever the within-practice correlation, at the price of ignoring the unequal precision of
practice means from unequal practice sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.design import INTERCEPT
from trialstats.analysis.rows import each_outcome_month, join_notes, primary_population, t_row
from trialstats.contract import ADJUSTED, CLUSTER_DF, UNADJUSTED
from trialstats.data.validate import TREATED


def practice_t_test(values: np.ndarray, treated: np.ndarray) -> tuple[float, float, float]:
    """Pooled-variance two-sample *t* test of practice-level values, intervention − control.

    Returns
    -------
    estimate, se, df : float
    """
    one, zero = values[treated == 1], values[treated == 0]
    df = one.size + zero.size - 2
    pooled = (np.sum((one - one.mean()) ** 2) + np.sum((zero - zero.mean()) ** 2)) / df
    se = np.sqrt(pooled * (1 / one.size + 1 / zero.size))
    return float(one.mean() - zero.mean()), float(se), float(df)


def _outcome_rows(
    patients: pd.DataFrame, outcome: dict[str, Any], month: int, config: dict[str, Any]
) -> list[dict[str, Any]]:
    population = primary_population(patients, outcome, month, config)
    data, exclusions, problem = population.data, population.exclusions, population.problem
    base = {**population.base, "method": CLUSTER_DF}
    if problem:
        return [{**base, "analysis": label, "converged": False,
                 "notes": join_notes(problem, exclusions)} for label in (ADJUSTED, UNADJUSTED)]
    # stage 1: arm left out of the individual-level regression
    keep = [k for k, name in enumerate(data.columns) if name != TREATED]
    coef, *_ = np.linalg.lstsq(data.X[:, keep], data.y, rcond=None)
    residual = data.y - data.X[:, keep] @ coef
    sizes = np.bincount(data.cluster_codes, minlength=data.n_clusters)
    treated = np.bincount(data.cluster_codes, data.X[:, data.columns.index(TREATED)],
                          minlength=data.n_clusters) / sizes
    covariate_names = [c for c in data.columns if c not in (INTERCEPT, TREATED)]
    rows = []
    for label, values, how in [
        (ADJUSTED, residual, "practice means of residuals from the OLS regression of the "
                             f"follow-up on {', '.join(covariate_names)} (arm left out)"),
        (UNADJUSTED, data.y, "practice means of the follow-up score"),
    ]:
        means = np.bincount(data.cluster_codes, values, minlength=data.n_clusters) / sizes
        estimate, se, df = practice_t_test(means, treated)
        note = (f"two-sample t test (pooled variance) of {how}, practices weighted equally, "
                f"on J - 2 = {df:.0f} df")
        rows.append(t_row(
            {**base, "analysis": label, "converged": True,
             "notes": join_notes(exclusions, note)},
            estimate=estimate, se=se, df=df, alpha=config["analysis"]["alpha"],
            higher_is_better=outcome["higher_is_better"],
        ))
    return rows


def cluster_level_analysis(
    patients: pd.DataFrame, config: dict[str, Any], outcomes: list[str] | None = None
) -> pd.DataFrame:
    """Two-stage cluster-level analysis of every outcome at every follow-up month.

    An :data:`~trialstats.analysis.sensitivity.Analysis`.

    Returns
    -------
    DataFrame
        :data:`~trialstats.contract.SENSITIVITY_COLUMNS`; per outcome and month one row ``analysis =
        "cluster-level (Hayes & Moulton)"`` (covariate-adjusted residuals, see the module
        notes) and one ``"cluster-level, unadjusted practice means"``. ``method`` is ``J-2``;
        ``estimate``/``se``/``df``/``ci_*``/``p_value`` are the practice-level *t* test;
        ``effect_size``/``es_ci_*``/``mcid``/``mcid_verdict`` as in the primary analysis;
        variance components and ICC are NaN; ``notes`` count the exclusions and describe the
        test.
    """
    return each_outcome_month(patients, config, outcomes, _outcome_rows)
