"""join.host_causes: failing DR rules get the host check lines that explain them."""

from __future__ import annotations

import copy

from dr_inspect.doctor.join import host_causes
from dr_inspect.model import RealServer, RuleResult, Topology, VerifyReport

from test_doctor_checks import DIP, director_snapshot, rs_snapshot, set_conf


def _report(*failing: str, passing: tuple[str, ...] = ("DR001",)) -> VerifyReport:
    rules = [RuleResult(r, r.lower(), r, "error", "fail", checked=5, violations=1) for r in failing]
    rules += [RuleResult(r, r.lower(), r, "error", "pass", checked=5) for r in passing]
    topo = Topology(vips=["192.168.7.33:8000"],
                    director_macs={"vip-segment": ["02:00:c0:a8:07:21"], "rs-segment": ["02:00:c0:a8:58:0a"]},
                    real_servers=[RealServer("rs1", {"vip-segment": "02:00:c0:a8:07:63",
                                                     "rs-segment": "02:00:c0:a8:58:14"}, "192.168.88.20")],
                    point_roles={"br_e": "vip-segment", "br_lvs": "rs-segment"})
    return VerifyReport("fail", rules, topo, points=[])


def test_arp_ignore_explains_dr005_with_host_mac_and_fix():
    rs = rs_snapshot()
    set_conf(rs, "all", "arp_ignore", 0)
    set_conf(rs, "eth14", "arp_ignore", 0)
    report = _report("DR005", "DR006")
    host_causes({"rs1": rs, "director": director_snapshot()}, report)
    causes = {r.id: r.host_causes for r in report.rules}
    assert len(causes["DR005"]) == 1
    line = causes["DR005"][0]
    assert line.startswith("HC002 on real server rs1 (MAC 02:00:c0:a8:07:63): arp_ignore=0 (set by")
    assert "eth14" in line
    assert line.endswith("fix: ip netns exec t6-rs1 sysctl -w net.ipv4.conf.eth14.arp_ignore=1")
    assert causes["DR006"] == []          # arp_announce is fine: nothing to blame
    assert causes["DR001"] == []          # passing rules are left alone


def test_reply_route_explains_dr003_using_topology_director_mac_only():
    rs = rs_snapshot()
    rs["route4"].append({"dst": "192.168.7.2", "gateway": DIP, "dev": "eth12", "flags": []})
    report = _report("DR003")
    host_causes({"rs1": rs}, report)          # no director snapshot: its MAC comes from the topology
    (line,) = report.rules[0].host_causes
    assert line.startswith("HC005 on real server rs1 (")
    assert ": route 192.168.7.2 via 192.168.88.10 dev eth12" in line and "ip route del 192.168.7.2 via 192.168.88.10" in line


def test_director_firewall_explains_dr007_and_healthy_hosts_add_nothing():
    d = director_snapshot()
    d["nft"] = ("table inet filter { # handle 3\n\tchain input { # handle 1\n"
                "\t\tct state invalid drop # handle 9\n\t}\n}\n")
    report = _report("DR007", "DR009")
    host_causes({"rs1": rs_snapshot(), "director": d}, report)
    for rule in report.rules[:2]:
        assert [c.split(" ")[0] for c in rule.host_causes] == ["HC014"]
        # the director is named once: "on the director", never "director director"
        assert rule.host_causes[0].startswith("HC014 on the director (")
        assert "director director" not in rule.host_causes[0]
        assert rule.host_causes[0].endswith("nft delete rule inet filter input handle 9")
    healthy = _report("DR005", "DR009")
    host_causes({"rs1": rs_snapshot(), "director": director_snapshot()}, healthy)
    assert all(r.host_causes == [] for r in healthy.rules)


def test_topology_name_is_used_when_snapshot_name_differs_and_join_is_idempotent():
    rs = rs_snapshot()
    rs["host"] = "web-a"
    rs["listeners"] = [{"local": "0.0.0.0", "port": 8081}]
    report = _report("DR009")
    snaps = {"web-a": rs}
    host_causes(snaps, report)
    host_causes(copy.deepcopy(snaps), report)
    (line,) = report.rules[0].host_causes
    assert line.startswith("HC006 on real server web-a (rs1 in the traffic) (")
    assert "): no listener on port 8000" in line
    assert "web-a (rs1 in the traffic)" in line


def test_a_latent_host_problem_is_listed_when_no_rule_shows_it():
    """arp_announce=0 on a real server that sent no ARP request in the capture: DR006 passed,
    but verify still names what doctor finds (host_findings), once."""
    rs = rs_snapshot()
    set_conf(rs, "all", "arp_announce", 0)
    set_conf(rs, "eth14", "arp_announce", 0)
    report = _report(passing=("DR001", "DR006"))
    host_causes({"rs1": rs, "director": director_snapshot()}, report)
    host_causes({"rs1": rs, "director": director_snapshot()}, report)
    assert len(report.host_findings) == 1
    assert report.host_findings[0].startswith(
        "HC003 on real server rs1 (MAC 02:00:c0:a8:07:63): arp_announce=0 (set by all and eth14")
    assert all(r.host_causes == [] for r in report.rules)
    healthy = _report(passing=("DR001", "DR006"))
    host_causes({"rs1": rs_snapshot(), "director": director_snapshot()}, healthy)
    assert healthy.host_findings == []
