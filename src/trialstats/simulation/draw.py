r"""Drawing simulated cluster-randomised trials: patient by patient, or as per-cluster sums.

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

Because patients without follow-up are not analysed, only the ``n_j ~ Binomial(m_j, 1 - F)``
completers of each cluster are generated; this has the same distribution as generating all
``m_j`` and deleting the dropouts' follow-up. With ``generator="sums"`` not even the
completers are generated: each cluster's sums of ``(y0, y1)`` and of their squares and
products are drawn from their exact joint distribution (cluster mean effect
``N_2(0, S / n_j)`` and an independent ``Wishart_2(n_j - 1, S)`` within-cluster scatter,
``S`` the patient-effect covariance; Bartlett 1933), so the cost no longer grows with the
cluster size.

Binary and count outcomes
-------------------------
Trials analysed by a random-intercept GLMM (:mod:`trialstats.power.simulate_glmm`) draw, per
replicate and in this order, the sizes ``m_j`` as above, standardised cluster intercepts
``z_j ~ N(0, 1)`` and uniforms: one per cluster, turned into the cluster's events (binomial,
:func:`binary_events`) or its total count (Poisson) by the inverse CDF, or one per
patient for per-patient negative binomial counts (:func:`draw_glmm_replicates`,
:func:`draw_count_trials`). The same uniforms give the trial under the null, so power
and type I error come from common random numbers.

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
Bartlett MS (1933) On the theory of statistical regression. Proc R Soc Edinburgh 53:260-283
(the Wishart decomposition).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from trialstats.analysis.reml import ClusterSums
from trialstats.errors import TrialstatsError

__all__ = [
    "BASELINE_ANALYSES",
    "BATCH_BYTES",
    "GENERATORS",
    "SimulatedSums",
    "SimulationDesign",
    "batch_size_for",
    "binary_events",
    "cluster_sums",
    "draw_cluster_sizes",
    "draw_count_trials",
    "draw_glmm_replicates",
    "replicate_rng",
    "simulate_batches",
    "simulate_patients",
    "simulate_sums",
]

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


def draw_glmm_replicates(
    seed: int, reps: int, n_clusters: int, cluster_size: float, cv: float, min_size: int = 2,
    *, per_patient: bool = False, scenario: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | list[np.ndarray]]:
    """The random draws of ``reps`` trials analysed by a GLMM, replicate ``r`` from
    :func:`replicate_rng` ``(seed, scenario, r)``.

    Parameters
    ----------
    seed, reps : int
        Base seed and number of replicates.
    n_clusters : int
        Clusters per trial.
    cluster_size, cv, min_size
        Mean, coefficient of variation and floor of the sizes (:func:`draw_cluster_sizes`).
    per_patient : bool, default False
        One uniform per patient instead of one per cluster.

    Returns
    -------
    sizes : ndarray of int64, shape (reps, n_clusters)
    z : ndarray, shape (reps, n_clusters)
        Standard normal cluster intercepts.
    uniforms : ndarray, shape (reps, n_clusters), or list of ``reps`` arrays
        Uniforms on [0, 1): per cluster, or per patient (``sizes[r].sum()`` each, clusters
        in order).
    """
    sizes = np.empty((reps, n_clusters), dtype=np.int64)
    z = np.empty((reps, n_clusters))
    uniforms = [] if per_patient else np.empty((reps, n_clusters))
    for r in range(reps):
        rng = replicate_rng(seed, scenario, r)
        sizes[r] = draw_cluster_sizes(rng, n_clusters, cluster_size, cv, min_size)
        z[r] = rng.standard_normal(n_clusters)
        if per_patient:
            uniforms.append(rng.random(int(sizes[r].sum())))
        else:
            uniforms[r] = rng.random(n_clusters)
    return sizes, z, uniforms


def binary_events(uniforms: np.ndarray, sizes: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Events of clusters of ``sizes`` patients with the given risks: the binomial inverse CDF
    of ``uniforms``, so that the same uniforms give coupled trials at other risks."""
    return stats.binom.ppf(uniforms, sizes, risk)


def draw_count_trials(
    seed: int, reps: int, arm: np.ndarray, cluster_size: float, cv: float, min_size: int, *,
    log_rate: float, log_rate_ratio: float, sigma: float, dispersion: float = 0.0,
) -> tuple[np.ndarray, list]:
    """Count outcomes of ``reps`` trials, each patient followed for one unit of person-time.

    Given the cluster intercept :math:`b_j = \\sigma z_j` (:func:`draw_glmm_replicates`), a
    patient's count has mean :math:`\\mu_j = \\exp(\\text{log rate} + \\text{log rate ratio}
    \\cdot T_j + b_j)` and is Poisson (``dispersion`` 0) or negative binomial NB2 with
    :math:`\\operatorname{Var} = \\mu + k\\mu^2` (``k = dispersion``, size
    :math:`\\vartheta = 1/k`), by the inverse CDF of the uniforms. A sum of independent Poisson
    counts is Poisson with the summed mean, so for Poisson counts each cluster's total is drawn
    directly (mean :math:`m_j\\mu_j`); negative binomial counts are drawn patient by patient.

    Parameters
    ----------
    seed, reps : int
        Base seed and number of replicates.
    arm : ndarray, shape (J,)
        :math:`T_j`, 0 control, 1 intervention.
    cluster_size, cv, min_size
        Cluster sizes (:func:`draw_cluster_sizes`).
    log_rate, log_rate_ratio, sigma, dispersion : float
        The model above.

    Returns
    -------
    sizes : ndarray of int64, shape (reps, J)
    counts : list of two
        The trials with the given rate ratio and with rate ratio 1, from the same uniforms:
        arrays (reps, J) of cluster totals (Poisson), or lists of ``reps`` arrays of the
        patients' counts, clusters in order (negative binomial).
    """
    negbin = dispersion > 0
    sizes, z, uniforms = draw_glmm_replicates(seed, reps, arm.size, cluster_size, cv, min_size,
                                              per_patient=negbin)
    base = log_rate + sigma * z
    rates = [np.exp(base + log_rate_ratio * arm), np.exp(base)]
    if not negbin:
        return sizes, [stats.poisson.ppf(uniforms, sizes * rate) for rate in rates]
    theta = 1.0 / dispersion

    def patients(rate: np.ndarray, r: int) -> np.ndarray:
        mean = np.repeat(rate[r], sizes[r])
        return stats.nbinom.ppf(uniforms[r], theta, theta / (theta + mean))

    return sizes, [[patients(rate, r) for r in range(reps)] for rate in rates]


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
        those that :func:`simulate_sums` adds up for that replicate (``generator="patients"``).

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
    design: SimulationDesign, seed: int, replicates: range, scenario: int = 0,
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


def cluster_sums(
    sums: SimulatedSums, baseline: str = "ancova", covariate: np.ndarray | None = None
) -> ClusterSums:
    """The REML kernel's sufficient statistics for the chosen analysis model.

    Parameters
    ----------
    sums : SimulatedSums
        Per-cluster sums of a batch of trials.
    baseline : {"ancova", "none", "change"}
        ``"ancova"``: ``y1`` on ``(1, T, y0)``; ``"none"``: ``y1`` on ``(1, T)``;
        ``"change"``: ``y1 - y0`` on ``(1, T)``.
    covariate : ndarray (B, J), optional
        A cluster-level covariate ``x_j`` added as the last column of the model.

    Returns
    -------
    trialstats.analysis.reml.ClusterSums
        With leading batch axis ``B``; the arm coefficient is column 1.
    """
    if covariate is not None:
        plain = cluster_sums(sums, baseline)
        x, n = covariate, sums.n
        # the covariate's column sums are x_j times the cluster's sums of the other columns
        cross = x[..., None] * plain.xsum
        corner = (n * x * x)[..., None, None]
        xtx = np.concatenate([
            np.concatenate([plain.xtx, cross[..., :, None]], axis=-1),
            np.concatenate([cross[..., None, :], corner], axis=-1),
        ], axis=-2)
        return ClusterSums(
            n=n, xtx=xtx, xty=np.concatenate([plain.xty, (x * plain.ysum)[..., None]], axis=-1),
            yty=plain.yty, xsum=np.concatenate([plain.xsum, (n * x)[..., None]], axis=-1),
            ysum=plain.ysum)
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


def simulate_batches(
    design: SimulationDesign, seed: int, reps: int, *, scenario: int = 0,
    generator: str = "patients", batch_size: int | None = None,
) -> Iterator[tuple[range, SimulatedSums]]:
    """Replicates ``0 .. reps - 1`` of a scenario, drawn batch by batch.

    Parameters
    ----------
    design : SimulationDesign
        The scenario.
    seed, scenario : int
        Identify the streams (:func:`replicate_rng`).
    reps : int
        Number of replicates.
    generator : {"patients", "sums"}, default "patients"
        How trials are drawn (:func:`simulate_sums`).
    batch_size : int, optional
        Replicates per batch; by default as many as fit in :data:`BATCH_BYTES`
        (:func:`batch_size_for`). Results do not depend on it.

    Yields
    ------
    range, SimulatedSums
        The replicate numbers of a batch and their per-cluster sums.
    """
    step = batch_size_for(design) if batch_size is None else int(batch_size)
    if step < 1:
        raise TrialstatsError("The batch size must be at least 1.")
    for start in range(0, reps, step):
        batch = range(start, min(start + step, reps))
        yield batch, simulate_sums(design, seed, batch, scenario, generator)
