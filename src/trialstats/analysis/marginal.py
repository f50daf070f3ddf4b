r"""Marginal risk difference and risk ratio standardised from the random-intercept logistic GLMM.

Model
-----
With the fit of :mod:`trialstats.analysis.glmm`, :math:`\operatorname{logit} P(y_{ij} = 1 \mid
z_j) = x_{ij}^\top\beta + \sigma z_j`, the marginal (population-averaged) risk had every analysed
patient been allocated to arm :math:`a \in \{0, 1\}` is

.. math::

    p_a = \frac1N \sum_{ij} \int \operatorname{expit}\{x_{ij}(a)^\top\beta + \sigma z\}\,
          \phi(z)\, dz ,

where :math:`x_{ij}(a)` is the patient's covariate row with the arm column set to :math:`a`
(standardisation over the covariates of both arms together; the integral over the random
intercept makes it marginal, not conditional on :math:`z_j = 0`). The risk difference is
:math:`p_1 - p_0` and the risk ratio :math:`p_1 / p_0`, handled on the log scale. The integral
uses a fixed Gauss-Hermite rule of :data:`N_NODES` nodes (the integrand is smooth and bounded).

Variance
--------
Delta method with the inverse observed information over :math:`(\beta, \sigma)` of the GLMM
(``GlmmFit.cov``), so the uncertainty of :math:`\hat\sigma` is carried:
:math:`\partial p_a / \partial\beta = N^{-1}\sum \int p(1-p)\, x_{ij}(a)\, \phi`,
:math:`\partial p_a / \partial\sigma = N^{-1}\sum \int p(1-p)\, z\, \phi`. At :math:`\hat\sigma = 0`
the latter vanishes, so a boundary fit needs no variance for :math:`\sigma`.

Why this method
---------------
CONSORT 2010 (item 17b) asks for an absolute and a relative effect beside the odds ratio. Fitting
identity- or log-link binomial models directly (GEE or GLMM) often fails: the fitted risks must
stay in (0, 1), and ``glm``/``geeglm`` stop with "cannot find valid starting values" or do not
converge, especially with rare outcomes. Standardisation needs no further fitting: once the
logistic GLMM is fitted (boundary fits included) the marginal risks, their
contrasts and their delta-method intervals exist, the contrasts are the
population-averaged effects that RD and RR are meant to be, and they come from the same model and
the same information as the odds ratio (Austin 2010, *Stat. Med.* 29:1030 on marginal effects from
GLMMs; Localio, Margolis & Berlin 2007, *J. Clin. Epidemiol.* 60:874 on adjusted risk
differences and ratios from logistic models).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

from trialstats.analysis.glmm import GlmmFit
from trialstats.analysis.glmm_likelihood import normal_rule
from trialstats.errors import TrialstatsError

__all__ = ["N_NODES", "marginal_effects", "marginal_risks"]

N_NODES = 64


def marginal_risks(fit: GlmmFit, X: np.ndarray, arm_column: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised marginal risks and their gradients in :math:`(\\beta, \\sigma)`.

    Parameters
    ----------
    fit : GlmmFit
        One binomial fit (no replicate dimension).
    X : array_like, shape (N, p)
        The design the fit used (any row order).
    arm_column : int
        Column of ``X`` holding the 0/1 arm indicator.

    Returns
    -------
    risks : ndarray, shape (2,)
        :math:`p_0, p_1`.
    gradient : ndarray, shape (2, p + 1)
        Their derivatives with respect to :math:`(\\beta, \\sigma)`.
    """
    if fit.family != "binomial" or np.ndim(fit.sigma) != 0:
        raise TrialstatsError("Marginal risks need one binomial GLMM fit.")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != fit.beta.shape[0] or not 0 <= arm_column < X.shape[1]:
        raise TrialstatsError("X and arm_column do not match the fitted model.")
    t, w = normal_rule(N_NODES)
    risks, grads = [], []
    for arm in (0.0, 1.0):
        Xa = X.copy()
        Xa[:, arm_column] = arm
        p = special.expit((Xa @ fit.beta)[:, None] + float(fit.sigma) * t)
        v = p * (1.0 - p) * w
        risks.append(np.mean(p @ w))
        grads.append(np.r_[v.sum(axis=1) @ Xa, np.sum(v @ t)] / X.shape[0])
    return np.array(risks), np.array(grads)


def marginal_effects(
    fit: GlmmFit, X: np.ndarray, arm_column: int, *, level: float = 0.95, df: float | None = None
) -> pd.DataFrame:
    """Marginal risk difference and risk ratio (intervention arm 1 vs control arm 0) with CIs.

    Parameters
    ----------
    fit, X, arm_column
        As :func:`marginal_risks`.
    level : float, default 0.95
        Confidence level.
    df : float, optional
        Degrees of freedom of a t reference distribution (e.g. between-within); normal if None.

    Returns
    -------
    pandas.DataFrame
        Two rows, ``effect_measure`` ``risk difference`` and ``risk ratio``, with columns
        ``estimate`` (the difference, or the ratio), ``se`` (of the difference, or of the log
        ratio), ``ci_low``, ``ci_high`` (ratios for the risk ratio), ``risk_control`` and
        ``risk_intervention`` (:math:`p_0, p_1`).
    """
    if not 0.0 < level < 1.0:
        raise TrialstatsError(f"level must be between 0 and 1, got {level}.")
    risks, grads = marginal_risks(fit, X, arm_column)
    p = fit.beta.shape[0]
    cov = fit.cov[: p + 1, : p + 1]
    g_rd = grads[1] - grads[0]
    g_lrr = grads[1] / risks[1] - grads[0] / risks[0]
    se_rd, se_lrr = np.sqrt(g_rd @ cov @ g_rd), np.sqrt(g_lrr @ cov @ g_lrr)
    q = (stats.norm if df is None else stats.t(df)).ppf(0.5 + level / 2.0)
    rd, lrr = risks[1] - risks[0], np.log(risks[1] / risks[0])
    return pd.DataFrame(
        {
            "effect_measure": ["risk difference", "risk ratio"],
            "estimate": [rd, np.exp(lrr)],
            "se": [se_rd, se_lrr],
            "ci_low": [rd - q * se_rd, np.exp(lrr - q * se_lrr)],
            "ci_high": [rd + q * se_rd, np.exp(lrr + q * se_lrr)],
            "risk_control": risks[0],
            "risk_intervention": risks[1],
        }
    )
