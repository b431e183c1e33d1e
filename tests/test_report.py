"""Renderers on hand-built reports: table, JSON, JUnit, Markdown, text and SVG ladders.

The builders here (sample_report, sample_ladder, ...) are also used by test_report_html.py and
test_html_browser.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from dr_inspect.model import (Evidence, Ladder, LadderStep, PointSummary, RealServer, RuleResult,
                              Topology, VerifyReport)
from dr_inspect.report import (render_json, render_junit, render_ladder_svg, render_ladder_text,
                               render_markdown, render_table)
from dr_inspect.report.format import tcp_flags_short

CLIENT_MAC = "02:00:00:00:00:02"
DIR_E_MAC = "02:00:00:00:00:10"
DIR_L_MAC = "02:00:00:00:01:10"
RS1_E_MAC = "02:00:00:00:00:21"
RS1_L_MAC = "02:00:00:00:01:21"
RS2_E_MAC = "02:00:00:00:00:22"
RS2_L_MAC = "02:00:00:00:01:22"
CLIENT, VIP = "192.168.7.2", "192.168.7.33"


def _evidence(i: int, flow_id: int, point: str = "br_e") -> Evidence:
    return Evidence(point=point, frames=[10 + i, 11 + i], ts_ns=[1_000_000_000 + i, 1_000_000_500 + i],
                    five_tuple=f"tcp {VIP}:8000 -> {CLIENT}:{51000 + i}",
                    expected=f"src MAC a real server's ({RS1_E_MAC})",
                    actual=f"src MAC {DIR_E_MAC} (the director) | <reply>",
                    display_filter=f"eth.src == {DIR_E_MAC} && tcp.srcport == 8000",
                    cause="reply routed through the director: default route of rs1 points at it",
                    seq=5000 + i, extra={"flow_id": flow_id})


def sample_rules(*, failing: bool = True) -> list[RuleResult]:
    names = ["forward-mac-rewrite", "forward-ip-preserved", "reply-bypasses-director",
             "reply-source-is-vip", "vip-arp-single-owner", "rs-arp-announce",
             "director-forwards-all", "flow-affinity", "handshake-completes",
             "no-forwarding-loop", "scheduler-balance", "no-client-to-rs-mac", "capture-health"]
    rules = []
    for n, name in enumerate(names, start=1):
        rid = f"DR{n:03d}"
        severity = "warning" if rid in ("DR005", "DR011") else "error"
        rules.append(RuleResult(id=rid, name=name, title=f"title of {name}", severity=severity,
                                status="pass", checked=40 + n, explanation=f"why {name} matters",
                                fix_hint=f"how to fix {name}"))
    by_id = {r.id: r for r in rules}
    by_id["DR006"].status = "not-exercised"
    by_id["DR006"].checked = 0
    by_id["DR006"].note = "no ARP requests from real servers in the capture"
    if failing:
        dr003 = by_id["DR003"]
        dr003.status, dr003.violations = "fail", 14
        dr003.evidence = [_evidence(i, flow_id=3) for i in range(10)]
        dr003.evidence_omitted = 4
        dr003.host_causes = ["rs1: default route via 10.0.1.1 (the director)"]
        dr011 = by_id["DR011"]
        dr011.status, dr011.violations = "fail", 1
        dr011.evidence = [Evidence(point="br_lvs", frames=[], ts_ns=[], five_tuple="-",
                                   expected="rr: rs1 50% rs2 50% (+-10%)",
                                   actual="rs1 80% rs2 20%", display_filter="tcp.flags.syn == 1")]
    return rules


def sample_topology() -> Topology:
    return Topology(vips=[f"{VIP}:8000"],
                    director_macs={"vip-segment": [DIR_E_MAC], "rs-segment": [DIR_L_MAC]},
                    real_servers=[RealServer("rs1", {"vip-segment": RS1_E_MAC, "rs-segment": RS1_L_MAC}, "10.0.1.21"),
                                  RealServer("rs2", {"vip-segment": RS2_E_MAC, "rs-segment": RS2_L_MAC}, "10.0.1.22")],
                    point_roles={"br_e": "vip-segment", "br_lvs": "rs-segment"})


def sample_points() -> list[PointSummary]:
    return [PointSummary(name="br_e", file="br_e.pcap", role="vip-segment", interface="br_e",
                         frames=1200, decoded=1198, undecodable={"truncated": 2},
                         first_ts_ns=1_000_000_000, last_ts_ns=9_000_000_000, kernel_drops=0),
            PointSummary(name="br_lvs", file="br_lvs.pcap", role="rs-segment", interface="br_lvs",
                         frames=800, decoded=800, first_ts_ns=1_000_000_000,
                         last_ts_ns=9_000_000_000, kernel_drops=3, clock_offset_ns=1500)]


def sample_report(*, failing: bool = True) -> VerifyReport:
    rules = sample_rules(failing=failing)
    verdict = "fail" if any(r.status == "fail" and r.severity == "error" for r in rules) else "pass"
    stats = {"real_servers": [
        {"name": "rs1", "connections": 80, "forward_delay_us": [20.0 + i % 7 for i in range(80)],
         "response_us": [300.0 + 11 * i for i in range(80)]},
        {"name": "rs2", "connections": 20, "forward_delay_us": [25.0 + i % 5 for i in range(20)],
         "response_us": [900.0 + 50 * i for i in range(20)]}]}
    return VerifyReport(verdict=verdict, rules=rules, topology=sample_topology(),
                        points=sample_points(), flows=100, hops=450, stats=stats)


def _step(label, point, frame, ts, smac, dmac, reply, ttl, flags, sh, dh, note=""):
    src, dst = (VIP, CLIENT) if reply else (CLIENT, VIP)
    sport, dport = (8000, 51000) if reply else (51000, 8000)
    seq, ack = (5000, 1001) if reply else (1000, 0)
    return LadderStep(label=label, point=point, frame=frame, ts_ns=ts, src_mac=smac, dst_mac=dmac,
                      src_ip=src, dst_ip=dst, src_port=sport, dst_port=dport, ttl=ttl,
                      tcp_flags=flags, seq=seq, ack=ack, payload_len=0, src_host=sh, dst_host=dh,
                      note=note)


def sample_ladder(flow_id: int = 3) -> Ladder:
    t0 = 1_000_000_000
    steps = [
        _step("client send", "br_e", 1, t0, CLIENT_MAC, DIR_E_MAC, False, 64, 0x02, "client", "director"),
        _step("director receive", "br_e", 1, t0, CLIENT_MAC, DIR_E_MAC, False, 64, 0x02, "client", "director"),
        _step("director send", "br_lvs", 1, t0 + 50_000, DIR_L_MAC, RS1_L_MAC, False, 63, 0x02, "director", "rs1"),
        _step("server receive", "br_lvs", 1, t0 + 50_000, DIR_L_MAC, RS1_L_MAC, False, 63, 0x02, "director", "rs1"),
        _step("server send", "br_e", 2, t0 + 250_000, RS1_E_MAC, CLIENT_MAC, True, 64, 0x12, "rs1", "client"),
        _step("client receive", "br_e", 2, t0 + 250_000, RS1_E_MAC, CLIENT_MAC, True, 64, 0x12, "rs1", "client"),
    ]
    return Ladder(flow_id=flow_id, five_tuple=f"tcp {CLIENT}:51000 -> {VIP}:8000", real_server="rs1",
                  hosts=["client", "director", "rs1", "rs2"], points=["br_e", "br_lvs"], steps=steps)


# --- table -------------------------------------------------------------------------------------

def test_table_lists_every_rule_and_a_fail_verdict():
    out = render_table(sample_report())
    for rule in sample_rules():
        assert rule.id in out and rule.name in out
    assert out.rstrip().splitlines()[-1].startswith("FAIL:")
    assert "\x1b[" not in out          # no colour unless asked for (not a TTY)
    assert "... and 4 more" in out      # evidence cap shown
    assert "expected: src MAC a real server's" in out
    assert "eth.src == 02:00:00:00:00:10" in out


def test_table_shows_topology_points_and_not_exercised():
    out = render_table(sample_report())
    assert "rs1: RIP 10.0.1.21" in out and "VIPs 192.168.7.33:8000" in out
    assert re.search(r"br_e\s+vip-segment\s+1200\s+1198\s+2 \(truncated 2\)", out)
    assert re.search(r"br_lvs\s+rs-segment\s+800\s+800\s+0\s+3", out)
    assert "DR006 rs-arp-announce: no ARP requests" in out
    assert re.search(r"DR006\s+rs-arp-announce\s+error\s+not exercised", out)


def test_table_pass_verdict_and_colour_on_request():
    out = render_table(sample_report(failing=False), colour=True)
    assert "\x1b[32m" in out and "PASS:" in out and "FAIL" not in out


def test_table_without_topology():
    report = sample_report()
    report.topology = None
    assert "topology: not learned" in render_table(report)


# --- JSON --------------------------------------------------------------------------------------

def test_json_document_keys_and_values():
    doc = json.loads(render_json(sample_report()))
    assert doc["schema"] == "dr-inspect.verify/1"
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert [r["id"] for r in doc["rules"]] == [f"DR{n:03d}" for n in range(1, 14)]
    dr003 = next(r for r in doc["rules"] if r["id"] == "DR003")
    assert set(dr003) >= {"id", "name", "severity", "status", "violations", "evidence"}
    assert dr003["status"] == "fail" and dr003["violations"] == 14
    assert len(dr003["evidence"]) == 10 and dr003["evidence_omitted"] == 4
    assert dr003["evidence"][0]["extra"] == {"flow_id": 3}
    assert dr003["evidence"][0]["frames"] == [10, 11]
    assert doc["topology"]["vips"] == ["192.168.7.33:8000"]
    assert doc["topology"]["real_servers"][0]["macs"]["rs-segment"] == RS1_L_MAC
    assert [p["name"] for p in doc["points"]] == ["br_e", "br_lvs"]
    assert doc["summary"]["fail"] == 2 and doc["summary"]["errors_failed"] == 1
    rs1 = doc["stats"]["real_servers"][0]
    assert rs1["connections"] == 80
    assert rs1["forward_delay_us"]["count"] == 80 and rs1["forward_delay_us"]["min"] == 20.0


def test_json_is_stable_and_handles_numpy_stats():
    import numpy as np
    report = sample_report(failing=False)
    report.stats["capture_seconds"] = np.float64(8.0)
    report.stats["real_servers"][0]["response_us"] = np.array([1.0, 2.0, np.nan])
    first, second = render_json(report), render_json(report)
    assert first == second
    doc = json.loads(first)
    assert doc["verdict"] == "pass" and doc["exit_code"] == 0
    assert doc["stats"]["capture_seconds"] == 8.0
    assert doc["stats"]["real_servers"][0]["response_us"]["count"] == 2


def test_json_null_topology():
    report = sample_report()
    report.topology = None
    assert json.loads(render_json(report))["topology"] is None


# --- JUnit -------------------------------------------------------------------------------------

def test_junit_parses_with_one_testcase_per_rule():
    root = ET.fromstring(render_junit(sample_report()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == 13
    assert all(c.get("classname") == "dr-inspect.DR" for c in cases)
    assert all(c.get("name") and c.get("time") is not None for c in cases)
    # counts agree with the children (what Jenkins and GitLab read)
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert suite.get("tests") == "13" and root.get("tests") == "13"
    assert int(suite.get("failures")) == len(failures) == 2
    assert int(suite.get("skipped")) == len(skipped) == 1
    assert suite.get("errors") == "0"
    assert skipped[0].get("name") == "DR006 rs-arp-announce"


def test_junit_failure_carries_evidence_and_severity():
    root = ET.fromstring(render_junit(sample_report()))
    case = next(c for c in root.iter("testcase") if c.get("name").startswith("DR003"))
    failure = case.find("failure")
    assert failure.get("type") == "error"
    assert "14 violation" in failure.get("message")
    assert "eth.src == 02:00:00:00:00:10" in failure.text and "and 4 more" in failure.text
    assert "<reply>" in failure.text      # escaped in XML, intact after parsing
    dr011 = next(c for c in root.iter("testcase") if c.get("name").startswith("DR011"))
    assert dr011.find("failure").get("type") == "warning"


# The essentials of the JUnit schema Jenkins validates against (junit-10.xsd; GitLab reads the
# same): which children and attributes each element may have, required attributes, child order.
_JUNIT_SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "disabled", "errors"}, set(), ["testsuite"]),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "disabled", "skipped",
                   "timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
                  {"name", "tests"}, ["properties", "testcase", "system-out", "system-err"]),
    "properties": (set(), set(), ["property"]),
    "property": ({"name", "value"}, {"name", "value"}, []),
    "testcase": ({"name", "assertions", "time", "classname", "status", "group", "file", "line"},
                 {"name"}, ["skipped", "error", "failure", "system-out", "system-err"]),
    "failure": ({"message", "type"}, set(), []),
    "error": ({"message", "type"}, set(), []),
    "skipped": ({"message"}, set(), []),
    "system-out": (set(), set(), []),
    "system-err": (set(), set(), []),
}


def _check_junit_element(el: ET.Element) -> None:
    allowed, required, children = _JUNIT_SCHEMA[el.tag]
    assert set(el.attrib) <= allowed, (el.tag, set(el.attrib) - allowed)
    assert required <= set(el.attrib), (el.tag, required - set(el.attrib))
    order = [children.index(child.tag) for child in el]      # ValueError: child not allowed
    assert order == sorted(order), (el.tag, [c.tag for c in el])
    for child in el:
        _check_junit_element(child)


@pytest.mark.parametrize("failing", [True, False])
def test_junit_follows_the_schema_essentials(failing):
    root = ET.fromstring(render_junit(sample_report(failing=failing)))
    _check_junit_element(root)
    for el in root.iter():
        for key in ("tests", "failures", "errors", "skipped"):
            if key in el.attrib:
                assert el.get(key).isdigit()
        if "time" in el.attrib:
            float(el.get("time"))


def test_junit_all_pass():
    root = ET.fromstring(render_junit(sample_report(failing=False)))
    assert root.find("testsuite").get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "pass"


# --- Markdown ----------------------------------------------------------------------------------

def test_markdown_table_and_details():
    out = render_markdown(sample_report())
    lines = out.splitlines()
    assert lines[0] == "## dr-inspect :x: FAIL"
    header = lines.index("| id | name | severity | status | violations | checked |")
    assert lines[header + 1].startswith("|---")
    rows = lines[header + 2: header + 15]
    assert [r.split("|")[1].strip() for r in rows] == [f"DR{n:03d}" for n in range(1, 14)]
    assert all(r.count("|") == 7 for r in rows)
    assert "| DR003 | reply-bypasses-director | error | **FAIL** | 14 | 43 |" in out
    assert "### DR003 reply-bypasses-director (error)" in out
    assert "\\| <reply>" in out           # pipes in cells are escaped
    assert "... and 4 more" in out and "### Topology" in out


def test_markdown_pass():
    out = render_markdown(sample_report(failing=False))
    assert out.startswith("## dr-inspect :white_check_mark: PASS") and "**FAIL**" not in out


# --- ladders -----------------------------------------------------------------------------------

def test_ladder_text_shows_the_six_steps_in_order():
    out = render_ladder_text(sample_ladder())
    labels = ["client send", "director receive", "director send", "server receive",
              "server send", "client receive"]
    positions = [out.index(label) for label in labels]
    assert positions == sorted(positions)
    assert "+0.000ms" in out and "+0.050ms" in out and "+0.250ms" in out
    assert f"dst MAC {DIR_E_MAC} -> {RS1_L_MAC}" in out
    assert f"src MAC {CLIENT_MAC} -> {DIR_L_MAC}" in out
    assert "TTL 64 -> 63" in out
    assert "bypasses the director" in out
    assert "S." in out and "1001" in out          # SYN-ACK flags and ack
    row = next(line for line in out.splitlines() if "server send" in line)
    assert "<===" in row                           # the direct reply drawn differently
    row = next(line for line in out.splitlines() if "director send" in line)
    assert f"*{RS1_L_MAC}" in row and "---->" in row


def test_ladder_text_names_the_receive_of_a_frame_seen_once():
    # One tcpdump per bridge: the send and the receive are the same frame, build_ladder gives
    # only the send; the six steps must still read off the ladder.
    ladder = sample_ladder()
    ladder.steps = [s for s in ladder.steps if s.label.endswith("send")]
    out = render_ladder_text(ladder)
    for pair in ("client send / director receive", "director send / server receive",
                 "server send / client receive"):
        assert pair in out
    assert len([line for line in out.splitlines() if re.match(r"\s+\d+\s+\+", line)]) == 3


def test_ladder_svg_caps_long_connections():
    ladder = sample_ladder()
    ladder.steps = ladder.steps * 10
    root = ET.fromstring(render_ladder_svg(ladder, max_steps=8))
    ns = {"s": "http://www.w3.org/2000/svg"}
    steps = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if "step" in (g.get("class") or "").split()]
    assert len(steps) == 8
    assert any((t.text or "").startswith("... and 52 more packets") for t in root.iterfind(".//s:text", ns))


def test_ladder_svg_parses_with_hover_text_and_dashed_reply():
    svg = render_ladder_svg(sample_ladder())
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    steps = root.findall(".//s:g[@class='step']", ns) + root.findall(".//s:g[@class='step direct']", ns)
    assert len(steps) == 6
    titles = [g.find("s:title", ns).text for g in steps]
    assert any("SYN,ACK" in t and RS1_E_MAC in t and "TTL 64" in t for t in titles)
    direct = root.findall(".//s:g[@class='step direct']", ns)
    assert len(direct) == 2
    assert all(g.find("s:line", ns).get("stroke-dasharray") for g in direct)
    table_text = "".join(t.text or "" for t in root.findall(".//s:g[@class='steps-table']/s:text", ns))
    assert RS1_L_MAC in table_text and "director send" in table_text


def test_ladder_with_unknown_hosts_and_missing_fields():
    ladder = sample_ladder()
    ladder.steps[0].src_host = ""
    ladder.steps[0].ttl = None
    ladder.steps[0].tcp_flags = None
    ladder.hosts = []
    assert "client send" in render_ladder_text(ladder)
    ET.fromstring(render_ladder_svg(ladder))


@pytest.mark.parametrize("flags, short", [(0x02, "S"), (0x12, "S."), (0x18, "P."), (0x11, "F."),
                                          (0x04, "R"), (0x00, "none"), (None, "-")])
def test_tcp_flags_tcpdump_style(flags, short):
    assert tcp_flags_short(flags) == short


# --- terminal status line ----------------------------------------------------------------------

class _Stream:
    def __init__(self, tty: bool):
        self.tty, self.data = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.data += text

    def flush(self) -> None:
        pass


def test_status_line_only_on_a_terminal_and_not_quiet():
    from dr_inspect.cli.status import StatusLine
    tty = _Stream(True)
    with StatusLine(tty) as status:
        status.show("verifying 1 path(s) ...")
    assert "verifying 1 path(s) ..." in tty.data and tty.data.endswith("\r")
    for stream, quiet in ((_Stream(False), False), (_Stream(True), True)):
        with StatusLine(stream, quiet=quiet) as status:
            status.show("verifying")
        assert stream.data == ""
