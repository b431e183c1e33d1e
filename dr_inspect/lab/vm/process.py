"""The qemu process of the director VM: its command line, the state file that lets another
process find it, telling our qemu from any other process, and stopping it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dr_inspect.errors import LabError
from dr_inspect.lab import initramfs, sysrun

QEMU = "qemu-system-x86_64"
QEMU_NAME_TAG = "dri-ipvs-vm"  # -name of our VMs; stop_vm_by_pid only kills processes carrying it
STATE_FILE = "vm-state.json"


def kvm_usable(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """/dev/kvm opens and the CPU shows hardware virtualisation (vmx/svm). Some sandboxes offer a
    /dev/kvm without either: qemu then crashes (-cpu host) or crawls (measured: no kernel output
    in 60 s), so those get tcg."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    try:
        flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.read_text().splitlines()
                      if ln.startswith("flags")), [])
    except OSError:
        return False
    return "vmx" in flags or "svm" in flags


def _qemu_opt(value: Path) -> str:
    """A path inside a qemu option string: commas are doubled."""
    return str(value).replace(",", ",,")


def qemu_argv(*, kernel: Path, initrd: Path, console_log: Path, control_socket: Path, pidfile: Path,
              taps: tuple[str, str], macs: tuple[str, str], accel: str, memory_mb: int = 256) -> list[str]:
    argv = [QEMU, "-name", QEMU_NAME_TAG, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-smp", "1", "-m", str(memory_mb),
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1 8250.nr_uarts=2",
            "-chardev", f"file,id=con,path={_qemu_opt(console_log)}", "-serial", "chardev:con",
            "-chardev", f"socket,id=ctl,path={_qemu_opt(control_socket)},server=on,wait=off",
            "-serial", "chardev:ctl",
            "-monitor", "none", "-pidfile", str(pidfile)]
    for i, (tap, mac) in enumerate(zip(taps, macs)):
        argv += ["-netdev", f"tap,id=n{i},ifname={tap},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=n{i},mac={mac}"]
    return argv


class _PidProcess:
    """The part of Popen a VmHandle uses, for a qemu that is not our child."""

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self) -> int | None:
        return None if _is_our_qemu(self.pid) else 0

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while _is_our_qemu(self.pid):
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired([QEMU], timeout or 0)
            time.sleep(0.05)
        return 0

    def kill(self) -> None:
        if _is_our_qemu(self.pid):
            sysrun.kill_pid(self.pid, grace=0)


def _console_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no console output)"
    tail = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) if tail else "(no console output)"


def _failure_message(console_log: Path) -> str:
    """init's failure message (from its marker to the dmesg tail), then the last kernel lines."""
    text = console_log.read_text(errors="replace")
    after = text.split(initramfs.FAILED_MARKER + ":", 1)[-1]
    message, _, dmesg = after.partition("--- dmesg tail ---")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    kernel = [ln.strip() for ln in dmesg.splitlines() if ln.strip()][-5:]
    return " | ".join(lines[:10]) + (f" (kernel: {' | '.join(kernel)})" if kernel else "")


def _netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def _write_state(workdir: Path, state: dict[str, object]) -> None:
    tmp = workdir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(workdir / STATE_FILE)


def _read_state(workdir: Path) -> dict[str, object]:
    state_file = workdir / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{state_file}: cannot read VM state ({exc})") from exc
    if not isinstance(state, dict):
        raise LabError(f"{state_file}: cannot read VM state (not a JSON object)")
    return state


def _qemu_cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _temp_socket_dir(cmdline: list[bytes]) -> Path | None:
    """The private temp dir of the control socket, when start_ipvs_vm had to make one."""
    for arg in cmdline:
        m = re.match(rb"^socket,id=ctl,path=(.+)/ctl\.sock,server=", arg)
        if m:
            folder = Path(m.group(1).decode().replace(",,", ","))
            if folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("dri-vm-"):
                return folder
    return None


def _is_our_qemu(pid: int) -> bool:
    cmdline = _qemu_cmdline(pid)
    return bool(cmdline) and b"qemu-system" in cmdline[0] and QEMU_NAME_TAG.encode() in cmdline


def stop_vm_by_pid(pid: int | None, taps: Sequence[str], netns: str) -> None:
    """Terminate a director VM started by start_ipvs_vm and remove its taps. Safe to call for a VM
    that is already gone (after a crash) or twice; a pid that is not one of our qemus is left alone."""
    socket_dir = _temp_socket_dir(_qemu_cmdline(pid)) if pid and _is_our_qemu(pid) else None
    if pid and _is_our_qemu(pid):
        sysrun.kill_pid(pid, grace=5.0)
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)
    if netns and _netns_exists(netns):
        for tap in taps:
            sysrun.run(["ip", "-n", netns, "link", "del", "dev", tap], check=False)
