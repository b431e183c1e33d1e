"""Start the director VM (taps on the lab's bridges, boot, wait for ready, probe the control
channel), attach to one another process started, and tear one down from its state file."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from dr_inspect.errors import LabError
from dr_inspect.lab import initramfs, sysrun
from dr_inspect.lab.vm.assets import VmAssets, ensure_vm_assets
from dr_inspect.lab.vm.control import VmHandle
from dr_inspect.lab.vm.process import (QEMU, STATE_FILE, _console_tail, _failure_message,
                                       _netns_exists, _PidProcess, _read_state, _write_state,
                                       kvm_usable, qemu_argv, stop_vm_by_pid)
from dr_inspect.lab.vm.spec import IpvsVmSpec, tap_names

if TYPE_CHECKING:   # attach_vm reads a lab's state; the state module imports this package
    from dr_inspect.lab.state import LabState

KVM_TRIAL_SECONDS = 20.0  # auto mode: a KVM boot not ready by then is retried with tcg


def start_ipvs_vm(spec: IpvsVmSpec, *, netns: str, bridge_vip: str, bridge_rs: str, workdir: Path,
                  tap_prefix: str = "dri", timeout: float = 60.0, assets: VmAssets | None = None,
                  accel: str = "auto", memory_mb: int = 256) -> VmHandle:
    """Boot the director VM with its NICs on the two bridges of `netns`; return once it is ready.

    accel: "auto" (KVM when /dev/kvm is usable, else tcg), "kvm" or "tcg". Raises LabError with the
    console tail on failure or timeout (qemu killed, taps removed).
    """
    spec.validate()
    if accel not in ("auto", "kvm", "tcg"):
        raise LabError(f"accel {accel!r}: expected auto, kvm or tcg")
    taps = tap_names(tap_prefix)
    sysrun.need_tool("ip", "needed for the VM's tap devices")
    sysrun.need_tool(QEMU, "runs the IPVS director VM")
    if not _netns_exists(netns):
        raise LabError(f"network namespace {netns!r} does not exist")
    for bridge in (bridge_vip, bridge_rs):
        if sysrun.run(["ip", "-n", netns, "link", "show", "dev", bridge], check=False).returncode:
            raise LabError(f"bridge {bridge!r} not found in namespace {netns!r}")
    assets = assets or ensure_vm_assets()
    for asset in (assets.kernel, assets.initramfs):
        if not asset.is_file():
            raise LabError(f"VM asset {asset} missing: rebuild with ensure_vm_assets()")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    initrd = workdir / "initrd.img"
    initrd.write_bytes(assets.initramfs.read_bytes() + initramfs.config_initramfs(spec.config_sh(), spec.extra_sh()))
    control_socket = workdir / "ctl.sock"
    socket_dir = None
    if len(str(control_socket)) > 100:  # sun_path holds 108 bytes
        socket_dir = Path(tempfile.mkdtemp(prefix="dri-vm-"))
        control_socket = socket_dir / "ctl.sock"

    created: list[str] = []
    try:
        for tap, bridge in zip(taps, (bridge_vip, bridge_rs)):
            sysrun.run(["ip", "-n", netns, "tuntap", "add", "dev", tap, "mode", "tap"], timeout=30,
                       what=f"create tap {tap} in {netns}")
            created.append(tap)
            sysrun.run(["ip", "-n", netns, "link", "set", "dev", tap, "master", bridge, "up"],
                       timeout=30, what=f"attach {tap} to {bridge}")
        chosen = ("kvm" if kvm_usable() else "tcg") if accel == "auto" else accel
        # In auto mode a KVM boot that fails or stalls is retried once with tcg.
        first_timeout = min(timeout, KVM_TRIAL_SECONDS) if accel == "auto" and chosen == "kvm" else timeout
        try:
            return _boot(spec, assets, netns, taps, workdir, initrd, control_socket, socket_dir, chosen,
                         memory_mb, first_timeout, kvm_fallback=accel == "auto")
        except _KvmUnavailable as exc:
            if accel != "auto":
                raise LabError(f"qemu could not use KVM ({exc}); try accel='tcg'") from None
            return _boot(spec, assets, netns, taps, workdir, initrd, control_socket, socket_dir, "tcg",
                         memory_mb, timeout)
    except BaseException:
        for tap in created:
            sysrun.run(["ip", "-n", netns, "link", "del", "dev", tap], check=False)
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
        raise


class _KvmUnavailable(Exception):
    pass


def _boot(spec: IpvsVmSpec, assets: VmAssets, netns: str, taps: tuple[str, str], workdir: Path, initrd: Path,
          control_socket: Path, socket_dir: Path | None, accel: str, memory_mb: int, timeout: float,
          kvm_fallback: bool = False) -> VmHandle:
    console_log = workdir / "console.log"
    qemu_log = workdir / "qemu.log"
    for stale in (console_log, control_socket, workdir / "qemu.pid"):
        stale.unlink(missing_ok=True)
    argv = qemu_argv(kernel=assets.kernel, initrd=initrd, console_log=console_log, control_socket=control_socket,
                     pidfile=workdir / "qemu.pid", taps=taps,
                     macs=(spec.vip_mac_resolved, spec.dip_mac_resolved), accel=accel, memory_mb=memory_mb)
    started = time.monotonic()
    with open(qemu_log, "wb") as log:
        # `ip netns exec` execs qemu in place, so proc.pid is qemu's pid. New session: a Ctrl-C on
        # the terminal reaches the lab's Python (which tears down), not qemu directly.
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    handle = VmHandle(proc=proc, taps=taps, netns=netns, workdir=workdir, console_log=console_log,
                      control_socket=control_socket, socket_dir=None, spec=spec, accel=accel)
    state = {"pid": proc.pid, "taps": list(taps), "netns": netns, "workdir": str(workdir), "accel": accel,
             "console_log": str(console_log), "control_socket": str(control_socket), "boot_seconds": None,
             "spec": asdict(spec) | {"real_servers": list(spec.real_servers),
                                     "extra_commands": list(spec.extra_commands)}}
    _write_state(workdir, state)
    try:
        deadline = started + timeout
        while True:
            text = console_log.read_text(errors="replace") if console_log.exists() else ""
            if initramfs.READY_MARKER in text:
                break
            if initramfs.FAILED_MARKER in text:
                time.sleep(0.3)  # let init print the dmesg tail after its message
                raise LabError(f"director VM setup failed: {_failure_message(console_log)}")
            if proc.poll() is not None:
                qemu_out = qemu_log.read_text(errors="replace").strip()
                if accel == "kvm" and ("kvm" in qemu_out.lower() or kvm_fallback):
                    raise _KvmUnavailable(" | ".join(qemu_out.splitlines()[-2:]))
                raise LabError(f"qemu exited {proc.returncode} before the VM was ready: "
                               f"{' | '.join(qemu_out.splitlines()[-3:])} console: {_console_tail(console_log)}")
            if time.monotonic() > deadline:
                if accel == "kvm" and kvm_fallback:
                    raise _KvmUnavailable(f"not ready after {timeout:.0f} s")
                raise LabError(f"director VM not ready after {timeout:.0f} s ({accel}): {_console_tail(console_log)}")
            time.sleep(0.05)
        handle.boot_seconds = time.monotonic() - started
        _write_state(workdir, state | {"boot_seconds": round(handle.boot_seconds, 3)})
        handle._socket_dir = socket_dir
        _probe_control_channel(handle, attempts=5, each=4.0)
        return handle
    except BaseException:
        # Keep the taps (the caller's except removes them) and the socket dir; stop only qemu.
        handle._socket_dir = None
        handle.taps = []
        handle.stop()
        raise


def _probe_control_channel(handle: VmHandle, attempts: int, each: float) -> None:
    """Ask the VM's shell loop for a known answer; a lost first line is retried."""
    last: LabError | None = None
    for _ in range(attempts):
        try:
            probe = handle.execute("echo dri-ctl-ok", timeout=each)
        except LabError as exc:
            last = exc
            continue
        if probe.output.strip() == "dri-ctl-ok":
            return
        raise LabError(f"director VM control channel answered {probe.output!r}")
    raise LabError(f"director VM control channel does not answer: {last}")


def stop_vm_from_state(workdir: Path) -> None:
    """Tear down the VM recorded in workdir/vm-state.json (for a lab whose Python process died)."""
    state = _read_state(Path(workdir))
    pid, taps, netns = state.get("pid"), state.get("taps", []), state.get("netns", "")
    if not (pid is None or isinstance(pid, int)) or not isinstance(taps, list) or not isinstance(netns, str):
        raise LabError(f"{Path(workdir) / STATE_FILE}: cannot read VM state (bad pid/taps/netns)")
    stop_vm_by_pid(pid, [str(t) for t in taps], netns)


def attach_vm(state: LabState) -> VmHandle:
    """A VmHandle for the lab's running VM, from a process other than the one that started it."""
    rec = state.vm or {}
    if not rec.get("pid") or not rec.get("control_socket"):
        raise LabError(f"lab {state.prefix!r}: the director VM was not started completely; run lab down")
    if not sysrun.pid_alive(int(rec["pid"])):
        raise LabError(f"lab {state.prefix!r}: the director VM (pid {rec['pid']}) is not running; "
                       f"console: {rec.get('console_log', '?')}")
    spec = IpvsVmSpec(vip=state.vip, dip=state.host("director").interfaces["eth8"]["ip"], port=state.port)
    return VmHandle(proc=_PidProcess(int(rec["pid"])), taps=tuple(rec.get("taps", ())),  # type: ignore[arg-type]
                    netns=rec.get("netns", state.switch_netns), workdir=Path(rec["workdir"]),
                    console_log=Path(rec.get("console_log", "")), control_socket=Path(rec["control_socket"]),
                    socket_dir=None, spec=spec, accel=rec.get("accel", "?"))
