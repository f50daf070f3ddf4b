"""Everything a person reads: tables, figures and documents, and the files they are written to.

A report is one structure (``document``: sections of paragraphs, tables and figures) built
from the data and the tidy results (``build``: the CONSORT flow ``consort``, the tables
``tables`` with the display formatting of ``format``, the forest and sensitivity figures
``figures``, the methods text ``methods``, power planning ``planning`` with its power curves
``power_curves``, the validity study ``validity``; period designs: ``periods``), rendered to
HTML, Word, LaTeX, Markdown and CSV (``render``) and written to disk deterministically
(``files``). Submodules are imported by name; nothing is re-exported here.
"""

__all__ = [
    "allocation",
    "build",
    "consort",
    "disclosure",
    "document",
    "figures",
    "files",
    "format",
    "layout",
    "measures",
    "methods",
    "periods",
    "planning",
    "power_curves",
    "render",
    "schematic",
    "supplement",
    "tables",
    "tipping",
    "validity",
    "validity_binary",
]
