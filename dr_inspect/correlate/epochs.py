"""Connection identity: a 5-tuple plus its SYN epoch.

A client may reuse a 5-tuple once the earlier connection has closed (hours of traffic, NAT,
tcp_tw_reuse): the new connection starts with a SYN carrying a new initial sequence number. Such
a 5-tuple holds several connections, one per distinct ISN, each from its first SYN on; frames
before the first SYN (a capture that starts mid-connection, then the 5-tuple is reused) are a
connection of their own. Everything that groups by connection (flows, DR008, DR009, DR011,
ladders, per real server shares) groups on the ids made here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.pack import SEQ, dense_span, pack, unpack

INT64_MAX = np.iinfo(np.int64).max


def _per_code_min(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, INT64_MAX, dtype=np.int64)
    np.minimum.at(out, codes, values)
    return out


def split_epochs(codes: np.ndarray, is_syn: np.ndarray, seq: np.ndarray, ts: np.ndarray,
                 tolerance_ns: int) -> np.ndarray:
    """Per row a connection id: `codes` (the row's 5-tuple, dense ids numbered in order of first
    appearance) split where the 5-tuple starts again. is_syn: the row is a SYN without ACK;
    seq: its sequence number (the ISN on a SYN); ts: clock-adjusted time. A row belongs to the
    latest epoch whose first SYN (at any point) is no later than the row plus `tolerance_ns`
    (clock differences between points). Returns ids numbered in order of first appearance;
    `codes` itself when no 5-tuple is reused (the usual case: only the SYN rows are looked at
    beyond one min per 5-tuple)."""
    syn = np.flatnonzero(is_syn)
    if len(syn) == 0 or len(codes) == 0:
        return codes
    n = int(codes.max()) + 1
    ts = np.asarray(ts, dtype=np.int64)
    # (5-tuple, ISN) of each SYN: the epochs, each starting at its first sighting
    spans = [dense_span(n), SEQ]
    pair = pack([codes[syn], np.asarray(seq)[syn].astype(np.int64) % SEQ.size], spans)
    pair_ids, pairs = pd.factorize(pair)
    start = _per_code_min(pair_ids, ts[syn], len(pairs))
    pair_code = unpack(np.asarray(pairs), spans)[0]
    n_epochs = np.bincount(pair_code, minlength=n)
    first_start = _per_code_min(pair_code, start, n)
    first_row = _per_code_min(codes, ts, n)
    early = (first_start < INT64_MAX) & (first_row < first_start - tolerance_ns)
    split = (n_epochs >= 2) | early
    if not split.any():
        return codes
    # epoch number within its 5-tuple: 1.. in order of start; 0 before the first SYN
    kept = np.flatnonzero(split[pair_code])
    starts = pd.DataFrame({"code": pair_code[kept], "start": start[kept]}).sort_values(
        ["code", "start"], kind="stable")
    starts["epoch"] = starts.groupby("code").cumcount().to_numpy() + 1
    rows = np.flatnonzero(split[codes])
    left = pd.DataFrame({"code": codes[rows].astype(np.int64), "at": ts[rows] + tolerance_ns,
                         "row": rows}).sort_values("at", kind="stable")
    right = starts.rename(columns={"start": "at"}).sort_values("at", kind="stable")
    matched = pd.merge_asof(left, right, on="at", by="code", direction="backward")
    epoch = np.zeros(len(codes), dtype=np.int64)
    epoch[matched["row"].to_numpy()] = matched["epoch"].fillna(0).to_numpy(dtype=np.int64)
    return pd.factorize(pack([codes, epoch], [dense_span(n), dense_span(int(epoch.max()) + 1)]))[0]


def epoch_keys(first_ts: np.ndarray, ts: np.ndarray, tolerance_ns: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """For a frame at `ts` that may belong to several connections of one 5-tuple (first seen at
    `first_ts`): two sort keys (minor, major: np.lexsort order) that put first the latest
    connection that had started by then, and the connections that start later last (the
    earliest of them first)."""
    first_ts = np.asarray(first_ts, dtype=np.int64)
    later = first_ts > np.asarray(ts, dtype=np.int64) + tolerance_ns
    return np.where(later, first_ts, -first_ts), later
