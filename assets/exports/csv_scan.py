"""CSV records of an export file: header, separator, and each record's cells and physical line.

Newline (and quote) positions are found with numpy to know each record's physical line, and
pyarrow's multithreaded CSV parser reads the needed columns as strings. Fields are only counted
(second numpy scan) when pyarrow reports ragged lines; a quote layout pyarrow might read
differently from us falls back to the ``csv`` module (:func:`split_csv_python`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from assets.exports.schema import (
    EXPORT_COLUMNS,
    Candidates,
    Rejected,
    map_header,
    require_columns,
    unreadable,
)

DELIMITERS = (";", ",", "\t", "|")


def scan_csv(body: bytes) -> tuple[str, Candidates, Rejected]:
    """Separator, rows with the header's field count, and ragged rows of UTF-8 CSV content."""
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
            raise unreadable("empty file (no header line, only blank content)")
        pos, line_no = end + 1, line_no + 1
    header_text = body[pos:end].decode("utf-8")
    try:
        delimiter = sniff_delimiter(header_text)
        names = next(csv.reader([header_text], delimiter=delimiter))
    except csv.Error as exc:
        raise unreadable(f"malformed CSV header (line {line_no}): {exc}") from exc
    mapping = require_columns(names)
    data_start = min(end + 1, len(body))

    parsed = split_csv_fast(body, data_start, line_no, delimiter, len(names), mapping)
    if parsed is None:
        parsed = split_csv_python(body, data_start, line_no, delimiter, len(names), mapping)
    candidates, ragged = parsed
    if candidates.lines.size + ragged.lines.size == 0:
        raise unreadable("no data rows (header only)")
    return delimiter, candidates, ragged


def sniff_delimiter(header: str) -> str:
    """Pick the separator that yields the most recognized columns, then the most fields."""

    def score(delim: str) -> tuple[int, int]:
        names = next(csv.reader([header], delimiter=delim), [])
        return len(map_header(names)), header.count(delim)

    best = max(DELIMITERS, key=score)
    return best if score(best) != (0, 0) else ","


def split_csv_fast(
    body: bytes, data_start: int, header_line: int, delimiter: str, n_fields: int, mapping: dict[str, int]
) -> tuple[Candidates, Rejected] | None:
    """Record scan with numpy + pyarrow parse; None when pyarrow might see other records than us.

    Records are found from the newline positions (minus those inside quotes); fields are only
    counted (a second scan) when pyarrow reports rows with the wrong number of fields.
    """
    region = np.frombuffer(body, dtype=np.uint8)[data_start:]
    size = region.size
    delim_byte = ord(delimiter)
    newlines = positions(region, 10)
    quotes = positions(region, 34) if body.find(b'"', data_start) != -1 else None
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

    table: pa.Table | None = None
    invalid = 0
    column_names = [f"c{i}" for i in range(n_fields)]
    wanted = {column: column_names[i] for column, i in mapping.items()}
    if n_present:
        records = pa.py_buffer(body).slice(data_start)
        parsed = parse_records(records, column_names, list(wanted.values()), delimiter, newlines_in_values)
        if parsed is None:
            return None
        table, invalid = parsed

    if invalid:
        delims = positions(region, delim_byte)
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
    candidates = Candidates(cells=cells, lines=lines, raw=lambda rows: raw_of(kept_index[rows]))
    ragged_index = np.flatnonzero(ragged_mask)
    ragged = Rejected(
        lines=line_of(ragged_index),
        reasons=ragged_reasons(fields[ragged_index], n_fields),
        raw=raw_of(ragged_index),
    )
    return candidates, ragged


def parse_records(
    records: pa.Buffer, column_names: list[str], wanted: list[str], delimiter: str, newlines_in_values: bool
) -> tuple[pa.Table, int] | None:
    """The ``wanted`` columns (strings) of the records with ``len(column_names)`` fields, in file order,
    and how many records had another field count; None when the parser refuses the layout.

    pyarrow's multithreaded parser: measured faster than DuckDB's ``read_csv`` with ``store_rejects``
    on the same records (``bench/exports_csv_frontend.py``).
    """
    invalid = 0

    def on_invalid(_row: Any) -> str:
        nonlocal invalid
        invalid += 1
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(records),
            read_options=pacsv.ReadOptions(column_names=column_names, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=newlines_in_values,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types={name: pa.string() for name in wanted},
                check_utf8=False,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    return table, invalid


def positions(region: np.ndarray, byte: int, step: int = 1 << 24) -> np.ndarray:
    """Indices of ``byte`` in ``region``, scanned in 16 MiB slices (no file-sized temporary mask)."""
    parts = [np.flatnonzero(region[i : i + step] == byte) + i for i in range(0, region.size, step)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def ragged_reasons(got: np.ndarray, expected: int) -> pa.Array:
    counts = pc.cast(pa.array(got.astype(np.int64)), pa.string())
    return pc.binary_join_element_wise(f"wrong number of fields: expected {expected}, got ", counts, "")


def split_csv_python(
    body: bytes, data_start: int, header_line: int, delimiter: str, n_fields: int, mapping: dict[str, int]
) -> tuple[Candidates, Rejected]:
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
        raise unreadable(f"malformed CSV near line {header_line + consumed + 1}: {exc}") from exc
    raw_good = pa.array(good_raw, pa.string())
    candidates = Candidates(
        cells={c: pa.array(v, pa.string()) for c, v in columns.items()},
        lines=np.array(good_lines, dtype=np.int64),
        raw=lambda rows: raw_good.take(pa.array(rows, pa.int64())),
    )
    ragged = Rejected(
        lines=np.array(bad_lines, dtype=np.int64),
        reasons=ragged_reasons(np.array(bad_fields, dtype=np.int64), n_fields),
        raw=pa.array(bad_raw, pa.string()),
    )
    return candidates, ragged
