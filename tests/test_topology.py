"""Topology learned from traffic (both shapes, IPv4/IPv6), pinned by flags or topology.toml."""

from __future__ import annotations

import pytest
from rulecaps import (CLIENT_MAC, DIR_E_MAC, DIR_LVS_MAC, RS, VIP, VIP6, DrCapture,
                      unrelated_capture)

from dr_inspect.analysis.correlation import correlate
from dr_inspect.errors import TopologyError
from dr_inspect.topology import load_topology_file, parse_vip, pins_from_dict


def learn(tmp_path, cap: DrCapture, pins=None):
    return correlate(cap.decoded(tmp_path / "set"), pins=pins).topology


def test_two_segment_topology(tmp_path):
    topo = learn(tmp_path, DrCapture().healthy())
    model = topo.to_model()
    assert model.vips == [f"{VIP}:8000"]
    assert model.director_macs == {"vip-segment": [DIR_E_MAC], "rs-segment": [DIR_LVS_MAC]}
    assert model.point_roles == {"br_e": "vip-segment", "br_lvs": "rs-segment"}
    assert model.shape == "two-segment"
    assert [(r.name, r.macs, r.rip) for r in model.real_servers] == [
        (rs.name, {"rs-segment": rs.mac_lvs, "vip-segment": rs.mac_e}, rs.rip) for rs in RS]
    assert CLIENT_MAC in topo.client_macs and not model.conflicts


def test_shared_segment_topology_ipv6(tmp_path):
    topo = learn(tmp_path, DrCapture("shared-segment", v6=True).healthy()).to_model()
    assert topo.shape == "shared-segment"
    assert topo.vips == [f"[{VIP6}]:8000"]
    assert topo.point_roles == {"lan": "both"}
    assert topo.director_macs == {"both": [DIR_E_MAC]}
    assert [r.macs for r in topo.real_servers] == [{"both": rs.mac_e} for rs in RS]


def test_roles_learned_without_a_manifest(tmp_path):
    cap = DrCapture().healthy()
    folder = cap.write(tmp_path / "loose", manifest=False)
    from dr_inspect.analysis.paths import verify_paths
    report = verify_paths([folder / "br_lvs.pcap", folder / "br_e.pcap"])
    assert report.topology.point_roles == {"br_lvs": "rs-segment", "br_e": "vip-segment"}
    assert report.verdict == "pass"


def test_single_point_learns_vip_from_the_reply_mac(tmp_path):
    cap = DrCapture().healthy()
    cap.frames = {"br_e": cap.frames["br_e"]}
    topo = correlate(_decode_only(tmp_path, cap)).topology
    assert topo.vips == [(VIP, 8000)] and topo.director_in == {DIR_E_MAC}
    assert topo.shape == "single-point"
    assert {rs.macs.get("vip-segment") for rs in topo.real_servers} == {RS[0].mac_e, RS[1].mac_e}


def _decode_only(tmp_path, cap):
    from dr_inspect.decode import decode_file
    cap.roles = {p: cap.roles[p] for p in cap.frames}
    folder = cap.write(tmp_path / "x")
    return {p: decode_file(folder / f"{p}.pcap", point=p).packets for p in cap.frames}


def test_unrelated_traffic_has_no_vip(tmp_path):
    with pytest.raises(TopologyError, match="no LVS-DR virtual service found"):
        learn(tmp_path, unrelated_capture())


def test_missing_macs_are_no_evidence_of_dr(tmp_path):
    """A Linux cooked capture keeps only the sender's address: the SYN's destination MAC is
    missing. That is no rewritten MAC; without a pin there is no VIP (once a missing MAC counted
    as one that differs)."""
    from scapy.all import CookedLinux, wrpcap  # type: ignore[import-untyped]

    from dr_inspect.decode import decode_file
    cap = DrCapture().healthy(arp=False)
    frames = []
    for pkt in sorted(cap.frames["br_e"], key=lambda p: float(p.time)):
        cooked = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                             src=bytes.fromhex(pkt.src.replace(":", "")) + b"\0\0",
                             proto=pkt.type) / pkt.payload
        cooked.time = pkt.time
        frames.append(cooked)
    wrpcap(str(tmp_path / "any.pcap"), frames, linktype=113)
    packets = {"any": decode_file(tmp_path / "any.pcap", point="any").packets}
    assert packets["any"]["dst_mac"].isna().all() and packets["any"]["src_mac"].notna().all()
    with pytest.raises(TopologyError, match="no LVS-DR virtual service found"):
        correlate(packets)
    # pinned, the VIP is taken as given
    pins = pins_from_dict({"vips": [f"{VIP}:8000"]}, "flags")
    assert correlate(packets, pins=pins).topology.vips == [(VIP, 8000)]


def test_pinned_values_win_and_contradictions_are_reported(tmp_path):
    pins = pins_from_dict({
        "vips": [f"{VIP}:8000", "192.168.7.99:80"],
        "director_macs": {"vip-segment": [DIR_E_MAC, "02:00:00:00:00:99"]},
        "roles": {"br_e": "rs-segment"},
        "real_servers": [{"name": "web-a", "rip": "10.0.0.99",
                          "macs": {"rs-segment": RS[0].mac_lvs}}],
    }, "topology.toml")
    topo = learn(tmp_path, DrCapture().healthy(), pins)
    model = topo.to_model()
    assert model.vips == [f"{VIP}:8000", "192.168.7.99:80"]
    text = "\n".join(model.conflicts)
    assert "192.168.7.99:80: no TCP traffic" in text
    assert "02:00:00:00:00:99" in text
    assert "br_e is pinned as rs-segment but its traffic looks like vip-segment" in text
    assert "web-a: RIP 10.0.0.99 but the traffic shows 10.0.0.11" in text
    assert RS[1].mac_lvs in text  # forwarded to, but not a pinned real server
    assert [r.name for r in model.real_servers] == ["web-a"]
    assert model.point_roles["br_e"] == "rs-segment"
    assert model.pinned["vips"] == [f"{VIP}:8000", "192.168.7.99:80"]


def test_bare_vip_pin_takes_ports_from_syns(tmp_path):
    pins = pins_from_dict({"vips": [VIP]}, "flags")
    assert learn(tmp_path, DrCapture().healthy(), pins).vips == [(VIP, 8000)]


@pytest.mark.parametrize("text,expected", [
    ("192.168.7.33:8000", ("192.168.7.33", 8000)), ("[fd00::33]:443", ("fd00::33", 443)),
    ("fd00::33", ("fd00::33", None)), ("10.0.0.1", ("10.0.0.1", None))])
def test_parse_vip(text, expected):
    assert parse_vip(text) == expected


@pytest.mark.parametrize("text", ["nope:80", "1.2.3.4:http", "1.2.3.4:70000"])
def test_parse_vip_rejects(text):
    with pytest.raises(TopologyError, match="VIP"):
        parse_vip(text)


@pytest.mark.parametrize("body,message", [
    ('vips = ["1.2.3.4:80"]\nvip = "x"\n', "unknown key(s) vip"),
    ('[director_macs]\nvip-segment = ["zz"]\n', "not a MAC address"),
    ('[director_macs]\ncore = ["02:00:00:00:00:01"]\n', "unknown key(s) core"),
    ('[roles]\nbr_e = "edge"\n', "roles.br_e"),
    ('[[real_servers]]\nname = "a"\nmac = "x"\n', "unknown key(s) mac"),
    ('shape = "ring"\n', "shape"),
    ('scheduler = 5\n', "scheduler must be an IPVS scheduler name"),
    ('vips = [', "invalid TOML"),
])
def test_topology_file_is_validated_strictly(tmp_path, body, message):
    path = tmp_path / "topology.toml"
    path.write_text(body)
    with pytest.raises(TopologyError) as exc:
        load_topology_file(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def _view(tmp_path, cap: DrCapture):
    from dr_inspect.analysis.correlation import prepare
    packets = cap.decoded(tmp_path / "set")
    pk, tv, _, _ = prepare(packets)
    return pk, tv, list(packets)


def test_learning_reads_the_view_however_its_columns_are_stored(tmp_path):
    from dr_inspect.topology.learn import learn_topology
    pk, tv, points = _view(tmp_path, DrCapture().healthy())
    expected = learn_topology(pk, tv, points)
    as_categorical = tv.assign(point=tv["point"].astype("category"))
    assert learn_topology(pk, as_categorical, points) == expected
    # no packets-table row numbers / no hashed packet key: taken from the view's own columns
    assert learn_topology(pk, tv.drop(columns=["row"]), points) == expected
    assert learn_topology(pk, tv.drop(columns=["strict_key"]), points) == expected


def test_legs_rank_by_ttl_then_time_then_first_in_the_view():
    import numpy as np

    from dr_inspect.topology.legs import _leg_votes
    # rows: packet key, src MAC code, dst MAC code, TTL, time
    rows = [(7, 0, 1, 64, 10),   # packet 7: original (highest TTL) to MAC 1
            (7, 2, 3, 63, 11),   # two copies tie on TTL and time: the first in the view ranks 1
            (7, 2, 4, 63, 11),
            (8, 0, 1, 64, 21),   # packet 8: a TTL tie; leg (0, 1) is earliest by its later row
            (8, 2, 3, 64, 20),
            (8, 0, 1, 64, 19),
            (9, 0, 1, 64, 30)]   # seen once: no leg votes
    key, src, dst, ttl, ts = (np.array(c) for c in zip(*rows))
    votes = _leg_votes(key.astype(np.uint64), src, dst, ttl.astype(np.int16), ts, 5)
    in_votes, rs_votes, copy_src, copy_dst = (votes.in_votes, votes.rs_votes, votes.copy_src,
                                              votes.copy_dst)
    assert in_votes.tolist() == [0, 2, 0, 0, 0]
    # real-server votes are the first copies only (a later leg may be a loop coming back)
    assert rs_votes.tolist() == [0, 0, 0, 2, 0]
    # the first copies' distinct (src, dst): both packets' rank 1 went 2 -> 3
    assert list(zip(copy_src.tolist(), copy_dst.tolist())) == [(2, 3)]


def test_legs_of_packets_seen_twice_rank_the_same_way():
    import numpy as np

    from dr_inspect.topology.legs import _leg_votes
    rows = [(1, 0, 1, 64, 5), (1, 2, 3, 63, 6),    # TTL falls
            (2, 2, 3, 64, 8), (2, 0, 1, 64, 7),    # TTL tie: the earlier is the original
            (3, 0, 1, 64, 9), (3, 2, 4, 64, 9)]    # TTL and time tie: the first in the view
    key, src, dst, ttl, ts = (np.array(c) for c in zip(*rows))
    for packet in (None, key.astype(np.int32)):
        votes = _leg_votes(key.astype(np.uint64), src, dst, ttl.astype(np.int16), ts, 5,
                           packet)
        in_votes, rs_votes, copy_src, copy_dst = (votes.in_votes, votes.rs_votes,
                                                  votes.copy_src, votes.copy_dst)
        assert in_votes.tolist() == [0, 3, 0, 0, 0]
        assert rs_votes.tolist() == [0, 0, 0, 2, 1]
        assert list(zip(copy_src.tolist(), copy_dst.tolist())) == [(2, 3), (2, 4)]
