"""The lab with sshd in its namespaces (lab/sshd.py), for tests/test_remote_*.py: throwaway keys
per run, torn down with the lab even when a test fails; and the process census that proves a
remote capture left nothing running on any host."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import require, require_tool, running_lab

# processes a capture must not leave in a lab namespace (the remote side of an agent)
AGENT_COMMANDS = {"tcpdump", "sh", "cat", "sshd", "sleep", "date"}


@contextmanager
def ssh_farm(prefix: str, **config: Any) -> Iterator[tuple[Any, Any]]:
    """(LabState, SshLab): an nft-director lab `prefix` with sshd in every namespace."""
    require(shutil.which("sshd") is not None or Path("/usr/sbin/sshd").exists(),
            "sshd not installed (apt-get install openssh-server)")
    require_tool("ssh", "openssh-client")
    require_tool("ssh-keygen", "openssh-client")
    from dr_inspect.lab.sshd import start_sshd, stop_sshd

    config.setdefault("director", "nft")
    config.setdefault("real_servers", 1)
    with running_lab(prefix, **config) as state:
        folder = Path(tempfile.mkdtemp(prefix=f"dri-{prefix}-ssh-"))
        lab = None
        try:
            lab = start_sshd(state, folder)
            yield state, lab
        finally:
            if lab is not None:
                stop_sshd(lab)
            shutil.rmtree(folder, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def leftovers(state: Any, lab: Any) -> list[str]:
    """Agent processes still running: in any lab namespace (besides the sshd listeners and the
    lab's own servers), and here (an ssh client using the lab's config)."""
    from dr_inspect.lab.sysrun import netns_pids

    keep = set(lab.pids.values()) | set(state.processes.values())
    found = []
    for name, ns in lab.netns.items():
        for pid in netns_pids(ns):
            if pid not in keep and _comm(pid) in AGENT_COMMANDS | {""} and Path(f"/proc/{pid}").exists():
                found.append(f"{name}: {_comm(pid)} (pid {pid}) {_cmdline(pid)[:80]}")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in keep and str(lab.folder) in _cmdline(int(entry.name)):
            if _comm(int(entry.name)) == "ssh":
                found.append(f"here: ssh (pid {entry.name})")
    return found


def wait_clean(state: Any, lab: Any, timeout: float = 25.0) -> list[str]:
    """leftovers() once it is empty, or what is left after `timeout` s (a dropped connection
    ends the remote side after sshd's ClientAlive checks)."""
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(state, lab)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def agent_pids(lab: Any, host: str, comm: str = "tcpdump") -> list[int]:
    from dr_inspect.lab.sysrun import netns_pids

    return [pid for pid in netns_pids(lab.netns[host]) if _comm(pid) == comm]


def wait_capturing(lab: Any, hosts: list[str], proc: subprocess.Popen, timeout: float = 90.0) -> None:
    """Until a tcpdump runs on each host (the agents started); fails if the CLI exits first."""
    deadline = time.monotonic() + timeout
    while not all(agent_pids(lab, h) for h in hosts):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no tcpdump on {hosts} after {timeout} s"
        time.sleep(0.1)
    time.sleep(1.0)   # tcpdump runs; give it the moment to open the interface


def cli(*args: str) -> subprocess.Popen:
    """`dr-inspect ARGS` as a user runs it (its own process, signals delivered to it)."""
    from dr_inspect.lab.build import python_env

    return subprocess.Popen([sys.executable, "-m", "dr_inspect", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=python_env())


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str, str]:
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def children(pid: int, comm: str | None = None) -> list[int]:
    """Live child processes of `pid` (named `comm`, when given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z" and comm in (None, _comm(int(entry.name))):
                found.append(int(entry.name))
    return found
