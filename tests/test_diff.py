"""dr-inspect diff: rule, real-server and latency changes between two verify JSON reports, and
the exit code CI gates on (0 no regression, 1 regression, 2 bad input)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import ROOT
from dr_inspect.cli import main
from dr_inspect.diff import diff_reports, load_report, render_diff_text
from dr_inspect.errors import InputError
from dr_inspect.report import render_json
from dr_inspect.analysis.paths import verify_paths


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The JSON reports of the healthy seed and of the port-mismatch fault, as files."""
    base = tmp_path_factory.mktemp("diff")
    out = {}
    for name in ("seed-ipvs", "fault-port-mismatch"):
        path = base / f"{name}.json"
        path.write_text(render_json(verify_paths([ROOT / "captures" / name])))
        out[name] = path
    return out


def test_fault_after_healthy_is_a_regression(reports):
    d = diff_reports(load_report(reports["seed-ipvs"]), load_report(reports["fault-port-mismatch"]))
    assert (d.old_verdict, d.new_verdict) == ("pass", "fail")
    changes = {c.id: c for c in d.rules}
    assert changes["DR009"].change == "started failing" and changes["DR009"].regression
    assert changes["DR009"].new_violations == 3
    assert d.exit_code == 1 and any("DR009" in r for r in d.regressions)
    # the fault set's rs1 refused every connection: no response time there any more
    rs1 = next(s for s in d.servers if s.name == "rs1")
    assert rs1.latency["response_us.p50"]["old"] is not None
    assert rs1.latency["response_us.p50"]["new"] is None


def test_fixed_fault_is_not_a_regression(reports):
    d = diff_reports(load_report(reports["fault-port-mismatch"]), load_report(reports["seed-ipvs"]))
    assert [c.change for c in d.rules if c.id == "DR009"] == ["stopped failing"]
    assert d.exit_code == 0 and not d.regressions
    assert "no regression" in render_diff_text(d)


def test_same_report_has_no_change(reports):
    doc = load_report(reports["seed-ipvs"])
    d = diff_reports(doc, doc)
    assert d.rules == [] and d.added_servers == [] and d.removed_servers == []
    assert d.exit_code == 0


def test_servers_added_removed_and_share(reports):
    old = load_report(reports["seed-ipvs"])
    new = copy.deepcopy(old)
    servers = new["stats"]["real_servers"]
    gone = servers.pop(0)["name"]
    servers.append({**servers[0], "name": "rs9", "connections": 3 * servers[0]["connections"]})
    d = diff_reports(old, new)
    assert d.removed_servers == [gone] and d.added_servers == ["rs9"]
    assert f"real server {gone} no longer receives connections" in d.regressions
    rs9 = next(s for s in d.servers if s.name == "rs9")
    assert rs9.old_share is None and rs9.new_share == pytest.approx(0.75)
    text = render_diff_text(d)
    assert "new real servers: rs9" in text and f"real servers gone: {gone}" in text


def test_latency_growth_is_a_regression_only_over_the_limit(reports):
    old = load_report(reports["seed-ipvs"])
    new = copy.deepcopy(old)
    rs = new["stats"]["real_servers"][0]
    rs["response_us"]["p95"] = old["stats"]["real_servers"][0]["response_us"]["p95"] * 3
    assert diff_reports(old, new).exit_code == 0
    d = diff_reports(old, new, max_latency_increase_pct=50)
    assert d.exit_code == 1
    assert any("response_us p95 grew 200%" in r for r in d.regressions)
    assert diff_reports(old, new, max_latency_increase_pct=250).exit_code == 0


def test_cli_exit_codes_and_json(reports, tmp_path):
    run = CliRunner().invoke
    seed, fault = str(reports["seed-ipvs"]), str(reports["fault-port-mismatch"])
    bad = run(main, ["diff", seed, fault])
    assert bad.exit_code == 1 and "REGRESSION" in bad.output
    good = run(main, ["diff", fault, seed, "--format", "json"])
    assert good.exit_code == 0
    doc = json.loads(good.output)
    assert doc["schema"] == "dr-inspect.diff/1" and doc["regressed"] is False
    assert [r["change"] for r in doc["rules"]] == ["stopped failing"]


@pytest.mark.parametrize("content, message", [
    ("not json {", "not JSON"),
    ('{"schema": "something/1"}', "not a dr-inspect verify JSON report"),
])
def test_bad_input_exits_2(tmp_path, reports, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_report(path)
    result = CliRunner().invoke(main, ["diff", str(path), str(reports["seed-ipvs"])])
    assert result.exit_code == 2 and message in result.output
    missing = CliRunner().invoke(main, ["diff", str(tmp_path / "nope.json"), str(path)])
    assert missing.exit_code == 2 and "cannot read" in missing.output
