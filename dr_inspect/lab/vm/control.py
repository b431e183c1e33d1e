"""VmHandle: a running director VM and its control channel (ttyS1, a unix socket on the host,
with a shell loop in the VM behind it)."""

from __future__ import annotations

import base64
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dr_inspect.errors import LabError
from dr_inspect.lab.vm.process import STATE_FILE, _is_our_qemu, _PidProcess, _read_state, stop_vm_by_pid
from dr_inspect.lab.vm.spec import IpvsVmSpec

MAX_COMMAND_BYTES = 2048  # ttyS1 is a raw tty: keep one command line well below its 4 KiB buffer


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


class VmHandle:
    """A running director VM. stop() is idempotent; also usable as a context manager."""

    def __init__(self, *, proc: subprocess.Popen[bytes], taps: tuple[str, str], netns: str, workdir: Path,
                 console_log: Path, control_socket: Path, socket_dir: Path | None, spec: IpvsVmSpec,
                 accel: str, boot_seconds: float = 0.0):
        self._proc = proc
        self.pid = proc.pid
        self.taps = list(taps)
        self.netns = netns
        self.workdir = workdir
        self.console_log = console_log
        self.control_socket = control_socket
        self._socket_dir = socket_dir
        self.spec = spec
        self.accel = accel
        self.boot_seconds = boot_seconds
        self._stopped = False

    @classmethod
    def attach(cls, workdir: Path) -> VmHandle:
        """A handle on a VM started by another process, from the state file in its workdir."""
        state = _read_state(Path(workdir))
        pid = state.get("pid")
        if not isinstance(pid, int) or not _is_our_qemu(pid):
            raise LabError(f"director VM recorded in {Path(workdir) / STATE_FILE} (pid {pid}) is not running")
        try:
            spec_fields = dict(state["spec"])
            handle = cls(proc=_PidProcess(pid), taps=tuple(state["taps"]), netns=state["netns"],  # type: ignore[arg-type]
                         workdir=Path(state["workdir"]), console_log=Path(state["console_log"]),
                         control_socket=Path(state["control_socket"]), socket_dir=None,
                         spec=IpvsVmSpec(**spec_fields), accel=state.get("accel", "?"),
                         boot_seconds=float(state.get("boot_seconds") or 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabError(f"{Path(workdir) / STATE_FILE}: incomplete VM state ({exc})") from exc
        return handle

    def __enter__(self) -> VmHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return not self._stopped and self._proc.poll() is None

    def execute(self, line: str, timeout: float = 30.0) -> CommandResult:
        """Run one shell line in the VM (busybox sh); its stdout+stderr and exit status."""
        if not self.alive():
            raise LabError(f"director VM (pid {self.pid}) is not running; console: {self.console_log}")
        encoded = base64.b64encode(line.encode()).decode()
        if len(encoded) > MAX_COMMAND_BYTES:
            raise LabError(f"VM command too long ({len(line)} bytes); split it")
        nonce = secrets.token_hex(6)
        deadline = time.monotonic() + timeout
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(max(0.1, timeout))
                sock.connect(str(self.control_socket))
                # The leading newline ends any partial line left in the VM's reader.
                sock.sendall(f"\n{nonce} {encoded}\n".encode())
                return _read_reply(sock, nonce, deadline, line)
        except OSError as exc:
            raise LabError(f"VM control channel {self.control_socket}: {exc}") from exc

    def run(self, line: str, timeout: float = 30.0, check: bool = True) -> str:
        """Run a shell line in the VM and return its output; LabError on a non-zero exit if check."""
        result = self.execute(line, timeout)
        if check and result.returncode != 0:
            tail = " | ".join(result.output.strip().splitlines()[-3:])
            raise LabError(f"VM command {line!r} exited {result.returncode}: {tail}")
        return result.output

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            stop_vm_by_pid(self.pid, self.taps, self.netns)
        finally:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)


def _read_reply(sock: socket.socket, nonce: str, deadline: float, line: str) -> CommandResult:
    buf = b""
    begin = f"{nonce} BEGIN".encode()
    end_prefix = f"{nonce} END ".encode()
    body: list[bytes] = []
    started = False
    while True:
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            raw = raw.rstrip(b"\r")
            if raw == begin:
                started = True
            elif raw.startswith(end_prefix) and started:
                rc = int(raw[len(end_prefix):] or b"255")
                output = base64.b64decode(b"".join(body)).decode("utf-8", "replace")
                return CommandResult(rc, output)
            elif started:
                body.append(raw)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LabError(f"VM command {line!r}: no answer in time")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError as exc:
            raise LabError(f"VM command {line!r}: no answer in time") from exc
        if not chunk:
            raise LabError(f"VM command {line!r}: control channel closed (VM stopped?)")
        buf += chunk
