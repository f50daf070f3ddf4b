"""Allocating the practices of a cluster-randomised trial to its two arms.

- :mod:`~trialstats.allocation.balance` — the practice covariates as cvcrand encodes them,
  balance scores of allocations, and the balance table of one allocation;
- :mod:`~trialstats.allocation.constrained` — covariate-constrained randomisation (Raab &
  Butcher 2001; Moulton 2004; Li et al. 2016, 2017): enumerate or sample allocations, keep the
  best-balanced, draw one, and check how often each pair of practices shares an arm;
- :mod:`~trialstats.allocation.sequential` — simple randomisation, stratified permuted blocks
  and minimisation with a random element (Pocock & Simon 1975).

The accepted set of a constrained randomisation is what the clustered permutation test of
:mod:`trialstats.analysis.permutation` permutes over.
"""

__all__ = [
    "balance",
    "constrained",
    "sequential",
]
