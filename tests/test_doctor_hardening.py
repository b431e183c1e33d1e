"""doctor never says PASS when it checked nothing, and --netns is a namespace name, never a path
(for capture and watch too)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dr_inspect.cli import main
from dr_inspect.doctor.checks import parse_vip
from dr_inspect.doctor.render import render
from dr_inspect.doctor.run import doctor_snapshots
from dr_inspect.errors import InputError
from dr_inspect.netns import check_netns_name
from test_doctor_checks import rs_snapshot

ITEMS = ("addr", "route4", "route6", "neigh", "listeners")


def _blind_snapshot() -> dict:
    """A snapshot in which every command failed: nothing to check."""
    snap = {"host": "rs1", "sysctl": {}, **{item: None for item in ITEMS}}
    snap["errors"] = {item: "command failed" for item in (*ITEMS, "sysctl")}
    return snap


def test_nothing_checked_is_never_a_pass():
    vip, port = parse_vip("192.168.7.33:8000")
    report = doctor_snapshots({"rs1": _blind_snapshot()}, vip, port, roles={"rs1": "realserver"})
    assert report.counts()["pass"] == report.counts()["fail"] == 0
    assert report.verdict == "not-checked" and report.exit_code == 2
    import json
    assert json.loads(render(report, "json"))["verdict"] == "not-checked"
    table = render(report, "table")
    assert "NOT CHECKED - 0 failed, 0 passed" in table and ": PASS" not in table


def test_no_hosts_is_never_a_pass():
    vip, port = parse_vip("192.168.7.33")
    report = doctor_snapshots({}, vip, port)
    assert report.verdict == "not-checked" and report.exit_code == 2


def test_a_checked_host_still_passes():
    vip, port = parse_vip("192.168.7.33:8000")
    report = doctor_snapshots({"rs1": rs_snapshot()}, vip, port, roles={"rs1": "realserver"})
    assert report.verdict in ("pass", "fail") and report.counts()["pass"] > 0


@pytest.mark.parametrize("name", ["../../proc/1/ns", "/proc/1/ns/net", "..", ".", "a/b", "-x",
                                  "", "x\ny", "ns with space"])
def test_netns_must_be_a_name(name):
    with pytest.raises(InputError, match="not a path"):
        check_netns_name(name)


@pytest.mark.parametrize("name", ["dri-sw", "t5-rs1", "cni-1234_ab.c", "ns@1"])
def test_netns_names_are_accepted(name):
    assert check_netns_name(name) == name


@pytest.mark.parametrize("argv", [
    ["doctor", "--role", "director", "--vip", "10.0.0.1:80", "--netns", "../../proc/1/ns"],
    ["capture", "--bridge", "lo", "--netns", "../../proc/1/ns", "--duration", "1"],
    ["watch", "--bridge", "lo", "--netns", "/proc/1/ns/net", "--duration", "1"],
])
def test_netns_paths_are_refused_by_every_command(argv, tmp_path):
    result = CliRunner().invoke(main, argv + (["--out", str(tmp_path / "o")] if argv[0] == "capture" else []))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dr-inspect: error:") and "not a path" in lines[0]
