"""Decode every point of a capture set (I/O): one packets table and one PointSummary per point.

A point's rotated files are decoded as one table (frame numbers continue across them); a file
that cannot be read is reported and skipped; points with the same content are decoded once; a
pcapng holding several interfaces becomes one point per interface.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from dr_inspect.captureset import CaptureSet, check_point_count
from dr_inspect.decode.schema import ANALYSED_COLUMNS, DTYPES
from dr_inspect.decode.stats import DecodeStats
from dr_inspect.decode.table import concat_packets
from dr_inspect.errors import CaptureError
from dr_inspect.heap import return_freed_heap
from dr_inspect.model import PointSummary

Progress = Callable[[str], None]

# Processes decoding at once: this one and DECODE_THREADS - 1 forked helper (decoding holds the
# GIL most of the time, so threads would not run it in parallel); 1 decodes everything here.
DECODE_THREADS = 2
# Decoded columns no verify stage reads: each point's table drops them at once (`dr-inspect
# decode --all-columns` shows them).
UNREAD_COLUMNS = [c for c in DTYPES if c not in ANALYSED_COLUMNS]


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _point_file_label(files: list[Path]) -> str:
    """What the point's summary names as its file; several rotated files are one point whose
    frame numbers run on across the files in order (as `mergecap -a` numbers them)."""
    if len(files) == 1:
        return str(files[0])
    return (" + ".join(str(f) for f in files)
            + f" (one point; frame numbers continue across these {len(files)} files in this order,"
              " as in `mergecap -a -w merged.pcap` of them)")


def _decode_point(files: list[Path], decoded: list[Any]
                  ) -> tuple[pd.DataFrame, DecodeStats, tuple[str, str] | None]:
    """Join the decoded files of one point into one table: frame numbers continue across them.

    decoded: decode_file's result (or the CaptureError it raised) for each file, in order.
    Returns (packets, stats of the first file with the counts of all, None or (error for the
    report, error for the point's summary)); a file that cannot be read at all is skipped with
    its error (the others are still verified)."""
    parts: list[pd.DataFrame] = []
    total: DecodeStats | None = None
    errors: list[str] = []            # for the report's error list
    raw: list[str] = []               # for the point's summary
    first_failure: CaptureError | None = None
    offset = 0
    for result in decoded:
        if isinstance(result, CaptureError):
            errors.append(str(result))
            raw.append(str(result))
            first_failure = first_failure or result
            continue
        st = result.stats
        df = result.packets.drop(columns=UNREAD_COLUMNS)
        if offset and len(df):
            df["frame"] = df["frame"].to_numpy() + offset
        offset += st.frames_read
        parts.append(df)
        if st.error is not None:
            raw.append(str(st.error))
            errors.append(f"{st.error} (the {st.frames_read} frames before it are verified)")
        if total is None:
            total = st
        else:
            total.frames_read += st.frames_read
            total.frames_decoded += st.frames_decoded
            total.add_undecodable(st.undecodable)
            total.snaplen = max(total.snaplen, st.snaplen)
    if total is None:
        assert first_failure is not None
        if len(files) == 1:
            raise first_failure
        raise CaptureError(str(files[0]), None, "no file of the point could be read: "
                           + "; ".join(errors))
    packets = parts[0] if len(parts) == 1 else concat_packets(parts)
    return packets, total, ("; ".join(errors), "; ".join(raw)) if errors else None


def _decode_plan(cs: CaptureSet) -> list[tuple[Any, str | None]]:
    """The points to decode, in order: (point, None), or (None, error) for a point with the same
    content as an earlier one."""
    seen: dict[tuple[int, str], str] = {}
    sizes = [sum(f.stat().st_size for f in p.files) for p in cs.points]
    plan: list[tuple[Any, str | None]] = []
    for point, size in zip(cs.points, sizes):
        # only points of equal size can be duplicates: hash those alone
        key = (size, _digest(point.files) if sizes.count(size) > 1 else point.name)
        if key in seen:
            plan.append((None, f"{point.file}: same content as point {seen[key]}; "
                               "ignored as a duplicate"))
            continue
        seen[key] = point.name
        plan.append((point, None))
    return plan


def decode_set(cs: CaptureSet, progress: Progress | None = None
               ) -> tuple[dict[str, pd.DataFrame], list[PointSummary], list[str]]:
    """(point -> packets, the points' summaries, errors for the report) of a capture set."""
    from dr_inspect.decode.parallel import decode_files

    packets: dict[str, pd.DataFrame] = {}
    summaries: list[PointSummary] = []
    errors: list[str] = []
    plan = _decode_plan(cs)
    jobs = [(f, point.name) for point, _ in plan if point is not None for f in point.files]
    # the results come in job order, each decoded when taken here (the helper process decodes
    # its share meanwhile); this thread alone reports progress
    results = decode_files(jobs, workers=min(DECODE_THREADS, os.cpu_count() or 1))
    try:
        for point, duplicate in plan:
            if point is None:
                errors.append(duplicate)
                continue
            summary = PointSummary(name=point.name, file=_point_file_label(point.files),
                                   role=point.role, interface=point.interface,
                                   kernel_drops=point.dropped, snaplen=point.snaplen)
            if progress is not None:
                progress(f"decoding {point.name}")
            decoded = []
            for _ in point.files:
                decoded.append(next(results))
                # what this decode freed goes back to the system now, before the next file
                return_freed_heap()
            try:
                df, st, error = _decode_point(point.files, decoded)
            except CaptureError as exc:
                summary.error = str(exc)
                errors.append(str(exc))
                summaries.append(summary)
                packets[point.name] = pd.DataFrame()
                continue
            if error is not None:
                errors.append(error[0])
                summary.error = error[1]
            _add_point(packets, summaries, point, summary, df, st)
    finally:
        # an error above (or ^C) stops the helper process
        results.close()
    return_freed_heap()
    return packets, summaries, errors


def _add_point(packets: dict[str, pd.DataFrame], summaries: list[PointSummary], point: Any,
               summary: PointSummary, df: pd.DataFrame, st: DecodeStats) -> None:
    """One decoded point into packets and summaries; a pcapng with several interfaces is several
    points."""
    ifaces = {i.id: i.name for i in st.interfaces}
    used = _interfaces_used(df)
    check_point_count(len(used) + len(summaries), str(point.file))   # each one a point
    if len(used) > 1:
        for iid in used:
            name = f"{point.file.name}:{ifaces.get(iid) or iid}"
            part = df[df["interface"] == iid].reset_index(drop=True)
            packets[name] = part
            summaries.append(summary_of(part, PointSummary(
                name=name, file=summary.file, role="unknown",
                interface=ifaces.get(iid, ""), kernel_drops=None,
                snaplen=st.snaplen or None), st.undecodable, summary.error))
        return
    summary.snaplen = summary.snaplen or (st.snaplen or None)
    summary.frames = st.frames_read
    summary.decoded = st.frames_decoded
    summary.undecodable = dict(st.undecodable)
    packets[point.name] = df
    summaries.append(summary_of(df, summary, None, summary.error))


def _interfaces_used(df: pd.DataFrame) -> list[int]:
    """The distinct interface ids of a point's packets, ascending (one, nearly always: checked
    with min/max before any sort)."""
    if not len(df) or "interface" not in df:
        return []
    ids = df["interface"].to_numpy()
    if ids.min() == ids.max():
        return [int(ids[0])]
    return [int(i) for i in np.unique(ids)]


def summary_of(df: pd.DataFrame, s: PointSummary, undecodable: dict[str, int] | None,
               error: str | None) -> PointSummary:
    """s completed from the point's packets: frame counts when not known, first and last time."""
    if not s.frames:
        s.frames = len(df)
        s.decoded = len(df) - (sum(undecodable.values()) if undecodable else 0)
        s.decoded = max(s.decoded, 0)
    if undecodable is not None and not s.undecodable:
        s.undecodable = {}
    if len(df):
        s.first_ts_ns = int(df["ts_ns"].min())
        s.last_ts_ns = int(df["ts_ns"].max())
    s.error = error
    return s
