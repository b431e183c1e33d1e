"""The words of every report: no doubled word ("on lo on lo", "director director") and no internal
name ("ipvsadm_sn", table columns) in any bundled set's text report or doctor report; identical
evidence grouped; the host fix first and most visible; the HTML ladder never cut off at 1400 px."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, require_tool
from dr_inspect.options import VerifyOptions
from dr_inspect.doctor.checkbase import ITEM_NAMES, missing
from dr_inspect.doctor.render import render as render_doctor
from dr_inspect.doctor.run import doctor_capture_set
from dr_inspect.live.render import render_interval
from dr_inspect.live.rolling import IntervalVerdict
from dr_inspect.model import Evidence, RuleResult
from dr_inspect.report import render_table
from dr_inspect.report.format import failure_lines
from dr_inspect.report.html import render_html
from dr_inspect.analysis.paths import analyse_paths

SETS = sorted(p.name for p in (ROOT / "captures").iterdir() if (p / "manifest.toml").is_file())
DOUBLED = [re.compile(r"\b([A-Za-z][A-Za-z'-]+) \1\b"),                 # "director director"
           re.compile(r"\b([A-Za-z][\w'-]* [\w'./-]+) \1\b")]           # "on lo on lo"
SNAKE = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")


def sentence_problems(text: str, internal: set[str]) -> list[str]:
    problems = []
    for line in dict.fromkeys(text.splitlines()):
        problems += [f"doubled {m.group(0)!r}: {line.strip()}" for rx in DOUBLED
                     for m in rx.finditer(line)]
        problems += [f"internal name {w!r}: {line.strip()}" for w in SNAKE.findall(line)
                     if w in internal]
    return problems


@pytest.fixture(scope="module", params=SETS)
def analysed(request):
    return request.param, analyse_paths([ROOT / "captures" / request.param], VerifyOptions(max_evidence=10_000))


def internal_names(analysis) -> set[str]:
    """Column names of the analysis tables and snapshot keys: never words of a report."""
    columns = {c for t in analysis.tables.values() for c in t.columns}
    return {n for n in columns | set(analysis.packets.columns) | set(ITEM_NAMES) if "_" in n}


def test_text_report_reads_well(analysed):
    name, analysis = analysed
    problems = sentence_problems(render_table(analysis.report), internal_names(analysis))
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_doctor_report_reads_well(analysed):
    name, analysis = analysed
    text = render_doctor(doctor_capture_set(ROOT / "captures" / name), "table")
    problems = sentence_problems(text, internal_names(analysis))
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_checker_catches_the_sentences_of_issue_17():
    found = sentence_problems("HC001: 192.168.7.33/24 on lo on lo of real server rs1\n"
                              "HC014: drop on nft of director director (MAC x)\n"
                              "ipvsadm_sn missing from the snapshot", {"ipvsadm_sn"})
    assert len(found) == 3


def test_snapshot_items_have_human_names():
    text = missing({"errors": {}}, "ipvsadm_sn")
    assert text == "the IPVS table (ipvsadm -Sn) missing from the snapshot"


def test_identical_evidence_is_grouped():
    analysis = analyse_paths([ROOT / "captures" / "fault-rs-answers-arp"])
    text = render_table(analysis.report)
    cause = "the client resolved the VIP to real server rs1"
    assert text.count(cause) == 1, text                      # was once per frame
    assert "br_e #3, #5, #6, #9, #11 (+5): 10 frames in 2 connections" in text
    assert "frame.number in {3 5 6 9 11 12 14 16 18 19} && eth.dst == 02:00:c0:a8:07:63" in text


def _rule(evidence: list[Evidence], host_causes: list[str]) -> RuleResult:
    return RuleResult(id="DR009", name="handshake-completes", title="t", severity="error",
                      status="fail", violations=len(evidence), evidence=evidence,
                      explanation="why it matters", fix_hint="generic fix",
                      host_causes=host_causes)


def test_host_fix_comes_first_and_one_command_once():
    ev = Evidence(point="br_e", frames=[4], ts_ns=[1], five_tuple="tcp 1.1.1.1:1 -> 2.2.2.2:80",
                  expected="SYN-ACK", actual="none", display_filter="frame.number == 4")
    fix = "ip netns exec x ip addr add 2.2.2.2/32 dev lo"
    rule = _rule([ev], [f"HC001 on real server rs1: no VIP; fix: {fix}",
                        f"HC005 on real server rs1: VIP subnet local; fix: {fix}",
                        "HC020 on the director: something without a command"])
    lines = failure_lines(rule, indent="  ")
    assert lines[:5] == [f"  HOST FIX: {fix}", "    because HC001 on real server rs1: no VIP",
                         "    because HC005 on real server rs1: VIP subnet local",
                         "  HOST: HC020 on the director: something without a command",
                         "  why: why it matters"]
    html = render_html(_report_of(rule))
    assert html.index('class="hostfix"') < html.index('class="evidence"')
    assert f"<code>{fix}</code>" in html


def _report_of(rule: RuleResult):
    from dr_inspect.model import VerifyReport
    return VerifyReport(verdict="fail", rules=[rule], topology=None, points=[])


def test_live_lines_say_actual_not_got():
    rule = _rule([], [])
    ev = Evidence(point="br_e", frames=[7], ts_ns=[1], five_tuple="tcp a -> b", expected="rr",
                  actual="rs1 got 4 of 5", display_filter="frame.number == 7")
    v = IntervalVerdict(index=1, at_ns=0, status="fail", failing=["DR009"], new=[(rule, ev)],
                        new_unshown=0, packets={"br_e": 1}, window_packets=1, flows=1,
                        drops={"br_e": 0}, lag_ms=None, eval_ms=1.0)
    text = render_interval(v)
    assert "expected rr; actual: rs1 got 4 of 5" in text and ", got rs1" not in text


def test_html_ladder_table_fits_1400_px(tmp_path):
    chromium = require_tool("chromium", "chromium")
    analysis = analyse_paths([ROOT / "captures" / "fault-rs-answers-arp"])
    html = render_html(analysis.report, analysis)
    probe = ("<script>var out=[];document.querySelectorAll('.figure svg').forEach(function(s){"
             "out.push(Math.ceil(s.getBoundingClientRect().right));});"
             "document.body.setAttribute('data-layout',window.innerWidth+' '+"
             "document.documentElement.scrollWidth+' '+out.join(','));</script>")
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--window-size=1400,900", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    layout = re.search(r'data-layout="(\d+) (\d+) ([\d,]+)"', dom)
    assert layout, dom[-2000:]
    viewport, page_width = int(layout.group(1)), int(layout.group(2))
    rights = [int(x) for x in layout.group(3).split(",")]
    assert viewport == 1400 and page_width <= viewport
    assert len(rights) >= 3 and max(rights) <= viewport       # ladders with their tables, whole
