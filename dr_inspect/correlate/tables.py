"""Derived tables the rules read: to_vip, forwards, replies, arp, flows, points.

Every table is plain columns (str, int64 with -1 for missing, float64, bool) so rule expressions
never meet NA. Each row names where it was seen (point, frame, ts_ns) for evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.correlate.keys import (CONN_KEY, LOOSE_KEY, endpoint_in, endpoints_text,
                                       five_tuples, hash_key, ints, is_group_mac, obj, per_distinct,
                                       rst, syn_ack, syn_only, text)
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.topology.learn import LearnedTopology

MOD32 = 1 << 32
CLIENT_KEY = ["src_ip", "src_port"]
END_MARGIN_NS = 10_000_000

# Column names and kinds per table: the rule loader validates expressions against these.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "to_vip": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int", "dst_port": "int",
        "seq": "int", "ack": "int", "tcp_flags": "int", "ip_id": "int", "payload_len": "int",
        "ttl": "int", "src_mac": "str", "dst_mac": "str", "leg": "str", "dst_is_rs": "bool",
        "src_is_director": "bool", "dst_is_director": "bool", "real_server": "str",
    },
    "forwards": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "vip": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int",
        "dst_port": "int", "seq": "int", "ack": "int", "tcp_flags": "int", "syn": "bool",
        "ip_id": "int", "payload_len": "int", "ttl": "int", "src_mac": "str", "dst_mac": "str",
        "has_copy": "bool", "copy_point": "str", "copy_frame": "int", "copy_ts_ns": "int",
        "copy_src_mac": "str", "copy_dst_mac": "str", "copy_src_ip": "str", "copy_dst_ip": "str",
        "copy_src_port": "int", "copy_dst_port": "int", "copy_ack": "int", "copy_tcp_flags": "int",
        "copy_ip_id": "int", "copy_payload_len": "int", "copy_ttl": "int", "ttl_drop": "int",
        "delay_us": "float", "copy_dst_is_rs": "bool", "copy_src_is_director": "bool",
        "real_server": "str", "coalesced": "bool", "copies": "int", "copy_ttls": "int",
        "likely_cause": "str", "in_capture_span": "bool",
    },
    "replies": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "flow_id": "int",
        "five_tuple": "str", "vip": "str", "src_ip": "str", "dst_ip": "str", "src_port": "int",
        "dst_port": "int", "seq": "int", "ack": "int", "tcp_flags": "int", "ttl": "int",
        "ip_id": "int", "payload_len": "int",
        "src_mac": "str", "dst_mac": "str", "from_vip": "bool", "from_director": "bool",
        "to_director": "bool", "real_server": "str",
    },
    "arp": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "five_tuple": "str",
        "seq": "int", "kind": "str", "sender_ip": "str", "target_ip": "str", "about_vip": "bool",
        "vip": "str", "claimer_mac": "str", "src_mac": "str", "is_director": "bool",
        "is_rs": "bool", "real_server": "str", "claimer": "str", "changed": "bool",
        "failover": "bool", "director_changes": "int", "match_filter": "str", "likely_cause": "str",
    },
    "flows": {
        "point": "str", "frame": "int", "ts_ns": "int", "flow_id": "int", "five_tuple": "str",
        "seq": "int", "client_ip": "str", "client_port": "int", "vip": "str", "real_server": "str",
        "rs_count": "int", "syn_seen": "bool", "syn_forwarded": "bool", "synack_seen": "bool",
        "syn_retransmits": "int", "rst_from_vip": "bool", "refused": "bool", "packets_in": "int",
        "packets_out": "int", "forward_delay_us": "float", "response_us": "float",
        "likely_cause": "str", "in_capture_span": "bool",
    },
    "points": {
        "point": "str", "role": "str", "frame": "int", "ts_ns": "int", "five_tuple": "str",
        "seq": "int", "file": "str", "frames": "int", "decoded": "int", "empty_expected": "bool",
        "error": "str",
        "kernel_drops": "int", "truncated": "int", "overlaps": "bool", "clock_offset_us": "float",
        "problem": "str",
    },
}


def _empty(table: str) -> pd.DataFrame:
    kinds = {"str": object, "int": np.int64, "float": np.float64, "bool": bool}
    return pd.DataFrame({c: pd.Series([], dtype=kinds[k]) for c, k in TABLE_COLUMNS[table].items()})


def _finish(df: pd.DataFrame, table: str) -> pd.DataFrame:
    if len(df) == 0:
        return _empty(table)
    out = df[list(TABLE_COLUMNS[table])].reset_index(drop=True)
    for col, kind in TABLE_COLUMNS[table].items():
        if kind == "str" and out[col].dtype != object:
            out[col] = obj(out[col].to_numpy(dtype=object, na_value=""))
        elif (kind == "int" and isinstance(out[col].dtype, np.dtype)
              and out[col].dtype.kind == "i" and out[col].dtype.itemsize < 8):
            # the TCP view's narrow integers: tables keep one integer type
            out[col] = out[col].to_numpy(dtype=np.int64)
    return out


def _text(df: pd.DataFrame, values) -> pd.Series:
    """A str column for `df` kept as object: assigning a plain array would make pandas 3 infer its
    arrow str dtype, which _finish turns back into one new str object per row."""
    return pd.Series(np.asarray(values, dtype=object), index=df.index, dtype=object)


def _map_values(values, mapping: dict, default: str) -> np.ndarray:
    """mapping[value] per row (default where absent), looked up once per distinct value; the
    results are shared objects, not one new str per row."""
    codes, distinct = pd.factorize(pd.Series(values) if not isinstance(values, pd.Series)
                                   else values, use_na_sentinel=False)
    table = np.array([mapping.get(v, default) if isinstance(v, str) else default
                      for v in distinct] + [default], dtype=object)
    return table[codes]


def _lookup(s: pd.Series, mapping: dict) -> np.ndarray:
    """Map values through a dict; '' where absent (an empty dict must not give floats)."""
    return _map_values(s, mapping, "")


def _roles(points: pd.Series, topo: LearnedTopology) -> np.ndarray:
    return _map_values(points, topo.roles, "unknown")


def flow_endpoints(tov: pd.DataFrame) -> pd.DataFrame:
    """One row per connection (client ip:port -> VIP ip:port), flow ids by first appearance."""
    if len(tov) == 0:
        return pd.DataFrame({"conn": pd.Series([], dtype=np.uint64), "client_ip": [], "client_port": [],
                             "vip_ip": [], "vip_port": [], "flow_id": [], "first_ts": []})
    conn = hash_key(tov, CONN_KEY)
    # integer ids in order of first appearance; each connection's first row gives its endpoints
    codes = pd.factorize(conn)[0]
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(codes > np.concatenate(([-1], seen[:-1])))
    first_ts = pd.Series(tov["ts"].to_numpy(dtype=np.int64)).groupby(codes).min().to_numpy()
    client_port = tov["src_port"].to_numpy()[first]
    order = np.lexsort((client_port, first_ts))          # by first time, then client port
    rows = first[order]
    f = pd.DataFrame({
        "conn": conn[rows],
        "client_ip": obj(tov["src_ip"].take(rows).to_numpy(dtype=object)),
        "client_port": client_port[order],
        "vip_ip": obj(tov["dst_ip"].take(rows).to_numpy(dtype=object)),
        "vip_port": tov["dst_port"].to_numpy()[rows],
        "first_ts": first_ts[order]})
    f["flow_id"] = np.arange(1, len(f) + 1, dtype=np.int64)
    return f


def to_vip_table(tov: pd.DataFrame, topo: LearnedTopology, conns: pd.DataFrame) -> pd.DataFrame:
    if len(tov) == 0:
        return _empty("to_vip")
    t = tov.copy(deep=False)  # copy-on-write: new columns never reach the caller's tov
    t["role"] = _text(t, _roles(t["point"], topo))
    t["flow_id"] = pd.Series(hash_key(tov, CONN_KEY)).map(
        dict(zip(conns["conn"], conns["flow_id"]))).fillna(-1).to_numpy(dtype=np.int64)
    t["five_tuple"] = _text(t, five_tuples(t["src_ip"], t["src_port"].to_numpy(), t["dst_ip"],
                                           t["dst_port"].to_numpy()))
    dmacs, rs_names = topo.director_macs, topo.rs_name_by_mac()
    t["src_is_director"] = t["src_mac"].isin(dmacs).to_numpy()
    t["dst_is_director"] = t["dst_mac"].isin(dmacs).to_numpy()
    t["dst_is_rs"] = t["dst_mac"].isin(set(rs_names)).to_numpy()
    t["real_server"] = _text(t, _lookup(t["dst_mac"], rs_names))
    ingress = t["dst_mac"].isin(topo.director_in) & ~t["src_mac"].isin(
        topo.director_out - topo.director_in)
    forwarded = t["src_is_director"] & ~t["dst_is_director"]
    leg = np.full(len(t), "other", dtype=object)
    leg[forwarded.to_numpy(dtype=bool)] = "forwarded"
    leg[ingress.to_numpy(dtype=bool)] = "ingress"
    t["leg"] = _text(t, leg)
    return _finish(t, "to_vip")


def _spans(pk: pd.DataFrame) -> dict[str, tuple[int, int]]:
    if len(pk) == 0:
        return {}
    points = pk["point"]
    if not isinstance(points.dtype, pd.CategoricalDtype):
        points = points.astype("category")
    # min/max time per point code by scatter (no per-frame point strings, no groupby)
    codes = points.cat.codes.to_numpy().astype(np.intp)
    names = np.asarray(points.cat.categories, dtype=object)
    ts = pk["ts"].to_numpy(dtype=np.int64)
    ok = codes >= 0
    codes, ts = codes[ok], ts[ok]
    lo = np.full(len(names), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(names), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, codes, ts)
    np.maximum.at(hi, codes, ts)
    seen = np.bincount(codes, minlength=len(names)) > 0
    return {str(names[i]): (int(lo[i]), int(hi[i])) for i in np.flatnonzero(seen)}


def _adjusted_ts(pk: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The clock-adjusted ts of `rows` (which carry point and raw ts_ns): prepare shifts each
    point's ts_ns by one offset, read back here from one frame per point of `pk`."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    ts_ns = rows["ts_ns"].to_numpy(dtype=np.int64)
    points = pk["point"]
    if isinstance(points.dtype, pd.CategoricalDtype):
        codes = points.cat.codes.to_numpy()
        names = pd.Index(np.asarray(points.cat.categories, dtype=object), dtype=object)
    else:
        codes, uniq = pd.factorize(points.to_numpy(dtype=object))
        names = pd.Index(np.asarray(uniq, dtype=object), dtype=object)
    present, first = np.unique(codes, return_index=True)
    shift = np.zeros(len(names), dtype=np.int64)
    ok = present >= 0
    shift[present[ok]] = (pk["ts_ns"].to_numpy(dtype=np.int64)[first[ok]]
                          - pk["ts"].to_numpy(dtype=np.int64)[first[ok]])
    if not shift.any():
        return ts_ns.copy()          # no clock correction applied: ts is ts_ns
    at = names.get_indexer(rows["point"].to_numpy(dtype=object))
    if (at < 0).any():
        raise KeyError("to_vip rows of a point missing from the packets table")
    return ts_ns - shift[at]


def in_capture_span(ts: np.ndarray, capture_span: tuple[int, int] | None,
                    window_ns: int) -> np.ndarray:
    """Whether each (clock-adjusted) time lies where a counterpart at another point could be
    captured: inside the span in which every point was capturing (the manifest's started /
    stopped), at least a window before its end. The counterparts judged here (forwarded copy,
    SYN-ACK) follow the packet by at most the window, so at the start only clock differences
    within the tolerance need a margin (a window there would drop the first half second of
    every lab capture, whose traffic starts as soon as all points listen)."""
    if capture_span is None:
        return np.ones(len(ts), dtype=bool)
    lo, hi = capture_span
    return (ts >= lo + CLOCK_TOLERANCE_NS) & (ts <= hi - window_ns)


def forwards_table(tv: pd.DataFrame, tovt: pd.DataFrame, pk: pd.DataFrame, topo: LearnedTopology,
                   window_ns: int, capture_span: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per client->VIP frame arriving at the director where a copy could be seen, with
    the forwarded copy (or none). Matched on the loose key, then by seq range (GRO/TSO).
    capture_span: (started, stopped) ns of the set, when known (see in_capture_span)."""
    role = tovt["role"]
    ing = tovt[(tovt["leg"] == "ingress") & role.isin(["vip-segment", "both"])]
    rs_points = [p for p, r in topo.roles.items() if r in ("rs-segment", "both")]
    spans = _spans(pk)
    observable = np.zeros(len(ing), dtype=bool)
    # tovt holds raw ts_ns; the clock-adjusted ts is ts_ns less its point's offset
    ts_adj = _adjusted_ts(pk, ing)
    # A copy can be seen while a real-server-side point captures. Points captured together (their
    # spans overlap) are taken to run over the set's whole span, less a margin at the end where
    # one tcpdump may stop before another.
    if spans:
        set_lo = min(lo for lo, _ in spans.values())
        set_hi = max(hi for _, hi in spans.values())
    for p in rs_points:
        if not spans:
            break
        if p not in spans:
            # an empty real-server-side point captured with the others: nothing crossed it
            observable |= (ts_adj >= set_lo) & (ts_adj <= set_hi - END_MARGIN_NS)
            continue
        lo, hi = spans[p]
        together = any(olo <= hi and lo <= ohi for q, (olo, ohi) in spans.items()
                       if q != p and topo.roles.get(q) in ("vip-segment", "both"))
        if together or topo.roles.get(p) == "both":
            lo, hi = min(lo, set_lo), max(hi, set_hi - END_MARGIN_NS)
        observable |= (ts_adj >= lo) & (ts_adj <= hi)
    ing = ing[observable]
    ing["ts"] = ts_adj[observable]
    if len(ing) == 0:
        return _empty("forwards")
    ing["lkey"] = hash_key(ing, LOOSE_KEY)
    # candidates are found by client endpoint only: a copy whose VIP or port was rewritten must
    # still be found (DR002 names the change instead of DR007 calling it lost)
    ing["conn"] = hash_key(ing, CLIENT_KEY)

    vips = topo.vips
    # Candidates are kept as positions in tv with their keys, hashed from the key columns alone:
    # the rows are copied once, for `cand` (and for all of a connection's frames only when the
    # GRO/TSO pass below needs them), not three times in successive filters.
    all_pos = np.flatnonzero(tv["point"].isin(rs_points).to_numpy()
                             & ~tv["dst_mac"].isin(topo.director_in).to_numpy()
                             & ~endpoint_in(tv["src_ip"], tv["src_port"], vips))
    all_conn = hash_key(tv[CLIENT_KEY].iloc[all_pos], CLIENT_KEY)
    kept = pd.Series(all_conn).isin(ing["conn"]).to_numpy()
    all_pos, all_conn = all_pos[kept], all_conn[kept]
    all_lkey = hash_key(tv[LOOSE_KEY].iloc[all_pos], LOOSE_KEY)
    picked = pd.Series(all_lkey).isin(ing["lkey"]).to_numpy()
    cand = tv.iloc[all_pos[picked]].assign(conn=all_conn[picked], lkey=all_lkey[picked])

    copy_cols = ["point", "frame", "ts_ns", "ts", "src_mac", "dst_mac", "src_ip", "dst_ip",
                 "src_port", "dst_port", "ack", "tcp_flags", "ip_id", "payload_len", "ttl", "row"]
    # Pass 1 keys on the IP ID too, so a retransmission is not taken for the copy of a dropped
    # original; pass 2 (loose key, copies not yet taken) finds copies whose IP ID was changed.
    # Nearest in time: an uncorrected clock offset may put the copy "before" its original.
    ing = ing.reset_index(drop=True)
    ing["ikey"] = hash_key(ing, LOOSE_KEY + ["ip_id"])
    cand = cand.assign(ikey=hash_key(cand, LOOSE_KEY + ["ip_id"]))
    # The matching moves only keys, times and positions; the copy's columns are gathered once
    # at the end (merging whole tables copied every column of every frame several times).
    right = pd.DataFrame({"ikey": cand["ikey"].to_numpy(), "lkey": cand["lkey"].to_numpy(),
                          "copy_ts": cand["ts"].to_numpy(dtype=np.int64),
                          "copy_row": cand["row"].to_numpy(dtype=np.int64),
                          "rpos": np.arange(len(cand), dtype=np.int64)})
    right = right.sort_values("copy_ts", kind="stable")
    left = pd.DataFrame({"ts": ing["ts"].to_numpy(dtype=np.int64), "ikey": ing["ikey"].to_numpy(),
                         "lkey": ing["lkey"].to_numpy(),
                         "lpos": np.arange(len(ing), dtype=np.int64)})
    left = left.sort_values("ts", kind="stable")
    m1 = pd.merge_asof(left, right.drop(columns="lkey"), left_on="ts", right_on="copy_ts",
                       by="ikey", direction="nearest", tolerance=window_ns)
    found = m1["rpos"].notna().to_numpy()
    free = ~right["copy_row"].isin(m1.loc[found, "copy_row"]).to_numpy()
    rest = m1.loc[~found, list(left.columns)]
    m2 = pd.merge_asof(rest, right[free].drop(columns="ikey"), left_on="ts", right_on="copy_ts",
                       by="lkey", direction="nearest", tolerance=window_ns)
    mm = pd.concat([m1[found], m2], ignore_index=True).sort_values("ts", kind="stable")
    rpos = mm["rpos"].to_numpy(dtype=float)
    has = ~np.isnan(rpos)
    at = np.where(has, rpos, 0).astype(np.int64)[has]
    m = ing.iloc[mm["lpos"].to_numpy(dtype=np.int64)].reset_index(drop=True)
    del m1, m2, mm, rest, left
    for c in copy_cols:
        if c in ("point", "src_mac", "dst_mac", "src_ip", "dst_ip"):
            values = np.full(len(m), "", dtype=object)
            values[has] = cand[c].to_numpy(dtype=object)[at]
            m["copy_" + c] = _text(m, values)
        else:
            values = np.full(len(m), -1, dtype=np.int64)
            values[has] = cand[c].to_numpy(dtype=np.int64)[at]
            m["copy_" + c] = values
    m["has_copy"] = has
    m["coalesced"] = has & (m["copy_payload_len"] != m["payload_len"]).to_numpy()

    # GRO/TSO: frames with no exact copy, covered by the seq range of one copy of their connection
    if (~m["has_copy"]).any() and len(all_pos):
        cand_all = tv.iloc[all_pos].assign(conn=all_conn, lkey=all_lkey)
        base = (pd.concat([ing[["conn", "ts", "seq"]], cand_all[["conn", "ts", "seq"]]])
                .sort_values("ts", kind="stable").groupby("conn")["seq"].first())
        miss = m[~m["has_copy"] & (m["payload_len"] > 0)].copy()
        if len(miss):
            miss["rseq"] = (miss["seq"] - miss["conn"].map(base)) % MOD32
            ca = cand_all.copy(deep=False)
            ca["rseq"] = (ca["seq"] - ca["conn"].map(base)) % MOD32
            rr = ca[["conn", "rseq"] + copy_cols].rename(columns={c: "copy_" + c for c in copy_cols})
            rr["copy_rseq"] = rr["rseq"]
            rr = rr.sort_values("rseq", kind="stable")
            lm = miss.drop(columns=[c for c in miss.columns if c.startswith("copy_")])
            lm = lm.sort_values("rseq", kind="stable").reset_index()
            g = pd.merge_asof(lm, rr, on="rseq", by="conn", direction="backward")
            found = g["copy_frame"].notna().to_numpy()
            end_ok = (g["copy_rseq"].to_numpy(dtype=float) + g["copy_payload_len"].to_numpy(dtype=float)
                      >= g["rseq"].to_numpy(dtype=float) + g["payload_len"].to_numpy(dtype=float))
            near = (np.abs(g["copy_ts"].to_numpy(dtype=float) - g["ts"].to_numpy(dtype=float))
                    <= window_ns)
            # coalesced means the copy carries more than this segment; an equal one is another
            # packet (a retransmission forwarded while this one was dropped)
            bigger = (g["copy_payload_len"].to_numpy(dtype=float)
                      > g["payload_len"].to_numpy(dtype=float))
            ok = found & end_ok & near & bigger
            hit = g[ok].set_index("index")
            rows = hit.index.intersection(m.index)
            for c in ["copy_" + c for c in copy_cols]:
                if m[c].dtype == object:
                    m.loc[rows, c] = hit[c].astype(object)
                else:
                    m.loc[rows, c] = hit[c].to_numpy(dtype=np.int64)
            m.loc[hit.index, "has_copy"] = True
            m.loc[hit.index, "coalesced"] = True

    # repeated forwarding (loops): distinct TTLs of the copies of one packet at one point
    if len(cand):
        copy_ttls, copies = _copy_counts(cand["lkey"].to_numpy(dtype=np.uint64),
                                         cand["point"].to_numpy(dtype=object),
                                         cand["ttl"].to_numpy(dtype=np.int64),
                                         m["lkey"].to_numpy(dtype=np.uint64))
        m["copy_ttls"] = copy_ttls
        m["copies"] = copies
    else:
        m["copy_ttls"] = 0
        m["copies"] = 0

    hc = m["has_copy"].to_numpy(dtype=bool)
    for c in ["copy_point", "copy_src_mac", "copy_dst_mac", "copy_src_ip", "copy_dst_ip"]:
        m[c] = m[c].astype(object).where(hc & m[c].notna().to_numpy(), "")
    for c in ["copy_frame", "copy_ts_ns", "copy_src_port", "copy_dst_port", "copy_ack",
              "copy_tcp_flags", "copy_ip_id", "copy_payload_len", "copy_ttl", "copy_ts"]:
        m[c] = pd.to_numeric(m[c]).where(hc, -1).fillna(-1).astype(np.int64)
    m["ttl_drop"] = np.where(hc, m["ttl"] - m["copy_ttl"], 0).astype(np.int64)
    m["delay_us"] = np.where(hc, (m["copy_ts"] - m["ts"]) / 1000.0, np.nan)
    rs_names = topo.rs_name_by_mac()
    dmacs = topo.director_macs
    cdst = m["copy_dst_mac"]
    m["copy_dst_is_rs"] = (hc & ~cdst.isin(dmacs).to_numpy() & ~is_group_mac(cdst)
                           & ~cdst.isin(topo.client_macs).to_numpy() & cdst.isin(rs_names).to_numpy())
    m["copy_src_is_director"] = hc & m["copy_src_mac"].isin(topo.director_out).to_numpy()
    m["real_server"] = _text(m, _lookup(cdst, rs_names))
    m["syn"] = syn_only(m)
    m["vip"] = _text(m, endpoints_text(m["dst_ip"], m["dst_port"]))
    empty = [p for p in rs_points if p not in spans]
    src_macs = pk["src_mac"]
    senders = set(src_macs.dropna().unique()) | ({""} if src_macs.isna().any() else set())
    m["likely_cause"] = _text(m, _drop_causes(m, empty, senders))
    m["in_capture_span"] = in_capture_span(m["ts"].to_numpy(dtype=np.int64), capture_span,
                                           window_ns)
    m = m.sort_values(["ts", "point", "frame"], kind="stable")
    return _finish(m, "forwards")


def _copy_counts(lkey: np.ndarray, point: np.ndarray, ttl: np.ndarray,
                 wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per `wanted` loose key: the most distinct TTLs its copies show at one point, and how many
    copies it has (0 where it has none). Hashed integer ids and bincounts, no sort, no groupby."""
    kc, uniq_keys = pd.factorize(lkey)
    pc = pd.factorize(point)[0].astype(np.int64)
    n_keys, n_points = len(uniq_keys), (int(pc.max()) + 1 if len(pc) else 1)
    pair = kc.astype(np.int64) * n_points + pc
    # ttl is 0..255, or -1 where unknown: 257 slots per (key, point)
    triples = pd.unique(pair * 257 + (ttl + 1))
    per_pair = np.bincount(triples // 257, minlength=n_keys * n_points)
    ttls_per_key = per_pair.reshape(n_keys, n_points).max(axis=1).astype(np.int64)
    copies_per_key = np.bincount(kc, minlength=n_keys).astype(np.int64)
    at = pd.Index(uniq_keys).get_indexer(wanted)
    hit = at >= 0
    at = np.where(hit, at, 0)
    return (np.where(hit, ttls_per_key[at], 0).astype(np.int64),
            np.where(hit, copies_per_key[at], 0).astype(np.int64))


def _drop_causes(m: pd.DataFrame, empty_points: list[str], senders: set[str]) -> np.ndarray:
    """One line per frame: why the director most likely did not forward it."""
    hc = m["has_copy"].astype(bool)
    vip_any = hc.groupby(m["vip"]).transform("any").to_numpy()
    syn_fwd = (hc & m["syn"]).groupby(m["flow_id"]).transform("any").to_numpy()
    nothing = ("the director forwards nothing for this VIP:port: no IPVS virtual service or no "
               "available real server for it (check ipvsadm -Ln)")
    if empty_points:
        nothing += (f"; {', '.join(empty_points)} captured no frame at all (or that capture is "
                    "on the wrong interface)")
    # frames addressed to a MAC that never sends anything: no host owns it any more
    silent = ~m["dst_mac"].isin(senders).to_numpy()
    lost = ~hc.to_numpy()
    syn = m["syn"].to_numpy(dtype=bool)
    # object arrays filled by mask: np.where over str constants would build a fixed-width
    # unicode array of the longest message for every frame
    causes = np.full(len(m), "", dtype=object)
    causes[lost] = ("dropped by the director after forwarding others: check its conntrack "
                    "'ct state invalid' drop rules, rp_filter and the real server's health")
    causes[lost & ~syn & ~syn_fwd] = (
        "mid-connection packet of a connection the director holds no state for: "
        "conntrack marked it INVALID and a 'ct state invalid drop' rule dropped it")
    causes[lost & ~vip_any] = nothing
    stale = lost & ~vip_any & silent
    if stale.any():
        causes[stale] = per_distinct(
            [m.loc[stale, "dst_mac"]],
            lambda macs: ("addressed to " + pd.Series(np.asarray(macs, dtype=object), dtype=object)
                          + ", a MAC that sent no frame in the capture: the client's "
                          "ARP/neighbour entry for the VIP is stale (a former director?); flush "
                          "it (ip neigh flush) and have the director send gratuitous ARP"
                          ).to_numpy(dtype=object))
    return causes


def replies_table(tv: pd.DataFrame, topo: LearnedTopology, conns: pd.DataFrame) -> pd.DataFrame:
    """Packets toward a VIP connection's client from the VIP's port (from the VIP or elsewhere)."""
    if len(conns) == 0 or len(tv) == 0:
        return _empty("replies")
    ends = conns[["client_ip", "client_port", "vip_ip", "vip_port", "flow_id"]]
    # only frames that can match (from a VIP port to a client address) go into the merge; an
    # inner merge keeps the left order, so the result is the same
    maybe = (tv["src_port"].isin(ends["vip_port"].unique()).to_numpy()
             & tv["dst_ip"].isin(ends["client_ip"].unique()).to_numpy())
    r = tv[maybe].merge(ends, left_on=["dst_ip", "dst_port", "src_port"],
                 right_on=["client_ip", "client_port", "vip_port"], how="inner")
    if len(r) == 0:
        return _empty("replies")
    r["from_vip"] = (r["src_ip"] == r["vip_ip"]).to_numpy()
    # a client talking to two VIPs on one port from one port: keep the matching VIP
    r = r.sort_values("from_vip", ascending=False, kind="stable").drop_duplicates(["point", "frame"])
    r["role"] = _text(r, _roles(r["point"], topo))
    r["five_tuple"] = _text(r, five_tuples(r["src_ip"], r["src_port"].to_numpy(), r["dst_ip"],
                                           r["dst_port"].to_numpy()))
    r["vip"] = _text(r, endpoints_text(r["vip_ip"], r["vip_port"]))
    dmacs = topo.director_macs
    r["from_director"] = r["src_mac"].isin(dmacs).to_numpy()
    r["to_director"] = r["dst_mac"].isin(dmacs).to_numpy()
    r["real_server"] = _text(r, _lookup(r["src_mac"], topo.rs_name_by_mac()))
    r = r.sort_values(["ts", "point", "frame"], kind="stable")
    return _finish(r, "replies")


def arp_table(pk: pd.DataFrame, topo: LearnedTopology) -> pd.DataFrame:
    """Every ARP and IPv6 neighbour discovery frame: who claims or uses which address.

    sender_ip is the address the frame vouches for: ARP sender, NA target, NS source. Claims of a
    VIP (ARP reply / gratuitous ARP / NA) are tracked per VIP for owner changes."""
    if len(pk) == 0:
        return _empty("arp")
    vip_ips = topo.vip_ips
    arp = pk[pk["arp_op"].notna().to_numpy()]
    op = ints(arp["arp_op"])
    sender, target = text(arp["arp_sender_ip"]), text(arp["arp_target_ip"])
    a = pd.DataFrame({
        "point": arp["point"].astype(object).to_numpy(), "frame": arp["frame"].to_numpy(np.int64),
        "ts_ns": arp["ts_ns"].to_numpy(np.int64), "ts": arp["ts"].to_numpy(np.int64),
        "kind": np.where(op == 2, "reply", np.where(sender.to_numpy() == target.to_numpy(),
                                                      "gratuitous", "request")),
        "sender_ip": sender.to_numpy(), "claimer_mac": text(arp["arp_sender_mac"]).to_numpy(),
        "src_mac": text(arp["src_mac"]).to_numpy(), "target_ip": target.to_numpy(),
        "five_tuple": ("arp " + sender + " -> " + target).to_numpy()})
    a["match_filter"] = np.where(
        op == 2, "arp.opcode == 2 && arp.src.proto_ipv4 == " + a["sender_ip"],
        "arp.opcode == 1 && arp.src.proto_ipv4 == " + a["sender_ip"] + " && arp.src.hw_mac == "
        + a["claimer_mac"])
    icmp = ints(pk["icmp_type"])
    nd = pk[(icmp == 135) | (icmp == 136)]
    nd_na = ints(nd["icmp_type"]) == 136
    lladdr = text(nd["nd_lladdr"])
    claimer = lladdr.where(lladdr != "", text(nd["src_mac"]))
    ndt = text(nd["nd_target"])
    who = ndt.where(pd.Series(nd_na, index=nd.index), text(nd["src_ip"]))
    n = pd.DataFrame({
        "point": nd["point"].astype(object).to_numpy(), "frame": nd["frame"].to_numpy(np.int64),
        "ts_ns": nd["ts_ns"].to_numpy(np.int64), "ts": nd["ts"].to_numpy(np.int64),
        "kind": np.where(nd_na, "na", "ns"), "sender_ip": who.to_numpy(),
        "claimer_mac": claimer.to_numpy(), "src_mac": text(nd["src_mac"]).to_numpy(),
        "target_ip": ndt.to_numpy(),
        "five_tuple": ("icmpv6 " + pd.Series(np.where(nd_na, "na ", "ns "), index=nd.index)
                       + ndt).to_numpy()})
    n["match_filter"] = np.where(
        nd_na, "icmpv6.type == 136 && icmpv6.nd.na.target_address == " + n["target_ip"],
        "icmpv6.type == 135 && ipv6.src == " + n["sender_ip"] + " && eth.src == " + n["src_mac"])
    t = pd.concat([a, n], ignore_index=True)
    if len(t) == 0:
        return _empty("arp")
    t["role"] = _roles(t["point"], topo)
    t["seq"] = -1
    t["about_vip"] = t["sender_ip"].isin(vip_ips).to_numpy()
    t["vip"] = t["sender_ip"].where(t["about_vip"], "")
    dmacs = topo.director_macs
    rs_names = topo.rs_name_by_mac()
    t["is_director"] = t["claimer_mac"].isin(dmacs).to_numpy()
    t["is_rs"] = t["claimer_mac"].isin(set(rs_names)).to_numpy()
    t["real_server"] = _lookup(t["claimer_mac"], rs_names)
    t = t.sort_values(["ts", "point", "frame"], kind="stable").reset_index(drop=True)
    claim = (t["about_vip"] & t["kind"].isin(["reply", "gratuitous", "na"])).to_numpy()
    c = t[claim]
    prev_mac = c.groupby("vip")["claimer_mac"].shift(1)
    prev_dir = c.groupby("vip")["is_director"].shift(1)
    changed = (prev_mac.notna() & (prev_mac != c["claimer_mac"])).to_numpy(dtype=bool)
    failover = changed & c["is_director"].to_numpy() & prev_dir.fillna(False).astype(bool).to_numpy()
    t["changed"] = False
    t["failover"] = False
    t.loc[c.index, "changed"] = changed
    t.loc[c.index, "failover"] = failover
    t["director_changes"] = t.groupby("vip")["failover"].transform("sum").astype(np.int64)
    t["claimer"] = np.where(t["is_director"], "director",
                            np.where(t["is_rs"], "real server " + t["real_server"], "unknown host"))
    t["likely_cause"] = _arp_causes(t, prev_mac.reindex(t.index))
    return _finish(t, "arp")


def _arp_causes(t: pd.DataFrame, prev_claimer: pd.Series) -> np.ndarray:
    """One line per ARP/ND frame: what a VIP claim or a request from the VIP most likely means."""
    mac, vip = t["claimer_mac"], t["vip"]
    request = t["kind"].isin(["request", "ns"]).to_numpy()
    rs_claim = (t["claimer"] + " (" + mac + ") answers ARP/ND for the VIP " + vip + ": set "
                "arp_ignore=1 and arp_announce=2 on its VIP-segment interface (VIP on lo only)")
    stranger = ("unknown host " + mac + " claims the VIP " + vip + ": an address conflict; find "
                "it with arping -D and remove the VIP there")
    failover = ("the VIP " + vip + " moved from director " + prev_claimer.fillna("?").astype(str)
                + " to " + mac + ": a director failover (one change is a warning; more mean two "
                "directors claim it: check keepalived priorities and VRRP)")
    announce = (t["claimer"] + " (" + mac + ") sends ARP requests from the VIP " + vip + ": set "
                "arp_announce=2 on that real server's interfaces")
    out = np.where(request, announce,
                   np.where(t["failover"], failover,
                            np.where(t["is_rs"], rs_claim, np.where(t["is_director"], "", stranger))))
    return np.asarray(out, dtype=object)


def flows_table(conns: pd.DataFrame, tovt: pd.DataFrame, fw: pd.DataFrame,
                rp: pd.DataFrame) -> pd.DataFrame:
    if len(conns) == 0:
        return _empty("flows")
    f = conns.set_index("flow_id")
    # only the columns used here: every filter below would otherwise copy whole tables
    tovt = tovt[["flow_id", "point", "frame", "ts_ns", "seq", "tcp_flags", "leg"]]
    fw = fw[["flow_id", "has_copy", "syn", "copy_dst_is_rs", "real_server", "delay_us",
             "copy_ts_ns", "in_capture_span"]]
    rp = rp[["flow_id", "point", "role", "ts_ns", "tcp_flags", "from_vip", "real_server"]]
    ing = tovt[tovt["leg"] == "ingress"]
    syn_in = ing[syn_only(ing)]
    first_syn = syn_in.sort_values("ts_ns", kind="stable").drop_duplicates("flow_id").set_index("flow_id")
    first_any = tovt.sort_values("ts_ns", kind="stable").drop_duplicates("flow_id").set_index("flow_id")
    pick = first_syn.reindex(f.index)
    fallback = first_any.reindex(f.index)
    out = pd.DataFrame(index=f.index)
    out["point"] = pick["point"].fillna(fallback["point"]).fillna("").astype(object)
    out["frame"] = pick["frame"].fillna(fallback["frame"]).fillna(-1).astype(np.int64)
    out["ts_ns"] = pick["ts_ns"].fillna(fallback["ts_ns"]).fillna(-1).astype(np.int64)
    out["seq"] = pick["seq"].fillna(fallback["seq"]).fillna(-1).astype(np.int64)
    out["client_ip"] = f["client_ip"]
    out["client_port"] = f["client_port"].astype(np.int64)
    out["vip"] = _text(out, endpoints_text(f["vip_ip"], f["vip_port"]))
    out["five_tuple"] = _text(out, five_tuples(f["client_ip"], f["client_port"].to_numpy(),
                                               f["vip_ip"], f["vip_port"].to_numpy()))
    # count SYNs per point and keep the busiest point: the same SYN seen at two points is one
    syn_counts = syn_in.groupby(["flow_id", "point"]).size().groupby(level=0).max()
    out["syn_seen"] = syn_counts.reindex(f.index).fillna(0).to_numpy() > 0
    out["syn_retransmits"] = (syn_counts.reindex(f.index).fillna(1) - 1).clip(lower=0).astype(np.int64)
    fwc = fw[fw["has_copy"]]
    out["syn_forwarded"] = fwc[fwc["syn"]].groupby("flow_id").size().reindex(f.index).fillna(0).to_numpy() > 0
    # a forwarded SYN near the capture's edges may have its SYN-ACK outside it: not judged
    spanned = fwc[fwc["syn"] & fwc["in_capture_span"]].groupby("flow_id").size()
    out["in_capture_span"] = (~out["syn_forwarded"].to_numpy()
                              | (spanned.reindex(f.index).fillna(0).to_numpy() > 0))
    rs = fwc[fwc["copy_dst_is_rs"]]
    out["rs_count"] = rs.groupby("flow_id")["real_server"].nunique().reindex(f.index).fillna(0).astype(np.int64)
    # the real server most copies of the flow went to (vectorised mode)
    per = rs.groupby(["flow_id", "real_server"]).size().reset_index(name="n")
    per = per.sort_values(["flow_id", "n"], ascending=[True, False], kind="stable")
    chosen = per.drop_duplicates("flow_id").set_index("flow_id")["real_server"]
    rp_rs = rp[rp["real_server"] != ""]
    from_rep = rp_rs.groupby("flow_id")["real_server"].first() if len(rp_rs) else pd.Series(dtype=object)
    out["real_server"] = chosen.reindex(f.index).fillna(from_rep.reindex(f.index)).fillna("").astype(object)
    vip_rep = rp[rp["from_vip"]]
    sa = vip_rep[syn_ack(vip_rep)]
    out["synack_seen"] = sa.groupby("flow_id").size().reindex(f.index).fillna(0).to_numpy() > 0
    out["rst_from_vip"] = vip_rep[rst(vip_rep)].groupby("flow_id").size().reindex(f.index).fillna(0).to_numpy() > 0
    out["refused"] = out["rst_from_vip"] & ~out["synack_seen"]
    out["packets_in"] = ing.groupby(["flow_id", "point"]).size().groupby(level=0).max().reindex(f.index).fillna(0).astype(np.int64)
    vseg = rp[rp["role"].isin(["vip-segment", "both"])]
    out["packets_out"] = vseg.groupby(["flow_id", "point"]).size().groupby(level=0).max().reindex(f.index).fillna(0).astype(np.int64)
    out["forward_delay_us"] = fwc.groupby("flow_id")["delay_us"].median().reindex(f.index).astype(np.float64)
    # server response: forwarded SYN (at the rs side) -> first SYN-ACK from the VIP
    sa_ts = sa.groupby("flow_id")["ts_ns"].min()
    syn_copy_ts = fwc[fwc["syn"]].groupby("flow_id")["copy_ts_ns"].min()
    syn_ts = syn_in.groupby("flow_id")["ts_ns"].min()
    start = syn_copy_ts.reindex(f.index).fillna(syn_ts.reindex(f.index))
    out["response_us"] = ((sa_ts.reindex(f.index) - start) / 1000.0).astype(np.float64)
    rsname = out["real_server"].where(out["real_server"] != "", "the real server")
    out["likely_cause"] = np.where(
        out["refused"], rsname + " answered RST: nothing listens on " + out["vip"]
        + " there (port mismatch between the virtual service and the server)",
        np.where(~out["synack_seen"], rsname + " never answered from the VIP: VIP missing or not /32 "
                 "on its lo, rp_filter strict on its interface, or its reply is routed elsewhere", ""))
    out = out.reset_index()
    return _finish(out, "flows")


def points_table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return _empty("points")
    return _finish(pd.DataFrame(rows), "points")
