"""A one-line status on a terminal's stderr while long work runs; silent elsewhere. The one
status line of every command (verify, ladder and report show stages; capture and watch show
packet counts, made by live.progress.progress_line)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class StatusLine:
    """Shows what is being done on a TTY (rewriting one line); does nothing when not a TTY or
    when quiet, so logs and pipes stay clean."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._width = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the status line was made."""
        return time.monotonic() - self.started

    def show(self, message: str) -> None:
        if not self.enabled:
            return
        self.stream.write("\r" + message.ljust(self._width))
        self.stream.flush()
        self._width = len(message)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> "StatusLine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
