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

Power with constrained allocation (:func:`constrained_batches`, :func:`permutation_tests`)
----------------------------------------------------------------------------------------
The trials of :mod:`trialstats.simulation.draw`, with a share :math:`R^2` of the cluster
variance explained by the covariate the allocation balances:

.. math::

    u^{(t)}_j = \sqrt{\rho R^2}\, x_j + v^{(t)}_j,\qquad
    (v^{(0)}_j, v^{(1)}_j) \sim N_2\!\left(0,\ \rho (1 - R^2)
        \begin{pmatrix} 1 & \rho_v \\ \rho_v & 1 \end{pmatrix}\right),\qquad
    \rho_v = \frac{\rho_c - R^2}{1 - R^2},

so the ICC :math:`\rho`, the cluster autocorrelation :math:`\rho_c` and the subject
autocorrelation are those of the design whatever :math:`R^2` (which needs
:math:`\rho_c \ge 2R^2 - 1`, unless the baseline is not analysed, ``baseline = "none"``,
when :math:`\rho_v` is clipped at -1). A trial is drawn as a trial of the generating model with ICC
:math:`\rho(1 - R^2)/(1 - \rho R^2)`, autocorrelation :math:`\rho_v` and no effect, on the
replicate's usual stream, rescaled by :math:`\sqrt{1 - \rho R^2}` (so its cluster variance
is :math:`\rho(1 - R^2)` and its patient variance :math:`1 - \rho`), then shifted by
:math:`\sqrt{\rho R^2}\,x_j` at both times and by :math:`\delta T_j` at follow-up, all
exactly on the per-cluster sums. With :math:`R^2 = 0` and every allocation accepted the trials have
the distribution of those of :func:`trialstats.power.simulate.simulate_power` (the same
streams, but the arms are drawn rather than controls first). The covariate and
the allocation of replicate ``r`` come from their own stream,
``SeedSequence(seed, spawn_key=(scenario, r, 1))``; a sampled randomisation space from
``SeedSequence(seed, spawn_key=(scenario,))``, once per scenario.

Each trial is then analysed by the primary mixed model, without ``x`` or adjusted for it
(``"mixed-model-adjusted"``, as Li et al. recommend after constraining on it), or by the
clustered permutation test over the trial's own accepted
allocations, its null model adjusted for the baseline (as ``design.baseline``) and ``x``
(:func:`permutation_tests`; the test of :math:`\delta = \delta_0` uses the exact shift of
least-squares residuals, so the type I error comes from the same trials).

Random numbers
--------------
Trial ``r`` of a validity cell draws from ``SeedSequence([seed, J, binary]).spawn(trials)[r]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from trialstats.allocation.balance import balance_scores, covariate_matrix
from trialstats.allocation.constrained import (
    accepted_indices,
    count_allocations,
    enumerate_allocations,
    sample_allocations,
)
from trialstats.analysis.design import ModelData
from trialstats.analysis.permutation import (
    arm_differences,
    permutation_p_value,
    practice_residuals,
    residual_p_value,
)
from trialstats.errors import TrialstatsError
from trialstats.simulation.draw import (
    SimulatedSums,
    SimulationDesign,
    batch_size_for,
    simulate_sums,
)
from trialstats.simulation.validity import SIZE_BAND

__all__ = [
    "ANALYSES",
    "MAX_SPACE",
    "PERMUTATION_CELLS",
    "PERMUTATION_COLUMNS",
    "ConstrainedBatch",
    "Constraint",
    "constrained_batches",
    "permutation_tests",
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
#: Analyses of a constrained trial in power simulations.
ANALYSES = ("mixed-model", "mixed-model-adjusted", "permutation")
#: Replicates per batch at most (each keeps its accepted allocations).
_MAX_BATCH = 256


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
    return residual_p_value(residuals, accepted, treated)


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


@dataclass(frozen=True)
class Constraint:
    """How the simulated trials are allocated (module notes).

    Attributes
    ----------
    cutoff : float
        Fraction of the allocations accepted, in (0, 1]; 1 accepts all (simple randomisation
        with fixed arm sizes).
    covariate_share : float
        :math:`R^2`, the share of the cluster variance explained by the balancing covariate,
        in [0, 1).
    sample : int
        Allocations sampled (once per scenario) when there are more than :data:`MAX_SPACE`.
    """

    cutoff: float
    covariate_share: float
    sample: int = 10_000

    def __post_init__(self) -> None:
        if not 0 < self.cutoff <= 1:
            raise TrialstatsError(f"The constraint cut-off must lie in (0, 1], not {self.cutoff}.")
        if not 0 <= self.covariate_share < 1:
            raise TrialstatsError("The share of cluster variance explained by the balancing "
                                  f"covariate must lie in [0, 1), not {self.covariate_share}.")
        if self.sample < 2:
            raise TrialstatsError("At least two allocations must be sampled.")


@dataclass(frozen=True)
class ConstrainedBatch:
    """A batch of constrained trials: their sums, covariate and accepted allocations.

    Attributes
    ----------
    sums : SimulatedSums
        Per-cluster sums, ``arm`` the drawn allocation of each replicate, shape ``(B, J)``.
    covariate : ndarray (B, J)
        :math:`x_j` of each replicate.
    accepted : list of ndarray (m, J) of bool
        Each replicate's accepted allocations (the permutation test's set).
    """

    sums: SimulatedSums
    covariate: np.ndarray
    accepted: list[np.ndarray]


def _space(design: SimulationDesign, constraint: Constraint, seed: int, scenario: int
           ) -> np.ndarray:
    j, k = design.n_clusters, design.n_intervention
    if count_allocations(j, k) <= MAX_SPACE:
        return enumerate_allocations(j, k)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(scenario,))))
    return sample_allocations(j, k, constraint.sample, rng)


def _shift(sums: SimulatedSums, scale: float, c0: np.ndarray, c1: np.ndarray,
           arm: np.ndarray) -> SimulatedSums:
    """``y0 -> scale y0 + c0_j``, ``y1 -> scale y1 + c1_j`` on every cluster's sums."""
    n = sums.n
    s0, s1 = scale * sums.s0, scale * sums.s1
    s00, s01, s11 = (scale**2 * v for v in (sums.s00, sums.s01, sums.s11))
    return SimulatedSums(
        recruited=sums.recruited, n=n, s0=s0 + n * c0, s1=s1 + n * c1,
        s00=s00 + 2 * c0 * s0 + n * c0 * c0, s01=s01 + c0 * s1 + c1 * s0 + n * c0 * c1,
        s11=s11 + 2 * c1 * s1 + n * c1 * c1, arm=arm,
    )


def constrained_batches(
    design: SimulationDesign, constraint: Constraint, seed: int, reps: int, *,
    scenario: int = 0, generator: str = "patients", batch_size: int | None = None,
) -> Iterator[tuple[range, ConstrainedBatch]]:
    """Replicates ``0 .. reps - 1`` of a scenario allocated under ``constraint``, by batch.

    Parameters
    ----------
    design : SimulationDesign
        The scenario (its ICC, autocorrelations and effect are those of the drawn trials).
    constraint : Constraint
        Cut-off, covariate share and sample size.
    seed, scenario : int
        Identify the streams (module notes).
    reps : int
        Number of replicates.
    generator : {"patients", "sums"}
        As :func:`trialstats.simulation.draw.simulate_sums`.
    batch_size : int, optional
        Replicates per batch (default as :func:`~trialstats.simulation.draw.batch_size_for`,
        at most 256); results do not depend on it.

    Yields
    ------
    range, ConstrainedBatch
    """
    share, icc = constraint.covariate_share, design.icc
    if design.rho_c < 2 * share - 1 and design.baseline != "none":
        raise TrialstatsError(
            f"A covariate explaining {share:g} of the cluster variance at baseline and "
            f"follow-up implies a cluster autocorrelation of at least {2 * share - 1:g}; "
            f"the design has {design.rho_c:g}.")
    base = replace(design, effect=0.0, icc=icc * (1 - share) / (1 - icc * share),
                   rho_c=max((design.rho_c - share) / (1 - share), -1.0))
    scale, beta = math.sqrt(1 - icc * share), math.sqrt(icc * share)
    space = _space(design, constraint, seed, scenario)
    step = min(batch_size_for(design), _MAX_BATCH) if batch_size is None else int(batch_size)
    if step < 1:
        raise TrialstatsError("The batch size must be at least 1.")
    for start in range(0, reps, step):
        batch = range(start, min(start + step, reps))
        sums = simulate_sums(base, seed, batch, scenario, generator)
        x = np.empty(sums.n.shape)
        arm = np.empty(sums.n.shape)
        accepted = []
        for b, replicate in enumerate(batch):
            rng = np.random.Generator(np.random.PCG64(
                np.random.SeedSequence(seed, spawn_key=(scenario, replicate, 1))))
            x[b] = rng.standard_normal(design.n_clusters)
            if constraint.cutoff < 1:
                z = (x[b] - x[b].mean()) / x[b].std(ddof=1)
                keep = space[accepted_indices(balance_scores(space, z[:, None]),
                                              cutoff=constraint.cutoff)]
            else:
                keep = space
            arm[b] = keep[rng.integers(len(keep))]
            accepted.append(keep)
        shifted = _shift(sums, scale, beta * x, beta * x + design.effect * arm, arm)
        yield batch, ConstrainedBatch(sums=shifted, covariate=x, accepted=accepted)


def _null_columns(sums: SimulatedSums, x: np.ndarray, baseline: str, r: int):
    """Per-cluster sums of the null model's columns (patient level) and of its outcome, for
    replicate ``r``: ``C`` (J, p) with rows the clusters' column sums, ``G`` (p, p) the
    total cross-products, ``ysum`` (J,) and ``Cy`` (p,)."""
    n, s0, s1 = sums.n[r], sums.s0[r], sums.s1[r]
    xr = x[r]
    if baseline == "ancova":
        cols = np.column_stack([n, s0, n * xr])
        gram = np.array([[n.sum(), s0.sum(), (n * xr).sum()],
                         [s0.sum(), sums.s00[r].sum(), (xr * s0).sum()],
                         [(n * xr).sum(), (xr * s0).sum(), (n * xr * xr).sum()]])
        ysum = s1
        cy = np.array([s1.sum(), sums.s01[r].sum(), (xr * s1).sum()])
    else:
        cols = np.column_stack([n, n * xr])
        gram = np.array([[n.sum(), (n * xr).sum()], [(n * xr).sum(), (n * xr * xr).sum()]])
        ysum = s1 if baseline == "none" else s1 - s0
        cy = np.array([ysum.sum(), (xr * ysum).sum()])
    return cols, gram, ysum, cy


def permutation_tests(
    batch: ConstrainedBatch, baseline: str, effect: float, alpha: float
) -> dict[str, np.ndarray]:
    r"""The clustered permutation test of each trial of a batch over its accepted allocations.

    The null model regresses the patients' follow-up (``baseline`` as in the design: on the
    baseline score for ``"ancova"``, of the change for ``"change"``) on the covariate ``x`` by
    least squares, from the sums; the practice means of its residuals :math:`\bar r_j` and of
    the arm indicator's :math:`\bar t_j` give the statistic and its exact shift
    (:mod:`trialstats.analysis.permutation`). Practices without analysed patients are left out.

    Returns
    -------
    dict of ndarray (B,)
        ``estimate`` (:math:`D(a^*)/E(a^*)`), ``p_value`` (of :math:`\delta = 0`), ``reject``
        (``p_value <= alpha``), ``reject_null`` (the test of :math:`\delta =` ``effect``
        rejects: the type I error of the same trials), ``estimable`` (both arms have
        analysed practices).
    """
    sums = batch.sums
    n_reps = sums.n.shape[0]
    out = {"estimate": np.full(n_reps, np.nan), "p_value": np.full(n_reps, np.nan),
           "reject": np.zeros(n_reps, bool), "reject_null": np.zeros(n_reps, bool),
           "estimable": np.zeros(n_reps, bool)}
    for r in range(n_reps):
        filled = sums.n[r] > 0
        treated = sums.arm[r] > 0
        if (filled & treated).sum() < 1 or (filled & ~treated).sum() < 1:
            continue
        cols, gram, ysum, cy = _null_columns(sums, batch.covariate, baseline, r)
        fit = np.linalg.lstsq(gram, np.column_stack([cy, cols.T @ treated]), rcond=None)[0]
        n = sums.n[r][filled]
        rbar = (ysum - cols @ fit[:, 0])[filled] / n
        tbar = (sums.n[r] * treated - cols @ fit[:, 1])[filled] / n
        allocations = batch.accepted[r][:, filled]
        with np.errstate(divide="ignore", invalid="ignore"):
            d, e = arm_differences(rbar, allocations), arm_differences(tbar, allocations)
        d_obs = float(arm_differences(rbar, treated[filled][None, :])[0])
        e_obs = float(arm_differences(tbar, treated[filled][None, :])[0])
        out["estimate"][r] = d_obs / e_obs
        out["p_value"][r] = permutation_p_value(d, e, d_obs, e_obs)
        out["reject_null"][r] = permutation_p_value(d, e, d_obs, e_obs, effect) <= alpha
        out["estimable"][r] = True
    out["reject"] = out["p_value"] <= alpha
    return out
