"""Whether a forwarded copy carries the same payload bytes as its original(s).

The decoder keeps a digest of each frame's captured TCP payload (payload_hash, decode/digest.py)
and whether the capture holds all of it (payload_whole). A plain copy must have its original's
digest. A GRO-coalesced copy must have the digest of the originals it covers concatenated in
sequence order, and a TSO original the digest of its pieces at the copy's point: the digest
concatenates, and coverage.tiles_exactly has already proven that the pieces tile the range.

Where any frame involved lacks part of its payload (a snaplen cut) or its digest, nothing is
said: the bytes are judged only where both sides hold all of them, so a cut capture never fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.correlate.coverage import segments_inside, tiled
from dr_inspect.decode import digest


def payload_changed(tv: pd.DataFrame, pk: pd.DataFrame, flow_id: np.ndarray,
                    orig_tv: np.ndarray, copy_tv: np.ndarray, coalesced: np.ndarray
                    ) -> np.ndarray:
    """Per ingress frame (view rows orig_tv, connection flow_id) with its copy (view row
    copy_tv, -1 for none; coalesced as the forwards table has it): whether both sides hold
    their whole payload and the bytes differ."""
    n = len(orig_tv)
    changed = np.zeros(n, dtype=bool)
    has = copy_tv >= 0
    if not has.any() or "payload_hash" not in pk.columns:
        return changed
    d_o, w_o = _digests(tv, pk, orig_tv)
    d_c, w_c = _digests(tv, pk, np.maximum(copy_tv, 0))
    w_c &= has
    plain = has & ~coalesced
    changed[plain] = (w_o & w_c & (d_o != d_c))[plain]
    if not coalesced.any():
        return changed
    seq, length = _ints(tv, "seq"), _ints(tv, "payload_len")
    o_seq, o_len = seq[orig_tv], length[orig_tv]
    c_seq, c_len = seq[np.maximum(copy_tv, 0)], length[np.maximum(copy_tv, 0)]
    # GRO: the copy carries several originals: their digests concatenated in seq order
    gro = np.flatnonzero(coalesced & has & (c_len > o_len))
    if len(gro):
        joined, known = combined(flow_id, o_seq, o_len, d_o, w_o,
                                 flow_id[gro], c_seq[gro], c_len[gro])
        changed[gro] = known & w_c[gro] & (joined != d_c[gro])
    # TSO: the original is cut in pieces: those at the copy's point, of its 4-tuple
    tso = np.flatnonzero(coalesced & has & (c_len < o_len))
    if len(tso):
        pieces, conn, q_conn = _pieces(tv, copy_tv[tso])
        d_p, w_p = _digests(tv, pk, pieces)
        joined, known = combined(conn, seq[pieces], length[pieces], d_p, w_p,
                                 q_conn, o_seq[tso], o_len[tso])
        changed[tso] = known & w_o[tso] & (joined != d_o[tso])
    return changed


def combined(seg_conn: np.ndarray, seg_seq: np.ndarray, seg_len: np.ndarray,
             seg_digest: np.ndarray, seg_whole: np.ndarray, q_conn: np.ndarray,
             q_seq: np.ndarray, q_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query range (as coverage.tiles_exactly): the digest of the distinct segments inside
    it concatenated in sequence order, and whether that is known (they tile the range exactly
    and every one holds its whole payload). A segment at rel with len bytes is followed by
    q_len - rel - len bytes of the range: its digest is shifted by that many."""
    q_len = np.asarray(q_len, dtype=np.int64)
    out = np.zeros(len(q_len), dtype=np.uint64)
    pairs = segments_inside(seg_conn, seg_seq, seg_len, q_conn, q_seq, q_len)
    known = tiled(pairs, q_len)
    if len(pairs) == 0:
        return out, known
    q, seg = pairs["q"].to_numpy(), pairs["seg"].to_numpy()
    after = q_len[q] - pairs["rel"].to_numpy() - pairs["len"].to_numpy()
    known &= np.bincount(q, weights=~seg_whole[seg], minlength=len(q_len)) == 0
    ok = known[q]
    term1, term2 = digest.lanes(digest.shifted(seg_digest[seg[ok]], after[ok]))
    # lanes are below 2**29: sums of any realistic number of segments fit in 64 bits
    lane1 = np.zeros(len(q_len), dtype=np.uint64)
    lane2 = np.zeros(len(q_len), dtype=np.uint64)
    np.add.at(lane1, q[ok], term1)
    np.add.at(lane2, q[ok], term2)
    out[known] = digest.pack(lane1 % np.uint64(digest.P), lane2 % np.uint64(digest.P))[known]
    return out, known


def _digests(tv: pd.DataFrame, pk: pd.DataFrame, rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(payload digest, whole payload held) of view rows: read from the packets table rows
    behind them (a missing digest counts as not held)."""
    at = tv["row"].to_numpy()[rows]
    h = pk["payload_hash"].array.take(at)
    held = pk["payload_whole"].array.take(at).to_numpy(dtype=bool, na_value=False)
    return h.to_numpy(dtype=np.uint64, na_value=0), held & ~np.asarray(h.isna())


def _ints(tv: pd.DataFrame, column: str) -> np.ndarray:
    return tv[column].to_numpy().astype(np.int64, copy=False)


def _pieces(tv: pd.DataFrame, copies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(view rows that may be pieces of the same original as the copies: same point, MACs and
    4-tuple (on one LAN the original is at the copies' point, from another MAC), ids of those
    groups per such row, and per copy). The view's text columns are categoricals: their codes
    make the group key."""
    key_cols = ("point", "src_mac", "dst_mac", "src_ip", "src_port", "dst_ip", "dst_port")
    # only rows of the copies' client ports can be pieces: the key is built for those alone
    rows = np.flatnonzero(np.isin(tv["src_port"].to_numpy(), tv["src_port"].to_numpy()[copies]))
    parts = {}
    for c in key_cols:
        s = tv[c]
        values = s.cat.codes.to_numpy() if isinstance(s.dtype, pd.CategoricalDtype) \
            else s.to_numpy()
        parts[c] = np.concatenate([values[rows], values[copies]]).astype(np.int64)
    ids = pd.DataFrame(parts).groupby(list(key_cols), sort=False).ngroup().to_numpy()
    return rows, ids[:len(rows)], ids[len(rows):]
