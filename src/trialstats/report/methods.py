"""The auto-written statistical-methods paragraph, its references, and the provenance table.

The paragraph is assembled from the configuration (model, covariates, df methods, alpha,
MCIDs), the CONSORT counts (who was analysed) and the results (sensitivity analyses run,
fits that did not converge), so that it cannot drift from what was done. Provenance lists
checksums of every file the report rests on, the software versions and the git commit; the
caller gathers those facts (file I/O stays at the command's edge).
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Sequence
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.contract import MEAN_DIFFERENCE, RATE_RATIO
from trialstats.report.consort import primary_outcome
from trialstats.report.document import Table
from trialstats.report.format import (
    Words,
    arm_order,
    contrast_text,
    month_label,
    sentence,
    truthy,
    words,
)

#: Packages whose versions are reported (those installed).
PACKAGES = ("trialstats", "numpy", "scipy", "pandas", "statsmodels", "matplotlib",
            "python-docx")

REFERENCES = {
    "consort": "Campbell MK, Piaggio G, Elbourne DR, Altman DG. Consort 2010 statement: "
               "extension to cluster randomised trials. BMJ 2012;345:e5661.",
    "kenward-roger": "Kenward MG, Roger JH. Small sample inference for fixed effects from "
                     "restricted maximum likelihood. Biometrics 1997;53:983–997.",
    "satterthwaite": "Satterthwaite FE. An approximate distribution of estimates of variance "
                     "components. Biometrics Bulletin 1946;2:110–114.",
    "between-within": "Schluchter MD, Elashoff JD. Small-sample adjustments to tests with "
                      "unbalanced repeated measures assuming several covariance structures. "
                      "J Stat Comput Simul 1990;37:69–87.",
    "eldridge": "Eldridge SM, Ashby D, Kerry S. Sample size for cluster randomized trials: "
                "effect of coefficient of variation of cluster size and analysis method. "
                "Int J Epidemiol 2006;35:1292–1300.",
    "teerenstra": "Teerenstra S, Eldridge S, Graff M, de Hoop E, Borm GF. A simple sample "
                  "size formula for analysis of covariance in cluster randomized trials. "
                  "Stat Med 2012;31:2169–2178.",
    "morris": "Morris TP, White IR, Crowther MJ. Using simulation studies to evaluate "
              "statistical methods. Stat Med 2019;38:2074–2102.",
    "rubin": "Rubin DB. Multiple imputation for nonresponse in surveys. New York: Wiley; 1987.",
    "barnard-rubin": "Barnard J, Rubin DB. Small-sample degrees of freedom with multiple "
                     "imputation. Biometrika 1999;86:948–955.",
    "van-buuren": "van Buuren S, Groothuis-Oudshoorn K. mice: multivariate imputation by "
                  "chained equations in R. J Stat Softw 2011;45(3):1–67.",
    "hayes-moulton": "Hayes RJ, Moulton LH. Cluster randomised trials. 2nd ed. Boca Raton: "
                     "CRC Press; 2017.",
    "liang-zeger": "Liang KY, Zeger SL. Longitudinal data analysis using generalized linear "
                   "models. Biometrika 1986;73:13–22.",
    "mancl-derouen": "Mancl LA, DeRouen TA. A covariance estimator for GEE with improved "
                     "small-sample properties. Biometrics 2001;57:126–134.",
    "kauermann-carroll": "Kauermann G, Carroll RJ. A note on the efficiency of sandwich "
                         "covariance matrix estimation. J Am Stat Assoc 2001;96:1387–1396.",
    "fay-graubard": "Fay MP, Graubard BI. Small-sample adjustments for Wald-type tests using "
                    "sandwich estimators. Biometrics 2001;57:1198–1206.",
    "bell-mccaffrey": "Bell RM, McCaffrey DF. Bias reduction in standard errors for linear "
                      "regression with multi-stage samples. Surv Methodol 2002;28:169–181.",
    "pustejovsky-tipton": "Pustejovsky JE, Tipton E. Small-sample methods for cluster-robust "
                          "variance estimation and hypothesis testing in fixed effects models. "
                          "J Bus Econ Stat 2018;36:672–683.",
    "lme4": "Bates D, Mächler M, Bolker B, Walker S. Fitting linear mixed-effects models "
            "using lme4. J Stat Softw 2015;67(1):1–48.",
    "localio": "Localio AR, Margolis DJ, Berlin JA. Relative risks and confidence intervals "
               "were easily computed indirectly from multivariable logistic regression. "
               "J Clin Epidemiol 2007;60:874–882.",
    "gail": "Gail MH, Mark SD, Carroll RJ, Green SB, Pee D. On design considerations and "
            "randomization-based inference for community intervention trials. Stat Med "
            "1996;15:1069–1092.",
    "li-constrained": "Li F, Lokhnygina Y, Murray DM, Heagerty PJ, DeLong ER. An evaluation of "
                      "constrained randomization for the design and analysis of "
                      "group-randomized trials. Stat Med 2016;35:1565–1579.",
    "carpenter-kenward": "Carpenter JR, Kenward MG. Multiple imputation and its application. "
                         "Chichester: Wiley; 2013.",
    "li-redden": "Li P, Redden DT. Comparing denominator degrees of freedom approximations "
                 "for the generalized linear mixed model in analyzing binary outcome in small "
                 "sample cluster-randomized trials. BMC Med Res Methodol 2015;15:38.",
}

_DF_TEXT = {
    "kenward-roger": "the Kenward-Roger approximation, which also corrects the standard "
                     "error for small numbers of clusters",
    "satterthwaite": "the Satterthwaite approximation",
    "between-within": "the between-within method (clusters minus cluster-level parameters)",
    "residual": "the residual degrees of freedom ({participants} minus parameters)",
}
_DF_REFERENCES = {
    "kenward-roger": ["kenward-roger"],
    "satterthwaite": ["satterthwaite"],
    "between-within": ["between-within", "li-redden"],
    "residual": [],
}


def _fill(template: str, w: Words) -> str:
    """A text template with the trial's words (``{cluster}``, ``{participants}`` ...)."""
    return template.replace("{detail}", "{{detail}}").format(
        cluster=w.cluster, clusters=w.clusters, participant=w.participant,
        participants=w.participants)


def _df_text(method: str, w: Words) -> str:
    return _fill(_DF_TEXT[method], w)


def software_versions() -> dict[str, str]:
    """Python and the installed versions of :data:`PACKAGES` (absent ones are left out)."""
    versions = {"Python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def reference_keys(config: dict[str, Any], analyses: Sequence[str] = (),
                   extra: Sequence[str] = ()) -> list[str]:
    """Keys of :data:`REFERENCES` cited by the report, in citation order.

    Parameters
    ----------
    config : dict
        The validated run configuration (the methods text cites by its df methods).
    analyses : sequence of str
        The ``analysis`` labels of ``sensitivity.csv`` (each family cites its methods).
    extra : sequence of str
        Keys cited by later sections (planning), appended in order when not yet cited.
    """
    keys = ["consort"]
    if _has_continuous(config):
        keys += [k for k in _DF_REFERENCES.get(config["analysis"]["df_method"][0], [])
                 if k not in keys]
    glmm = _glmm_methods(config)
    if glmm:
        keys += [k for k in ("lme4", *(("localio",) if "binary" in _types(config) else ()),
                             *_DF_REFERENCES.get(glmm[0], [])) if k not in keys]
    for method in config["analysis"]["df_method"][1:] if _has_continuous(config) else []:
        keys += [k for k in _DF_REFERENCES.get(method, []) if k not in keys]
    for family in _families(analyses):
        keys += [k for k in SENSITIVITY_REFERENCES.get(family, ()) if k not in keys]
    return keys + [k for k in dict.fromkeys(extra) if k not in keys]


def _types(config: dict[str, Any]) -> set[str]:
    """The outcome types of the trial."""
    return {o.get("type", "continuous") for o in config["outcomes"]}


def _has_continuous(config: dict[str, Any]) -> bool:
    return "continuous" in _types(config)


def _glmm_methods(config: dict[str, Any]) -> list[str]:
    """The GLMM df methods when the trial has binary or count outcomes ([] otherwise)."""
    if not _types(config) - {"continuous"}:
        return []
    return config["analysis"].get("glmm_df_method", ["between-within"])


def _families_used(results: pd.DataFrame) -> dict[str, list[str]]:
    """Count outcomes by the GLMM family their primary fit used (``notes``: "family: ...")."""
    used: dict[str, list[str]] = {}
    for _, row in results.drop_duplicates("outcome").iterrows():
        notes = str(row["notes"]) if pd.notna(row["notes"]) else ""
        if row.get("effect_measure") == RATE_RATIO:
            family = "negative binomial" if "family: negative binomial" in notes else "Poisson"
            used.setdefault(family, []).append(str(row["outcome"]))
    return used


def _glmm_text(config: dict[str, Any], level: str, cites: list[str],
               results: pd.DataFrame) -> str:
    """The methods sentences on binary and count outcomes ("" when there are none)."""
    methods = _glmm_methods(config)
    if not methods:
        return ""
    types = _types(config)
    w = words(config)
    labels = {o["name"]: o["label"] for o in config["outcomes"]}
    nodes = config["analysis"].get("quadrature_points", DEFAULT_N_AGQ)
    fitting = ("the Laplace approximation" if nodes == 1 else
               f"adaptive Gauss-Hermite quadrature with {nodes} nodes")
    test = ("Wald z tests" if methods[0] == "z" else "t distributions with degrees of "
            f"freedom from {_DF_TEXT[methods[0]]} {_cite(_DF_REFERENCES[methods[0]], cites)}")
    kinds = _join([k for k in ("binary", "count") if k in types])
    text = (
        f" {sentence(kinds)} outcomes were analysed with generalised linear mixed models: "
        "the follow-up value regressed on arm, its baseline value on its own scale (where "
        "measured) and the covariates, with a "
        f"random intercept for {w.cluster}, fitted by maximum likelihood with {fitting} (as "
        f"lme4's glmer {_cite(['lme4'], cites)})."
    )
    if "binary" in types:
        text += (
            " For binary outcomes the model is logistic and the treatment effect the odds "
            "ratio; the marginal risk difference and risk ratio are standardised from the "
            "same fit (the predicted risks of every analysed "
            f"{w.participant} under each arm, averaged over the random intercept) with "
            f"delta-method confidence intervals {_cite(['localio'], cites)}, and the ICC is on "
            "the latent scale (residual variance π²/3)."
        )
    if "count" in types:
        used = _families_used(results)
        chosen = "; ".join(f"{family} for {_join([labels.get(n, n) for n in names])}"
                           for family, names in used.items())
        text += (
            " For counts the model has a log link with the log exposure as an offset, Poisson "
            "or negative binomial (chosen when a likelihood-ratio test of over-dispersion gave "
            "p < 0.05" + (f"; {chosen}" if chosen else "") + "), and the treatment effect is "
            "the rate ratio."
        )
    return text + (
        f" Their {level} confidence intervals and p-values use {test.rstrip()}; they have no "
        "standardised effect."
    )


def _cite(keys: list[str], order: list[str]) -> str:
    return "[" + ", ".join(str(order.index(k) + 1) for k in keys) + "]" if keys else ""


def methods_paragraphs(
    config: dict[str, Any], counts: pd.DataFrame, results: pd.DataFrame,
    sensitivity: pd.DataFrame | None, versions: dict[str, str],
) -> list[str]:
    """The statistical-methods section as paragraphs of plain text.

    Parameters
    ----------
    config : dict
        The validated run configuration.
    counts : DataFrame
        From :func:`trialstats.report.consort.consort_counts`.
    results : DataFrame
        ``primary.csv``.
    sensitivity : DataFrame or None
        ``sensitivity.csv`` when present.
    versions : dict
        From :func:`software_versions`.

    Returns
    -------
    list of str
        Paragraphs citing :func:`reference_keys` by number (``[1]``).
    """
    design, analysis = config["design"], config["analysis"]
    ran = _ran(sensitivity)
    analyses = list(dict.fromkeys(ran["analysis"].astype(str)))
    glmm_analyses = set(ran.loc[ran["effect_measure"] != MEAN_DIFFERENCE, "analysis"]
                        .astype(str).map(_family))
    cites = reference_keys(config, analyses)
    get = counts.set_index(["stage", "arm"])
    arms = arm_order(config, counts.loc[counts["arm"] != "all", "arm"])
    w = words(config)
    allocated = [f"{int(get.loc[('allocated', a), 'clusters']):,} to {w.arm(a)}" for a in arms]
    withdrawn = int(counts.loc[counts["stage"] == "withdrawn", "clusters"].sum())
    months = [month_label(m, -1) for m in design["followup_months"]]
    level = f"{100 * (1 - analysis['alpha']):g}%"
    covariates = analysis["covariates"]
    adjusted = _join(["the baseline score of the same outcome", *covariates])
    first, *others = analysis["df_method"]
    recruited = int(get.loc[("randomised", "all"), "patients"])
    design_text = (
        f"{sentence(w.clusters)} were randomised ({_join(allocated)}) and "
        f"{w.count(recruited, True)} were recruited in them; {w.count(withdrawn)} withdrew "
        f"after randomisation. The flow of {w.clusters} and {w.participants} is reported "
        "following the "
        f"CONSORT 2010 extension to cluster randomised trials {_cite(['consort'], cites)}."
    )
    glmm = bool(_glmm_methods(config))
    model = (
        f"Each outcome at each follow-up ({_join(months)}; primary time point "
        f"{month_label(design['primary_month'], -1)}) was analysed in the arm to which the "
        f"{w.cluster} was allocated."
    ) if not _has_continuous(config) else (
        f"Each {'continuous ' if glmm else ''}outcome at each follow-up ({_join(months)}; "
        f"primary time point "
        f"{month_label(design['primary_month'], -1)}) was analysed in the arm to which the "
        f"{w.cluster} was allocated with a linear mixed model: the follow-up score regressed on "
        f"arm and {adjusted}, with a random intercept for {w.cluster}, fitted by restricted "
        f"maximum likelihood. The treatment effect is the adjusted mean difference "
        f"({contrast_text(config)}) with a {level} confidence interval and a two-sided "
        f"p-value from a t distribution whose denominator degrees of freedom come from "
        f"{_df_text(first, w)} {_cite(_DF_REFERENCES[first], cites)}".rstrip()
        + "."
    )
    follow_up_only = [o["label"] for o in config["outcomes"]
                      if o.get("type", "continuous") == "continuous"
                      and not o.get("baseline", True)]
    if follow_up_only:
        model += (
            f" {sentence(_join(follow_up_only))} {'was' if len(follow_up_only) == 1 else 'were'} "
            "measured only at follow-up: adjusted for the covariates alone, with standardised "
            "effects divided by the standard deviation at that follow-up."
        )
    if others and _has_continuous(config):
        checks = [f"{_df_text(m, w)} {_cite(_DF_REFERENCES[m], cites)}".rstrip()
                  for m in others]
        model += (
            " As a check on the small-sample inference, the same models were also "
            f"summarised with {_join(checks)}; these results are shown beside the primary "
            "analysis in the sensitivity tables."
        )
    model += _glmm_text(config, level, cites, results)
    name = primary_outcome(config)
    analysed = int(counts.loc[counts["stage"] == "analysed", "patients"].sum())
    clusters = int(counts.loc[counts["stage"] == "analysed", "clusters"].sum())
    missing = (
        f"{sentence(w.participants)} missing the outcome, its baseline score or a covariate "
        "were left out of "
        "that analysis (complete-case analysis); for the first primary outcome, "
        f"{name['label']}, at {month_label(design['primary_month'], -1)}, {analysed:,} of "
        f"{recruited:,} recruited {w.participants} ({100 * analysed / recruited:.1f}%) in "
        f"{w.count(clusters)} were analysed."
    )
    effects = (
        f"The intracluster correlation coefficient (ICC) is the between-{w.cluster} variance as "
        "a share of the total variance."
        + (" Standardised effects divide the adjusted difference "
           "and its confidence limits by the standard deviation of the outcome at baseline over "
           f"all randomised {w.participants} with a baseline value, both arms pooled."
           if _has_continuous(config) else "")
        + " Each confidence "
        "interval was compared with the outcome's minimal clinically important difference "
        f"(MCID; {_mcid_text(config)}): an important benefit (or harm) is shown when the "
        "interval lies wholly beyond +MCID (or −MCID), an important effect is ruled out when "
        "it lies wholly between −MCID and +MCID, and the result is inconclusive otherwise."
        + (" For binary and count outcomes the MCID is set on the scale of one effect measure "
           "and judges that measure's interval only: a risk difference d against −d to +d, a "
           "ratio r against the band from 1/r to r on the log scale."
           if glmm else "")
    )
    paragraphs = [design_text, model, missing + " " + effects]
    if analyses:
        paragraphs.append(
            "Sensitivity analyses: "
            f"{'; '.join(_sensitivity_descriptions(analyses, cites, w, glmm_analyses))}. "
            "For the primary outcomes at the primary time point they are compared with the "
            "primary analysis in the sensitivity table; every outcome and month, the "
            "subgroup analyses and the missing-data summary are in the supplement."
        )
    failed = _not_converged(results, sensitivity)
    if failed:
        paragraphs.append(
            f"{failed} model fit{'s' if failed != 1 else ''} did not converge; "
            f"{'they are' if failed != 1 else 'it is'} reported, marked †, not dropped."
        )
    idle = sum(len(t) - len(_ran(t)) for t in (results, sensitivity) if t is not None)
    if idle:
        paragraphs.append(
            f"{idle} outcome-by-analysis result{'s were' if idle != 1 else ' was'} not "
            "estimable (an analysis that does not apply to the outcome's type, or data that "
            f"do not allow it); {'they are' if idle != 1 else 'it is'} shown as not estimable "
            "in the tables, with the reason in the notes column of the results files."
        )
    software = ", ".join(f"{k} {v}" for k, v in versions.items() if k != "Python")
    paragraphs.append(
        f"Analyses were run with Python {versions.get('Python', '')} ({software})."
    )
    return paragraphs


#: What each family of sensitivity analyses does, keyed by the start of its ``analysis`` label.
SENSITIVITY_METHODS = {
    "multiple imputation": "multiple imputation {detail}: missing baseline and follow-up "
    "scores imputed by chained equations with arm, the covariates, the other outcomes' scores "
    "and a random {cluster} intercept, the primary model fitted to each imputed dataset and "
    "the results pooled with Rubin's rules and Barnard–Rubin degrees of freedom",
    "repeated measures": "a repeated-measures mixed model of all follow-up scores together "
    "(arm × month, baseline score and covariates, random intercepts for {cluster} and for "
    "{participant} within {cluster}, Satterthwaite degrees of freedom)",
    "cluster-level": "a two-stage cluster-level analysis (Hayes & Moulton): residuals of a "
    "{participant}-level regression on the baseline score and covariates averaged by {cluster} "
    "and "
    "compared between arms by a t-test on J − 2 degrees of freedom, and the same test on "
    "unadjusted {cluster} means",
    "gee": "generalised estimating equations with an exchangeable working correlation and "
    "Mancl–DeRouen and Kauermann–Carroll small-sample corrected sandwich variances (t on "
    "J − 2 degrees of freedom) and the Fay–Graubard corrected variance (bound 0.75) with "
    "their degrees of freedom",
    "cr2": "the baseline-adjusted regression with CR2 cluster-robust standard errors and "
    "Bell–McCaffrey degrees of freedom",
    "subgroup": "exploratory subgroup analyses: the arm × subgroup interaction (F test) and "
    "the effect within each subgroup",
    "clustered permutation test": "a clustered permutation test: the residuals of a "
    "{participant}-level regression on the baseline score and covariates without arm, "
    "averaged by {cluster}, compared between arms over every allocation the randomisation "
    "could have produced (or a random sample of them), with a confidence interval by test "
    "inversion",
    "delta-adjustment": "delta-adjusted multiple imputation for outcomes missing not at "
    "random: each value of a grid of shifts (delta) added to the imputed follow-up values "
    "before the imputed datasets were analysed and pooled as above, and the tipping point "
    "at which the conclusion changes",
}


#: What each family does for binary and count outcomes, appended to its description when it
#: ran for one.
GLMM_SENSITIVITY_METHODS = {
    "cluster-level": "; for binary and count outcomes, {cluster} proportions (risk "
    "difference) or log rates (rate ratio) compared by the same t-test, and the covariate-"
    "adjusted ratio of observed to expected events per {cluster}, expected from a "
    "{participant}-level logistic or Poisson regression without arm",
    "gee": "; for binary and count outcomes with a logit or log link (odds or rate ratio)",
    "cr2": "; for binary outcomes a linear probability model (risk difference)",
    "repeated measures": "; for binary and count outcomes the logistic or Poisson mixed model "
    "with the same terms and random intercepts, fitted by maximum likelihood with nested "
    "adaptive Gauss–Hermite quadrature ({cluster} integral outside, each {participant}'s "
    "inside), odds or rate ratios per month with between-within degrees of freedom",
    "subgroup": "; for binary and count outcomes the interaction in the logistic or Poisson "
    "mixed model (Wald test) and the odds or rate ratio within each subgroup",
    "clustered permutation test": "; for binary outcomes the residuals of a logistic "
    "regression (risk difference), for counts of a Poisson regression with the log exposure "
    "as offset (rate ratio)",
    "multiple imputation": "; binary and count values imputed from two-level logistic or "
    "Poisson models (with the log exposure as offset) and each imputed dataset analysed with "
    "the primary mixed model",
    "delta-adjustment": "; for binary and count outcomes delta shifts the log odds or log "
    "rate of the imputed values before they are drawn",
}


#: References of each family of sensitivity analyses (keys of :data:`REFERENCES`).
SENSITIVITY_REFERENCES = {
    "multiple imputation": ("van-buuren", "rubin", "barnard-rubin"),
    "repeated measures": ("satterthwaite",),
    "cluster-level": ("hayes-moulton",),
    "gee": ("liang-zeger", "mancl-derouen", "kauermann-carroll", "fay-graubard"),
    "cr2": ("bell-mccaffrey", "pustejovsky-tipton"),
    "clustered permutation test": ("gail", "li-constrained"),
    "delta-adjustment": ("carpenter-kenward",),
}


def _family(label: str) -> str:
    """The family of a sensitivity analysis label (the label itself when unknown)."""
    return next((f for f in SENSITIVITY_METHODS if label.lower().startswith(f)), label)


def _families(labels: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(_family(label) for label in labels))


def _sensitivity_descriptions(labels: list[str], cites: Sequence[str] = (),
                              w: Words | None = None,
                              glmm: Collection[str] = ()) -> list[str]:
    """One description per family of sensitivity analyses, in the order they first appear,
    with its citations when ``cites`` (the citation order) is given; a label of an unknown
    family is shown as it is. Families in ``glmm`` (those run for a binary or count outcome)
    also say what they do for those outcomes."""
    described: dict[str, str] = {}
    for label in labels:
        family = _family(label)
        if family not in described:
            detail = label[len(family):].strip() if family in SENSITIVITY_METHODS else ""
            text = (_fill(SENSITIVITY_METHODS[family], w or Words())
                    if family in SENSITIVITY_METHODS else label)
            if family in glmm and family in GLMM_SENSITIVITY_METHODS:
                text += _fill(GLMM_SENSITIVITY_METHODS[family], w or Words())
            keys = [k for k in SENSITIVITY_REFERENCES.get(family, ()) if k in cites]
            cite = f" {_cite(keys, list(cites))}" if keys else ""
            described[family] = text.replace("{detail}", detail).replace("  ", " ") + cite
    return list(described.values())


def _mcid_text(config: dict[str, Any]) -> str:
    parts = []
    for outcome in config["outcomes"]:
        mcid = outcome.get("mcid")
        if mcid is None:
            continue
        if mcid["scale"] in ("standardised", "raw"):
            unit = " baseline SD" if mcid["scale"] == "standardised" else " points"
            parts.append(f"{outcome['label']} {mcid['value']:g}{unit}")
        else:  # binary and count outcomes: on the scale of an effect measure
            parts.append(f"{outcome['label']} {mcid['scale'].replace('-', ' ')} "
                         f"{mcid['value']:g}")
    return "; ".join(parts) if parts else "none set"


def _ran(table: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of a results table with an estimate or a test (not the not-estimable ones)."""
    if table is None:
        return pd.DataFrame(columns=["analysis", "effect_measure", "converged"])
    done = (np.isfinite(table["estimate"].astype(float))
            | np.isfinite(table["p_value"].astype(float)))
    return table[done.to_numpy()]


def _not_converged(results: pd.DataFrame, sensitivity: pd.DataFrame | None) -> int:
    """Fits with a result that did not converge (not-estimable rows are counted apart)."""
    return sum(int((~_ran(t)["converged"].map(truthy)).sum())
               for t in (results, sensitivity) if t is not None)


def provenance_table(
    files: list[tuple[str, str, str]], versions: dict[str, str], commit: str
) -> Table:
    """What the report rests on: files with their SHA-256, software versions, git commit.

    Parameters
    ----------
    files : list of (role, path, sha256)
        ``sha256`` is ``"not found"`` for a file that does not exist.
    versions : dict
        From :func:`software_versions`.
    commit : str
        The git commit of the working tree (with ``-dirty`` when modified), or
        ``"not available"``.
    """
    rows = [(role, path, digest) for role, path, digest in files]
    rows += [(f"Software: {name}", version, "") for name, version in versions.items()]
    rows.append(("Git commit", commit, ""))
    data = pd.DataFrame(rows, columns=["item", "detail", "sha256"])
    return Table(
        name="provenance", title="Provenance",
        columns=("Item", "Path or version", "SHA-256"), rows=tuple(rows),
        depth=tuple(0 for _ in rows), notes="SHA-256 checksums of the files as read.",
        data=data,
    )
