"""The text of the live progress line (the CLI shows it with cli.status.StatusLine)."""

from __future__ import annotations


def progress_line(counts: dict[str, tuple[int, int | None]], elapsed_s: float) -> str:
    """"12.3 s  br_e 1204 pkts  br_lvs 1188 pkts (3 dropped)"."""
    parts = [f"{elapsed_s:6.1f} s"]
    for name, (packets, dropped) in counts.items():
        drop = f" ({dropped} dropped)" if dropped else ""
        parts.append(f"{name} {packets} pkts{drop}")
    return "  ".join(parts)
