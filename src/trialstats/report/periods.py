"""The report of a stepped-wedge, crossover or parallel-baseline trial.

Its parts: a methods paragraph naming the model, the CONSORT flow for stepped-wedge trials
(Hemming et al. 2018, *BMJ* 363:k1614: clusters randomised to each sequence, withdrawn and
analysed, participants in every cluster-period), the sequence x period schematic
(:mod:`trialstats.report.schematic`), the results table of the primary and sensitivity
analyses, references and provenance. Counts are tidy (:func:`consort_sw_counts`); drawing and
formatting happen here, file I/O at the command's edge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trialstats.analysis.glmm import DEFAULT_N_AGQ
from trialstats.analysis.period_analysis import period_data, period_model_note
from trialstats.analysis.period_glmm import period_glmm_note
from trialstats.contract import MEAN_DIFFERENCE
from trialstats.data.periods import PERIOD_INDEX
from trialstats.data.validate import TREATED
from trialstats.power.designs import Design
from trialstats.report.consort import _GAP, _LINE, _PAD, _arrow, _box, primary_outcome
from trialstats.report.document import Report, Section, Table
from trialstats.report.format import fmt, fmt_ci, fmt_p, method_name
from trialstats.report.measures import estimable, estimate_cell
from trialstats.report.methods import provenance_table
from trialstats.report.render import render_figure
from trialstats.report.schematic import schematic_figure

__all__ = ["build_period_report", "consort_sw_counts", "trial_design"]

_REFERENCES = (
    "Hemming K, Taljaard M, McKenzie JE, et al. Reporting of stepped wedge cluster randomised "
    "trials: extension of the CONSORT 2010 statement with explanation and elaboration. BMJ "
    "2018;363:k1614.",
    "Hooper R, Teerenstra S, de Hoop E, Eldridge S. Sample size calculation for stepped wedge "
    "and other longitudinal cluster randomised trials. Stat Med 2016;35:4718–4728.",
    "Kuznetsova A, Brockhoff PB, Christensen RHB. lmerTest package: tests in linear mixed "
    "effects models. J Stat Softw 2017;82(13):1–26.",
    "Kenward MG, Roger JH. Small sample inference for fixed effects from restricted maximum "
    "likelihood. Biometrics 1997;53:983–997.",
)

#: References [5]-[7] of the methods text on binary and count outcomes.
_GLMM_REFERENCES = (
    "Hussey MA, Hughes JP. Design and analysis of stepped wedge cluster randomized trials. "
    "Contemp Clin Trials 2007;28:182–191.",
    "Li F, Hughes JP, Hemming K, Taljaard M, Melnick ER, Heagerty PJ. Mixed-effects models for "
    "the design and analysis of stepped wedge cluster randomized trials: an overview. Stat "
    "Methods Med Res 2021;30:612–639.",
    "Li P, Redden DT. Comparing denominator degrees of freedom approximations for the "
    "generalized linear mixed model in analyzing binary outcome in small sample "
    "cluster-randomized trials. BMC Med Res Methodol 2015;15:38.",
)


def _sequences(practices: pd.DataFrame, config: dict[str, Any]) -> list[str]:
    """Sequence labels in order (numerically when they are numbers)."""
    labels = practices[config["design"]["sequence"]].astype(str).unique()
    numeric = pd.to_numeric(pd.Series(labels), errors="coerce")
    return list(labels[np.argsort(numeric.to_numpy())] if numeric.notna().all()
                else sorted(labels))


def trial_design(practices: pd.DataFrame, patients: pd.DataFrame,
                 config: dict[str, Any]) -> Design:
    """The trial's layout as a :class:`~trialstats.power.designs.Design`: a sequence is
    treated in a period when its measurements there are, not measured when it has none."""
    design = config["design"]
    sequence, period = design["sequence"], design["period_column"]
    order = _sequences(practices, config)
    grid = patients.assign(**{sequence: patients[sequence].astype(str)}).pivot_table(
        index=sequence, columns=period, values=TREATED, aggfunc="max")
    grid = grid.reindex(index=order)
    clusters = practices[sequence].astype(str).value_counts().reindex(order).to_numpy()
    return Design(name=f"{design['type']} trial", treatment=grid.to_numpy(dtype=float),
                  clusters=clusters, periods=tuple(str(p) for p in grid.columns))


def consort_sw_counts(practices: pd.DataFrame, patients: pd.DataFrame,
                      config: dict[str, Any]) -> pd.DataFrame:
    """CONSORT stepped-wedge counts by sequence, tidy.

    Returns
    -------
    DataFrame
        Columns ``stage, sequence, period, clusters, participants, per_cluster_min,
        per_cluster_max``: ``randomised`` and ``withdrawn`` clusters (period ``all``),
        ``measured``: every sequence x period with its clusters with participants, the
        participants and the fewest and most per cluster-period, and ``analysed``: the
        clusters and participants in the primary analysis of the first primary outcome.
    """
    design = config["design"]
    cluster, sequence = design["cluster"], design["sequence"]
    practices = practices.assign(**{sequence: practices[sequence].astype(str)})
    patients = patients.assign(**{sequence: patients[sequence].astype(str)})
    rows = []
    primary = primary_outcome(config)
    data = period_data(patients, primary["name"], config, primary.get("exposure"))
    analysed = pd.DataFrame({"c": np.asarray(data.cluster_ids)[data.cluster_codes]})
    analysed_sequence = analysed["c"].map(dict(zip(practices[cluster], practices[sequence],
                                                   strict=True)))
    for label in _sequences(practices, config):
        own = practices[practices[sequence] == label]
        rows.append({"stage": "randomised", "sequence": label, "period": "all",
                     "clusters": len(own)})
        rows.append({"stage": "withdrawn", "sequence": label, "period": "all",
                     "clusters": int(own[design["withdrawn"]].sum())})
        measured = patients[patients[sequence] == label]
        for period, group in measured.groupby(design["period_column"]):
            sizes = group.groupby(cluster).size()
            rows.append({"stage": "measured", "sequence": label, "period": str(period),
                         "clusters": len(sizes), "participants": int(sizes.sum()),
                         "per_cluster_min": int(sizes.min()), "per_cluster_max": int(sizes.max())})
        mine = analysed["c"][analysed_sequence == label]
        rows.append({"stage": "analysed", "sequence": label, "period": "all",
                     "clusters": mine.nunique(), "participants": len(mine)})
    columns = ["stage", "sequence", "period", "clusters", "participants", "per_cluster_min",
               "per_cluster_max"]
    return pd.DataFrame(rows, columns=columns)


def _switch_text(practices: pd.DataFrame, label: str, config: dict[str, Any]) -> str:
    design = config["design"]
    switch = practices.loc[practices[design["sequence"]].astype(str) == label,
                           design["switch_period"]].iloc[0]
    if not switch:
        return "control throughout"
    if design["type"] == "crossover":
        return f"intervention in period {switch.replace(';', ', ')}"
    return f"intervention from period {switch}"


def flow_sw_figure(counts: pd.DataFrame, practices: pd.DataFrame,
                   config: dict[str, Any]) -> Figure:
    """The CONSORT stepped-wedge flow: clusters randomised, per sequence allocation,
    participants per cluster-period and analysis (Hemming et al. 2018, figure 2)."""
    labels = list(dict.fromkeys(counts["sequence"]))
    outcome = primary_outcome(config)["name"]
    width = max(8.0, 2.2 * len(labels))
    column = width / len(labels)
    boxes = {}
    for label in labels:
        own = counts[counts["sequence"] == label].set_index("stage")
        measured = counts[(counts["sequence"] == label) & (counts["stage"] == "measured")]
        boxes[label] = (
            [f"Sequence {label}", _switch_text(practices, label, config),
             f"{int(own.loc['randomised', 'clusters'])} clusters randomised",
             f"{int(own.loc['withdrawn', 'clusters'])} withdrew"],
            ["Participants per period", "n (per cluster min–max)"]
            + [f"P{r.period}: {int(r.participants):,} ({int(r.per_cluster_min)}–"
               f"{int(r.per_cluster_max)})" for r in measured.itertuples()],
            [f"Analysed ({outcome}): {int(own.loc['analysed', 'clusters'])} clusters",
             f"{int(own.loc['analysed', 'participants']):,} participants"],
        )
    # the tallest box of each row (allocation, participants, analysis), as _box draws it
    tallest = [max(2 * _PAD + _LINE * len(b[k]) for b in boxes.values()) for k in range(3)]
    height = 1.2 + sum(tallest) + 4 * _GAP
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    total = int(counts.loc[counts["stage"] == "randomised", "clusters"].sum())
    _, bottom = _box(ax, width / 2, height - 0.1, 3.4, [f"Clusters randomised (n = {total})",
                                                         f"to {len(labels)} sequences"])
    fork = bottom - _GAP / 2
    centres = [column * (i + 0.5) for i in range(len(labels))]
    ax.plot([width / 2, width / 2], [bottom, fork], color="black", lw=0.9)
    ax.plot([centres[0], centres[-1]], [fork, fork], color="black", lw=0.9)
    tops = {label: fork - _GAP / 2 for label in labels}
    for x, label in zip(centres, labels, strict=True):
        _arrow(ax, x, fork, x, tops[label])
    for k in range(3):
        lowest = tops[labels[0]]
        for x, label in zip(centres, labels, strict=True):
            _, below = _box(ax, x, lowest, column - 0.2, boxes[label][k])
            if k < 2:
                _arrow(ax, x, below, x, lowest - tallest[k] - _GAP)
        for label in labels:
            tops[label] = lowest - tallest[k] - _GAP
    return figure


def results_table(results: pd.DataFrame, sensitivity: pd.DataFrame | None,
                  config: dict[str, Any]) -> Table:
    """The primary and sensitivity results of every outcome, one row per analysis."""
    frames = [results.assign(analysis="primary")]
    if sensitivity is not None and len(sensitivity):
        frames.append(sensitivity)
    data = pd.concat(frames, ignore_index=True)
    rows, depth = [], []
    for outcome in config["outcomes"]:
        own = data[data["outcome"] == outcome["name"]]
        rows.append((outcome["label"], "", "", "", "", ""))
        depth.append(0)
        digits = 3 if np.nanmax(np.abs(own["estimate"].to_numpy(dtype=float)), initial=0) < 1 \
            else 2
        for (_, row), r in zip(own.iterrows(), own.itertuples(), strict=True):
            label = f"primary, {method_name(r.method)}" if r.analysis == "primary" else r.analysis
            if r.effect_measure == MEAN_DIFFERENCE:
                estimate = fmt_ci(r.estimate, r.ci_low, r.ci_high, digits) or str(r.notes)
            else:  # a ratio or risk difference named by its measure (report.measures)
                estimate = estimate_cell(row, digits) if estimable(row) else str(r.notes)
            icc = (fmt_ci(r.icc, r.icc_ci_low, r.icc_ci_high, 3) if np.isfinite(r.icc_ci_low)
                   else fmt(r.icc, 3))
            rows.append((label, estimate, fmt(r.df, 1), fmt_p(r.p_value), icc,
                         r.mcid_verdict if isinstance(r.mcid_verdict, str) else ""))
            depth.append(1)
    glmm = [o for o in config["outcomes"] if o.get("type", "continuous") != "continuous"]
    continuous = len(glmm) < len(config["outcomes"])
    notes = ((f"Difference intervention − control (95% CI) from {period_model_note(config)}"
              if continuous else "")
             + ("; " if continuous and glmm else "") + _glmm_effects(config, glmm)
             + "; sensitivity analyses as named. ICC: (cluster + cluster-period variance) / "
             + "total" + "".join(
                 text for kind, text in (("binary", ", on the latent scale for binary outcomes "
                                                    "(total: variance + pi^2/3)"),
                                         ("count", ", not defined for counts"))
                 if any(o["type"] == kind for o in glmm))
             + "; the cluster autocorrelation is in the results' notes.")
    effect = "Difference (95% CI)" if not glmm else "Effect (95% CI)"
    return Table(name="table1_outcomes", title="Table 1. Treatment effects",
                 columns=("Outcome and analysis", effect, "df", "P", "ICC (95% CI)", "Verdict"),
                 rows=tuple(rows), depth=tuple(depth), notes=notes, data=data)


def _glmm_effects(config: dict[str, Any], glmm: list[dict[str, Any]]) -> str:
    """What the effects of binary and count outcomes are ("" when there are none)."""
    if not glmm:
        return ""
    what = {"binary": "binary outcomes: odds ratio (OR) intervention versus control (95% CI), "
                      "with the marginal risk difference (RD) and risk ratio (RR) standardised "
                      "from the same model",
            "count": "counts: rate ratio intervention versus control (95% CI)"}
    first = {o["type"]: o for o in reversed(glmm)}
    return "; ".join(f"{what[kind]}, from {period_glmm_note(config, first[kind])}"
                     for kind in what if kind in first)


def _methods(config: dict[str, Any], counts: pd.DataFrame) -> str:
    design, analysis = config["design"], config["analysis"]
    methods = " and ".join(method_name(m) for m in analysis["df_method"])
    measured = counts[counts["stage"] == "measured"]
    glmm = _glmm_methods(config)
    continuous = any(o.get("type", "continuous") == "continuous" for o in config["outcomes"])
    linear = (
        f" Each {'continuous ' if glmm else ''}outcome was analysed with the "
        f"linear mixed model {period_model_note(config)} [2]: fixed period effects, random "
        f"cluster and cluster-period intercepts, fitted by exact restricted maximum "
        f"likelihood, with {methods} degrees of freedom [3, 4]. The intracluster correlation "
        f"and the cluster autocorrelation are reported with profile-likelihood intervals. "
        f"Effect sizes divide by the SD of the outcome under control.") if continuous else ""
    return (
        f"This is a cross-sectional {design['type']} trial: "
        f"{int(counts.loc[counts['stage'] == 'randomised', 'clusters'].sum())} clusters were "
        f"randomised to {counts['sequence'].nunique()} sequences and "
        f"{int(measured['participants'].sum()):,} participants were each measured once, in "
        f"one of {measured['period'].nunique()} periods." + linear + " The flow follows the "
        "CONSORT extension for stepped-wedge trials [1]." + glmm)


def _glmm_methods(config: dict[str, Any]) -> str:
    """The methods sentences on binary and count outcomes ("" when there are none)."""
    kinds = [k for k in ("binary", "count")
             if any(o.get("type") == k for o in config["outcomes"])]
    if not kinds:
        return ""
    analysis = config["analysis"]
    nodes = analysis.get("quadrature_points", DEFAULT_N_AGQ)
    fit = ("the Laplace approximation" if nodes == 1 else
           f"nested adaptive Gauss-Hermite quadrature ({nodes} nodes per cluster and "
           f"cluster-period)")
    text = (f" {' and '.join(kinds).capitalize()} outcomes were analysed with a generalized "
            f"linear mixed model [5, 6]: fixed period effects, random cluster and "
            f"cluster-period intercepts, fitted by maximum likelihood with {fit}, the treatment "
            f"effect tested with {method_name(analysis['glmm_df_method'][0])} degrees of "
            f"freedom (clusters minus the columns of intercept, treatment and periods) [7].")
    if "binary" in kinds:
        text += (" Binary outcomes have a logit link; the odds ratio is reported with the "
                 "marginal risk difference and risk ratio standardised from the model, and the "
                 "ICC on the latent scale.")
    if "count" in kinds:
        text += (" Counts have a log link with the log exposure as an offset and a Poisson "
                 "distribution (over-dispersion between cluster-periods is in the "
                 "cluster-period intercept); the rate ratio is reported.")
    return text


def build_period_report(
    practices: pd.DataFrame, patients: pd.DataFrame, config: dict[str, Any],
    results: pd.DataFrame, sensitivity: pd.DataFrame | None, provenance: Any,
) -> tuple[Report, pd.DataFrame]:
    """The report of a period design and its CONSORT counts (see the module docstring);
    arguments as :func:`trialstats.report.build.build_report`."""
    counts = consort_sw_counts(practices, patients, config)
    flow = render_figure(flow_sw_figure(counts, practices, config), "consort",
                         "Figure 1. Flow of clusters and participants through the trial "
                         "(CONSORT extension for stepped-wedge cluster randomised trials)")
    schematic = render_figure(schematic_figure(trial_design(practices, patients, config)),
                              "schematic", "Figure 2. The design: sequences by periods")
    sections = (
        Section("Statistical methods", (_methods(config, counts),)),
        Section("Participant flow", (flow, schematic)),
        Section("Outcomes", (results_table(results, sensitivity, config),)),
        Section("References", _REFERENCES + (_GLMM_REFERENCES if _glmm_methods(config)
                                              else ())),
        Section("Provenance", (provenance_table(provenance.files, provenance.versions,
                                                provenance.commit),)),
    )
    n_clusters = int(counts.loc[counts["stage"] == "randomised", "clusters"].sum())
    n_participants = int(counts.loc[counts["stage"] == "measured", "participants"].sum())
    subtitle = (f"{config['design']['type'].capitalize()} cluster randomised trial: "
                f"{n_clusters} clusters, {n_participants:,} participants, "
                f"{patients[PERIOD_INDEX].nunique()} periods.")
    title = config.get("report", {}).get("title") or "Trial report"
    return Report(title, subtitle, sections), counts
