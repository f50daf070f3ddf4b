"""Helpers for arrays batched over replicates, shared by the REML kernels.

:mod:`trialstats.analysis.reml` (random cluster intercept) and
:mod:`trialstats.analysis.reml_periods` (cluster and cluster-period intercepts) fit every
replicate of a batch at once from sufficient statistics. Their sums share the shape
properties of :class:`CellSums` (batch shape, design width); their fits and flattened sums
are dataclasses of arrays with the batch axes first (:class:`BatchArrays`: select replicates,
restore the batch shape) sharing the flattened totals (:class:`FlatSums`) and the fit
diagnostics (:class:`FitDiagnostics`); both refuse a rank-deficient fixed-effects design by the
same test (:func:`rank_deficient`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchArrays", "CellSums", "FitDiagnostics", "FlatSums", "rank_deficient"]

# Smallest eigenvalue of the column-scaled X'X below which X is treated as rank deficient.
_RANK_TOL = 1e-12


class CellSums:
    """Mixin for sufficient statistics: ``n`` has the batch axes, then ``_CELL_AXES`` cell axes
    (clusters; clusters x periods), and ``xsum`` ends in the ``p`` fixed-effect columns."""

    _CELL_AXES = 1

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading (replicate) dimensions."""
        return np.shape(self.n)[: -self._CELL_AXES]

    @property
    def n_params(self) -> int:
        """Number of columns ``p`` of the fixed-effects design."""
        return int(np.shape(self.xsum)[-1])


class BatchArrays:
    """Mixin for frozen dataclasses whose fields are arrays sharing leading batch (replicate)
    axes: the fits and flattened sums of :mod:`.reml` and :mod:`.reml_periods`."""

    def take(self, index: np.ndarray) -> BatchArrays:
        """The replicates ``index`` of an instance with one batch axis."""
        return type(self)(**{name: getattr(self, name)[index]
                             for name in self.__dataclass_fields__})

    def reshaped(self, batch: tuple[int, ...]) -> BatchArrays:
        """The one batch axis split into ``batch``; ``batch = ()`` (a single dataset) turns
        the 0-d results into numpy scalars."""
        return type(self)(**{
            name: getattr(self, name).reshape((*batch, *getattr(self, name).shape[1:]))[()]
            for name in self.__dataclass_fields__
        })


@dataclass(frozen=True)
class FlatSums(BatchArrays):
    """Sufficient statistics flattened to one batch axis ``B`` (cells: clusters, or clusters x
    periods), with the whole-data totals.

    Attributes
    ----------
    n, ysum : ndarray, shape (B, *cells)
        Observations and outcome sums per cell.
    xsum : ndarray, shape (B, *cells, p)
        Fixed-effect column sums per cell.
    xtx, xty, yty : ndarray, shapes (B, p, p), (B, p), (B,)
        :math:`X^\\top X`, :math:`X^\\top y` and :math:`y^\\top y` over all observations.
    dof : ndarray, shape (B,)
        :math:`N - p`.
    """

    n: np.ndarray
    ysum: np.ndarray
    xsum: np.ndarray
    xtx: np.ndarray
    xty: np.ndarray
    yty: np.ndarray
    dof: np.ndarray


@dataclass(frozen=True)
class FitDiagnostics(BatchArrays):
    """What every batched REML fit reports besides its estimates.

    Attributes
    ----------
    reml_loglik : ndarray, shape (...)
        Maximised REML log-likelihood, on lme4's scale.
    converged : ndarray of bool, shape (...)
        False when no optimum was found inside the search range or the iteration limit was hit.
    boundary : ndarray of bool, shape (...) or (..., k)
        Which variance components are estimated as exactly 0 (lme4's singular fit).
    n_obs, n_clusters : ndarray of int, shape (...)
        Observations and non-empty clusters.
    """

    reml_loglik: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    n_obs: np.ndarray
    n_clusters: np.ndarray


def rank_deficient(xtx: np.ndarray) -> np.ndarray:
    """Per replicate of ``xtx`` (shape (B, p, p)): True where the fixed-effects design has an
    all-zero column or a smallest eigenvalue of its column-scaled :math:`X^\\top X` below
    ``_RANK_TOL`` (scaling makes the test independent of the columns' units)."""
    scale = np.sqrt(np.diagonal(xtx, axis1=-2, axis2=-1))
    safe = np.where(scale > 0, scale, 1.0)
    smallest = np.linalg.eigvalsh(xtx / (safe[:, :, None] * safe[:, None, :]))[:, 0]
    return np.any(scale == 0, axis=-1) | (smallest < _RANK_TOL)
