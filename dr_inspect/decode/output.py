"""Render decoded captures for `dr-inspect decode`: table, CSV, JSON, Parquet; stats lines."""

from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from dr_inspect.decode import schema
from dr_inspect.decode.api import decode_file
from dr_inspect.decode.stats import DecodedCapture, DecodeStats
from dr_inspect.decode.table import concat_packets
from dr_inspect.errors import CaptureError, InputError

FORMATS = ("table", "csv", "json", "parquet")
TERMINAL_ROWS = 100


@dataclass
class DecodeRun:
    """What `dr-inspect decode` produced: the table of all files, per-file stats, errors."""

    packets: pd.DataFrame
    stats: list[DecodeStats]
    errors: list[CaptureError]      # unreadable files and files broken mid-way


def decode_paths(paths: list[str | os.PathLike[str]]) -> DecodeRun:
    captures: list[DecodedCapture] = []
    errors: list[CaptureError] = []
    for path in paths:
        try:
            cap = decode_file(path)
        except CaptureError as exc:
            errors.append(exc)
            continue
        captures.append(cap)
        if cap.stats.error is not None:
            errors.append(cap.stats.error)
    packets = concat_packets([c.packets for c in captures])
    return DecodeRun(packets, [c.stats for c in captures], errors)


def stats_line(stats: DecodeStats) -> str:
    parts = [f"{stats.file}: {stats.format}{' (gzip)' if stats.gzip else ''}",
             f"{stats.frames_read} frames read", f"{stats.frames_decoded} decoded"]
    if stats.undecodable:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in
                            sorted(stats.undecodable.items(), key=lambda kv: -kv[1]))
        parts.append(f"undecodable: {reasons}")
    return ", ".join(parts)


def _select(packets: pd.DataFrame, all_columns: bool, limit: int | None) -> pd.DataFrame:
    cols = schema.COLUMNS + (schema.EXTRA_COLUMNS if all_columns else [])
    out = packets[cols]
    if limit is not None and limit > 0:
        out = out.head(limit)
    return out


def render_text(packets: pd.DataFrame, fmt: str, *, all_columns: bool = False,
                limit: int | None = None) -> str:
    """The table as text (table, csv or json). Missing fields are empty cells (null in JSON)."""
    out = _select(packets, all_columns, limit)
    if fmt == "csv":
        return out.to_csv(index=False, na_rep="")
    if fmt == "json":
        return out.to_json(orient="records", lines=False) + "\n"
    if fmt == "table":
        cells = out.astype(object).where(out.notna(), "")
        text = tabulate(cells.itertuples(index=False, name=None), headers=list(out.columns),
                        tablefmt="simple", disable_numparse=True)
        more = len(packets) - len(out)
        if more > 0:
            text += f"\n... {more} more rows (--limit 0 shows all; --format csv for everything)"
        return text + "\n"
    raise InputError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")


def write_parquet(packets: pd.DataFrame, path: str, *, all_columns: bool = False,
                  limit: int | None = None) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise InputError("parquet output needs pyarrow: pip install pyarrow "
                         "(or dr-inspect[parquet])")
    out = _select(packets, all_columns, limit)
    buf = io.BytesIO()
    out.to_parquet(buf, index=False)
    write_bytes(path, buf.getvalue())


def write_bytes(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
