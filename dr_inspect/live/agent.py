"""One running tcpdump: start it, know when it is really capturing, follow its stderr, stop it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dr_inspect.errors import CaptureAgentError
from dr_inspect.live.tcpdump import (TcpdumpStats, error_lines, parse_counts, parse_got,
                                     parse_listening)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If dr-inspect itself is killed (SIGKILL), its tcpdumps must not capture on forever.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class AgentState:
    listening: bool = False
    listening_at: str = ""             # UTC time tcpdump said "listening on"
    stopped_at: str = ""               # UTC time its process was seen ended
    linktype: str = ""
    got: int = 0                       # packets written so far ("Got N", or counted by a reader)
    stats: TcpdumpStats = field(default_factory=TcpdumpStats)
    stderr: str = ""


class TcpdumpAgent:
    """A tcpdump subprocess plus a thread that drains and parses its stderr.

    The process gets its own session, so a Ctrl-C on the terminal reaches dr-inspect only and
    dr-inspect decides how the agents stop (and can tell a crash from a requested stop).
    """

    def __init__(self, name: str, argv: list[str], *, stream: bool = False, keep_stdin: bool = False):
        self.name = name
        self.argv = argv
        self.state = AgentState()
        self.stop_requested = False
        self._cond = threading.Condition()
        try:
            self.proc = subprocess.Popen(
                # keep_stdin: a pipe the caller closes to end the agent (a remote one over ssh)
                argv, stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stream else subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as exc:
            raise CaptureAgentError(f"{name}: cannot start {argv[0]}: {exc.strerror}") from None
        self._reader = threading.Thread(target=self._read_stderr, name=f"tcpdump-{name}", daemon=True)
        self._reader.start()

    # stderr -------------------------------------------------------------------------------
    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        pending = ""
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            pending += chunk.decode("utf-8", "replace")
            # "Got N" ends with \r, everything else with \n.
            *done, pending = _split_keep_last(pending)
            with self._cond:
                for piece in done:
                    self._absorb(piece)
                self._cond.notify_all()
        with self._cond:
            if pending:
                self._absorb(pending)
            self._cond.notify_all()

    def _absorb(self, piece: str) -> None:
        st = self.state
        st.stderr += piece + "\n"
        if len(st.stderr) > 65536:  # bounded however long it runs
            st.stderr = st.stderr[-32768:]
        listening = parse_listening(piece)
        if listening:
            st.listening = True
            st.listening_at = _utc_now()
            st.linktype = listening[1]
            return
        got = parse_got(piece)
        if got is not None:
            st.got = max(st.got, got)
            return
        parse_counts(piece, st.stats)

    # lifecycle ----------------------------------------------------------------------------
    def wait_listening(self, timeout: float) -> None:
        """Return once tcpdump says "listening on"; raise CaptureAgentError if it exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.state.listening:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise CaptureAgentError(f"{self.name}: tcpdump failed to start: {self.error_message()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaptureAgentError(f"{self.name}: tcpdump did not start capturing within {timeout:g} s")
                self._cond.wait(min(left, 0.1))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request_stats(self) -> None:
        """Ask tcpdump to print its counts now (SIGUSR1); they arrive in state.stats."""
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> int:
        """SIGINT (tcpdump flushes, prints counts, exits), then SIGTERM, then SIGKILL. Returns rc."""
        if self.alive():
            self.stop_requested = True
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                break
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        rc = self.proc.wait()
        if not self.state.stopped_at:
            self.state.stopped_at = _utc_now()
        self._reader.join(5.0)
        return rc

    def error_message(self) -> str:
        lines = [ln.removeprefix("tcpdump: ") for ln in error_lines(self.state.stderr)]
        lines = [ln for ln in lines if not (ln.startswith("(") and ln.endswith(")"))]  # repeats
        if lines:
            return "; ".join(lines)
        rc = self.proc.poll()
        return f"exited with status {rc}" if rc is not None else "no message"

    def crashed(self) -> bool:
        """Exited on its own with an error (not by our stop, not after -c N packets)."""
        rc = self.proc.poll()
        return rc is not None and not self.stop_requested and rc != 0


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _split_keep_last(text: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch in "\r\n":
            if i > start:
                parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts
