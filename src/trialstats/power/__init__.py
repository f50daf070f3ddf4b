"""Power and sample size for the next trial: analytic formulas, simulation, grids and plans.

Closed-form power and solving for continuous (``analytic``) and binary (``binary``) outcomes
on the shared power function and solver (``solving``) and design effects (``design_effect``),
and for two event rates (``rates``); power by simulating and analysing trials (``simulate``,
and ``simulate_glmm`` for binary and count outcomes analysed by a GLMM, drawing on
:mod:`trialstats.simulation`); scenario grids run in chunks (``grid``); and planning the next
trial from a finished analysis (``plan``). Figures of these results are drawn by
:mod:`trialstats.report`. Submodules are imported by name; nothing is re-exported here.
"""

__all__ = [
    "analytic",
    "binary",
    "design_effect",
    "design_power",
    "designs",
    "grid",
    "plan",
    "rates",
    "simulate",
    "simulate_glmm",
    "solving",
]
