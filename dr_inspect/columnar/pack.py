"""Integer columns packed into one exact int64 key per row (mixed radix, first column most
significant): equal exactly where the rows are equal, ordered as the rows sort column by column.

Each kind of value has one span, declared here: a port is -1 (missing) .. 65535, a TTL -1 ..
255, a sequence number 0 .. 2**32 - 1, codes over n values -1 (missing) .. n - 1. A caller that cannot bound its product below
2**63 asks `fits` first and hashes instead, or uses pack_exact (which numbers what it packs
densely when it must).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Span:
    """The values lo .. lo + size - 1 one packed column may hold."""

    size: int
    lo: int = 0


PORT = Span(65537, -1)              # a TCP port, -1 where missing
TTL = Span(257, -1)                 # an IP TTL / hop limit, -1 where missing
SEQ = Span(1 << 32)                 # a TCP sequence number (modulo 2**32)


def code_span(n: int) -> Span:
    """Codes 0..n-1 over n values, -1 where missing (a categorical's own codes)."""
    return Span(n + 1, -1)


def dense_span(n: int) -> Span:
    """Ids 0..n-1, never missing."""
    return Span(max(n, 1))


def fits(spans: list[Span]) -> bool:
    """Whether keys over these spans fit an int64."""
    return int(np.prod([s.size for s in spans], dtype=object)) < 1 << 63


def pack(columns: list[np.ndarray], spans: list[Span]) -> np.ndarray:
    """One int64 per row of the columns (values within their spans; see fits)."""
    key = np.asarray(columns[0]).astype(np.int64)
    if spans[0].lo:
        key -= spans[0].lo
    for col, span in zip(columns[1:], spans[1:]):
        key *= span.size
        key += col
        if span.lo:
            key -= span.lo
    return key


def unpack(key: np.ndarray, spans: list[Span]) -> list[np.ndarray]:
    """The columns `pack` packed into `key`, as int64."""
    out = []
    key = np.asarray(key, dtype=np.int64)
    for span in reversed(spans[1:]):
        out.append(key % span.size + span.lo)
        key = key // span.size
    out.append(key + spans[0].lo)
    return out[::-1]


def pack_exact(columns: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where the rows are equal in every column, for columns of
    any range: each column's span is its own min..max, and what is packed so far is numbered
    densely first when the next column would not fit (equality kept, order not)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    if len(key) == 0:
        return key
    span = 1
    for col in columns:
        col = np.asarray(col).astype(np.int64)
        lo = int(col.min())
        width = int(col.max()) - lo + 1
        if span * width >= 1 << 62:
            key, uniq = pd.factorize(key)
            key, span = key.astype(np.int64), len(uniq)
        if span * width >= 1 << 62:
            col, uniq = pd.factorize(col)
            col, lo, width = col.astype(np.int64), 0, len(uniq)
        key = key * width + (col - lo)
        span *= width
    return key


def distinct_rows(columns: list[np.ndarray], sizes: list[int]) -> list[np.ndarray]:
    """The distinct rows of code columns (column i's codes below sizes[i]), sorted, one array
    per column: counted in one array over all combinations when that is small, else sorted."""
    if len(columns[0]) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in columns]
    spans = [dense_span(size) for size in sizes]
    key = pack(columns, spans)
    total = int(np.prod(sizes, dtype=object))
    seen = (np.flatnonzero(np.bincount(key, minlength=total)) if total <= 4 * len(key) + 65536
            else np.unique(key))
    return unpack(seen, spans)


def span_of(column: np.ndarray) -> Span:
    """The span of the values a column holds (its min..max; one value for an empty column)."""
    if len(column) == 0:
        return Span(1)
    lo = int(column.min())
    return Span(int(column.max()) - lo + 1, lo)
