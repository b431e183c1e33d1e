"""The bundled capture sets in captures/ (made by scripts/make_captures.py from the lab)."""

from __future__ import annotations

import tomllib

import pytest

from conftest import ROOT

from dr_inspect.captureset import load_capture_set
from dr_inspect.lab.faults import FAULTS

CAPTURES = ROOT / "captures"
SETS = sorted(p.name for p in CAPTURES.iterdir() if p.is_dir()) if CAPTURES.is_dir() else []


def test_every_fault_and_both_seed_backends_are_bundled():
    assert set(SETS) == {"seed-ipvs", "seed-nft"} | {f"fault-{name}" for name in FAULTS}


@pytest.mark.parametrize("name", SETS)
def test_bundled_set_is_complete_and_small(name):
    root = CAPTURES / name
    cs = load_capture_set([root])
    assert {p.name: (p.role, p.interface) for p in cs.points} == {
        "br_e": ("vip-segment", "br_e"), "br_lvs": ("rs-segment", "br_lvs")}
    assert cs.capture["director"] in ("ipvs", "nft")
    assert cs.capture["vip"] == "192.168.7.33" and cs.capture["port"] == 8000
    expected = tomllib.loads((root / "expected.toml").read_text())
    assert expected["description"]
    if name.startswith("seed-"):
        assert cs.capture["faults"] == [] and expected["fail"] == []
        assert cs.capture["director"] == name.removeprefix("seed-")
    else:
        fault = name.removeprefix("fault-")
        assert cs.capture["faults"] == [fault]
        assert set(FAULTS[fault].rules) <= set(expected["fail"])
    assert set(cs.snapshots) == {"client", "director", "rs1", "rs2"}
    assert all(path.is_file() for path in cs.snapshots.values())
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) < 64 * 1024


@pytest.mark.parametrize("name", SETS)
def test_verify_fails_exactly_the_expected_rules(name):
    from dr_inspect.analysis.paths import verify_paths
    report = verify_paths([CAPTURES / name])
    failed = sorted(r.id for r in report.rules if r.status == "fail" and r.severity == "error")
    expected = sorted(tomllib.loads((CAPTURES / name / "expected.toml").read_text())["fail"])
    assert failed == expected
