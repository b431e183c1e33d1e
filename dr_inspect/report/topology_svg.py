"""The learned topology as a picture: segments as horizontal buses, hosts hanging off them.

Two-segment (the seed): the VIP segment on top, the real-server segment below; the director and
the real servers sit between the two buses, each line labelled with the MAC seen there. A shared
segment is one bus with everybody on it.
"""

from __future__ import annotations

from dr_inspect.model import Topology
from dr_inspect.report.svg import esc, num, svg_open, text

_MAX_SERVERS = 12
_BUS_GAP = 190
_TOP = 70
_COL = 190
_BOX_W, _BOX_H = 150, 54


def _segments(topology: Topology) -> list[str]:
    keys: list[str] = list(topology.director_macs)
    for rs in topology.real_servers:
        keys.extend(k for k in rs.macs if k not in keys)
    keys = list(dict.fromkeys(keys))

    def rank(key: str) -> int:
        role = topology.point_roles.get(key, key)
        return 0 if "vip" in role or role == "both" else 1 if "rs" in role else 2
    return sorted(keys, key=rank)


def _segment_label(key: str, topology: Topology) -> str:
    points = [p for p, role in topology.point_roles.items() if role == key]
    role = topology.point_roles.get(key)
    if points:
        return f"{key} (captured at {', '.join(points)})"
    if role:
        return f"{key} ({role})"
    return key


def _host(x: float, y: float, title: str, lines: list[str], fill: str) -> list[str]:
    out = [f'<g class="host"><title>{esc(title + chr(10) + chr(10).join(lines))}</title>',
           f'<rect x="{num(x - _BOX_W / 2)}" y="{num(y - _BOX_H / 2)}" width="{_BOX_W}" '
           f'height="{_BOX_H}" rx="6" fill="{fill}" stroke="#333"/>',
           text(x, y - _BOX_H / 2 + 16, title, size=13, anchor="middle", fill="#000",
                extra='font-weight="bold"')]
    for i, line in enumerate(lines[:2]):
        out.append(text(x, y - _BOX_H / 2 + 32 + i * 14, line, size=10, anchor="middle"))
    out.append("</g>")
    return out


def _link(x: float, host_y: float, bus_y: float, mac: str) -> list[str]:
    edge = host_y - _BOX_H / 2 if bus_y < host_y else host_y + _BOX_H / 2
    mid = (edge + bus_y) / 2
    return [f'<line x1="{num(x)}" y1="{num(edge)}" x2="{num(x)}" y2="{num(bus_y)}" '
            f'stroke="#333" stroke-width="1.5"/>',
            text(x + 5, mid + 4, mac, size=10, fill="#1f4e79")]


def render_topology_svg(topology: Topology | None) -> str:
    if topology is None:
        return (svg_open(420, 40, "topology not learned")
                + text(10, 24, "topology not learned", size=13) + "</svg>")
    segments = _segments(topology) or ["segment"]
    servers = topology.real_servers[:_MAX_SERVERS]
    width = 2 * _COL + max(len(servers), 1) * _COL + 40  # room for the last MAC label
    bus_y = {seg: _TOP + 40 + i * _BUS_GAP for i, seg in enumerate(segments)}
    mid_y = (bus_y[segments[0]] + bus_y[segments[-1]]) / 2 if len(segments) > 1 else bus_y[segments[0]] + 80
    height = bus_y[segments[-1]] + (60 if len(segments) > 1 else 140)
    out = [svg_open(width, height, f"learned topology ({topology.shape})"),
           '<rect width="100%" height="100%" fill="#fff"/>',
           text(10, 18, f"learned topology: {topology.shape}; VIPs {', '.join(topology.vips) or '-'}",
                size=13, fill="#000", extra='font-weight="bold"')]
    for seg in segments:
        y = bus_y[seg]
        out.append(f'<line x1="20" y1="{num(y)}" x2="{num(width - 20)}" y2="{num(y)}" '
                   f'stroke="#2b8a3e" stroke-width="5" stroke-linecap="round"/>')
        out.append(text(width - 24, y - 8, _segment_label(seg, topology), size=11,
                        anchor="end", fill="#2b8a3e", extra='font-weight="bold"'))
    # The client hangs above the first (VIP) segment; its MAC is not part of the topology.
    client_x, client_y = _COL / 2 + 10, _TOP - 10
    first = bus_y[segments[0]]
    out.append(f'<line x1="{num(client_x)}" y1="{num(client_y + _BOX_H / 2)}" '
               f'x2="{num(client_x)}" y2="{num(first)}" stroke="#333" stroke-width="1.5"/>')
    out.extend(_host(client_x, client_y, "client(s)", ["any source"], "#f1f3f5"))
    director_x = _COL * 1.5
    vip_line = "VIP " + (topology.vips[0] if topology.vips else "-") + (
        f" +{len(topology.vips) - 1}" if len(topology.vips) > 1 else "")
    for seg, macs in topology.director_macs.items():
        if seg in bus_y and macs:
            out.extend(_link(director_x, mid_y, bus_y[seg], ", ".join(macs)))
    out.extend(_host(director_x, mid_y, "director", [vip_line], "#e7f5ff"))
    for i, rs in enumerate(servers):
        x = _COL * (2.5 + i)
        for seg, mac in rs.macs.items():
            if seg in bus_y:
                out.extend(_link(x, mid_y, bus_y[seg], mac))
        out.extend(_host(x, mid_y, rs.name, [f"RIP {rs.rip or '-'}", "VIP on lo"], "#fff4e6"))
    if len(topology.real_servers) > len(servers):
        out.append(text(width - 20, height - 10,
                        f"... and {len(topology.real_servers) - len(servers)} more real servers",
                        size=11, anchor="end"))
    for i, conflict in enumerate(topology.conflicts[:3]):
        out.append(text(10, height - 10 - 14 * i, f"conflict: {conflict}", size=11, fill="#b00020"))
    out.append("</svg>")
    return "\n".join(out) + "\n"
