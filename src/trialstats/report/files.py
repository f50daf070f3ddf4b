"""Writing a report's files: the documents, their figures and tables, and single figures.

All output of :mod:`trialstats.report` reaches the disk here, through
:func:`trialstats.data.io.write_atomically` (a killed run leaves no truncated file), and every
file is deterministic: a rerun on the same inputs gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from trialstats.data.io import write_atomically
from trialstats.errors import TrialstatsError
from trialstats.report.document import Report
from trialstats.report.render import (
    docx_bytes,
    render_html,
    render_latex,
    render_markdown,
    table_csv,
    table_data_csv,
)

__all__ = ["save_figure", "write_report"]

#: Formats every figure of a report is written in.
FIGURE_FORMATS = ("svg", "png", "pdf")


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write ``figure`` with deterministic metadata, so reruns give byte-identical files.

    The format follows the extension (``.svg``, ``.png`` or ``.pdf``). Dates and software
    versions are left out of the metadata and SVG element ids are salted with a constant.
    """
    path = Path(path)
    metadata = {
        ".svg": {"Date": None, "Creator": "trialstats"},
        ".png": {"Software": "trialstats"},
        ".pdf": {"CreationDate": None, "ModDate": None, "Creator": "trialstats",
                 "Producer": "trialstats"},
    }
    suffix = path.suffix.lower()
    if suffix not in metadata:
        raise TrialstatsError(f"{path}: figures are written as .svg, .png or .pdf.")

    def write(tmp: Path) -> None:
        with matplotlib.rc_context({"svg.hashsalt": "trialstats", "svg.fonttype": "path"}):
            figure.savefig(tmp, format=suffix[1:], metadata=metadata[suffix], dpi=150)

    write_atomically(path, write)


def _write_bytes(path: Path, content: bytes) -> None:
    write_atomically(path, lambda tmp: tmp.write_bytes(content))


def write_report(report: Report, out: str | Path, stem: str, *, tables: bool = False) -> list[str]:
    """Write ``report`` as ``<stem>.html`` (self-contained), ``.md``, ``.tex`` and ``.docx``
    in ``out``, with its figures as ``figures/<name>.{svg,png,pdf}`` and, with ``tables``,
    each table as ``tables/<name>.csv`` (display cells) and ``tables/<name>_data.csv``
    (the numbers behind them).

    Returns
    -------
    list of str
        The names of the documents written, in the order above.
    """
    out = Path(out)
    for figure in report.figures():
        for fmt in FIGURE_FORMATS:
            _write_bytes(out / "figures" / f"{figure.name}.{fmt}", getattr(figure, fmt))
    if tables:
        for table in report.tables():
            _write_bytes(out / "tables" / f"{table.name}.csv", table_csv(table).encode())
            _write_bytes(out / "tables" / f"{table.name}_data.csv",
                         table_data_csv(table).encode())
    documents = {f"{stem}.html": render_html(report).encode(),
                 f"{stem}.md": render_markdown(report).encode(),
                 f"{stem}.tex": render_latex(report).encode(),
                 f"{stem}.docx": docx_bytes(report)}
    for name, content in documents.items():
        _write_bytes(out / name, content)
    return list(documents)
