"""Renderers of a :class:`~trialstats.report.document.Report`: HTML, DOCX, LaTeX, Markdown, CSV.

Each renderer walks the same sections and writes the display cells of the same
:class:`~trialstats.report.tables.Table` objects; none computes or rounds a number. Output
is deterministic: figures carry no dates or random ids, and the DOCX zip has fixed
timestamps, so a rerun on the same inputs gives byte-identical files. Text from the data or
the configuration is inert in every format: escaped in HTML, LaTeX and Markdown (no raw HTML
passes through), and CSV text cells that a spreadsheet would run as a formula are quoted.
"""

from __future__ import annotations

import base64
import html
import io
import re
import zipfile
from datetime import datetime, timezone

import matplotlib
import pandas as pd
from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Mm, Pt
from matplotlib.figure import Figure

from trialstats.report.document import FigureFile, Report, Table
from trialstats.report.layout import (
    LONG_WORD,
    PADDING,
    TEXT_HEIGHT,
    TEXT_WIDTH,
    table_layout,
)

_NUMERIC = re.compile(r"^[−\-<>≤]?[\d.,]")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
#: Tables with more columns than this are set in smaller type in HTML.
_WIDE = 7


# ---------------------------------------------------------------------------------------------
# figures


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """``figure`` saved as ``svg``, ``png`` or ``pdf`` with no dates and stable ids."""
    metadata = {
        "svg": {"Date": None},
        "pdf": {"CreationDate": None, "ModDate": None},
        "png": {"Software": None},
    }[fmt]
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "trialstats", "svg.fonttype": "path"}):
        figure.savefig(buffer, format=fmt, metadata=metadata, dpi=200 if fmt == "png" else None,
                       facecolor="white")
    return buffer.getvalue()


def render_figure(figure: Figure, name: str, caption: str) -> FigureFile:
    """Render a matplotlib figure in every format once."""
    return FigureFile(
        name=name, caption=caption, width=float(figure.get_figwidth()),
        height=float(figure.get_figheight()),
        svg=figure_bytes(figure, "svg"), png=figure_bytes(figure, "png"),
        pdf=figure_bytes(figure, "pdf"),
    )


def numeric_columns(table: Table) -> list[bool]:
    """Which columns hold numbers (every non-empty cell starts like one): right-aligned."""
    flags = [False]
    for j in range(1, len(table.columns)):
        cells = [r[j] for r in table.rows if r[j]]
        flags.append(bool(cells) and all(_NUMERIC.match(c) for c in cells))
    return flags


# ---------------------------------------------------------------------------------------------
# CSV


_FORMULA = re.compile(r"^([=+@]|-[^\d.\s])")


def formula_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (leading ``=``, ``+``, ``@``, or ``-``
    not starting a number) prefixed with ``'``; other cells unchanged."""
    return f"'{value}" if isinstance(value, str) and _FORMULA.match(value) else value


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text with formula-safe text cells and headers (numbers untouched)."""
    safe = frame.rename(columns=formula_safe)
    text = safe.select_dtypes(include=["object", "string"]).columns
    safe[text] = safe[text].map(formula_safe)
    return safe.to_csv(index=False, lineterminator="\n")


def table_csv(table: Table) -> str:
    """The display cells of ``table`` as CSV text (header row, then body), with ASCII
    hyphen-minus for the minus sign so that spreadsheets read the numbers."""
    return csv_text(table.frame().replace("−", "-", regex=True))


def table_data_csv(table: Table) -> str:
    """The tidy unrounded numbers behind ``table`` as CSV text."""
    return csv_text(table.data)


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root { --ink: #1b1b1b; --rule: #333; --muted: #555; --band: #f3f6f9; }
* { box-sizing: border-box; }
body { font-family: "Helvetica Neue", Arial, "Liberation Sans", sans-serif; color: var(--ink);
  line-height: 1.45; margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 84rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
h2 { font-size: 1.2rem; margin: 2.2rem 0 .6rem; border-bottom: 1px solid #ccc;
  padding-bottom: .2rem; }
p.subtitle { color: var(--muted); margin: 0 0 1rem; }
nav ol { columns: 2; font-size: .92rem; }
p { max-width: 52rem; }
figure { margin: 1.2rem 0 1.8rem; break-inside: avoid; }
figure img { display: block; width: 100%; height: auto; }
figcaption, caption { font-weight: bold; text-align: left; margin: 0 0 .4rem;
  caption-side: top; }
.table-wrap { overflow-x: auto; margin: 1rem 0 1.8rem; }
table { border-collapse: collapse; font-size: .78rem; border-top: 2px solid var(--rule);
  border-bottom: 2px solid var(--rule); }
thead th { border-bottom: 1px solid var(--rule); vertical-align: bottom; font-weight: bold;
  white-space: normal; }
table.wide { width: 100%; font-size: .74rem; }
table.wide td:first-child { min-width: 8rem; }
table.wide td:last-child { min-width: 7rem; }
th, td { padding: .18rem .45rem; text-align: left; vertical-align: top; }
td:first-child { min-width: 11rem; }
td.num { text-align: right; white-space: nowrap; }
th.num { text-align: right; }
tr.heading td { font-weight: bold; padding-top: .55rem; }
tr.group td { font-style: italic; }
tbody tr:nth-child(even) td { background: var(--band); }
td.d1 { padding-left: 1.3rem; } td.d2 { padding-left: 2.3rem; }
p.note { font-size: .78rem; color: var(--muted); max-width: 60rem; margin: .35rem 0 0; }
ol.refs li { margin-bottom: .3rem; }
td.hash { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: .72rem;
  word-break: break-all; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  .table-wrap { overflow: visible; break-inside: auto; }
  table { font-size: 7.5pt; }
  tbody tr:nth-child(even) td { background: none; }
  tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  table.wide { font-size: 7pt; }
  .wide-wrap { page: landscape; }
  @page { size: A4; margin: 15mm; }
  @page landscape { size: A4 landscape; margin: 12mm; }
}
"""


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _html_table(table: Table) -> str:
    numeric = numeric_columns(table)
    wide = ' class="wide"' if len(table.columns) > _WIDE else ""
    num = ' class="num"'
    head = "".join(
        f'<th scope="col"{num if numeric[j] else ""}>{html.escape(c)}</th>'
        for j, c in enumerate(table.columns)
    )
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, cell in enumerate(row):
            classes = []
            if j == 0 and table.depth[i]:
                classes.append(f"d{min(table.depth[i], 2)}")
            if j and numeric[j]:
                classes.append("num")
            if table.name == "provenance" and j == 2:
                classes.append("hash")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{html.escape(cell)}</td>")
        attr = ' class="heading"' if table.is_heading(i) else ""
        attr = ' class="group"' if table.is_group(i) else attr
        body.append(f"<tr{attr}>{''.join(cells)}</tr>")
    return (
        f'<div class="table-wrap{" wide-wrap" if wide else ""}" id="{table.name}">\n'
        f"<table{wide}>\n"
        f"<caption>{html.escape(table.title)}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
        f'<p class="note">{html.escape(table.notes)}</p>\n</div>'
    )


def _html_figure(figure: FigureFile) -> str:
    data = base64.b64encode(figure.svg).decode("ascii")
    return (
        f'<figure id="figure-{figure.name}" style="max-width: {figure.width:g}in">\n'
        f"<figcaption>{html.escape(figure.caption)}</figcaption>\n"
        f'<img src="data:image/svg+xml;base64,{data}" alt="{html.escape(figure.caption)}">\n'
        "</figure>"
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (figures embedded as SVG data URIs)."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title>", f"<style>{_CSS}</style>", "</head>",
        "<body>", f"<h1>{html.escape(report.title)}</h1>",
        f'<p class="subtitle">{html.escape(report.subtitle)}</p>', "<nav><ol>",
        *(f'<li><a href="#{_anchor(s.heading)}">{html.escape(s.heading)}</a></li>'
          for s in report.sections),
        "</ol></nav>",
    ]
    for section in report.sections:
        parts.append(f'<section id="{_anchor(section.heading)}">')
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        refs = section.heading == "References"
        if refs:
            parts.append('<ol class="refs">')
        for item in section.items:
            if isinstance(item, Table):
                parts.append(_html_table(item))
            elif isinstance(item, FigureFile):
                parts.append(_html_figure(item))
            elif refs:
                parts.append(f"<li>{html.escape(item)}</li>")
            else:
                parts.append(f"<p>{html.escape(item)}</p>")
        if refs:
            parts.append("</ol>")
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Markdown


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!~&])")


def md_escape(text: str) -> str:
    """Text shown literally in Markdown: every character with a meaning (``*``, ``_``,
    ``[``, ``<`` (raw HTML), ``|`` ...) backslash-escaped, line breaks as spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.splitlines()))


def _md_table(table: Table) -> str:
    numeric = numeric_columns(table)
    lines = [f"**{md_escape(table.title)}**", "",
             "| " + " | ".join(md_escape(c) for c in table.columns) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for i, row in enumerate(table.rows):
        label = md_escape(row[0])
        if table.is_heading(i):
            label = f"**{label}**"
        elif table.depth[i]:
            label = "\u2003" * table.depth[i] + (f"*{label}*" if table.is_group(i) else label)
        lines.append("| " + " | ".join([label, *(md_escape(c) for c in row[1:])]) + " |")
    return "\n".join([*lines, "", f"*{md_escape(table.notes)}*"])


def render_markdown(report: Report) -> str:
    """The report as Markdown (pipe tables; figures linked from ``figures/<name>.svg``)."""
    parts = [f"# {md_escape(report.title)}", "", md_escape(report.subtitle), ""]
    for section in report.sections:
        parts += [f"## {md_escape(section.heading)}", ""]
        for k, item in enumerate(section.items, start=1):
            if isinstance(item, Table):
                parts.append(_md_table(item))
            elif isinstance(item, FigureFile):
                caption = md_escape(item.caption)
                parts.append(f"![{caption}](figures/{item.name}.svg)\n\n*{caption}*")
            elif section.heading == "References":
                parts.append(f"{k}. {md_escape(item)}")
                if k < len(section.items):
                    continue
            else:
                parts.append(md_escape(item))
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "−": r"\textminus{}", "†": r"\textdagger{}", "\u2003": r"\quad{}", "<": r"\textless{}",
    ">": r"\textgreater{}", "≤": r"$\leq$", "α": r"$\alpha$", "π": r"$\pi$",
    "²": r"\textsuperscript{2}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and map −, †, ≤, α, π, ² to commands)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(text: str) -> str:
    """A table cell: escaped, with break points inside words too long for a column."""
    words = []
    for word in text.split(" "):
        if len(word) > LONG_WORD:
            chunks = [word[k:k + 8] for k in range(0, len(word), 8)]
            words.append(r"\allowbreak{}".join(latex_escape(c) for c in chunks))
        else:
            words.append(latex_escape(word))
    return " ".join(words)


def _latex_table(table: Table) -> str:
    numeric = numeric_columns(table)
    layout = table_layout(table)
    spec = "".join(
        rf">{{\{'raggedleft' if numeric[j] and j else 'raggedright'}\arraybackslash}}"
        rf"p{{{width:.3f}in}}"
        for j, width in enumerate(layout.widths)
    )
    head = " & ".join(rf"\textbf{{{_latex_cell(c)}}}" for c in table.columns) + r" \\"
    body = []
    for i, row in enumerate(table.rows):
        label = _latex_cell(row[0])
        if table.is_heading(i):
            label = rf"\textbf{{{label}}}"
        elif table.depth[i]:
            shown = rf"\textit{{{label}}}" if table.is_group(i) else label
            label = rf"\hspace*{{{table.depth[i]}em}}{shown}"
        cells = [label, *(_latex_cell(c) for c in row[1:])]
        body.append(" & ".join(cells) + r" \\")
    size = layout.size
    lines = [
        r"\begin{landscape}" if layout.landscape else "",
        rf"{{\fontsize{{{size:g}}}{{{1.2 * size:g}}}\selectfont",
        rf"\begin{{longtable}}{{@{{}}{spec}@{{}}}}",
        rf"\caption*{{{latex_escape(table.title)}}}\\",
        r"\toprule", head, r"\midrule", r"\endfirsthead",
        r"\toprule", head, r"\midrule", r"\endhead",
        r"\bottomrule", r"\endlastfoot",
        *body,
        r"\end{longtable}}",
        rf"{{\footnotesize {latex_escape(table.notes)}\par}}",
        r"\end{landscape}" if layout.landscape else "",
    ]
    return "\n".join(line for line in lines if line)


#: The packages the LaTeX report loads; Debian's texlive-latex-base, texlive-latex-recommended,
#: texlive-fonts-recommended and lmodern provide them all.
LATEX_PACKAGES = (
    ("fontenc", "T1"), ("inputenc", "utf8"), ("lmodern", ""), ("textcomp", ""),
    ("geometry", "a4paper,margin=20mm"), ("booktabs", ""), ("array", ""), ("longtable", ""),
    ("graphicx", ""), ("pdflscape", ""), ("caption", "font=small,labelformat=empty"),
    ("hyperref", "hidelinks"),
)


def render_latex(report: Report) -> str:
    """The report as a standalone LaTeX document (booktabs + longtable with column widths from
    :func:`~trialstats.report.layout.table_layout`; figures as PDF from
    ``figures/<name>.pdf``). The preamble lists the packages it needs and where they come
    from."""
    parts = [
        r"\documentclass[10pt,a4paper]{article}",
        "% Packages (Debian: texlive-latex-base, texlive-latex-recommended,",
        "% texlive-fonts-recommended, lmodern): "
        + ", ".join(name for name, _ in LATEX_PACKAGES) + ".",
        *(rf"\usepackage[{options}]{{{name}}}" if options else rf"\usepackage{{{name}}}"
          for name, options in LATEX_PACKAGES),
        r"\setlength{\LTcapwidth}{\linewidth}", r"\setlength{\tabcolsep}{3pt}",
        r"\setlength{\LTleft}{0pt}", r"\setlength{\LTright}{0pt plus 1fill}",
        r"\setlength{\emergencystretch}{3em}",
        r"\begin{document}",
        r"\begin{center}",
        rf"{{\LARGE {latex_escape(report.title)}\par}}\medskip",
        rf"{{\large {latex_escape(report.subtitle)}\par}}",
        r"\end{center}",
    ]
    for section in report.sections:
        parts.append(rf"\section*{{{latex_escape(section.heading)}}}")
        refs = section.heading == "References"
        if refs:
            parts.append(r"\begin{enumerate}\raggedright")
        for item in section.items:
            if isinstance(item, Table):
                parts.append(_latex_table(item))
            elif isinstance(item, FigureFile):
                parts += [
                    r"\begin{figure}[p]" if item.height > 0.6 * item.width
                    else r"\begin{figure}[htbp]", r"\centering",
                    rf"\caption*{{{latex_escape(item.caption)}}}",
                    rf"\includegraphics[width=\linewidth,height=0.8\textheight,"
                    rf"keepaspectratio]{{figures/{item.name}.pdf}}",
                    r"\end{figure}",
                ]
            elif refs:
                parts.append(rf"\item {_latex_cell(item)}")
            else:
                parts += [latex_escape(item), ""]
        if refs:
            parts.append(r"\end{enumerate}")
    parts += [r"\end{document}", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# DOCX


def _set_borders(table, edges: dict[str, int]) -> None:
    """Journal-style rules: only the given table edges, in eighths of a point."""
    properties = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        size = edges.get(edge, 0)
        element.set(qn("w:val"), "single" if size else "nil")
        if size:
            element.set(qn("w:sz"), str(size))
            element.set(qn("w:color"), "000000")
        borders.append(element)
    properties.append(borders)


def _cell_bottom_rule(cell) -> None:
    properties = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    bottom = OxmlElement("w:bottom")
    bottom.set(qn("w:val"), "single")
    bottom.set(qn("w:sz"), "6")
    bottom.set(qn("w:color"), "000000")
    borders.append(bottom)
    properties.append(borders)


def _write_cell(cell, text: str, size: float, bold: bool = False, right: bool = False,
                indent: int = 0, italic: bool = False) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.paragraph_format.space_after = Pt(0)
    paragraph.paragraph_format.space_before = Pt(0)
    if right:
        paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    if indent:
        paragraph.paragraph_format.left_indent = Pt(8 * indent)
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    run.bold = bold
    run.italic = italic


def _row_property(row, name: str) -> None:
    """Set an on/off row property (``tblHeader``: repeat on every page; ``cantSplit``)."""
    element = OxmlElement(f"w:{name}")
    element.set(qn("w:val"), "true")
    row._tr.get_or_add_trPr().append(element)


def _cell_margins(table, points: float) -> None:
    margins = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        element = OxmlElement(f"w:{side}")
        element.set(qn("w:w"), str(round(points * 20)))
        element.set(qn("w:type"), "dxa")
        margins.append(element)
    table._tbl.tblPr.append(margins)


_CAPTION = re.compile(r"^(Table|Figure) (S?)(\d+)\.\s*(.*)$", re.S)


def _caption(document, text: str) -> None:
    """A paragraph in Word's Caption style; ``Table 2. ...`` gets a SEQ field for the number,
    so Word can number and list the captions."""
    paragraph = document.add_paragraph(style="Caption")
    paragraph.paragraph_format.keep_with_next = True
    match = _CAPTION.match(text)
    if match is None:
        paragraph.add_run(text)
        return
    kind, prefix, number, rest = match.groups()
    paragraph.add_run(f"{kind} {prefix}")
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), f" SEQ {kind} \\* ARABIC ")
    run = OxmlElement("w:r")
    value = OxmlElement("w:t")
    value.text = number
    run.append(value)
    field.append(run)
    paragraph._p.append(field)
    paragraph.add_run(f". {rest}")


def _docx_table(document, table: Table) -> None:
    numeric = numeric_columns(table)
    layout = table_layout(table)
    size = layout.size
    _caption(document, table.title)
    grid = document.add_table(rows=1 + len(table.rows), cols=len(table.columns))
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False
    _cell_margins(grid, 72 * PADDING / 2)
    _set_borders(grid, {"top": 12, "bottom": 12})
    for j, width in enumerate(layout.widths):
        grid.columns[j].width = Inches(width + PADDING)
        for row in grid.rows:
            row.cells[j].width = Inches(width + PADDING)
    _row_property(grid.rows[0], "tblHeader")
    for j, column in enumerate(table.columns):
        cell = grid.rows[0].cells[j]
        _write_cell(cell, column, size, bold=True, right=numeric[j] and j > 0)
        _cell_bottom_rule(cell)
    for i, row in enumerate(table.rows, start=1):
        _row_property(grid.rows[i], "cantSplit")
        heading, group = table.is_heading(i - 1), table.is_group(i - 1)
        for j, text in enumerate(row):
            _write_cell(grid.rows[i].cells[j], text, size, bold=heading and j == 0,
                        right=numeric[j] and j > 0, indent=table.depth[i - 1] if j == 0 else 0,
                        italic=group and j == 0)
    note = document.add_paragraph()
    run = note.add_run(table.notes)
    run.font.size = Pt(8)
    run.italic = True


#: Type face of the Word report (metric-compatible with Liberation Sans, which LibreOffice uses).
DOCX_FONT = "Arial"


def _font(style, name: str) -> None:
    """Use the face ``name`` for every script of ``style`` (no theme font)."""
    style.font.name = name
    fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    for attribute in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attribute), name)
    for attribute in ("w:asciiTheme", "w:hAnsiTheme", "w:cstheme", "w:eastAsiaTheme"):
        fonts.attrib.pop(qn(attribute), None)


def _orient(document, landscape: bool) -> None:
    """Start a new section (page) in the given orientation."""
    section = document.add_section()
    width, height = section.page_width, section.page_height
    if landscape != (width > height):
        section.page_width, section.page_height = height, width
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT


def _figure_width(figure: FigureFile) -> float:
    """Width in inches at which ``figure`` fits the portrait text block (caption included)."""
    room = 0.85 * TEXT_HEIGHT[False]
    return min(figure.width, TEXT_WIDTH[False], room * figure.width / figure.height)


def docx_bytes(report: Report) -> bytes:
    """The report as a Word document: real tables with journal-style rules, column widths
    from content, header rows that repeat, rows kept whole, captions in Word's Caption style,
    landscape sections only for tables that need them, PNG figures scaled to the page."""
    document = Document()
    properties = document.core_properties
    properties.title = report.title
    properties.author = "trialstats"
    properties.last_modified_by = "trialstats"
    fixed = datetime(2000, 1, 1, tzinfo=timezone.utc)
    properties.created = properties.modified = fixed
    page = document.sections[0]
    page.page_width, page.page_height = Mm(210), Mm(297)
    page.left_margin = page.right_margin = page.top_margin = page.bottom_margin = Mm(20)
    for style in ("Normal", "Caption", "Title", "Heading 1"):
        _font(document.styles[style], DOCX_FONT)
    document.add_heading(report.title, level=0)
    document.add_paragraph(report.subtitle)
    landscape = False

    def orient(wanted: bool) -> None:
        nonlocal landscape
        if wanted != landscape:
            _orient(document, wanted)
            landscape = wanted

    for section in report.sections:
        wide = [isinstance(i, Table) and table_layout(i).landscape for i in section.items]
        orient(bool(wide) and wide[0])
        document.add_heading(section.heading, level=1)
        for k, (item, item_wide) in enumerate(zip(section.items, wide, strict=True), start=1):
            orient(item_wide)
            if isinstance(item, Table):
                _docx_table(document, item)
            elif isinstance(item, FigureFile):
                _caption(document, item.caption)
                document.add_picture(io.BytesIO(item.png), width=Inches(_figure_width(item)))
            elif section.heading == "References":
                document.add_paragraph(f"{k}. {item}")
            else:
                document.add_paragraph(item)
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip(buffer.getvalue())


def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip archive with fixed timestamps so that identical content gives
    identical bytes."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()
