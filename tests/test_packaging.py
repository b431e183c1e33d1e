"""The package installs as a wheel with its rule catalogue, and the CLI entry points start."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import ROOT


def _listed_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_listed_in_pyproject() -> None:
    found = {
        ".".join(p.relative_to(ROOT).parent.parts)
        for p in (ROOT / "dr_inspect").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found, "no packages found"
    missing = found - _listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert "dr_inspect.catalogue" in _listed_packages()


def test_wheel_ships_the_rule_catalogue(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    wheels = list(tmp_path.glob("dr_inspect-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    catalogue = [n for n in names if n.startswith("dr_inspect/catalogue/") and n.endswith(".toml")]
    source_rules = sorted(p.name for p in (ROOT / "rules").glob("*.toml"))
    assert sorted(Path(n).name for n in catalogue) == source_rules
    assert source_rules, "the rules/ catalogue is empty"
    # Installed from the wheel (not the source tree) and run from another folder, the catalogue
    # is found as package data.
    target = tmp_path / "site"
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(target)
    probe = ("import importlib.resources as r, dr_inspect; "
             "print(dr_inspect.__file__); "
             "print(sorted(p.name for p in r.files('dr_inspect.catalogue').iterdir() if p.name.endswith('.toml')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(target)}).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert out[1] == repr(source_rules)


def test_cli_starts_as_module_and_reports_version() -> None:
    out = subprocess.run([sys.executable, "-m", "dr_inspect", "--version"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    assert "dr-inspect" in out and "0.1.0" in out
    help_text = subprocess.run([sys.executable, "-m", "dr_inspect", "--help"], cwd=ROOT,
                               check=True, capture_output=True, text=True).stdout
    for command in ("decode", "verify", "lab", "capture", "watch", "doctor", "ladder", "report"):
        assert command in help_text, f"command {command} missing from --help"
