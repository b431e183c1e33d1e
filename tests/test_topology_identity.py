"""Topology identity: who is a director, who is a real server, and which address is its RIP.

Each test is one class of mistake the learner must not make, whatever the capture:
- a RIP is an address the real server owns (its host's word, its ARP, its own frames), on the
  real-server segment; never a client's address its MAC forwarded, never the VIP;
- real servers are named by RIP then MAC, so two captures of one farm name them alike;
- a MAC is a host only when it shows itself alive: the director forwarding to a silent MAC is a
  DR001 failure, clients sending to a silent MAC lose their packets before the director (DR007);
- a copy the director did not re-address is DR001, not a lost packet;
- two hosts claiming one address that clients connect to is a VIP (FAIL, not "no DR found").
"""

from __future__ import annotations

import json

import pytest
from rulecaps import (CLIENT_IP, CLIENT_MAC, DIR_E_MAC, DIR_LVS_MAC, RS, VIP, DrCapture)

from dr_inspect.analysis.paths import analyse_paths, verify_paths

DEAD_MAC = "02:00:de:ad:be:ef"


def failed(report) -> set[str]:
    return {r.id for r in report.rules if r.status == "fail"}


def servers(report) -> list[tuple[str, str | None, dict[str, str]]]:
    return [(rs.name, rs.rip, rs.macs) for rs in report.topology.real_servers]


@pytest.mark.parametrize("shape", ["two-segment", "shared-segment"])
def test_rip_is_never_an_address_the_server_forwarded(tmp_path, shape):
    """A real server without the VIP that routes VIP packets back (a forwarding loop) sends
    them from its MAC with the client's address: that address is not its RIP."""
    cap = DrCapture(shape).healthy(arp=False)
    rs = RS[0]
    mac = rs.mac_lvs if shape == "two-segment" else rs.mac_e
    for k in range(5):
        cap.emit(cap.rs_point, cap.tcp_frame(mac, cap.dir_out, CLIENT_IP, VIP, 40100 + k, 8000,
                                             "S", 10 + k, 0, 62, 7 + k), cap.t + k * 1e-3)
    cap.arp_reply(mac, rs.rip, point=cap.rs_point)
    report = verify_paths([cap.write(tmp_path / "set")])
    rips = {rip for _, rip, _ in servers(report)}
    assert RS[0].rip in rips and CLIENT_IP not in rips


def test_rip_is_the_real_server_segment_address(tmp_path):
    """The RIP is the address the director resolves (real-server segment); the VIP-segment
    address of the same server is not it, and when only that one is seen the RIP is unknown
    rather than wrong."""
    cap = DrCapture().healthy(arp=False)
    for i, rs in enumerate(RS):
        cap.arp_request(rs.mac_e, f"192.168.7.{99 + i}", CLIENT_IP)     # its VIP-segment NIC
    cap.arp_reply(RS[0].mac_lvs, RS[0].rip, point="br_lvs")             # only rs1 shows its RIP
    got = {macs["rs-segment"]: rip for _, rip, macs in servers(
        verify_paths([cap.write(tmp_path / "set")]))}
    assert got == {RS[0].mac_lvs: RS[0].rip, RS[1].mac_lvs: None}


def test_rip_from_the_host_snapshot(tmp_path):
    """A capture set's host snapshots say which address each MAC's interface holds."""
    cap = DrCapture().healthy(arp=False)
    folder = cap.write(tmp_path / "set")
    snaps = folder / "snapshots"
    snaps.mkdir()
    manifest = (folder / "manifest.toml").read_text() + "\n[snapshots]\n"
    for i, rs in enumerate(RS):
        snap = {"schema": 1, "host": f"web{i}", "sysctl": {}, "addr": [
            {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "link_type": "loopback",
             "address": "00:00:00:00:00:00",
             "addr_info": [{"local": VIP, "prefixlen": 32}]},
            {"ifname": "eth1", "flags": ["UP"], "link_type": "ether", "address": rs.mac_lvs,
             "addr_info": [{"local": f"172.16.0.{i + 5}", "prefixlen": 24}]}]}
        (snaps / f"web{i}.json").write_text(json.dumps(snap))
        manifest += f'web{i} = "snapshots/web{i}.json"\n'
    (folder / "manifest.toml").write_text(manifest)
    got = {macs["rs-segment"]: rip for _, rip, macs in servers(verify_paths([folder]))}
    assert got == {RS[0].mac_lvs: "172.16.0.5", RS[1].mac_lvs: "172.16.0.6"}


def test_names_do_not_depend_on_who_was_seen_first(tmp_path):
    one = DrCapture().healthy()
    two = DrCapture()
    two.rs_announces_rip()
    for i in range(4):
        two.connection(40000 + i, rs=(i + 1) % 2)          # rs2 first this time
    a = servers(verify_paths([one.write(tmp_path / "a")]))
    b = servers(verify_paths([two.write(tmp_path / "b")]))
    assert a == b
    assert [(name, rip) for name, rip, _ in a] == [("rs1", RS[0].rip), ("rs2", RS[1].rip)]


@pytest.mark.parametrize("shape", ["two-segment", "shared-segment"])
def test_forwarding_to_a_silent_mac_is_dr001_not_a_new_server(tmp_path, shape):
    cap = DrCapture(shape).healthy()
    cap.connection(41000, rs=0, fwd_dst_mac=DEAD_MAC, answer="none")
    report = verify_paths([cap.write(tmp_path / "set")])
    assert "DR001" in failed(report) and report.verdict == "fail"
    assert DEAD_MAC not in {m for _, _, macs in servers(report) for m in macs.values()}


def test_a_server_whose_connections_are_answered_is_alive(tmp_path):
    """Its own frames may not cross any capture point (replies via another path): answers from
    the VIP to the connections forwarded to it prove it is there."""
    cap = DrCapture().healthy(arp=False)
    report = verify_paths([cap.write(tmp_path / "set")])
    assert report.verdict == "pass" and len(report.topology.real_servers) == 2


@pytest.mark.parametrize("shape", ["two-segment", "shared-segment"])
def test_a_copy_not_readdressed_is_dr001_not_lost(tmp_path, shape):
    cap = DrCapture(shape).healthy()
    cap.connection(41000, rs=0, fwd_dst_mac=DIR_E_MAC, answer="none")
    report = verify_paths([cap.write(tmp_path / "set")])
    rules = {r.id: r for r in report.rules}
    assert "DR001" in failed(report) and "DR007" not in failed(report)
    assert rules["DR001"].violations == 1


def test_stale_client_arp_is_lost_before_the_director(tmp_path):
    """Clients send to a MAC that never answers (a former director): no director is named after
    it, and DR007 calls the packets lost with the stale ARP entry as the cause."""
    cap = DrCapture().healthy()
    cap.connection(42000, rs=0, director=(DEAD_MAC, DIR_LVS_MAC), forward=False, answer="none")
    cap.connection(42001, rs=1)           # the capture goes on after it
    report = verify_paths([cap.write(tmp_path / "set")])
    assert DEAD_MAC not in {m for ms in report.topology.director_macs.values() for m in ms}
    dr007 = next(r for r in report.rules if r.id == "DR007")
    assert dr007.status == "fail" and dr007.violations == 1
    assert "stale" in dr007.evidence[0].cause


def test_rs_answering_arp_on_one_lan_is_a_failure_not_bad_input(tmp_path):
    """One LAN, a real server answers ARP for the VIP and the client talks straight to it: the
    director sees nothing to forward. Two hosts claim the VIP and clients connect to it: that
    is a VIP, and DR005/DR012 fail (exit 1), without a pin."""
    cap = DrCapture("shared-segment")
    cap.arp_reply(DIR_E_MAC)
    cap.arp_reply(RS[0].mac_e)
    for i in range(3):
        cap.connection(43000 + i, rs=0, client_to_rs=True)
    analysis = analyse_paths([cap.write(tmp_path / "set")])
    report = analysis.report
    assert report.topology.vips == [f"{VIP}:8000"]
    assert {"DR005", "DR012"} <= failed(report) and report.exit_code == 1
    assert report.topology.director_macs == {"both": [DIR_E_MAC]}
    assert CLIENT_MAC not in {m for _, _, macs in servers(report) for m in macs.values()}
