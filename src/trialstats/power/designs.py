"""Trial designs as sequence x period layouts (the design vocabulary).

Designs
-------
A design is a sequence x period matrix ``X`` (1 = intervention, 0 = control, NaN = not
measured) with ``K_s`` clusters randomised to sequence ``s``:

* ``parallel`` — 2 sequences (control, intervention) over ``T`` periods (default 1);
* ``parallel-baseline`` — as parallel, but period 1 is an all-control baseline (``T >= 2``);
* ``stepped-wedge`` — ``S`` sequences over ``T = S + 1`` periods; sequence ``s`` is treated
  from period ``s + 1`` on;
* ``crossover`` — the 2 x 2 AB/BA cluster crossover (with ``T = 2r`` periods, ``r`` per arm);
* a design file: a CSV with a header of period labels (plus an optional ``clusters``
  column), one row per sequence, cells 0/1, blank = not measured.

The GLS power of any design is in :mod:`trialstats.power.design_power`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from trialstats.errors import TrialstatsError

DESIGNS = ("parallel", "parallel-baseline", "stepped-wedge", "crossover")


@dataclasses.dataclass(frozen=True)
class Design:
    """A sequence x period layout with the number of clusters in each sequence.

    Attributes
    ----------
    name : str
        One of :data:`DESIGNS`, or the design file's name.
    treatment : numpy.ndarray
        ``(S, T)`` float matrix: 1 intervention, 0 control, NaN not measured.
    clusters : numpy.ndarray
        ``(S,)`` clusters randomised to each sequence (non-negative integers).
    periods : tuple of str
        Period labels, ``T`` of them.
    """

    name: str
    treatment: np.ndarray
    clusters: np.ndarray
    periods: tuple[str, ...]

    @property
    def n_clusters(self) -> int:
        """Total number of clusters."""
        return int(self.clusters.sum())

    def with_clusters(self, clusters_per_sequence: int) -> Design:
        """The same layout with ``clusters_per_sequence`` clusters in every sequence."""
        k = np.full(len(self.clusters), int(clusters_per_sequence))
        return dataclasses.replace(self, clusters=k)


def standard_design(
    name: str,
    *,
    sequences: int | None = None,
    clusters_per_sequence: int = 1,
    periods: int | None = None,
) -> Design:
    """The layout of a named design.

    Parameters
    ----------
    name : {"parallel", "parallel-baseline", "stepped-wedge", "crossover"}
        Design family (see the module docstring).
    sequences : int, optional
        Number of sequences; 2 for every design but the stepped wedge, which needs it.
    clusters_per_sequence : int, default 1
        Clusters randomised to each sequence.
    periods : int, optional
        Number of periods: default 1 (parallel), 2 (parallel-baseline, crossover) or
        ``sequences + 1`` (stepped wedge, the only value allowed).

    Returns
    -------
    Design
    """
    if name not in DESIGNS:
        raise TrialstatsError(f"Unknown design {name!r}; choose one of {', '.join(DESIGNS)}.")
    if name == "stepped-wedge":
        if sequences is None or sequences < 1:
            raise TrialstatsError("A stepped-wedge design needs --sequences S (at least 1).")
        if periods is not None and periods != sequences + 1:
            raise TrialstatsError(
                f"A stepped wedge with {sequences} sequences has {sequences + 1} periods "
                f"(T = S + 1), not {periods}; use a design file for other layouts."
            )
        t = sequences + 1
        x = (np.arange(t)[None, :] > np.arange(sequences)[:, None]).astype(float)
    else:
        if sequences not in (None, 2):
            raise TrialstatsError(f"A {name} design has 2 sequences, not {sequences}.")
        fewest = 1 if name == "parallel" else 2
        t = fewest if periods is None else periods
        if t < fewest:
            raise TrialstatsError(f"A {name} design needs at least {fewest} period"
                                  f"{'s' if fewest > 1 else ''}, not {t}.")
        if name == "crossover" and t % 2:
            raise TrialstatsError(f"A crossover has an even number of periods, not {t}.")
        x = np.zeros((2, t))
        if name == "parallel":
            x[1] = 1.0
        elif name == "parallel-baseline":
            x[1, 1:] = 1.0
        else:
            x[0, : t // 2] = 1.0
            x[1, t // 2:] = 1.0
    if clusters_per_sequence < 1:
        raise TrialstatsError("--clusters-per-sequence must be at least 1.")
    return Design(
        name=name,
        treatment=x,
        clusters=np.full(x.shape[0], int(clusters_per_sequence)),
        periods=tuple(str(p) for p in range(1, t + 1)),
    )


def design_from_table(
    table: pd.DataFrame, source: str, clusters_per_sequence: int | None = None
) -> Design:
    """A design from a table read from a design file (every cell text, blank = missing).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per sequence; one column per period (header = period label), cells ``0``/``1``
        or blank (not measured), plus an optional ``clusters`` column.
    source : str
        File name used in error messages (rows are numbered as in a spreadsheet, header = 1).
    clusters_per_sequence : int, optional
        Clusters in every sequence when the table has no ``clusters`` column (default 1);
        not allowed together with that column.

    Returns
    -------
    Design
    """
    columns = [str(c) for c in table.columns]
    periods = [c for c in columns if c != "clusters"]
    if not periods:
        raise TrialstatsError(f"{source}: the header names no period columns.")
    cells = np.full((len(table), len(periods)), np.nan)
    for j, label in enumerate(periods):
        for i, value in enumerate(table[label]):
            if pd.isna(value):
                continue
            text = str(value).strip()
            if text not in ("0", "1", "0.0", "1.0"):
                raise TrialstatsError(
                    f"{source}: row {i + 2}, column '{label}': {text!r} is not 0 (control), "
                    "1 (intervention) or blank (not measured)."
                )
            cells[i, j] = float(text)
    for i, row in enumerate(cells):
        if np.all(np.isnan(row)):
            raise TrialstatsError(f"{source}: row {i + 2}: the sequence is never measured.")
    if "clusters" in columns:
        if clusters_per_sequence is not None:
            raise TrialstatsError(
                f"{source}: the file gives the clusters of each sequence; leave out "
                "--clusters-per-sequence."
            )
        clusters = np.zeros(len(table), dtype=int)
        for i, value in enumerate(table["clusters"]):
            text = "" if pd.isna(value) else str(value).strip()
            if not text.isdigit() or int(text) < 1:
                raise TrialstatsError(
                    f"{source}: row {i + 2}, column 'clusters': {text or 'blank'!r} is not a "
                    "positive whole number of clusters."
                )
            clusters[i] = int(text)
    else:
        k = 1 if clusters_per_sequence is None else clusters_per_sequence
        if k < 1:
            raise TrialstatsError("--clusters-per-sequence must be at least 1.")
        clusters = np.full(len(table), int(k))
    return Design(name=source, treatment=cells, clusters=clusters, periods=tuple(periods))


def grid_text(design: Design) -> str:
    """The sequence x period grid as text: 1 intervention, 0 control, ``.`` not measured."""
    width = max(len(p) for p in design.periods)
    head = ["sequence", "clusters", *[p.rjust(width) for p in design.periods]]
    rows = [head]
    for s, (x, k) in enumerate(zip(design.treatment, design.clusters, strict=True), start=1):
        cells = ["." if np.isnan(v) else str(int(v)) for v in x]
        rows.append([str(s), str(int(k)), *[c.rjust(width) for c in cells]])
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    summary = (f"{design.name}: {len(design.clusters)} sequences x {len(design.periods)} "
               f"periods, {design.n_clusters} clusters (1 = intervention, 0 = control, "
               ". = not measured)")
    return "\n".join([summary, *lines])
