"""The DR catalogue, rule by rule, on small scapy-crafted captures decoded by the real decoder:
each rule passes on healthy traffic, fails on its fault (with evidence that names the frames),
and says "not exercised" when the traffic gives it nothing to check."""

from __future__ import annotations

from pathlib import Path

import pytest
from rulecaps import (BROADCAST, CLIENT_IP, DIR2_E_MAC, DIR2_LVS_MAC, DIR_E_MAC, RS, VIP, VIP6,
                      DrCapture)

from dr_inspect import VerifyOptions
from dr_inspect.analysis.paths import verify_paths

CATALOGUE = [f"DR{i:03d}" for i in range(1, 14)]


def run(tmp_path: Path, cap: DrCapture, name: str = "set", **kw):
    folder = cap.write(tmp_path / name)
    report = verify_paths([folder], VerifyOptions(**kw))
    return report, {r.id: r for r in report.rules}


def statuses(rules) -> dict[str, str]:
    return {k: v.status for k, v in rules.items()}


@pytest.mark.parametrize("shape,v6,ttl_drop", [("two-segment", False, 1), ("two-segment", False, 0),
                                               ("shared-segment", False, 1), ("two-segment", True, 1),
                                               ("shared-segment", True, 1)])
def test_healthy_traffic_passes_every_rule(tmp_path, shape, v6, ttl_drop):
    report, rules = run(tmp_path, DrCapture(shape, v6=v6, director_ttl_drop=ttl_drop).healthy())
    assert list(rules) == CATALOGUE
    assert statuses(rules) == {r: "pass" for r in CATALOGUE}, {k: v.note for k, v in rules.items()}
    assert report.verdict == "pass" and report.exit_code == 0
    assert report.topology.shape == shape
    assert all(r.checked > 0 and not r.evidence for r in rules.values())


def _fault(tmp_path, build, **kw):
    cap = DrCapture().healthy()
    build(cap)
    cap.connection(45000)  # traffic continues after the fault
    return run(tmp_path, cap, **kw)


FAULTS = {
    "DR001": lambda c: c.connection(41000, fwd_dst_mac=BROADCAST),
    "DR002": lambda c: c.connection(41000, copy_changes={"dst_port": 8080}),
    "DR003": lambda c: c.connection(41000, reply_via_director=True),
    "DR004": lambda c: c.connection(41000, reply_src=RS[0].rip),
    "DR005": lambda c: c.arp_reply(RS[0].mac_e),
    "DR006": lambda c: c.arp_request(RS[1].mac_e, VIP, CLIENT_IP),
    "DR007": lambda c: c.connection(41000, drop=("req",)),
    "DR008": lambda c: c.connection(41000, data_rs=1),
    "DR009": lambda c: c.connection(41000, answer="rst"),
    "DR010": lambda c: c.connection(41000, loop=2),
    "DR012": lambda c: c.connection(41000, client_to_rs=True),
}
# a fault also breaks what depends on it (an RIP-sourced SYN-ACK is no SYN-ACK from the VIP)
ALSO = {"DR004": {"DR009"}, "DR008": set(), "DR012": set()}


@pytest.mark.parametrize("rule_id", sorted(FAULTS))
def test_each_fault_fails_its_rule_with_evidence(tmp_path, rule_id):
    report, rules = _fault(tmp_path, FAULTS[rule_id])
    failed = {k for k, v in rules.items() if v.status == "fail"}
    assert failed - {"DR011"} == {rule_id} | ALSO.get(rule_id, set())
    result = rules[rule_id]
    assert result.severity == "error" and report.verdict == "fail" and report.exit_code == 1
    assert result.violations >= 1 and result.evidence
    ev = result.evidence[0]
    assert ev.point in ("br_e", "br_lvs") and ev.frames and ev.ts_ns
    assert ev.display_filter and ev.cause and ev.expected and ev.actual
    assert "{" not in ev.display_filter + ev.cause + ev.actual + ev.expected
    assert all(r.status != "not-exercised" for r in rules.values())


def test_dr001_evidence_shows_the_copy_frame(tmp_path):
    _, rules = _fault(tmp_path, FAULTS["DR001"])
    ev = rules["DR001"].evidence[0]
    assert ev.point == "br_lvs"
    assert f"eth.dst == {BROADCAST}" in ev.display_filter
    assert f"frame.number == {ev.frames[0]}" in ev.display_filter
    assert ev.five_tuple == f"tcp {CLIENT_IP}:41000 -> {VIP}:8000"
    assert "flow_id" in ev.extra


def test_dr002_names_the_changed_field_and_accepts_ttl_0_or_1(tmp_path):
    _, rules = _fault(tmp_path, FAULTS["DR002"])
    ev = rules["DR002"].evidence[0]
    assert ":8080" in ev.actual and ":8000" in ev.expected
    # every packet of that connection was forwarded (found by client endpoint, not lost)
    assert rules["DR007"].status == "pass"
    _, rules = _fault(tmp_path / "ttl", lambda c: c.connection(41000, copy_changes={"ttl_drop": 2}))
    assert rules["DR002"].status == "fail" and "TTL 62" in rules["DR002"].evidence[0].actual


def test_dr005_real_server_claim_names_the_fix(tmp_path):
    _, rules = _fault(tmp_path, FAULTS["DR005"])
    ev = rules["DR005"].evidence[0]
    assert RS[0].mac_e in ev.actual
    assert "arp_ignore=1" in ev.cause and "arp_announce=2" in ev.cause
    assert f"arp.src.proto_ipv4 == {VIP}" in ev.display_filter and "arp.opcode == 2" in ev.display_filter


def test_dr005_single_failover_is_a_warning_flapping_an_error(tmp_path):
    cap = DrCapture().healthy()
    cap.gratuitous_arp(DIR2_E_MAC)
    for i in range(2):
        cap.connection(42000 + i, rs=i % 2, director=(DIR2_E_MAC, DIR2_LVS_MAC))
    report, rules = run(tmp_path, cap, "failover")
    assert rules["DR005"].status == "fail" and rules["DR005"].severity == "warning"
    assert report.verdict == "pass" and report.exit_code == 0
    cap.gratuitous_arp(DIR_E_MAC)
    cap.gratuitous_arp(DIR2_E_MAC)
    report, rules = run(tmp_path, cap, "flap")
    assert rules["DR005"].status == "fail" and rules["DR005"].severity == "error"
    assert report.exit_code == 1


def test_ipv6_neighbour_discovery_rules(tmp_path):
    cap = DrCapture(v6=True).healthy()
    cap.neighbour_advert(RS[1].mac_e)
    cap.connection(45000)
    _, rules = run(tmp_path, cap, "na")
    assert rules["DR005"].status == "fail"
    ev = rules["DR005"].evidence[0]
    assert "icmpv6.type == 136" in ev.display_filter and VIP6 in ev.display_filter
    cap = DrCapture(v6=True).healthy()
    cap.neighbour_solicit(RS[0].mac_e)
    cap.connection(45000)
    _, rules = run(tmp_path, cap, "ns")
    assert rules["DR006"].status == "fail" and rules["DR005"].status == "pass"
    assert "icmpv6.type == 135" in rules["DR006"].evidence[0].display_filter


def test_dr007_names_a_likely_cause_and_gro_is_coalesced_not_lost(tmp_path):
    _, rules = _fault(tmp_path, FAULTS["DR007"])
    ev = rules["DR007"].evidence[0]
    assert "director" in ev.cause and ev.extra["payload_len"] == 40
    cap = DrCapture().healthy()
    cap.connection(41000, gro=True)
    cap.connection(45000, rs=1)
    report, rules = run(tmp_path, cap, "gro")
    assert statuses(rules) == {r: "pass" for r in CATALOGUE}
    assert report.stats["coalesced"] == 3
    assert "coalesced" in rules["DR007"].note


def test_dr009_reports_refusal_and_silence(tmp_path):
    _, rules = _fault(tmp_path, FAULTS["DR009"])
    assert "RST" in rules["DR009"].evidence[0].cause
    _, rules = _fault(tmp_path / "silent", lambda c: c.connection(41000, answer="none",
                                                                   syn_retransmit=True))
    ev = rules["DR009"].evidence[0]
    assert "never answered" in ev.cause and ev.extra["syn_retransmits"] == 1


def test_dr010_loop_in_the_shared_segment(tmp_path):
    cap = DrCapture("shared-segment").healthy()
    cap.connection(41000, loop=2)
    cap.connection(45000)
    _, rules = run(tmp_path, cap)
    assert rules["DR010"].status == "fail"
    assert "3 copies with 3 different TTLs" in rules["DR010"].evidence[0].actual


def test_dr011_imbalance_is_a_warning(tmp_path):
    cap = DrCapture().healthy()
    for i in range(6):
        cap.connection(41000 + i, rs=0)
    report, rules = run(tmp_path, cap)
    r = rules["DR011"]
    assert r.status == "fail" and r.severity == "warning" and report.verdict == "pass"
    assert {e.extra["real_server"] for e in r.evidence} <= {"rs1", "rs2"}
    assert "rs1=8" in r.evidence[0].actual


def test_dr013_kernel_drops_fail_capture_health(tmp_path):
    folder = DrCapture().healthy().write(tmp_path / "drops")
    manifest = (folder / "manifest.toml").read_text().replace("dropped = 0", "dropped = 7", 1)
    (folder / "manifest.toml").write_text(manifest)
    report = verify_paths([folder])
    r = {x.id: x for x in report.rules}["DR013"]
    assert r.status == "fail" and "7 frames dropped by the kernel" in r.evidence[0].cause
    assert report.points[0].kernel_drops == 7


# -- not exercised: the traffic gives the rule nothing to look at --------------------------

def _only(cap: DrCapture, point: str) -> DrCapture:
    cap.frames = {point: cap.frames[point]}
    cap.roles = {point: cap.roles[point]}
    return cap


NOT_EXERCISED = {
    # only the VIP segment: no forwarded copy can be seen
    "vip-segment only": (lambda: _only(DrCapture().healthy(), "br_e"), {},
                         {"DR001", "DR002", "DR007", "DR008", "DR009", "DR010", "DR011"}),
    # no ARP at all in the capture
    "no arp": (lambda: DrCapture().healthy(arp=False), {}, {"DR005", "DR006"}),
    # the real servers never answer
    "no replies": (lambda: _silent(), {}, {"DR003", "DR004"}),
    # only the real-server segment: no client frame on the VIP segment
    "rs-segment only": (lambda: _only(DrCapture().healthy(), "br_lvs"), {"vips": [f"{VIP}:8000"]},
                        {"DR012"}),
}


def _silent() -> DrCapture:
    cap = DrCapture()
    for i in range(3):
        cap.connection(40000 + i, rs=i % 2, answer="none")
    return cap


@pytest.mark.parametrize("case", sorted(NOT_EXERCISED))
def test_rules_without_matching_traffic_are_not_exercised(tmp_path, case):
    build, kw, expected = NOT_EXERCISED[case]
    report, rules = run(tmp_path, build(), **kw)
    for rid in expected:
        assert rules[rid].status == "not-exercised", (rid, rules[rid])
        assert rules[rid].note and rules[rid].checked == 0 or rid == "DR011"
    assert report.verdict == "fail" or not ({"DR001", "DR002", "DR007"} & expected)


def test_dr011_not_exercised_for_other_schedulers(tmp_path):
    cap = DrCapture().healthy()
    folder = cap.write(tmp_path / "s")
    (tmp_path / "topo.toml").write_text('scheduler = "wlc"\n')
    report = verify_paths([folder], VerifyOptions(topology_file=tmp_path / "topo.toml"))
    r = {x.id: x for x in report.rules}["DR011"]
    assert r.status == "not-exercised" and "wlc" in r.note
    assert report.verdict == "pass"


def test_dr013_without_points_is_not_exercised():
    """Every real run has a point; the rule still never passes on an empty points table."""
    from dr_inspect.correlate.points import points_table
    from dr_inspect.rules import evaluate_rule, load_rules
    rule = next(r for r in load_rules() if r.id == "DR013")
    result = evaluate_rule(rule, {"points": points_table([])}, {})
    assert result.status == "not-exercised" and result.note == "no capture point"


def test_every_catalogue_rule_has_all_three_outcomes_covered():
    """The tests above give each rule a pass, a fail and a not-exercised case."""
    failing = set(FAULTS) | {"DR011", "DR013"}
    quiet = set().union(*(ids for _, _, ids in NOT_EXERCISED.values())) | {"DR013"}
    assert failing == set(CATALOGUE) and quiet == set(CATALOGUE)
