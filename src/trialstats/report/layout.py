"""Page layout of the report's tables: orientation, type size and column widths from content.

One layout serves the paged renderers (LaTeX and Word), so a table reads the same in both.
The page is A4 with 20 mm margins, giving a text block :data:`TEXT_WIDTH` inches wide
(portrait or landscape). A cell of ``n`` characters at ``s`` points needs about
``n * CHAR_EM * s / 72`` inches (bold text :data:`BOLD` times more, a capital :data:`CAPITAL`
characters) plus :data:`PADDING`.
Each column's *natural* width fits its longest cell on one line; its *minimum* fits its
longest word (words longer than :data:`LONG_WORD` characters are allowed to break). The
first candidate of :data:`CANDIDATES` (portrait before landscape, larger type first) where
every column gets its natural width is used, else the first where the minimum widths fit;
columns get their natural width when all fit, otherwise their minimum plus a share of the
remaining width in proportion to what they lack.
"""

from __future__ import annotations

from dataclasses import dataclass

from trialstats.report.document import Table

__all__ = ["LONG_WORD", "PADDING", "TEXT_HEIGHT", "TEXT_WIDTH", "TableLayout", "table_layout"]

_MM = 1 / 25.4
#: Width of the text block in inches, by orientation (A4, 20 mm margins).
TEXT_WIDTH = {False: (210 - 40) * _MM, True: (297 - 40) * _MM}
#: Height of the text block in inches, by orientation.
TEXT_HEIGHT = {False: (297 - 40) * _MM, True: (210 - 40) * _MM}
#: Average character width in ems (generous for Latin Modern and Arial/Liberation Sans).
CHAR_EM = 0.55
#: Bold text is this much wider.
BOLD = 1.1
#: A capital letter is this many average characters wide (an abbreviation such as MCID in a
#: column of its own would otherwise overflow it).
CAPITAL = 1.35
#: Horizontal padding of one cell (both sides), inches.
PADDING = 6 / 72
#: Words longer than this many characters may break (paths, checksums).
LONG_WORD = 20
#: (landscape, type size in points) tried in order.
CANDIDATES = ((False, 9.0), (False, 8.0), (False, 7.0), (True, 8.0), (True, 7.0), (True, 6.0))


@dataclass(frozen=True)
class TableLayout:
    """How a table is set on the page.

    Attributes
    ----------
    landscape : bool
        Whether the table needs a landscape page.
    size : float
        Type size in points.
    widths : tuple of float
        Column widths in inches, padding excluded; their sum plus one :data:`PADDING` per
        column is at most the text width.
    """

    landscape: bool
    size: float
    widths: tuple[float, ...]


def _chars(text: str) -> float:
    """Width of ``text`` in average characters, capitals counted :data:`CAPITAL` wide."""
    return len(text) + (CAPITAL - 1) * sum(ch.isupper() for ch in text)


def _extent(text: str, bold: bool) -> tuple[int, int]:
    """(characters, characters of the longest word) of ``text``, bold and capitals counted
    wider."""
    scale = BOLD if bold else 1.0
    words = text.split() or [""]
    longest = max(min(_chars(w), LONG_WORD) for w in words)
    return round(_chars(text) * scale), round(longest * scale) + 1


def table_layout(table: Table) -> TableLayout:
    """The layout of ``table``: see the module docstring."""
    n = len(table.columns)
    natural, minimum = [0] * n, [0] * n
    cells = [(c, True, 0) for c in table.columns] + [
        (cell, table.is_heading(i) and j == 0, table.depth[i] if j == 0 else 0)
        for i, row in enumerate(table.rows) for j, cell in enumerate(row)
    ]
    for k, (text, bold, depth) in enumerate(cells):
        j = k % n
        chars, word = _extent(text, bold)
        natural[j] = max(natural[j], chars + 2 * depth)
        minimum[j] = max(minimum[j], word + 2 * depth)
    if table.name == "provenance" or n == 1:
        # long free text: let the last column take what is left
        natural[-1] = max(natural[-1], 10 * minimum[-1])
    def room(landscape: bool) -> float:
        return TEXT_WIDTH[landscape] - n * PADDING

    def fits(candidate: tuple[bool, float], chars: list[int]) -> bool:
        return sum(chars) * CHAR_EM * candidate[1] / 72 <= room(candidate[0])

    widest = [max(a, b) for a, b in zip(natural, minimum, strict=True)]
    landscape, size = next((c for c in CANDIDATES if fits(c, widest)),
                           next((c for c in CANDIDATES if fits(c, minimum)), CANDIDATES[-1]))
    inch = CHAR_EM * size / 72
    need = [m * inch for m in minimum]
    want = [max(a, b) * inch for a, b in zip(natural, minimum, strict=True)]
    if sum(want) <= room(landscape):
        return TableLayout(landscape, size, tuple(want))
    spare = max(room(landscape) - sum(need), 0.0)
    lack = [w - m for w, m in zip(want, need, strict=True)]
    total = sum(lack) or 1.0
    widths = tuple(m + spare * d / total for m, d in zip(need, lack, strict=True))
    return TableLayout(landscape, size, widths)
