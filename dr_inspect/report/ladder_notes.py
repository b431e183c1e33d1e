"""What a ladder should make visible, derived from its steps (shared by text and SVG ladders).

For each step: which fields changed against the earlier sighting of the same packet (the MAC
rewrite at the director, the TTL decrement), and whether the arrow passes the director by (the
direct reply of DR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dr_inspect.model import Ladder, LadderStep

DIRECTOR = "director"


@dataclass
class StepView:
    step: LadderStep
    index: int                     # 1-based row number
    rel_ms: float                  # relative to the first packet of the ladder
    changed: set[str] = field(default_factory=set)   # "src_mac", "dst_mac", "ttl"
    bypass: bool = False           # arrow crosses the director's column without touching it
    notes: list[str] = field(default_factory=list)


def _packet_key(s: LadderStep) -> tuple:
    return (s.src_ip, s.dst_ip, s.src_port, s.dst_port, s.seq, s.ack, s.tcp_flags, s.payload_len)


def _crosses_director(step: LadderStep, hosts: list[str]) -> bool:
    if DIRECTOR not in hosts or step.src_host not in hosts or step.dst_host not in hosts:
        return False
    d, a, b = hosts.index(DIRECTOR), hosts.index(step.src_host), hosts.index(step.dst_host)
    return min(a, b) < d < max(a, b)


def step_views(ladder: Ladder) -> list[StepView]:
    origin = min((s.ts_ns for s in ladder.steps), default=0)
    views: list[StepView] = []
    previous: dict[tuple, LadderStep] = {}
    for i, step in enumerate(ladder.steps, start=1):
        view = StepView(step=step, index=i, rel_ms=(step.ts_ns - origin) / 1e6)
        if step.note:
            view.notes.append(step.note)
        earlier = previous.get(_packet_key(step))
        if earlier is not None:
            if earlier.dst_mac != step.dst_mac:
                view.changed.add("dst_mac")
                view.notes.append(f"dst MAC rewritten {earlier.dst_mac} -> {step.dst_mac}")
            if earlier.src_mac != step.src_mac:
                view.changed.add("src_mac")
                view.notes.append(f"src MAC rewritten {earlier.src_mac} -> {step.src_mac}")
            if earlier.ttl is not None and step.ttl is not None and earlier.ttl != step.ttl:
                view.changed.add("ttl")
                view.notes.append(f"TTL {earlier.ttl} -> {step.ttl}")
        previous[_packet_key(step)] = step
        if _crosses_director(step, ladder.hosts):
            view.bypass = True
            if not any("bypass" in n for n in view.notes):
                view.notes.append("reply bypasses director")
        # build_ladder may already say the same thing; keep each note once.
        view.notes = list(dict.fromkeys(view.notes))
        views.append(view)
    return views
