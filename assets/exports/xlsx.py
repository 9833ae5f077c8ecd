"""XLSX front end of the export reader: python-calamine loads the sheet, seven columns become Arrow.

The header is the first row naming every column (title rows above it are common); blank rows are
not data rows; number cells become plain decimal text and are flagged, so the rules know an NCM
stored as a number lost its leading zero and that a number cell has no decimal-comma convention.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.exports.arrow_text import lengths, np_bool, scatter, subset
from assets.exports.schema import EXPORT_COLUMNS, Candidates, map_header, require_columns, unreadable

HEADER_SEARCH_ROWS = 20  # XLSX: rows searched for the header line


def read_xlsx_sheet(data: bytes, sheet: str | None) -> tuple[str, Candidates]:
    """The sheet's name and its data rows (``sheet`` None: the first one) as candidate rows."""
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # calamine raises ZipError / XmlError / CalamineError / OSError
        raise unreadable(f"not a valid XLSX workbook (corrupt or not a zip archive): {exc}") from exc
    try:
        names = list(workbook.sheet_names)
        if not names:
            raise unreadable("XLSX workbook has no sheets")
        name = names[0] if sheet is None else sheet
        if name not in names:
            available = ", ".join(repr(n) for n in names)
            raise unreadable(f"sheet {sheet!r} not found; available sheets: {available}")
        try:
            worksheet = workbook.get_sheet_by_name(name)
            first_row = worksheet.start[0] if worksheet.start else 0
            grid = worksheet.to_python()
        except Exception as exc:
            raise unreadable(f"cannot read sheet {name!r}: {exc}") from exc
    finally:
        workbook.close()

    filled = [i for i, row in enumerate(grid[:HEADER_SEARCH_ROWS]) if row.count("") != len(row)]
    if not filled:
        raise unreadable(f"sheet {name!r} is empty")
    # The header is the first row naming every column; title rows above it are common in XLSX.
    header_at = next(
        (i for i in filled if len(map_header([cell_text(v) for v in grid[i]])) == len(EXPORT_COLUMNS)),
        filled[0],
    )
    header = [cell_text(v) for v in grid[header_at]]
    mapping = require_columns(header)
    body = grid[header_at + 1 :]
    row_numbers = first_row + header_at + 2 + np.arange(len(body), dtype=np.int64)

    cells: dict[str, pa.Array] = {}
    numeric: dict[str, np.ndarray] = {}
    for column in EXPORT_COLUMNS:
        index = mapping[column]
        values = [row[index] if index < len(row) else "" for row in body]
        cells[column], numeric[column] = xlsx_column(values)

    kept = np.arange(len(body), dtype=np.int64)
    empty = np.ones(len(body), dtype=bool)
    for column in EXPORT_COLUMNS:
        empty &= (lengths(cells[column]) == 0) & ~numeric[column]
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
        raise unreadable(f"no data rows (header only) in sheet {name!r}")

    def raw_of(rows: np.ndarray) -> pa.Array:
        out = []
        for r in kept[rows].tolist():
            values = [cell_text(v) for v in body[r]]
            while values and values[-1] == "":
                values.pop()
            out.append(";".join(values))
        return pa.array(out, pa.string())

    return name, Candidates(cells=cells, lines=row_numbers, raw=raw_of, numeric_cells=numeric)


def cell_text(value: Any) -> str:
    """Text of one cell as a person would read it (integral floats without ``.0``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)
    if value is None:
        return ""
    return str(value)


def xlsx_column(values: list[Any]) -> tuple[pa.Array, np.ndarray]:
    """Cell values -> (text, was_number). Numbers become plain decimal text, never an exponent."""
    n = len(values)
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = None
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_null(arr.type)):
        return pc.cast(arr, pa.string()).fill_null(""), np.zeros(n, dtype=bool)
    if arr is not None and (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
        return format_numbers(pc.cast(arr, pa.float64())), np.ones(n, dtype=bool)
    # Mixed cell types (numbers, text, empty cells, booleans, dates): split them.
    is_number = np.fromiter((type(v) is float or type(v) is int for v in values), dtype=bool, count=n)
    texts = pa.array(
        [None if k else cell_text(v) for v, k in zip(values, is_number.tolist(), strict=True)], pa.string()
    )
    numbers = pa.array(
        [v if k else None for v, k in zip(values, is_number.tolist(), strict=True)], pa.float64()
    )
    return pc.if_else(pa.array(is_number), format_numbers(numbers), texts), is_number


def format_numbers(numbers: pa.Array) -> pa.Array:
    """Float cells -> shortest round-trip decimal text ("1250000.5", "2023"), never an exponent."""
    text = pc.cast(numbers, pa.string())  # Arrow writes 1e+10 and up (and tiny values) as exponents
    exponent = np_bool(pc.match_substring(text, "e"))
    if exponent.any():
        values = subset(numbers, exponent).to_pylist()
        plain = pa.array([format(Decimal(repr(v)), "f") for v in values], pa.string())
        text = scatter(text, exponent, plain)
    return text.fill_null("")
