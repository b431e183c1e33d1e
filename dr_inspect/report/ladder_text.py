"""Text ladder: one connection across the capture points, the way the seed narrates it."""

from __future__ import annotations

from dr_inspect.model import Ladder
from dr_inspect.report.format import opt, tcp_flags_short
from dr_inspect.report.ladder_notes import StepView, step_views

_COL = 12   # characters between two host lifelines
_MARGIN = 4  # room to centre the first host name over its lifeline


def _arrow_row(view: StepView, hosts: list[str]) -> str:
    width = _COL * (len(hosts) - 1) + 1 + 2 * _MARGIN
    row = [" "] * width
    for i in range(len(hosts)):
        row[_MARGIN + i * _COL] = "|"
    s, d = view.step.src_host, view.step.dst_host
    if s in hosts and d in hosts and s != d:
        a, b = _MARGIN + hosts.index(s) * _COL, _MARGIN + hosts.index(d) * _COL
        line = "=" if view.bypass else "-"   # the direct reply path drawn differently
        lo, hi = min(a, b), max(a, b)
        for x in range(lo + 1, hi):
            row[x] = line
        row[a] = "o"
        row[b - 1 if b > a else b + 1] = ">" if b > a else "<"
    elif s in hosts:
        row[_MARGIN + hosts.index(s) * _COL] = "o"
    return "".join(row)


def _header(hosts: list[str]) -> str:
    width = _COL * (len(hosts) - 1) + 1 + 2 * _MARGIN
    row = [" "] * (width + _COL)
    for i, host in enumerate(hosts):
        name = host[: _COL - 1]
        start = max(0, _MARGIN + i * _COL - len(name) // 2)
        row[start:start + len(name)] = list(name)
    return "".join(row)[:width].ljust(width)


def _mac(mac: str, changed: bool) -> str:
    return f"*{mac}" if changed else mac


def render_ladder_text(ladder: Ladder) -> str:
    hosts = ladder.hosts or ["?"]
    views = step_views(ladder)
    title = f"flow {ladder.flow_id}: {ladder.five_tuple}"
    if ladder.real_server:
        title += f" via {ladder.real_server}"
    lines = [title, f"points: {', '.join(ladder.points) or '-'}"]
    if ladder.violations:
        lines.append(f"violates: {', '.join(ladder.violations)}")
    lines.append("")
    pad = " " * 16   # row number and relative time
    lines.append(f"{pad}{_header(hosts)}  {'step':<33} point     frame   "
                 f"src MAC -> dst MAC                      ttl  flags  seq         ack         len")
    for v in views:
        s = v.step
        macs = f"{_mac(s.src_mac, 'src_mac' in v.changed)} -> {_mac(s.dst_mac, 'dst_mac' in v.changed)}"
        ttl = ("*" if "ttl" in v.changed else "") + opt(s.ttl)
        lines.append(
            f"{v.index:>3} {v.rel_ms:>+9.3f}ms {_arrow_row(v, hosts)}  {v.label:<33} {s.point:<9} "
            f"#{s.frame:<6} {macs:<39} {ttl:>4}  {tcp_flags_short(s.tcp_flags):<5}  "
            f"{opt(s.seq):<11} {opt(s.ack):<11} {opt(s.payload_len)}")
        if v.notes:
            lines.append(f"{pad}{'':<{len(_arrow_row(v, hosts))}}  ^ {v.note}")
    lines.append("")
    lines.append("times in ms relative to the first packet; * marks a field changed since the "
                 "previous sighting of the same packet; === is a path that bypasses the director")
    return "\n".join(lines) + "\n"
