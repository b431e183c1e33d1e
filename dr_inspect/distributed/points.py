"""Capture points from the decoded files: names, summaries, errors and where each file's frames go.

The same decisions verify's local decode makes (duplicate points, several rotated files as one
point with frame numbers running on, a pcapng with several interfaces as several points), taken
from the per-file results (DecodedFile) instead of the decoded tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.captureset import CaptureSet
from dr_inspect.decode.stats import DecodeStats
from dr_inspect.distributed.adapter import decode_plan, point_file_label
from dr_inspect.distributed.shards import DecodedFile
from dr_inspect.errors import CaptureError
from dr_inspect.model import PointSummary


@dataclass
class FileRoute:
    """Where one decoded file's frames go: frame numbers shifted by `offset`, interface id ->
    point name."""

    offset: int
    points: dict[int, str]


@dataclass
class PointPlan:
    names: list[str] = field(default_factory=list)            # every point, in report order
    summaries: list[PointSummary] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    routes: dict[int, FileRoute] = field(default_factory=dict)  # file number -> route
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)   # raw first/last ts_ns
    truncated: dict[str, int] = field(default_factory=dict)
    frames: int = 0                                            # rows decoded in all


def decode_jobs(cs: CaptureSet) -> tuple[list[tuple[Any, str | None]], list[tuple[Path, str]]]:
    """(points in order, each with None or its duplicate error; (file, point name) to decode)."""
    plan = decode_plan(cs)
    jobs = [(f, point.name) for point, _ in plan if point is not None for f in point.files]
    return plan, jobs


def _add(total: DecodeStats | None, st: DecodeStats) -> DecodeStats:
    if total is None:
        return st
    total.frames_read += st.frames_read
    total.frames_decoded += st.frames_decoded
    total.add_undecodable(st.undecodable)
    total.snaplen = max(total.snaplen, st.snaplen)
    return total


@dataclass
class _Joined:
    """A point's files joined (as decode's _decode_point joins them)."""

    total: DecodeStats | None = None
    errors: list[str] = field(default_factory=list)     # for the report's error list
    raw: list[str] = field(default_factory=list)        # for the point's summary
    first_failure: CaptureError | None = None
    offsets: dict[int, int] = field(default_factory=dict)   # file number -> frames before it


def _join(files: list[int], decoded: list[DecodedFile]) -> _Joined:
    out = _Joined()
    offset = 0
    for n in files:
        d = decoded[n]
        if d.error is not None:
            out.errors.append(str(d.error))
            out.raw.append(str(d.error))
            out.first_failure = out.first_failure or d.error
            continue
        st = d.stats
        out.offsets[n] = offset
        offset += st.frames_read
        if st.error is not None:
            out.raw.append(str(st.error))
            out.errors.append(f"{st.error} (the {st.frames_read} frames before it are verified)")
        out.total = _add(out.total, st)
    return out


def plan_points(plan: list[tuple[Any, str | None]], decoded: list[DecodedFile]) -> PointPlan:
    """The points of the set from its decoded files (in decode_jobs' job order)."""
    out = PointPlan()
    file_no = 0
    for point, duplicate in plan:
        if point is None:
            out.errors.append(duplicate)
            continue
        joined = _join(list(range(file_no, file_no + len(point.files))), decoded)
        file_no += len(point.files)
        summary = PointSummary(name=point.name, file=point_file_label(point.files),
                               role=point.role, interface=point.interface,
                               kernel_drops=point.dropped, snaplen=point.snaplen)
        if joined.total is None:
            failure = joined.first_failure if len(point.files) == 1 else CaptureError(
                str(point.files[0]), None,
                "no file of the point could be read: " + "; ".join(joined.errors))
            summary.error = str(failure)
            out.errors.append(str(failure))
            out.summaries.append(summary)
            out.names.append(point.name)
            continue
        if joined.errors:
            out.errors.append("; ".join(joined.errors))
            summary.error = "; ".join(joined.raw)
        _add_point(out, point, summary, joined, decoded)
    return out


def _add_point(out: PointPlan, point: Any, summary: PointSummary, joined: _Joined,
               decoded: list[DecodedFile]) -> None:
    """One point's summary (several for a pcapng with several interfaces) and file routes."""
    total, offsets = joined.total, joined.offsets
    assert total is not None
    used = sorted({i for n in offsets for i in decoded[n].interfaces})
    ifaces = {i.id: i.name for i in total.interfaces}
    names = ({iid: f"{point.file.name}:{ifaces.get(iid) or iid}" for iid in used}
             if len(used) > 1 else {iid: point.name for iid in used})
    for n in offsets:
        out.routes[n] = FileRoute(offset=offsets[n], points=names)
    if len(used) > 1:
        for iid in used:
            s = PointSummary(name=names[iid], file=summary.file, role="unknown",
                             interface=ifaces.get(iid, ""), kernel_drops=None,
                             snaplen=total.snaplen or None)
            rows = _tally(out, names[iid], [decoded[n].interfaces.get(iid) for n in offsets])
            s.frames = rows
            s.decoded = max(rows - sum(total.undecodable.values()), 0)
            s.undecodable = {}
            _span_into(s, out.spans.get(names[iid]))
            s.error = summary.error
            out.names.append(s.name)
            out.summaries.append(s)
        return
    summary.snaplen = summary.snaplen or (total.snaplen or None)
    summary.frames = total.frames_read
    summary.decoded = total.frames_decoded
    summary.undecodable = dict(total.undecodable)
    rows = _tally(out, point.name, [i for n in offsets for i in decoded[n].interfaces.values()])
    if not summary.frames:
        summary.frames = rows
        summary.decoded = rows
    _span_into(summary, out.spans.get(point.name))
    out.names.append(point.name)
    out.summaries.append(summary)


def _tally(out: PointPlan, name: str, infos: list) -> int:
    """Adds the files' interface infos of one point to its span and truncated count: its rows."""
    infos = [i for i in infos if i is not None and i.rows]
    rows = sum(i.rows for i in infos)
    out.frames += rows
    if infos:
        out.spans[name] = (min(i.first_ts for i in infos), max(i.last_ts for i in infos))
        out.truncated[name] = sum(i.truncated for i in infos)
    return rows


def _span_into(s: PointSummary, span: tuple[int, int] | None) -> None:
    if span is not None:
        s.first_ts_ns, s.last_ts_ns = span
