"""Reading trial tables from the formats statisticians use.

Every reader returns a :class:`pandas.DataFrame` whose rows keep the order of the file, with
``attrs["source"]`` saying what was read (file, encoding and delimiter, or the Excel sheet).
Text files are read as text (every cell a string, empty cells as missing) so that validation
can say exactly which cell is not a number; binary formats keep their types. Rows are
numbered as in a spreadsheet: the header is row 1, the first record row 2.

Nothing ambiguous is guessed. A column of numbers written with commas is read with the comma
as a thousands separator (``10,163`` = 10163) or as a decimal comma (``7,5`` = 7.5) only when
the data decide it: the column itself (``1,234,567`` or ``1,234.5`` can only be grouped
digits, ``7,5`` or ``0,163`` only a decimal), or else the rest of the file (numbers with
decimal points elsewhere mean commas group digits; decimal commas elsewhere mean they are
decimals). Otherwise, or when the two conventions are mixed, the file is refused with the
rows to fix. Repeated column names, a header with fewer or more names than the records have
fields, a compressed or binary file under a text extension, and an Excel workbook with more
than one sheet and no sheet configured (``data.sheet``) are refused too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import warnings
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import pandas as pd

from trialstats.atomic import write_atomically
from trialstats.errors import TrialstatsError

#: Cell texts read as missing in text files (Stata and SAS write "." for missing).
MISSING_TEXT = frozenset({"", "NA", "N/A", "NaN", "nan", ".", "NULL"})
_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_ENCODINGS = {"utf-8-sig": "UTF-8", "cp1252": "Windows-1252", "latin-1": "Latin-1"}
_SHOWN_ROWS = 5

#: Leading bytes of files that are not delimited text, and what they are.
_SIGNATURES = (
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it (gunzip) first"),
    (b"PK\x03\x04", "a zip archive", "extract the table from it first"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-format Office file (.xls)",
     "save it as .xlsx or CSV"),
    (b"PAR1", "a Parquet file", "give it the extension .parquet"),
    (b"$FL2", "an SPSS data file", "give it the extension .sav"),
    (b"$FL3", "an SPSS data file", "give it the extension .sav"),
    (b"<stata_dta>", "a Stata data file", "give it the extension .dta"),
    (b"%PDF", "a PDF document", "export the table as CSV"),
)

_GROUPED = re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_AMBIGUOUS = re.compile(r"^[+-]?[1-9]\d{0,2},\d{3}$")


def first_data_row() -> int:
    """Spreadsheet row number of a table's first record (the header is row 1)."""
    return 2


def _row_list(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS])
    more = f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _not_text(path: Path, raw: bytes) -> None:
    """Refuse a binary or compressed file under a text extension, naming what it is."""
    for signature, what, fix in _SIGNATURES:
        if raw.startswith(signature):
            if signature == b"PK\x03\x04" and b"xl/workbook" in raw:
                what, fix = "an Excel workbook", "give it the extension .xlsx"
            raise TrialstatsError(f"{path}: is {what}, not delimited text; {fix}.")


def _decode(path: Path, raw: bytes) -> tuple[str, str]:
    """The text of a file and the name of its encoding (UTF-16 is recognised by its byte
    order mark or by the zero bytes of ASCII characters)."""
    head = raw[:2000]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "UTF-16"
    if head.count(0) > len(head) // 4:
        encoding = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        with contextlib.suppress(UnicodeDecodeError):  # not UTF-16 after all: refused below
            return raw.decode(encoding), "UTF-16"
    if 0 in head:
        raise TrialstatsError(f"{path}: contains zero bytes; it is not a delimited text file.")
    for encoding, name in _ENCODINGS.items():
        try:
            return raw.decode(encoding), name
        except UnicodeDecodeError:
            continue
    raise TrialstatsError(f"{path}: cannot be decoded as UTF-8 or Latin-1 text.")


def _sniff_delimiter(path: Path, text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        header = text.splitlines()[0]
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=counts.get)
        if counts[best] == 0:
            raise TrialstatsError(
                f"{path}: cannot find the column delimiter in the header line "
                f"(tried comma, semicolon, tab and |)."
            ) from None
        return best


def _check_header_and_fields(path: Path, text: str, delimiter: str) -> list[str]:
    """Refuse repeated column names and records with fewer or more fields than the header
    has names (pandas would pad short records with missing values, hiding a truncated file,
    and turn the first column of long ones into row labels, shifting every column). Empty
    fields after the last column (a delimiter at the end of each line) are allowed.
    Returns the header's names."""
    records = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    header = [name.strip() for name in next(records, [])]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise TrialstatsError(f"{path}: repeated column names: {', '.join(repeated)}.")
    short, long = [], []
    for row, record in enumerate(records, start=first_data_row()):
        if record and len(record) < len(header):
            short.append(row)
        elif any(field.strip() for field in record[len(header):]):
            long.append(row)
    if long:
        raise TrialstatsError(
            f"{path}: {_row_list(long)} {'have' if len(long) > 1 else 'has'} more fields than "
            f"the header's {len(header)} column names; a name may be missing from the header "
            f"line, or a value contains an unquoted '{delimiter}'."
        )
    if short:
        raise TrialstatsError(
            f"{path}: {_row_list(short)} {'have' if len(short) > 1 else 'has'} fewer fields "
            f"than the header's {len(header)}; the file may be truncated or use a different "
            f"delimiter."
        )
    return header


def _text_cells(column: pd.Series) -> pd.Series | None:
    """The present cells of a column when they are all strings, else None."""
    if not (pd.api.types.is_object_dtype(column) or isinstance(column.dtype, pd.StringDtype)):
        return None
    present = column.dropna()
    if not len(present) or pd.api.types.infer_dtype(present, skipna=False) != "string":
        return None
    return present


def _numeric_text(column: pd.Series) -> pd.Series | None:
    """The present cells of a text column when every one is a number in some convention."""
    present = _text_cells(column)
    if present is None:
        return None
    comma = present.str.contains(",", regex=False)
    if pd.to_numeric(present[~comma], errors="coerce").isna().any():
        return None
    with_comma = present[comma]
    if not (with_comma.str.match(_GROUPED) | with_comma.str.match(_DECIMAL_COMMA)).all():
        return None
    return present


def _kinds(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Which number cells can only be decimal commas (``7,5``, ``0,163``), and which show
    that commas group thousands (``1,234,567``, ``1,234.5``) or that decimals are points."""
    comma = cells.str.contains(",", regex=False)
    ambiguous = cells.str.match(_AMBIGUOUS)
    decimal = comma & cells.str.match(_DECIMAL_COMMA) & ~ambiguous
    points = cells.str.contains(".", regex=False) | (comma & ~decimal & ~ambiguous)
    return decimal, points


def _file_evidence(frame: pd.DataFrame) -> tuple[bool, bool]:
    """Whether the file's number columns use decimal points (or unambiguous thousands
    separators) anywhere, and whether they use unambiguous decimal commas anywhere."""
    points = commas = False
    for name in frame.columns:
        cells = _numeric_text(frame[name])
        if cells is not None:
            decimal, point = _kinds(cells)
            points, commas = points or bool(point.any()), commas or bool(decimal.any())
    return points, commas


def _comma_convention(
    path: Path, name: str, cells: pd.Series, evidence: Callable[[], tuple[bool, bool]]
) -> str:
    """``"thousands"`` or ``"decimal"`` for a column of numbers written with commas;
    ``evidence()`` gives the file's (decimal points, decimal commas) when the column cannot
    decide alone."""
    decimal, points = _kinds(cells)
    if decimal.any() and (points.any() or evidence()[0]):
        bad = [int(i) + first_data_row() for i in cells.index[decimal]]
        raise TrialstatsError(
            f"{path}, column '{name}': {_row_list(bad)} "
            f"{'use a decimal comma' if len(bad) > 1 else 'uses a decimal comma'} "
            f"(e.g. {cells[decimal].iloc[0]!r}) but "
            f"{'this column uses' if points.any() else 'other columns use'} decimal points "
            f"or thousands separators; write every number of the file in one convention."
        )
    if decimal.any():
        return "decimal"
    if points.any():
        return "thousands"
    file_points, file_commas = evidence()
    if file_points != file_commas:
        return "thousands" if file_points else "decimal"
    with_comma = cells[cells.str.contains(",", regex=False)]
    rows = [int(i) + first_data_row() for i in with_comma.index]
    example = with_comma.iloc[0]
    raise TrialstatsError(
        f"{path}, column '{name}': {_row_list(rows)} "
        f"({', '.join(repr(v) for v in with_comma.iloc[:3])}) could be read with the comma as "
        f"a thousands separator ({example.replace(',', '')}) or as a decimal comma "
        f"({example.replace(',', '.')}), and nothing else in the file decides which; write "
        f"the numbers without thousands separators and with decimal points."
    )


def normalise_numbers(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Rewrite numbers written with commas in plain form, deciding per column (and, where a
    column cannot decide, per file) whether the comma groups thousands or marks decimals.

    Returns the frame and notes such as ``"thousands separators in list_size"``.

    Raises
    ------
    TrialstatsError
        Naming the file, column and rows when a column mixes the conventions, disagrees with
        the rest of the file, or cannot be decided.
    """
    with_commas = {}
    for name in frame.columns:
        cells = _text_cells(frame[name])
        if cells is not None and cells.str.contains(",", regex=False).any():
            numbers = _numeric_text(cells)
            if numbers is not None:
                with_commas[name] = numbers
    if not with_commas:
        return frame, []
    evidence = cache(partial(_file_evidence, frame))
    frame = frame.copy()
    decided: dict[str, list[str]] = {"thousands": [], "decimal": []}
    for name, cells in with_commas.items():
        convention = _comma_convention(path, name, cells, evidence)
        decided[convention].append(name)
        column = frame[name]
        replacement = "" if convention == "thousands" else "."
        frame[name] = column.str.replace(",", replacement, regex=False).where(column.notna())
    notes = [f"{'thousands separators' if kind == 'thousands' else 'decimal commas'} in "
             f"{', '.join(names)}" for kind, names in decided.items() if names]
    return frame, notes


def read_text_table(path: Path) -> pd.DataFrame:
    """Read a delimited text file: any of , ; tab | as delimiter; UTF-8 (with or without
    BOM), UTF-16, Windows-1252 or Latin-1; every cell kept as text, missing as NA; numbers
    with commas rewritten in plain form (see :func:`normalise_numbers`)."""
    raw = path.read_bytes()
    _not_text(path, raw)
    text, encoding = _decode(path, raw)
    if not text.strip():
        raise TrialstatsError(f"{path}: the file is empty.")
    delimiter = _sniff_delimiter(path, text)
    header = _check_header_and_fields(path, text, delimiter)
    try:
        with warnings.catch_warnings():  # trailing fields were checked to be empty
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text),
                sep=delimiter,
                dtype=str,
                keep_default_na=False,
                skipinitialspace=True,
                index_col=False,
            )
    except (pd.errors.ParserError, ValueError) as exc:
        raise TrialstatsError(f"{path}: cannot be parsed as a delimited table ({exc}).") from None
    frame = frame.apply(lambda col: col.str.strip())
    frame = frame.mask(frame.isin(MISSING_TEXT))
    unnamed = [i for i, name in enumerate(header) if not name]
    filled = [i + 1 for i in unnamed if frame.iloc[:, i].notna().any()]
    if filled:
        raise TrialstatsError(
            f"{path}: column{'s' if len(filled) > 1 else ''} {', '.join(map(str, filled))} "
            f"{'have' if len(filled) > 1 else 'has'} values but no name in the header line."
        )
    frame = frame.drop(columns=frame.columns[unnamed])
    frame.columns = [name for name in header if name]
    notes: list[str] = []
    if "," in text if delimiter != "," else '"' in text:
        frame, notes = normalise_numbers(frame, path)
    frame.attrs["source"] = "; ".join(
        [f"{path}: {encoding} text, {_DELIMITERS[delimiter]}-delimited", *notes]
    )
    return frame


def _read_excel(path: Path, sheet: str | None = None) -> pd.DataFrame:
    with pd.ExcelFile(path) as book:
        names = book.sheet_names
        if sheet is None and len(names) > 1:
            raise TrialstatsError(
                f"{path}: the workbook has {len(names)} sheets "
                f"({', '.join(repr(n) for n in names)}); name the one to read in data.sheet."
            )
        if sheet is not None and sheet not in names:
            raise TrialstatsError(
                f"{path}: the workbook has no sheet {sheet!r} (data.sheet); its sheets are "
                f"{', '.join(repr(n) for n in names)}."
            )
        chosen = sheet if sheet is not None else names[0]
        header = pd.read_excel(book, sheet_name=chosen, header=None, nrows=1)
        names_in_header = [str(c).strip() for c in header.iloc[0]] if len(header) else []
        repeated = sorted({c for c in names_in_header if names_in_header.count(c) > 1})
        if repeated:
            raise TrialstatsError(f"{path}: repeated column names: {', '.join(repeated)}.")
        frame = pd.read_excel(book, sheet_name=chosen)
    frame.attrs["source"] = f"{path}: sheet {chosen!r} of the workbook"
    return frame


def _read_stata(path: Path) -> pd.DataFrame:
    return pd.read_stata(path, convert_categoricals=True)


def _read_spss(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _ = pyreadstat.read_sav(str(path), apply_value_formats=True)
    return frame


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": read_text_table,
    ".tsv": read_text_table,
    ".txt": read_text_table,
    ".parquet": pd.read_parquet,
    ".dta": _read_stata,
    ".sav": _read_spss,
    ".xlsx": _read_excel,
}


def read_table(path: str | Path, sheet: str | None = None) -> pd.DataFrame:
    """Read a trial table, choosing the reader by the file extension.

    Supported: ``.csv``/``.tsv``/``.txt`` (delimiter and encoding detected), ``.parquet``,
    Stata ``.dta``, SPSS ``.sav`` (value labels applied) and Excel ``.xlsx`` (the only
    sheet, or ``sheet``).

    Raises
    ------
    TrialstatsError
        If the file is missing, empty, of an unknown type, not what its extension says, or
        cannot be parsed; if a sheet is given for a file that is not a workbook.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise TrialstatsError(
            f"{path}: unknown file type '{path.suffix}'; use one of {', '.join(READERS)}."
        )
    if sheet is not None:
        if reader is not _read_excel:
            raise TrialstatsError(
                f"{path}: data.sheet names sheet {sheet!r} but the file is not an Excel workbook."
            )
        reader = partial(_read_excel, sheet=sheet)
    if not path.is_file():
        raise TrialstatsError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise TrialstatsError(f"{path}: the file is empty.")
    try:
        frame = reader(path)
    except TrialstatsError:
        raise
    except Exception as exc:  # every reader's own failure becomes a user-facing message
        raise TrialstatsError(
            f"{path}: cannot be read as a {path.suffix} file; it may be truncated or corrupt "
            f"({type(exc).__name__}: {exc})."
        ) from None
    if frame.shape[1] == 0:
        raise TrialstatsError(f"{path}: the file has no columns.")
    if len(frame) == 0:
        raise TrialstatsError(f"{path}: the file has a header but no data rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise TrialstatsError(f"{path}: repeated column names: {', '.join(duplicated)}.")
    frame = frame.reset_index(drop=True)
    frame.attrs.setdefault("source", f"{path}: {path.suffix[1:]} file")
    if reader is not read_text_table:
        frame, notes = normalise_numbers(frame, path)
        frame.attrs["source"] = "; ".join([frame.attrs["source"], *notes])
    return frame


def read_input(config: dict[str, Any], table: str) -> pd.DataFrame:
    """Read the ``practices`` or ``patients`` table named in ``config['data']`` (with its
    Excel sheet from ``data.sheet`` when one is set)."""
    data = config["data"]
    return read_table(data[table], sheet=(data.get("sheet") or {}).get(table))


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a tidy table as CSV (UTF-8, floats round-trip exactly, no index), atomically."""
    write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
