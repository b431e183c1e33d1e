"""The real servers' names and RIPs as the hosts' snapshots describe them (doctor/farm.py): the
director's IPVS table lists the RIPs, the host holding a RIP names it. capture writes them into
the manifest, and verify names the learned servers by them."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from conftest import ROOT

from dr_inspect.doctor.farm import real_servers
from dr_inspect.doctor.snapshot import read_snapshot
from dr_inspect.live.capture import CaptureSummary, manifest_text
from dr_inspect.analysis.paths import verify_paths

SEED = ROOT / "captures" / "seed-ipvs"


def _snapshots() -> dict[str, dict]:
    return {p.stem: read_snapshot(p) for p in sorted((SEED / "snapshots").glob("*.json"))}


def test_real_servers_from_the_director_table_and_their_hosts():
    assert real_servers(_snapshots()) == [{"name": "rs1", "rip": "192.168.88.20"},
                                          {"name": "rs2", "rip": "192.168.88.21"}]


def test_no_director_table_names_nothing():
    snaps = {k: v for k, v in _snapshots().items() if k != "director"}
    assert real_servers(snaps) == []


def test_capture_writes_real_servers_into_the_manifest(tmp_path):
    shutil.copytree(SEED / "snapshots", tmp_path / "snapshots")
    summary = CaptureSummary(out_dir=tmp_path, manifest=tmp_path / "manifest.toml", started="a",
                             stopped="b", points=[],
                             snapshots={p.stem: p for p in (tmp_path / "snapshots").glob("*.json")})
    capture = tomllib.loads(manifest_text(summary, host="h", snaplen=1, description=None))["capture"]
    assert capture["real_servers"] == [{"name": "rs1", "rip": "192.168.88.20"},
                                       {"name": "rs2", "rip": "192.168.88.21"}]


def test_verify_names_servers_by_their_hosts_without_a_manifest_list(tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(SEED, folder)
    manifest = folder / "manifest.toml"
    text = "\n".join(line for line in manifest.read_text().splitlines()
                     if not line.startswith("real_servers"))
    manifest.write_text(text)
    # the hosts renamed: their snapshots say web-a and web-b
    for old, new in (("rs1", "web-a"), ("rs2", "web-b")):
        path = folder / "snapshots" / f"{old}.json"
        path.write_text(path.read_text().replace(f'"host": "{old}"', f'"host": "{new}"'))
    names = {rs.rip: rs.name for rs in verify_paths([folder]).topology.real_servers}
    assert names == {"192.168.88.20": "web-a", "192.168.88.21": "web-b"}
