"""Capture sets: manifest.toml, expected.toml, loose files and rotated files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dr_inspect.captureset import load_capture_set
from dr_inspect.errors import InputError


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.write_bytes(b"\xd4\xc3\xb2\xa1")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_manifest_points_roles_and_rotated_files(tmp_path: Path) -> None:
    for name in ("br_e.pcap0", "br_e.pcap1", "br_lvs.pcap"):
        _touch(tmp_path / name)
    (tmp_path / "manifest.toml").write_text(
        '[capture]\ndirector = "ipvs"\nscheduler = "rr"\n'
        '[[points]]\nname = "br_e"\nfile = "br_e.pcap0"\nfiles = ["br_e.pcap0", "br_e.pcap1"]\n'
        'role = "vip-segment"\ndropped = 3\n'
        '[[points]]\nname = "br_lvs"\nfile = "br_lvs.pcap"\nrole = "rs-segment"\n'
        '[snapshots]\nrs1 = "snapshots/rs1.json"\n')
    (tmp_path / "expected.toml").write_text('fail = ["DR005"]\ndescription = "x"\n')
    cs = load_capture_set([tmp_path])
    assert [(p.name, p.role) for p in cs.points] == [("br_e", "vip-segment"), ("br_lvs", "rs-segment")]
    assert [f.name for f in cs.points[0].files] == ["br_e.pcap0", "br_e.pcap1"]
    assert [f.name for f in cs.points[1].files] == ["br_lvs.pcap"]
    assert cs.points[0].dropped == 3
    assert cs.capture["scheduler"] == "rr"
    assert cs.snapshots == {"rs1": tmp_path / "snapshots" / "rs1.json"}
    assert cs.expected_fail == ["DR005"]


@pytest.mark.parametrize("manifest, message", [
    ('[capture]\ncolour = "red"\n', "unknown key(s) colour"),
    ('[[points]]\nname = "a"\nfile = "a.pcap"\nrole = "middle"\n', "role 'middle'"),
    ('[[points]]\nname = "a"\nfile = "missing.pcap"\n', "does not exist"),
    ('[[points]]\nname = "a"\n', "'name' and 'file' are required"),
    ('[[points]]\nname = "a"\nfile = "a.pcap"\n[[points]]\nname = "a"\nfile = "a.pcap"\n', "not unique"),
    ('[[points]\n', "invalid TOML"),
    ('[[points]]\nname = "a"\nfile = "a.pcap"\ndropped = "many"\n', "dropped must be an integer"),
    ('[[points]]\nname = [1]\nfile = "a.pcap"\n', "name must be a string"),
    ('[[points]]\nname = "a"\nfile = "a.pcap"\nsnaplen = true\n', "snaplen must be an integer"),
    ('points = 5\n', "points must be"),
    ('snapshots = []\n', "[snapshots] must be a table"),
    ('[snapshots]\nrs1 = 3\n', "rs1 must be a string"),
    ('[capture]\nport = "8000"\n', "port must be an integer"),
])
def test_bad_manifest_is_one_clear_error(tmp_path: Path, manifest: str, message: str) -> None:
    _touch(tmp_path / "a.pcap")
    (tmp_path / "manifest.toml").write_text(manifest)
    with pytest.raises(InputError, match=re.escape(message)) as exc:
        load_capture_set([tmp_path])
    assert "manifest.toml" in str(exc.value)


def test_directory_without_manifest_groups_rotated_files_oldest_first(tmp_path: Path) -> None:
    # A -W ring that wrapped: pcap2 was written before pcap0 and pcap1.
    _touch(tmp_path / "br_e.pcap2", mtime=1000)
    _touch(tmp_path / "br_e.pcap0", mtime=2000)
    _touch(tmp_path / "br_e.pcap1", mtime=3000)
    _touch(tmp_path / "br_lvs.pcapng", mtime=1000)
    (tmp_path / "notes.txt").write_text("not a capture")
    cs = load_capture_set([tmp_path])
    assert [p.name for p in cs.points] == ["br_e", "br_lvs"]
    assert [f.name for f in cs.points[0].files] == ["br_e.pcap2", "br_e.pcap0", "br_e.pcap1"]


def test_loose_files_with_the_same_name_stay_distinct_points(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cs = load_capture_set([_touch(tmp_path / "a" / "br_e.pcap"), _touch(tmp_path / "b" / "br_e.pcap")])
    assert [p.name for p in cs.points] == ["br_e", "br_e#2"]


@pytest.mark.parametrize("setup, message", [
    ("empty-dir", "no capture files"),
    ("missing", "no such file or directory"),
    ("dir-and-file", "not both"),
])
def test_bad_paths(tmp_path: Path, setup: str, message: str) -> None:
    if setup == "empty-dir":
        paths = [tmp_path]
    elif setup == "missing":
        paths = [tmp_path / "nope.pcap"]
    else:
        paths = [tmp_path, _touch(tmp_path / "x.pcap")]
    with pytest.raises(InputError, match=message):
        load_capture_set(paths)
