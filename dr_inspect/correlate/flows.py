"""The flows table: one row per connection, aggregated from the to_vip, forwards and replies
tables with bincounts over flow positions (flow_id - 1), and why a failed one failed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.group import count_per, first_per, min_per, most_per_point
from dr_inspect.columnar.pack import dense_span, pack, unpack
from dr_inspect.columnar.text import (as_text, categorical, codes_and_values, member, take,
                                      with_default)
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.correlate.spans import shifted_ts
from dr_inspect.decode.schema import ACK, RST, SYN


def _flows_from_to_vip(tovt: pd.DataFrame, n: int, out: dict,
                       offsets: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the client->VIP frames give (first frame, SYNs, packets in); returns
    (first SYN time on the common clock, has one) per flow for the response time."""
    ing = np.flatnonzero((tovt["leg"] == "ingress").to_numpy())
    t_flow = tovt["flow_id"].to_numpy().astype(np.int32) - 1
    t_raw = tovt["ts_ns"].to_numpy(dtype=np.int64)
    t_ts = shifted_ts(t_raw, tovt["point"], offsets)
    t_point = codes_and_values(tovt["point"])[0]
    syn_in = ing[(tovt["tcp_flags"].to_numpy()[ing] & (SYN | ACK)) == SYN]
    pick = first_per(t_flow[syn_in], t_ts[syn_in], n)
    row = np.append(syn_in, -1)[pick]        # pick -1: the appended -1
    if (row < 0).any():
        # flows without an ingress SYN (dropped from the capture there): their SYN elsewhere
        # (its forwarded copy), else their first frame (only their rows are looked at)
        syn_any = np.flatnonzero((row < 0)[t_flow]
                                 & ((tovt["tcp_flags"].to_numpy() & (SYN | ACK)) == SYN))
        found = first_per(t_flow[syn_any], t_ts[syn_any], n)
        row = np.where(row >= 0, row, np.append(syn_any, -1)[found])
    if (row < 0).any():
        rest = np.flatnonzero((row < 0)[t_flow])
        fallback = first_per(t_flow[rest], t_ts[rest], n)
        row = np.where(row >= 0, row, np.append(rest, -1)[fallback])
    got = row >= 0
    at = np.maximum(row, 0)
    out["point"] = with_default(take(tovt["point"], at), got)
    out["frame"] = np.where(got, tovt["frame"].to_numpy(dtype=np.int64)[at], -1)
    out["ts_ns"] = np.where(got, t_raw[at], -1)
    out["seq"] = np.where(got, tovt["seq"].to_numpy().astype(np.int64)[at], -1)
    syn_counts = most_per_point(t_flow[syn_in], t_point[syn_in], n)
    out["syn_seen"] = syn_counts > 0
    out["syn_retransmits"] = np.maximum(np.where(syn_counts > 0, syn_counts, 1) - 1, 0)
    out["packets_in"] = most_per_point(t_flow[ing], t_point[ing], n)
    return min_per(t_flow[syn_in], t_ts[syn_in], n)


def _flows_from_forwards(fw: pd.DataFrame, n: int, out: dict,
                         offsets: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the forwarded copies give (SYN forwarded, real server by most copies,
    forwarding delay); returns (first forwarded SYN's copy time on the common clock, has one)
    per flow."""
    f_flow = fw["flow_id"].to_numpy().astype(np.int32) - 1
    hc = fw["has_copy"].to_numpy(dtype=bool)
    syn_fw = hc & fw["syn"].to_numpy(dtype=bool)
    out["syn_forwarded"] = count_per(f_flow[syn_fw], n) > 0
    # a forwarded SYN near the capture's edges may have its SYN-ACK outside it: not judged
    spanned = count_per(f_flow[syn_fw & fw["in_capture_span"].to_numpy(dtype=bool)], n) > 0
    out["in_capture_span"] = ~out["syn_forwarded"] | spanned
    to_rs = np.flatnonzero(hc & fw["copy_dst_is_rs"].to_numpy(dtype=bool))
    rs_codes, rs_names = codes_and_values(fw["real_server"])
    # per flow: how many real servers, and the one most copies went to (ties: the first by name)
    width = len(rs_names) + 1
    spans = [dense_span(n), dense_span(width)]
    pair = pack([f_flow[to_rs], rs_codes[to_rs]], spans)
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
    pair_flow, pair_rs = unpack(pairs, spans)
    out["rs_count"] = count_per(pair_flow, n).astype(np.int64)
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
    copy_ts = shifted_ts(fw["copy_ts_ns"].to_numpy(dtype=np.int64)[syn_fw],
                         fw["copy_point"].iloc[np.flatnonzero(syn_fw)], offsets)
    return min_per(f_flow[syn_fw], copy_ts, n)


def _flows_from_replies(rp: pd.DataFrame, n: int, out: dict,
                        offsets: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The flow columns the replies give (real server when no copy names one, SYN-ACK, RST,
    packets out); returns (first SYN-ACK time on the common clock, has one) per flow."""
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
    out["synack_seen"] = count_per(r_flow[sa], n) > 0
    out["rst_from_vip"] = count_per(r_flow[from_vip & ((r_flags & RST) != 0)], n) > 0
    vseg = member(rp["role"], ("vip-segment", "both"))
    out["packets_out"] = most_per_point(r_flow[vseg], codes_and_values(rp["point"])[0][vseg], n)
    sa_ts = shifted_ts(rp["ts_ns"].to_numpy(dtype=np.int64)[sa],
                       rp["point"].iloc[np.flatnonzero(sa)], offsets)
    return min_per(r_flow[sa], sa_ts, n)


def flows_table(conns: pd.DataFrame, tovt: pd.DataFrame, fw: pd.DataFrame,
                rp: pd.DataFrame, offsets: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per connection, aggregated with bincounts over flow positions (flow_id - 1: the
    ids are 1..n in conns order). Each source table is read by its own function, so its
    per-row temporaries are gone before the next one's.

    offsets: the clock correction applied per point (point -> ns): times taken at two points
    (the response time: forwarded SYN -> SYN-ACK) are compared on the common clock."""
    if len(conns) == 0:
        return empty_table("flows")
    n = len(conns)
    out: dict = {"flow_id": conns["flow_id"].to_numpy(dtype=np.int64),
                 "client_ip": as_text(conns["client_ip"]),
                 "client_port": conns["client_port"].to_numpy(dtype=np.int64),
                 "vip": as_text(conns["vip"]), "five_tuple": as_text(conns["five_tuple"])}
    syn_ts = _flows_from_to_vip(tovt, n, out, offsets)
    syn_copy_ts = _flows_from_forwards(fw, n, out, offsets)
    sa_ts = _flows_from_replies(rp, n, out, offsets)
    out["real_server"] = as_text(np.where(out.pop("_has_chosen"), out.pop("_chosen"),
                                          out.pop("_from_replies")).astype(object))
    out["refused"] = out["rst_from_vip"] & ~out["synack_seen"]
    # server response: forwarded SYN (at the rs side) -> first SYN-ACK from the VIP
    start = np.where(syn_copy_ts[1], syn_copy_ts[0], syn_ts[0])
    known = sa_ts[1] & (syn_copy_ts[1] | syn_ts[1])
    out["response_us"] = np.where(known, (sa_ts[0] - np.where(known, start, 0)) / 1000.0, np.nan)
    out["likely_cause"] = _flow_causes(out)
    return finish_table(pd.DataFrame(out, copy=False), "flows")


def _flow_causes(out: dict) -> pd.Categorical:
    """Per flow: why it failed, rendered once per distinct (case, real server, VIP)."""
    case = np.where(out["refused"], 1, np.where(~out["synack_seen"], 2, 0))
    rs_codes, rs_names = codes_and_values(out["real_server"])
    vip_codes, vips = codes_and_values(out["vip"])
    spans = [dense_span(3), dense_span(len(rs_names) + 1), dense_span(len(vips) + 1)]
    codes, uniq = pd.factorize(pack([case, rs_codes, vip_codes], spans))
    texts = []
    for c, r, v in zip(*(column.tolist() for column in unpack(np.asarray(uniq), spans))):
        vip = vips[v]
        rs = rs_names[r] or "the real server"
        texts.append(f"{rs} answered RST: nothing listens on {vip} there (port mismatch between "
                     "the virtual service and the server)" if c == 1 else
                     f"{rs} never answered from the VIP: VIP missing or not /32 on its lo, "
                     "rp_filter strict on its interface, or its reply is routed elsewhere"
                     if c == 2 else "")
    return categorical(codes, texts)

