r"""Power of a cluster-randomised trial by simulation, vectorised over replicates.

Generating model
----------------
Clusters ``j = 1..J`` (``J = k_c + k_i``; the first ``k_c`` are controls, ``T_j = 0``, the
rest intervention, ``T_j = 1``) recruit ``m_j`` patients each. Patient ``i`` of cluster ``j``
has a baseline score ``y0`` and a follow-up score ``y1``:

.. math::

    y^{(0)}_{ij} &= u^{(0)}_j + e^{(0)}_{ij}, \\
    y^{(1)}_{ij} &= \delta T_j + u^{(1)}_j + e^{(1)}_{ij}, \\
    (u^{(0)}_j, u^{(1)}_j) &\sim N_2\!\left(0,\ \rho \begin{pmatrix} 1 & \rho_c \\
        \rho_c & 1 \end{pmatrix}\right), \qquad
    (e^{(0)}_{ij}, e^{(1)}_{ij}) \sim N_2\!\left(0,\ (1 - \rho) \begin{pmatrix} 1 & \rho_s
        \\ \rho_s & 1 \end{pmatrix}\right),

all independent, so both measurements have total variance 1, ICC ``rho`` and the effect
``delta`` is in SD units; ``rho_c`` is the cluster autocorrelation and ``rho_s`` the subject
autocorrelation (Teerenstra et al. 2012). Cluster sizes are
``m_j = max(m_min, round(G_j))`` with ``G_j ~ Gamma(shape = 1 / cv**2, scale = m * cv**2)``
(mean ``m``, coefficient of variation ``cv``; ``cv = 0`` gives ``round(m)`` for every
cluster) and are drawn afresh for every simulated trial; rounding and the floor ``m_min``
make the realised mean and CV differ slightly from ``m`` and ``cv`` when ``m * cv**2`` is
small, so both are reported. The follow-up score is missing completely at random with
probability ``F`` (attrition), the baseline is always observed.

Analysis
--------
Each trial is analysed as the primary analysis would be: complete cases (patients with a
follow-up score) in the random-intercept model

.. math:: y^{(1)}_{ij} = \beta_0 + \beta_1 T_j + \beta_2 y^{(0)}_{ij} + b_j + \varepsilon_{ij},
    \qquad b_j \sim N(0, \sigma_b^2),\ \varepsilon_{ij} \sim N(0, \sigma_e^2),

fitted by REML (``baseline="ancova"``; ``"none"`` drops ``y0``, ``"change"`` analyses
``y1 - y0`` on ``T``) with the exact profiled-REML kernel of
:mod:`trialstats.analysis.reml` applied to per-cluster sufficient statistics carrying a
leading replicate axis, in batches that bound memory. The test of ``beta_1 = 0`` is a t test
with the chosen denominator degrees of freedom.

Because patients without follow-up are not analysed, only the ``n_j ~ Binomial(m_j, 1 - F)``
completers of each cluster are generated; this has the same distribution as generating all
``m_j`` and deleting the dropouts' follow-up. With ``generator="sums"`` not even the
completers are generated: each cluster's sums of ``(y0, y1)`` and of their squares and
products are drawn from their exact joint distribution (cluster mean effect
``N_2(0, S / n_j)`` and an independent ``Wishart_2(n_j - 1, S)`` within-cluster scatter,
``S`` the patient-effect covariance; Bartlett 1933), so the cost no longer grows with the
cluster size.

Type I error comes free with every run: the arm indicator is a column of the design, so
subtracting ``delta T_j`` from the data changes neither the residuals, the REML variance
components, the standard error nor the degrees of freedom, only shifts the estimate by
``delta``. The same trials with ``delta = 0`` therefore reject when
``|beta_1_hat - delta| / SE > t_crit``, and both rates are estimated from one set of fits.

Random numbers
--------------
Replicate ``r`` of scenario ``s`` draws from its own stream,
``numpy.random.SeedSequence(seed, spawn_key=(s, r))`` (the ``r``-th child of the ``s``-th
child of ``SeedSequence(seed)``). Results therefore do not depend on the batch size or on
how replicates are split into chunks, chunks of a grid use disjoint (independent) streams,
and any replicate can be regenerated on its own (:func:`simulate_patients`).

References
----------
Teerenstra S, Eldridge S, Graff M, de Hoop E, Borm GF (2012) A simple sample size formula for
analysis of covariance in cluster randomized trials. Stat Med 31:2169-2178.
Eldridge SM, Ashby D, Kerry S (2006) Sample size for cluster randomized trials: effect of
coefficient of variation of cluster size and analysis method. Int J Epidemiol 35:1292-1300.
Bartlett MS (1933) On the theory of statistical regression. Proc R Soc Edinburgh 53:260-283
(the Wishart decomposition).
Morris TP, White IR, Crowther MJ (2019) Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102 (Monte Carlo standard errors).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trialstats.contract import SIMULATION_DF_METHODS
from trialstats.errors import TrialstatsError

if TYPE_CHECKING:
    from trialstats.analysis.reml import ClusterSums

BASELINE_ANALYSES = ("ancova", "none", "change")
GENERATORS = ("patients", "sums")
#: Memory budget of one batch of replicates, in bytes.
BATCH_BYTES = 200 * 2**20
# Bytes per replicate and cluster per (p * p) element, allowing for the kernel's temporaries.
_BYTES_PER_CLUSTER_ELEMENT = 8 * 24


@dataclass(frozen=True)
class SimulationDesign:
    """One scenario of the generating model (see the module docstring).

    Attributes
    ----------
    clusters_per_arm : int
        Control clusters ``k_c`` (>= 2).
    cluster_size : float
        Mean recruited cluster size ``m`` (>= 1).
    icc : float
        Intracluster correlation ``rho`` in [0, 1).
    effect : float
        Standardised difference in means ``delta``.
    cv : float
        Coefficient of variation of cluster size (>= 0).
    attrition : float
        Probability ``F`` in [0, 1) that a patient's follow-up score is missing.
    rho_s, rho_c : float
        Subject and cluster autocorrelations in [-1, 1].
    k_intervention : int or None
        Intervention clusters ``k_i``; ``None`` means ``k_i = k_c``.
    min_cluster_size : int
        Floor ``m_min`` on recruited cluster sizes (>= 1).
    baseline : {"ancova", "none", "change"}
        How the analysis uses the baseline score.
    """

    clusters_per_arm: int
    cluster_size: float
    icc: float
    effect: float
    cv: float = 0.0
    attrition: float = 0.0
    rho_s: float = 0.0
    rho_c: float = 0.0
    k_intervention: int | None = None
    min_cluster_size: int = 2
    baseline: str = "ancova"

    def __post_init__(self) -> None:
        checks = (
            (self.clusters_per_arm >= 2 and self.n_intervention >= 2,
             "at least two clusters per arm are needed"),
            (float(self.clusters_per_arm).is_integer() and float(self.n_intervention).is_integer(),
             "numbers of clusters must be whole numbers"),
            (self.cluster_size >= 1, "the mean cluster size must be at least 1"),
            (0 <= self.icc < 1, "the ICC must lie in [0, 1)"),
            (self.cv >= 0, "the coefficient of variation of cluster size must be >= 0"),
            (0 <= self.attrition < 1, "attrition must lie in [0, 1)"),
            (abs(self.rho_s) <= 1 and abs(self.rho_c) <= 1,
             "the subject and cluster autocorrelations must lie in [-1, 1]"),
            (self.min_cluster_size >= 1, "the minimum cluster size must be at least 1"),
            (self.baseline in BASELINE_ANALYSES,
             f"the baseline analysis must be one of {', '.join(BASELINE_ANALYSES)}"),
            (math.isfinite(self.effect), "the effect must be a finite number"),
        )
        for ok, message in checks:
            if not ok:
                raise TrialstatsError(f"Invalid simulation design: {message}.")

    @property
    def n_intervention(self) -> int:
        """Intervention clusters ``k_i``."""
        return self.clusters_per_arm if self.k_intervention is None else self.k_intervention

    @property
    def n_clusters(self) -> int:
        """All clusters, ``J = k_c + k_i``."""
        return int(self.clusters_per_arm + self.n_intervention)

    @property
    def arm(self) -> np.ndarray:
        """Arm indicator ``T_j`` of each cluster (controls first)."""
        return np.repeat([0.0, 1.0], [int(self.clusters_per_arm), int(self.n_intervention)])


@dataclass(frozen=True)
class SimulatedSums:
    """Per-cluster sums of the analysed patients of a batch of simulated trials.

    Every array has shape ``(B, J)``: ``B`` replicates, ``J`` clusters.

    Attributes
    ----------
    recruited : int ndarray
        Recruited cluster sizes ``m_j``.
    n : float ndarray
        Completers ``n_j`` (patients analysed).
    s0, s1 : float ndarray
        Sums of ``y0`` and ``y1`` over completers.
    s00, s01, s11 : float ndarray
        Sums of ``y0**2``, ``y0 * y1`` and ``y1**2`` over completers.
    arm : float ndarray
        ``T_j`` (the same in every replicate).
    """

    recruited: np.ndarray
    n: np.ndarray
    s0: np.ndarray
    s1: np.ndarray
    s00: np.ndarray
    s01: np.ndarray
    s11: np.ndarray
    arm: np.ndarray


def replicate_rng(seed: int, scenario: int, replicate: int) -> np.random.Generator:
    """The random stream of one replicate: ``SeedSequence(seed, spawn_key=(scenario, replicate))``.

    Parameters
    ----------
    seed : int
        Base seed (>= 0).
    scenario : int
        Scenario number within a grid (0 for a single scenario).
    replicate : int
        Replicate number within the scenario.

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator; streams with different keys are independent.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(scenario, replicate))
    return np.random.Generator(np.random.PCG64(sequence))


def draw_cluster_sizes(
    rng: np.random.Generator, n_clusters: int, mean: float, cv: float, min_size: int = 2
) -> np.ndarray:
    """Recruited cluster sizes: rounded gamma with the given mean and CV, floored at ``min_size``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_clusters : int
        Number of sizes to draw.
    mean : float
        Mean ``m`` of the gamma distribution.
    cv : float
        Its coefficient of variation (0 gives ``round(mean)`` for every cluster, no draw).
    min_size : int, default 2
        Smallest allowed size.

    Returns
    -------
    numpy.ndarray of int64
        ``max(min_size, round(G))``, ``G ~ Gamma(1 / cv**2, mean * cv**2)``.
    """
    if cv == 0:
        raw = np.full(n_clusters, float(mean))
    else:
        raw = rng.gamma(1.0 / cv**2, mean * cv**2, size=n_clusters)
    return np.maximum(np.rint(raw), min_size).astype(np.int64)


def _draw_clusters(
    rng: np.random.Generator, design: SimulationDesign
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Recruited sizes, completers ``n_j ~ Binomial(m_j, 1 - F)`` and the cluster means
    ``(u0_j, delta T_j + u1_j)``, drawn in that order."""
    n_clusters = design.n_clusters
    recruited = draw_cluster_sizes(
        rng, n_clusters, design.cluster_size, design.cv, design.min_cluster_size
    )
    completers = (
        recruited if design.attrition == 0 else rng.binomial(recruited, 1.0 - design.attrition)
    )
    z = rng.standard_normal((n_clusters, 2))
    sd_b, rc = math.sqrt(design.icc), design.rho_c
    u0 = sd_b * z[:, 0]
    u1 = sd_b * (rc * z[:, 0] + math.sqrt(1.0 - rc * rc) * z[:, 1]) + design.effect * design.arm
    return recruited, completers, u0, u1


def _draw_replicate(
    rng: np.random.Generator, design: SimulationDesign
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw one trial patient by patient: sizes, completers and the completers' (y0, y1).

    After :func:`_draw_clusters`, the patient effects ``(sum n_j, 2)`` as standard normals.
    """
    recruited, completers, u0, u1 = _draw_clusters(rng, design)
    z = rng.standard_normal((int(completers.sum()), 2))
    sd_w, rs = math.sqrt(1.0 - design.icc), design.rho_s
    y0 = np.repeat(u0, completers) + sd_w * z[:, 0]
    y1 = np.repeat(u1, completers) + sd_w * (rs * z[:, 0] + math.sqrt(1.0 - rs * rs) * z[:, 1])
    return recruited, completers, y0, y1


def _draw_replicate_sums(
    rng: np.random.Generator, design: SimulationDesign
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one trial's per-cluster sums directly from their exact distribution.

    For a cluster with ``n`` completers and patient-effect covariance
    ``S = (1 - rho) [[1, rho_s], [rho_s, 1]] = L L'``, the completers' mean effect is
    ``N_2(0, S / n)`` and, independently, their within-cluster scatter matrix is
    ``Wishart_2(n - 1, S)``, drawn by Bartlett's decomposition ``L A A' L'`` with
    ``A = [[c1, 0], [z, c2]]``, ``c1**2 ~ chi2(n - 1)``, ``c2**2 ~ chi2(n - 2)``,
    ``z ~ N(0, 1)`` (for ``n = 2`` the rank-one scatter has ``c2 = 0``; for ``n <= 1`` it
    is 0). The sums of squares and products are the scatter plus ``n`` times the outer
    product of the cluster mean.

    Returns recruited sizes, completers, and the ``(5, J)`` sums
    ``(s0, s1, s00, s01, s11)``.
    """
    recruited, n, u0, u1 = _draw_clusters(rng, design)
    nf = n.astype(float)
    dof = np.maximum(nf - 1.0, 0.0)
    z_mean = rng.standard_normal((2, n.size))
    c1 = 2.0 * rng.standard_gamma(dof / 2.0)
    c2 = 2.0 * rng.standard_gamma(np.maximum(dof - 1.0, 0.0) / 2.0)
    z = np.where(dof > 0, rng.standard_normal(n.size), 0.0)
    var_w, rs = 1.0 - design.icc, design.rho_s
    q = math.sqrt(1.0 - rs * rs)
    root_c1 = np.sqrt(c1)
    a, b, c = c1, root_c1 * z, z * z + c2  # A A'
    w00 = var_w * a
    w01 = var_w * (rs * a + q * b)
    w11 = var_w * (rs * rs * a + 2.0 * rs * q * b + q * q * c)
    scale = math.sqrt(var_w) / np.sqrt(np.maximum(nf, 1.0))
    m0 = u0 + scale * z_mean[0]
    m1 = u1 + scale * (rs * z_mean[0] + q * z_mean[1])
    sums = np.stack([nf * m0, nf * m1, w00 + nf * m0 * m0, w01 + nf * m0 * m1,
                     w11 + nf * m1 * m1])
    return recruited, n, np.where(n > 0, sums, 0.0)


def simulate_patients(
    design: SimulationDesign, seed: int, replicate: int, scenario: int = 0
) -> pd.DataFrame:
    """The analysed patients of one simulated trial, as a long table.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    seed, replicate, scenario : int
        Identify the replicate's stream (see :func:`replicate_rng`); the data are exactly
        those that :func:`simulate_power` analyses as that replicate.

    Returns
    -------
    pandas.DataFrame
        One row per completer with columns ``cluster`` (0..J-1), ``arm`` (0 control,
        1 intervention), ``recruited`` (the cluster's recruited size), ``y0`` and ``y1``.
    """
    recruited, completers, y0, y1 = _draw_replicate(
        replicate_rng(seed, scenario, replicate), design
    )
    cluster = np.repeat(np.arange(design.n_clusters), completers)
    return pd.DataFrame({
        "cluster": cluster,
        "arm": design.arm[cluster].astype(np.int64),
        "recruited": recruited[cluster],
        "y0": y0,
        "y1": y1,
    })


def simulate_sums(
    design: SimulationDesign,
    seed: int,
    replicates: range,
    scenario: int = 0,
    generator: str = "patients",
) -> SimulatedSums:
    """Per-cluster sufficient statistics of a batch of simulated trials.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    seed : int
        Base seed.
    replicates : range
        Replicate numbers of the batch (each has its own stream, :func:`replicate_rng`).
    scenario : int, default 0
        Scenario number within a grid.
    generator : {"patients", "sums"}, default "patients"
        Generate every completer and add up (``"patients"``; the trials of
        :func:`simulate_patients`), or draw each cluster's sums directly from their exact
        distribution (``"sums"``, see :func:`_draw_replicate_sums`): the same model and
        the same distribution of results, at a cost that does not grow with cluster size,
        but other random draws.

    Returns
    -------
    SimulatedSums
        Arrays of shape ``(len(replicates), J)``.
    """
    if generator not in GENERATORS:
        raise TrialstatsError(
            f"Unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}."
        )
    n_reps, n_clusters = len(replicates), design.n_clusters
    recruited = np.empty((n_reps, n_clusters), dtype=np.int64)
    sums = np.empty((n_reps, 6, n_clusters))
    for b, replicate in enumerate(replicates):
        rng = replicate_rng(seed, scenario, replicate)
        if generator == "sums":
            recruited[b], sums[b, 0], sums[b, 1:] = _draw_replicate_sums(rng, design)
            continue
        rec, n, y0, y1 = _draw_replicate(rng, design)
        recruited[b] = rec
        sums[b, 0] = n
        sums[b, 1:] = _cluster_sums(n, np.stack([y0, y1, y0 * y0, y0 * y1, y1 * y1], axis=1)).T
    return SimulatedSums(
        recruited=recruited,
        n=sums[:, 0],
        s0=sums[:, 1],
        s1=sums[:, 2],
        s00=sums[:, 3],
        s01=sums[:, 4],
        s11=sums[:, 5],
        arm=np.broadcast_to(design.arm, (n_reps, n_clusters)),
    )


def _cluster_sums(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Column sums of ``values`` (rows grouped contiguously, ``counts`` per group); empty = 0."""
    out = np.zeros((counts.size, values.shape[1]))
    nonempty = counts > 0
    if values.shape[0]:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
        out[nonempty] = np.add.reduceat(values, starts, axis=0)
    return out


def cluster_sums(sums: SimulatedSums, baseline: str = "ancova") -> ClusterSums:
    """The REML kernel's sufficient statistics for the chosen analysis model.

    Parameters
    ----------
    sums : SimulatedSums
        Per-cluster sums of a batch of trials.
    baseline : {"ancova", "none", "change"}
        ``"ancova"``: ``y1`` on ``(1, T, y0)``; ``"none"``: ``y1`` on ``(1, T)``;
        ``"change"``: ``y1 - y0`` on ``(1, T)``.

    Returns
    -------
    trialstats.analysis.reml.ClusterSums
        With leading batch axis ``B``; the arm coefficient is column 1.
    """
    from trialstats.analysis.reml import ClusterSums

    n, t = sums.n, sums.arm
    nt = n * t
    if baseline == "ancova":
        xsum = np.stack([n, nt, sums.s0], axis=-1)
        ts0 = t * sums.s0
        xtx = np.stack([
            np.stack([n, nt, sums.s0], axis=-1),
            np.stack([nt, nt, ts0], axis=-1),
            np.stack([sums.s0, ts0, sums.s00], axis=-1),
        ], axis=-2)
        ysum, yty = sums.s1, sums.s11
        xty = np.stack([ysum, t * ysum, sums.s01], axis=-1)
    else:
        xsum = np.stack([n, nt], axis=-1)
        xtx = np.stack([np.stack([n, nt], axis=-1), np.stack([nt, nt], axis=-1)], axis=-2)
        if baseline == "none":
            ysum, yty = sums.s1, sums.s11
        else:
            ysum = sums.s1 - sums.s0
            yty = sums.s11 - 2.0 * sums.s01 + sums.s00
        xty = np.stack([ysum, t * ysum], axis=-1)
    return ClusterSums(n=n, xtx=xtx, xty=xty, yty=yty, xsum=xsum, ysum=ysum)


def batch_size_for(design: SimulationDesign, budget: int = BATCH_BYTES) -> int:
    """Replicates per batch that keep the kernel's arrays within ``budget`` bytes."""
    p = 3 if design.baseline == "ancova" else 2
    per_replicate = design.n_clusters * p * p * _BYTES_PER_CLUSTER_ELEMENT
    return max(1, budget // per_replicate)


def analyse_replicates(
    design: SimulationDesign,
    seed: int,
    replicates: range,
    *,
    scenario: int = 0,
    df_method: str = "between-within",
    alpha: float = 0.05,
    generator: str = "patients",
) -> pd.DataFrame:
    """Simulate and analyse a batch of trials; one row per replicate.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    seed : int
        Base seed.
    replicates : range
        Replicate numbers (streams, :func:`replicate_rng`).
    scenario : int, default 0
        Scenario number within a grid.
    df_method : {"between-within", "satterthwaite", "kenward-roger", "residual", "z"}
        Denominator degrees of freedom, as the primary analysis computes them
        (:func:`trialstats.analysis.inference.contrast_test`): clusters with data minus 2
        (the between-cluster parameters, intercept and arm), Satterthwaite's approximation
        (as lmerTest), Kenward-Roger (as pbkrtest, which also adjusts the SE), analysed
        patients minus the number of fixed effects, or infinity (Wald z).
    alpha : float, default 0.05
        Two-sided significance level.
    generator : {"patients", "sums"}, default "patients"
        How trials are drawn (see :func:`simulate_sums`).

    Returns
    -------
    pandas.DataFrame
        Columns ``replicate``, ``estimate`` (``beta_1``), ``se`` (model-based; Kenward-Roger
        adjusted for that method), ``df``,
        ``p_value``, ``reject`` (at ``alpha``), ``reject_null`` (the same trial with
        ``delta = 0``: ``|estimate - delta| / se`` beyond the critical value),
        ``var_cluster``, ``var_residual``, ``reml_loglik``, ``converged``, ``boundary``,
        ``estimable`` (False when an arm has no analysed patients or the model cannot be
        fitted; such replicates have missing estimates and count as non-rejections),
        ``n_obs``, ``n_clusters`` (with analysed patients), ``recruited`` (patients
        recruited).
    """
    sums = simulate_sums(design, seed, replicates, scenario, generator)
    return _analyse(sums, design, df_method=df_method, alpha=alpha).assign(
        replicate=np.asarray(replicates, dtype=np.int64)
    )[list(_REPLICATE_COLUMNS)]


_ARM_CONTRAST = {
    "ancova": np.array([0.0, 1.0, 0.0]),
    "none": np.array([0.0, 1.0]),
    "change": np.array([0.0, 1.0]),
}
_REPLICATE_COLUMNS = (
    "replicate", "estimate", "se", "df", "p_value", "reject", "reject_null", "var_cluster",
    "var_residual", "reml_loglik", "converged", "boundary", "estimable", "n_obs", "n_clusters",
    "recruited",
)


def _estimable(sums: SimulatedSums, p: int) -> np.ndarray:
    """Replicates the model can be fitted to: each arm has data, a cluster has >= 2, N > p."""
    filled = sums.n > 0
    treated = sums.arm > 0
    return (
        np.any(filled & treated, axis=-1)
        & np.any(filled & ~treated, axis=-1)
        & np.any(sums.n >= 2, axis=-1)
        & (sums.n.sum(axis=-1) > p)
    )


def _analyse(
    sums: SimulatedSums, design: SimulationDesign, *, df_method: str, alpha: float
) -> pd.DataFrame:
    from scipy import stats

    from trialstats.analysis.inference import contrast_test
    from trialstats.analysis.reml import fit_reml

    if df_method not in SIMULATION_DF_METHODS:
        raise TrialstatsError(
            f"Unknown df method {df_method!r}; choose one of {', '.join(SIMULATION_DF_METHODS)}."
        )
    n_reps = sums.n.shape[0]
    p = 3 if design.baseline == "ancova" else 2
    ok = _estimable(sums, p)
    out = {name: np.full(n_reps, np.nan) for name in (
        "estimate", "se", "df", "p_value", "var_cluster", "var_residual", "reml_loglik")}
    flags = {name: np.zeros(n_reps, dtype=bool) for name in ("converged", "boundary")}
    n_clusters = np.sum(sums.n > 0, axis=-1)
    index = np.flatnonzero(ok)
    if index.size:
        sub = SimulatedSums(
            **{k: getattr(sums, k)[index] for k in SimulatedSums.__dataclass_fields__}
        )
        data = cluster_sums(sub, design.baseline)
        fit = fit_reml(data)
        test = contrast_test(data, fit, _ARM_CONTRAST[design.baseline],
                             "between-within" if df_method == "z" else df_method)
        out["estimate"][index] = test.estimate
        out["se"][index] = test.se
        out["df"][index] = np.inf if df_method == "z" else test.df
        out["var_cluster"][index] = fit.var_cluster
        out["var_residual"][index] = fit.var_residual
        out["reml_loglik"][index] = fit.reml_loglik
        flags["converged"][index] = fit.converged
        flags["boundary"][index] = fit.boundary
    with np.errstate(invalid="ignore"):
        t_stat = out["estimate"] / out["se"]
        t_null = (out["estimate"] - design.effect) / out["se"]
        out["p_value"] = 2.0 * stats.t.sf(np.abs(t_stat), out["df"])
        crit = stats.t.isf(alpha / 2.0, out["df"])
        reject = np.abs(t_stat) > crit
        reject_null = np.abs(t_null) > crit
    return pd.DataFrame({
        **out,
        "reject": reject,
        "reject_null": reject_null,
        **flags,
        "estimable": ok,
        "n_obs": sums.n.sum(axis=-1).astype(np.int64),
        "n_clusters": n_clusters.astype(np.int64),
        "recruited": sums.recruited.sum(axis=-1),
    })


def simulate_power(
    design: SimulationDesign,
    *,
    reps: int,
    seed: int,
    df_method: str = "between-within",
    alpha: float = 0.05,
    scenario: int = 0,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    generator: str = "patients",
) -> dict[str, object]:
    """Simulated power of one scenario, with its Monte Carlo SE and the type I error.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    reps : int
        Number of simulated trials (>= 2).
    seed : int
        Base seed; replicate ``r`` uses ``SeedSequence(seed, spawn_key=(scenario, r))``.
    df_method : str, default "between-within"
        One of :data:`SIMULATION_DF_METHODS`
        Denominator df of the t test (see :func:`analyse_replicates`).
    alpha : float, default 0.05
        Two-sided significance level.
    scenario : int, default 0
        Scenario number within a grid.
    batch_size : int, optional
        Replicates simulated and fitted at once; by default as many as fit in
        :data:`BATCH_BYTES`. Results do not depend on it.
    progress : callable, optional
        Called with the number of replicates finished after each batch.
    generator : {"patients", "sums"}, default "patients"
        How trials are drawn (see :func:`simulate_sums`).

    Returns
    -------
    dict
        ``method`` ("simulation"), ``scenario``, the design (``clusters_per_arm``,
        ``k_intervention``, ``allocation_ratio``, ``cluster_size``, ``cv``, ``icc``, ``effect``,
        ``attrition``, ``rho_s``, ``rho_c``, ``baseline``, ``alpha``), ``power`` (share of
        trials rejecting), ``mc_se`` (``sqrt(power (1 - power) / reps)``), ``type_i_error``
        and ``type_i_error_mc_se`` (the same trials at ``delta = 0``, see the module
        docstring), ``design_effect`` (Eldridge's at the nominal analysed size
        ``m (1 - F)``), ``df_method``, ``generator``, ``mean_df``, ``reps``, ``seed``, ``n_failed``
        (replicates not estimable or not converged; not estimable ones count as
        non-rejections), ``n_boundary`` (cluster variance estimated at 0),
        ``mean_estimate``, ``empirical_se`` (SD of the estimates), ``mean_se`` (mean model
        SE), ``cluster_size_realised`` and ``cv_realised`` (mean and CV of the recruited
        cluster sizes drawn) and ``cluster_size_analysed_realised`` (mean completers per
        cluster).
    """
    from trialstats.power.design_effect import design_effect

    if reps < 2:
        raise TrialstatsError("A simulation needs at least two replicates.")
    if not 0 < alpha < 1:
        raise TrialstatsError("The significance level alpha must lie in (0, 1).")
    step = batch_size_for(design) if batch_size is None else int(batch_size)
    if step < 1:
        raise TrialstatsError("The batch size must be at least 1.")
    # Per-replicate results (a few numbers each) are kept and reduced once at the end, so
    # the summaries are bit-identical whatever the batch size; integer totals are exact.
    kept = {name: np.empty(reps) for name in ("estimate", "se", "df")}
    flags = {name: np.empty(reps, dtype=bool)
             for name in ("reject", "reject_null", "ok", "boundary", "estimable")}
    size_total = size_squares = analysed_total = 0
    for start in range(0, reps, step):
        batch = range(start, min(start + step, reps))
        sums = simulate_sums(design, seed, batch, scenario, generator)
        rows = _analyse(sums, design, df_method=df_method, alpha=alpha)
        where = slice(batch.start, batch.stop)
        for name in kept:
            kept[name][where] = rows[name].to_numpy()
        for name in ("reject", "reject_null", "boundary", "estimable"):
            flags[name][where] = rows[name].to_numpy()
        flags["ok"][where] = rows["estimable"].to_numpy() & rows["converged"].to_numpy()
        size_total += int(sums.recruited.sum())
        size_squares += int((sums.recruited**2).sum())
        analysed_total += int(sums.n.sum())
        if progress is not None:
            progress(len(batch))
    power = float(flags["reject"].mean())
    type1 = float(flags["reject_null"].mean())
    fitted = flags["estimable"]
    estimates = kept["estimate"][fitted]
    n_sizes = reps * design.n_clusters
    mean_size = size_total / n_sizes
    analysed_m = design.cluster_size * (1.0 - design.attrition)

    def mean_of(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else math.nan

    return {
        "method": "simulation",
        "scenario": scenario,
        "clusters_per_arm": design.clusters_per_arm,
        "k_intervention": design.n_intervention,
        "allocation_ratio": design.n_intervention / design.clusters_per_arm,
        "cluster_size": design.cluster_size,
        "cv": design.cv,
        "icc": design.icc,
        "effect": design.effect,
        "attrition": design.attrition,
        "rho_s": design.rho_s,
        "rho_c": design.rho_c,
        "baseline": design.baseline,
        "alpha": alpha,
        "power": power,
        "mc_se": math.sqrt(power * (1.0 - power) / reps),
        "type_i_error": type1,
        "type_i_error_mc_se": math.sqrt(type1 * (1.0 - type1) / reps),
        "design_effect": float(design_effect(analysed_m, design.icc, design.cv)),
        "df_method": df_method,
        "generator": generator,
        "mean_df": mean_of(kept["df"][fitted]),
        "reps": reps,
        "seed": seed,
        "n_failed": int((~flags["ok"]).sum()),
        "n_boundary": int(flags["boundary"].sum()),
        "mean_estimate": mean_of(estimates),
        "empirical_se": float(estimates.std(ddof=1)) if estimates.size > 1 else math.nan,
        "mean_se": mean_of(kept["se"][fitted]),
        "cluster_size_realised": mean_size,
        "cv_realised": math.sqrt(max(size_squares / n_sizes - mean_size**2, 0.0)) / mean_size,
        "cluster_size_analysed_realised": analysed_total / n_sizes,
    }


def solve_clusters(
    design_for: Callable[[int], SimulationDesign],
    *,
    target_power: float,
    reps: int,
    seed: int,
    df_method: str = "between-within",
    alpha: float = 0.05,
    start: int = 2,
    max_clusters: int = 10_000,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    generator: str = "patients",
) -> pd.DataFrame:
    """Smallest clusters per arm whose simulated power reaches a target, by integer bisection.

    Parameters
    ----------
    design_for : callable
        ``design_for(k)`` returns the design with ``k`` control clusters (and whatever
        intervention clusters the allocation implies).
    target_power : float
        Power to reach, in (alpha, 1).
    reps, seed, df_method, alpha, batch_size, progress, generator
        As in :func:`simulate_power`; every size is simulated with the same seed (common
        random numbers), which makes the simulated power curve smoother in ``k``.
    start : int, default 2
        First size tried (e.g. the analytic answer); the search halves below or doubles
        above it to bracket the target, then bisects.
    max_clusters : int, default 10000
        Give up above this many control clusters.

    Returns
    -------
    pandas.DataFrame
        One row per size simulated (the columns of :func:`simulate_power`), sorted by
        ``clusters_per_arm``, plus ``target_power`` and ``solution`` (True on the smallest
        size found whose power reaches the target with the next smaller size simulated
        below it). Monte Carlo error makes the answer uncertain by about one cluster near
        the target; check ``power`` and ``mc_se`` of the neighbouring rows.

    Raises
    ------
    TrialstatsError
        If the target is outside (alpha, 1) or not reached by ``max_clusters``.
    """
    if not alpha < target_power < 1:
        raise TrialstatsError(f"The target power must lie in ({alpha:g}, 1).")
    results: dict[int, dict[str, object]] = {}

    def reaches(k: int) -> bool:
        if k not in results:
            results[k] = simulate_power(
                design_for(k), reps=reps, seed=seed, df_method=df_method, alpha=alpha,
                batch_size=batch_size, progress=progress, generator=generator,
            )
        return float(results[k]["power"]) >= target_power

    k = max(2, int(start))
    if reaches(k):
        low, high = 1, k
        while high > 2:
            trial = max(2, high // 2)
            if not reaches(trial):
                low = trial
                break
            high = trial
    else:
        low, high = k, 2 * k
        while not reaches(high):
            if high >= max_clusters:
                raise TrialstatsError(
                    f"Simulated power stays below {target_power:g} up to {high} clusters per arm."
                )
            low, high = high, min(2 * high, max_clusters)
    while high - low > 1:
        middle = (low + high) // 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    table = pd.DataFrame([results[k] for k in sorted(results)])
    table["target_power"] = target_power
    table["solution"] = table["clusters_per_arm"] == high
    return table
