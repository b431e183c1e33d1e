"""A capture agent whose pcap stream (`tcpdump -w -`) is read while it runs, optionally teed to a file."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dr_inspect.errors import CaptureAgentError
from dr_inspect.live.agent import TcpdumpAgent
from dr_inspect.live.files import create_new

_F_SETPIPE_SZ = 1031
# As root the pipe may exceed /proc/sys/fs/pipe-max-size: 32 MiB hold several seconds of a busy
# bridge while the verifier holds the CPU, so tcpdump does not block and the kernel does not drop.
_PIPE_BYTES = (32 << 20, 1 << 20)
_READ_BYTES = 1 << 20


def pipe_chunks(fd: int, size: int = _READ_BYTES) -> Iterator[bytes]:
    """The bytes of a pipe as they arrive, until its end (or a read error)."""
    while True:
        try:
            data = os.read(fd, size)
        except OSError:
            return
        if not data:
            return
        yield data


class StreamAgent:
    """tcpdump writing pcap to a pipe; a thread drains the pipe so tcpdump never blocks on us.

    take() hands the bytes read so far to the caller (the decoder); `backlog` is how many bytes
    wait there, i.e. how far the consumer lags behind the capture.
    """

    def __init__(self, name: str, argv: list[str], tee: Path | None = None):
        self.agent = TcpdumpAgent(name, argv, stream=True)
        self.name = name
        self.tee_path = tee
        self._tee: BinaryIO | None = None
        if tee is not None:
            try:
                self._tee = create_new(tee)
            except OSError as exc:
                self.agent.stop(timeout=2.0)
                raise CaptureAgentError(f"{tee}: cannot write: {exc.strerror}") from None
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self.backlog = 0
        self.bytes_read = 0
        self.eof = False
        self.tee_error: str | None = None
        stdout = self.agent.proc.stdout
        assert stdout is not None
        for size in _PIPE_BYTES:  # a larger pipe absorbs bursts while the reader is descheduled
            try:
                fcntl.fcntl(stdout.fileno(), _F_SETPIPE_SZ, size)
                break
            except OSError:
                continue
        self._thread = threading.Thread(target=self._drain, name=f"stream-{name}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for data in pipe_chunks(self.agent.proc.stdout.fileno()):  # type: ignore[union-attr]
            if self._tee is not None and self.tee_error is None:
                try:
                    self._tee.write(data)
                    self._tee.flush()   # the saved file is valid up to the last packet at any time
                except OSError as exc:
                    self.tee_error = f"{self.tee_path}: {exc.strerror}"
            with self._lock:
                self._chunks.append(data)
                self.backlog += len(data)
                self.bytes_read += len(data)
        with self._lock:
            self.eof = True
        if self._tee is not None:
            try:
                self._tee.close()
            except OSError as exc:
                self.tee_error = self.tee_error or f"{self.tee_path}: {exc.strerror}"

    def take(self) -> bytes:
        with self._lock:
            data = b"".join(self._chunks)
            self._chunks.clear()
            self.backlog = 0
        return data

    def finished(self) -> bool:
        """The stream ended and every byte of it was taken."""
        with self._lock:
            return self.eof and not self._chunks

    def stop(self, timeout: float = 5.0) -> int:
        rc = self.agent.stop(timeout)
        self._thread.join(10.0)
        return rc
