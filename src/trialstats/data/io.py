"""Reading trial tables from the formats statisticians use.

Every reader returns a :class:`pandas.DataFrame` whose rows keep the order of the file.
Text files are read as text (every cell a string, empty cells as missing) so that
validation can say exactly which cell is not a number; binary formats keep their types.
Rows are numbered as in a spreadsheet: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from trialstats.errors import TrialstatsError

#: Cell texts read as missing in text files (Stata and SAS write "." for missing).
MISSING_TEXT = frozenset({"", "NA", "N/A", "NaN", "nan", ".", "NULL"})
_DELIMITERS = ",;\t|"
_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")


def first_data_row() -> int:
    """Spreadsheet row number of a table's first record (the header is row 1)."""
    return 2


def _decode(path: Path, raw: bytes) -> str:
    for encoding in _ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise TrialstatsError(f"{path}: cannot be decoded as UTF-8 or Latin-1 text.")


def _sniff_delimiter(path: Path, text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
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


def _short_records(text: str, delimiter: str, n_fields: int) -> list[int]:
    """Spreadsheet row numbers of records with fewer fields than the header (pandas pads
    such records with missing values, which would hide a truncated file)."""
    records = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    next(records, None)
    return [
        row for row, record in enumerate(records, start=first_data_row())
        if record and len(record) < n_fields
    ]


def read_text_table(path: Path) -> pd.DataFrame:
    """Read a delimited text file: any of , ; tab | as delimiter; UTF-8 (with or
    without BOM), Windows-1252 or Latin-1; every cell kept as text, missing as NA."""
    raw = path.read_bytes()
    text = _decode(path, raw)
    if not text.strip():
        raise TrialstatsError(f"{path}: the file is empty.")
    delimiter = _sniff_delimiter(path, text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise TrialstatsError(f"{path}: cannot be parsed as a delimited table ({exc}).") from None
    short = _short_records(text, delimiter, len(frame.columns))
    if short:
        rows = ", ".join(str(r) for r in short[:5]) + (" and more" if len(short) > 5 else "")
        raise TrialstatsError(
            f"{path}: row{'s' if len(short) > 1 else ''} {rows} "
            f"{'have' if len(short) > 1 else 'has'} fewer fields than the header's "
            f"{len(frame.columns)}; the file may be truncated or use a different delimiter."
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda col: col.str.strip())
    return frame.mask(frame.isin(MISSING_TEXT))


def _read_excel(path: Path) -> pd.DataFrame:
    return pd.read_excel(path, sheet_name=0)


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


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a trial table, choosing the reader by the file extension.

    Supported: ``.csv``/``.tsv``/``.txt`` (delimiter and encoding detected), ``.parquet``,
    Stata ``.dta``, SPSS ``.sav`` (value labels applied) and Excel ``.xlsx`` (first sheet).

    Raises
    ------
    TrialstatsError
        If the file is missing, empty, of an unknown type, or cannot be parsed.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise TrialstatsError(
            f"{path}: unknown file type '{path.suffix}'; use one of {', '.join(READERS)}."
        )
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
    return frame.reset_index(drop=True)


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    A run killed mid-write leaves no truncated ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a tidy table as CSV (UTF-8, floats round-trip exactly, no index), atomically."""
    write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
