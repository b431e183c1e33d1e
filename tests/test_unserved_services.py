"""SYNs that reach the director for an ip:port no real server serves are never passed in silence.

The traffic alone cannot tell a virtual service without real servers from a port the director's
firewall drops: DR007 names them in its note. With the director's host snapshot the IPVS table
says which it is: a listed service is a VIP, and its unforwarded SYNs fail DR007.
"""

from __future__ import annotations

import json

from rulecaps import VIP, DrCapture

from dr_inspect.analysis.paths import verify_paths


def _capture() -> DrCapture:
    cap = DrCapture().healthy()
    cap.connection(42000, port=9000, forward=False, answer="none")
    cap.connection(42001, vip="192.168.7.34", forward=False, answer="none")
    cap.connection(42002, rs=1)
    return cap


def _dr007(report):
    return next(r for r in report.rules if r.id == "DR007")


def test_unanswered_syns_to_the_director_are_named(tmp_path):
    report = verify_paths([_capture().write(tmp_path / "set")])
    note = _dr007(report).note
    assert f"1 to {VIP}:9000" in note and "1 to 192.168.7.34:8000" in note
    assert report.topology.vips == [f"{VIP}:8000"]


def test_answered_syns_to_the_director_are_its_own_business(tmp_path):
    """A port the director itself answers (SSH to it, a RST from a closed port) is no loss."""
    cap = DrCapture().healthy()
    cap.connection(42000, port=22, forward=False, answer="rst")
    report = verify_paths([cap.write(tmp_path / "set")])
    assert "neither forwarded nor answered" not in _dr007(report).note
    assert report.verdict == "pass"


def test_a_service_the_director_lists_is_a_vip_and_fails_dr007(tmp_path):
    folder = _capture().write(tmp_path / "set")
    (folder / "snapshots").mkdir()
    table = (f"-A -t {VIP}:8000 -s rr\n-a -t {VIP}:8000 -r 10.0.0.11:8000 -g -w 1\n"
             f"-A -t {VIP}:9000 -s rr\n")
    snap = {"schema": 1, "host": "director", "addr": [], "sysctl": {}, "ipvsadm_sn": table}
    (folder / "snapshots" / "director.json").write_text(json.dumps(snap))
    with open(folder / "manifest.toml", "a") as fh:
        fh.write('\n[snapshots]\ndirector = "snapshots/director.json"\n')
    report = verify_paths([folder])
    assert report.topology.vips == [f"{VIP}:8000", f"{VIP}:9000"]
    dr007 = _dr007(report)
    assert dr007.status == "fail" and dr007.violations == 1
    assert "9000" in dr007.evidence[0].five_tuple
