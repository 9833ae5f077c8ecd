"""What an export file must hold: the canonical columns, their limits, header aliases, row tables.

Shared by every stage of the export reader (:mod:`assets.exports.file_reader` is the entry point):
the CSV and XLSX front ends map a file's header to :data:`EXPORT_COLUMNS` and hand over
:class:`Candidates`; the rules turn them into typed rows and :class:`Rejected` rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from resources.file_errors import UnreadableFileError

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

YEAR_RANGE = (1990, 2100)
TEXT_MAX_CHARS = 100
DECIMAL_SCALES = {"valor_usd": 2, "peso_kg": 3}  # both decimal(15, scale)
DECIMAL_PRECISION = 15

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


@dataclass
class Candidates:
    """Rows of the file that have the header's field count: raw cells plus where they came from."""

    cells: dict[str, pa.Array]  # canonical column -> string array
    lines: np.ndarray  # int64 source line per row
    raw: Callable[[np.ndarray], pa.Array]  # row indices -> original text
    numeric_cells: dict[str, np.ndarray] | None = None  # XLSX: column -> cell was a number


@dataclass
class Rejected:
    lines: np.ndarray
    reasons: pa.Array
    raw: pa.Array


def unreadable(reason: str) -> UnreadableFileError:
    return UnreadableFileError(reason)


def normalize_header(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name).replace("\ufeff", "").strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def map_header(names: Sequence[str]) -> dict[str, int]:
    """Canonical column -> index in the file (first matching alias wins); missing ones are absent."""
    normalized = [normalize_header(n) for n in names]
    found: dict[str, int] = {}
    for column, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in normalized:
                index = normalized.index(alias)
                if index not in found.values():
                    found[column] = index
                    break
    return found


def require_columns(names: Sequence[str]) -> dict[str, int]:
    mapping = map_header(names)
    missing = [c for c in EXPORT_COLUMNS if c not in mapping]
    if missing:
        shown = ", ".join(repr(str(n)) for n in names[:20])
        raise unreadable(f"missing columns: {', '.join(missing)} (header has: {shown})")
    return mapping
