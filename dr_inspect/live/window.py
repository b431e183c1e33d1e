"""A sliding time window of packets-table chunks per capture point (bounded memory)."""

from __future__ import annotations

from collections import deque

import pandas as pd
from pandas.api.types import union_categoricals


def concat_tables(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate packets-table chunks keeping every categorical column categorical.

    pd.concat turns categoricals with different categories into plain text columns; the later
    stages expect the decoder's dtypes, so union the categories column by column.
    """
    chunks = [c for c in chunks if len(c.columns)]
    if not chunks:
        return pd.DataFrame()
    if len(chunks) == 1:
        return chunks[0].reset_index(drop=True)
    out = pd.concat(chunks, ignore_index=True)
    for col in chunks[0].columns:
        if isinstance(chunks[0][col].dtype, pd.CategoricalDtype) and not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = union_categoricals([c[col] for c in chunks], ignore_order=True)
    return out


class PacketWindow:
    """The frames of one point newer than a cutoff: chunks as decoded, oldest dropped first."""

    def __init__(self) -> None:
        self._chunks: deque[pd.DataFrame] = deque()
        self.template: pd.DataFrame | None = None   # an empty table with the decoder's columns
        self.total = 0                              # frames ever added

    def add(self, chunk: pd.DataFrame) -> None:
        if self.template is None and len(chunk.columns):
            self.template = chunk.iloc[:0]
        if len(chunk):
            self._chunks.append(chunk)
            self.total += len(chunk)

    def trim(self, cutoff_ns: int) -> None:
        """Forget frames with ts_ns < cutoff_ns (whole chunks, then the head of the oldest)."""
        while self._chunks and int(self._chunks[0]["ts_ns"].max()) < cutoff_ns:
            self._chunks.popleft()
        if self._chunks:
            head = self._chunks[0]
            keep = head["ts_ns"].to_numpy() >= cutoff_ns
            if not keep.all():
                self._chunks[0] = head[keep]

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    def table(self) -> pd.DataFrame:
        if not self._chunks:
            return self.template.copy() if self.template is not None else pd.DataFrame()
        return concat_tables(list(self._chunks))
