"""Subprocess edge of the lab: tools, `ip` commands, namespace exec. Always argv lists."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from dr_inspect.errors import LabError, MissingToolError

# tool -> Debian package that provides it
TOOL_PACKAGES = {
    "ip": "iproute2",
    "nft": "nftables",
    "ipvsadm": "ipvsadm",
    "tcpdump": "tcpdump",
    "curl": "curl",
    "sysctl": "procps",
    "qemu-system-x86_64": "qemu-system-x86",
    "ssh-keygen": "openssh-client",
    "apt-cache": "apt",
    "apt-get": "apt",
    "dpkg": "dpkg",
}


def need_tool(tool: str, why: str = "") -> str:
    """Path of `tool`, or MissingToolError naming its Debian package."""
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(tool, TOOL_PACKAGES.get(tool, tool), why)
    return path


def run(argv: list[str], *, check: bool = True, input: str | None = None,
        timeout: float = 60, cwd: Path | None = None, what: str = "") -> subprocess.CompletedProcess:
    """Run argv; on failure raise LabError with the command and its stderr (one line), after
    `what` (what the command was for) when given."""
    said = f"{what}: " if what else ""
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd)
    except FileNotFoundError:
        raise MissingToolError(argv[0], TOOL_PACKAGES.get(os.path.basename(argv[0]), argv[0])) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{said}{' '.join(argv[:6])}: timed out after {timeout:g}s") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().replace("\n", " | ")
        raise LabError(f"{said}{' '.join(argv[:8])}: exit {proc.returncode}: {err[:400]}")
    return proc


def ip_batch(netns: str | None, lines: list[str]) -> None:
    """Run many `ip` commands in one process (fast), in `netns` or the root namespace."""
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    run(argv, input="\n".join(lines) + "\n")


def netns_exec(netns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def sysctl(netns: str, settings: dict[str, str | int]) -> None:
    """Set sysctls inside a namespace by writing /proc/sys (one `sysctl -w` for all of them)."""
    if settings:
        run(netns_exec(netns, ["sysctl", "-q", "-w", *[f"{k}={v}" for k, v in settings.items()]]))


def list_netns() -> list[str]:
    proc = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def kill_pid(pid: int, grace: float = 2.0) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds. True if a process was there."""
    if not pid_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(40):
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
