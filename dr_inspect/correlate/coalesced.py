"""GRO/TSO: a forwarded copy that carries several segments (or a piece of one), matched by seq
range and checked to tile its originals exactly; and how often each packet was forwarded (the
distinct TTLs of its copies at one point: a loop forwards it again and again)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.pack import TTL, dense_span, pack, unpack
from dr_inspect.correlate.coverage import tiles_exactly
from dr_inspect.columnar.tcp_view import MOD32


def coalesced_copies(m: dict, cand_all: dict, window_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """GRO/TSO: frames with no exact copy covered by the seq range of one copy of their
    connection. m (the ingress frames in table order) and cand_all: column arrays (conn, ts,
    seq, payload_len; m also has_copy). Returns (rows of m, rows of cand_all) of the matches."""
    conn = np.concatenate([m["conn"], cand_all["conn"]])
    ts = np.concatenate([m["ts"], cand_all["ts"]])
    seq = np.concatenate([m["seq"], cand_all["seq"]])
    # the connection's first seq by time: its base for relative sequence numbers
    order = np.argsort(ts, kind="stable")
    base = pd.Series(seq[order]).groupby(conn[order]).first()
    miss = np.flatnonzero(~m["has_copy"] & (m["payload_len"] > 0))
    if len(miss) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lm = pd.DataFrame({"conn": m["conn"][miss],
                       "rseq": (m["seq"][miss] - base.reindex(m["conn"][miss]).to_numpy()) % MOD32,
                       "ts": m["ts"][miss], "payload_len": m["payload_len"][miss], "mpos": miss})
    rr = pd.DataFrame({"conn": cand_all["conn"],
                       "rseq": (cand_all["seq"] - base.reindex(cand_all["conn"]).to_numpy()) % MOD32,
                       "copy_ts": cand_all["ts"], "copy_payload_len": cand_all["payload_len"],
                       "cpos": np.arange(len(cand_all["conn"]), dtype=np.int64)})
    rr["copy_rseq"] = rr["rseq"]
    # a frame without payload carries none of a segment's bytes (a pure ACK at the same seq
    # would hide the piece that does)
    rr = rr[rr["copy_payload_len"].to_numpy() > 0].sort_values("rseq", kind="stable")
    lm = lm.sort_values("rseq", kind="stable")
    g = pd.merge_asof(lm, rr, on="rseq", by="conn", direction="backward")
    found = g["cpos"].notna().to_numpy()
    end_ok = (g["copy_rseq"].to_numpy(dtype=float) + g["copy_payload_len"].to_numpy(dtype=float)
              >= g["rseq"].to_numpy(dtype=float) + g["payload_len"].to_numpy(dtype=float))
    near = (np.abs(g["copy_ts"].to_numpy(dtype=float) - g["ts"].to_numpy(dtype=float))
            <= window_ns)
    # coalesced means the copy carries more than this segment (GRO); or, starting where it
    # starts, less (TSO: the segment's first piece); an equal one is another packet (a
    # retransmission forwarded while this one was dropped). coverage.tiles_exactly then checks
    # that the bytes on both sides cover the same range
    copy_len = g["copy_payload_len"].to_numpy(dtype=float)
    length = g["payload_len"].to_numpy(dtype=float)
    first_piece = (g["copy_rseq"].to_numpy(dtype=float) == g["rseq"].to_numpy(dtype=float)) \
        & (copy_len < length) & (copy_len > 0)
    ok = found & near & ((end_ok & (copy_len > length)) | first_piece)
    return (g["mpos"].to_numpy()[ok].astype(np.int64),
            g["cpos"].to_numpy()[ok].astype(np.int64))


def covered(tv: pd.DataFrame, copy_tv: np.ndarray, coalesced: np.ndarray, conn: np.ndarray,
             seq: np.ndarray, payload_len: np.ndarray, rs_pos: np.ndarray,
             rs_conn: np.ndarray) -> np.ndarray:
    """Per ingress frame (conn, seq, payload_len: hashed client endpoint, raw seq, length)
    taken as coalesced with its copy (view row copy_tv): whether the lengths differ as GRO/TSO
    makes them differ. A longer copy must be tiled exactly by the ingress frames, a shorter one
    must be one of the real-server-side frames (view rows rs_pos, connections rs_conn) that
    tile the ingress frame exactly (see coverage.tiles_exactly)."""
    ok = np.zeros(len(coalesced), dtype=bool)
    ids = pd.factorize(np.concatenate([conn, rs_conn]))[0]
    in_ids, rs_ids = ids[:len(conn)], ids[len(conn):]
    at = np.flatnonzero(coalesced)
    c_seq = tv["seq"].to_numpy()[copy_tv[at]].astype(np.int64)
    c_len = tv["payload_len"].to_numpy()[copy_tv[at]].astype(np.int64)
    longer = c_len > payload_len[at]
    big = at[longer]
    ok[big] = tiles_exactly(in_ids, seq, payload_len, in_ids[big], c_seq[longer], c_len[longer])
    small = at[~longer]
    ok[small] = tiles_exactly(rs_ids, tv["seq"].to_numpy()[rs_pos],
                              tv["payload_len"].to_numpy()[rs_pos], in_ids[small], seq[small],
                              payload_len[small])
    return ok


def copy_counts(lkey: np.ndarray, point: np.ndarray, ttl: np.ndarray,
                 wanted: np.ndarray, n_keys: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per `wanted` loose key: the most distinct TTLs its copies show at one point, and how many
    copies it has (0 where it has none). point: integer codes. n_keys: the keys are dense ids
    below it already, else one factorize of both key sets gives shared integer ids; the rest is
    bincounts (no sort, no groupby, no lookup table)."""
    if n_keys is None:
        codes = pd.factorize(np.concatenate([lkey, wanted]))[0]
        kc, wc = codes[:len(lkey)].astype(np.int64), codes[len(lkey):]
        n_keys = int(codes.max()) + 1 if len(codes) else 0
        del codes
    else:
        kc, wc = np.asarray(lkey, dtype=np.int64), wanted
    pc = np.asarray(point, dtype=np.int64)
    n_points = int(pc.max()) + 1 if len(pc) else 1
    copies_per_key = np.bincount(kc, minlength=n_keys).astype(np.int64)
    # a key with one copy shows one TTL; distinct TTLs are counted for the others alone
    ttls_per_key = np.minimum(copies_per_key, 1)
    several = np.flatnonzero(copies_per_key[kc] > 1)
    if len(several):
        spans = [dense_span(n_keys), dense_span(n_points), TTL]
        triples = pd.unique(pack([kc[several], pc[several], np.asarray(ttl)[several]], spans))
        key, point_at, _ = unpack(triples, spans)
        per_pair = np.bincount(pack([key, point_at], spans[:2]), minlength=n_keys * n_points)
        ttls_per_key = np.maximum(ttls_per_key,
                                  per_pair.reshape(n_keys, n_points).max(axis=1))
    return ttls_per_key[wc], copies_per_key[wc]

