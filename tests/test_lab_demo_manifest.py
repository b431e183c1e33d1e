"""lab demo adds the lab's facts to the manifest the capture wrote without following or
overwriting anything planted in the capture folder since (issue 18: files are created with
O_NOFOLLOW|O_EXCL, as capture creates them)."""

from __future__ import annotations

import os
import tomllib

import pytest

from dr_inspect.errors import LabError
from dr_inspect.lab.demo import _annotate_manifest
from dr_inspect.lab.plan import LabConfig
from dr_inspect.lab.state import LabState

WRITTEN = '[capture]\ntool = "dr-inspect"\n\n[[points]]\nname = "br_e"\nfile = "br_e.pcap"\n'
STATE = LabState(prefix="t", config=LabConfig(prefix="t", vip="192.168.7.33", port=8000),
                 switch_netns="t-sw", hosts={})


def test_the_manifest_gets_the_lab_facts(tmp_path):
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(WRITTEN)
    _annotate_manifest(manifest, STATE, "a demo")
    data = tomllib.loads(manifest.read_text())
    assert data["capture"]["vip"] == "192.168.7.33" and data["capture"]["port"] == 8000
    assert data["capture"]["description"] == "a demo" and data["points"][0]["name"] == "br_e"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.toml"]


def test_a_symlink_planted_as_the_manifest_is_refused(tmp_path):
    target = tmp_path / "elsewhere" / "victim.conf"
    target.parent.mkdir()
    target.write_text(WRITTEN)
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.toml").symlink_to(target)
    with pytest.raises(LabError, match="manifest.toml: cannot add the lab's facts: .* never "
                                       "followed or overwritten"):
        _annotate_manifest(folder / "manifest.toml", STATE, "a demo")
    assert target.read_text() == WRITTEN and (folder / "manifest.toml").is_symlink()


def test_a_symlink_planted_at_the_new_file_is_refused(tmp_path):
    target = tmp_path / "victim.conf"
    target.write_text("keep me\n")
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.toml").write_text(WRITTEN)
    (folder / ".manifest.toml.new").symlink_to(target)
    with pytest.raises(LabError, match="File exists"):
        _annotate_manifest(folder / "manifest.toml", STATE, "a demo")
    assert target.read_text() == "keep me\n"
    assert (folder / "manifest.toml").read_text() == WRITTEN


def test_a_hard_link_planted_as_the_manifest_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.conf"
    victim.write_text(WRITTEN)
    folder = tmp_path / "set"
    folder.mkdir()
    os.link(victim, folder / "manifest.toml")
    _annotate_manifest(folder / "manifest.toml", STATE, "a demo")
    assert victim.read_text() == WRITTEN
    assert "192.168.7.33" in (folder / "manifest.toml").read_text()
