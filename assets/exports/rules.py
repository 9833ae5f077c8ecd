"""Validation rules of export rows: each check is a numpy mask; every failing rule is a reason.

Clean rows take cheap kernels, odd ones the regex path; reasons are built for failing rows only
and joined by ``"; "``. The decimal columns (the costliest) are checked on worker threads.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.exports.arrow_text import lengths, np_bool, np_int, scatter, subset, trim
from assets.exports.numbers import NonDigits, decimal_array, decimal_low_words, decimal_rules, plain_decimals
from assets.exports.schema import (
    DECIMAL_PRECISION,
    DECIMAL_SCALES,
    EXPORT_COLUMNS,
    ROW_SCHEMA,
    TEXT_MAX_CHARS,
    YEAR_RANGE,
    Candidates,
    Rejected,
)

INT_RE = r"^-?\d{1,18}([.,]0+)?$"
NCM_STRIP_RE = r"[.\-\s]"


@dataclass
class Rule:
    """One failure mask and how to phrase it: ``prefix + value + suffix`` or a fixed message."""

    mask: np.ndarray
    prefix: str
    value: pa.Array | None = None
    suffix: str = ""


def validate_int(
    name: str, text: pa.Array, length: np.ndarray, low: int, high: int
) -> tuple[pa.Array, list[Rule]]:
    missing = length == 0
    digits = np_bool(pc.ascii_is_decimal(text)) & (length <= 9)
    value = pc.cast(pc.if_else(pa.array(digits), text, pa.scalar(None, pa.string())), pa.int64())
    well_formed = digits.copy()
    other = ~digits & ~missing
    if other.any():  # "-5", "2023.0", " 12x", ...
        sub = subset(text, other)
        sub_ok = pc.match_substring_regex(sub, INT_RE)
        sub_digits = pc.replace_substring_regex(sub, r"[.,]0+$", "")
        sub_value = pc.cast(pc.if_else(sub_ok, sub_digits, pa.scalar(None, pa.string())), pa.int64())
        value = scatter(value, other, sub_value)
        well_formed[other] = np_bool(sub_ok)
    numbers = np_int(value, 0)
    in_range = well_formed & (numbers >= low) & (numbers <= high)
    rules = [
        Rule(missing, f"{name} missing"),
        Rule(~missing & ~well_formed, f"{name} not an integer: '", text, "'"),
        Rule(well_formed & ~in_range, f"{name} out of range {low}-{high}: ", text),
    ]
    return value, rules


def validate_text(name: str, text: pa.Array, length: np.ndarray) -> tuple[pa.Array, list[Rule]]:
    rules = [Rule(length == 0, f"{name} missing")]
    if length.size and int(length.max()) > TEXT_MAX_CHARS:  # bytes >= characters
        chars = pc.utf8_length(text)
        too_long = np_int(chars, 0) > TEXT_MAX_CHARS
        rules.append(
            Rule(too_long, f"{name} longer than {TEXT_MAX_CHARS} characters: ", pc.cast(chars, pa.string()))
        )
    return text, rules


def validate_ncm(
    text: pa.Array, length: np.ndarray, numeric: np.ndarray | None
) -> tuple[pa.Array, list[Rule]]:
    missing = length == 0
    valid = np_bool(pc.ascii_is_decimal(text)) & (length == 8)
    code = text
    other = ~valid & ~missing
    if other.any():  # "1701.11.00", "0901 11 10", numbers that lost a leading zero, junk
        sub = pc.replace_substring_regex(subset(text, other), NCM_STRIP_RE, "")
        if numeric is not None and numeric[other].any():
            lost_zero = pa.array(numeric[other] & (lengths(sub) == 7))  # 02023000 stored as 2023000
            sub = pc.if_else(lost_zero, pc.binary_join_element_wise("0", sub, ""), sub)
        code = scatter(code, other, sub)
        valid[other] = np_bool(pc.match_substring_regex(sub, r"^\d{8}$"))
    rules = [
        Rule(missing, "ncm missing"),
        Rule(~missing & ~valid, "ncm not 8 digits: '", text, "'"),
    ]
    return code, rules


def validate_decimal(
    name: str,
    text: pa.Array,
    length: np.ndarray,
    decimal: str,
    numeric: np.ndarray | None,
    marks: NonDigits | None = None,
) -> tuple[pa.Array, list[Rule]]:
    """Typed values and failure masks; plain values take the numpy path, the rest the exact one."""
    scale = DECIMAL_SCALES[name]
    n = len(text)
    plain = None
    if (numeric is None or not numeric.any()) and sys.byteorder == "little" and n:
        plain, unscaled = plain_decimals(text, marks or NonDigits.of(text), decimal, scale)
    if plain is None or not plain.any():
        value, masks = decimal_rules(name, text, length, decimal, numeric)
    else:
        masks = (
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=bool),
        )
        valid = plain.copy()
        other = np.flatnonzero(~plain)
        if other.size:
            sub_value, sub_masks = decimal_rules(
                name,
                text.take(pa.array(other)),
                length[other],
                decimal,
                None if numeric is None else numeric[other],
            )
            for full, sub in zip(masks, sub_masks, strict=True):
                full[other] = sub
            unscaled[other] = decimal_low_words(sub_value)
            valid[other] = np_bool(sub_value.is_valid())
        value = decimal_array(unscaled, valid, scale)
    missing, not_numeric, negative, too_large = masks
    rules = [
        Rule(missing, f"{name} missing"),
        Rule(not_numeric, f"{name} not numeric: '", text, "'"),
        Rule(negative, f"{name} negative: ", text),
        Rule(too_large, f"{name} too large for decimal({DECIMAL_PRECISION},{scale}): ", text),
    ]
    return value, rules


def validate_rows(
    candidates: Candidates, decimal: str, marks: dict[str, NonDigits] | None = None
) -> tuple[pa.Table, Rejected]:
    """Typed valid rows plus rejects (every failing rule, joined by "; ") for the candidate rows.

    ``marks`` are the non-digit bytes of the untrimmed decimal columns, reused when trimming
    changed nothing.
    """
    text = {c: trim(candidates.cells[c]) for c in EXPORT_COLUMNS}
    length = {c: lengths(text[c]) for c in EXPORT_COLUMNS}
    numeric = candidates.numeric_cells or {}
    kept = {c: m for c, m in (marks or {}).items() if text[c] is candidates.cells[c]}
    with ThreadPoolExecutor(max_workers=len(DECIMAL_SCALES), thread_name_prefix="export-decimal") as pool:
        # The decimal columns cost the most; their numpy / Arrow work releases the GIL, so they run
        # on worker threads while this one checks the other columns.
        decimals = {
            c: pool.submit(validate_decimal, c, text[c], length[c], decimal, numeric.get(c), kept.get(c))
            for c in DECIMAL_SCALES
        }
        ano, ano_rules = validate_int("ano", text["ano"], length["ano"], *YEAR_RANGE)
        mes, mes_rules = validate_int("mes", text["mes"], length["mes"], 1, 12)
        pais, pais_rules = validate_text("pais", text["pais"], length["pais"])
        setor, setor_rules = validate_text("setor", text["setor"], length["setor"])
        ncm, ncm_rules = validate_ncm(text["ncm"], length["ncm"], numeric.get("ncm"))
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
        return rows, Rejected(np.empty(0, np.int64), empty, empty)
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
    rejected = Rejected(
        lines=candidates.lines[bad_index],
        reasons=pc.cast(reasons, pa.string()),
        raw=candidates.raw(bad_index),
    )
    return rows, rejected
