"""Helpers of the rule tables (dr_inspect.correlate) and the columnar reductions and joins they
use, against the pandas operations they stand in for."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_inspect.columnar import addresses, group
from dr_inspect.correlate import arp, coalesced, copy_keys, flows, forwards, replies, to_vip


def merge_asof_nearest(left_key, left_ts, right_key, right_ts, window):
    """The reference: pandas merge_asof by key, nearest within the window."""
    right = pd.DataFrame({"key": right_key, "rts": right_ts,
                          "rpos": np.arange(len(right_key))}).sort_values("rts", kind="stable")
    left = pd.DataFrame({"ts": left_ts, "key": left_key,
                         "lpos": np.arange(len(left_key))}).sort_values("ts", kind="stable")
    m = pd.merge_asof(left, right, left_on="ts", right_on="rts", by="key", direction="nearest",
                      tolerance=window)
    out = np.full(len(left_key), -1)
    hit = m["rpos"].notna().to_numpy()
    out[m["lpos"].to_numpy()[hit]] = m["rpos"].to_numpy()[hit].astype(int)
    return out


@settings(max_examples=150, deadline=None)
@given(left=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), max_size=40),
       right=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), max_size=40),
       window=st.integers(0, 10))
def test_nearest_by_key_is_merge_asof_nearest(left, right, window):
    """Keys held once and several times, equal times, ties of distance, nothing in the window."""
    lk = np.array([k for k, _ in left], dtype=np.uint64)
    lt = np.array([t for _, t in left], dtype=np.int64)
    rk = np.array([k for k, _ in right], dtype=np.uint64)
    rt = np.array([t for _, t in right], dtype=np.int64)
    got = group.nearest_by_key(lk, lt, rk, rt, window)
    if len(lk) and len(rk):
        want = merge_asof_nearest(lk, lt, rk, rt, window)
    else:
        want = np.full(len(lk), -1)
    assert got.tolist() == want.tolist()


def test_copy_counts_per_packet_and_point():
    # key 1: two copies at point 0 with different TTLs (a loop), one at point 1;
    # key 2: one copy; key 3 asked for but never copied
    lkey = np.array([1, 1, 1, 2], dtype=np.uint64)
    point = np.array([0, 0, 1, 0])
    ttl = np.array([64, 63, 64, 64])
    ttls, copies = coalesced.copy_counts(lkey, point, ttl, np.array([1, 2, 3], dtype=np.uint64))
    assert ttls.tolist() == [2, 1, 0] and copies.tolist() == [3, 1, 0]


def test_first_per_flow_takes_the_earliest_row_and_the_first_of_equal_times():
    flow = np.array([0, 1, 0, 0, 2])
    ts = np.array([5, 3, 2, 2, 9])
    assert group.first_per(flow, ts, 4).tolist() == [2, 1, 4, -1]


def test_max_over_points_counts_a_packet_seen_at_two_points_once():
    flow = np.array([0, 0, 0, 1])
    point = np.array([0, 1, 0, 1])
    assert group.most_per_point(flow, point, 3).tolist() == [2, 1, 0]


def test_endpoint_text_per_distinct_pair_as_keys_render_it():
    from dr_inspect.columnar.addresses import endpoints_text

    ips = pd.Series(pd.Categorical(["1.2.3.4", "::1", "1.2.3.4", "1.2.3.4"]))
    ports = np.array([80, -1, 65535, 80])
    got = list(addresses.endpoint_category(ips, ports))
    assert got == list(endpoints_text(ips.astype(object), ports))
    assert got == ["1.2.3.4:80", "[::1]:-1", "1.2.3.4:65535", "1.2.3.4:80"]


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", ""]),
                               st.integers(-1, 2), st.integers(0, 2), st.integers(-1, 1),
                               st.integers(0, 2), st.integers(-1, 2), st.integers(0, 1)),
                     min_size=1, max_size=30),
       split=st.integers(0, 30))
def test_loose_keys_are_dense_ids_of_the_loose_key_and_ip_id(rows, split):
    """Equal ids exactly where the loose key (and the IP ID) are equal, over both row sets."""
    from dr_inspect.columnar.tcp_view import packet_ids

    ip, port, seq, ack, flags, ip_id, dst = zip(*rows)
    tv = pd.DataFrame({
        "src_ip": pd.Categorical(ip, categories=["", "10.0.0.1", "10.0.0.2"]),
        "dst_ip": pd.Categorical(["10.0.0.9"] * len(rows)), "src_port": np.array(port, np.int32),
        "dst_port": np.array(dst, np.int32), "seq": np.array(seq, np.int64),
        "ack": np.array(ack, np.int64), "tcp_flags": np.array(flags, np.int16),
        "ip_id": np.array(ip_id, np.int64), "payload_len": np.zeros(len(rows), np.int32)})
    a = np.arange(min(split, len(rows)))
    b = np.arange(len(rows))[::-1][: max(len(rows) - split, 1)]
    keys = copy_keys.loose_keys(tv, packet_ids(tv), a, b)
    loose = np.concatenate([keys.loose_a, keys.loose_b])
    ident = np.concatenate([keys.ident_a, keys.ident_b])
    at = np.concatenate([a, b])
    assert loose.max(initial=-1) < keys.n_loose and ident.max(initial=-1) < keys.n_ident
    values = [tuple(r[:5]) for r in rows]
    for i in range(len(at)):
        for j in range(len(at)):
            same_loose = values[at[i]] == values[at[j]]
            assert (loose[i] == loose[j]) == same_loose
            assert (ident[i] == ident[j]) == (same_loose and ip_id[at[i]] == ip_id[at[j]])


def test_nearest_by_key_on_dense_ids_as_on_hashes():
    lk = np.array([3, 1, 1, 0, 2], dtype=np.int64)
    lt = np.array([10, 5, 9, 0, 4], dtype=np.int64)
    rk = np.array([1, 1, 3, 2, 2], dtype=np.int64)
    rt = np.array([6, 8, 30, 1, 5], dtype=np.int64)
    want = group.nearest_by_key(lk.astype(np.uint64) * 7919, lt, rk.astype(np.uint64) * 7919,
                                  rt, 3)
    assert group.nearest_by_key(lk, lt, rk, rt, 3, n_keys=4).tolist() == want.tolist()
    assert want.tolist() == [-1, 0, 1, -1, 4]


def test_reply_connections_pair_rows_with_every_connection_they_match():
    """By (client address, client port, VIP port): a lookup when each key is one connection, a
    join when a client uses one port toward two VIPs on one port."""
    ips = pd.CategoricalDtype(pd.Index(["", "10.0.0.1", "10.0.0.2", "10.9.9.9", "10.9.9.8"],
                                       dtype=object))

    def view(dst_ip, dst_port, src_port):
        return pd.DataFrame({"dst_ip": pd.Categorical(dst_ip, dtype=ips),
                             "dst_port": np.array(dst_port, np.int32),
                             "src_port": np.array(src_port, np.int32)})

    tv = view(["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1", ""],
              [4000, 4000, 4001, 4000, 4000], [80, 80, 80, 443, 80])
    for clients, want in [
            # one connection per key
            (([["10.0.0.1", 4000, 80], ["10.0.0.2", 4000, 80], ["10.0.0.1", 4000, 443]]),
             [(0, 0), (1, 1), (3, 2)]),
            # 10.0.0.1:4000 -> two VIPs on port 80: row 0 pairs with both
            (([["10.0.0.1", 4000, 80], ["10.0.0.1", 4000, 80], ["", 4000, 80]]),
             [(0, 0), (0, 1), (4, 2)])]:
        conns = pd.DataFrame({"client_ip": pd.Categorical([c[0] for c in clients], dtype=ips),
                              "client_port": np.array([c[1] for c in clients], np.int64),
                              "vip_port": np.array([c[2] for c in clients], np.int64)})
        maybe = np.arange(len(tv))
        lpos, cpos = replies._reply_connections(tv, maybe, conns)
        assert list(zip(lpos.tolist(), cpos.tolist())) == want
        # the same pairs when the addresses are not shared categoricals (hashed keys)
        plain = conns.assign(client_ip=conns["client_ip"].astype(object))
        lpos, cpos = replies._reply_connections(tv, maybe, plain)
        assert list(zip(lpos.tolist(), cpos.tolist())) == want


def test_endpoints_render_each_row_as_the_per_row_format():
    ips = pd.Series(pd.Categorical(["1.2.3.4", "::1", "1.2.3.4", None]))
    ports = np.array([80, -1, 65535, 7])
    assert list(addresses.endpoint_strings(ips, ports)) == ["1.2.3.4:80", "[::1]:-1", "1.2.3.4:65535",
                                                   ":7"]


def test_arp_causes_per_distinct_case_equal_the_per_row_texts():
    def per_row(t, prev_claimer):
        """The texts rendered for every row and picked by case (the former implementation)."""
        mac, vip = t["claimer_mac"], t["vip"]
        request = t["kind"].isin(["request", "ns"]).to_numpy()
        rs_claim = (t["claimer"] + " (" + mac + ") answers ARP/ND for the VIP " + vip
                    + ": set arp_ignore=1 and arp_announce=2 on its VIP-segment interface (VIP on"
                    " lo only)")
        stranger = ("unknown host " + mac + " claims the VIP " + vip + ": an address conflict; "
                    "find it with arping -D and remove the VIP there")
        failover = ("the VIP " + vip + " moved from director "
                    + prev_claimer.fillna("?").astype(str) + " to " + mac + ": a director "
                    "failover (one change is a warning; more mean two directors claim it: check "
                    "keepalived priorities and VRRP)")
        announce = (t["claimer"] + " (" + mac + ") sends ARP requests from the VIP " + vip
                    + ": set arp_announce=2 on that real server's interfaces")
        return np.where(request, announce, np.where(
            t["failover"], failover, np.where(t["is_rs"], rs_claim,
                                              np.where(t["is_director"], "", stranger))))

    t = pd.DataFrame({
        "kind": ["request", "reply", "reply", "gratuitous", "na", "ns", "reply", "reply"],
        "claimer_mac": ["m1", "m2", "m3", "m2", "m4", "m1", "m5", "m2"],
        "vip": ["", "10.0.0.9", "10.0.0.9", "10.0.0.9", "fd00::9", "", "10.0.0.9", "10.0.0.9"],
        "claimer": ["director", "director", "real server rs1", "director", "unknown host",
                    "director", "unknown host", "director"],
        "failover": [False, False, False, True, False, False, False, True],
        "is_rs": [False, False, True, False, False, False, False, False],
        "is_director": [True, True, False, True, False, True, False, True]})
    prev = pd.Series([np.nan, np.nan, "m2", "m9", np.nan, np.nan, "m3", np.nan], dtype=object)
    got = arp._arp_causes(t, prev)
    assert list(got) == list(per_row(t, prev))
    assert list(got.categories) == list(pd.unique(per_row(t, prev)))


def test_present_values_of_a_column_as_unique_gives_them():
    for s in (pd.Series(pd.Categorical(["a", None, "a"], categories=["z", "a"])),
              pd.Series(pd.Categorical(["a", "b"])), pd.Series(["a", None], dtype=object)):
        want = set(s.dropna().unique()) | ({""} if s.isna().any() else set())
        assert forwards._present(s) == want


def test_flow_first_frame_is_the_first_ingress_syn_else_the_first_frame():
    from dr_inspect.decode.schema import ACK, SYN
    # flow 1: a SYN after an earlier data frame; flow 2: no SYN (its earliest frame, the first of
    # two at one time); flow 3: nothing
    tovt = pd.DataFrame({
        "leg": pd.Categorical(["ingress", "ingress", "forwarded", "ingress", "ingress"],
                              dtype=to_vip.LEGS),
        "flow_id": np.array([1, 1, 2, 2, 2]), "ts_ns": np.array([5, 9, 3, 7, 3]),
        "point": pd.Categorical(["e", "e", "l", "e", "e"]),
        "tcp_flags": np.array([ACK, SYN, ACK, ACK, ACK], dtype=np.int16),
        "frame": np.arange(1, 6), "seq": np.array([10, 20, 30, 40, 50])})
    out: dict = {}
    flows._flows_from_to_vip(tovt, 3, out)
    assert out["frame"].tolist() == [2, 3, -1] and out["ts_ns"].tolist() == [9, 3, -1]
    assert out["syn_seen"].tolist() == [True, False, False]
