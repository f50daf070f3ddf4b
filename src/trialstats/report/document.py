"""The report as one structure: an ordered list of sections holding paragraphs, tables and
figures. Every renderer walks the same :class:`Report`, so HTML, DOCX, LaTeX and Markdown show
the same cells in the same order."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Table:
    """A table ready to render: display strings plus the tidy numbers behind them.

    Attributes
    ----------
    name : str
        File stem used for the table's CSV files and anchors (``table1_baseline``).
    title : str
        Caption, e.g. ``"Table 1. Baseline characteristics ..."``.
    columns : tuple of str
        Column headers; the first column holds row labels.
    rows : tuple of tuple of str
        Body cells, each row as long as ``columns``.
    depth : tuple of int
        Indentation level of each row's label. A row whose other cells are all empty is a
        section heading (depth 0, shown bold) or names a group of rows (deeper, italic).
    notes : str
        Footnote (abbreviations, what the summaries are).
    data : DataFrame
        The tidy, unrounded numbers the cells were formatted from.
    """

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    depth: tuple[int, ...]
    notes: str
    data: pd.DataFrame

    def frame(self) -> pd.DataFrame:
        """The display cells as a DataFrame of strings (what the table's CSV holds)."""
        return pd.DataFrame(list(self.rows), columns=list(self.columns), dtype="string")

    def is_heading(self, i: int) -> bool:
        """Whether row ``i`` is a section heading (depth 0, no values)."""
        return self.depth[i] == 0 and not any(self.rows[i][1:])

    def is_group(self, i: int) -> bool:
        """Whether row ``i`` names a group of the rows below it (indented, no values)."""
        return self.depth[i] > 0 and not any(self.rows[i][1:])


@dataclass(frozen=True)
class FigureFile:
    """A rendered figure.

    Attributes
    ----------
    name : str
        File stem (``consort``, ``forest``, ``sensitivity``).
    caption : str
        Caption, e.g. ``"Figure 1. CONSORT flow diagram ..."``.
    width, height : float
        Size in inches, so renderers can fit it to the page.
    svg, png, pdf : bytes
        The figure in each format (deterministic bytes).
    """

    name: str
    caption: str
    width: float
    height: float
    svg: bytes
    png: bytes
    pdf: bytes


Item = str | Table | FigureFile


@dataclass(frozen=True)
class Section:
    """A headed part of the report: paragraphs (str), tables and figures, in order."""

    heading: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Report:
    """A whole report: title, subtitle (trial description) and sections in reading order."""

    title: str
    subtitle: str
    sections: tuple[Section, ...]

    def tables(self) -> list[Table]:
        """Every table of the report, in order."""
        return [i for s in self.sections for i in s.items if isinstance(i, Table)]

    def figures(self) -> list[FigureFile]:
        """Every figure of the report, in order."""
        return [i for s in self.sections for i in s.items if isinstance(i, FigureFile)]
