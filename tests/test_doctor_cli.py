"""`dr-inspect doctor` on capture sets (offline snapshots): formats, exit codes, bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from dr_inspect.cli import main
from dr_inspect.doctor.snapshot import write_snapshot

from test_doctor_checks import director_snapshot, rs_snapshot, set_conf


def _capture_set(tmp_path, rs, director, capture="[capture]\nvip = \"192.168.7.33\"\nport = 8000\n"):
    root = tmp_path / "set"
    write_snapshot(rs, root / "snapshots" / "rs1.json")
    write_snapshot(director, root / "snapshots" / "director.json")
    (root / "manifest.toml").write_text(
        capture + '\n[snapshots]\nrs1 = "snapshots/rs1.json"\ndirector = "snapshots/director.json"\n')
    return root


def _run(*args):
    return CliRunner().invoke(main, ["doctor", *args])


def test_healthy_set_exits_0_with_every_format(tmp_path):
    root = _capture_set(tmp_path, rs_snapshot(), director_snapshot())
    res = _run(str(root))
    assert res.exit_code == 0, res.output
    assert "doctor 192.168.7.33:8000: PASS" in res.output
    data = json.loads(_run(str(root), "--format", "json").output)
    assert data["verdict"] == "pass" and data["counts"]["fail"] == 0
    assert {h["host"]: h["role"] for h in data["hosts"]} == {"rs1": "realserver", "director": "director"}
    suites = ET.fromstring(_run(str(root), "--format", "junit").output)
    assert suites.get("failures") == "0" and int(suites.get("tests")) == data["counts"]["pass"]
    md = _run(str(root), "--format", "markdown").output
    assert md.startswith("# dr-inspect doctor: 192.168.7.33:8000") and "| HC001 |" in md


def test_failing_set_exits_1_and_prints_the_fix(tmp_path):
    rs = rs_snapshot()
    set_conf(rs, "all", "arp_ignore", 0)
    set_conf(rs, "eth14", "arp_ignore", 0)
    root = _capture_set(tmp_path, rs, director_snapshot())
    res = _run(str(root))
    assert res.exit_code == 1
    assert "ip netns exec t6-rs1 sysctl -w net.ipv4.conf.eth14.arp_ignore=1" in res.output
    out = tmp_path / "r.xml"
    res = _run(str(root), "--format", "junit", "-o", str(out))
    assert res.exit_code == 1
    failures = ET.parse(out).getroot().findall(".//failure")
    assert len(failures) == 1 and failures[0].get("message").startswith("HC002 rs1 eth14")


def test_vip_is_learned_from_the_ipvs_table_when_manifest_has_none(tmp_path):
    root = _capture_set(tmp_path, rs_snapshot(), director_snapshot(), capture="")
    res = _run(str(root), "--format", "json")
    assert res.exit_code == 0 and json.loads(res.output)["vip"] == "192.168.7.33:8000"


@pytest.mark.parametrize("args,message", [
    (["--role", "realserver"], "needs --role"),
    (["--role", "realserver", "--vip", "nope"], "not an IP address"),
    (["--role", "director", "--vip", "10.0.0.1:80", "--netns", "t6x-does-not-exist"], "does not exist"),
    (["--role", "realserver", "--vip", "10.0.0.1", "--client", "x/99"], "--client"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    res = _run(*args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_bad_capture_sets_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.toml").write_text("[capture]\n")
    res = _run(str(empty))
    assert res.exit_code == 2 and "no host snapshots" in res.output
    root = _capture_set(tmp_path, rs_snapshot(), director_snapshot())
    (root / "snapshots" / "rs1.json").write_text("{broken")
    res = _run(str(root))
    assert res.exit_code == 2 and "rs1.json: not a JSON snapshot" in res.output
    res = _run(str(root), "--role", "director")
    assert res.exit_code == 2 and "apply to a live host" in res.output


def test_list_checks_documents_every_id():
    from dr_inspect.doctor.catalogue import CATALOGUE
    res = _run("--list-checks", "--format", "json")
    assert res.exit_code == 0
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == [c.id for c in CATALOGUE]
    assert next(r for r in rows if r["id"] == "HC002")["explains"] == ["DR005", "DR012"]
    table = _run("--list-checks").output
    assert all(c.id in table and c.name in table for c in CATALOGUE)
