"""The report as one structure: an ordered list of sections holding paragraphs, tables and
figures. Every renderer walks the same :class:`Report`, so HTML, DOCX, LaTeX and Markdown show
the same cells in the same order."""

from __future__ import annotations

from dataclasses import dataclass

from trialstats.report.tables import Table


@dataclass(frozen=True)
class FigureFile:
    """A rendered figure.

    Attributes
    ----------
    name : str
        File stem (``consort``, ``forest``, ``sensitivity``).
    caption : str
        Caption, e.g. ``"Figure 1. CONSORT flow diagram ..."``.
    width : float
        Width in inches, so renderers can size it.
    svg, png, pdf : bytes
        The figure in each format (deterministic bytes).
    """

    name: str
    caption: str
    width: float
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
