"""Copy the leading bytes of many records out of a capture buffer in one vectorised step."""

from __future__ import annotations

import numpy as np


def gather(buf: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    """(len(pos), k) uint8: the k bytes at each position (zeros past the end of buf)."""
    n = len(buf)
    pos = pos.astype(np.int64, copy=False)
    if len(pos) == 0:
        return np.zeros((0, k), np.uint8)
    ok = (pos >= 0) & (pos <= n - k)
    if ok.all():
        return _rows(buf, pos, k)
    out = np.zeros((len(pos), k), np.uint8)
    if n >= k and ok.any():
        out[ok] = _rows(buf, pos[ok], k)
    rest = np.flatnonzero(~ok)
    tail_start = int(max(0, min(n, pos[rest].min(), n - k)))
    tail = np.zeros(n - tail_start + k, np.uint8)
    tail[: n - tail_start] = buf[tail_start:]
    p = np.clip(pos[rest] - tail_start, 0, n - tail_start)
    out[rest] = _rows(tail, p, k)
    return out


def _rows(buf: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    # Each element of this overlapping view is the k bytes starting at one offset: fancy indexing
    # copies whole rows (memcpy-like), much faster than a (n, k) index of single bytes.
    view = np.ndarray(shape=(len(buf) - k + 1,), dtype=f"V{k}", buffer=buf, strides=(1,))
    return view[pos].view(np.uint8).reshape(len(pos), k)
