"""The bundled capture sets (captures/seed-*, captures/fault-*) rendered in every format: the
formats agree with each other and with the set's expected.toml (rule ids that must fail)."""

from __future__ import annotations

import json
import re
import tomllib
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from conftest import ROOT, require
from dr_inspect.cli import main
from dr_inspect.report import (render_html, render_json, render_junit, render_ladder_svg,
                               render_ladder_text, render_markdown, render_table)

CAPTURES = ROOT / "captures"
CAPTURE_SETS = sorted(p for p in CAPTURES.glob("*") if (p / "manifest.toml").is_file())


def expected_failures(capture_set) -> list[str]:
    path = capture_set / "expected.toml"
    return list(tomllib.loads(path.read_text()).get("fail", [])) if path.is_file() else []


def test_bundled_capture_sets_are_present():
    require(bool(CAPTURE_SETS), f"no bundled capture sets under {CAPTURES}")
    names = {p.name for p in CAPTURE_SETS}
    assert {"seed-ipvs", "seed-nft"} <= names
    assert any(n.startswith("fault-") for n in names)


@pytest.fixture(scope="module")
def analyses():
    from dr_inspect.analysis.paths import analyse_paths
    cache = {}

    def get(capture_set):
        if capture_set not in cache:
            cache[capture_set] = analyse_paths([capture_set])
        return cache[capture_set]
    return get


@pytest.mark.parametrize("capture_set", CAPTURE_SETS, ids=lambda p: p.name)
def test_every_format_agrees(capture_set, analyses):
    analysis = analyses(capture_set)
    report = analysis.report
    failing = {r.id for r in report.rules if r.status == "fail"}
    assert set(expected_failures(capture_set)) <= failing

    doc = json.loads(render_json(report))
    assert {r["id"] for r in doc["rules"] if r["status"] == "fail"} == failing
    assert doc["verdict"] == report.verdict and doc["exit_code"] == report.exit_code

    root = ET.fromstring(render_junit(report))
    junit_failing = {c.get("name").split()[0] for c in root.iter("testcase")
                     if c.find("failure") is not None}
    assert junit_failing == failing
    assert int(root.find("testsuite").get("failures")) == len(failing)

    markdown = render_markdown(report)
    md_failing = set(re.findall(r"^\| (DR\d{3}) \|[^\n]*\*\*FAIL\*\*", markdown, re.M))
    assert md_failing == failing

    table = render_table(report)
    assert table.rstrip().splitlines()[-1].startswith(report.verdict.upper())

    html = render_html(report, analysis)
    for rule in report.rules:
        assert rule.id in html
    for rule_id in failing:
        assert f'id="{rule_id}"' in html
    assert f"Verdict: {report.verdict.upper()}" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert len(html.encode()) < 2_000_000


@pytest.mark.parametrize("capture_set", CAPTURE_SETS, ids=lambda p: p.name)
def test_cli_exit_code_follows_the_verdict(capture_set):
    result = CliRunner().invoke(main, ["verify", str(capture_set), "--format", "json"])
    doc = json.loads(result.output)
    assert result.exit_code == doc["exit_code"] == (1 if doc["verdict"] == "fail" else 0)
    if expected_failures(capture_set):
        assert result.exit_code == 1


@pytest.mark.parametrize("capture_set", [p for p in CAPTURE_SETS if p.name.startswith("seed-")],
                         ids=lambda p: p.name)
def test_seed_ladder_tells_the_six_steps(capture_set, analyses):
    from dr_inspect.analysis.ladder import build_ladder

    ladder = build_ladder(analyses(capture_set), flow=1)
    text = render_ladder_text(ladder)
    positions = [text.find(step) for step in ("client send", "director receive", "director send",
                                               "server receive", "server send", "client receive")]
    assert -1 not in positions and positions[:4] == sorted(positions[:4])
    assert "dst MAC rewritten" in text or "dst MAC " in text
    assert "bypasses the director" in text
    svg = ET.fromstring(render_ladder_svg(ladder))
    assert len([g for g in svg.iter("{http://www.w3.org/2000/svg}g")
                if "direct" in (g.get("class") or "").split()]) >= 1
