"""Tiny helpers for writing SVG by hand (escaping, text, numbers)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

FONT = "font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\""
SANS = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""


def esc(text: object) -> str:
    return escape(str(text))


def attr(text: object) -> str:
    """A quoted, escaped attribute value."""
    return quoteattr(str(text))


def num(value: float) -> str:
    """Compact coordinate: 12.5 -> '12.5', 12.0 -> '12'."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def text(x: float, y: float, content: object, *, size: int = 12, anchor: str = "start",
         fill: str = "#222", extra: str = "") -> str:
    return (f'<text x="{num(x)}" y="{num(y)}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{fill}"{(" " + extra) if extra else ""}>{esc(content)}</text>')


def svg_open(width: float, height: float, label: str, *, font: str = SANS) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
            f'viewBox="0 0 {num(width)} {num(height)}" role="img" aria-label={attr(label)} {font}>'
            f'<title>{esc(label)}</title>')
