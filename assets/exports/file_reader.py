"""Read Brazilian export-statistics files (CSV / XLSX) into validated, typed Arrow tables.

Pure logic (no Dagster): the raw export asset calls :func:`read_export_file` per landed file and
writes ``rows`` and ``rejects`` in one transaction. Every data row of the file ends up in exactly
one of the two tables (``rows.num_rows + rejects.num_rows == total_rows``) so a load can be
reconciled against its file. Files that cannot be parsed at all raise :class:`UnreadableFileError`
and are quarantined by the caller.

Real files arrive as UTF-8, UTF-8 with BOM, Latin-1 / cp1252 (UTF-16 with BOM too), separated by
``;``, ``,``, tab or ``|``, with decimal points or decimal commas (``1.250.000,50``), so all of
that is detected per file. Speed matters (1M-row files), hence the design:

* CSV: the bytes are decoded to UTF-8 once, newline (and quote) positions are found with numpy to
  know each record's physical line, and pyarrow's multithreaded CSV parser reads the needed
  columns as strings. Fields are only counted (second numpy scan) when pyarrow reports ragged
  lines; a quote layout pyarrow might read differently from us falls back to the ``csv`` module.
* XLSX: python-calamine loads the sheet; only the seven needed columns are turned into Arrow.
* Validation and conversion are vectorized (``pyarrow.compute`` + numpy masks): clean values take
  cheap kernels, only odd ones go through regexes, and reasons are built for failing rows only.
  The two decimal columns (the costliest) are checked on worker threads: "plain" numbers
  (``1.250.000,50``) are recognised and parsed from an index of their non-digit bytes; every other
  value goes through the exact regex rules, so results are identical, only faster.
* UTF-8 is validated with Arrow's validator (no Python ``str`` is built for the file).

Conventions: blank lines and separator-only rows (``;;;;;;``) are not data rows; text is trimmed
(case kept); values with more decimals than the column keeps are rounded half away from zero
like PostgreSQL ``numeric``; an XLSX NCM stored as a 7-digit number gets its leading zero back.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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

EXPORT_COLUMNS: tuple[str, ...] = ("ano", "mes", "pais", "setor", "ncm", "valor_usd", "peso_kg")

ROW_SCHEMA = pa.schema(
    [
        ("ano", pa.int32()),
        ("mes", pa.int32()),
        ("pais", pa.string()),
        ("setor", pa.string()),
        ("ncm", pa.string()),
        ("valor_usd", pa.decimal128(15, 2)),
        ("peso_kg", pa.decimal128(15, 3)),
        ("source_line", pa.int64()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [("source_line", pa.int64()), ("reason", pa.string()), ("raw_content", pa.string())]
)

CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
DELIMITERS = (";", ",", "\t", "|")
YEAR_RANGE = (1990, 2100)
TEXT_MAX_CHARS = 100
DECIMAL_SCALES = {"valor_usd": 2, "peso_kg": 3}  # both decimal(15, scale)
DECIMAL_PRECISION = 15
HEADER_SEARCH_ROWS = 20  # XLSX: rows searched for the header line

# Normalized header name -> canonical column. Normalization: accents removed, lower case, every run
# of other characters replaced by "_" (so "Valor FOB (US$)" -> "valor_fob_us", "Mês" -> "mes").
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "ano": ("ano", "year", "co_ano", "ano_exportacao"),
    "mes": ("mes", "month", "co_mes", "mes_exportacao"),
    "pais": ("pais", "country", "no_pais", "pais_destino", "destino"),
    "setor": ("setor", "sector", "setor_economico", "no_setor"),
    "ncm": ("ncm", "codigo_ncm", "cod_ncm", "co_ncm", "ncm_codigo"),
    "valor_usd": (
        "valor_usd",
        "valor",
        "value_usd",
        "valor_fob_usd",
        "us",
        "valor_us",
        "valor_fob_us",
        "valor_fob",
        "vl_fob",
        "fob_usd",
        "usd",
        "value",
    ),
    "peso_kg": (
        "peso_kg",
        "peso",
        "kg",
        "weight_kg",
        "kg_liquido",
        "peso_liquido_kg",
        "peso_liquido",
        "kg_liquido_total",
        "weight",
    ),
}

_INT_RE = r"^-?\d{1,18}([.,]0+)?$"
_NUMBER_RE = {
    ",": r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$",
    ".": r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$",
}
_NCM_STRIP_RE = r"[.\-\s]"
_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)


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


def _unreadable(reason: str) -> UnreadableFileError:
    return UnreadableFileError(reason)


def read_export_file(path: Path, sheet: str | None = None) -> ParsedExportFile:
    """Parse and validate one export file; raises :class:`UnreadableFileError` if it can't be read.

    ``sheet`` selects the XLSX worksheet (default: the first one); it is ignored for CSV.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _unreadable(f"cannot open file: {exc.strerror or exc}") from exc
    return parse_export_bytes(path.name, data, sheet)


def parse_export_bytes(name: str, data: bytes, sheet: str | None = None) -> ParsedExportFile:
    """Parse the bytes of an export file named ``name`` (the landing ingest reads them safely once)."""
    suffix = Path(name).suffix.lower()
    if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
        expected = ", ".join(CSV_SUFFIXES + XLSX_SUFFIXES)
        raise _unreadable(f"unsupported file extension {suffix or '(none)'!r} (expected {expected})")
    if not data:
        raise _unreadable("empty file (0 bytes)")
    if suffix in CSV_SUFFIXES:
        return _read_csv(data)
    return _read_xlsx(data, sheet)


# --------------------------------------------------------------------------------------------------
# Headers


def _normalize_header(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name).replace("\ufeff", "").strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _map_header(names: Sequence[str]) -> dict[str, int]:
    """Canonical column -> index in the file (first matching alias wins); missing ones are absent."""
    normalized = [_normalize_header(n) for n in names]
    found: dict[str, int] = {}
    for column, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in normalized:
                index = normalized.index(alias)
                if index not in found.values():
                    found[column] = index
                    break
    return found


def _require_columns(names: Sequence[str]) -> dict[str, int]:
    mapping = _map_header(names)
    missing = [c for c in EXPORT_COLUMNS if c not in mapping]
    if missing:
        shown = ", ".join(repr(str(n)) for n in names[:20])
        raise _unreadable(f"missing columns: {', '.join(missing)} (header has: {shown})")
    return mapping


# --------------------------------------------------------------------------------------------------
# CSV


def _is_utf8(data: bytes) -> bool:
    """Strict UTF-8 check without building a ``str``: Arrow's validator is ~3x faster than decode.

    It rejects exactly what ``bytes.decode("utf-8")`` rejects (overlong forms, surrogates, values
    past U+10FFFF, truncated sequences).
    """
    if data.isascii():
        return True
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _to_utf8(data: bytes) -> tuple[bytes, str]:
    """Detect the encoding and return the content as UTF-8 bytes without BOM."""
    if data.startswith(b"\xef\xbb\xbf"):
        body = data[3:]
        if not _is_utf8(body):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not decodable: has a UTF-8 BOM but invalid UTF-8 at byte {exc.start + 3}"
                raise _unreadable(reason) from exc
        return body, "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-16"
        except UnicodeDecodeError as exc:
            reason = f"not decodable: has a UTF-16 BOM but invalid UTF-16 at byte {exc.start}"
            raise _unreadable(reason) from exc
    if b"\x00" in data:
        raise _unreadable("not decodable: binary content (NUL bytes), not a text CSV file")
    if _is_utf8(data):
        return data, "utf-8"
    raw = np.frombuffer(data, dtype=np.uint8)
    if not ((raw - np.uint8(0x80)) < 0x20).any():  # no byte in 0x80-0x9F
        # Latin-1 and cp1252 only differ in 0x80-0x9F; without those bytes they read the same.
        text, encoding = data.decode("latin-1"), "latin-1"
    else:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
    return text.encode("utf-8"), encoding


def _sniff_delimiter(header: str) -> str:
    """Pick the separator that yields the most recognized columns, then the most fields."""

    def score(delim: str) -> tuple[int, int]:
        names = next(csv.reader([header], delimiter=delim), [])
        return len(_map_header(names)), header.count(delim)

    best = max(DELIMITERS, key=score)
    return best if score(best) != (0, 0) else ","


@dataclass
class _Candidates:
    """Rows of the file that have the header's field count: raw cells plus where they came from."""

    cells: dict[str, pa.Array]  # canonical column -> string array
    lines: np.ndarray  # int64 source line per row
    raw: Callable[[np.ndarray], pa.Array]  # row indices -> original text
    numeric_cells: dict[str, np.ndarray] | None = None  # XLSX: column -> cell was a number


@dataclass
class _Rejected:
    lines: np.ndarray
    reasons: pa.Array
    raw: pa.Array


def _read_csv(data: bytes) -> ParsedExportFile:
    body, encoding = _to_utf8(data)
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    # Header = first non-blank line.
    pos, line_no = 0, 1
    while True:
        end = body.find(b"\n", pos)
        end = len(body) if end == -1 else end
        if body[pos:end].strip():
            break
        if end >= len(body):
            raise _unreadable("empty file (no header line, only blank content)")
        pos, line_no = end + 1, line_no + 1
    header_text = body[pos:end].decode("utf-8")
    try:
        delimiter = _sniff_delimiter(header_text)
        names = next(csv.reader([header_text], delimiter=delimiter))
    except csv.Error as exc:
        raise _unreadable(f"malformed CSV header (line {line_no}): {exc}") from exc
    mapping = _require_columns(names)
    data_start = min(end + 1, len(body))

    parsed = _split_csv_fast(body, data_start, line_no, delimiter, len(names), mapping)
    if parsed is None:
        parsed = _split_csv_python(body, data_start, line_no, delimiter, len(names), mapping)
    candidates, ragged = parsed
    if candidates.lines.size + ragged.lines.size == 0:
        raise _unreadable("no data rows (header only)")
    with ThreadPoolExecutor(max_workers=len(DECIMAL_SCALES), thread_name_prefix="export-decimal") as pool:
        found = pool.map(_non_digits, [candidates.cells[c] for c in DECIMAL_SCALES])
        marks = dict(zip(DECIMAL_SCALES, found, strict=True))
    decimal = _detect_decimal(candidates.cells, delimiter, marks)
    rows, rejected = _validate(candidates, decimal, marks)
    total = candidates.lines.size + ragged.lines.size
    return _assemble(rows, [ragged, rejected], total, "csv", encoding, delimiter, decimal, None)


def _split_csv_fast(
    body: bytes, data_start: int, header_line: int, delimiter: str, n_fields: int, mapping: dict[str, int]
) -> tuple[_Candidates, _Rejected] | None:
    """Record scan with numpy + pyarrow parse; None when pyarrow might see other records than us.

    Records are found from the newline positions (minus those inside quotes); fields are only
    counted (a second scan) when pyarrow reports rows with the wrong number of fields.
    """
    region = np.frombuffer(body, dtype=np.uint8)[data_start:]
    size = region.size
    delim_byte = ord(delimiter)
    newlines = _positions(region, 10)
    quotes = _positions(region, 34) if body.find(b'"', data_start) != -1 else None
    newlines_in_values = False
    terminators = newlines
    if quotes is not None:
        # A quote must touch a field boundary or another quote, else parsers disagree: fall back.
        prev = np.where(quotes > 0, region[np.maximum(quotes - 1, 0)], 10)
        nxt = np.where(quotes < size - 1, region[np.minimum(quotes + 1, size - 1)], 10)
        touches = (prev == delim_byte) | (prev == 10) | (prev == 34)
        touches |= (nxt == delim_byte) | (nxt == 10) | (nxt == 34)
        if quotes.size % 2 or not touches.all():
            return None
        # Newlines after an odd number of quotes are inside a quoted value.
        outside = (np.searchsorted(quotes, newlines) & 1) == 0
        newlines_in_values = not bool(outside.all())
        terminators = newlines[outside]

    if terminators.size and terminators[-1] == size - 1:
        ends = terminators
    else:
        ends = np.append(terminators, size) if size else terminators
    starts = np.concatenate((np.zeros(1, np.int64), terminators + 1))[: ends.size]
    lengths = ends - starts
    present = lengths > 0  # pyarrow skips empty lines, so do we
    n_present = int(present.sum())

    table, invalid = None, 0
    column_names = [f"c{i}" for i in range(n_fields)]
    wanted = {column: column_names[i] for column, i in mapping.items()}
    if n_present:

        def on_invalid(_row: Any) -> str:
            nonlocal invalid
            invalid += 1
            return "skip"

        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(body).slice(data_start)),
                read_options=pacsv.ReadOptions(column_names=column_names, block_size=8 << 20),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter,
                    newlines_in_values=newlines_in_values,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(wanted.values()),
                    column_types={name: pa.string() for name in wanted.values()},
                    check_utf8=False,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid:
            return None

    if invalid:
        delims = _positions(region, delim_byte)
        if quotes is not None:
            delims = delims[(np.searchsorted(quotes, delims) & 1) == 0]
        fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    else:
        fields = np.full(ends.size, n_fields, dtype=np.int64)
    blank = lengths == fields - 1  # only separators, e.g. ";;;;;;" rows Excel leaves behind
    regular = present & (fields == n_fields)
    n_regular = int(regular.sum())
    if table is not None and (table.num_rows != n_regular or invalid != n_present - n_regular):
        return None
    ragged_mask = present & (fields != n_fields) & ~blank

    offsets = np.append(starts, size).astype(np.int64)
    raw_all = pa.Array.from_buffers(
        pa.large_string(), starts.size, [None, pa.py_buffer(offsets), pa.py_buffer(body).slice(data_start)]
    )

    def raw_of(record_index: np.ndarray) -> pa.Array:
        taken = raw_all.take(pa.array(record_index, pa.int64()))
        return pc.cast(pc.utf8_rtrim(taken, characters="\n"), pa.string())

    def line_of(record_index: np.ndarray) -> np.ndarray:
        return (header_line + 1 + np.searchsorted(newlines, starts[record_index])).astype(np.int64)

    regular_index = np.flatnonzero(regular)
    keep = ~blank[regular_index]
    kept_index = regular_index[keep]
    if table is not None and n_regular:
        if not keep.all():
            table = table.filter(pa.array(keep))
        cells = {column: table.column(wanted[column]).combine_chunks() for column in EXPORT_COLUMNS}
    else:
        cells = {column: pa.array([], pa.string()) for column in EXPORT_COLUMNS}
    if quotes is None and kept_index.size == ends.size:
        lines = header_line + 1 + np.arange(ends.size, dtype=np.int64)  # one record per line
    else:
        lines = line_of(kept_index)
    candidates = _Candidates(cells=cells, lines=lines, raw=lambda rows: raw_of(kept_index[rows]))
    ragged_index = np.flatnonzero(ragged_mask)
    ragged = _Rejected(
        lines=line_of(ragged_index),
        reasons=_ragged_reasons(fields[ragged_index], n_fields),
        raw=raw_of(ragged_index),
    )
    return candidates, ragged


def _positions(region: np.ndarray, byte: int, step: int = 1 << 24) -> np.ndarray:
    """Indices of ``byte`` in ``region``, scanned in 16 MiB slices (no file-sized temporary mask)."""
    parts = [np.flatnonzero(region[i : i + step] == byte) + i for i in range(0, region.size, step)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _ragged_reasons(got: np.ndarray, expected: int) -> pa.Array:
    counts = pc.cast(pa.array(got.astype(np.int64)), pa.string())
    return pc.binary_join_element_wise(f"wrong number of fields: expected {expected}, got ", counts, "")


def _split_csv_python(
    body: bytes, data_start: int, header_line: int, delimiter: str, n_fields: int, mapping: dict[str, int]
) -> tuple[_Candidates, _Rejected]:
    """Slow but forgiving path (csv module) for quote layouts the fast scan does not trust."""
    text = body[data_start:].decode("utf-8")
    physical = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    good_lines: list[int] = []
    good_raw: list[str] = []
    columns: dict[str, list[str]] = {c: [] for c in EXPORT_COLUMNS}
    bad_lines: list[int] = []
    bad_fields: list[int] = []
    bad_raw: list[str] = []
    consumed = 0
    try:
        for record in reader:
            first, consumed = consumed + 1, reader.line_num
            raw = "\n".join(physical[first - 1 : consumed])
            if not raw or not raw.replace(delimiter, ""):
                continue  # blank line or only separators, as in the fast path
            line = header_line + first
            if len(record) != n_fields:
                bad_lines.append(line)
                bad_fields.append(len(record))
                bad_raw.append(raw)
                continue
            good_lines.append(line)
            good_raw.append(raw)
            for column, index in mapping.items():
                columns[column].append(record[index])
    except csv.Error as exc:
        raise _unreadable(f"malformed CSV near line {header_line + consumed + 1}: {exc}") from exc
    raw_good = pa.array(good_raw, pa.string())
    candidates = _Candidates(
        cells={c: pa.array(v, pa.string()) for c, v in columns.items()},
        lines=np.array(good_lines, dtype=np.int64),
        raw=lambda rows: raw_good.take(pa.array(rows, pa.int64())),
    )
    ragged = _Rejected(
        lines=np.array(bad_lines, dtype=np.int64),
        reasons=_ragged_reasons(np.array(bad_fields, dtype=np.int64), n_fields),
        raw=pa.array(bad_raw, pa.string()),
    )
    return candidates, ragged


# --------------------------------------------------------------------------------------------------
# XLSX


def _read_xlsx(data: bytes, sheet: str | None) -> ParsedExportFile:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # calamine raises ZipError / XmlError / CalamineError / OSError
        raise _unreadable(f"not a valid XLSX workbook (corrupt or not a zip archive): {exc}") from exc
    try:
        names = list(workbook.sheet_names)
        if not names:
            raise _unreadable("XLSX workbook has no sheets")
        name = names[0] if sheet is None else sheet
        if name not in names:
            available = ", ".join(repr(n) for n in names)
            raise _unreadable(f"sheet {sheet!r} not found; available sheets: {available}")
        try:
            worksheet = workbook.get_sheet_by_name(name)
            first_row = worksheet.start[0] if worksheet.start else 0
            data = worksheet.to_python()
        except Exception as exc:
            raise _unreadable(f"cannot read sheet {name!r}: {exc}") from exc
    finally:
        workbook.close()

    filled = [i for i, row in enumerate(data[:HEADER_SEARCH_ROWS]) if row.count("") != len(row)]
    if not filled:
        raise _unreadable(f"sheet {name!r} is empty")
    # The header is the first row naming every column; title rows above it are common in XLSX.
    header_at = next(
        (i for i in filled if len(_map_header([_cell_text(v) for v in data[i]])) == len(EXPORT_COLUMNS)),
        filled[0],
    )
    header = [_cell_text(v) for v in data[header_at]]
    mapping = _require_columns(header)
    body = data[header_at + 1 :]
    row_numbers = first_row + header_at + 2 + np.arange(len(body), dtype=np.int64)

    cells: dict[str, pa.Array] = {}
    numeric: dict[str, np.ndarray] = {}
    for column in EXPORT_COLUMNS:
        index = mapping[column]
        values = [row[index] if index < len(row) else "" for row in body]
        cells[column], numeric[column] = _xlsx_column(values)

    kept = np.arange(len(body), dtype=np.int64)
    empty = np.ones(len(body), dtype=bool)
    for column in EXPORT_COLUMNS:
        empty &= (_lengths(cells[column]) == 0) & ~numeric[column]
    if empty.any():
        # Blank rows are not data rows; rows with only extra columns filled stay (and get rejected).
        blank = np.zeros(len(body), dtype=bool)
        blank[empty] = [body[i].count("") == len(body[i]) for i in np.flatnonzero(empty).tolist()]
        kept = np.flatnonzero(~blank)
        mask = pa.array(~blank)
        cells = {c: a.filter(mask) for c, a in cells.items()}
        numeric = {c: a[~blank] for c, a in numeric.items()}
        row_numbers = row_numbers[kept]
    if row_numbers.size == 0:
        raise _unreadable(f"no data rows (header only) in sheet {name!r}")

    def raw_of(rows: np.ndarray) -> pa.Array:
        out = []
        for r in kept[rows].tolist():
            values = [_cell_text(v) for v in body[r]]
            while values and values[-1] == "":
                values.pop()
            out.append(";".join(values))
        return pa.array(out, pa.string())

    candidates = _Candidates(cells=cells, lines=row_numbers, raw=raw_of, numeric_cells=numeric)
    text_cells = {c: pc.if_else(pa.array(numeric[c]), "", cells[c]) for c in ("valor_usd", "peso_kg")}
    decimal = _detect_decimal(text_cells, None)
    rows, rejected = _validate(candidates, decimal)
    return _assemble(rows, [rejected], int(row_numbers.size), "xlsx", None, None, decimal, name)


def _cell_text(value: Any) -> str:
    """Text of one cell as a person would read it (integral floats without ``.0``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)
    if value is None:
        return ""
    return str(value)


def _xlsx_column(values: list[Any]) -> tuple[pa.Array, np.ndarray]:
    """Cell values -> (text, was_number). Numbers become plain decimal text, never an exponent."""
    n = len(values)
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = None
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_null(arr.type)):
        return pc.cast(arr, pa.string()).fill_null(""), np.zeros(n, dtype=bool)
    if arr is not None and (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
        return _format_numbers(pc.cast(arr, pa.float64())), np.ones(n, dtype=bool)
    # Mixed cell types (numbers, text, empty cells, booleans, dates): split them.
    is_number = np.fromiter((type(v) is float or type(v) is int for v in values), dtype=bool, count=n)
    texts = pa.array(
        [None if k else _cell_text(v) for v, k in zip(values, is_number.tolist(), strict=True)], pa.string()
    )
    numbers = pa.array(
        [v if k else None for v, k in zip(values, is_number.tolist(), strict=True)], pa.float64()
    )
    return pc.if_else(pa.array(is_number), _format_numbers(numbers), texts), is_number


def _format_numbers(numbers: pa.Array) -> pa.Array:
    """Float cells -> shortest round-trip decimal text ("1250000.5", "2023"), never an exponent."""
    text = pc.cast(numbers, pa.string())  # Arrow writes 1e+10 and up (and tiny values) as exponents
    exponent = _np_bool(pc.match_substring(text, "e"))
    if exponent.any():
        subset = _subset(numbers, exponent).to_pylist()
        plain = pa.array([format(Decimal(repr(v)), "f") for v in subset], pa.string())
        text = _scatter(text, exponent, plain)
    return text.fill_null("")


# --------------------------------------------------------------------------------------------------
# Small vectorized helpers


def _np_bool(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow booleans -> numpy (null counts as False)."""
    if mask.null_count:
        mask = mask.fill_null(False)
    return mask.to_numpy(zero_copy_only=False)


def _np_int(values: pa.Array | pa.ChunkedArray, fill: int = -1) -> np.ndarray:
    if values.null_count:
        values = values.fill_null(fill)
    return values.to_numpy(zero_copy_only=False)


def _lengths(text: pa.Array) -> np.ndarray:
    return _np_int(pc.binary_length(text), 0)


def _scatter(base: pa.Array, where: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with the rows selected by ``where`` replaced, in order, by ``values``."""
    return pc.replace_with_mask(base, pa.array(where), values)


def _subset(text: pa.Array, where: np.ndarray) -> pa.Array:
    return text.filter(pa.array(where))


def _layout(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a string array as numpy views: value i is ``data[offsets[i]:offsets[i + 1]]``."""
    if len(text) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    _, offsets_buf, data = text.buffers()[:3]
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[text.offset : text.offset + len(text) + 1]
    if data is None:
        return offsets.astype(np.int64), np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), np.frombuffer(data, dtype=np.uint8)


def _is_ascii(text: pa.Array) -> bool:
    if len(text) == 0:
        return True
    offsets, data = _layout(text)
    used = data[offsets[0] : offsets[-1]]
    return used.size == 0 or int(used.max()) < 128


def _needs_trim(text: pa.Array) -> bool:
    """False when no value can start or end with whitespace: first and last bytes are visible ASCII."""
    if text.null_count or not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return True
    offsets, data = _layout(text)
    filled = offsets[1:] > offsets[:-1]
    edges = np.concatenate((data[offsets[:-1][filled]], data[offsets[1:][filled] - 1]))
    return bool(((edges - np.uint8(0x21)) >= 0x5E).any())  # outside 0x21-0x7E ('!'..'~')


def _trim(text: pa.Array) -> pa.Array:
    """Strip surrounding whitespace; the ASCII kernel is ~5x faster when the column allows it.

    Most columns have nothing to strip, and checking the first and last byte of each value is far
    cheaper than any trim kernel, so those columns are returned as they are.
    """
    if not _needs_trim(text):
        return text
    if _is_ascii(text):
        return pc.ascii_trim_whitespace(text)
    return pc.utf8_trim_whitespace(text)


@dataclass(frozen=True)
class _NonDigits:
    """Every byte of a string column that is not an ASCII digit: its row, position and value.

    Numbers are mostly digits, so this small index answers the decimal-separator and number-shape
    questions with numpy over a few million entries instead of string kernels over every value.
    """

    lengths: np.ndarray  # byte length of each value
    row: np.ndarray  # row of each non-digit byte, ascending
    pos: np.ndarray  # byte position inside its value
    byte: np.ndarray  # the byte itself

    @classmethod
    def of(cls, text: pa.Array) -> _NonDigits:
        if text.null_count:
            text = text.fill_null("")
        offsets, data = _layout(text)
        base = offsets[0]
        used = data[base : offsets[-1]]
        at = np.flatnonzero((used - np.uint8(48)) >= 10)  # uint8 wraps: digits are 0..9
        lengths = np.diff(offsets)
        row_type = np.int32 if len(text) < 2**31 else np.int64
        row = np.repeat(np.arange(len(text), dtype=row_type), lengths)[at]
        pos = at - (offsets[:-1] - base)[row]
        return cls(lengths=lengths, row=row, pos=pos, byte=used[at])

    @functools.cached_property
    def separators(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per value: holds a comma, holds a dot, and its first comma comes before its first dot."""
        n = self.lengths.size
        is_sep = (self.byte == ord(",")) | (self.byte == ord("."))
        rows, comma = self.row[is_sep], self.byte[is_sep] == ord(",")
        has_comma = np.zeros(n, dtype=bool)
        has_dot = np.zeros(n, dtype=bool)
        has_comma[rows[comma]] = True
        has_dot[rows[~comma]] = True
        first = np.ones(rows.size, dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        comma_first = np.zeros(n, dtype=bool)
        comma_first[rows[first & comma]] = True
        return has_comma, has_dot, comma_first


def _non_digits(text: pa.Array) -> _NonDigits:
    """:meth:`_NonDigits.of` plus its separator summary, both computed on the calling thread."""
    marks = _NonDigits.of(text)
    _ = marks.separators
    return marks


# --------------------------------------------------------------------------------------------------
# Decimal separator


def _detect_decimal(
    cells: dict[str, pa.Array], delimiter: str | None, marks: dict[str, _NonDigits] | None = None
) -> str:
    """Decide per file whether ``,`` or ``.`` is the decimal separator of valor_usd / peso_kg.

    Values holding both characters settle it (the last one is the decimal separator); otherwise a
    lone separator is the decimal one unless every value using it looks like thousands groups.
    ``marks`` (the columns' non-digit bytes) may be passed when the caller has them already.
    """
    columns = ("valor_usd", "peso_kg")
    values = pa.chunked_array([cells[c] for c in columns], type=pa.string())
    found = [((marks or {}).get(c) or _NonDigits.of(cells[c])).separators for c in columns]
    has_comma, has_dot, comma_first = (np.concatenate(parts) for parts in zip(*found, strict=True))
    default = "," if delimiter in (";", "\t", "|") else "."
    both = has_comma & has_dot
    if both.any():
        comma_last = int((both & ~comma_first).sum())
        dot_last = int((both & comma_first).sum())
        if comma_last != dot_last:
            return "," if comma_last > dot_last else "."
    if has_comma.any() and has_dot.any():
        # Different values use different separators: the one not forming thousands groups wins.
        n_comma = _count_not_thousands(values.filter(pa.array(has_comma)), ",")
        n_dot = _count_not_thousands(values.filter(pa.array(has_dot)), ".")
        return "," if n_comma >= n_dot else "."
    if has_comma.any():
        with_comma = values.filter(pa.array(has_comma))
        if _count_not_thousands(with_comma, ",") == 0 and _any_multi(with_comma, ","):
            return "."  # "1,250,000": commas are thousands separators
        return ","
    if has_dot.any():
        with_dot = values.filter(pa.array(has_dot))
        if _count_not_thousands(with_dot, ".") == 0 and (_any_multi(with_dot, ".") or default == ","):
            return ","  # "1.250.000": dots are thousands separators
        return "."
    return default


def _count_not_thousands(values: pa.ChunkedArray, sep: str) -> int:
    grouped = rf"^\s*[+-]?\d{{1,3}}(\{sep}\d{{3}})+\s*$"
    return len(values) - int(_np_bool(pc.match_substring_regex(values, grouped)).sum())


def _any_multi(values: pa.ChunkedArray, sep: str) -> bool:
    return bool(_np_bool(pc.match_substring_regex(values, rf"\{sep}.*\{sep}")).any())


# --------------------------------------------------------------------------------------------------
# Validation: each check is a numpy mask; clean rows take cheap kernels, odd ones the regex path.


@dataclass
class _Rule:
    """One failure mask and how to phrase it: ``prefix + value + suffix`` or a fixed message."""

    mask: np.ndarray
    prefix: str
    value: pa.Array | None = None
    suffix: str = ""


def _validate_int(
    name: str, text: pa.Array, length: np.ndarray, low: int, high: int
) -> tuple[pa.Array, list[_Rule]]:
    missing = length == 0
    digits = _np_bool(pc.ascii_is_decimal(text)) & (length <= 9)
    value = pc.cast(pc.if_else(pa.array(digits), text, pa.scalar(None, pa.string())), pa.int64())
    well_formed = digits.copy()
    other = ~digits & ~missing
    if other.any():  # "-5", "2023.0", " 12x", ...
        sub = _subset(text, other)
        sub_ok = pc.match_substring_regex(sub, _INT_RE)
        sub_digits = pc.replace_substring_regex(sub, r"[.,]0+$", "")
        sub_value = pc.cast(pc.if_else(sub_ok, sub_digits, pa.scalar(None, pa.string())), pa.int64())
        value = _scatter(value, other, sub_value)
        well_formed[other] = _np_bool(sub_ok)
    numbers = _np_int(value, 0)
    in_range = well_formed & (numbers >= low) & (numbers <= high)
    rules = [
        _Rule(missing, f"{name} missing"),
        _Rule(~missing & ~well_formed, f"{name} not an integer: '", text, "'"),
        _Rule(well_formed & ~in_range, f"{name} out of range {low}-{high}: ", text),
    ]
    return value, rules


def _validate_text(name: str, text: pa.Array, length: np.ndarray) -> tuple[pa.Array, list[_Rule]]:
    rules = [_Rule(length == 0, f"{name} missing")]
    if length.size and int(length.max()) > TEXT_MAX_CHARS:  # bytes >= characters
        chars = pc.utf8_length(text)
        too_long = _np_int(chars, 0) > TEXT_MAX_CHARS
        rules.append(
            _Rule(too_long, f"{name} longer than {TEXT_MAX_CHARS} characters: ", pc.cast(chars, pa.string()))
        )
    return text, rules


def _validate_ncm(
    text: pa.Array, length: np.ndarray, numeric: np.ndarray | None
) -> tuple[pa.Array, list[_Rule]]:
    missing = length == 0
    valid = _np_bool(pc.ascii_is_decimal(text)) & (length == 8)
    code = text
    other = ~valid & ~missing
    if other.any():  # "1701.11.00", "0901 11 10", numbers that lost a leading zero, junk
        sub = pc.replace_substring_regex(_subset(text, other), _NCM_STRIP_RE, "")
        if numeric is not None and numeric[other].any():
            lost_zero = pa.array(numeric[other] & (_lengths(sub) == 7))  # 02023000 stored as 2023000
            sub = pc.if_else(lost_zero, pc.binary_join_element_wise("0", sub, ""), sub)
        code = _scatter(code, other, sub)
        valid[other] = _np_bool(pc.match_substring_regex(sub, r"^\d{8}$"))
    rules = [
        _Rule(missing, "ncm missing"),
        _Rule(~missing & ~valid, "ncm not 8 digits: '", text, "'"),
    ]
    return code, rules


def _validate_decimal(
    name: str,
    text: pa.Array,
    length: np.ndarray,
    decimal: str,
    numeric: np.ndarray | None,
    marks: _NonDigits | None = None,
) -> tuple[pa.Array, list[_Rule]]:
    """Typed values and failure masks; plain values take the numpy path, the rest the exact one."""
    scale = DECIMAL_SCALES[name]
    n = len(text)
    plain = None
    if (numeric is None or not numeric.any()) and sys.byteorder == "little" and n:
        plain, unscaled = _plain_decimals(text, marks or _NonDigits.of(text), decimal, scale)
    if plain is None or not plain.any():
        value, masks = _decimal_rules(name, text, length, decimal, numeric)
    else:
        masks = tuple(np.zeros(n, dtype=bool) for _ in range(4))
        valid = plain.copy()
        other = np.flatnonzero(~plain)
        if other.size:
            sub_value, sub_masks = _decimal_rules(
                name,
                text.take(pa.array(other)),
                length[other],
                decimal,
                None if numeric is None else numeric[other],
            )
            for full, sub in zip(masks, sub_masks, strict=True):
                full[other] = sub
            unscaled[other] = _decimal_low_words(sub_value)
            valid[other] = _np_bool(sub_value.is_valid())
        value = _decimal_array(unscaled, valid, scale)
    missing, not_numeric, negative, too_large = masks
    rules = [
        _Rule(missing, f"{name} missing"),
        _Rule(not_numeric, f"{name} not numeric: '", text, "'"),
        _Rule(negative, f"{name} negative: ", text),
        _Rule(too_large, f"{name} too large for decimal({DECIMAL_PRECISION},{scale}): ", text),
    ]
    return value, rules


def _plain_decimals(
    text: pa.Array, marks: _NonDigits, decimal: str, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are certainly well-formed, non-negative and fit without rounding, and their values.

    "Plain" means: digits, thousands groups of exactly three digits and at most ``scale`` decimals
    after one decimal separator, no sign, starting and ending with a digit (what ``_NUMBER_RE``
    accepts, minus signs). Every other row is left to :func:`_decimal_rules`, the exact reference,
    so this is only a shortcut: returns (plain mask, unscaled int64 values, 0 where not plain).
    """
    n = len(text)
    point, group = (ord(","), ord(".")) if decimal == "," else (ord("."), ord(","))
    offsets, data = _layout(text)
    length = marks.lengths
    kind = np.full(256, 2, dtype=np.int64)  # 0 decimal separator, 1 thousands separator, 2 other
    kind[point], kind[group] = 0, 1
    byte_kind = kind[marks.byte]
    counts = np.bincount(np.multiply(marks.row, 3, dtype=np.int64) + byte_kind, minlength=3 * n).reshape(n, 3)
    n_point, n_group, n_other = counts[:, 0], counts[:, 1], counts[:, 2]
    filled = length > 0
    first = np.zeros(n, dtype=np.uint8)  # 0 is not a digit
    last = np.zeros(n, dtype=np.uint8)
    first[filled] = data[offsets[:-1][filled]]
    last[filled] = data[offsets[1:][filled] - 1]
    edges_are_digits = ((first - np.uint8(48)) < 10) & ((last - np.uint8(48)) < 10)
    int_end = length.copy()  # where the integer part ends: the decimal separator or the end
    is_point = byte_kind == 0
    int_end[marks.row[is_point]] = marks.pos[is_point]
    frac_digits = np.where(n_point == 1, length - int_end - 1, 0)
    # Thousands separators sit every 4th byte counting back from the integer part's end, and there
    # are as many as fit with a 1-3 digit leading group.
    is_group = byte_kind == 1
    group_rows = marks.row[is_group]
    group_gap = int_end[group_rows] - marks.pos[is_group]
    misplaced = np.zeros(n, dtype=bool)
    misplaced[group_rows[(group_gap <= 0) | (group_gap % 4 != 0)]] = True
    grouped = (n_group == 0) | ((int_end % 4 != 0) & (n_group == int_end // 4))
    int_digits = int_end - n_group
    plain = (
        filled
        & edges_are_digits
        & (n_other == 0)
        & (n_point <= 1)
        & ~misplaced
        & grouped
        & (frac_digits <= scale)
        & (int_digits <= DECIMAL_PRECISION - scale)
    )
    unscaled = np.zeros(n, dtype=np.int64)
    if plain.any():
        # The digits alone ("1.250.000,5" -> "12500005") parse as int64; then shift to the scale.
        base = offsets[0]
        used = data[base : offsets[-1]]
        digits = used[(used - np.uint8(48)) < 10]
        removed = np.concatenate(([0], np.cumsum(n_point + n_group + n_other)))
        digit_offsets = (offsets - base) - removed
        large = digits.size >= 2**31
        numbers = pa.Array.from_buffers(
            pa.large_string() if large else pa.string(),
            n,
            [
                pa.py_buffer(np.packbits(plain, bitorder="little")),
                pa.py_buffer(digit_offsets.astype(np.int64 if large else np.int32)),
                pa.py_buffer(digits),
            ],
        )
        parsed = _np_int(pc.cast(numbers, pa.int64()), 0)
        shift = np.where(plain, scale - frac_digits, 0)
        unscaled = parsed * _POWERS_OF_TEN[shift]
    return plain, unscaled


def _decimal_low_words(values: pa.Array) -> np.ndarray:
    """Unscaled int64 of a decimal128(15, s) array (its low 64 bits; nulls read as whatever is there)."""
    data = values.buffers()[1]
    if data is None:
        return np.zeros(len(values), dtype=np.int64)
    words = np.frombuffer(data, dtype=np.int64).reshape(-1, 2)
    return words[values.offset : values.offset + len(values), 0]


def _decimal_array(unscaled: np.ndarray, valid: np.ndarray, scale: int) -> pa.Array:
    """decimal128(15, scale) from unscaled int64 values (|v| < 10**15, so the high word is the sign)."""
    words = np.empty((unscaled.size, 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63
    null_count = int(unscaled.size - np.count_nonzero(valid))
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if null_count else None
    return pa.Array.from_buffers(
        pa.decimal128(DECIMAL_PRECISION, scale),
        unscaled.size,
        [validity, pa.py_buffer(words)],
        null_count=null_count,
    )


def _decimal_rules(
    name: str, text: pa.Array, length: np.ndarray, decimal: str, numeric: np.ndarray | None
) -> tuple[pa.Array, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The exact rules (regexes): values plus (missing, not numeric, negative, too large) masks."""
    scale = DECIMAL_SCALES[name]
    max_int_digits = DECIMAL_PRECISION - scale
    missing = length == 0
    well_formed = _np_bool(pc.match_substring_regex(text, _NUMBER_RE[decimal]))
    if decimal == ",":
        canonical = text
        if _np_bool(pc.match_substring(text, ".")).any():
            canonical = pc.replace_substring(canonical, ".", "")  # thousands groups
        canonical = pc.replace_substring(canonical, ",", ".")
    else:
        canonical = text
        if _np_bool(pc.match_substring(text, ",")).any():
            canonical = pc.replace_substring(canonical, ",", "")
    if numeric is not None and numeric.any():
        # Number cells already read "1234.5" whatever the convention of the file's text cells.
        plain = _np_bool(pc.match_substring_regex(text, _NUMBER_RE["."]))
        well_formed = np.where(numeric, plain, well_formed)
        canonical = pc.if_else(pa.array(numeric), text, canonical)
    if _np_bool(pc.starts_with(canonical, "+")).any():
        canonical = pc.utf8_ltrim(canonical, characters="+")
    signed = _np_bool(pc.starts_with(canonical, "-")) & well_formed
    negative = np.zeros(len(text), dtype=bool)
    if signed.any():  # "-0,00" is zero, not negative
        negative[signed] = _np_bool(pc.match_substring_regex(_subset(canonical, signed), "[1-9]"))
    point = _np_int(pc.find_substring(canonical, "."))
    canonical_length = _lengths(canonical)
    int_digits = np.where(point < 0, canonical_length, point) - signed
    frac_digits = np.where(point < 0, 0, canonical_length - point - 1)
    too_large = well_formed & (int_digits > max_int_digits)
    if too_large.any():  # leading zeros do not count
        stripped = pc.utf8_ltrim(_subset(canonical, too_large), characters="-0")
        stripped_point = _np_int(pc.find_substring(stripped, "."))
        stripped_digits = np.where(stripped_point < 0, _lengths(stripped), stripped_point)
        too_large[too_large] = stripped_digits > max_int_digits
    ok = well_formed & ~negative & ~too_large
    source = pc.if_else(pa.array(ok), canonical, pa.scalar(None, pa.string()))
    target = pa.decimal128(DECIMAL_PRECISION, scale)
    if not ok.any() or int(frac_digits[ok].max()) <= scale:
        value = pc.cast(source, target)
    else:
        # More decimals than the column keeps: round half away from zero, as PostgreSQL does.
        wide = pc.cast(source, options=pc.CastOptions(pa.decimal128(38, 18), allow_decimal_truncate=True))
        rounded = pc.round(wide, ndigits=scale, round_mode="half_towards_infinity")
        value = pc.cast(rounded, options=pc.CastOptions(target, allow_decimal_truncate=True))
    return value, (missing, ~missing & ~well_formed, negative, too_large)


def _validate(
    candidates: _Candidates, decimal: str, marks: dict[str, _NonDigits] | None = None
) -> tuple[pa.Table, _Rejected]:
    """Typed valid rows plus rejects (every failing rule, joined by "; ") for the candidate rows.

    ``marks`` are the non-digit bytes of the untrimmed decimal columns, reused when trimming
    changed nothing.
    """
    text = {c: _trim(candidates.cells[c]) for c in EXPORT_COLUMNS}
    length = {c: _lengths(text[c]) for c in EXPORT_COLUMNS}
    numeric = candidates.numeric_cells or {}
    kept = {c: m for c, m in (marks or {}).items() if text[c] is candidates.cells[c]}
    with ThreadPoolExecutor(max_workers=len(DECIMAL_SCALES), thread_name_prefix="export-decimal") as pool:
        # The decimal columns cost the most; their numpy / Arrow work releases the GIL, so they run
        # on worker threads while this one checks the other columns.
        decimals = {
            c: pool.submit(_validate_decimal, c, text[c], length[c], decimal, numeric.get(c), kept.get(c))
            for c in DECIMAL_SCALES
        }
        ano, ano_rules = _validate_int("ano", text["ano"], length["ano"], *YEAR_RANGE)
        mes, mes_rules = _validate_int("mes", text["mes"], length["mes"], 1, 12)
        pais, pais_rules = _validate_text("pais", text["pais"], length["pais"])
        setor, setor_rules = _validate_text("setor", text["setor"], length["setor"])
        ncm, ncm_rules = _validate_ncm(text["ncm"], length["ncm"], numeric.get("ncm"))
        valor, valor_rules = decimals["valor_usd"].result()
        peso, peso_rules = decimals["peso_kg"].result()
    rules = ano_rules + mes_rules + pais_rules + setor_rules + ncm_rules + valor_rules + peso_rules

    bad = np.zeros(candidates.lines.size, dtype=bool)
    for rule in rules:
        bad |= rule.mask
    good = ~bad
    keep = pa.array(good)
    columns = [ano, mes, pais, setor, ncm, valor, peso]
    filtered = [c.filter(keep) if not good.all() else c for c in columns]
    filtered.append(pa.array(candidates.lines[good], pa.int64()))
    rows = pa.table(
        [pc.cast(arr, field.type) for arr, field in zip(filtered, ROW_SCHEMA, strict=True)],
        schema=ROW_SCHEMA,
    )

    bad_index = np.flatnonzero(bad)
    if bad_index.size == 0:
        empty = pa.array([], pa.string())
        return rows, _Rejected(np.empty(0, np.int64), empty, empty)
    take = pa.array(bad_index, pa.int64())
    null = pa.scalar(None, pa.string())
    parts = []
    for rule in rules:
        sub = rule.mask[bad_index]
        if not sub.any():
            continue
        if rule.value is None:
            message: Any = pa.scalar(rule.prefix)
        else:
            value = pc.cast(rule.value.take(take), pa.string())
            message = pc.binary_join_element_wise(rule.prefix, value, rule.suffix, "")
        parts.append(pc.if_else(pa.array(sub), message, null))
    reasons = pc.binary_join_element_wise(*parts, "; ", null_handling="skip")
    rejected = _Rejected(
        lines=candidates.lines[bad_index],
        reasons=pc.cast(reasons, pa.string()),
        raw=candidates.raw(bad_index),
    )
    return rows, rejected


def _assemble(
    rows: pa.Table,
    rejected: list[_Rejected],
    total_rows: int,
    file_format: str,
    encoding: str | None,
    delimiter: str | None,
    decimal: str,
    sheet: str | None,
) -> ParsedExportFile:
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
