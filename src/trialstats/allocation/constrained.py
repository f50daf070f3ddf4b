r"""Covariate-constrained randomisation and its diagnostics.

The randomisation space is every allocation of *n* practices with :math:`n_1` in the
intervention arm, :math:`\binom{n}{n_1}` of them, enumerated in lexicographic order of the
treated practices (R's ``combn``, so the order is cvcrand's) when there are at most
:data:`MAX_ENUMERATED`; otherwise a stated number *S* of them is sampled uniformly without
replacement. Each allocation gets its balance score :math:`B(a)`
(:mod:`trialstats.allocation.balance`). The constrained space keeps the
:math:`\mathrm{round}(qR)` best-scored of the *R* allocations (cut-off quantile *q*; ties in
score are kept in enumeration order and R's round-half-even is used, both as cvcrand) or the
*N* best (``top``); one allocation is drawn uniformly from it with the seed.

Diagnostics (Li et al. 2016, *Stat Med* 35:1565; cvcrand's ``check_validity``): for every pair
of practices, the number and fraction of accepted allocations that put them in the same arm.
A pair that is always or never together means the constraint has fixed part of the allocation:
the design is then not valid for a permutation test (Bailey & Rowley 1987) and the analysis
cannot separate those practices' effects from the intervention's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, combinations

import numpy as np
import pandas as pd

from trialstats.allocation.balance import balance_scores
from trialstats.errors import TrialstatsError

#: Largest randomisation space that is enumerated (C(24, 12) = 2,704,156 fits; C(30, 15)
#: = 155,117,520 does not).
MAX_ENUMERATED = 3_000_000
#: Relative difference in balance score below which two scores are tied.
TIE_TOLERANCE = 1e-10


def count_allocations(n: int, n_treated: int) -> int:
    """Number of allocations of ``n`` practices with ``n_treated`` in the intervention arm."""
    return math.comb(n, n_treated)


def n_treated_for(n: int, ratio: float) -> int:
    """Practices in the intervention arm for an intervention:control ``ratio`` of ``n``.

    :math:`\\mathrm{round}(nQ/(1+Q))` with halves rounded down (the odd practice goes to
    control); at least one practice in each arm.
    """
    if ratio <= 0:
        raise TrialstatsError(f"the allocation ratio must be positive, not {ratio}.")
    n_treated = math.ceil(n * ratio / (1 + ratio) - 0.5)
    if not 0 < n_treated < n:
        raise TrialstatsError(f"a ratio of {ratio} leaves an arm empty with {n} practices.")
    return n_treated


def enumerate_allocations(n: int, n_treated: int) -> np.ndarray:
    """Every allocation, one per row (bool, True = intervention), in ``combn`` order.

    Raises
    ------
    TrialstatsError
        If there are more than :data:`MAX_ENUMERATED`; the message offers sampling.
    """
    total = count_allocations(n, n_treated)
    if total > MAX_ENUMERATED:
        raise TrialstatsError(
            f"{n} practices with {n_treated} in the intervention arm have {total:,} possible "
            f"allocations, too many to enumerate (the limit is {MAX_ENUMERATED:,}); sample "
            f"allocations uniformly instead (--sample N, e.g. --sample 100000)."
        )
    treated = np.fromiter(chain.from_iterable(combinations(range(n), n_treated)),
                          dtype=np.int16, count=total * n_treated).reshape(total, n_treated)
    allocations = np.zeros((total, n), dtype=bool)
    np.put_along_axis(allocations, treated, True, axis=1)
    return allocations


def sample_allocations(
    n: int, n_treated: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` distinct allocations drawn uniformly without replacement (bool rows).

    Allocations are drawn uniformly and repeats discarded until ``size`` distinct ones are
    found, which is sequential sampling without replacement; rows keep the order of drawing.
    """
    total = count_allocations(n, n_treated)
    if not 0 < size <= total:
        raise TrialstatsError(f"cannot sample {size:,} distinct allocations: there are "
                              f"{total:,} in all (enumerate them instead).")
    found = np.zeros((0, n), dtype=bool)
    while len(found) < size:
        batch = max(2 * (size - len(found)), 64)
        order = np.argsort(rng.random((batch, n)), axis=1)[:, :n_treated]
        drawn = np.zeros((batch, n), dtype=bool)
        np.put_along_axis(drawn, order, True, axis=1)
        found = np.concatenate([found, drawn])
        packed = np.packbits(found, axis=1)
        _, first = np.unique(packed, axis=0, return_index=True)
        found = found[np.sort(first)][:size]
    return found


def accepted_indices(
    scores: np.ndarray, *, cutoff: float | None = None, top: int | None = None
) -> np.ndarray:
    """Indices of the constrained space: the best ``round(cutoff * R)`` or ``top`` scores.

    The order is by score, ties in their original order (cvcrand's ``order``); scores
    that differ by less than a fraction :data:`TIE_TOLERANCE` count as tied, so that an
    allocation and its mirror image, whose scores are equal but for rounding error, are
    ordered by enumeration as in R. ``round`` is half-to-even, as R's.
    """
    if (cutoff is None) == (top is None):
        raise TrialstatsError("give either a cut-off quantile or a number of allocations to "
                              "keep (--cutoff Q or --top N), not both.")
    if cutoff is not None:
        if not 0 < cutoff < 1:
            raise TrialstatsError(f"the cut-off must be between 0 and 1, not {cutoff}.")
        keep = int(np.round(cutoff * len(scores)))
    else:
        keep = int(top)
        if not 0 < keep <= len(scores):
            raise TrialstatsError(f"--top {keep} must be between 1 and the {len(scores):,} "
                                  f"allocations scored.")
    if keep < 2:
        raise TrialstatsError(
            f"the constrained space would hold {keep} allocation(s) of {len(scores):,}: that "
            f"is a fixed allocation, not a randomisation; raise the cut-off or --top."
        )
    key = np.round(np.log(np.maximum(scores, np.finfo(float).tiny)) / TIE_TOLERANCE)
    return np.argsort(key, kind="stable")[:keep]


@dataclass(frozen=True)
class ConstrainedRandomisation:
    """The outcome of a constrained randomisation.

    Attributes
    ----------
    scores : ndarray (R,)
        Balance score of every allocation considered.
    accepted : ndarray (m, n) of bool
        The constrained space, best score first.
    accepted_scores : ndarray (m,)
    chosen : int
        Row of ``accepted`` drawn.
    cutoff_score : float
        The largest accepted score.
    n_possible : int
        :math:`\\binom{n}{n_1}`.
    enumerated : bool
        Whether every allocation was scored (else ``len(scores)`` were sampled).
    """

    scores: np.ndarray
    accepted: np.ndarray
    accepted_scores: np.ndarray
    chosen: int
    cutoff_score: float
    n_possible: int
    enumerated: bool

    @property
    def allocation(self) -> np.ndarray:
        """The drawn allocation (bool, True = intervention)."""
        return self.accepted[self.chosen]

    @property
    def score(self) -> float:
        """Balance score of the drawn allocation."""
        return float(self.accepted_scores[self.chosen])


def constrained_randomisation(
    z: np.ndarray, n_treated: int, *, metric: str = "l2", cutoff: float | None = 0.1,
    top: int | None = None, sample: int | None = None, seed: int,
) -> ConstrainedRandomisation:
    """Score the allocations, keep the best-balanced, draw one (module notes).

    Parameters
    ----------
    z : ndarray (n, p)
        :func:`trialstats.allocation.balance.covariate_matrix`.
    n_treated : int
        Practices in the intervention arm.
    metric : {"l2", "l1"}
    cutoff, top
        Keep the best ``round(cutoff * R)`` allocations, or the best ``top`` (give one; with
        ``top`` pass ``cutoff=None``).
    sample : int, optional
        Score this many allocations sampled uniformly without replacement instead of
        enumerating every one.
    seed : int
        Seeds the sampling and the draw.
    """
    rng = np.random.default_rng(seed)
    n = z.shape[0]
    if sample is None:
        allocations = enumerate_allocations(n, n_treated)
    else:
        allocations = sample_allocations(n, n_treated, sample, rng)
    scores = balance_scores(allocations, z, metric)
    keep = accepted_indices(scores, cutoff=cutoff, top=top)
    return ConstrainedRandomisation(
        scores=scores, accepted=allocations[keep], accepted_scores=scores[keep],
        chosen=int(rng.integers(len(keep))), cutoff_score=float(scores[keep[-1]]),
        n_possible=count_allocations(n, n_treated), enumerated=sample is None,
    )


def pair_coallocation(accepted: np.ndarray, ids: list[str]) -> pd.DataFrame:
    """How often each pair of practices is in the same arm across the accepted allocations.

    Returns
    -------
    DataFrame
        ``practice_1, practice_2, n_same_arm, n_different_arms, fraction_same_arm``; one row
        per pair, in the order of ``ids`` (cvcrand's ``cluster_coincidence``).
    """
    a = accepted.astype(np.float64)
    same = a.T @ a + (1 - a).T @ (1 - a)
    first, second = np.triu_indices(len(ids), k=1)
    n_same = same[first, second].astype(np.int64)
    return pd.DataFrame({
        "practice_1": np.asarray(ids, dtype=object)[first],
        "practice_2": np.asarray(ids, dtype=object)[second],
        "n_same_arm": n_same, "n_different_arms": len(accepted) - n_same,
        "fraction_same_arm": n_same / len(accepted),
    })


def over_constraint(pairs: pd.DataFrame, n_accepted: int, alpha: float = 0.05) -> list[str]:
    """Warnings about a constrained space too tight for a valid permutation test.

    Warns when some pair of practices is always, or never, in the same arm, and when the
    space is so small that a permutation p-value cannot reach ``alpha`` (its smallest value
    is :math:`1/m` for *m* accepted allocations, or :math:`2/m` when every allocation's
    mirror image is accepted too).
    """
    warnings = []
    for fraction, how in ((1.0, "always in the same arm"), (0.0, "never in the same arm")):
        hit = pairs[pairs["fraction_same_arm"] == fraction]
        if len(hit):
            shown = ", ".join(f"{a}-{b}" for a, b in zip(hit["practice_1"][:5],
                                                          hit["practice_2"][:5], strict=True))
            more = f" and {len(hit) - 5} more" if len(hit) > 5 else ""
            warnings.append(
                f"over-constrained: {len(hit)} pair(s) of practices are {how} in every "
                f"accepted allocation ({shown}{more}); loosen the cut-off or the weights, or "
                f"the permutation test is not valid for them."
            )
    if 2 / n_accepted > alpha:
        warnings.append(
            f"only {n_accepted} accepted allocations: a permutation test on them cannot give "
            f"a p-value below {min(1.0, 2 / n_accepted):.3g} (alpha {alpha}); keep more."
        )
    return warnings
