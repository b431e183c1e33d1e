"""What a ladder should make visible, derived from its steps (shared by text and SVG ladders).

For each step: which fields changed against the earlier sighting of the same packet (the MAC
rewrite at the director, the TTL decrement), and whether the arrow passes the director by (the
direct reply of DR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dr_inspect.model import Ladder, LadderStep

DIRECTOR = "director"
CLIENT = "client"
SEND_SUFFIX = " send"


@dataclass
class StepView:
    step: LadderStep
    index: int                     # 1-based row number
    rel_ms: float                  # relative to the first packet of the ladder
    changed: set[str] = field(default_factory=set)   # "src_mac", "dst_mac", "ttl"
    bypass: bool = False           # arrow crosses the director's column without touching it
    notes: list[str] = field(default_factory=list)
    label: str = ""                # step label; a send seen once also names its receive

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _packet_key(s: LadderStep) -> tuple:
    """One sending of a packet: a retransmission (instance) is compared with its own earlier
    sightings only."""
    return (s.src_ip, s.dst_ip, s.src_port, s.dst_port, s.seq, s.ack, s.tcp_flags, s.payload_len,
            s.instance)


def _crosses_director(step: LadderStep, hosts: list[str]) -> bool:
    if DIRECTOR not in hosts or step.src_host not in hosts or step.dst_host not in hosts:
        return False
    d, a, b = hosts.index(DIRECTOR), hosts.index(step.src_host), hosts.index(step.dst_host)
    return min(a, b) < d < max(a, b)


def receive_label(dst_host: str) -> str:
    if dst_host == CLIENT:
        return "client receive"
    if dst_host == DIRECTOR:
        return "director receive"
    return "server receive" if dst_host else ""


def _labels(steps: list[LadderStep]) -> list[str]:
    """On one bridge capture a send and its receive are the same frame: build_ladder then gives
    only the send. Name both, so the seed's six steps read off every ladder."""
    labels = []
    for i, step in enumerate(steps):
        label = step.label
        if label.endswith(SEND_SUFFIX):
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            separate = (nxt is not None and nxt.label.endswith(" receive")
                        and _packet_key(nxt) == _packet_key(step))
            received = receive_label(step.dst_host)
            if not separate and received:
                label = f"{label} / {received}"
        labels.append(label)
    return labels


def step_views(ladder: Ladder) -> list[StepView]:
    origin = min((s.ts_ns for s in ladder.steps), default=0)
    views: list[StepView] = []
    previous: dict[tuple, LadderStep] = {}
    labels = _labels(ladder.steps)
    for i, step in enumerate(ladder.steps, start=1):
        view = StepView(step=step, index=i, rel_ms=(step.ts_ns - origin) / 1e6,
                        label=labels[i - 1])
        if step.note:
            view.notes.append(step.note)
        earlier = previous.get(_packet_key(step))
        if earlier is not None:
            if earlier.dst_mac != step.dst_mac:
                view.changed.add("dst_mac")
                view.notes.append(f"dst MAC {earlier.dst_mac} -> {step.dst_mac}")
            if earlier.src_mac != step.src_mac:
                view.changed.add("src_mac")
                view.notes.append(f"src MAC {earlier.src_mac} -> {step.src_mac}")
            if earlier.ttl is not None and step.ttl is not None and earlier.ttl != step.ttl:
                view.changed.add("ttl")
                view.notes.append(f"TTL {earlier.ttl} -> {step.ttl}")
        previous[_packet_key(step)] = step
        if step.breaks:
            view.notes.append("breaks " + ", ".join(step.breaks))
        if _crosses_director(step, ladder.hosts):
            view.bypass = True
            if not any("bypass" in n for n in view.notes):
                view.notes.append("bypasses the director")
        # build_ladder may already say the same thing; keep each note once.
        view.notes = list(dict.fromkeys(view.notes))
        views.append(view)
    return views
