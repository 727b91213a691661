"""Vectorised building blocks: strings from numpy byte matrices, row-wise sampling, time formatting.

Everything here works on whole columns at once so the simulator stays linear in people and never
loops in Python per person or per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Rng: TypeAlias = np.random.Generator
StrArray: TypeAlias = pa.Array
Part: TypeAlias = "pa.Array | str"

DIGITS = b"0123456789"
ALNUM_LOWER = b"abcdefghijklmnopqrstuvwxyz0123456789"
HEX = b"0123456789abcdef"
B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
EIGHT_HOURS = 8 * 3600


def from_matrix(mat: np.ndarray, keep: np.ndarray | None = None) -> StrArray:
    """Turn an n×w uint8 ASCII/UTF-8 matrix into a string array; `keep` drops bytes per row."""
    mat = np.ascontiguousarray(mat, dtype=np.uint8)
    n, w = mat.shape
    if keep is None:
        offsets = np.arange(0, (n + 1) * w, w, dtype=np.int64)
        data = mat.reshape(-1)
    else:
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(keep.sum(axis=1), out=offsets[1:])
        data = mat[keep]
    if offsets[-1] < 2**31 - 1:
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def rand_chars(rng: Rng, n: int, length: int, alphabet: bytes) -> np.ndarray:
    """n×length matrix of random characters from `alphabet`."""
    lut = np.frombuffer(alphabet, dtype=np.uint8)
    return lut[rng.integers(0, len(lut), size=(n, length))]


def rand_str(rng: Rng, n: int, length: int, alphabet: bytes, prefix: str = "") -> StrArray:
    """n random strings of a fixed length, with an optional constant prefix."""
    body = rand_chars(rng, n, length, alphabet)
    if prefix:
        pre = np.broadcast_to(np.frombuffer(prefix.encode(), dtype=np.uint8), (n, len(prefix.encode())))
        body = np.hstack([pre, body])
    return from_matrix(body)


def uuid4s(rng: Rng, n: int) -> StrArray:
    """uuid4-formatted random ids (version and variant nibbles set), vectorised."""
    nib = rng.integers(0, 16, size=(n, 32))
    nib[:, 12] = 4
    nib[:, 16] = 8 + (nib[:, 16] & 3)
    hexed = np.frombuffer(HEX, dtype=np.uint8)[nib]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for src, dst, width in ((0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12)):
        out[:, dst : dst + width] = hexed[:, src : src + width]
    return from_matrix(out)


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """n×width matrix of zero-padded ASCII digits of non-negative integers."""
    v = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((len(v), width), dtype=np.uint8)
    for i in range(width - 1, -1, -1):
        out[:, i] = 48 + v % 10
        v //= 10
    return out


def fmt_fixed(values: np.ndarray, width: int, prefix: str = "") -> StrArray:
    """Zero-padded integers, e.g. member cards `M00012345`."""
    mat = digits(values, width)
    if prefix:
        pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
        mat = np.hstack([np.broadcast_to(pre, (len(mat), len(pre))), mat])
    return from_matrix(mat)


def fmt_int(values: np.ndarray) -> StrArray:
    """Non-negative integers without padding."""
    v = np.asarray(values, dtype=np.int64)
    ndig = np.ones(len(v), dtype=np.int64)
    for p in range(1, 19):
        ndig += v >= 10**p
    width = int(ndig.max()) if len(v) else 1
    keep = np.arange(width)[None, :] >= (width - ndig)[:, None]
    return from_matrix(digits(v, width), keep)


def fmt_money(cents: np.ndarray) -> StrArray:
    """Amounts in cents as `1299.00`."""
    c = np.asarray(cents, dtype=np.int64)
    yuan = fmt_int(c // 100)
    frac = from_matrix(digits(c % 100, 2))
    return cat(yuan, ".", frac)


def _date_parts(local_s: np.ndarray) -> tuple[np.ndarray, ...]:
    days = (local_s // 86400).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    year = months.astype(np.int64) // 12 + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
    sec = local_s % 86400
    return year, month, day, sec // 3600, sec // 60 % 60, sec % 60


def fmt_time(local_s: np.ndarray, style: str, ms: np.ndarray | None = None) -> StrArray:
    """Format Beijing wall-clock seconds: tmall `2026-11-11 00:03:12`, jd `2026/11/11 0:03:12`,
    iso `2026-11-11T00:03:12+08:00`, iso_ms (with milliseconds), date `2026-11-11`."""
    s = np.asarray(local_s, dtype=np.int64)
    y, mo, d, h, mi, se = _date_parts(s)
    sep = ord("/") if style == "jd" else ord("-")
    cols: list[np.ndarray] = [digits(y, 4), _c(sep, s), digits(mo, 2), _c(sep, s), digits(d, 2)]
    if style != "date":
        mid = ord("T") if style.startswith("iso") else ord(" ")
        cols += [_c(mid, s), digits(h, 2), _c(ord(":"), s), digits(mi, 2), _c(ord(":"), s), digits(se, 2)]
    if style == "iso_ms":
        cols += [_c(ord("."), s), digits(ms if ms is not None else np.zeros_like(s), 3)]
    if style.startswith("iso"):
        tz = np.frombuffer(b"+08:00", dtype=np.uint8)
        cols.append(np.broadcast_to(tz, (len(s), 6)))
    mat = np.hstack(cols)
    if style == "jd":
        keep = np.ones(mat.shape, dtype=bool)
        keep[:, 11] = h >= 10
        return from_matrix(mat, keep)
    return from_matrix(mat)


def yyyymmdd(local_s: np.ndarray) -> np.ndarray:
    """Dates as integers 20261111."""
    y, mo, d, *_ = _date_parts(np.asarray(local_s, dtype=np.int64))
    return np.asarray(y * 10000 + mo * 100 + d)


def _c(ch: int, like: np.ndarray) -> np.ndarray:
    return np.full((len(like), 1), ch, dtype=np.uint8)


def cat(*parts: Part) -> StrArray:
    """Element-wise string concatenation of arrays and constant strings (nulls propagate)."""
    return pc.binary_join_element_wise(*parts, "")


def pick(vocab: Sequence[str], idx: np.ndarray) -> StrArray:
    """Strings from a small vocabulary by index."""
    return pa.array(list(vocab), type=pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))


def where(mask: np.ndarray, yes: StrArray | str, no: StrArray | str | None) -> StrArray:
    """`yes` where mask else `no` (None gives a null)."""
    other = pa.scalar(no, type=pa.string()) if no is None or isinstance(no, str) else no
    chosen = pc.if_else(pa.array(np.asarray(mask, dtype=bool)), yes, other)
    return chosen


def weighted(rng: Rng, n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """n draws of indices with the given (unnormalised) weights."""
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum())


def row_choice(rng: Rng, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of an n×k matrix of unnormalised, non-negative weights."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.asarray(np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1))


def sample_days(rng: Rng, cw: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Day in [lo, hi) per row with probability ∝ daily weight; `cw` is the cumulative weight
    (cw[0] = 0, length n_days + 1)."""
    u = cw[lo] + rng.random(len(lo)) * (cw[hi] - cw[lo])
    day = np.searchsorted(cw, u, side="right") - 1
    return np.asarray(np.clip(day, lo, np.maximum(hi - 1, lo)))


def rank_in_group(group: np.ndarray) -> np.ndarray:
    """0-based position within runs of equal values of an already grouped (sorted) array."""
    n = len(group)
    idx = np.arange(n)
    if n == 0:
        return idx
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = group[1:] != group[:-1]
    return idx - np.maximum.accumulate(np.where(change, idx, 0))


def first_in_group(group: np.ndarray) -> np.ndarray:
    """Boolean mask of the first row of each run in an already grouped array."""
    return np.asarray(rank_in_group(group) == 0)


def make_unique(rng: Rng, arr: StrArray) -> StrArray:
    """Append random digits to repeated values until every value is unique."""
    for _ in range(20):
        codes = pc.dictionary_encode(arr).indices.to_numpy(zero_copy_only=False)
        _, first = np.unique(codes, return_index=True)
        dup = np.ones(len(codes), dtype=bool)
        dup[first] = False
        if not dup.any():
            return arr
        extra = from_matrix(rand_chars(rng, len(arr), 1, DIGITS))
        arr = where(dup, cat(arr, extra), arr)
    raise RuntimeError("could not make identifiers unique")


def json_str(arr: StrArray) -> StrArray:
    """JSON string literals (escaped, quoted); nulls become `null`."""
    esc = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
    return pc.fill_null(cat('"', esc, '"'), "null")


def to_np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Numeric arrow data as numpy."""
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def scatter(n: int, parts: Sequence[tuple[np.ndarray, StrArray]]) -> StrArray:
    """Assemble an array of length n from (row indices, values) parts covering every row once."""
    idx = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    values = pa.concat_arrays([p[1] for p in parts]) if parts else pa.array([], pa.string())
    inverse = np.empty(n, dtype=np.int64)
    inverse[idx] = np.arange(len(idx))
    return values.take(pa.array(inverse))
