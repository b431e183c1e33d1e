"""Render a capture set's manifest.toml (the format documented in dr_inspect.captureset). Pure."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        # a JSON string is a TOML basic string, once DEL (a control character in TOML) is escaped
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. real_servers = [{name = "rs1", rip = "..."}]
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to manifest.toml")


def _key(k: str) -> str:
    bare = k.replace("_", "").replace("-", "")
    return k if bare.isascii() and bare.isalnum() else _value(k)   # bare keys are ASCII only


toml_value = _value      # for tests writing TOML documents


def _table(items: dict[str, Any]) -> list[str]:
    return [f"{_key(k)} = {_value(v)}" for k, v in items.items() if v is not None]


def render_manifest(capture: dict[str, Any], points: list[dict[str, Any]],
                    snapshots: dict[str, str] | None = None) -> str:
    """manifest.toml text: [capture], one [[points]] per point, [snapshots]. None values omitted."""
    lines = ["# written by dr-inspect capture", "[capture]", *_table(capture)]
    for point in points:
        lines += ["", "[[points]]", *_table(point)]
    if snapshots:
        lines += ["", "[snapshots]", *_table(snapshots)]
    return "\n".join(lines) + "\n"
