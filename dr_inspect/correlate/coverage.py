"""GRO/TSO: a segment seen whole at one point and cut in pieces at another carries the same bytes
only when the pieces tile its sequence range exactly.

A forwarded copy longer than its original is coalesced (GRO on the real-server side): the client
segments it covers must start where it starts, end where it ends and leave no gap. A copy
shorter than its original is a piece of it (TSO/GSO): the real-server-side segments must tile
the original's range. Anything else is a copy that lost or gained bytes, which DR002 fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.tcp_view import MOD32


def tiles_exactly(seg_conn: np.ndarray, seg_seq: np.ndarray, seg_len: np.ndarray,
                  q_conn: np.ndarray, q_seq: np.ndarray, q_len: np.ndarray) -> np.ndarray:
    """Per query range [q_seq, q_seq + q_len) of connection q_conn: whether the distinct
    segments (conn, seq, len) that start inside it cover it exactly: the first starts at
    q_seq, none reaches past its end, and their lengths add up to q_len (so no gap and, the
    segments being distinct, no overlap). Sequence numbers are raw 32-bit values; connections
    are integer ids shared by both sides."""
    pairs = segments_inside(seg_conn, seg_seq, seg_len, q_conn, q_seq, q_len)
    return tiled(pairs, np.asarray(q_len, dtype=np.int64))


def segments_inside(seg_conn: np.ndarray, seg_seq: np.ndarray, seg_len: np.ndarray,
                    q_conn: np.ndarray, q_seq: np.ndarray, q_len: np.ndarray) -> pd.DataFrame:
    """Pairs of a query range (as tiles_exactly) and a distinct segment with bytes (the first
    of equal (conn, seq, len) ones) that starts inside it: columns q (query position), seg
    (segment position), rel (its seq relative to the query's start) and len."""
    seg = pd.DataFrame({"conn": np.asarray(seg_conn, dtype=np.int64),
                        "seq": np.asarray(seg_seq, dtype=np.int64) % MOD32,
                        "len": np.asarray(seg_len, dtype=np.int64)})
    seg["seg"] = np.arange(len(seg), dtype=np.int64)
    seg = seg[seg["len"] > 0].drop_duplicates(["conn", "seq", "len"])
    q_conn = np.asarray(q_conn, dtype=np.int64)
    q_seq = np.asarray(q_seq, dtype=np.int64) % MOD32
    q_len = np.asarray(q_len, dtype=np.int64)
    # sequence numbers relative to each query's own start: a segment inside it is at 0..len-1
    # (one query at a time per connection would be needed otherwise; queries are few)
    pairs = seg.merge(pd.DataFrame({"conn": q_conn, "q": np.arange(len(q_conn)),
                                    "start": q_seq, "qlen": q_len}), on="conn")
    rel = (pairs["seq"].to_numpy() - pairs["start"].to_numpy()) % MOD32
    inside = rel < pairs["qlen"].to_numpy()
    return pairs[inside].assign(rel=rel[inside])[["q", "seg", "rel", "len"]]


def tiled(pairs: pd.DataFrame, q_len: np.ndarray) -> np.ndarray:
    """Per query: whether its segments_inside pairs cover its range exactly (tiles_exactly)."""
    out = np.zeros(len(q_len), dtype=bool)
    if len(pairs) == 0:
        return out
    agg = pairs.assign(end=pairs["rel"] + pairs["len"]).groupby("q").agg(
        first=("rel", "min"), last=("end", "max"), total=("len", "sum"))
    q = agg.index.to_numpy()
    out[q] = ((agg["first"].to_numpy() == 0) & (agg["last"].to_numpy() == q_len[q])
              & (agg["total"].to_numpy() == q_len[q]))
    return out
