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
    "batched",
    "binary_sensitivity",
    "chained",
    "chained_glmm",
    "cluster_level",
    "delta",
    "design",
    "effects",
    "gee_glm",
    "glmm",
    "glmm_likelihood",
    "glmm_nested",
    "glmm_nested_likelihood",
    "glmm_repeated",
    "glmm_rows",
    "glmm_subgroups",
    "icc",
    "imputation",
    "imputation_glmm",
    "inference",
    "marginal",
    "missingness",
    "nested_reml",
    "period_analysis",
    "period_inference",
    "period_sensitivity",
    "permutation",
    "primary",
    "reml",
    "reml_periods",
    "repeated",
    "robust",
    "roots",
    "rows",
    "sensitivity",
    "subgroups",
]
