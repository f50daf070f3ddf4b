"""The trial analyses: the primary mixed model and every sensitivity and secondary analysis.

From the validated patients to tidy result rows (:mod:`trialstats.contract`): the
analysis-ready model data (``design``), exact REML for the random-intercept model from
per-cluster sums (``reml``, with its root finder ``roots``) and for patients nested in
practices (``nested_reml``), small-sample contrast tests (``inference``), the ICC with its
profile-likelihood interval (``icc``), effect sizes and MCID verdicts (``effects``), the
shared row building and the "each outcome x month" driver (``rows``), the primary analysis
(``primary``), the named sensitivity analyses (``sensitivity``: ``imputation``, ``repeated``,
``cluster_level``, ``robust``, ``subgroups``) and the missing-data summaries
(``missingness``); stepped-wedge, crossover and parallel-baseline trials have their own
primary and sensitivity rows (``period_analysis``, ``period_sensitivity``). Submodules are
imported by name; nothing is re-exported here.
"""

__all__ = [
    "cluster_level",
    "design",
    "effects",
    "icc",
    "imputation",
    "inference",
    "missingness",
    "nested_reml",
    "period_analysis",
    "period_sensitivity",
    "primary",
    "reml",
    "repeated",
    "robust",
    "roots",
    "rows",
    "sensitivity",
    "subgroups",
]
