r"""Trials allocated by covariate-constrained randomisation: permutation-test validity and power.

Allocation
----------
A simulated trial's ``J`` practices carry a cluster-level covariate :math:`x_j \sim N(0, 1)`
(and, for the validity study, a binary one), drawn afresh for every trial. The trial's
allocation of ``k_i`` practices to the intervention is drawn as ``trialstats allocate
--method constrained`` draws it: every allocation of the randomisation space (all
:math:`\binom{J}{k_i}` when there are at most :data:`MAX_SPACE`, otherwise a uniform sample
of ``sample`` of them, drawn once per scenario) gets its standardised l2 balance score
(:func:`trialstats.allocation.balance.balance_scores`), the best fraction ``cutoff`` is kept
(:func:`trialstats.allocation.constrained.accepted_indices`) and one accepted allocation is
drawn uniformly. ``cutoff = 1`` accepts every allocation: simple randomisation with fixed arm
sizes.

Validity of the permutation test (:func:`permutation_validity`)
-----------------------------------------------------------------
A scenario like those of Li et al. (2016, *Stat Med* 35:1565): ``J`` practices with
:math:`x_{1j} \sim N(0, 1)` and :math:`x_{2j} \sim \mathrm{Bernoulli}(0.5)`, sizes uniform on
10..40 patients, the best 10% of allocations balancing both, and outcomes without an
intervention effect,

.. math::

    \text{continuous: } y_{ij} = x_{1j} + 0.5 x_{2j} + u_j + e_{ij},\quad
        u_j \sim N(0, 0.05),\ e_{ij} \sim N(0, 0.95); \\
    \text{binary: } \operatorname{logit} P(y_{ij} = 1) = -0.5 + 0.5 x_{1j} + 0.5 x_{2j} + u_j,
        \quad u_j \sim N(0, 0.2).

Each trial is tested by the clustered permutation test over its accepted allocations,
adjusted for both covariates (:mod:`trialstats.analysis.permutation`), rejecting at
:math:`p \le \alpha`. The test is exact by construction when the trial's allocation is drawn
from the set it is permuted over, so the rejection rate must lie in the band
:data:`trialstats.simulation.validity.SIZE_BAND` (the discreteness of p puts the exact size a
little under :math:`\alpha`: 64/1287 = 0.0497 for J = 16).

Random numbers
--------------
Trial ``r`` of a validity cell draws from ``SeedSequence([seed, J, binary]).spawn(trials)[r]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from trialstats.allocation.balance import balance_scores, covariate_matrix
from trialstats.allocation.constrained import (
    accepted_indices,
    enumerate_allocations,
    sample_allocations,
)
from trialstats.analysis.design import ModelData
from trialstats.analysis.permutation import (
    arm_differences,
    permutation_p_value,
    practice_residuals,
)
from trialstats.errors import TrialstatsError
from trialstats.simulation.validity import SIZE_BAND

__all__ = [
    "MAX_SPACE",
    "PERMUTATION_CELLS",
    "PERMUTATION_COLUMNS",
    "permutation_validity",
]

#: Largest randomisation space enumerated for a simulated trial; beyond it a sample is scored.
MAX_SPACE = 200_000
#: Cells of the permutation-test validity study: practices, outcome, allocations sampled
#: (``None``: the whole space is enumerated).
PERMUTATION_CELLS: tuple[tuple[int, str, int | None], ...] = (
    (16, "continuous", None),
    (16, "binary", None),
)
#: Columns of the permutation-test validity table, in order.
PERMUTATION_COLUMNS = (
    "analysis", "n_clusters", "outcome", "space", "cutoff", "alpha", "trials", "type_i_error",
    "type_i_error_mc_se", "within_band", "seed",
)
#: ``analysis`` label of the permutation test's rows.
LABEL = "clustered permutation test, constrained randomisation"
_CUTOFF = 0.1


def _validity_trial(rng: np.random.Generator, practices: int, binary: bool,
                    space: np.ndarray | None, sample: int | None) -> float:
    """The permutation p-value of one null trial of the validity study (module notes)."""
    x1 = rng.normal(size=practices)
    x2 = (rng.random(practices) < 0.5).astype(float)
    if x2.min() == x2.max():
        x2[0] = 1 - x2[0]
    z, _ = covariate_matrix(pd.DataFrame({"x1": x1, "x2": x2}), ["x1", "x2"])
    allocations = space if sample is None else sample_allocations(
        practices, practices // 2, sample, rng)
    accepted = allocations[accepted_indices(balance_scores(allocations, z), cutoff=_CUTOFF)]
    observed = accepted[rng.integers(len(accepted))]
    sizes = rng.integers(10, 41, size=practices)
    codes = np.repeat(np.arange(practices), sizes)
    if binary:
        u = rng.normal(0, np.sqrt(0.2), practices)
        eta = -0.5 + 0.5 * x1[codes] + 0.5 * x2[codes] + u[codes]
        y = (rng.random(codes.size) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        u = rng.normal(0, np.sqrt(0.05), practices)
        y = x1[codes] + 0.5 * x2[codes] + u[codes] + rng.normal(0, np.sqrt(0.95), codes.size)
    x = np.column_stack([np.ones(codes.size), observed[codes], x1[codes], x2[codes]])
    data = ModelData(y=y, X=x, columns=("(Intercept)", "treated", "x1", "x2"),
                     cluster_codes=codes, cluster_ids=tuple(map(str, range(practices))),
                     excluded={}, n_randomised=codes.size)
    residuals, _, treated = practice_residuals(data, binary)
    d = arm_differences(residuals, accepted)
    d_obs = float(arm_differences(residuals, treated[None, :])[0])
    return permutation_p_value(d, np.zeros_like(d), d_obs, 0.0)


def permutation_validity(
    *, trials: int, seed: int, cells: Sequence[tuple[int, str, int | None]] = PERMUTATION_CELLS,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Type I error of the clustered permutation test on constrained designs (module notes).

    Parameters
    ----------
    trials : int
        Null trials per cell (>= 2).
    seed : int
        Base seed.
    cells : sequence of (int, str, int or None)
        Practices (even, >= 4), outcome (``"continuous"`` or ``"binary"``) and the number of
        allocations sampled per trial (``None``: all enumerated).
    alpha : float, default 0.05
        Level of the test.

    Returns
    -------
    pandas.DataFrame
        One row per cell, columns :data:`PERMUTATION_COLUMNS`: ``analysis``, ``n_clusters``,
        ``outcome``, ``space`` (``"all"`` or the number sampled), ``cutoff`` (fraction of
        allocations accepted), ``alpha``, ``trials``, ``type_i_error`` (share of trials with
        p <= alpha), ``type_i_error_mc_se``, ``within_band`` (inside
        :data:`~trialstats.simulation.validity.SIZE_BAND`) and ``seed``.
    """
    if trials < 2:
        raise TrialstatsError("The permutation-test validity study needs at least two trials.")
    rows = []
    for practices, outcome, sample in cells:
        if practices % 2 or practices < 4 or outcome not in ("continuous", "binary"):
            raise TrialstatsError(
                f"A permutation validity cell needs an even number of practices (>= 4) and a "
                f"continuous or binary outcome; got {practices}, {outcome!r}.")
        binary = outcome == "binary"
        space = enumerate_allocations(practices, practices // 2) if sample is None else None
        streams = np.random.SeedSequence([seed, practices, binary]).spawn(trials)
        p = np.array([_validity_trial(np.random.default_rng(s), practices, binary, space, sample)
                      for s in streams])
        rate = float(np.mean(p <= alpha))
        rows.append({
            "analysis": LABEL, "n_clusters": practices, "outcome": outcome,
            "space": "all" if sample is None else str(sample), "cutoff": _CUTOFF,
            "alpha": alpha, "trials": trials, "type_i_error": rate,
            "type_i_error_mc_se": float(np.sqrt(rate * (1 - rate) / trials)),
            "within_band": bool(SIZE_BAND[0] <= rate <= SIZE_BAND[1]), "seed": seed,
        })
    return pd.DataFrame(rows, columns=list(PERMUTATION_COLUMNS))
