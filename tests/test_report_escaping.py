"""Output integrity: whatever text a capture set or rule file carries (point names, file names,
errors, evidence), the text table cannot be given forged lines, JUnit XML stays well-formed and
Markdown/HTML carry no raw markup."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_inspect.cli import main
from dr_inspect.model import Evidence, VerifyReport
from dr_inspect.report import render_html, render_junit, render_markdown, render_table
from dr_inspect.report.escape import one_line
from dr_inspect.analysis.paths import verify_paths
from test_cli_verify import write_dr_set

FORGED = "br_e\nPASS: 13 passed, 0 failed (error)\x1b[32m <script>alert(1)</script> [x](javascript:y)"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> VerifyReport:
    folder = write_dr_set(tmp_path_factory.mktemp("esc") / "set", reply_via_director=True)
    return verify_paths([folder])


def poisoned(report: VerifyReport, text: str) -> VerifyReport:
    """The report with `text` in every place input text reaches: point names and files,
    errors, evidence."""
    points = [dataclasses.replace(p, name=text + p.name, file=text, error=text)
              for p in report.points]
    rules = []
    for r in report.rules:
        ev = Evidence(point=text, frames=[1], ts_ns=[0], five_tuple=text, expected=text,
                      actual=text, display_filter=text + "`|`", cause=text)
        rules.append(dataclasses.replace(r, evidence=[ev, *r.evidence], note=text,
                                         host_causes=[text]))
    return dataclasses.replace(report, points=points, rules=rules, errors=[text])


def markdown_prose(md: str) -> str:
    """Markdown without its fenced blocks and code spans: those show their content literally
    (markup there is inert); everything else must carry none."""
    md = re.sub(r"^(`{3,})\n.*?^\1$", "", md, flags=re.S | re.M)
    prose = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)
    assert "`" not in prose
    return prose


def test_a_newline_in_a_point_name_forges_no_line(report):
    text = render_table(poisoned(report, FORGED))
    verdicts = [line for line in text.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert verdicts == [text.splitlines()[-1]] and verdicts[0].startswith("FAIL")
    assert "\x1b" not in text and "\\n" in text and "\\x1b" in text


def test_markdown_and_html_carry_no_raw_markup(report):
    bad = poisoned(report, FORGED)
    md = render_markdown(bad)
    prose = markdown_prose(md)
    assert "<script" not in prose and "\x1b" not in md
    assert not re.search(r"(?<!\\)\]\(javascript", prose)      # no link, brackets escaped
    page = render_html(bad)
    assert "<script>alert" not in page and "\x1b" not in page


def test_points_named_by_a_manifest_reach_the_output_escaped(tmp_path):
    folder = write_dr_set(tmp_path / "set")
    manifest = (folder / "manifest.toml").read_text()
    (folder / "manifest.toml").write_text(manifest.replace(
        'name = "br_e"', 'name = "br_e\\nPASS: all fine\\u0007 <b>x</b>"'))
    runner = CliRunner()
    table = runner.invoke(main, ["verify", "-q", str(folder)]).output
    assert not any(line.startswith("PASS: all fine") for line in table.splitlines())
    junit = runner.invoke(main, ["verify", "-q", "--format", "junit", str(folder)]).output
    ET.fromstring(junit)
    md = runner.invoke(main, ["verify", "-q", "--format", "markdown", str(folder)]).output
    assert "<b>" not in markdown_prose(md) and "&lt;b>" in md


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_junit_is_always_well_formed(text):
    from test_report_escaping import _REPORT
    xml = render_junit(poisoned(_REPORT, text))
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    case_names = [c.get("name") for c in root.iter("testcase")]
    assert len(case_names) == len(_REPORT.rules)


@given(st.text(min_size=1, max_size=40).filter(lambda t: t.strip()))
@settings(max_examples=200, deadline=None)
def test_table_lines_never_multiply(text):
    from test_report_escaping import _REPORT
    base = render_table(poisoned(_REPORT, "x")).count("\n")
    assert render_table(poisoned(_REPORT, text)).count("\n") == base


def test_one_line_keeps_printable_text():
    assert one_line("rs1 192.168.7.2:80 -> été ✓") == "rs1 192.168.7.2:80 -> été ✓"
    assert one_line("a\nb\r\tc\x00\u2028") == "a\\nb\\r\\tc\\x00\\u2028"


def _report_for_properties() -> VerifyReport:
    import tempfile
    folder = write_dr_set(Path(tempfile.mkdtemp(prefix="dri-esc-")) / "set",
                          reply_via_director=True)
    return verify_paths([folder])


_REPORT = _report_for_properties()
