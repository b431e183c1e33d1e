"""The JSON and text reports of every bundled capture set are byte-identical to tests/golden/
(made by scripts/make_goldens.py). Restructuring must not change a report; a deliberate behaviour
change regenerates the goldens in a commit of its own."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import ROOT, require

_spec = importlib.util.spec_from_file_location("make_goldens", ROOT / "scripts" / "make_goldens.py")
make_goldens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_goldens)

SETS = make_goldens.capture_sets()


def test_every_bundled_set_has_goldens():
    require(bool(SETS), "no bundled capture sets under captures/")
    expected = {f"{name}.{suffix}" for name in SETS for suffix in make_goldens.FORMATS.values()}
    assert {p.name for p in make_goldens.GOLDEN.iterdir()} == expected


@pytest.mark.parametrize("name", SETS)
def test_reports_match_goldens(name):
    for filename, text in make_goldens.render_reports(name).items():
        golden = (make_goldens.GOLDEN / filename).read_text()
        assert text == golden, (f"{filename} differs from tests/golden/ "
                                "(regenerate with scripts/make_goldens.py only for a behaviour change)")
