"""Correlator: combining points, hops, clock offsets, forwarded copies (incl. GRO), flows."""

from __future__ import annotations

import pandas as pd
import pytest
from rulecaps import CLIENT_IP, RS, VIP, DrCapture

from dr_inspect.analysis.correlation import correlate
from dr_inspect.correlate.combine import combine_points


def test_combine_points_unions_categories():
    a = pd.DataFrame({"frame": [1, 2], "ts_ns": [1, 2],
                      "src_ip": pd.Categorical(["10.0.0.1", "10.0.0.2"])})
    b = pd.DataFrame({"frame": [1], "ts_ns": [3], "src_ip": pd.Categorical(["10.0.0.3"])})
    pk = combine_points({"a": a, "b": b})
    assert isinstance(pk["src_ip"].dtype, pd.CategoricalDtype)
    assert list(pk["src_ip"].astype(object)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert list(pk["point"].astype(object)) == ["a", "a", "b"]
    assert pk["ttl"].isna().all() and "row" not in pk.columns   # tcp_view numbers the rows


def test_hops_pair_each_forwarded_packet(tmp_path):
    corr = correlate(DrCapture().healthy(connections=2).decoded(tmp_path))
    hops = corr.hops
    # 2 connections x (SYN, ACK, request): seen at br_e and again at br_lvs
    assert len(hops) == 6
    assert set(zip(hops["a_point"], hops["b_point"])) == {("br_e", "br_lvs")}
    assert hops["mac_changed"].all() and (hops["ttl_drop"] == 1).all()
    assert (hops["delta_ns"] > 0).all()


def test_shared_segment_hops_are_at_one_point(tmp_path):
    corr = correlate(DrCapture("shared-segment").healthy(connections=2).decoded(tmp_path))
    assert len(corr.hops) == 6 and set(corr.hops["a_point"]) == {"lan"}
    fw = corr.tables["forwards"]
    assert fw["has_copy"].all() and set(fw["copy_point"]) == {"lan"}
    assert list(fw["real_server"][:3]) == ["rs1"] * 3


def test_forwards_table_matches_copies(tmp_path):
    fw = correlate(DrCapture().healthy(connections=2).decoded(tmp_path)).tables["forwards"]
    assert len(fw) == 6 and fw["has_copy"].all()
    assert (fw["copy_point"] == "br_lvs").all() and (fw["copy_src_ip"] == CLIENT_IP).all()
    assert (fw["copy_dst_ip"] == VIP).all() and (fw["ttl_drop"] == 1).all()
    assert list(fw["copy_dst_mac"]) == [RS[0].mac_lvs] * 3 + [RS[1].mac_lvs] * 3
    assert fw["delay_us"].between(29, 31).all()
    assert (fw["copies"] == 1).all() and (fw["copy_ttls"] == 1).all()


def test_unforwarded_packet_has_no_copy_and_a_cause(tmp_path):
    cap = DrCapture().healthy(connections=2)
    cap.connection(41000, drop=("ack", "req"))
    cap.connection(41001)
    fw = correlate(cap.decoded(tmp_path)).tables["forwards"]
    lost = fw[~fw["has_copy"]]
    assert len(lost) == 2 and set(lost["src_port"]) == {41000}
    assert (lost["copy_frame"] == -1).all() and lost["likely_cause"].str.len().gt(0).all()


def test_gro_coalesced_segments_matched_by_seq_range(tmp_path):
    cap = DrCapture().healthy(connections=1)
    cap.connection(41000, gro=True)
    corr = correlate(cap.decoded(tmp_path))
    fw = corr.tables["forwards"]
    gro = fw[fw["coalesced"]]
    assert len(gro) == 3 and gro["has_copy"].all()
    assert gro["copy_frame"].nunique() == 1 and (gro["copy_payload_len"] == 40).all()
    assert corr.stats["coalesced"] == 3 and corr.stats["not_forwarded"] == 0


def test_clock_offset_estimated_and_corrected(tmp_path):
    cap = DrCapture().healthy()
    cap.shift("br_lvs", 5.0)
    corr = correlate(cap.decoded(tmp_path))
    off = corr.offsets_estimated["br_lvs"]
    assert abs(off - 5_000_030_000) < 10_000
    assert corr.offsets_applied["br_lvs"] == off
    fw = corr.tables["forwards"]
    assert fw["has_copy"].all() and fw["delay_us"].abs().max() < 100


def test_small_offsets_are_not_corrected(tmp_path):
    corr = correlate(DrCapture().healthy().decoded(tmp_path))
    assert corr.offsets_applied == {"br_e": 0, "br_lvs": 0}
    assert 0 < corr.offsets_estimated["br_lvs"] < 1_000_000


def test_flows_table(tmp_path):
    cap = DrCapture().healthy(connections=2)
    cap.connection(41000, answer="rst", syn_retransmit=True)
    cap.connection(41001)
    flows = correlate(cap.decoded(tmp_path)).tables["flows"]
    assert list(flows["flow_id"]) == [1, 2, 3, 4]
    assert list(flows["real_server"]) == ["rs1", "rs2", "rs1", "rs1"]
    ok = flows.iloc[0]
    assert ok["synack_seen"] and ok["syn_forwarded"] and ok["packets_in"] == 3
    assert ok["packets_out"] == 2 and ok["rs_count"] == 1
    assert abs(ok["forward_delay_us"] - 30) < 1 and abs(ok["response_us"] - 170) < 1
    refused = flows.iloc[2]
    assert refused["refused"] and not refused["synack_seen"] and refused["syn_retransmits"] == 1
    assert "RST" in refused["likely_cause"]


def test_ipv6_without_ip_id(tmp_path):
    corr = correlate(DrCapture(v6=True).healthy(connections=2).decoded(tmp_path))
    fw = corr.tables["forwards"]
    assert fw["has_copy"].all() and (fw["ip_id"] == -1).all() and (fw["copy_ip_id"] == -1).all()
    assert len(corr.hops) == 6


def test_tso_split_copies_match_the_big_segment(tmp_path):
    """One 40-byte segment reaches the director; the real-server side sees it as 2 x 20 bytes."""
    from rulecaps import CLIENT_MAC, DIR_E_MAC, DIR_LVS_MAC, PORT, T0
    cap = DrCapture().healthy(connections=1)
    c = cap
    big = c.tcp_frame(CLIENT_MAC, DIR_E_MAC, CLIENT_IP, VIP, 41000, PORT, "PA", 5000, 9000, 64, 77,
                      b"z" * 40)
    c.emit("br_e", big, T0 + 1.0)
    for i in range(2):
        part = c.tcp_frame(DIR_LVS_MAC, RS[0].mac_lvs, CLIENT_IP, VIP, 41000, PORT, "PA",
                           5000 + 20 * i, 9000, 63, 77 + i, b"z" * 20)
        c.emit("br_lvs", part, T0 + 1.0 + 30e-6 * (i + 1))
    corr = correlate(cap.decoded(tmp_path))
    fw = corr.tables["forwards"]
    row = fw[fw["src_port"] == 41000].iloc[0]
    assert row["has_copy"] and row["coalesced"] and row["copy_payload_len"] == 20


def test_a_retransmission_is_not_the_copy_of_a_dropped_original(tmp_path):
    """The director drops the first request; the client's retransmission (new IP ID, same seq)
    is forwarded: the first stays unforwarded and the copy belongs to the retransmission."""
    from rulecaps import CLIENT_MAC, DIR_E_MAC, DIR_LVS_MAC, PORT, T0
    cap = DrCapture().healthy(connections=1)
    first = cap.tcp_frame(CLIENT_MAC, DIR_E_MAC, CLIENT_IP, VIP, 41000, PORT, "PA", 5000, 9000, 64,
                          300, b"q" * 10)
    again = cap.tcp_frame(CLIENT_MAC, DIR_E_MAC, CLIENT_IP, VIP, 41000, PORT, "PA", 5000, 9000, 64,
                          301, b"q" * 10)
    copy = cap.tcp_frame(DIR_LVS_MAC, RS[0].mac_lvs, CLIENT_IP, VIP, 41000, PORT, "PA", 5000, 9000,
                         63, 301, b"q" * 10)
    cap.emit("br_e", first, T0 + 1.0)
    cap.emit("br_e", again, T0 + 1.2)
    cap.emit("br_lvs", copy, T0 + 1.2 + 30e-6)
    fw = correlate(cap.decoded(tmp_path)).tables["forwards"]
    mine = fw[fw["src_port"] == 41000].sort_values("ts_ns")
    assert list(mine["ip_id"]) == [300, 301]
    assert list(mine["has_copy"]) == [False, True]
    assert mine.iloc[1]["copy_ip_id"] == 301


def test_copy_times_stay_exact_when_some_frames_are_not_forwarded():
    # a set where the director drops frames: rows without a copy must not turn the copies'
    # nanosecond timestamps (~1.8e18) into floats (256 ns steps) and skew delay_us
    from conftest import ROOT

    from dr_inspect.analysis.paths import analyse_paths
    folder = ROOT / "captures" / "fault-director-drops-invalid"
    analysis = analyse_paths([folder])
    fw, pk = analysis.tables["forwards"], analysis.packets
    assert (~fw["has_copy"]).any() and fw["has_copy"].any()
    ts = pk.set_index([pk["point"].astype(object), "frame"])["ts_ns"]
    hc = fw[fw["has_copy"]]
    copy_ts = ts.reindex(list(zip(hc["copy_point"], hc["copy_frame"]))).to_numpy()
    orig_ts = ts.reindex(list(zip(hc["point"], hc["frame"]))).to_numpy()
    assert (hc["copy_ts_ns"].to_numpy() == copy_ts).all()
    assert (hc["delay_us"].to_numpy() == (copy_ts - orig_ts) / 1000.0).all()
    assert (fw.loc[~fw["has_copy"], "copy_ts_ns"] == -1).all()


def test_the_combined_table_carries_only_the_columns_the_stages_read():
    """Decoded columns no verify stage reads are left out of verify's combined table (memory per
    frame), but stay in the decoder's table (`decode --all-columns`)."""
    import re

    from conftest import ROOT

    from dr_inspect.decode import schema
    unread = [c for c in schema.DTYPES if c not in schema.ANALYSED_COLUMNS]
    assert unread and set(unread) <= set(schema.EXTRA_COLUMNS)
    assert list(combine_points({"a": pd.DataFrame()}).columns) == ["point"] + \
        schema.ANALYSED_COLUMNS
    # a stage that starts to read one must mark it analysed in decode/schema.py
    readers = [f"{path.relative_to(ROOT)}: {name}"
               for path in sorted((ROOT / "dr_inspect").rglob("*.py"))
               if "decode" not in path.parts
               for name in unread if re.search(rf"[\"']{name}[\"']", path.read_text())]
    assert readers == []


def test_combine_points_keeps_codes_and_missing_values_across_points():
    import numpy as np
    a = pd.DataFrame({"frame": [1, 2, 3], "ts_ns": [1, 2, 3],
                      "src_ip": pd.Categorical(["10.0.0.1", None, "10.0.0.2"]),
                      "dst_ip": np.array(["10.0.0.9", None, "10.0.0.9"], dtype=object),
                      "ttl": pd.array([64, None, 63], dtype="UInt8")}, index=[7, 8, 9])
    # the same categories in another order, and a point with none of these columns
    b = pd.DataFrame({"frame": [1, 2], "ts_ns": [4, 5],
                      "src_ip": pd.Categorical(["10.0.0.2", "10.0.0.1"],
                                               categories=["10.0.0.2", "10.0.0.1"])})
    c = pd.DataFrame({"frame": np.array([1], dtype=np.int32), "ts_ns": [6]})
    pk = combine_points({"a": a, "b": b, "c": c, "empty": pd.DataFrame()})
    assert list(pk.index) == list(range(6))
    def values(col):
        return [v if isinstance(v, (str, int)) else None for v in pk[col].astype(object)]
    assert values("src_ip") == ["10.0.0.1", None, "10.0.0.2", "10.0.0.2",
                                                     "10.0.0.1", None]
    assert values("dst_ip") == ["10.0.0.9", None, "10.0.0.9", None, None, None]
    assert values("ttl") == [64, None, 63, None, None, None]
    assert pk["frame"].dtype == np.int64 and pk["point"].astype(object).tolist() == [
        "a", "a", "a", "b", "b", "c"]
    assert list(pk["point"].cat.categories) == ["a", "b", "c", "empty"]
    # a shared categorical: equal addresses have equal codes whichever point they came from
    codes = pk["src_ip"].cat.codes.to_numpy()
    assert codes[0] == codes[4] and codes[2] == codes[3] and codes[1] == codes[5] == -1


def test_tcp_view_gathers_tcp_rows_with_point_names_sorted(tmp_path):
    import numpy as np

    from dr_inspect.columnar.tcp_view import tcp_view
    packets = DrCapture().healthy(connections=2).decoded(tmp_path)
    # points named against their order, so that sorted and first-seen order differ
    packets = {"zz": packets["br_e"], "aa": packets["br_lvs"]}
    pk = combine_points(packets)
    tv = tcp_view(pk)
    tcp = (pk["proto"] == 6).fillna(False).to_numpy(dtype=bool)
    assert tv["row"].tolist() == np.flatnonzero(tcp).tolist()
    assert list(tv["point"].cat.categories) == ["aa", "zz"]
    assert tv["point"].to_numpy(dtype=object).tolist() == (
        pk["point"].to_numpy(dtype=object)[tcp].tolist())
    assert tv["point"].isin(["zz"]).sum() == (tv["point"] == "zz").sum() > 0
    assert tv["frame"].tolist() == pk["frame"][tcp].tolist()
    assert tv["seq"].tolist() == pk["seq"][tcp].astype("int64").tolist()
    assert tv["src_port"].dtype == np.int32 and tv["ttl"].dtype == np.int16


def test_hops_and_offsets_from_view_codes_equal_those_from_plain_columns(tmp_path):
    from pandas.testing import assert_frame_equal

    from dr_inspect.analysis.correlation import prepare
    from dr_inspect.correlate.hops import estimate_offsets, find_hops
    cap = DrCapture().healthy(connections=3)
    cap.shift("br_lvs", 2.0)
    packets = cap.decoded(tmp_path)
    pk, tv, est, applied = prepare(packets)
    assert applied["br_lvs"] == est["br_lvs"] != 0
    ts_ns = pk["ts_ns"].to_numpy()
    assert (pk["ts"].to_numpy() == ts_ns - (pk["point"] == "br_lvs").to_numpy() * est["br_lvs"]).all()
    assert (tv["ts"].to_numpy() == pk["ts"].to_numpy()[tv["row"].to_numpy()]).all()
    # a view as it was: point names as objects, no packet ids, MACs as plain text
    plain = tv.drop(columns=["packet"]).assign(
        point=tv["point"].to_numpy(dtype=object), src_mac=tv["src_mac"].to_numpy(dtype=object),
        dst_mac=tv["dst_mac"].to_numpy(dtype=object))
    hops = find_hops(tv, 500_000_000)
    assert len(hops) == 9
    assert_frame_equal(hops, find_hops(plain, 500_000_000))
    assert estimate_offsets(tv, ["br_e", "br_lvs"]) == estimate_offsets(plain, ["br_e", "br_lvs"])


def _offsets_by_merge(tv, points):
    """estimate_offsets as first written: first sightings by groupby, pairs by merge."""
    import numpy as np
    f = (pd.DataFrame({"k": tv["strict_key"].to_numpy(), "point": tv["point"].to_numpy(dtype=object),
                       "ts": tv["ts_ns"].to_numpy()})
         .groupby(["k", "point"], as_index=False)["ts"].min())
    est, known = {p: 0 for p in points}, {points[0]}
    for _ in range(len(points)):
        progressed = False
        for p in points:
            if p in known:
                continue
            best = None
            for ref in sorted(known):
                m = f[f["point"] == p].merge(f[f["point"] == ref], on="k", suffixes=("", "_ref"))
                d = (m["ts"] - m["ts_ref"]).to_numpy()
                d = d[np.abs(d) <= 60_000_000_000]
                if len(d) and (best is None or len(d) > best[1]):
                    best = (int(np.median(d)) + est[ref], len(d))
            if best is not None:
                est[p], progressed = best[0], True
                known.add(p)
        if not progressed:
            break
    return est


def test_offsets_of_points_chained_through_others_equal_a_merge_of_first_sightings():
    import numpy as np

    from dr_inspect.correlate.hops import estimate_offsets
    rng = np.random.default_rng(7)
    n = 3000
    # a: every packet; b: most of them, 2 s later; c: some of b's, 3.5 s after b; d: none shared;
    # e: only packets also seen at c (not at a or b), 1 s after c
    keys = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    base = np.sort(rng.integers(0, 10**11, size=n))
    at_b = rng.random(n) < 0.7
    at_c = at_b & (rng.random(n) < 0.3)
    parts = [("a", keys, base), ("a", keys[::5], base[::5] + 7),          # seen twice at a
             ("b", keys[at_b], base[at_b] + 2_000_000_000 + rng.integers(0, 50_000, at_b.sum())),
             ("c", keys[at_c], base[at_c] + 5_500_000_000 + rng.integers(0, 50_000, at_c.sum())),
             ("d", rng.integers(0, 2**63, size=50, dtype=np.int64).astype(np.uint64),
              np.arange(50))]
    only_c = rng.integers(0, 2**63, size=200, dtype=np.int64).astype(np.uint64)
    t_c = np.sort(rng.integers(0, 10**11, size=200)) + 5_500_000_000
    parts += [("c", only_c, t_c), ("e", only_c, t_c + 1_000_000_000 + rng.integers(0, 9, 200))]
    # a few deltas beyond the estimation window are left out
    parts.append(("b", keys[:20], base[:20] + 90_000_000_000))
    tv = pd.DataFrame({"point": np.concatenate([[p] * len(k) for p, k, _ in parts]).astype(object),
                       "strict_key": np.concatenate([k for _, k, _ in parts]),
                       "ts_ns": np.concatenate([t for _, _, t in parts]).astype(np.int64)})
    tv = tv.sample(frac=1.0, random_state=3).reset_index(drop=True)
    points = ["a", "e", "c", "b", "d"]
    est, applied = estimate_offsets(tv, points)
    assert est == _offsets_by_merge(tv, points)
    assert abs(est["b"] - 2_000_025_000) < 5_000 and abs(est["c"] - 5_500_025_000) < 5_000
    assert abs(est["e"] - est["c"] - 1_000_000_004) <= 5
    assert est["d"] == 0 and applied["c"] == est["c"]
    # the same with the view's categorical point column
    cat = tv.assign(point=pd.Categorical(tv["point"], categories=["e", "d", "c", "b", "a"]))
    assert estimate_offsets(cat, points) == (est, applied)


@pytest.mark.parametrize("n", [1, 126, 127, 128, 32766, 32767, 40000])
def test_code_dtype_is_what_pandas_gives_a_categorical(n):
    from dr_inspect.correlate.combine import code_dtype
    assert pd.Categorical.from_codes([0], categories=range(n)).codes.dtype == code_dtype(n)


def test_set_wide_values_are_used_as_given(tmp_path):
    """correlate(set_wide=...) takes the VIPs, topology and clock offsets of a whole set (the
    distributed engine's buckets): neither learned nor estimated from these packets."""
    import dataclasses

    from dr_inspect.analysis.correlation import SetWide
    from dr_inspect.topology.model import LearnedVips
    packets = DrCapture().healthy(connections=2).decoded(tmp_path)
    alone = correlate(packets)
    topo = dataclasses.replace(alone.topology, scheduler="wlc", shape="two-segment")
    offsets = ({"br_e": 0, "br_lvs": 2_000_000}, {"br_e": 0, "br_lvs": 2_000_000})
    given = correlate(packets, set_wide=SetWide(vips=LearnedVips(alone.topology.vips, []),
                                                topology=topo, offsets=offsets))
    assert given.topology is topo
    assert (given.offsets_estimated, given.offsets_applied) == offsets
    assert given.offsets_applied is not offsets[1]             # a copy: the caller's stays
    # the applied offset moves br_lvs's frames 2 ms earlier in the corrected time
    shift = given.packets["ts_ns"] - given.packets["ts"]
    assert set(shift[given.packets["point"] == "br_lvs"]) == {2_000_000}
    assert alone.offsets_applied == {"br_e": 0, "br_lvs": 0}
