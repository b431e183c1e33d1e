"""Derived tables the rules read: to_vip, forwards, replies, arp, flows, points.

Every table is plain columns that never hold NA: text as a pandas Categorical of str (or object
in the small tables), integers as numpy integers with -1 for missing (narrow where the TCP view
is narrow: ports, TTL, flags, lengths), float64 and bool. Each row names where it was seen
(point, frame, ts_ns) for evidence. The big tables are built from row positions, integer keys
and codes: a text is rendered once per distinct value, never per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dr_inspect.correlate.coded import (as_text, categorical, codes_and_values, mapped, member,
                                        take, text_rank, with_default)
from dr_inspect.correlate.keys import (CONN_KEY, LOOSE_KEY, dense_ids, endpoint_in,
                                       endpoints_text, five_tuples, hash_key, ints, is_group_mac,
                                       obj, packet_ids, same_data, text)
from dr_inspect.decode.schema import ACK, PSH, RST, SYN
from dr_inspect.correlate.coverage import tiles_exactly
from dr_inspect.correlate.epochs import epoch_keys, split_epochs
from dr_inspect.correlate.payload import payload_changed
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
        "flags_kept": "bool",
        "delay_us": "float", "copy_dst_is_rs": "bool", "copy_src_is_director": "bool",
        "real_server": "str", "coalesced": "bool", "copies": "int", "copy_ttls": "int",
        "likely_cause": "str", "in_capture_span": "bool", "payload_changed": "bool",
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
        "early_copies": "int", "problem": "str",
    },
}


def _empty(table: str) -> pd.DataFrame:
    kinds = {"str": object, "int": np.int64, "float": np.float64, "bool": bool}
    return pd.DataFrame({c: pd.Series([], dtype=kinds[k]) for c, k in TABLE_COLUMNS[table].items()})


def _finish(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table's columns in contract order: text as a Categorical (or object) without missing
    values, integers as numpy integers (narrow ones stay narrow: the engine widens what a rule
    reads), bools and floats as numpy."""
    if len(df) == 0:
        return _empty(table)
    out = df[list(TABLE_COLUMNS[table])].reset_index(drop=True)
    for col, kind in TABLE_COLUMNS[table].items():
        s = out[col]
        if kind == "str":
            if isinstance(s.dtype, pd.CategoricalDtype):
                if (s.cat.codes.to_numpy() < 0).any():
                    out[col] = as_text(s)
            elif s.dtype != object:
                out[col] = as_text(s)
        elif kind == "int" and not (isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu"):
            out[col] = s.to_numpy(dtype=np.int64, na_value=-1)
    return out


def _ints(s: pd.Series | np.ndarray) -> np.ndarray:
    """A numpy integer column as it is (the TCP view's are plain already), else int64 with -1."""
    if isinstance(s, pd.Series):
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
            return s.to_numpy()
        return ints(s)
    return np.asarray(s)


def _endpoint_text(ips: pd.Series | pd.Categorical, ports: np.ndarray) -> pd.Categorical:
    """'ip:port' per row ('[ip]:port' for IPv6), rendered once per distinct pair."""
    ip_codes, ip_values = codes_and_values(ips)
    # ports are 0..65535, or -1 where missing: 65537 slots per address
    pair = ip_codes.astype(np.int64) * 65537 + (np.asarray(ports, dtype=np.int64) + 1)
    codes, uniq = pd.factorize(pair)
    if len(uniq) == 0:
        return as_text(np.zeros(0, dtype=object))
    uniq = np.asarray(uniq)
    return categorical(codes, endpoints_text(pd.Series(ip_values[uniq // 65537], dtype=object),
                                             uniq % 65537 - 1))


def vip_rows(tv: pd.DataFrame, vips: list[tuple[str, int]]) -> np.ndarray:
    """Positions in the TCP view of the frames to a VIP ip:port (client->VIP, either leg)."""
    return np.flatnonzero(endpoint_in(tv["dst_ip"], tv["dst_port"], vips))


def _at(s: pd.Series, rows: np.ndarray):
    """Rows of one view column: a text column as a Categorical, numbers as a numpy array."""
    return take(s, rows) if isinstance(s.dtype, pd.CategoricalDtype) else s.to_numpy()[rows]


def _address_codes(columns: list[pd.Series]) -> tuple[list[np.ndarray], int] | None:
    """The codes of address columns over one category list (the categoricals' own codes: -1
    where missing) and the number of categories, when the columns share their categories (the
    view's address columns and the connections' do); else None."""
    dtypes = [c.dtype for c in columns]
    if not all(isinstance(d, pd.CategoricalDtype) for d in dtypes) or not all(
            d.categories.equals(dtypes[0].categories) for d in dtypes[1:]):
        return None
    return [c.array.codes for c in columns], len(dtypes[0].categories)


def _conn_ids(tv: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """One id per distinct CONN_KEY of the view's `rows`, numbered in order of first appearance:
    the address codes and ports packed into one exact integer where they fit, else hashed."""
    coded = _address_codes([tv["src_ip"], tv["dst_ip"]])
    # an address code is -1.., a port 0..65535 or -1: both packed + 1
    if coded is None or coded[1] >= 46_000:     # 46001**2 * 65537**2 < 2**63
        return pd.factorize(hash_key(tv[CONN_KEY].iloc[rows], CONN_KEY))[0]
    (src_ip, dst_ip), n_ip = coded
    key = src_ip[rows].astype(np.int64)
    key += 1
    key *= 65537
    key += tv["src_port"].to_numpy()[rows]
    key += 1
    key *= n_ip + 1
    key += dst_ip[rows]
    key += 1
    key *= 65537
    key += tv["dst_port"].to_numpy()[rows]
    key += 1
    return pd.factorize(key)[0]


def flow_endpoints(tv: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per connection (client ip:port -> VIP ip:port) of the view's `rows` (vip_rows),
    flow ids by first appearance, with its 5-tuple and VIP texts; and each row's position in it.
    client_ip and vip_ip keep the view's address dtype."""
    if len(rows) == 0:
        return pd.DataFrame({"client_ip": [], "client_port": [], "vip_ip": [], "vip_port": [],
                             "flow_id": [], "first_ts": [], "client": [], "five_tuple": [],
                             "vip": []}), \
            np.zeros(0, dtype=np.int64)
    # integer ids in order of first appearance; each connection's first row gives its endpoints
    # (a 5-tuple reused by a new SYN is a new connection)
    flags = tv["tcp_flags"].to_numpy()[rows]
    five_tuple_ids = _conn_ids(tv, rows)
    codes = split_epochs(five_tuple_ids, (flags & (SYN | ACK)) == SYN,
                         tv["seq"].to_numpy()[rows], tv["ts"].to_numpy()[rows],
                         CLOCK_TOLERANCE_NS)
    reused = codes is not five_tuple_ids
    del flags, five_tuple_ids
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(codes > np.concatenate(([-1], seen[:-1])))
    first_ts = np.full(len(first), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_ts, codes, tv["ts"].to_numpy(dtype=np.int64)[rows])
    at = rows[first]
    client_port = tv["src_port"].to_numpy()[at]
    order = np.lexsort((client_port, first_ts))          # by first time, then client port
    at = at[order]
    f = pd.DataFrame({
        "client_ip": _at(tv["src_ip"], at),
        "client_port": client_port[order].astype(np.int64),
        "vip_ip": _at(tv["dst_ip"], at),
        "vip_port": tv["dst_port"].to_numpy()[at].astype(np.int64),
        "first_ts": first_ts[order]})
    f["flow_id"] = np.arange(1, len(f) + 1, dtype=np.int64)
    client = _endpoints(f["client_ip"], f["client_port"].to_numpy())
    # text columns as Categoricals the tables take their rows' texts from by connection
    # position (one category per connection for the 5-tuple; the few VIPs for vip)
    vip = _endpoint_text(f["vip_ip"], f["vip_port"].to_numpy())
    f["client"] = obj(client)
    # distinct 5-tuples render distinct texts (the connections of a reused one share its text)
    f["five_tuple"] = categorical(np.arange(len(f)), [
        f"tcp {c} -> {v}" for c, v in zip(client, np.asarray(vip, dtype=object))],
        distinct=not reused)
    f["vip"] = vip
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))                 # connection code -> position in f
    return f, place[codes]


def _same_text(a: pd.Categorical, b: pd.Categorical) -> np.ndarray:
    """Per row: whether two text columns hold the same value (on the codes when both share
    their categories, as the view's MAC columns do)."""
    if a.categories.equals(b.categories):
        return a.codes == b.codes
    return np.asarray(a, dtype=object) == np.asarray(b, dtype=object)


def _by_connection(column: pd.Series, conn: np.ndarray) -> pd.Categorical:
    """A text column of the connections table (a Categorical) at each row's connection."""
    return pd.Categorical.from_codes(column.cat.codes.to_numpy()[conn], dtype=column.dtype)


def _endpoints(ips: pd.Series | pd.Categorical, ports: np.ndarray) -> np.ndarray:
    """'ip:port' ('[ip]:port' for IPv6) per row of a small table (one per connection): each
    address and each port is rendered once, each row joined once."""
    codes, values = codes_and_values(ips)
    hosts = np.array([f"[{v}]:" if ":" in v else v + ":" for v in values.astype(str)],
                     dtype=object)
    # ports are 0..65535, or -1 where missing
    slot = np.asarray(ports, dtype=np.int64) + 1
    seen = np.bincount(slot, minlength=65537)
    used = np.flatnonzero(seen)
    port_text = np.empty(len(seen), dtype=object)
    port_text[used] = [str(p - 1) for p in used.tolist()]
    # object arrays add element by element: one str concatenation per row
    return hosts[codes] + port_text[slot]


def to_vip_table(tv: pd.DataFrame, rows: np.ndarray, topo: LearnedTopology, conns: pd.DataFrame,
                 row_conn: np.ndarray) -> pd.DataFrame:
    """The view's client->VIP `rows` with their connection (row_conn: position in conns, from
    flow_endpoints), leg and MAC roles. Columns are gathered from the view at the rows."""
    if len(rows) == 0:
        return _empty("to_vip")
    src_mac, dst_mac = take(tv["src_mac"], rows), take(tv["dst_mac"], rows)
    dmacs, rs_names = topo.director_macs, topo.rs_name_by_mac()
    src_is_director = member(src_mac, dmacs)
    dst_is_director = member(dst_mac, dmacs)
    ingress = member(dst_mac, topo.director_in) & ~member(src_mac,
                                                          topo.director_out - topo.director_in)
    # a client's frame to a MAC that never sends (a stale ARP entry for the VIP) was meant for
    # the director: it is judged as arriving there, and DR007 names it lost
    ingress |= member(dst_mac, topo.silent_macs) & ~src_is_director
    # the director sending to its own MAC (a copy it did not re-address, on a shared LAN) is
    # no arrival, nor is a real server sending a forwarded packet back (a loop)
    ingress &= ~(src_is_director & _same_text(src_mac, dst_mac)) & ~member(src_mac, rs_names)
    forwarded = src_is_director & ~dst_is_director
    leg = np.full(len(rows), 2, dtype=np.int8)
    leg[forwarded] = 1
    leg[ingress] = 0
    point = take(tv["point"], rows)
    t = pd.DataFrame({
        "point": point,
        "role": mapped(point, topo.roles, "unknown"),
        "frame": tv["frame"].to_numpy(dtype=np.int64)[rows],
        "ts_ns": tv["ts_ns"].to_numpy(dtype=np.int64)[rows],
        "flow_id": conns["flow_id"].to_numpy(dtype=np.int64)[row_conn],
        "five_tuple": _by_connection(conns["five_tuple"], row_conn),
        "src_ip": take(tv["src_ip"], rows), "dst_ip": take(tv["dst_ip"], rows),
        **{c: _ints(tv[c])[rows] for c in ("src_port", "dst_port", "seq", "ack", "tcp_flags",
                                           "ip_id", "payload_len", "ttl")},
        "src_mac": src_mac, "dst_mac": dst_mac,
        "leg": pd.Categorical.from_codes(leg, dtype=LEGS),
        "dst_is_rs": member(dst_mac, rs_names),
        "src_is_director": src_is_director, "dst_is_director": dst_is_director,
        "real_server": mapped(dst_mac, rs_names, ""),
    }, copy=False)
    return _finish(t, "to_vip")


LEGS = pd.CategoricalDtype(pd.Index(["ingress", "forwarded", "other"], dtype=object))


def _spans(pk: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """(first, last) clock-adjusted time per point that has frames."""
    if len(pk) == 0:
        return {}
    points = pk["point"]
    if isinstance(points.dtype, pd.CategoricalDtype):
        # the categorical's own codes (a view); a missing point (-1) has no span
        codes, names = points.array.codes, np.asarray(points.cat.categories, dtype=object)
    else:
        codes, names = codes_and_values(points)
    ts = pk["ts"].to_numpy(dtype=np.int64)
    out = {}
    # a handful of points: one masked min/max each (no scatter over every frame, no sort)
    for c in np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(names))):
        name = names[c]
        if not name:
            continue
        mine = ts[codes == c]
        out[str(name)] = (int(mine.min()), int(mine.max()))
    return out


def _point_shifts(pk: pd.DataFrame) -> dict[str, int]:
    """The clock correction prepare applied per point (ts_ns - ts), read from its first frame."""
    if len(pk) == 0:
        return {}
    codes, names = codes_and_values(pk["point"])
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    first = np.array([np.argmax(codes == c) for c in present], dtype=np.int64)
    shift = pk["ts_ns"].to_numpy(dtype=np.int64)[first] - pk["ts"].to_numpy(dtype=np.int64)[first]
    return {str(names[c]): int(s) for c, s in zip(present, shift) if names[c]}


def _adjusted_ts(pk: pd.DataFrame, points: pd.Series | pd.Categorical, ts_ns: np.ndarray
                 ) -> np.ndarray:
    """The clock-adjusted ts of rows with these points and raw ts_ns."""
    if same_data(pk["ts"].to_numpy(), pk["ts_ns"].to_numpy()):
        # prepare shares one array while no clock is corrected: nothing to read per point
        return np.asarray(ts_ns, dtype=np.int64).copy()
    shifts = _point_shifts(pk)
    if not any(shifts.values()):
        return np.asarray(ts_ns, dtype=np.int64).copy()  # no clock correction applied
    codes, names = codes_and_values(points)
    if not all(str(n) in shifts for n in names[np.unique(codes)]):
        raise KeyError("to_vip rows of a point missing from the packets table")
    per = np.array([shifts.get(str(n), 0) for n in names], dtype=np.int64)
    return np.asarray(ts_ns, dtype=np.int64) - per[codes]


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


COPY_TEXT = ["point", "src_mac", "dst_mac", "src_ip", "dst_ip"]
COPY_INTS = ["frame", "ts_ns", "ts", "src_port", "dst_port", "ack", "tcp_flags", "ip_id",
             "payload_len", "ttl"]


def _observable(ts_adj: np.ndarray, spans: dict[str, tuple[int, int]], topo: LearnedTopology,
                rs_points: list[str]) -> np.ndarray:
    """Frames at the director's ingress whose copy a real-server-side point could see.

    A copy can be seen while a real-server-side point captures. Points captured together (their
    spans overlap) are taken to run over the set's whole span, less a margin at the end where
    one tcpdump may stop before another."""
    observable = np.zeros(len(ts_adj), dtype=bool)
    if not spans:
        return observable
    set_lo = min(lo for lo, _ in spans.values())
    set_hi = max(hi for _, hi in spans.values())
    for p in rs_points:
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
    return observable


def _nearest_by_key(left_key: np.ndarray, left_ts: np.ndarray, right_key: np.ndarray,
                    right_ts: np.ndarray, window_ns: int, n_keys: int | None = None) -> np.ndarray:
    """For each left row the right row with its key nearest in time within the window, -1 for
    none: pd.merge_asof(direction="nearest", tolerance=window) by key (a tie goes to the earlier
    right row, equal times to the later one of them in right order). A key the right side holds
    once (almost every packet) is looked up directly; only keys held several times go through
    merge_asof.

    n_keys: the keys are dense ids 0..n_keys-1 already (no factorize), else any integers."""
    out = np.full(len(left_key), -1, dtype=np.int64)
    if len(left_key) == 0 or len(right_key) == 0:
        return out
    if n_keys is None:
        codes = pd.factorize(np.concatenate([right_key, left_key]))[0]
        rc, lc = codes[:len(right_key)], codes[len(right_key):]
        n_keys = int(codes.max()) + 1
        del codes
    else:
        rc, lc = right_key, left_key
    count = np.bincount(rc, minlength=n_keys)
    first = np.full(len(count), -1, dtype=np.int64)
    first[rc[::-1]] = np.arange(len(rc) - 1, -1, -1)      # first right row of each key
    left_count = count[lc]
    once = np.flatnonzero(left_count == 1)
    r = first[lc[once]]
    close = np.abs(right_ts[r] - left_ts[once]) <= window_ns
    out[once[close]] = r[close]
    several = np.flatnonzero(left_count > 1)
    if len(several):
        rows = np.flatnonzero(count[rc] > 1)
        right = pd.DataFrame({"key": rc[rows], "rts": right_ts[rows], "rpos": rows})
        right = right.sort_values("rts", kind="stable")
        left = pd.DataFrame({"ts": left_ts[several], "key": lc[several], "lpos": several})
        left = left.sort_values("ts", kind="stable")
        m = pd.merge_asof(left, right, left_on="ts", right_on="rts", by="key",
                          direction="nearest", tolerance=window_ns)
        hit = m["rpos"].notna().to_numpy()
        out[m["lpos"].to_numpy()[hit]] = m["rpos"].to_numpy()[hit].astype(np.int64)
    return out


def _match_copies(ing: dict, cand: dict, window_ns: int, n_loose: int | None = None,
                  n_ident: int | None = None) -> np.ndarray:
    """Per ingress frame the cand row of its copy (-1 for none).

    Pass 1 keys on the IP ID too (ikey), so a retransmission is not taken for the copy of a
    dropped original; pass 2 (loose key lkey, copies not yet taken) finds copies whose IP ID was
    changed. Nearest in time: an uncorrected clock offset may put the copy "before" its original.
    Only keys, times and positions are matched. n_loose / n_ident: the keys are dense ids below
    these (see _LooseKeys), else hashes."""
    copy = _nearest_by_key(ing["ikey"], ing["ts"], cand["ikey"], cand["ts"], window_ns, n_ident)
    rest = np.flatnonzero(copy < 0)
    if len(rest):
        taken = np.zeros(len(cand["ts"]), dtype=bool)
        taken[copy[copy >= 0]] = True
        free = np.flatnonzero(~taken)
        found = _nearest_by_key(ing["lkey"][rest], ing["ts"][rest], cand["lkey"][free],
                                cand["ts"][free], window_ns, n_loose)
        copy[rest] = np.append(free, -1)[found]   # found -1: the appended -1
    return copy


@dataclass
class _LooseKeys:
    """Dense integer ids of the loose key (LOOSE_KEY) and of the loose key with the IP ID and
    the payload length, for two sets of view rows (a: ingress frames, b: real-server-side
    frames)."""
    loose_a: np.ndarray
    loose_b: np.ndarray
    ident_a: np.ndarray
    ident_b: np.ndarray
    n_loose: int                # loose ids are 0..n_loose-1
    n_ident: int                # ident ids are 0..n_ident-1 (not every id is used)


def _loose_keys(tv: pd.DataFrame, packet: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray
                ) -> _LooseKeys:
    """_LooseKeys of the view rows rows_a and rows_b; packet: the view's packet ids (one per
    strict key).

    Both keys are parts of the strict key, so each is a function of the packet: the loose key
    is hashed and factorized once per distinct packet (a frame and its forwarded copy are
    usually one packet: half the rows), and the IP ID joins it as an integer, only for loose
    keys several packets share (retransmissions, rewritten copies)."""
    pa, pb = packet[rows_a], packet[rows_b]
    n_packets = int(packet.max()) + 1 if len(packet) else 0
    # one view row per packet: every row of a packet has the same strict key, so the same values
    # (rows and ids in int32 while they fit: these arrays are read at random)
    small = len(tv) < 1 << 31
    rep = np.full(n_packets, -1, dtype=np.int32 if small else np.int64)
    rep[pb] = rows_b
    rep[pa] = rows_a
    used = np.flatnonzero(rep >= 0)
    rep = rep[used]
    loose, n_loose = dense_ids(hash_key(tv[LOOSE_KEY].iloc[rep], LOOSE_KEY))
    # per packet id (a dense array over the packets: a gather, not a lookup)
    by_packet = np.zeros(n_packets, dtype=np.int32 if small else np.int64)
    by_packet[used] = loose
    loose_a, loose_b = by_packet[pa], by_packet[pb]
    shared = np.flatnonzero(np.bincount(loose, minlength=n_loose)[loose] > 1)
    if len(shared) == 0:
        # no two packets share a loose key: the IP ID tells none apart
        return _LooseKeys(loose_a=loose_a, loose_b=loose_b, ident_a=loose_a, ident_b=loose_b,
                          n_loose=n_loose, n_ident=n_loose)
    ident = loose.copy()
    ip_id = tv["ip_id"].to_numpy()[rep[shared]].astype(np.int64)
    # the length too: a pure ACK and the data segment after it share seq, ack and flags (and,
    # in IPv6, have no IP ID): each must find its own copy first, GRO/TSO ones by seq range
    length = tv["payload_len"].to_numpy()[rep[shared]].astype(np.int64)
    if (n_loose < 1 << 29 and ip_id.min() >= -1 and ip_id.max() < (1 << 17) - 1
            and length.min() >= 0 and length.max() < 1 << 17):
        # exact: (loose id, IP ID, length) in 63 bits
        pair = ident[shared] << 34 | (ip_id + 1) << 17 | length
    else:
        pair = hash_key(pd.DataFrame({"loose": ident[shared], "ip_id": ip_id, "len": length}),
                        ["loose", "ip_id", "len"])
    # these packets get ids after the loose ids (those of their loose keys stay unused)
    pair_ids, pairs = pd.factorize(pair)
    ident[shared] = n_loose + pair_ids
    n_ident = n_loose + len(pairs)
    by_packet = by_packet.astype(np.int64) if n_ident >= 1 << 31 else by_packet
    by_packet[used] = ident
    return _LooseKeys(loose_a=loose_a, loose_b=loose_b, ident_a=by_packet[pa],
                      ident_b=by_packet[pb], n_loose=n_loose, n_ident=n_ident)


def _coalesced_copies(m: dict, cand_all: dict, window_ns: int) -> tuple[np.ndarray, np.ndarray]:
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


def _covered(tv: pd.DataFrame, copy_tv: np.ndarray, coalesced: np.ndarray, conn: np.ndarray,
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


@dataclass
class ForwardCopies:
    """The forwarded copy of each ingress frame, in table order (time, point name, frame)."""
    rows: np.ndarray            # tovt rows
    ts: np.ndarray              # their clock-adjusted time
    copy_tv: np.ndarray         # tv row of the copy, -1 for none
    coalesced: np.ndarray       # matched by seq range to a GRO/TSO-coalesced copy
    copy_ttls: np.ndarray       # most distinct TTLs the copies of the packet show at one point
    copies: np.ndarray          # copies of the packet (loose key) at the real-server side
    empty_points: list[str] = field(default_factory=list)   # real-server-side, without frames


def _ingress_rows(tovt: pd.DataFrame, pk: pd.DataFrame, spans: dict[str, tuple[int, int]],
                  topo: LearnedTopology, rs_points: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(tovt rows, clock-adjusted ts) of the frames at the director's ingress whose copy a
    real-server-side point could see."""
    ingress = ((tovt["leg"] == "ingress").to_numpy()
               & member(tovt["role"], ("vip-segment", "both")))
    ipos = np.flatnonzero(ingress)
    # tovt holds raw ts_ns; the clock-adjusted ts is ts_ns less its point's offset
    ts_adj = _adjusted_ts(pk, tovt["point"].iloc[ipos],
                          tovt["ts_ns"].to_numpy(dtype=np.int64)[ipos])
    observable = _observable(ts_adj, spans, topo, rs_points)
    return ipos[observable], ts_adj[observable]


@dataclass
class CopyKeys:
    """What the forwarded copies are matched on: dense loose-key ids of every to_vip table row
    (keys.*_a) and of the real-server-side view rows a copy may be (rs_rows, keys.*_b)."""
    keys: _LooseKeys
    rs_rows: np.ndarray


def copy_keys(tv: pd.DataFrame, topo: LearnedTopology, view_rows: np.ndarray,
              packet: np.ndarray) -> CopyKeys:
    """CopyKeys of the to_vip table built from the view rows `view_rows` (vip_rows(tv,
    topo.vips)); packet: the view's packet ids (tcp_view). The table itself is not read: the
    keys can be made while it is built."""
    rs_points = [p for p, r in topo.roles.items() if r in ("rs-segment", "both")]
    # a copy leaves the director: a frame another host sends to a director MAC (a client's
    # original, a looping real server's frame coming back) or to a silent MAC (a client's
    # stale ARP entry) is none. One the director sends to its own MAC is a copy it did not
    # re-address (DR001 names it, DR007 must not call the packet lost)
    not_copy = (member(tv["dst_mac"], topo.director_macs | topo.silent_macs)
                & ~member(tv["src_mac"], topo.director_out))
    rs_rows = np.flatnonzero(member(tv["point"], rs_points) & ~not_copy
                             & ~endpoint_in(tv["src_ip"], tv["src_port"], topo.vips))
    return CopyKeys(keys=_loose_keys(tv, packet, view_rows, rs_rows), rs_rows=rs_rows)


def _first_forward_first(cand: dict, ttl: np.ndarray, n_loose: int, window_ns: int) -> dict:
    """cand with the times it is matched on pushed beyond the window for every copy whose TTL
    is below the highest of its packet's copies: a packet forwarded again and again (a loop)
    is matched to its first forwarding, not to whichever repetition an uncorrected clock puts
    nearest."""
    if len(ttl) == 0:
        return cand
    ttl = ttl.astype(np.int64)
    top = np.full(n_loose, -1, dtype=np.int64)
    np.maximum.at(top, cand["lkey"], ttl)
    deficit = top[cand["lkey"]] - ttl
    if not deficit.any():
        return cand
    return {**cand, "ts": cand["ts"] + deficit * (2 * window_ns + 1)}


def _find_copies(tv: pd.DataFrame, tovt: pd.DataFrame, ipos: np.ndarray, ts: np.ndarray,
                 window_ns: int, found_keys: CopyKeys) -> ForwardCopies:
    """Match each ingress frame (tovt rows ipos) to its copy at the real-server side. Keys,
    candidates and merge inputs live only in here: what leaves is a few arrays per frame."""
    all_pos, keys = found_keys.rs_rows, found_keys.keys
    ing = {"ts": ts, "lkey": keys.loose_a[ipos], "ikey": keys.ident_a[ipos]}
    # candidates: the real-server-side rows with the loose key of an ingress frame (the loose
    # key holds the client endpoint: a copy whose VIP or port was rewritten is still found, and
    # DR002 names the change instead of DR007 calling it lost)
    wanted = np.zeros(keys.n_loose, dtype=bool)
    wanted[ing["lkey"]] = True
    picked = wanted[keys.loose_b]
    del wanted
    cpos = all_pos[picked]
    tv_ts = tv["ts"].to_numpy(dtype=np.int64)
    cand = {"ts": tv_ts[cpos], "lkey": keys.loose_b[picked], "ikey": keys.ident_b[picked]}
    n_loose, n_ident = keys.n_loose, keys.n_ident
    del keys, picked, found_keys

    copy = _match_copies(ing, _first_forward_first(cand, tv["ttl"].to_numpy()[cpos], n_loose,
                                                   window_ns), window_ns, n_loose, n_ident)
    copy_tv = np.append(cpos, -1)[copy]      # tv row of each copy (copy -1: the appended -1)
    del copy
    has = copy_tv >= 0
    payload_len = _ints(tovt["payload_len"])[ipos]
    copy_payload = np.where(has, tv["payload_len"].to_numpy()[np.maximum(copy_tv, 0)], -1)
    coalesced = has & (copy_payload != payload_len)
    del copy_payload

    if (~has).any() or coalesced.any():
        # GRO/TSO: the real-server-side frames of the ingress frames' connections (client
        # endpoint) are searched by seq range, and every copy of another length must tile
        # its original's range (or be tiled by them) exactly
        conn = hash_key(tovt[CLIENT_KEY].iloc[ipos], CLIENT_KEY)
        all_conn = hash_key(tv[CLIENT_KEY].iloc[all_pos], CLIENT_KEY)
        kept = pd.Series(all_conn).isin(conn).to_numpy()
        all_pos, all_conn = all_pos[kept], all_conn[kept]
        seq = _ints(tovt["seq"])[ipos]
        if len(all_pos) and (~has).any():
            mpos, cap = _coalesced_copies(
                {"conn": conn, "ts": ts, "seq": seq, "payload_len": payload_len,
                 "has_copy": has},
                {"conn": all_conn, "ts": tv_ts[all_pos], "seq": tv["seq"].to_numpy()[all_pos],
                 "payload_len": tv["payload_len"].to_numpy()[all_pos]}, window_ns)
            copy_tv[mpos] = all_pos[cap]
            coalesced[mpos] = True
        if coalesced.any():
            coalesced &= _covered(tv, copy_tv, coalesced, conn, seq, payload_len,
                                  all_pos, all_conn)
        del conn, all_conn, seq
    del all_pos, payload_len

    # repeated forwarding (loops): distinct TTLs of the copies of one packet at one point
    if len(cpos):
        copy_ttls, copies = _copy_counts(
            cand["lkey"], codes_and_values(tv["point"].iloc[cpos])[0],
            tv["ttl"].to_numpy()[cpos].astype(np.int64), ing["lkey"], n_loose)
    else:
        copy_ttls = copies = np.zeros(len(ipos), dtype=np.int64)
    del cand, ing

    # the table's order (time, point name, frame) is fixed before any column is gathered
    final = np.lexsort((tovt["frame"].to_numpy()[ipos], text_rank(tovt["point"])[ipos], ts))
    return ForwardCopies(rows=ipos[final], ts=ts[final], copy_tv=copy_tv[final],
                   coalesced=coalesced[final], copy_ttls=copy_ttls[final].astype(np.int32),
                   copies=copies[final].astype(np.int32))


def forward_copies(tv: pd.DataFrame, tovt: pd.DataFrame, pk: pd.DataFrame, topo: LearnedTopology,
                   window_ns: int, keys: CopyKeys | None = None) -> ForwardCopies:
    """The client->VIP frames arriving at the director where a copy could be seen, each with its
    forwarded copy (or none): matched on the loose key, then by seq range (GRO/TSO).

    keys: copy_keys of tovt, when the caller made them (else made here, from packet ids
    computed again)."""
    rs_points = [p for p, r in topo.roles.items() if r in ("rs-segment", "both")]
    spans = _spans(pk)
    empty_points = [p for p in rs_points if p not in spans]
    ipos, ts = _ingress_rows(tovt, pk, spans, topo, rs_points)
    if len(ipos) == 0:
        none = np.zeros(0, dtype=np.int64)
        return ForwardCopies(rows=none, ts=none, copy_tv=none, coalesced=none.astype(bool),
                             copy_ttls=none, copies=none, empty_points=empty_points)
    if keys is None:
        keys = copy_keys(tv, topo, vip_rows(tv, topo.vips), packet_ids(tv))
    found = _find_copies(tv, tovt, ipos, ts, window_ns, keys)
    found.empty_points = empty_points
    return found


def forwards_table(tv: pd.DataFrame, tovt: pd.DataFrame, pk: pd.DataFrame, topo: LearnedTopology,
                   window_ns: int, capture_span: tuple[int, int] | None = None,
                   found: ForwardCopies | None = None) -> pd.DataFrame:
    """One row per client->VIP frame arriving at the director where a copy could be seen, with
    the forwarded copy (or none): forward_copies, or `found` when the caller made it (used up
    here: its row arrays are released).
    capture_span: (started, stopped) ns of the set, when known (see in_capture_span).

    Works on row positions and key arrays; the copy's columns are gathered once at the end."""
    if found is None:
        found = forward_copies(tv, tovt, pk, topo, window_ns)
    if len(found.rows) == 0:
        return _empty("forwards")
    empty = found.empty_points
    rows, has, coalesced = found.rows, found.copy_tv >= 0, found.coalesced
    at = np.maximum(found.copy_tv, 0)
    # the caller may still hold `found`: the positions go before the table's columns (the
    # run's memory peak) are made
    found.rows = found.copy_tv = np.zeros(0, dtype=np.int64)
    m: dict = {}
    for c in ("point", "role", "frame", "ts_ns", "flow_id", "five_tuple", "src_ip", "dst_ip",
              "src_port", "dst_port", "seq", "ack", "tcp_flags", "ip_id", "payload_len", "ttl",
              "src_mac", "dst_mac"):
        s = tovt[c]
        m[c] = take(s, rows) if isinstance(s.dtype, pd.CategoricalDtype) else s.to_numpy()[rows]
    m["ts"] = found.ts
    for c in COPY_TEXT:
        m["copy_" + c] = with_default(take(tv[c], at), has)
    for c in COPY_INTS:
        values = tv[c].to_numpy()
        # -1 where there is no copy; the TCP view's narrow integers stay narrow
        m["copy_" + c] = np.where(has, values[at], -1).astype(values.dtype, copy=False)
    m["has_copy"] = has
    m["coalesced"] = coalesced
    m["copy_ttls"], m["copies"] = found.copy_ttls, found.copies
    m["payload_changed"] = payload_changed(tv, pk, m["flow_id"], vip_rows(tv, topo.vips)[rows],
                                           np.where(has, at, -1), coalesced)
    del found, rows, at

    m["ttl_drop"] = np.where(has, m["ttl"] - m["copy_ttl"], 0).astype(np.int16)
    # GRO ORs the last segment's PSH into the merged header (TSO sets it on the last piece):
    # a coalesced copy keeps the flags but PSH
    m["flags_kept"] = has & ((m["copy_tcp_flags"] == m["tcp_flags"]) | (
        coalesced & ((m["copy_tcp_flags"] | PSH) == (m["tcp_flags"] | PSH))))
    m["delay_us"] = np.where(has, (m["copy_ts"] - m["ts"]) / 1000.0, np.nan)
    rs_names = topo.rs_name_by_mac()
    cdst = m["copy_dst_mac"]
    group = _group_cat(cdst)
    m["copy_dst_is_rs"] = (has & ~member(cdst, topo.director_macs) & ~group
                           & ~member(cdst, topo.client_macs) & member(cdst, rs_names))
    m["copy_src_is_director"] = has & member(m["copy_src_mac"], topo.director_out)
    m["real_server"] = mapped(cdst, rs_names, "")
    m["syn"] = (m["tcp_flags"] & (SYN | ACK)) == SYN
    m["vip"] = _endpoint_text(m["dst_ip"], m["dst_port"])
    senders = _present(pk["src_mac"])
    m["likely_cause"] = _drop_causes(m, empty, senders)
    m["in_capture_span"] = in_capture_span(m["ts"], capture_span, window_ns)
    return _finish(pd.DataFrame(m, copy=False), "forwards")


def _present(s: pd.Series) -> set:
    """The values a column holds, '' for a missing one (a categorical's codes counted once)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.array.codes
        seen = np.bincount(codes.astype(np.int64) + 1, minlength=len(s.cat.categories) + 1) > 0
        return (set(np.asarray(s.cat.categories, dtype=object)[seen[1:]].tolist())
                | ({""} if seen[0] else set()))
    return set(s.dropna().unique()) | ({""} if s.isna().any() else set())


def _group_cat(macs: pd.Categorical) -> np.ndarray:
    """is_group_mac per row, judged once per distinct MAC."""
    codes, values = codes_and_values(macs)
    return is_group_mac(values)[codes] if len(values) else np.zeros(len(codes), dtype=bool)


def _copy_counts(lkey: np.ndarray, point: np.ndarray, ttl: np.ndarray,
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
        pair = kc[several] * n_points + pc[several]
        # ttl is 0..255, or -1 where unknown: 257 slots per (key, point)
        triples = pd.unique(pair * 257 + (np.asarray(ttl, dtype=np.int64)[several] + 1))
        per_pair = np.bincount(triples // 257, minlength=n_keys * n_points)
        ttls_per_key = np.maximum(ttls_per_key,
                                  per_pair.reshape(n_keys, n_points).max(axis=1))
    return ttls_per_key[wc], copies_per_key[wc]


def _any_per(group_codes: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Per row: whether any row of its group has `flag`."""
    n = int(group_codes.max()) + 1 if len(group_codes) else 0
    return (np.bincount(group_codes, weights=flag, minlength=n) > 0)[group_codes]


def _drop_causes(m: dict, empty_points: list[str], senders: set[str]) -> pd.Categorical:
    """One line per frame: why the director most likely did not forward it."""
    hc = m["has_copy"]
    vip_any = _any_per(m["vip"].codes.astype(np.int64), hc)
    # flow ids are small integers (1..): groups as they are
    syn_fwd = _any_per(m["flow_id"], hc & m["syn"])
    nothing = ("the director forwards nothing for this VIP:port: no IPVS virtual service or no "
               "available real server for it (check ipvsadm -Ln)")
    if empty_points:
        nothing += (f"; {', '.join(empty_points)} captured no frame at all (or that capture is "
                    "on the wrong interface)")
    # frames addressed to a MAC that never sends anything: no host owns it any more
    silent = ~member(m["dst_mac"], senders)
    lost = ~hc
    syn = m["syn"]
    texts = ["", "dropped by the director after forwarding others: check its conntrack "
                 "'ct state invalid' drop rules, rp_filter and the real server's health",
             "mid-connection packet of a connection the director holds no state for: "
             "conntrack marked it INVALID and a 'ct state invalid drop' rule dropped it",
             nothing]
    codes = np.zeros(len(hc), dtype=np.int32)
    codes[lost] = 1
    codes[lost & ~syn & ~syn_fwd] = 2
    codes[lost & ~vip_any] = 3
    # a frame to a MAC that never sends was lost before any director, whatever else was forwarded
    stale = lost & silent
    if stale.any():
        mac_codes, macs = codes_and_values(m["dst_mac"])
        used = np.unique(mac_codes[stale])
        extra = {int(c): len(texts) + i for i, c in enumerate(used)}
        texts += [f"addressed to {macs[c]}, a MAC that sent no frame in the capture: the "
                  "client's ARP/neighbour entry for the VIP is stale (a former director?); "
                  "flush it (ip neigh flush) and have the director send gratuitous ARP"
                  for c in used]
        lookup = np.zeros(len(macs), dtype=np.int32)
        for c, code in extra.items():
            lookup[c] = code
        codes[stale] = lookup[mac_codes[stale]]
    return categorical(codes, texts)


def replies_table(tv: pd.DataFrame, topo: LearnedTopology, conns: pd.DataFrame) -> pd.DataFrame:
    """Packets toward a VIP connection's client from the VIP's port (from the VIP or elsewhere)."""
    if len(conns) == 0 or len(tv) == 0:
        return _empty("replies")
    # only frames that can match (from a VIP port to a client address) are keyed
    src_port = tv["src_port"].to_numpy()
    vip_ports = conns["vip_port"].unique()
    if len(vip_ports) <= 8:
        from_port = np.zeros(len(tv), dtype=bool)
        for port in vip_ports.tolist():          # a few VIP ports: one pass each
            from_port |= src_port == port
    else:
        from_port = np.isin(src_port, vip_ports)
    maybe = np.flatnonzero(from_port & member(
        tv["dst_ip"], set(np.asarray(conns["client_ip"], dtype=object))))
    del from_port
    lpos, cpos = _reply_connections(tv, maybe, conns)
    if len(lpos) == 0:
        return _empty("replies")
    # from the VIP: the reply's source address equals its connection's VIP (compared as ids of
    # the distinct texts of both columns)
    src_codes, src_values = codes_and_values(tv["src_ip"])
    vip_codes, vip_values = codes_and_values(conns["vip_ip"])
    ids = pd.factorize(np.concatenate([src_values, vip_values]).astype(str))[0]
    from_vip = (ids[:len(src_values)][src_codes[maybe[lpos]]]
                == ids[len(src_values):][vip_codes[cpos]])
    if len(lpos) > 1 and (lpos[1:] == lpos[:-1]).any():
        # a client talking to two VIPs on one port from one port: keep the matching VIP; a
        # reused 5-tuple: the connection that had started by the reply's time (else the first
        # connection that matches)
        minor, major = epoch_keys(conns["first_ts"].to_numpy()[cpos],
                                  tv["ts"].to_numpy()[maybe[lpos]], CLOCK_TOLERANCE_NS)
        pick = np.lexsort((cpos, minor, major, ~from_vip, lpos))
        first = np.ones(len(pick), dtype=bool)
        first[1:] = lpos[pick][1:] != lpos[pick][:-1]
        pick = pick[first]
        lpos, cpos, from_vip = lpos[pick], cpos[pick], from_vip[pick]
    rows = maybe[lpos]
    # the table's order (time, point name, frame) is fixed before any column is gathered
    final = np.lexsort((tv["frame"].to_numpy()[rows], text_rank(tv["point"])[rows],
                        tv["ts"].to_numpy()[rows]))
    rows, cpos, from_vip = rows[final], cpos[final], from_vip[final]
    r: dict = {}
    for c in ("point", "frame", "ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "seq",
              "ack", "tcp_flags", "ttl", "ip_id", "payload_len", "src_mac", "dst_mac"):
        s = tv[c]
        r[c] = take(s, rows) if isinstance(s.dtype, (pd.CategoricalDtype, np.dtypes.ObjectDType)) \
            else _ints(s)[rows]
    r["flow_id"] = conns["flow_id"].to_numpy(dtype=np.int64)[cpos]
    r["from_vip"] = from_vip
    r["role"] = mapped(r["point"], topo.roles, "unknown")
    r["five_tuple"] = _reply_five_tuples(r, cpos, conns)
    r["vip"] = _by_connection(conns["vip"], cpos)
    dmacs = topo.director_macs
    r["from_director"] = member(r["src_mac"], dmacs)
    r["to_director"] = member(r["dst_mac"], dmacs)
    r["real_server"] = mapped(r["src_mac"], topo.rs_name_by_mac(), "")
    return _finish(pd.DataFrame(r, copy=False), "replies")


def _reply_connections(tv: pd.DataFrame, maybe: np.ndarray, conns: pd.DataFrame
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in `maybe`, connection positions) of the view rows `maybe` sent to a
    connection's client ip:port from its VIP port, ascending in the first: one pair per
    connection the row matches."""
    coded = _address_codes([tv["dst_ip"], conns["client_ip"]])
    if coded is not None:
        # exact integers: the address code and ports packed (+ 1: -1 for missing)
        (dst_ip, client_ip), _ = coded
        dst_port, src_port = tv["dst_port"].to_numpy()[maybe], tv["src_port"].to_numpy()[maybe]
        left = ((dst_ip[maybe].astype(np.int64) + 1) * 65537 + dst_port + 1) * 65537 + src_port + 1
        right = (((client_ip.astype(np.int64) + 1) * 65537 + conns["client_port"].to_numpy() + 1)
                 * 65537 + conns["vip_port"].to_numpy() + 1)
    else:
        key = ["dst_ip", "dst_port", "src_port"]
        left = hash_key(tv[key].iloc[maybe], key)
        right = hash_key(pd.DataFrame({"dst_ip": conns["client_ip"],
                                       "dst_port": conns["client_port"],
                                       "src_port": conns["vip_port"]}), key)
    ends = pd.Index(right)
    if ends.is_unique:
        # (almost always) one connection per key: a lookup, no join
        at = ends.get_indexer(left)
        lpos = np.flatnonzero(at >= 0)
        return lpos, at[lpos].astype(np.int64)
    pairs = pd.merge(pd.DataFrame({"k": left, "lpos": np.arange(len(maybe), dtype=np.int64)}),
                     pd.DataFrame({"k": right, "cpos": np.arange(len(conns), dtype=np.int64)}),
                     on="k", how="inner").sort_values(["lpos", "cpos"], kind="stable")
    return pairs["lpos"].to_numpy(), pairs["cpos"].to_numpy()


def _reply_five_tuples(r: dict, cpos: np.ndarray, conns: pd.DataFrame) -> pd.Categorical:
    """'tcp src:port -> dst:port' of each reply. A reply from the VIP is its connection's
    5-tuple turned round (rendered once per connection); others once per distinct 5-tuple."""
    used = np.flatnonzero(np.bincount(cpos, minlength=len(conns)))
    client = conns["client"].to_numpy()[used]
    vip_codes, vips = codes_and_values(conns["vip"])
    head = np.array([f"tcp {v} -> " for v in vips], dtype=object)
    turned = head[vip_codes[used]] + client        # one str concatenation per connection
    slot = np.zeros(len(conns), dtype=np.int64)
    slot[used] = np.arange(len(used))
    codes = slot[cpos]
    texts = list(turned)
    other = np.flatnonzero(~r["from_vip"])
    if len(other):
        sub = {c: (r[c].take(other) if isinstance(r[c], pd.Categorical) else r[c][other])
               for c in ("src_ip", "src_port", "dst_ip", "dst_port")}
        key = hash_key(pd.DataFrame(sub), list(sub))
        ocodes, uniq = pd.factorize(key)
        first = np.full(len(uniq), len(ocodes), dtype=np.int64)
        np.minimum.at(first, ocodes, np.arange(len(ocodes), dtype=np.int64))
        texts += list(five_tuples(pd.Series(np.asarray(sub["src_ip"].take(first), dtype=object)),
                                  np.asarray(sub["src_port"])[first],
                                  pd.Series(np.asarray(sub["dst_ip"].take(first), dtype=object)),
                                  np.asarray(sub["dst_port"])[first]))
        codes[other] = len(turned) + ocodes
    # the turned 5-tuples of distinct 5-tuples differ (a reused one's connections share theirs);
    # another may equal one of them
    distinct = len(other) == 0 and len(conns["five_tuple"].cat.categories) == len(conns)
    return categorical(codes, np.asarray(texts, dtype=object), distinct=distinct)


def _lookup(s: pd.Series, mapping: dict) -> np.ndarray:
    """Map values through a dict, once per distinct value; '' where absent (object array)."""
    return np.asarray(mapped(s, mapping, ""), dtype=object)


def _roles(points: pd.Series, topo: LearnedTopology) -> np.ndarray:
    return np.asarray(mapped(points, topo.roles, "unknown"), dtype=object)


ARP_COLUMNS = ["point", "frame", "ts_ns", "ts", "arp_op", "arp_sender_ip", "arp_target_ip",
               "arp_sender_mac", "src_mac"]
ND_COLUMNS = ["point", "frame", "ts_ns", "ts", "icmp_type", "nd_lladdr", "nd_target", "src_mac",
              "src_ip"]


def arp_table(pk: pd.DataFrame, topo: LearnedTopology) -> pd.DataFrame:
    """Every ARP and IPv6 neighbour discovery frame: who claims or uses which address.

    sender_ip is the address the frame vouches for: ARP sender, NA target, NS source. Claims of a
    VIP (ARP reply / gratuitous ARP / NA) are tracked per VIP for owner changes."""
    if len(pk) == 0:
        return _empty("arp")
    vip_ips = topo.vip_ips
    # the few ARP / ND frames: found by position, then only the columns read here are gathered
    # (a boolean filter would copy every column of the packets table)
    arp = pk[ARP_COLUMNS].iloc[np.flatnonzero(pk["arp_op"].notna().to_numpy())]
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
    icmp = pk["icmp_type"].to_numpy(dtype=np.int16, na_value=-1)
    nd = pk[ND_COLUMNS].iloc[np.flatnonzero((icmp == 135) | (icmp == 136))]
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


def _arp_causes(t: pd.DataFrame, prev_claimer: pd.Series) -> pd.Categorical:
    """One line per ARP/ND frame: what a VIP claim or a request from the VIP most likely means;
    rendered once per distinct (case, claimer, MAC, VIP, previous claimer) of those it names."""
    # the first that holds: a request from the VIP, a director failover, a real server's
    # claim, a director's claim (nothing to say), anyone else's claim
    case = np.select([t["kind"].isin(["request", "ns"]).to_numpy(),
                      t["failover"].to_numpy(dtype=bool), t["is_rs"].to_numpy(dtype=bool),
                      t["is_director"].to_numpy(dtype=bool)], [0, 1, 2, 3], default=4)
    columns = [t["claimer"], t["claimer_mac"], t["vip"], prev_claimer.fillna("?").astype(str)]
    # which texts each case names: claimer, MAC, VIP, previous claimer
    names = np.array([[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 0]],
                     dtype=bool)
    coded = [codes_and_values(c) for c in columns]
    key = pd.DataFrame({"case": case, **{str(i): np.where(names[case, i], codes, -1)
                                         for i, (codes, _) in enumerate(coded)}})
    ids, distinct = pd.factorize(hash_key(key, list(key.columns)))
    first = np.full(len(distinct), len(ids), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(ids), dtype=np.int64))
    texts = []
    for row in first.tolist():
        claimer, mac, vip, prev = (values[codes[row]] for codes, values in coded)
        texts.append([
            f"{claimer} ({mac}) sends ARP requests from the VIP {vip}: set arp_announce=2 on "
            "that real server's interfaces",
            f"the VIP {vip} moved from director {prev} to {mac}: a director failover (one change "
            "is a warning; more mean two directors claim it: check keepalived priorities and "
            "VRRP)",
            f"{claimer} ({mac}) answers ARP/ND for the VIP {vip}: set arp_ignore=1 and "
            "arp_announce=2 on its VIP-segment interface (VIP on lo only)",
            "",
            f"unknown host {mac} claims the VIP {vip}: an address conflict; find it with arping "
            "-D and remove the VIP there"][case[row]])
    return categorical(ids, texts)


def _per_flow(flow_index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum of weights) per flow position 0..n-1."""
    return np.bincount(flow_index, weights=weights, minlength=n)[:n]


def _max_over_points(flow_index: np.ndarray, point_codes: np.ndarray, n: int) -> np.ndarray:
    """Per flow: the most rows it has at any one point (the same packet seen at two points is
    one packet)."""
    if len(flow_index) == 0:
        return np.zeros(n, dtype=np.int64)
    n_points = int(point_codes.max()) + 1
    counts = np.bincount(flow_index.astype(np.int64) * n_points + point_codes,
                         minlength=n * n_points)[:n * n_points]
    return counts.reshape(n, n_points).max(axis=1).astype(np.int64)


def _first_per_flow(flow_index: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Per flow: the row with the smallest ts (the earliest row among equal times), -1 if none."""
    big = np.iinfo(np.int64).max
    lo = np.full(n, big, dtype=np.int64)
    np.minimum.at(lo, flow_index, ts)
    at_min = np.flatnonzero(ts == lo[flow_index])
    first = np.full(n, len(ts), dtype=np.int64)
    np.minimum.at(first, flow_index[at_min], at_min)
    return np.where(first < len(ts), first, -1)


def _min_per_flow(flow_index: np.ndarray, values: np.ndarray, n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per flow: (smallest value, whether the flow has a row), in int64 (times in ns need all
    their digits: a float64 holds them to 256 ns only)."""
    lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(lo, flow_index, values.astype(np.int64))
    seen = np.zeros(n, dtype=bool)
    seen[flow_index] = True
    return lo, seen


def _flows_from_to_vip(tovt: pd.DataFrame, n: int, out: dict) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the client->VIP frames give (first frame, SYNs, packets in); returns
    (first SYN time, has one) per flow for the response time."""
    ing = np.flatnonzero((tovt["leg"] == "ingress").to_numpy())
    t_flow = tovt["flow_id"].to_numpy().astype(np.int32) - 1
    t_ts = tovt["ts_ns"].to_numpy(dtype=np.int64)
    t_point = codes_and_values(tovt["point"])[0]
    syn_in = ing[(tovt["tcp_flags"].to_numpy()[ing] & (SYN | ACK)) == SYN]
    pick = _first_per_flow(t_flow[syn_in], t_ts[syn_in], n)
    row = np.append(syn_in, -1)[pick]        # pick -1: the appended -1
    if (row < 0).any():
        # flows without an ingress SYN (dropped from the capture there): their SYN elsewhere
        # (its forwarded copy), else their first frame (only their rows are looked at)
        syn_any = np.flatnonzero((row < 0)[t_flow]
                                 & ((tovt["tcp_flags"].to_numpy() & (SYN | ACK)) == SYN))
        found = _first_per_flow(t_flow[syn_any], t_ts[syn_any], n)
        row = np.where(row >= 0, row, np.append(syn_any, -1)[found])
    if (row < 0).any():
        rest = np.flatnonzero((row < 0)[t_flow])
        fallback = _first_per_flow(t_flow[rest], t_ts[rest], n)
        row = np.where(row >= 0, row, np.append(rest, -1)[fallback])
    got = row >= 0
    at = np.maximum(row, 0)
    out["point"] = with_default(take(tovt["point"], at), got)
    out["frame"] = np.where(got, tovt["frame"].to_numpy(dtype=np.int64)[at], -1)
    out["ts_ns"] = np.where(got, t_ts[at], -1)
    out["seq"] = np.where(got, tovt["seq"].to_numpy().astype(np.int64)[at], -1)
    syn_counts = _max_over_points(t_flow[syn_in], t_point[syn_in], n)
    out["syn_seen"] = syn_counts > 0
    out["syn_retransmits"] = np.maximum(np.where(syn_counts > 0, syn_counts, 1) - 1, 0)
    out["packets_in"] = _max_over_points(t_flow[ing], t_point[ing], n)
    return _min_per_flow(t_flow[syn_in], t_ts[syn_in], n)


def _flows_from_forwards(fw: pd.DataFrame, n: int, out: dict) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the forwarded copies give (SYN forwarded, real server by most copies,
    forwarding delay); returns (first forwarded SYN's copy time, has one) per flow."""
    f_flow = fw["flow_id"].to_numpy().astype(np.int32) - 1
    hc = fw["has_copy"].to_numpy(dtype=bool)
    syn_fw = hc & fw["syn"].to_numpy(dtype=bool)
    out["syn_forwarded"] = _per_flow(f_flow[syn_fw], n) > 0
    # a forwarded SYN near the capture's edges may have its SYN-ACK outside it: not judged
    spanned = _per_flow(f_flow[syn_fw & fw["in_capture_span"].to_numpy(dtype=bool)], n) > 0
    out["in_capture_span"] = ~out["syn_forwarded"] | spanned
    to_rs = np.flatnonzero(hc & fw["copy_dst_is_rs"].to_numpy(dtype=bool))
    rs_codes, rs_names = codes_and_values(fw["real_server"])
    # per flow: how many real servers, and the one most copies went to (ties: the first by name)
    width = len(rs_names) + 1
    pair = f_flow[to_rs].astype(np.int64) * width + rs_codes[to_rs]
    if n * width <= 4 * len(pair) + 65536:
        # (flow, real server) pairs counted in one array over all of them (no hash table)
        pair_n = np.bincount(pair, minlength=n * width)
        pairs = np.flatnonzero(pair_n)
        pair_n = pair_n[pairs]
    else:
        pair_codes, pairs = pd.factorize(pair)
        pair_n = np.bincount(pair_codes, minlength=len(pairs))
        pairs = np.asarray(pairs)
    del pair
    pair_flow = pairs // width
    pair_rs = pairs % width
    out["rs_count"] = _per_flow(pair_flow, n).astype(np.int64)
    # each name's place in the sorted names (equal names, equal places: see text_rank)
    name_rank = np.zeros(width, dtype=np.int64)
    if len(rs_names):
        name_rank[:len(rs_names)] = np.unique(rs_names.astype(str), return_inverse=True)[1]
    best = np.lexsort((name_rank[pair_rs], -pair_n, pair_flow))
    lead = np.ones(len(best), dtype=bool)
    lead[1:] = pair_flow[best][1:] != pair_flow[best][:-1]
    chosen = np.full(n, -1, dtype=np.int64)
    chosen[pair_flow[best][lead]] = pair_rs[best][lead]
    out["_chosen"] = np.append(rs_names, "")[np.where(chosen >= 0, chosen, len(rs_names))]
    out["_has_chosen"] = chosen >= 0
    fwc = np.flatnonzero(hc)
    out["forward_delay_us"] = (pd.Series(fw["delay_us"].to_numpy(dtype=np.float64)[fwc])
                               .groupby(f_flow[fwc]).median()
                               .reindex(np.arange(n)).to_numpy(dtype=np.float64))
    return _min_per_flow(f_flow[syn_fw], fw["copy_ts_ns"].to_numpy(dtype=np.int64)[syn_fw], n)


def _flows_from_replies(rp: pd.DataFrame, n: int, out: dict) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the replies give (real server when no copy names one, SYN-ACK, RST,
    packets out); returns (first SYN-ACK time, has one) per flow."""
    r_flow = rp["flow_id"].to_numpy().astype(np.int32) - 1
    r_codes, r_names = codes_and_values(rp["real_server"])
    # rows whose real server has a name (judged once per name)
    named = (np.flatnonzero((r_names != "")[r_codes]) if len(rp)
             else np.zeros(0, dtype=np.int64))
    from_rep = np.full(n, len(rp), dtype=np.int64)
    np.minimum.at(from_rep, r_flow[named], named)
    rep_code = np.full(n, len(r_names), dtype=np.int64)   # the appended '' below
    has_rep = from_rep < len(rp)
    rep_code[has_rep] = r_codes[from_rep[has_rep]]
    out["_from_replies"] = np.append(r_names, "")[rep_code]
    from_vip = rp["from_vip"].to_numpy(dtype=bool)
    r_flags = rp["tcp_flags"].to_numpy()
    sa = from_vip & ((r_flags & (SYN | ACK)) == (SYN | ACK))
    out["synack_seen"] = _per_flow(r_flow[sa], n) > 0
    out["rst_from_vip"] = _per_flow(r_flow[from_vip & ((r_flags & RST) != 0)], n) > 0
    vseg = member(rp["role"], ("vip-segment", "both"))
    out["packets_out"] = _max_over_points(r_flow[vseg], codes_and_values(rp["point"])[0][vseg], n)
    return _min_per_flow(r_flow[sa], rp["ts_ns"].to_numpy(dtype=np.int64)[sa], n)


def flows_table(conns: pd.DataFrame, tovt: pd.DataFrame, fw: pd.DataFrame,
                rp: pd.DataFrame) -> pd.DataFrame:
    """One row per connection, aggregated with bincounts over flow positions (flow_id - 1: the
    ids are 1..n in conns order). Each source table is read by its own function, so its
    per-row temporaries are gone before the next one's."""
    if len(conns) == 0:
        return _empty("flows")
    n = len(conns)
    out: dict = {"flow_id": conns["flow_id"].to_numpy(dtype=np.int64),
                 "client_ip": as_text(conns["client_ip"]),
                 "client_port": conns["client_port"].to_numpy(dtype=np.int64),
                 "vip": as_text(conns["vip"]), "five_tuple": as_text(conns["five_tuple"])}
    syn_ts = _flows_from_to_vip(tovt, n, out)
    syn_copy_ts = _flows_from_forwards(fw, n, out)
    sa_ts = _flows_from_replies(rp, n, out)
    out["real_server"] = as_text(np.where(out.pop("_has_chosen"), out.pop("_chosen"),
                                          out.pop("_from_replies")).astype(object))
    out["refused"] = out["rst_from_vip"] & ~out["synack_seen"]
    # server response: forwarded SYN (at the rs side) -> first SYN-ACK from the VIP
    start = np.where(syn_copy_ts[1], syn_copy_ts[0], syn_ts[0])
    known = sa_ts[1] & (syn_copy_ts[1] | syn_ts[1])
    out["response_us"] = np.where(known, (sa_ts[0] - np.where(known, start, 0)) / 1000.0, np.nan)
    out["likely_cause"] = _flow_causes(out)
    return _finish(pd.DataFrame(out, copy=False), "flows")


def _flow_causes(out: dict) -> pd.Categorical:
    """Per flow: why it failed, rendered once per distinct (case, real server, VIP)."""
    case = np.where(out["refused"], 1, np.where(~out["synack_seen"], 2, 0))
    rs_codes, rs_names = codes_and_values(out["real_server"])
    vip_codes, vips = codes_and_values(out["vip"])
    key = (case.astype(np.int64) * (len(rs_names) + 1) + rs_codes) * (len(vips) + 1) + vip_codes
    codes, uniq = pd.factorize(key)
    uniq = np.asarray(uniq)
    texts = []
    for k in uniq:
        vip = vips[k % (len(vips) + 1)]
        rs = rs_names[(k // (len(vips) + 1)) % (len(rs_names) + 1)] or "the real server"
        c = k // ((len(vips) + 1) * (len(rs_names) + 1))
        texts.append(f"{rs} answered RST: nothing listens on {vip} there (port mismatch between "
                     "the virtual service and the server)" if c == 1 else
                     f"{rs} never answered from the VIP: VIP missing or not /32 on its lo, "
                     "rp_filter strict on its interface, or its reply is routed elsewhere"
                     if c == 2 else "")
    return categorical(codes, texts)


def points_table(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return _empty("points")
    return _finish(pd.DataFrame(rows), "points")
