r"""A stepped-wedge variant of a synthetic trial.

The practices (ids, list size, IMD score) and the pool of patient characteristics come from
:func:`trialstats.data.synthetic.generate_trial` with the same specification and seed; the
practices are then randomised to :math:`S` sequences of equal size (practice :math:`i` in
sequence :math:`s(i)`, switching to the intervention in period :math:`s(i) + 1` of
:math:`T = S + 1`), :math:`m` participants are recruited in each cluster-period, and every
outcome of the specification is drawn, independently, from the cross-sectional model of
:mod:`trialstats.simulation.periods` in total-SD units,

.. math::

    z_{itk} = \delta X_{s(i)t} + u_i + v_{it} + e_{itk}, \quad
    u_i \sim N(0, \rho\,\mathrm{CAC}),\ v_{it} \sim N(0, \rho(1 - \mathrm{CAC})),\
    e_{itk} \sim N(0, 1 - \rho),

with the outcome's ICC :math:`\rho` and standardised effect :math:`\delta`, and put on the
instrument's scale as ``mean + sd * z``, clipped to its range and rounded to its step (as the
parallel generator). Each participant's age, sex and condition is a draw (with replacement) of
one patient of the parallel trial; a fraction ``followup.item_missing`` of each outcome is
missing completely at random. Period effects are 0. One seed gives byte-identical tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trialstats.data.synthetic import _to_scale, generate_trial
from trialstats.errors import TrialstatsError
from trialstats.simulation.periods import simulate_period_patients, stepped_wedge_treatment


def stepped_wedge_trial(
    spec: dict[str, Any], seed: int, *, n_sequences: int, cluster_period_size: int,
    cac: float = 0.8,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the stepped-wedge variant of the synthetic trial ``spec``.

    Parameters
    ----------
    spec : dict
        A validated synthetic-trial specification (:func:`~trialstats.data.synthetic.
        load_synthetic_spec`).
    seed : int
        Seed of every draw (numpy ``Generator``).
    n_sequences : int
        Sequences :math:`S`; the number of practices must be a multiple of it.
    cluster_period_size : int
        Participants per cluster-period :math:`m`.
    cac : float, default 0.8
        Cluster autocorrelation of every outcome.

    Returns
    -------
    practices : DataFrame
        ``practice_id, sequence, switch_period, list_size, imd_score``.
    patients : DataFrame
        One row per participant: ``patient_id, practice_id, period, age, sex, condition`` and
        one column per outcome.
    """
    parallel_practices, parallel_patients = generate_trial(spec, seed)
    n_practices = len(parallel_practices)
    if n_sequences < 2 or n_practices % n_sequences:
        raise TrialstatsError(f"{n_practices} practices cannot form {n_sequences} equal "
                              f"sequences (need at least two sequences).")
    rng = np.random.default_rng([seed, 1])
    per_sequence = n_practices // n_sequences
    order = rng.permutation(n_practices)
    treatment = stepped_wedge_treatment(n_sequences)
    draws = [
        simulate_period_patients(treatment, per_sequence, cluster_period_size,
                                 icc=outcome["icc"], cac=cac, effect=outcome["effect"], rng=rng)
        for outcome in spec["outcomes"]
    ]
    rows = draws[0]
    chosen = order[rows["cluster"].to_numpy()]
    practices = parallel_practices.iloc[order][["practice_id", "list_size", "imd_score"]]
    practices.insert(1, "sequence", np.arange(n_practices) // per_sequence + 1)
    practices.insert(2, "switch_period", practices["sequence"] + 1)
    practices = practices.sort_values("practice_id").reset_index(drop=True)
    donors = rng.integers(0, len(parallel_patients), len(rows))
    patients = pd.DataFrame({
        "patient_id": [f"{spec['patients']['id_prefix']}{k + 1:05d}" for k in range(len(rows))],
        "practice_id": parallel_practices["practice_id"].to_numpy()[chosen],
        "period": rows["period"].to_numpy(),
        **{c: parallel_patients[c].to_numpy()[donors] for c in ("age", "sex", "condition")},
    })
    missing = spec["followup"]["item_missing"]
    for outcome, draw in zip(spec["outcomes"], draws, strict=True):
        low, high = outcome["range"]
        values = _to_scale(outcome["mean"] + outcome["sd"] * draw["y"].to_numpy(), low, high,
                           outcome["step"])
        patients[outcome["name"]] = np.where(rng.random(len(rows)) < missing, np.nan, values)
    return practices, patients
