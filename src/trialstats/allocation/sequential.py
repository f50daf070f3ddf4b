r"""Simple randomisation, stratified permuted blocks and minimisation.

Each allocates practices in the order given (the order they enter the trial) to the
intervention (1) or control (0) arm with target ratio :math:`Q` = intervention : control,
written as the smallest whole numbers :math:`r_1 : r_0` (e.g. 1 : 1, 2 : 1, 3 : 2).

- **Simple**: each practice independently, intervention with probability
  :math:`\pi = Q / (1 + Q)`.
- **Stratified permuted blocks**: within each stratum (a combination of levels of the strata
  covariates) practices fill consecutive blocks holding :math:`2 r_1` intervention and
  :math:`2 r_0` control places in random order; the last block of a stratum may be left
  incomplete.
- **Minimisation with a random element** (Pocock & Simon 1975; Altman & Bland 2005, *BMJ*
  330:843): for factors :math:`f` with the new practice at level :math:`l_f`, let
  :math:`c_{f,a}` count the practices already in arm *a* at that level. Placing the practice
  in arm *b* gives the imbalance :math:`G_b = \sum_f \left|c^{(b)}_{f,1}/r_1 -
  c^{(b)}_{f,0}/r_0\right|` (counts after the placement, scaled by the target ratio; the range
  over the two arms). The arm with the smaller :math:`G` is taken with probability *p*
  (default 0.8), the other with :math:`1 - p`; ties are broken at random with probability
  :math:`\pi`. A numeric factor is split at its median into ``<= median`` and ``> median``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pandas as pd

from trialstats.errors import TrialstatsError


def ratio_parts(ratio: float) -> tuple[int, int]:
    """The ratio as the smallest whole numbers ``(r1, r0)``, denominators up to 10."""
    if ratio <= 0:
        raise TrialstatsError(f"the allocation ratio must be positive, not {ratio}.")
    fraction = Fraction(ratio).limit_denominator(10)
    return fraction.numerator, fraction.denominator


def simple_randomisation(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Each of ``n`` practices in the intervention arm with probability ``Q / (1 + Q)``.

    Returns
    -------
    ndarray (n,) of int
        1 = intervention, 0 = control.
    """
    return (rng.random(n) < ratio / (1 + ratio)).astype(int)


def permuted_blocks(
    strata: pd.Series, ratio: float, rng: np.random.Generator
) -> np.ndarray:
    """Stratified permuted blocks of ``2 (r1 + r0)`` places (module notes).

    Parameters
    ----------
    strata : Series
        Stratum label of each practice, in allocation order (one stratum when constant).

    Returns
    -------
    ndarray (n,) of int
    """
    r1, r0 = ratio_parts(ratio)
    block = np.repeat([1, 0], [2 * r1, 2 * r0])
    arms = np.empty(len(strata), dtype=int)
    for _, positions in strata.groupby(strata, sort=True).indices.items():
        n_blocks = -(-len(positions) // len(block))
        places = np.concatenate([rng.permutation(block) for _ in range(n_blocks)])
        arms[positions] = places[: len(positions)]
    return arms


def minimisation_factors(practices: pd.DataFrame, factors: Sequence[str],
                         categorical: Sequence[str] = ()) -> pd.DataFrame:
    """The factors' levels as text; numeric factors split at their median."""
    columns = {}
    for name in factors:
        values = practices[name]
        if name in categorical:
            columns[name] = values.astype(str)
        else:
            median = float(np.median(values.to_numpy(dtype=float)))
            columns[name] = np.where(values <= median, f"<= {median:g}", f"> {median:g}")
    return pd.DataFrame(columns, index=practices.index)


def minimisation(
    factors: pd.DataFrame, ratio: float, rng: np.random.Generator,
    probability: float = 0.8,
) -> np.ndarray:
    """Pocock–Simon minimisation with a random element (module notes).

    Parameters
    ----------
    factors : DataFrame
        Level of each minimisation factor (columns) for each practice, in allocation order
        (:func:`minimisation_factors`).
    ratio : float
        Target intervention : control ratio.
    rng : numpy.random.Generator
    probability : float
        Probability of the arm that minimises the imbalance, in [0.5, 1].

    Returns
    -------
    ndarray (n,) of int
    """
    if not 0.5 <= probability <= 1:
        raise TrialstatsError(f"the minimisation probability must be in [0.5, 1], "
                              f"not {probability}.")
    if factors.shape[1] == 0:
        raise TrialstatsError("minimisation needs factors (--balance COLS).")
    r1, r0 = ratio_parts(ratio)
    scale = np.array([1 / r0, 1 / r1])  # arm 0, arm 1
    p_treated = r1 / (r1 + r0)
    codes = np.column_stack([pd.factorize(factors[c])[0] for c in factors.columns])
    counts = [np.zeros((codes[:, f].max() + 1, 2)) for f in range(codes.shape[1])]
    arms = np.empty(len(codes), dtype=int)
    for j, levels in enumerate(codes):
        current = np.array([counts[f][level] for f, level in enumerate(levels)])  # (F, 2)
        imbalance = [
            np.abs(np.diff((current + np.eye(2)[arm]) * scale, axis=1)).sum() for arm in (0, 1)
        ]
        draw = rng.random()
        if np.isclose(imbalance[0], imbalance[1]):
            arm = int(draw < p_treated)
        else:
            best = int(np.argmin(imbalance))
            arm = best if draw < probability else 1 - best
        arms[j] = arm
        for f, level in enumerate(levels):
            counts[f][level, arm] += 1
    return arms
