"""Small hand-drawn SVG charts for the HTML report (no plotting dependency).

share_chart: connections per real server as horizontal bars with counts and percentages.
latency_chart: per real server a box plot (p5-p95 whiskers, p25-p75 box, median) on a log
scale, because forwarding delays (microseconds) and response times (up to seconds) differ by
orders of magnitude.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from dr_inspect.report.svg import esc, num, svg_open, text

_LABEL_W = 90
_PLOT_W = 420
_ROW = 26
_BAR = "#1f4e79"


def share_chart(servers: Sequence[dict[str, Any]], title: str = "connections per real server") -> str:
    counts = [int(s.get("connections", 0) or 0) for s in servers]
    total = sum(counts)
    height = 40 + max(len(servers), 1) * _ROW + 10
    width = _LABEL_W + _PLOT_W + 130
    out = [svg_open(width, height, title), text(6, 18, title, size=13, fill="#000",
                                                extra='font-weight="bold"')]
    peak = max(counts, default=0) or 1
    for i, (server, count) in enumerate(zip(servers, counts)):
        y = 34 + i * _ROW
        share = 100.0 * count / total if total else 0.0
        bar = _PLOT_W * count / peak
        name = str(server.get("name", f"#{i + 1}"))
        out.append(f'<g><title>{esc(f"{name}: {count} connections, {share:.1f}%")}</title>')
        out.append(text(_LABEL_W - 6, y + 14, name, size=12, anchor="end"))
        out.append(f'<rect x="{_LABEL_W}" y="{y}" width="{num(max(bar, 1))}" height="{_ROW - 8}" '
                   f'fill="{_BAR}"/>')
        out.append(text(_LABEL_W + bar + 6, y + 14, f"{count} ({share:.1f}%)", size=11))
        out.append("</g>")
    if not servers:
        out.append(text(_LABEL_W, 48, "no real servers learned", size=12, fill="#666"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def finite_values(values: Any) -> np.ndarray:
    """A list/array of numbers (None and NaN allowed) as a float array of the finite ones."""
    arr = np.asarray(values if values is not None else [], dtype=float).ravel()
    return arr[np.isfinite(arr)]


def quantiles(values: Any) -> dict[str, float] | None:
    arr = finite_values(values)
    if arr.size == 0:
        return None
    p = np.percentile(arr, [5, 25, 50, 75, 95])
    return {"n": float(arr.size), "min": float(arr.min()), "p5": p[0], "p25": p[1], "p50": p[2],
            "p75": p[3], "p95": p[4], "max": float(arr.max())}


def _fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} us"


def latency_chart(series: Sequence[tuple[str, Any]], title: str) -> str:
    """series: (real server name, latency values in microseconds)."""
    stats = [(name, quantiles(values)) for name, values in series]
    known = [q for _, q in stats if q is not None]
    height = 56 + max(len(stats), 1) * _ROW + 10
    width = _LABEL_W + _PLOT_W + 230
    out = [svg_open(width, height, title), text(6, 18, title, size=13, fill="#000",
                                                extra='font-weight="bold"')]
    if not known:
        out.append(text(_LABEL_W, 48, "no measurements", size=12, fill="#666"))
        out.append("</svg>")
        return "\n".join(out) + "\n"
    lo = math.floor(math.log10(max(min(q["p5"] for q in known), 0.1)))
    hi = math.ceil(math.log10(max(max(q["p95"] for q in known), 1.0)))
    hi = max(hi, lo + 1)

    def x(us: float) -> float:
        v = math.log10(max(us, 10.0 ** lo))
        return _LABEL_W + _PLOT_W * (min(v, hi) - lo) / (hi - lo)

    axis_y = 34 + len(stats) * _ROW
    for exp in range(lo, hi + 1):
        gx = x(10.0 ** exp)
        out.append(f'<line x1="{num(gx)}" y1="28" x2="{num(gx)}" y2="{num(axis_y)}" '
                   f'stroke="#ddd"/>')
        out.append(text(gx, axis_y + 14, _fmt_us(10.0 ** exp), size=10, anchor="middle",
                        fill="#555"))
    for i, (name, q) in enumerate(stats):
        y = 34 + i * _ROW
        mid = y + (_ROW - 8) / 2
        out.append(text(_LABEL_W - 6, mid + 4, name, size=12, anchor="end"))
        if q is None:
            out.append(text(_LABEL_W, mid + 4, "no measurements", size=11, fill="#666"))
            continue
        hover = (f"{name}: n={int(q['n'])} min {_fmt_us(q['min'])} p25 {_fmt_us(q['p25'])} "
                 f"median {_fmt_us(q['p50'])} p75 {_fmt_us(q['p75'])} p95 {_fmt_us(q['p95'])} "
                 f"max {_fmt_us(q['max'])}")
        out.append(f'<g><title>{esc(hover)}</title>')
        out.append(f'<line x1="{num(x(q["p5"]))}" y1="{num(mid)}" x2="{num(x(q["p95"]))}" '
                   f'y2="{num(mid)}" stroke="#333"/>')
        left, right = x(q["p25"]), x(q["p75"])
        out.append(f'<rect x="{num(left)}" y="{y}" width="{num(max(right - left, 2))}" '
                   f'height="{_ROW - 8}" fill="#a5d8ff" stroke="#1f4e79"/>')
        out.append(f'<line x1="{num(x(q["p50"]))}" y1="{y}" x2="{num(x(q["p50"]))}" '
                   f'y2="{y + _ROW - 8}" stroke="#b00020" stroke-width="2"/>')
        out.append(text(_LABEL_W + _PLOT_W + 10, mid + 4,
                        f"median {_fmt_us(q['p50'])}, p95 {_fmt_us(q['p95'])}, n={int(q['n'])}",
                        size=11))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
