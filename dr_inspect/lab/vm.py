"""IPVS director in a small qemu VM, for hosts whose kernel has no IPVS.

The VM boots the distribution's cloud kernel with an initramfs holding busybox-static, ipvsadm,
nft and the kernel modules (see initramfs.py). All of it comes from Debian packages fetched with
``apt-get download`` and unpacked with ``dpkg -x`` (nothing installed, no maintainer scripts run),
not from the host's own binaries: the kernel modules must match the downloaded kernel anyway, the
package versions give a cache key, and the result does not depend on what happens to be installed
on the host. The VM has no network but its two NICs, tap devices inside the lab's switch
namespace enslaved to the VIP-side and RS-side bridges.

Channels: ttyS0 is the console (file ``console.log``, carries the ready marker); ttyS1 is a unix
socket on the host, with a shell loop in the VM behind it: ``VmHandle.run``.
"""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

from typing import TYPE_CHECKING

from dr_inspect.errors import LabError, MissingToolError
from dr_inspect.lab import initramfs, sysrun

if TYPE_CHECKING:   # attach_vm reads a lab's state; the state module imports this one
    from dr_inspect.lab.state import LabState

CACHE_ENV = "DR_INSPECT_CACHE"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
VM_PACKAGES = ("busybox-static", "ipvsadm", "nftables")
# Bump when the initramfs layout or init script changes, so cached images are rebuilt.
ASSET_FORMAT = 2
QEMU = "qemu-system-x86_64"
QEMU_NAME_TAG = "dri-ipvs-vm"  # -name of our VMs; stop_vm_by_pid only kills processes carrying it
STATE_FILE = "vm-state.json"
KVM_TRIAL_SECONDS = 20.0  # auto mode: a KVM boot not ready by then is retried with tcg
MAX_COMMAND_BYTES = 2048  # ttyS1 is a raw tty: keep one command line well below its 4 KiB buffer
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


# --------------------------------------------------------------------------------------------
# Assets: kernel + initramfs, cached per package versions


@dataclass(frozen=True)
class VmAssets:
    directory: Path
    kernel: Path
    initramfs: Path
    kernel_release: str
    packages: dict[str, str]  # package -> version that built this entry


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "dr-inspect" / "vm"


def _need_tool(tool: str, package: str, why: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(tool, package, why)
    return path


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 300) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: '{' '.join(argv[:3])} ...' did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LabError(f"{what}: {' '.join(argv[:4])} ... exited {proc.returncode}: {' | '.join(tail)}")
    return proc.stdout


def parse_apt_depends(output: str) -> list[str]:
    """Real package names from `apt-cache depends [--recurse]` output (virtual <names> dropped)."""
    names: list[str] = []
    for line in output.splitlines():
        if not line or line[0].isspace():
            continue
        name = line.strip()
        if name.startswith("<") or name in names:
            continue
        names.append(name)
    return names


def parse_apt_depends_targets(output: str) -> list[str]:
    """The 'Depends:' targets listed under a package by `apt-cache depends`."""
    out = []
    for line in output.splitlines():
        m = re.match(r"^\s+\|?Depends:\s+(\S+)", line)
        if m and not m.group(1).startswith("<"):
            out.append(m.group(1))
    return out


def parse_apt_policy(output: str) -> dict[str, str]:
    """Package -> candidate version from `apt-cache policy a b ...`; '(none)' is left out."""
    versions: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1]
        elif current and line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
            if version and version != "(none)":
                versions[current] = version
    return versions


def resolve_vm_packages(update_if_unknown: bool = True) -> dict[str, str]:
    """The versioned kernel package and the closure of busybox-static/ipvsadm/nftables, with the
    candidate version of each. Runs `apt-get update` once if apt knows no kernel package."""
    _need_tool("apt-cache", "apt", "needed to fetch the VM's kernel and tools")

    def kernel_package() -> str | None:
        out = _run(["apt-cache", "depends", KERNEL_META_PACKAGE], "apt-cache depends")
        targets = [t for t in parse_apt_depends_targets(out) if t.startswith("linux-image-")]
        return targets[0] if targets else None

    try:
        kernel = kernel_package()
    except LabError:
        kernel = None
    if kernel is None and update_if_unknown:
        _need_tool("apt-get", "apt", "needed to fetch the VM's kernel and tools")
        _run(["apt-get", "update", "-qq"], "apt-get update", timeout=600)
        kernel = kernel_package()
    if kernel is None:
        raise LabError(f"apt knows no {KERNEL_META_PACKAGE}: check the Debian sources and run 'apt-get update'")
    closure_out = _run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *VM_PACKAGES],
        "apt-cache depends --recurse",
    )
    # Only ELF files get into the initramfs; packages of scripts (lsb-base, ...) cost nothing more
    # than a download, but keep the set small and obvious.
    wanted = [kernel] + [p for p in parse_apt_depends(closure_out) if p not in ("lsb-base", "sysvinit-utils")]
    versions = parse_apt_policy(_run(["apt-cache", "policy", *wanted], "apt-cache policy"))
    missing = [p for p in wanted if p not in versions]
    if missing:
        raise LabError(f"apt has no candidate version for {', '.join(missing)}: run 'apt-get update'")
    return {p: versions[p] for p in wanted}


APT_STATE_PATHS = (Path("/var/lib/apt/lists"), Path("/etc/apt"))


def apt_state_signature(paths: Sequence[Path] | None = None) -> str:
    """Changes when apt's package lists, sources or pins change (names, sizes, mtimes)."""
    items = []
    for base in APT_STATE_PATHS if paths is None else paths:
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            try:
                st = path.stat()
            except OSError:
                continue
            if path.is_file():
                items.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return sha256("\n".join(items).encode()).hexdigest()


def _resolve_vm_packages_cached(cache: Path) -> dict[str, str]:
    """resolve_vm_packages, remembered until apt's state changes (each apt-cache run takes 1-3 s)."""
    memo = cache / "resolved.json"
    signature = apt_state_signature()
    try:
        saved = json.loads(memo.read_text())
        if saved.get("apt_state") == signature and saved.get("format") == ASSET_FORMAT:
            return {str(k): str(v) for k, v in saved["packages"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    packages = resolve_vm_packages()
    # An apt-get update run by resolve_vm_packages changes the signature: take it afresh.
    record = {"apt_state": apt_state_signature(), "format": ASSET_FORMAT, "packages": packages}
    try:
        tmp = cache / f".resolved-{os.getpid()}.json"
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(memo)
    except OSError:
        pass  # a read-only cache still works, just slower
    return packages


def asset_key(packages: dict[str, str]) -> str:
    blob = json.dumps({"format": ASSET_FORMAT, "packages": sorted(packages.items())}).encode()
    return sha256(blob).hexdigest()[:16]


def _load_entry(entry: Path) -> VmAssets | None:
    meta_file = entry / "assets.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        assets = VmAssets(entry, entry / meta["kernel"], entry / meta["initramfs"], meta["kernel_release"],
                          dict(meta["packages"]))
    except (ValueError, KeyError, TypeError):
        return None
    return assets if assets.kernel.is_file() and assets.initramfs.is_file() else None


def ensure_vm_assets(cache_dir: Path | None = None) -> VmAssets:
    """Kernel and initramfs for the VM, built once per set of package versions and reused.

    Default cache: $DR_INSPECT_CACHE, else ~/.cache/dr-inspect/vm. When apt cannot resolve the
    packages (no lists, offline) the newest complete cache entry is used, if there is one.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"VM cache {cache}: {exc.strerror}") from exc
    try:
        packages = _resolve_vm_packages_cached(cache)
    except LabError:
        cached = sorted((a for a in map(_load_entry, cache.glob("*-*")) if a is not None),
                        key=lambda a: a.initramfs.stat().st_mtime)
        if cached:
            return cached[-1]
        raise
    kernel_pkg = next(p for p in packages if p.startswith("linux-image-"))
    entry = cache / f"{kernel_pkg.removeprefix('linux-image-')}-{asset_key(packages)}"
    found = _load_entry(entry)
    if found is not None:
        return found
    _need_tool("apt-get", "apt", "needed to fetch the VM's kernel and tools")
    _need_tool("dpkg", "dpkg", "needed to unpack the VM's packages")
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same entry
        found = _load_entry(entry)
        if found is not None:
            return found
        return _build_entry(entry, packages)


def _build_entry(entry: Path, packages: dict[str, str]) -> VmAssets:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=entry.parent))
    try:
        debs, root = work / "debs", work / "root"
        debs.mkdir()
        root.mkdir()
        # apt's _apt sandbox user cannot write into a root-owned temp dir: download as root.
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
              *(f"{p}={v}" for p, v in packages.items())], "apt-get download", cwd=debs, timeout=600)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(root)], f"dpkg -x {deb.name}")
        releases = sorted(p.name for p in (root / "lib" / "modules").glob("*") if p.is_dir())
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if len(releases) != 1 or not kernels:
            raise LabError(f"kernel package unpacked to {root}: expected one lib/modules/<release> and a vmlinuz")
        release = releases[0]
        out = work / "out"
        out.mkdir()
        shutil.copyfile(kernels[0], out / "vmlinuz")
        (out / "initramfs.img").write_bytes(initramfs.build_base_initramfs(root, release))
        meta = {"kernel": "vmlinuz", "initramfs": "initramfs.img", "kernel_release": release,
                "packages": packages, "format": ASSET_FORMAT}
        (out / "assets.json").write_text(json.dumps(meta, indent=1) + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        out.rename(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assets = _load_entry(entry)
    if assets is None:
        raise LabError(f"VM assets in {entry} incomplete after build")
    return assets


# --------------------------------------------------------------------------------------------
# The VM


@dataclass(frozen=True, kw_only=True)
class IpvsVmSpec:
    """What the director VM sets up before it reports ready."""

    vip: str
    dip: str
    real_servers: Sequence[str] = field(default_factory=tuple)
    port: int = 80
    vip_prefix: int = 24
    dip_prefix: int = 24
    scheduler: str = "rr"
    vip_ifname: str = "eth0"
    dip_ifname: str = "eth1"
    vip_mac: str | None = None  # default: derived from the VIP, locally administered
    dip_mac: str | None = None
    extra_commands: Sequence[str] = field(default_factory=tuple)  # shell lines run after setup

    @property
    def vip_mac_resolved(self) -> str:
        return (self.vip_mac or _derived_mac("vip", self.vip)).lower()

    @property
    def dip_mac_resolved(self) -> str:
        return (self.dip_mac or _derived_mac("dip", self.dip)).lower()

    def validate(self) -> None:
        """Raise LabError naming the first bad field."""
        for name in ("vip", "dip"):
            _ipv4(getattr(self, name), name)
        if isinstance(self.real_servers, str):
            raise LabError("IpvsVmSpec.real_servers: expected a list of addresses, got a string")
        for rs in self.real_servers:
            _ipv4(rs, "real_servers")
        if len(set(self.real_servers)) != len(self.real_servers):
            raise LabError(f"IpvsVmSpec.real_servers: duplicate address in {list(self.real_servers)}")
        if self.vip == self.dip or self.dip in self.real_servers:
            raise LabError(f"IpvsVmSpec.dip: {self.dip} is also the VIP or a real server")
        for name in ("vip_prefix", "dip_prefix"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 32:
                raise LabError(f"IpvsVmSpec.{name}: {value!r} is not a prefix length 0..32")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise LabError(f"IpvsVmSpec.port: {self.port!r} is not a TCP port 1..65535")
        if self.scheduler not in initramfs.IPVS_SCHEDULERS:
            raise LabError(f"IpvsVmSpec.scheduler: {self.scheduler!r} is not one of "
                           f"{', '.join(initramfs.IPVS_SCHEDULERS)}")
        for name in ("vip_ifname", "dip_ifname"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _IFNAME.match(value) or value.startswith("dritmp"):
                raise LabError(f"IpvsVmSpec.{name}: {value!r} is not a valid interface name")
        if self.vip_ifname == self.dip_ifname:
            raise LabError("IpvsVmSpec: vip_ifname and dip_ifname are the same")
        for name in ("vip_mac", "dip_mac"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise LabError(f"IpvsVmSpec.{name}: {getattr(self, name)!r} is not a MAC address string")
        for name, mac in (("vip_mac", self.vip_mac_resolved), ("dip_mac", self.dip_mac_resolved)):
            if not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise LabError(f"IpvsVmSpec.{name}: {mac!r} is not a unicast MAC address")
        if self.vip_mac_resolved == self.dip_mac_resolved:
            raise LabError("IpvsVmSpec: vip_mac and dip_mac are the same")
        if isinstance(self.extra_commands, str):
            raise LabError("IpvsVmSpec.extra_commands: expected a list of shell lines, got a string")
        for line in self.extra_commands:
            if not isinstance(line, str) or "\0" in line:
                raise LabError(f"IpvsVmSpec.extra_commands: invalid line {line!r}")

    def config_sh(self) -> str:
        """The VM's /etc/dri/vm.conf (sourced by init)."""
        values = {
            "VIP": self.vip, "VIP_PREFIX": str(self.vip_prefix), "PORT": str(self.port),
            "DIP": self.dip, "DIP_PREFIX": str(self.dip_prefix), "SCHEDULER": self.scheduler,
            "REAL_SERVERS": " ".join(self.real_servers), "VIP_IF": self.vip_ifname,
            "DIP_IF": self.dip_ifname, "VIP_MAC": self.vip_mac_resolved, "DIP_MAC": self.dip_mac_resolved,
        }
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())

    def extra_sh(self) -> str:
        return "".join(f"{line}\n" for line in self.extra_commands)


def _ipv4(value: object, name: str) -> None:
    try:
        ipaddress.IPv4Address(value)  # type: ignore[arg-type]
    except (ipaddress.AddressValueError, ValueError, TypeError) as exc:
        raise LabError(f"IpvsVmSpec.{name}: {value!r} is not an IPv4 address") from exc


def _derived_mac(role: str, address: str) -> str:
    digest = sha256(f"{role}:{address}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def tap_names(tap_prefix: str) -> tuple[str, str]:
    """(VIP-side tap, RS-side tap) in the switch namespace."""
    taps = (f"{tap_prefix}-vm-vip", f"{tap_prefix}-vm-dip")
    for tap in taps:
        if not _IFNAME.match(tap):
            raise LabError(f"tap name {tap!r} (from tap_prefix {tap_prefix!r}) is not a valid interface name "
                           "(at most 15 characters)")
    return taps


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
            os.kill(self.pid, signal.SIGKILL)


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


def _ip(argv: list[str], what: str) -> None:
    _run(["ip", *argv], what, timeout=30)


def _netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


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
    _need_tool("ip", "iproute2", "needed for the VM's tap devices")
    _need_tool(QEMU, "qemu-system-x86", "runs the IPVS director VM")
    if not _netns_exists(netns):
        raise LabError(f"network namespace {netns!r} does not exist")
    for bridge in (bridge_vip, bridge_rs):
        if subprocess.run(["ip", "-n", netns, "link", "show", "dev", bridge], capture_output=True).returncode:
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
            _ip(["-n", netns, "tuntap", "add", "dev", tap, "mode", "tap"], f"create tap {tap} in {netns}")
            created.append(tap)
            _ip(["-n", netns, "link", "set", "dev", tap, "master", bridge, "up"], f"attach {tap} to {bridge}")
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
            subprocess.run(["ip", "-n", netns, "link", "del", "dev", tap], capture_output=True)
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


def _is_our_qemu(pid: int) -> bool:
    cmdline = _qemu_cmdline(pid)
    return bool(cmdline) and b"qemu-system" in cmdline[0] and QEMU_NAME_TAG.encode() in cmdline


def stop_vm_by_pid(pid: int | None, taps: Sequence[str], netns: str) -> None:
    """Terminate a director VM started by start_ipvs_vm and remove its taps. Safe to call for a VM
    that is already gone (after a crash) or twice; a pid that is not one of our qemus is left alone."""
    socket_dir = _temp_socket_dir(_qemu_cmdline(pid)) if pid and _is_our_qemu(pid) else None
    if pid and _is_our_qemu(pid):
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _is_our_qemu(pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if socket_dir is not None:
        shutil.rmtree(socket_dir, ignore_errors=True)
    if netns and _netns_exists(netns):
        for tap in taps:
            subprocess.run(["ip", "-n", netns, "link", "del", "dev", tap], capture_output=True)


def stop_vm_from_state(workdir: Path) -> None:
    """Tear down the VM recorded in workdir/vm-state.json (for a lab whose Python process died)."""
    state = _read_state(Path(workdir))
    pid, taps, netns = state.get("pid"), state.get("taps", []), state.get("netns", "")
    if not (pid is None or isinstance(pid, int)) or not isinstance(taps, list) or not isinstance(netns, str):
        raise LabError(f"{Path(workdir) / STATE_FILE}: cannot read VM state (bad pid/taps/netns)")
    stop_vm_by_pid(pid, [str(t) for t in taps], netns)


class _RecordedProcess:
    """Duck-typed Popen for a VM started by another process (poll/wait/kill by pid)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return None if sysrun.pid_alive(self.pid) else 0

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while sysrun.pid_alive(self.pid):
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["qemu"], timeout or 0)
            time.sleep(0.05)
        return 0

    def kill(self) -> None:
        sysrun.kill_pid(self.pid, grace=0)


def attach_vm(state: LabState) -> VmHandle:
    """A VmHandle for the lab's running VM, from a process other than the one that started it."""
    rec = state.vm or {}
    if not rec.get("pid") or not rec.get("control_socket"):
        raise LabError(f"lab {state.prefix!r}: the director VM was not started completely; run lab down")
    if not sysrun.pid_alive(int(rec["pid"])):
        raise LabError(f"lab {state.prefix!r}: the director VM (pid {rec['pid']}) is not running; "
                       f"console: {rec.get('console_log', '?')}")
    spec = IpvsVmSpec(vip=state.vip, dip=state.host("director").interfaces["eth8"]["ip"], port=state.port)
    return VmHandle(proc=_RecordedProcess(int(rec["pid"])), taps=tuple(rec.get("taps", ())),  # type: ignore[arg-type]
                    netns=rec.get("netns", state.switch_netns), workdir=Path(rec["workdir"]),
                    console_log=Path(rec.get("console_log", "")), control_socket=Path(rec["control_socket"]),
                    socket_dir=None, spec=spec, accel=rec.get("accel", "?"))
