"""A one-line status on a terminal's stderr while long work runs; plain lines, now and then,
elsewhere (a CI log or a file then shows that a long capture is alive). The one status line of
every command (verify, ladder and report show stages; capture and watch show packet counts, made
by live.progress.progress_line)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

# off a terminal: nothing for work that ends within PLAIN_AFTER seconds, then a line at most
# every PLAIN_EVERY seconds
PLAIN_AFTER = 2.0
PLAIN_EVERY = 5.0


class StatusLine:
    """Shows what is being done: on a TTY by rewriting one line; elsewhere (a log, a pipe) as a
    plain line now and then once the work has run PLAIN_AFTER seconds, so short commands stay
    silent and long ones show they are alive; nothing with quiet."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = not quiet and tty
        self.plain = not quiet and not tty
        self.clock = clock
        self.started = clock()
        self._width = 0
        self._last_plain: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the status line was made."""
        return self.clock() - self.started

    def show(self, message: str) -> None:
        if self.plain:
            self._show_plain(message)
        if not self.enabled:
            return
        self.stream.write("\r" + message.ljust(self._width))
        self.stream.flush()
        self._width = len(message)

    def _show_plain(self, message: str) -> None:
        now = self.clock()
        if now - self.started < PLAIN_AFTER or (
                self._last_plain is not None and now - self._last_plain < PLAIN_EVERY):
            return
        self._last_plain = now
        self.stream.write(f"[{now - self.started:.0f}s] {message}\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> "StatusLine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
