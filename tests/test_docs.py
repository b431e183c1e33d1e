"""docs/ARCHITECTURE.md's column reference is generated from the declared columns and current."""

from __future__ import annotations

import importlib.util

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("make_column_docs",
                                               ROOT / "scripts" / "make_column_docs.py")
make_column_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_column_docs)


def test_column_reference_is_current():
    text = make_column_docs.DOC.read_text()
    assert make_column_docs.render(text) == text, \
        "docs/ARCHITECTURE.md is stale: run python scripts/make_column_docs.py"


def test_column_reference_names_every_declared_column():
    from dr_inspect.correlate.columns import TABLE_COLUMNS
    reference = make_column_docs.column_reference()
    for table, columns in TABLE_COLUMNS.items():
        assert f"    {table} ({len(columns)} columns):" in reference
        assert all(f"{name} {kind}" in reference for name, kind in columns.items())
