"""One-line live progress for a terminal (pure text; the caller decides whether to show it)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def progress_line(counts: dict[str, tuple[int, int | None]], elapsed_s: float) -> str:
    """"12.3 s  br_e 1204 pkts  br_lvs 1188 pkts (3 dropped)"."""
    parts = [f"{elapsed_s:6.1f} s"]
    for name, (packets, dropped) in counts.items():
        drop = f" ({dropped} dropped)" if dropped else ""
        parts.append(f"{name} {packets} pkts{drop}")
    return "  ".join(parts)


class Progress:
    """Rewrites one status line on a TTY; does nothing when not a TTY or quiet."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.t0 = time.monotonic()
        self._width = 0

    def show(self, counts: dict[str, tuple[int, int | None]]) -> None:
        if not self.enabled:
            return
        line = progress_line(counts, time.monotonic() - self.t0)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
