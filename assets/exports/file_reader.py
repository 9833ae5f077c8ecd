"""Read Brazilian export-statistics files (CSV / XLSX) into validated, typed Arrow tables.

Pure logic (no Dagster): the raw export asset calls :func:`read_export_file` per landed file and
writes ``rows`` and ``rejects`` in one transaction. Every data row of the file ends up in exactly
one of the two tables (``rows.num_rows + rejects.num_rows == total_rows``) so a load can be
reconciled against its file. Files that cannot be parsed at all raise :class:`UnreadableFileError`
and are quarantined by the caller.

Real files arrive as UTF-8, UTF-8 with BOM, Latin-1 / cp1252 (UTF-16 with BOM too), separated by
``;``, ``,``, tab or ``|``, with decimal points or decimal commas (``1.250.000,50``), so all of
that is detected per file. Speed matters (1M-row files), hence the design, one module per job:

* :mod:`assets.exports.encoding` detects the encoding and hands on UTF-8 (validated with Arrow's
  validator: no Python ``str`` is built for the file).
* :mod:`assets.exports.csv_scan`: newline (and quote) positions are found with numpy to know each
  record's physical line, and pyarrow's multithreaded CSV parser reads the needed columns as
  strings; a quote layout pyarrow might read differently from us falls back to the ``csv`` module.
* :mod:`assets.exports.xlsx`: python-calamine loads the sheet; only the seven needed columns are
  turned into Arrow.
* :mod:`assets.exports.rules`: validation and conversion are vectorized (``pyarrow.compute`` +
  numpy masks): clean values take cheap kernels, only odd ones go through regexes, and reasons are
  built for failing rows only. :mod:`assets.exports.numbers`: the decimal separator of the file,
  and the two decimal columns (the costliest, checked on worker threads).
* :mod:`assets.exports.schema`: the columns, their limits and header aliases all stages share.

Conventions: blank lines and separator-only rows (``;;;;;;``) are not data rows; text is trimmed
(case kept); values with more decimals than the column keeps are rounded half away from zero
like PostgreSQL ``numeric``; an XLSX NCM stored as a 7-digit number gets its leading zero back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.exports.csv_scan import scan_csv
from assets.exports.encoding import to_utf8
from assets.exports.numbers import detect_decimal, non_digits
from assets.exports.rules import validate_rows
from assets.exports.schema import (
    DECIMAL_SCALES,
    EXPORT_COLUMNS,
    REJECT_SCHEMA,
    ROW_SCHEMA,
    Rejected,
    unreadable,
)
from assets.exports.xlsx import read_xlsx_sheet
from resources.file_errors import UnreadableFileError

__all__ = [
    "EXPORT_COLUMNS",
    "REJECT_SCHEMA",
    "ROW_SCHEMA",
    "ParsedExportFile",
    "UnreadableFileError",
    "parse_export_bytes",
    "read_export_file",
]

CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True)
class ParsedExportFile:
    """Outcome of reading one file: typed valid rows plus rejects, with what was detected."""

    rows: pa.Table
    rejects: pa.Table
    total_rows: int
    file_format: str
    encoding: str | None
    delimiter: str | None
    decimal_separator: str
    sheet: str | None


def read_export_file(path: Path, sheet: str | None = None) -> ParsedExportFile:
    """Parse and validate one export file; raises :class:`UnreadableFileError` if it can't be read.

    ``sheet`` selects the XLSX worksheet (default: the first one); it is ignored for CSV.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise unreadable(f"cannot open file: {exc.strerror or exc}") from exc
    return parse_export_bytes(path.name, data, sheet)


def parse_export_bytes(name: str, data: bytes, sheet: str | None = None) -> ParsedExportFile:
    """Parse the bytes of an export file named ``name`` (the landing ingest reads them safely once)."""
    suffix = Path(name).suffix.lower()
    if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
        expected = ", ".join(CSV_SUFFIXES + XLSX_SUFFIXES)
        raise unreadable(f"unsupported file extension {suffix or '(none)'!r} (expected {expected})")
    if not data:
        raise unreadable("empty file (0 bytes)")
    if suffix in CSV_SUFFIXES:
        return read_csv(data)
    return read_xlsx(data, sheet)


def read_csv(data: bytes) -> ParsedExportFile:
    """A CSV export file: encoding, records, decimal separator, then the rules."""
    body, encoding = to_utf8(data)
    delimiter, candidates, ragged = scan_csv(body)
    with ThreadPoolExecutor(max_workers=len(DECIMAL_SCALES), thread_name_prefix="export-decimal") as pool:
        found = pool.map(non_digits, [candidates.cells[c] for c in DECIMAL_SCALES])
        marks = dict(zip(DECIMAL_SCALES, found, strict=True))
    decimal = detect_decimal(candidates.cells, delimiter, marks)
    rows, rejected = validate_rows(candidates, decimal, marks)
    total = candidates.lines.size + ragged.lines.size
    return assemble(rows, [ragged, rejected], total, "csv", encoding, delimiter, decimal, None)


def read_xlsx(data: bytes, sheet: str | None) -> ParsedExportFile:
    """An XLSX export file: the sheet's rows, the decimal separator of its text cells, the rules."""
    name, candidates = read_xlsx_sheet(data, sheet)
    numeric = candidates.numeric_cells or {}
    # Number cells have no separator convention: only text cells tell the file's one.
    text_cells = {c: pc.if_else(pa.array(numeric[c]), "", candidates.cells[c]) for c in DECIMAL_SCALES}
    decimal = detect_decimal(text_cells, None)
    rows, rejected = validate_rows(candidates, decimal)
    return assemble(rows, [rejected], int(candidates.lines.size), "xlsx", None, None, decimal, name)


def assemble(
    rows: pa.Table,
    rejected: list[Rejected],
    total_rows: int,
    file_format: str,
    encoding: str | None,
    delimiter: str | None,
    decimal: str,
    sheet: str | None,
) -> ParsedExportFile:
    """Rejects of every stage in file order; every data row lands in exactly one of the two tables."""
    lines = np.concatenate([r.lines for r in rejected]) if rejected else np.empty(0, np.int64)
    order = np.argsort(lines, kind="stable")
    rejects = pa.table(
        [
            pa.array(lines[order], pa.int64()),
            pa.concat_arrays([pc.cast(r.reasons, pa.string()) for r in rejected]).take(pa.array(order)),
            pa.concat_arrays([pc.cast(r.raw, pa.string()) for r in rejected]).take(pa.array(order)),
        ],
        schema=REJECT_SCHEMA,
    )
    if rows.num_rows + rejects.num_rows != total_rows:  # every data row lands in exactly one table
        raise RuntimeError(f"reader bug: {rows.num_rows} rows + {rejects.num_rows} rejects != {total_rows}")
    return ParsedExportFile(
        rows=rows,
        rejects=rejects,
        total_rows=total_rows,
        file_format=file_format,
        encoding=encoding,
        delimiter=delimiter,
        decimal_separator=decimal,
        sheet=sheet,
    )
