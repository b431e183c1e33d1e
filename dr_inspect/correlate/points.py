"""The points table (one row per capture point, what DR013 capture-health reads) and the
capture-health summary its rule note shows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.model import PointSummary


def _truncated(pk: pd.DataFrame) -> dict[str, int]:
    """point -> frames cut by the snaplen."""
    if not len(pk):
        return {}
    cut = (pk["caplen"].to_numpy() < pk["wirelen"].to_numpy())
    if not cut.any():
        return {}
    return pk.loc[cut, "point"].astype(object).value_counts().to_dict()


def early_copies(fw: pd.DataFrame) -> dict[str, int]:
    """Per real-server-side point: forwarded copies seen more than the clock tolerance before
    their original after the clocks were corrected. No copy leaves the director before the
    packet arrives: the clocks (or their correction) are wrong there."""
    if not len(fw):
        return {}
    early = fw["has_copy"].to_numpy(dtype=bool) & (
        fw["delay_us"].to_numpy(dtype=np.float64) * 1000 < -CLOCK_TOLERANCE_NS)
    if not early.any():
        return {}
    return {str(k): int(v) for k, v in
            pd.Series(np.asarray(fw["copy_point"], dtype=object)[early]).value_counts().items()}


def _problems(s: PointSummary, quiet_ok: bool, span: tuple[int, int] | None,
              overlaps: bool, early: int) -> list[str]:
    problems = []
    if not s.decoded and not quiet_ok:
        problems.append("no frames decoded" if not s.frames else
                        f"none of {s.frames} frames could be decoded")
    if s.error:
        problems.append(f"read error: {s.error}")
    if s.kernel_drops:
        problems.append(f"{s.kernel_drops} frames dropped by the kernel during capture "
                        "(packets may look lost)")
    if span is not None and not overlaps:
        problems.append("its capture time does not overlap any other point's")
    if early:
        problems.append(f"{early} forwarded copies seen here before their original "
                        "arrived at the director (more than the clock tolerance, after the "
                        "clock correction): this point's clock disagrees with the others")
    return problems


def points_rows(summaries: list[PointSummary], roles: dict[str, str], pk: pd.DataFrame,
                est: dict[str, int], applied: dict[str, int],
                early: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per point for DR013 (est/applied: clock offsets estimated and corrected, ns;
    early: see early_copies)."""
    early = early or {}
    spans = {}
    for s in summaries:
        if s.first_ts_ns is not None:
            off = applied.get(s.name, 0)
            spans[s.name] = (s.first_ts_ns - off, s.last_ts_ns - off)
    trunc = _truncated(pk)
    rows = []
    for s in summaries:
        span = spans.get(s.name)
        others = [v for k, v in spans.items() if k != s.name]
        # an empty point has no time range: its emptiness is judged on its own
        overlaps = span is None or not others or any(lo <= span[1] and span[0] <= hi
                                                     for lo, hi in others)
        role = roles.get(s.name, s.role)
        # a point that captured nothing is reported, not failed: what should have crossed it is
        # judged by the traffic rules (DR007 and DR009 name the symptom and the empty point);
        # DR013 fails on what makes the capture itself untrustworthy: kernel drops, frames that
        # cannot be read, points that do not overlap in time
        quiet_ok = not s.error and not s.frames
        problems = _problems(s, quiet_ok, span, overlaps, early.get(s.name, 0))
        rows.append({"point": s.name, "role": role, "frame": -1,
                     "ts_ns": s.first_ts_ns if s.first_ts_ns is not None else -1,
                     "five_tuple": "", "seq": -1, "file": s.file, "frames": int(s.frames or 0),
                     "decoded": int(s.decoded or 0), "empty_expected": bool(quiet_ok),
                     "error": s.error or "",
                     "kernel_drops": int(s.kernel_drops) if s.kernel_drops is not None else -1,
                     "truncated": int(trunc.get(s.name, 0)), "overlaps": bool(overlaps),
                     "clock_offset_us": est.get(s.name, 0) / 1000.0,
                     "early_copies": int(early.get(s.name, 0)),
                     "problem": "; ".join(problems) or "ok"})
    return rows


def capture_health(rows: list[dict[str, Any]], applied: dict[str, int]) -> str:
    """What DR013's note says beside pass/fail: quiet points, truncation, clock offsets."""
    notes = []
    for r in rows:
        if r["empty_expected"] and not r["decoded"]:
            notes.append(f"{r['point']}: saw no traffic")
        if r["truncated"]:
            notes.append(f"{r['point']}: {r['truncated']} frames cut by snaplen (headers kept)")
        if abs(r["clock_offset_us"]) * 1000 > CLOCK_TOLERANCE_NS:
            how = "corrected" if applied.get(r["point"]) else "within tolerance, not corrected"
            notes.append(f"{r['point']}: clock offset {r['clock_offset_us']:.0f} us vs "
                         f"{rows[0]['point']} ({how})")
    return "; ".join(notes)


__all__ = ["capture_health", "early_copies", "points_rows", "points_table"]


def points_table(rows: list[dict]) -> pd.DataFrame:
    """The points table of points_rows' rows."""
    if not rows:
        return empty_table("points")
    return finish_table(pd.DataFrame(rows), "points")
