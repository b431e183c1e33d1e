"""A capture agent on a remote host: tcpdump over ssh, its pcap stream written to a local file.

The remote side must die with the ssh channel, whatever ends it (our stop, ssh killed, the
connection lost). ssh -tt (a pty whose hangup kills the command) cannot carry a pcap stream:
the pty turns \\n into \\r\\n and mixes stderr into stdout. So the command runs under a small sh
wrapper, with no pty: tcpdump in the background with stdin from /dev/null, and a watcher reading
the channel's stdin that sends tcpdump SIGTERM (flush, print counts, exit; SIGINT would not do:
a background job of a script starts with SIGINT ignored) when stdin ends. stdin
ends when we close it (a requested stop) and when sshd closes the session (ssh killed, the
connection dropped: sshd's ClientAlive or TCP notices). The wrapper exits with tcpdump's status.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from dr_inspect.errors import CaptureAgentError
from dr_inspect.live.agent import TcpdumpAgent, _utc_now
from dr_inspect.live.files import create_new
from dr_inspect.live.stream import pipe_chunks
from dr_inspect.remote.ssh import SshHost, end_group, ssh_argv

# $@ is the tcpdump argv. fd 3 keeps the channel's stdin for the watcher only (a background
# job's stdin is /dev/null); when tcpdump ends by itself the watcher is killed and its `cat`
# ends when sshd closes the session.
WRAPPER = ('exec 3<&0; "$@" </dev/null 3<&- & p=$!; '
           '{ cat <&3 >/dev/null 2>&1; kill -TERM "$p" 2>/dev/null; } >/dev/null 2>&1 & w=$!; '
           'exec 3<&-; wait "$p"; r=$?; kill "$w" 2>/dev/null; exit "$r"')


def remote_argv(host: SshHost, tcpdump_argv: list[str], ssh: str = "ssh") -> list[str]:
    return ssh_argv(host, ["sh", "-c", WRAPPER, "dr-inspect-agent", *tcpdump_argv], ssh=ssh)


class RemoteAgent(TcpdumpAgent):
    """ssh running the wrapped tcpdump; a thread copies the pcap stream to `out`, up to
    `max_bytes` (then the remote tcpdump is told to stop). Stopping closes ssh's stdin."""

    def __init__(self, name: str, argv: list[str], out: Path, max_bytes: int | None = None):
        try:
            self._out = create_new(out)
        except OSError as exc:
            raise CaptureAgentError(f"{out}: cannot write: {exc.strerror}") from None
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self.capped = False
        self.write_error: str | None = None
        try:
            super().__init__(name, argv, stream=True, keep_stdin=True)
        except BaseException:
            self._out.close()
            raise
        self._copier = threading.Thread(target=self._copy, name=f"remote-{name}", daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        for data in pipe_chunks(self.proc.stdout.fileno()):  # type: ignore[union-attr]
            if self.capped or self.write_error:
                continue                   # drain: tcpdump must not block on a full pipe
            try:
                self._out.write(data)
                self._out.flush()          # the file is readable up to the last packet
            except OSError as exc:
                self.write_error = exc.strerror
                self.end_remote()
                continue
            self.bytes_written += len(data)
            if self.max_bytes is not None and self.bytes_written >= self.max_bytes:
                self.capped = True
                self.end_remote()
        self._out.close()

    def end_remote(self) -> None:
        """Tell the remote wrapper to stop tcpdump (EOF on its stdin)."""
        self.stop_requested = True
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass

    def stop(self, timeout: float = 10.0) -> int:
        """EOF to the wrapper (tcpdump flushes and prints its counts), then SIGTERM and SIGKILL
        to ssh's process group (closing the connection, which ends the remote side too).
        Returns ssh's status."""
        if self.alive():
            self.end_remote()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        rc = end_group(self.proc)
        if not self.state.stopped_at:
            self.state.stopped_at = _utc_now()
        self._copier.join(10.0)
        self._reader.join(5.0)
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]  # ended on its own: not a stop
        except OSError:
            pass
        return rc
