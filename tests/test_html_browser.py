"""The HTML report in a real browser: headless Chromium opens the file from disk, logs no console
messages, shows the verdict and every rule id in its DOM; a screenshot of each is kept under
tests/artifacts/ for a person to look at."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, require, require_tool
from dr_inspect.report import render_html
from dr_inspect.report.ladders import ReportLadders
from test_report import sample_ladder, sample_report, sample_rules

ARTIFACTS = ROOT / "tests" / "artifacts"
CAPTURES = ROOT / "captures"
# Everything that could fetch from the network or touch a profile is off.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars"]
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def _chromium(chromium: str, profile: Path, extra: list[str], page: Path) -> subprocess.CompletedProcess:
    argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
            "--v=0", *extra, page.resolve().as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """Console messages Chromium logged (any level: the report has no script, so any is wrong)."""
    return [m.group(1) for m in map(_CONSOLE.search, stderr.splitlines()) if m]


def open_in_browser(html: str, name: str, tmp_path: Path) -> tuple[str, list[str], Path]:
    """(DOM after load, console messages, screenshot path) for one HTML document."""
    chromium = require_tool("chromium", "chromium")
    page = tmp_path / f"{name}.html"
    page.write_text(html)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    # One browser run loads the page once: DOM on stdout, console on stderr, PNG to the file.
    run = _chromium(chromium, tmp_path / "profile",
                    ["--dump-dom", "--window-size=1400,2400", f"--screenshot={shot}"], page)
    assert run.returncode == 0, run.stderr[-2000:]
    (ARTIFACTS / f"{name}.html").write_text(html)
    return run.stdout, console_messages(run.stderr), shot


def _check_dom(dom: str, verdict: str, rule_ids: list[str]) -> None:
    assert f"Verdict: {verdict.upper()}" in dom
    for rule_id in rule_ids:
        assert re.search(rf"\b{rule_id}\b", dom), rule_id


def test_console_detection_works(tmp_path):
    # The negative control: a page that does log must be caught, or the next checks prove nothing.
    dom, console, _ = open_in_browser(
        '<html><body><p id="x">hi</p><script>console.error("boom"); missingFn();</script>'
        "</body></html>", "console-control", tmp_path)
    assert '<p id="x">hi</p>' in dom
    assert any("boom" in m for m in console)
    assert any("missingFn" in m for m in console)


@pytest.mark.parametrize("failing", [True, False], ids=["fail", "pass"])
def test_report_in_chromium(tmp_path, failing):
    report = sample_report(failing=failing)
    ladders = ReportLadders(offending={"DR003": sample_ladder(3)} if failing else {},
                            healthy=[sample_ladder(5)])
    html = render_html(report, ladders=ladders, title="browser test")
    dom, console, shot = open_in_browser(html, f"report-{'fail' if failing else 'pass'}", tmp_path)
    assert console == []
    _check_dom(dom, report.verdict, [r.id for r in sample_rules()])
    assert dom.count("<svg") == html.count("<svg")       # every picture made it into the DOM
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CAPTURE_SETS = sorted(p for p in CAPTURES.glob("*") if (p / "manifest.toml").is_file())


def test_bundled_capture_sets_exist_for_the_browser():
    require(bool(CAPTURE_SETS), f"no bundled capture sets under {CAPTURES}")


@pytest.mark.parametrize("capture_set", CAPTURE_SETS, ids=lambda p: p.name)
def test_bundled_capture_report_in_chromium(tmp_path, capture_set):
    from dr_inspect.analysis.paths import analyse_paths

    analysis = analyse_paths([capture_set])
    html = render_html(analysis.report, analysis, title=f"dr-inspect: {capture_set.name}")
    dom, console, shot = open_in_browser(html, f"capture-{capture_set.name}", tmp_path)
    assert console == []
    _check_dom(dom, analysis.report.verdict, [r.id for r in analysis.report.rules])
    assert shot.is_file()
