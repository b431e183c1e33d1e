"""Text of watch's rolling verdict lines (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

from dr_inspect.live.rolling import IntervalVerdict

_MAX_NEW_SHOWN = 5


def render_interval(v: IntervalVerdict) -> str:
    clock = datetime.fromtimestamp(v.at_ns / 1e9, tz=timezone.utc).strftime("%H:%M:%S")
    per_point = ", ".join(f"{p} +{n}" for p, n in v.packets.items())
    drops = sum(d for d in v.drops.values() if d)
    lag = "-" if v.lag_ms is None else f"{v.lag_ms:.0f} ms"
    head = (f"[{clock}] #{v.index} {v.status.upper():<7} pkts {per_point} | window {v.window_packets} pkts, "
            f"{v.flows} flows | drops {drops} | lag {lag}, verify {v.eval_ms:.0f} ms")
    lines = [head]
    if v.failing:
        lines.append(f"  failing now: {', '.join(v.failing)}")
    for rule, ev in v.new[:_MAX_NEW_SHOWN]:
        frames = ", ".join(f"#{f}" for f in ev.frames[:4])
        lines.append(f"  NEW {rule.id} {rule.name}: {ev.point} {frames} {ev.five_tuple}: "
                     f"expected {ev.expected}; actual: {ev.actual}")
        if ev.display_filter:
            lines.append(f"      wireshark: {ev.display_filter}")
    more = max(0, len(v.new) - _MAX_NEW_SHOWN) + v.new_unshown
    if more > 0:
        lines.append(f"  ... and {more} more new violation(s)")
    if v.note:
        lines.append(f"  {v.note}")
    return "\n".join(lines)
