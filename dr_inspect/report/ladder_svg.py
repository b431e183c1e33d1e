"""SVG ladder: host lifelines and capture-point lanes, one arrow per packet, a table beside.

Hover text (<title>) on each arrow carries flags, seq/ack, MACs and TTL; the same values are in
the table on the right so the picture is readable printed too. The direct reply (an arrow that
passes the director by) is dashed and orange; fields changed since the previous sighting of the
same packet (the MAC rewrite, the TTL decrement) are highlighted in the table; an arrow whose
frame is evidence of a failing rule is thick and red.
"""

from __future__ import annotations

from dr_inspect.model import Ladder
from dr_inspect.report.format import opt, tcp_flags_long, tcp_flags_short
from dr_inspect.report.ladder_notes import StepView, step_views
from dr_inspect.report.svg import FONT, esc, num, svg_open, text

_HOST_GAP = 130
_LANE_GAP = 90
_ROW = 30
_TOP = 56
_LEFT = 86          # room for the relative time column
_TABLE_COLS = (("#", 26), ("t ms", 70), ("step", 250), ("point", 70), ("frame", 50),
               ("src MAC", 140), ("dst MAC", 140), ("ttl", 36), ("flags", 46), ("seq", 90),
               ("ack", 90), ("len", 40))
NORMAL = "#1f4e79"
DIRECT = "#d9480f"
CHANGED = "#b00020"
BROKEN = "#e00000"


def _columns(hosts: list[str], points: list[str]) -> list[tuple[str, str]]:
    """Left-to-right (kind, name): the first point lane sits between client and director, the
    others between director and the real servers (the seed's br_e / br_lvs picture)."""
    cols: list[tuple[str, str]] = []
    hosts = hosts or ["?"]
    cols.append(("host", hosts[0]))
    if points:
        cols.append(("point", points[0]))
    if len(hosts) > 1:
        cols.append(("host", hosts[1]))
    cols.extend(("point", p) for p in points[1:])
    cols.extend(("host", h) for h in hosts[2:])
    return cols


def _positions(cols: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    x, pos, prev = float(_LEFT + 40), {}, None
    for col in cols:
        if prev is not None:
            x += _LANE_GAP if "point" in (prev[0], col[0]) else _HOST_GAP
        pos[col] = x
        prev = col
    return pos


def _hover(v: StepView) -> str:
    s = v.step
    lines = [f"{v.index}. {v.label} at {s.point} frame #{s.frame}, +{v.rel_ms:.3f} ms",
             f"{s.src_ip}:{opt(s.src_port)} -> {s.dst_ip}:{opt(s.dst_port)}",
             f"flags {tcp_flags_long(s.tcp_flags)}  seq {opt(s.seq)}  ack {opt(s.ack)}  "
             f"len {opt(s.payload_len)}",
             f"MAC {s.src_mac} -> {s.dst_mac}  TTL {opt(s.ttl)}", *v.notes]
    return "\n".join(lines)


def _arrow(v: StepView, y: float, pos: dict, lane_x: float | None) -> list[str]:
    s = v.step
    kinds = " direct" * v.bypass + " breaks" * bool(s.breaks)
    out: list[str] = [f'<g class="step{kinds}"><title>{esc(_hover(v))}</title>']
    x1, x2 = pos.get(("host", s.src_host)), pos.get(("host", s.dst_host))
    # the arrow that breaks a rule stands out most, then the direct reply
    colour = BROKEN if s.breaks else DIRECT if v.bypass else NORMAL
    if x1 is not None and x2 is not None and x1 != x2:
        sign = 1 if x2 > x1 else -1
        dash = ' stroke-dasharray="7 4"' if v.bypass else ""
        width = 4 if s.breaks else 2
        out.append(f'<line x1="{num(x1)}" y1="{num(y)}" x2="{num(x2 - sign * 8)}" y2="{num(y)}" '
                   f'stroke="{colour}" stroke-width="{width}"{dash}/>')
        out.append(f'<polygon points="{num(x2)},{num(y)} {num(x2 - sign * 10)},{num(y - 5)} '
                   f'{num(x2 - sign * 10)},{num(y + 5)}" fill="{colour}"/>')
        label = f"{tcp_flags_short(s.tcp_flags)} seq {opt(s.seq)} ack {opt(s.ack)}"
        out.append(text((x1 + x2) / 2, y - 8, label, size=10, anchor="middle", fill=colour))
    else:
        anchor = x1 if x1 is not None else x2
        if anchor is not None:
            out.append(f'<circle cx="{num(anchor)}" cy="{num(y)}" r="5" fill="{colour}"/>')
    if lane_x is not None:   # where this sighting was captured
        out.append(f'<circle cx="{num(lane_x)}" cy="{num(y)}" r="4" fill="#fff" '
                   f'stroke="{colour}" stroke-width="2"/>')
    out.append(text(_LEFT - 8, y + 4, f"+{v.rel_ms:.3f}", size=10, anchor="end", fill="#555"))
    out.append("</g>")
    return out


def _table(views: list[StepView], x0: float) -> list[str]:
    out = [f'<g class="steps-table" {FONT}>']
    x = x0
    for name, width in _TABLE_COLS:
        out.append(text(x, _TOP - 22, name, size=11, fill="#000", extra='font-weight="bold"'))
        x += width
    for v in views:
        s = v.step
        y = _TOP + (v.index - 1) * _ROW + 4
        cells = [(str(v.index), ""), (f"+{v.rel_ms:.3f}", ""), (v.label, ""), (s.point, ""),
                 (f"#{s.frame}", ""), (s.src_mac, "src_mac"), (s.dst_mac, "dst_mac"),
                 (opt(s.ttl), "ttl"), (tcp_flags_short(s.tcp_flags), ""), (opt(s.seq), ""),
                 (opt(s.ack), ""), (opt(s.payload_len), "")]
        x = x0
        for (value, field), (_, width) in zip(cells, _TABLE_COLS):
            changed = field in v.changed
            out.append(text(x, y, value, size=11, fill=CHANGED if changed else "#222",
                            extra='font-weight="bold"' if changed else ""))
            x += width
    out.append("</g>")
    return out


def render_ladder_svg(ladder: Ladder, *, max_steps: int | None = None) -> str:
    """The ladder as SVG; with max_steps, only the first packets are drawn and the rest counted."""
    views = step_views(ladder)
    omitted = 0
    if max_steps is not None and len(views) > max_steps:
        omitted = len(views) - max_steps
        views = views[:max_steps]
    cols = _columns(ladder.hosts, ladder.points)
    pos = _positions(cols)
    drawing_width = max(pos.values()) + 60
    table_width = sum(w for _, w in _TABLE_COLS)
    height = _TOP + max(len(views), 1) * _ROW + 40
    width = drawing_width + table_width + 20
    title = f"flow {ladder.flow_id}: {ladder.five_tuple}" + (
        f" via {ladder.real_server}" if ladder.real_server else "")
    out = [svg_open(width, height, f"ladder of {title}"),
           '<rect width="100%" height="100%" fill="#fff"/>',
           text(8, 16, title + (f"  (violates {', '.join(ladder.violations)})"
                                if ladder.violations else ""), size=13, fill="#000",
                extra='font-weight="bold"')]
    bottom = height - 30
    for (kind, name), x in pos.items():
        if kind == "host":
            out.append(f'<line x1="{num(x)}" y1="{_TOP - 14}" x2="{num(x)}" y2="{num(bottom)}" '
                       f'stroke="#444" stroke-width="2"/>')
            out.append(text(x, _TOP - 22, name, size=12, anchor="middle", fill="#000",
                            extra='font-weight="bold"'))
        else:
            out.append(f'<line x1="{num(x)}" y1="{_TOP - 14}" x2="{num(x)}" y2="{num(bottom)}" '
                       f'stroke="#888" stroke-width="1" stroke-dasharray="2 3"/>')
            out.append(text(x, _TOP - 22, name, size=11, anchor="middle", fill="#666",
                            extra='font-style="italic"'))
    for v in views:
        y = _TOP + (v.index - 1) * _ROW + 8
        out.extend(_arrow(v, y, pos, pos.get(("point", v.step.point))))
    out.extend(_table(views, drawing_width))
    legend_y = height - 12
    out.append(f'<line x1="8" y1="{num(legend_y - 4)}" x2="38" y2="{num(legend_y - 4)}" '
               f'stroke="{NORMAL}" stroke-width="2"/>')
    out.append(text(44, legend_y, "via director", size=10))
    out.append(f'<line x1="130" y1="{num(legend_y - 4)}" x2="160" y2="{num(legend_y - 4)}" '
               f'stroke="{DIRECT}" stroke-width="2" stroke-dasharray="7 4"/>')
    out.append(text(166, legend_y, "bypasses the director (direct reply)", size=10))
    out.append(text(400, legend_y, "o = capture point where seen; red in table = changed since "
                    "previous sighting; thick red arrow = breaks a rule", size=10))
    if omitted:
        out.append(text(_LEFT, legend_y - 16, f"... and {omitted} more packets of this connection "
                        "(dr-inspect ladder shows them all)", size=11, fill="#b00020"))
    out.append("</svg>")
    return "\n".join(out) + "\n"
