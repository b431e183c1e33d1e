"""ladder --list: every connection with its real server, verdict and the rules it breaks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import ROOT
from dr_inspect.options import VerifyOptions
from dr_inspect.cli import main
from dr_inspect.report.flow_list import LIST_EVIDENCE, flow_rows
from dr_inspect.analysis.paths import analyse_paths


def rows_of(name: str) -> list[dict]:
    analysis = analyse_paths([ROOT / "captures" / name], VerifyOptions(max_evidence=LIST_EVIDENCE))
    return flow_rows(analysis.report, analysis.flows)


def test_port_mismatch_flows_to_rs1_fail_dr009():
    rows = rows_of("fault-port-mismatch")
    assert [r["flow"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        # the lab's fault is on rs1: its connections are refused, rs2's are whole
        if r["real_server"] == "rs1":
            assert (r["verdict"], r["rules"]) == ("FAIL", "DR009")
        else:
            assert (r["real_server"], r["verdict"], r["rules"]) == ("rs2", "ok", "")
    assert rows[1]["client"] == "192.168.7.2:52094" and rows[1]["vip"] == "192.168.7.33:8000"


def test_evidence_without_flow_id_is_matched_by_five_tuple():
    # DR012's evidence is per frame (no flow id): every connection went straight to rs1's MAC
    rows = rows_of("fault-rs-answers-arp")
    assert rows and all(r["rules"] == "DR012" for r in rows)


def test_healthy_set_lists_no_failure():
    rows = rows_of("seed-ipvs")
    assert len(rows) == 6 and {r["verdict"] for r in rows} == {"ok"}
    assert {r["real_server"] for r in rows} == {"rs1", "rs2"}


def test_cli_list():
    result = CliRunner().invoke(main, ["ladder", str(ROOT / "captures/fault-port-mismatch"),
                                       "--list", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "real server" in lines[0] and "rules broken" in lines[0]
    assert sum("FAIL" in line and "DR009" in line and "rs1" in line for line in lines) == 3
    assert "6 connections, 3 breaking a rule" in result.output


@pytest.mark.parametrize("extra", [["--flow", "1"], ["--client", "192.168.7.2:40000"]])
def test_cli_list_excludes_one_flow_options(extra):
    result = CliRunner().invoke(main, ["ladder", str(ROOT / "captures/seed-ipvs"), "--list", *extra])
    assert result.exit_code == 2 and "--list shows every connection" in result.output
