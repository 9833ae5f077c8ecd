"""Numbers of export files: the decimal separator of a file, and decimal values parsed exactly.

``1.250.000,50`` and ``1,250,000.50`` both occur, so the separator is detected per file
(:func:`detect_decimal`). The two decimal columns are the costliest to check: "plain" numbers are
recognised and parsed from an index of their non-digit bytes (:class:`NonDigits`,
:func:`plain_decimals`); every other value goes through the exact regex rules
(:func:`decimal_rules`), so results are identical, only faster. Values with more decimals than the
column keeps are rounded half away from zero like PostgreSQL ``numeric``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.exports.arrow_text import layout, lengths, np_bool, np_int, subset
from assets.exports.schema import DECIMAL_PRECISION, DECIMAL_SCALES

NUMBER_RE = {
    ",": r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$",
    ".": r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$",
}
POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)


@dataclass(frozen=True)
class NonDigits:
    """Every byte of a string column that is not an ASCII digit: its row, position and value.

    Numbers are mostly digits, so this small index answers the decimal-separator and number-shape
    questions with numpy over a few million entries instead of string kernels over every value.
    """

    lengths: np.ndarray  # byte length of each value
    row: np.ndarray  # row of each non-digit byte, ascending
    pos: np.ndarray  # byte position inside its value
    byte: np.ndarray  # the byte itself

    @classmethod
    def of(cls, text: pa.Array) -> NonDigits:
        if text.null_count:
            text = text.fill_null("")
        offsets, data = layout(text)
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


def non_digits(text: pa.Array) -> NonDigits:
    """:meth:`NonDigits.of` plus its separator summary, both computed on the calling thread."""
    marks = NonDigits.of(text)
    _ = marks.separators
    return marks


def detect_decimal(
    cells: dict[str, pa.Array], delimiter: str | None, marks: dict[str, NonDigits] | None = None
) -> str:
    """Decide per file whether ``,`` or ``.`` is the decimal separator of valor_usd / peso_kg.

    Values holding both characters settle it (the last one is the decimal separator); otherwise a
    lone separator is the decimal one unless every value using it looks like thousands groups.
    ``marks`` (the columns' non-digit bytes) may be passed when the caller has them already.
    """
    columns = ("valor_usd", "peso_kg")
    values = pa.chunked_array([cells[c] for c in columns], type=pa.string())
    found = [((marks or {}).get(c) or NonDigits.of(cells[c])).separators for c in columns]
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
        n_comma = count_not_thousands(values.filter(pa.array(has_comma)), ",")
        n_dot = count_not_thousands(values.filter(pa.array(has_dot)), ".")
        return "," if n_comma >= n_dot else "."
    if has_comma.any():
        with_comma = values.filter(pa.array(has_comma))
        if count_not_thousands(with_comma, ",") == 0 and any_multi(with_comma, ","):
            return "."  # "1,250,000": commas are thousands separators
        return ","
    if has_dot.any():
        with_dot = values.filter(pa.array(has_dot))
        if count_not_thousands(with_dot, ".") == 0 and (any_multi(with_dot, ".") or default == ","):
            return ","  # "1.250.000": dots are thousands separators
        return "."
    return default


def count_not_thousands(values: pa.ChunkedArray, sep: str) -> int:
    grouped = rf"^\s*[+-]?\d{{1,3}}(\{sep}\d{{3}})+\s*$"
    return len(values) - int(np_bool(pc.match_substring_regex(values, grouped)).sum())


def any_multi(values: pa.ChunkedArray, sep: str) -> bool:
    return bool(np_bool(pc.match_substring_regex(values, rf"\{sep}.*\{sep}")).any())


def plain_decimals(
    text: pa.Array, marks: NonDigits, decimal: str, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are certainly well-formed, non-negative and fit without rounding, and their values.

    "Plain" means: digits, thousands groups of exactly three digits and at most ``scale`` decimals
    after one decimal separator, no sign, starting and ending with a digit (what ``NUMBER_RE``
    accepts, minus signs). Every other row is left to :func:`decimal_rules`, the exact reference,
    so this is only a shortcut: returns (plain mask, unscaled int64 values, 0 where not plain).
    """
    n = len(text)
    point, group = (ord(","), ord(".")) if decimal == "," else (ord("."), ord(","))
    offsets, data = layout(text)
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
        parsed = np_int(pc.cast(numbers, pa.int64()), 0)
        shift = np.where(plain, scale - frac_digits, 0)
        unscaled = parsed * POWERS_OF_TEN[shift]
    return plain, unscaled


def decimal_low_words(values: pa.Array) -> np.ndarray:
    """Unscaled int64 of a decimal128(15, s) array (its low 64 bits; nulls read as whatever is there)."""
    data = values.buffers()[1]
    if data is None:
        return np.zeros(len(values), dtype=np.int64)
    words = np.frombuffer(data, dtype=np.int64).reshape(-1, 2)
    return words[values.offset : values.offset + len(values), 0]


def decimal_array(unscaled: np.ndarray, valid: np.ndarray, scale: int) -> pa.Array:
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


def decimal_rules(
    name: str, text: pa.Array, length: np.ndarray, decimal: str, numeric: np.ndarray | None
) -> tuple[pa.Array, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The exact rules (regexes): values plus (missing, not numeric, negative, too large) masks."""
    scale = DECIMAL_SCALES[name]
    max_int_digits = DECIMAL_PRECISION - scale
    missing = length == 0
    well_formed = np_bool(pc.match_substring_regex(text, NUMBER_RE[decimal]))
    if decimal == ",":
        canonical = text
        if np_bool(pc.match_substring(text, ".")).any():
            canonical = pc.replace_substring(canonical, ".", "")  # thousands groups
        canonical = pc.replace_substring(canonical, ",", ".")
    else:
        canonical = text
        if np_bool(pc.match_substring(text, ",")).any():
            canonical = pc.replace_substring(canonical, ",", "")
    if numeric is not None and numeric.any():
        # Number cells already read "1234.5" whatever the convention of the file's text cells.
        plain = np_bool(pc.match_substring_regex(text, NUMBER_RE["."]))
        well_formed = np.where(numeric, plain, well_formed)
        canonical = pc.if_else(pa.array(numeric), text, canonical)
    if np_bool(pc.starts_with(canonical, "+")).any():
        canonical = pc.utf8_ltrim(canonical, characters="+")
    signed = np_bool(pc.starts_with(canonical, "-")) & well_formed
    negative = np.zeros(len(text), dtype=bool)
    if signed.any():  # "-0,00" is zero, not negative
        negative[signed] = np_bool(pc.match_substring_regex(subset(canonical, signed), "[1-9]"))
    point = np_int(pc.find_substring(canonical, "."))
    canonical_length = lengths(canonical)
    int_digits = np.where(point < 0, canonical_length, point) - signed
    frac_digits = np.where(point < 0, 0, canonical_length - point - 1)
    too_large = well_formed & (int_digits > max_int_digits)
    if too_large.any():  # leading zeros do not count
        stripped = pc.utf8_ltrim(subset(canonical, too_large), characters="-0")
        stripped_point = np_int(pc.find_substring(stripped, "."))
        stripped_digits = np.where(stripped_point < 0, lengths(stripped), stripped_point)
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
