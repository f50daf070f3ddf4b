"""Simulated cluster-randomised trials: how they are drawn, analysed and used to check methods.

One generating model (``draw``: random cluster intercepts at baseline and follow-up,
correlated patient effects, gamma cluster sizes, attrition; patient by patient or as exact
per-cluster sums, one random stream per replicate), one batched analyse-and-test of the
drawn trials with the real analysis's definition of an analysable trial (``analyse``), and
the validity study of the analysis methods' type I error and coverage (``validity``); and
for stepped-wedge and crossover designs the cluster-period model's draws and simulation
power (``periods``); trials allocated by covariate-constrained randomisation, the permutation
test's validity on them and their power (``constrained``). Power
by simulation (:mod:`trialstats.power.simulate`) builds on the first two. Submodules are
imported by name; nothing is re-exported here.
"""

__all__ = [
    "analyse",
    "constrained",
    "draw",
    "periods",
    "validity",
    "validity_binary",
]
