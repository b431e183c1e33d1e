"""The decoders' numeric columns (Fields: one Col of values and validity per field, grouped by
how they are held) and the byte readers the numpy decoder reads headers with."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dr_inspect.decode.gather import gather


@dataclass
class Col:
    values: np.ndarray
    valid: np.ndarray


@dataclass
class Fields:
    """Numeric columns of one batch of frames; addresses still numeric."""

    n: int
    ints: dict[str, Col] = field(default_factory=dict)
    macs: dict[str, Col] = field(default_factory=dict)        # uint64
    ip4: dict[str, Col] = field(default_factory=dict)         # uint32
    ip6: dict[str, Col] = field(default_factory=dict)         # (valid rows, 16) uint8
    reasons: Counter = field(default_factory=Counter)
    undecodable: np.ndarray | None = None                    # bool per frame


def at_offsets(g: np.ndarray, buf: np.ndarray, data: np.ndarray, off: np.ndarray, k: int,
               needed: np.ndarray | None = None) -> np.ndarray:
    """(n, k): the k bytes at data + off of each frame, sliced from the frame-start matrix g where
    it holds them (a view when every frame has the same offset), else gathered from buf. Rows not
    `needed` get arbitrary bytes (they are read at a common offset, to keep the fast path)."""
    n, width = g.shape
    if n == 0:
        return np.zeros((0, k), np.uint8)
    if needed is not None:
        first = np.flatnonzero(needed)
        off = np.where(needed, off, off[first[0]] if len(first) else 0)
    lo, hi = int(off.min()), int(off.max())
    if lo == hi and 0 <= lo and lo + k <= width:
        return g[:, lo:lo + k]
    values, counts = np.unique(off, return_counts=True)
    out = np.empty((n, k), np.uint8)
    if len(values) > 16:
        return gather(buf, data + off, k)
    for v in values:
        rows = np.flatnonzero(off == v)
        if 0 <= v and v + k <= width:
            out[rows] = g[rows, v:v + k]
        else:
            out[rows] = gather(buf, data[rows] + v, k)
    return out


# Field readers: a zero-copy big-endian view of the field's bytes in every row, converted once.
def be16(m: np.ndarray, o: int) -> np.ndarray:
    return m[:, o:o + 2].view(">u2")[:, 0].astype(np.uint16)


def be32(m: np.ndarray, o: int) -> np.ndarray:
    return m[:, o:o + 4].view(">u4")[:, 0].astype(np.uint32)


def u48(m: np.ndarray, o: int) -> np.ndarray:
    if o + 8 <= m.shape[1]:
        return m[:, o:o + 8].view(">u8")[:, 0].astype(np.uint64) >> np.uint64(16)
    return (be16(m, o).astype(np.uint64) << np.uint64(32)) | be32(m, o + 2).astype(np.uint64)
