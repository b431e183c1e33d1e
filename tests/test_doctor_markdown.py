"""doctor --format markdown: text that comes from the host (interface names, sysctl values,
command output, snapshot times, netns names) cannot add raw HTML, break a table row or line,
or start markup of its own (issue 18, output integrity)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dr_inspect.doctor.render import render_markdown
from dr_inspect.doctor.result import DoctorReport, HostCheck, HostReport

HOSTILE = ["eth0<script>alert(1)</script>", "lo|x|y", "`ip a`", "a\nb\r\nc", "``x``",
           "| --- | --- |", "[x](javascript:y)", "**bold** _em_", "&lt;entity&gt;", "\\|", "\\`"]


def report_with(text: str) -> DoctorReport:
    checks = [
        HostCheck(id="HC002", name="rs-arp-ignore", host=text, role="realserver", status="fail",
                  subject=text, found=text, needed=text, fix=f"sysctl -w {text}`|`",
                  reason=text),
        HostCheck(id="HC001", name="rs-vip-on-loopback", host=text, role="realserver",
                  status="not-checked", subject=text, reason=text),
        HostCheck(id="HC003", name="rs-arp-announce", host=text, role="realserver",
                  status="pass", subject=text, found=text),
    ]
    host = HostReport(host=text, role="realserver", role_source="given", netns=text,
                      taken_at=text, checks=checks)
    return DoctorReport(vip=text, hosts=[host], source=text)


def unescaped_pipes(line: str) -> int:
    """Pipes not escaped by a backslash (an even run of backslashes escapes itself)."""
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def prose(md: str) -> str:
    """The Markdown without the fix lines' code spans (a code span shows its content
    literally: markup there is inert)."""
    return re.sub(r"(`+) .*? \1$|(`+)[^`].*?\2$", "", md, flags=re.M)


def check(text: str) -> None:
    md = render_markdown(report_with(text))
    plain = render_markdown(report_with("x"))
    # one line per line of the layout: nothing the host says starts a line
    assert len(md.splitlines()) == len(plain.splitlines())
    for line, layout in zip(md.splitlines(), plain.splitlines()):
        if layout.startswith("|"):
            assert unescaped_pipes(line) == unescaped_pipes(layout), line
        assert line[:2] == layout[:2], line
    body = prose(md)
    assert "<" not in body and "\r" not in md
    assert not re.search(r"(?<!\\)(?:\\\\)*`", body), body
    assert not re.search(r"(?<!\\)(?:\\\\)*\]\(", body)


def test_hostile_host_text_stays_inside_its_cell():
    for text in HOSTILE:
        check(text)
    md = render_markdown(report_with(HOSTILE[0]))
    assert "eth0&lt;script>alert(1)&lt;/script>" in md


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("<>|`\\\n\r*_[]()&#;-: aZ\u2028\x1b"), max_size=20))
def test_any_host_text_stays_inside_its_cell(text):
    check(text)
