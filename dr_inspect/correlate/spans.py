"""When each point captured and where a counterpart could be seen: the points' spans in
clock-adjusted time, the clock shift prepare applied per point, and which frames lie where a
counterpart at another point (a forwarded copy, a SYN-ACK) could have been captured."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.plain import same_data
from dr_inspect.columnar.text import codes_and_values
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.topology.model import LearnedTopology

END_MARGIN_NS = 10_000_000


def point_spans(pk: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """(first, last) clock-adjusted time per point that has frames."""
    if len(pk) == 0:
        return {}
    points = pk["point"]
    if isinstance(points.dtype, pd.CategoricalDtype):
        # the categorical's own codes (a view); a missing point (-1) has no span
        codes, names = points.array.codes, np.asarray(points.cat.categories, dtype=object)
    else:
        codes, names = codes_and_values(points)
    ts = pk["ts"].to_numpy(dtype=np.int64)
    out = {}
    # a handful of points: one masked min/max each (no scatter over every frame, no sort)
    for c in np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(names))):
        name = names[c]
        if not name:
            continue
        mine = ts[codes == c]
        out[str(name)] = (int(mine.min()), int(mine.max()))
    return out


def _point_shifts(pk: pd.DataFrame) -> dict[str, int]:
    """The clock correction prepare applied per point (ts_ns - ts), read from its first frame."""
    if len(pk) == 0:
        return {}
    codes, names = codes_and_values(pk["point"])
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    first = np.array([np.argmax(codes == c) for c in present], dtype=np.int64)
    shift = pk["ts_ns"].to_numpy(dtype=np.int64)[first] - pk["ts"].to_numpy(dtype=np.int64)[first]
    return {str(names[c]): int(s) for c, s in zip(present, shift) if names[c]}


def adjusted_ts(pk: pd.DataFrame, points: pd.Series | pd.Categorical, ts_ns: np.ndarray
                 ) -> np.ndarray:
    """The clock-adjusted ts of rows with these points and raw ts_ns."""
    if same_data(pk["ts"].to_numpy(), pk["ts_ns"].to_numpy()):
        # prepare shares one array while no clock is corrected: nothing to read per point
        return np.asarray(ts_ns, dtype=np.int64).copy()
    shifts = _point_shifts(pk)
    if not any(shifts.values()):
        return np.asarray(ts_ns, dtype=np.int64).copy()  # no clock correction applied
    codes, names = codes_and_values(points)
    if not all(str(n) in shifts for n in names[np.unique(codes)]):
        raise KeyError("to_vip rows of a point missing from the packets table")
    return shifted_ts(ts_ns, points, shifts)


def shifted_ts(ts_ns: np.ndarray, points: pd.Series | pd.Categorical,
               offsets: dict[str, int] | None) -> np.ndarray:
    """Raw times of rows at these points on the common clock: ts_ns less the correction
    applied to each row's point (offsets: point -> ns, as prepare applied them)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if not offsets or not any(offsets.values()) or len(ts) == 0:
        return ts
    codes, names = codes_and_values(points)
    per = np.array([offsets.get(str(n), 0) for n in names] + [0], dtype=np.int64)
    return ts - per[codes]     # a row without a point (code -1) takes the appended 0


def in_capture_span(ts: np.ndarray, capture_span: tuple[int, int] | None,
                    window_ns: int) -> np.ndarray:
    """Whether each (clock-adjusted) time lies where a counterpart at another point could be
    captured: inside the span in which every point was capturing (the manifest's started /
    stopped), at least a window before its end. The counterparts judged here (forwarded copy,
    SYN-ACK) follow the packet by at most the window, so at the start only clock differences
    within the tolerance need a margin (a window there would drop the first half second of
    every lab capture, whose traffic starts as soon as all points listen)."""
    if capture_span is None:
        return np.ones(len(ts), dtype=bool)
    lo, hi = capture_span
    return (ts >= lo + CLOCK_TOLERANCE_NS) & (ts <= hi - window_ns)


def copy_observable(ts_adj: np.ndarray, spans: dict[str, tuple[int, int]], topo: LearnedTopology,
                rs_points: list[str]) -> np.ndarray:
    """Frames at the director's ingress whose copy a real-server-side point could see.

    A copy can be seen while a real-server-side point captures. Points captured together (their
    spans overlap) are taken to run over the set's whole span, less a margin at the end where
    one tcpdump may stop before another."""
    observable = np.zeros(len(ts_adj), dtype=bool)
    if not spans:
        return observable
    set_lo = min(lo for lo, _ in spans.values())
    set_hi = max(hi for _, hi in spans.values())
    for p in rs_points:
        if p not in spans:
            # an empty real-server-side point captured with the others: nothing crossed it
            observable |= (ts_adj >= set_lo) & (ts_adj <= set_hi - END_MARGIN_NS)
            continue
        lo, hi = spans[p]
        together = any(olo <= hi and lo <= ohi for q, (olo, ohi) in spans.items()
                       if q != p and topo.roles.get(q) in ("vip-segment", "both"))
        if together or topo.roles.get(p) == "both":
            lo, hi = min(lo, set_lo), max(hi, set_hi - END_MARGIN_NS)
        observable |= (ts_adj >= lo) & (ts_adj <= hi)
    return observable

