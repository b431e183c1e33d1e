"""One batch of frames being decoded by the numpy decoder (layers.py): the frame index columns,
the frame-start matrix, the Fields filled layer by layer, and each frame's first reason to be
undecodable."""

from __future__ import annotations

from collections import Counter

import numpy as np

from dr_inspect.decode.fields import Fields
from dr_inspect.decode.frames import FrameIndex
from dr_inspect.decode.gather import gather
from dr_inspect.decode.schema import DECODED_FIELDS

K_FRAME = 96          # bytes gathered at the frame start (the link header and what follows)


class FrameBatch:
    """One batch of frames being decoded: its frame index columns, the frame-start matrix, the
    Fields filled layer by layer, and the first reason each frame is undecodable."""

    def __init__(self, buf: np.ndarray, idx: FrameIndex):
        self.buf = buf
        self.idx = idx
        self.n = n = len(idx)
        self.f = Fields(n)
        self.cap = idx.caplen.astype(np.int64)
        self.lt = idx.linktype.astype(np.int64)
        self.data = idx.data_pos.astype(np.int64)
        self.g2 = idx.head if idx.head is not None and idx.head.shape[1] >= K_FRAME else \
            gather(buf, self.data, K_FRAME)
        self.reason_code = np.zeros(n, np.int16)   # 0 = fine; index into reason_names
        self.reason_names: list[str] = [""]

    def flag(self, mask: np.ndarray, why: str) -> None:
        """Count frames under a reason (the first reason found for a frame wins)."""
        mask = mask & (self.reason_code == 0)
        if mask.any():
            if why not in self.reason_names:
                self.reason_names.append(why)
            self.reason_code[mask] = self.reason_names.index(why)

    def finish(self) -> Fields:
        f = self.f
        for (group, name), dtype in DECODED_FIELDS.items():
            if group != "ip6":      # the one declaration of each field's numeric type
                col = getattr(f, group)[name]
                col.values = col.values.astype(dtype, copy=False)
        code = self.reason_code
        f.undecodable = code > 0
        codes, counts = np.unique(code[code > 0], return_counts=True)
        f.reasons = Counter({self.reason_names[int(c)]: int(k) for c, k in zip(codes, counts)})
        return f


def mask(n: int, rows: np.ndarray | list[int]) -> np.ndarray:
    """n booleans, True at rows."""
    m = np.zeros(n, bool)
    m[np.asarray(rows, dtype=np.int64)] = True
    return m
