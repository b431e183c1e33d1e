"""What a capture set's manifest says about the analysis (beside captureset.py, which reads it):
the capture span, the scheduler, the VIP it was taken for, which points share a clock."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dr_inspect.captureset import CaptureSet
from dr_inspect.errors import InputError, TopologyError
from dr_inspect.topology.pins import parse_vip


def _utc_ns(value: Any, where: str) -> int:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{where}: {value!r} is not an ISO 8601 time "
                         "(e.g. 2026-11-30T06:56:53.852453Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    # whole microseconds from the datetime, exactly (a float timestamp would round)
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def capture_span_of(cs: CaptureSet) -> tuple[int, int] | None:
    """(started, stopped) in ns since the epoch from the manifest's [capture], when it has both:
    the span in which every point was capturing."""
    started, stopped = cs.capture.get("started"), cs.capture.get("stopped")
    if not started or not stopped:
        return None
    where = f"{cs.root / 'manifest.toml' if cs.root else 'manifest.toml'} [capture]"
    lo, hi = _utc_ns(started, where + " started"), _utc_ns(stopped, where + " stopped")
    if hi < lo:
        raise InputError(f"{where}: stopped ({stopped}) is before started ({started})")
    return lo, hi


def scheduler_of(cs: CaptureSet) -> str | None:
    """The scheduler the capture set was taken with, when its manifest says: the lab's nft
    director picks real servers by a flow hash, which round robin checks do not fit."""
    named = cs.capture.get("scheduler")
    if named:
        return str(named)
    return {"nft": "flow-hash"}.get(str(cs.capture.get("director", "")))


def manifest_vip(cs: CaptureSet) -> str | None:
    """The VIP ("IP:PORT") the capture set was taken for, when its manifest names a valid one."""
    vip, port = cs.capture.get("vip"), cs.capture.get("port")
    if not vip:
        return None
    try:
        ip, p = parse_vip(str(vip), "manifest.toml [capture] vip")
    except TopologyError:
        return None
    p = p or (int(port) if isinstance(port, int) else None)
    if p is None:
        return ip
    return f"[{ip}]:{p}" if ":" in ip else f"{ip}:{p}"


def clock_hosts(cs: CaptureSet) -> dict[str, str]:
    """point -> the host whose clock stamped it; points captured on one host share its clock
    (netns-only points: the capturing machine)."""
    return {p.name: p.host or "this-machine" for p in cs.points if p.host or p.netns}


def measured_clocks(cs: CaptureSet) -> dict[str, tuple[int, int]]:
    """point -> (clock offset, bound) in ns that a remote capture measured over ssh (the point's
    host clock minus the collector's); only points that have one."""
    return {p.name: (p.clock_offset_ns, p.clock_bound_ns or 0) for p in cs.points
            if p.clock_offset_ns is not None}


def clock_disagreements(measured: dict[str, tuple[int, int]], estimated: dict[str, int],
                        reference: str, tolerance_ns: int) -> list[str]:
    """Notes for points whose measured clock offset and the one the traffic shows (`estimated`,
    against `reference`, the set's first point) differ by more than the measurement's bound
    plus `tolerance_ns` (the forwarding delay the traffic estimate cannot tell from an offset).
    Pure."""
    if reference not in measured:
        return []
    ref_offset, ref_bound = measured[reference]
    notes = []
    for point, (offset, bound) in measured.items():
        if point == reference or point not in estimated:
            continue
        relative, limit = offset - ref_offset, bound + ref_bound
        gap = estimated[point] - relative
        if abs(gap) > limit + tolerance_ns:
            notes.append(f"clock of {point}: measured over ssh {relative / 1e6:+.3f} ms "
                         f"(within {limit / 1e6:.3f} ms) against {reference}, the traffic shows "
                         f"{estimated[point] / 1e6:+.3f} ms: they disagree by {abs(gap) / 1e6:.3f} ms "
                         "(a clock stepped during the capture, or the traffic's estimate rests on "
                         "few packets); timestamps are corrected by the traffic's estimate")
    return notes
