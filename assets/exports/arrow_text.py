"""Small vectorized helpers over Arrow string columns: numpy views, masks, trimming.

The export reader's stages share them so that clean values take cheap kernels and only odd ones
the slower paths.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def np_bool(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow booleans -> numpy (null counts as False)."""
    if mask.null_count:
        mask = mask.fill_null(False)
    return mask.to_numpy(zero_copy_only=False)


def np_int(values: pa.Array | pa.ChunkedArray, fill: int = -1) -> np.ndarray:
    if values.null_count:
        values = values.fill_null(fill)
    return values.to_numpy(zero_copy_only=False)


def lengths(text: pa.Array) -> np.ndarray:
    return np_int(pc.binary_length(text), 0)


def scatter(base: pa.Array, where: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with the rows selected by ``where`` replaced, in order, by ``values``."""
    return pc.replace_with_mask(base, pa.array(where), values)


def subset(text: pa.Array, where: np.ndarray) -> pa.Array:
    return text.filter(pa.array(where))


def layout(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data) of a string array as numpy views: value i is ``data[offsets[i]:offsets[i + 1]]``."""
    if len(text) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    _, offsets_buf, data = text.buffers()[:3]
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[text.offset : text.offset + len(text) + 1]
    if data is None:
        return offsets.astype(np.int64), np.zeros(0, dtype=np.uint8)
    return offsets.astype(np.int64), np.frombuffer(data, dtype=np.uint8)


def is_ascii(text: pa.Array) -> bool:
    if len(text) == 0:
        return True
    offsets, data = layout(text)
    used = data[offsets[0] : offsets[-1]]
    return used.size == 0 or int(used.max()) < 128


def needs_trim(text: pa.Array) -> bool:
    """False when no value can start or end with whitespace: first and last bytes are visible ASCII."""
    if text.null_count or not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return True
    offsets, data = layout(text)
    filled = offsets[1:] > offsets[:-1]
    edges = np.concatenate((data[offsets[:-1][filled]], data[offsets[1:][filled] - 1]))
    return bool(((edges - np.uint8(0x21)) >= 0x5E).any())  # outside 0x21-0x7E ('!'..'~')


def trim(text: pa.Array) -> pa.Array:
    """Strip surrounding whitespace; the ASCII kernel is ~5x faster when the column allows it.

    Most columns have nothing to strip, and checking the first and last byte of each value is far
    cheaper than any trim kernel, so those columns are returned as they are.
    """
    if not needs_trim(text):
        return text
    if is_ascii(text):
        return pc.ascii_trim_whitespace(text)
    return pc.utf8_trim_whitespace(text)
