"""The layout stays one a newcomer can change safely: small modules with one responsibility in the
analysis core, short functions everywhere (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "dr_inspect"
CORE = ["decode", "columnar", "topology", "correlate", "analysis", "rules", "report"]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Modules of the core allowed to be larger, each with the reason it must stay so for now.
LARGER_MODULES: dict[str, str] = {}


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function (methods and nested ones included) over the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                found.append((node.name, n))
    return found


def test_the_function_check_counts_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def short():\n    pass\n\ndef long():\n{body}\n") == [
        ("long", MAX_FUNCTION_LINES + 1)]


def test_core_modules_are_small():
    big = []
    for package in CORE:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            name = str(path.relative_to(PACKAGE))
            if _lines(path) > MAX_MODULE_LINES and name not in LARGER_MODULES:
                big.append(f"{name} ({_lines(path)} lines)")
    assert big == [], f"core modules over {MAX_MODULE_LINES} lines (split them): {big}"


def test_the_allowed_large_modules_are_still_large():
    """An exception that is no longer needed goes (so it cannot cover a new module later)."""
    stale = [name for name in LARGER_MODULES if _lines(PACKAGE / name) <= MAX_MODULE_LINES]
    assert stale == [], f"no longer over {MAX_MODULE_LINES} lines: remove from LARGER_MODULES"


def test_functions_are_short():
    found = [f"{path.relative_to(PACKAGE)}:{name} ({n} lines)"
             for path in sorted(PACKAGE.rglob("*.py"))
             for name, n in long_functions(path.read_text())]
    assert found == [], f"functions over {MAX_FUNCTION_LINES} lines (split them): {found}"
