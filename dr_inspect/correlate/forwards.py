"""The forwards table: one row per client->VIP frame arriving at the director where a copy could
be seen, with its forwarded copy's columns (or none), what changed between them, and the likely
cause of a frame the director did not forward."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import endpoint_category, is_group_mac
from dr_inspect.columnar.group import any_per
from dr_inspect.columnar.text import (categorical, codes_and_values, mapped, member, take,
                                      with_default)
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.correlate.connections import vip_rows
from dr_inspect.correlate.copies import ForwardCopies, forward_copies
from dr_inspect.correlate.payload import payload_changed
from dr_inspect.correlate.spans import in_capture_span
from dr_inspect.decode.schema import ACK, PSH, SYN
from dr_inspect.topology.model import LearnedTopology

COPY_TEXT = ["point", "src_mac", "dst_mac", "src_ip", "dst_ip"]


COPY_INTS = ["frame", "ts_ns", "ts", "src_port", "dst_port", "ack", "tcp_flags", "ip_id",
             "payload_len", "ttl"]


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
        return empty_table("forwards")
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
    m["vip"] = endpoint_category(m["dst_ip"], m["dst_port"])
    senders = _present(pk["src_mac"])
    m["likely_cause"] = _drop_causes(m, empty, senders)
    m["in_capture_span"] = in_capture_span(m["ts"], capture_span, window_ns)
    return finish_table(pd.DataFrame(m, copy=False), "forwards")


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


def _drop_causes(m: dict, empty_points: list[str], senders: set[str]) -> pd.Categorical:
    """One line per frame: why the director most likely did not forward it."""
    hc = m["has_copy"]
    vip_any = any_per(m["vip"].codes.astype(np.int64), hc)
    # flow ids are small integers (1..): groups as they are
    syn_fwd = any_per(m["flow_id"], hc & m["syn"])
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

