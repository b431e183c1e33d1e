"""HTML report, topology picture, charts and ladder selection, on hand-built reports."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from types import SimpleNamespace

import pandas as pd

from dr_inspect.errors import InputError
from dr_inspect.model import RealServer, Topology
from dr_inspect.report import render_html
from dr_inspect.report.charts import latency_chart, share_chart
from dr_inspect.report.ladders import ReportLadders, healthy_flow_ids, select_ladders
from dr_inspect.report.topology_svg import render_topology_svg
from test_report import sample_ladder, sample_report, sample_rules

SVG_NS = "{http://www.w3.org/2000/svg}"


class _Collector(HTMLParser):
    """Text, ids, tags and external references of an HTML document."""

    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.refs: list[str] = []
        self.stack: list[str] = []
        self.unbalanced: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id":
                self.ids.add(value)
            if name in ("src", "href", "xlink:href", "action", "data") and value:
                self.refs.append(value)
        if tag not in ("meta", "br", "img", "input", "link", "hr"):
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value:
                self.refs.append(value)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.unbalanced.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


def _html(failing: bool = True) -> str:
    ladders = ReportLadders(offending={"DR003": sample_ladder(3)},
                            healthy=[sample_ladder(5), sample_ladder(6)])
    return render_html(sample_report(failing=failing), ladders=ladders, title="lab run")


def test_html_is_self_contained_and_names_every_rule():
    html = _html()
    doc = _parse(html)
    assert not doc.unbalanced and not doc.stack
    assert not [r for r in doc.refs if not r.startswith("#")]       # only in-page anchors
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html
    text = " ".join(doc.text)
    assert "Verdict: FAIL" in text
    for rule in sample_rules():
        assert rule.id in text
    assert "DR003" in doc.ids and "verdict" in doc.ids
    assert len(html.encode()) < 2_000_000


def test_html_inline_svgs_parse_as_xml():
    html = _html()
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    # topology + 3 ladders + share chart + 2 latency charts
    assert len(svgs) == 7
    for svg in svgs:
        assert ET.fromstring(svg).tag == f"{SVG_NS}svg"


def test_html_shows_evidence_ladders_and_charts():
    html = _html()
    text = " ".join(_parse(html).text)
    assert "One offending connection (flow 3)" in text
    assert "eth.src == 02:00:00:00:00:10" in text and "... and 4 more" in text
    assert "flow 5:" in text and "flow 6:" in text            # healthy samples
    assert "4 violation(s) are not listed individually" in text
    assert "connections per real server" in text
    assert "80 (80.0%)" in text and "20 (20.0%)" in text
    assert "director forwarding delay" in text and "server response time" in text
    assert "DR006 rs-arp-announce: no ARP requests" in text
    assert "&lt;reply&gt;" in html and "<reply>" not in html     # evidence escaped


def test_html_pass_without_analysis():
    html = render_html(sample_report(failing=False))
    text = " ".join(_parse(html).text)
    assert "Verdict: PASS" in text and "No ladders available." in text
    assert "Failing rules" in text and "None." in text


def test_topology_picture_two_segment_and_shared():
    svg = ET.fromstring(render_topology_svg(sample_report().topology))
    texts = [t.text for t in svg.iter(f"{SVG_NS}text")]
    assert {"director", "rs1", "rs2", "client(s)"} <= set(texts)
    assert "02:00:00:00:01:21" in texts and "RIP 10.0.1.21" in texts
    shared = Topology(vips=["10.0.0.100:80"], director_macs={"lan": ["02:aa:00:00:00:01"]},
                      real_servers=[RealServer(f"rs{i}", {"lan": f"02:bb:00:00:00:{i:02x}"})
                                    for i in range(1, 21)],
                      point_roles={"lan": "both"}, shape="shared-segment",
                      conflicts=["pinned rs3 MAC not seen"])
    svg = ET.fromstring(render_topology_svg(shared))
    texts = [t.text for t in svg.iter(f"{SVG_NS}text")]
    assert "... and 8 more real servers" in texts
    assert "conflict: pinned rs3 MAC not seen" in texts
    empty = ET.fromstring(render_topology_svg(None))
    assert [t.text for t in empty.iter(f"{SVG_NS}text")] == ["topology not learned"]


def test_charts_handle_empty_and_odd_values():
    def texts_of(svg: str) -> list[str]:
        return [t.text for t in ET.fromstring(svg).iter(f"{SVG_NS}text")]

    assert texts_of(share_chart([]))[1:] == ["no real servers learned"]
    # no connections at all: 0 %, not a division by zero
    assert texts_of(share_chart([{"name": "rs1", "connections": 0}]))[1:] == ["rs1", "0 (0.0%)"]
    svg = latency_chart([("rs1", []), ("rs2", [None, float("nan"), 5.0, 50_000.0])], "t")
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "no measurements" in texts
    assert any(t and t.startswith("median") and "n=2" in t for t in texts)
    assert "no measurements" in latency_chart([("rs1", None)], "t")


def _flows() -> pd.DataFrame:
    return pd.DataFrame({"flow_id": [1, 2, 3, 4, 5, 6],
                         "real_server": ["rs1", "rs1", "rs2", "rs2", "rs1", "rs2"]})


def test_healthy_flow_ids_spread_over_servers_and_skip_offenders():
    assert healthy_flow_ids(_flows(), exclude={1}, limit=3) == [2, 3, 4]
    assert healthy_flow_ids(_flows(), exclude={3}, limit=2) == [1, 4]
    assert healthy_flow_ids(_flows(), exclude=set(range(1, 7)), limit=3) == []
    assert healthy_flow_ids(None, exclude=set()) == []
    assert healthy_flow_ids(pd.DataFrame({"x": [1]}), exclude=set()) == []


def test_select_ladders_builds_one_per_failing_rule_and_records_problems():
    calls = []

    def build(analysis, *, flow=None, client=None):
        calls.append(flow)
        if flow == 4:
            raise InputError("flow 4 has no packets")
        return sample_ladder(flow)

    analysis = SimpleNamespace(flows=_flows())
    ladders = select_ladders(sample_report(), analysis, healthy=3, build=build)
    assert list(ladders.offending) == ["DR003"] and ladders.offending["DR003"].flow_id == 3
    assert [lad.flow_id for lad in ladders.healthy] == [1, 2, 5]   # 4 failed, 3 is an offender
    assert ladders.problems == ["flow 4: flow 4 has no packets"]
    assert calls.count(3) == 1


def test_healthy_flow_ids_prefer_whole_connections():
    flows = _flows().assign(synack_seen=[False, True, True, True, True, None],
                            rst_from_vip=[False, False, True, False, False, False],
                            rs_count=[1, 1, 1, 1, 2, 1])
    # whole: 2 (rs1), 4 (rs2); then the rest in table order: 1, 3, 5, 6
    assert healthy_flow_ids(flows, exclude=set(), limit=4) == [2, 4, 1, 3]
