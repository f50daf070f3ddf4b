"""Design effects for two-arm parallel cluster-randomised trials.

Notation used throughout :mod:`trialstats.power`:

* ``m`` — mean number of analysed participants per cluster,
* ``cv`` — coefficient of variation of the cluster sizes (SD / mean),
* ``rho`` — intracluster correlation coefficient (ICC) of the outcome,
* ``rho_c`` — cluster autocorrelation: correlation between a cluster's true
  baseline and follow-up means,
* ``rho_s`` — subject autocorrelation: correlation between a participant's
  baseline and follow-up deviations from their cluster mean.

The variance of the estimated difference in means, relative to an
individually randomised trial of the same total size, is the product of the
clustering design effect (:func:`design_effect`) and, when the baseline value
of the outcome is used, a baseline factor (:func:`baseline_factor`).

All functions are pure and broadcast over numpy arrays.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from trialstats.errors import TrialstatsError

BASELINE_METHODS = ("none", "ancova", "change")


def design_effect(cluster_size: ArrayLike, icc: ArrayLike, cv: ArrayLike = 0.0) -> np.ndarray:
    """Design effect for clustering with possibly unequal cluster sizes.

    Parameters
    ----------
    cluster_size : array_like
        Mean number of analysed participants per cluster, ``m`` (> 0).
    icc : array_like
        Intracluster correlation coefficient, ``rho`` in [0, 1).
    cv : array_like, default 0
        Coefficient of variation of cluster size (>= 0); 0 means equal sizes.

    Returns
    -------
    numpy.ndarray
        ``1 + ((cv**2 + 1) * m - 1) * rho``, broadcast over the inputs.

    Notes
    -----
    With ``cv = 0`` this is the familiar ``1 + (m - 1) rho`` (Donner, Birkett &
    Buck 1981; Donner & Klar 2000). The allowance for unequal cluster sizes is
    equation (2) of Eldridge SM, Ashby D, Kerry S (2006) Sample size for
    cluster randomized trials: effect of coefficient of variation of cluster
    size and analysis method. Int J Epidemiol 35:1292-1300; it is exact for a
    cluster-level analysis weighted by cluster size and conservative for
    mixed-model (minimum-variance weighted) analyses.
    """
    m, rho = _size_and_icc(cluster_size, icc)
    cv_ = np.asarray(cv, dtype=float)
    if np.any(cv_ < 0):
        raise TrialstatsError("The coefficient of variation of cluster size must be >= 0.")
    return 1.0 + ((cv_**2 + 1.0) * m - 1.0) * rho


def baseline_correlation(
    cluster_size: ArrayLike, icc: ArrayLike, rho_c: ArrayLike, rho_s: ArrayLike
) -> np.ndarray:
    """Correlation between baseline and follow-up cluster means.

    Parameters
    ----------
    cluster_size, icc : array_like
        As in :func:`design_effect`.
    rho_c : array_like
        Cluster autocorrelation in [-1, 1].
    rho_s : array_like
        Subject autocorrelation in [-1, 1]; 0 for a cross-sectional design
        (different participants measured at baseline and follow-up).

    Returns
    -------
    numpy.ndarray
        ``r = (m * rho * rho_c + (1 - rho) * rho_s) / (1 + (m - 1) * rho)``.

    Notes
    -----
    Teerenstra S, Eldridge S, Graff M, de Hoop E, Borm GF (2012) A simple
    sample size formula for analysis of covariance in cluster randomized
    trials. Stat Med 31:2169-2178, section 3. ``r`` tends to ``rho_c`` as the
    cluster size grows and equals ``rho_s`` when ``rho = 0``; with ``m = 1`` it
    is the participant-level correlation ``rho * rho_c + (1 - rho) * rho_s``.
    """
    m, rho = _size_and_icc(cluster_size, icc)
    rc = np.asarray(rho_c, dtype=float)
    rs = np.asarray(rho_s, dtype=float)
    if np.any(np.abs(rc) > 1) or np.any(np.abs(rs) > 1):
        raise TrialstatsError("Cluster and subject autocorrelations must lie in [-1, 1].")
    return (m * rho * rc + (1.0 - rho) * rs) / (1.0 + (m - 1.0) * rho)


def baseline_factor(
    cluster_size: ArrayLike, icc: ArrayLike, rho_c: ArrayLike, rho_s: ArrayLike,
    method: str = "ancova",
) -> np.ndarray:
    """Variance multiplier for using the baseline value of the outcome.

    Parameters
    ----------
    cluster_size, icc, rho_c, rho_s : array_like
        As in :func:`baseline_correlation`.
    method : {"ancova", "change", "none"}, default "ancova"
        ``"ancova"``: follow-up adjusted for baseline, factor ``1 - r**2``.
        ``"change"``: analysis of change from baseline (difference in
        differences), factor ``2 * (1 - r)``. ``"none"``: factor 1.

    Returns
    -------
    numpy.ndarray
        The factor by which the variance of the follow-up-only analysis is
        multiplied, broadcast over the inputs.

    Notes
    -----
    Both factors are from Teerenstra et al. (2012), Stat Med 31:2169-2178,
    with ``r`` from :func:`baseline_correlation`; the change-score factor is
    also the one used by Rutterford C, Copas A, Eldridge S (2015) Methods for
    sample size determination in cluster randomized trials. Int J Epidemiol
    44:1051-1067.
    """
    if method not in BASELINE_METHODS:
        raise TrialstatsError(
            f"Unknown baseline method {method!r}; choose one of {', '.join(BASELINE_METHODS)}."
        )
    r = baseline_correlation(cluster_size, icc, rho_c, rho_s)
    if method == "ancova":
        return 1.0 - r**2
    if method == "change":
        return 2.0 * (1.0 - r)
    return np.ones_like(r)


def _size_and_icc(cluster_size: ArrayLike, icc: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``m`` and ``rho`` as float arrays; TrialstatsError unless ``m > 0`` and ``0 <= rho < 1``."""
    m = np.asarray(cluster_size, dtype=float)
    rho = np.asarray(icc, dtype=float)
    if np.any(rho < 0) or np.any(rho >= 1):
        raise TrialstatsError("The intracluster correlation (ICC) must lie in [0, 1).")
    if np.any(m <= 0):
        raise TrialstatsError("Cluster size must be positive.")
    return m, rho
