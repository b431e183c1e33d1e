"""The IPVS director VM (dr_inspect.lab.vm, dr_inspect.lab.initramfs).

Pure parts (ELF/modinfo parsing, module order, cpio, apt output parsing, spec validation) run
anywhere. The VM tests need root, qemu and the Debian packages (downloaded into the cache on first
use); they build their own namespaces with the prefix "t3v" and remove them, the VM and the taps
in a finally, also when a check fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dr_inspect.errors import DrInspectError, LabError, MissingToolError
from dr_inspect.lab import initramfs
from dr_inspect.lab.vm import assets as asset_cache
from dr_inspect.lab.vm import (
    IpvsVmSpec,
    VmAssets,
    VmHandle,
    ensure_vm_assets,
    kvm_usable,
    parse_apt_depends,
    parse_apt_depends_targets,
    parse_apt_policy,
    start_ipvs_vm,
    stop_vm_by_pid,
    stop_vm_from_state,
    tap_names,
)
from conftest import require, require_root_netns, require_tool

NS_SW, NS_CL, NS_RS = "t3v-sw", "t3v-cl", "t3v-rs"
VIP, DIP, RIP, CLIENT_IP, RS_VIP_SIDE_IP = "192.168.7.33", "192.168.88.10", "192.168.88.20", "192.168.7.10", "192.168.7.20"
PORT = 8000
VM_VIP_MAC, VM_DIP_MAC = "02:33:00:00:00:07", "02:33:00:00:00:08"
RS_RIP_MAC, RS_VIP_SIDE_MAC, CLIENT_MAC = "02:20:00:00:00:88", "02:20:00:00:00:07", "02:10:00:00:00:07"
BANNER = b"hello from rs-20\n"


def _spec(**overrides: object) -> IpvsVmSpec:
    fields: dict[str, object] = dict(vip=VIP, vip_prefix=24, port=PORT, dip=DIP, dip_prefix=24, real_servers=[RIP],
                                     scheduler="rr", vip_ifname="eth7", dip_ifname="eth8", vip_mac=VM_VIP_MAC,
                                     dip_mac=VM_DIP_MAC, extra_commands=[])
    fields.update(overrides)
    return IpvsVmSpec(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Pure parts


def _parse_newc(archive: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)); an independent reader for the writer."""
    out = {}
    pos = 0
    while True:
        assert archive[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(archive[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = fields[1], fields[6], fields[9], fields[10], fields[11]
        name_start = pos + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        data_start = (name_start + namesize + 3) & ~3
        data = archive[data_start : data_start + filesize]
        pos = (data_start + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data, (rmaj, rmin))


def test_cpio_newc_round_trip_with_parents_symlink_and_device() -> None:
    archive = initramfs.cpio_newc([
        initramfs.CpioEntry("usr/sbin/tool", "file", 0o755, b"#!/bin/sh\necho hi\n"),
        initramfs.CpioEntry("bin/sh", "symlink", 0o777, b"busybox"),
        initramfs.CpioEntry("dev/console", "chardev", 0o600, rdev=(5, 1)),
        initramfs.CpioEntry("odd", "file", 0o644, b"abc"),  # length not a multiple of 4
    ])
    members = _parse_newc(archive)
    assert members["usr/sbin/tool"][0] == 0o100755 and members["usr/sbin/tool"][1] == b"#!/bin/sh\necho hi\n"
    assert members["usr"][0] == 0o040755 and members["usr/sbin"][0] == 0o040755
    assert members["bin/sh"][0] == 0o120777 and members["bin/sh"][1] == b"busybox"
    assert members["dev/console"][0] == 0o020600 and members["dev/console"][2] == (5, 1)
    assert members["odd"][1] == b"abc"
    names = list(members)
    assert names.index("usr") < names.index("usr/sbin") < names.index("usr/sbin/tool")


def test_cpio_rejects_escaping_paths() -> None:
    with pytest.raises(LabError, match="invalid member path"):
        initramfs.cpio_newc([initramfs.CpioEntry("../etc/passwd", "file", 0o644, b"x")])


def test_cpio_is_accepted_by_busybox() -> None:
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox not installed (apt-get install busybox-static)")
    archive = initramfs.cpio_newc([initramfs.CpioEntry("a/b/c.txt", "file", 0o644, b"payload\n")])
    listing = subprocess.run([busybox, "cpio", "-t"], input=archive, capture_output=True, check=True).stdout.decode()
    assert listing.split() == ["a", "a/b", "a/b/c.txt"]


def test_module_load_order_puts_dependencies_first() -> None:
    depends = {"virtio_net": ["net_failover", "virtio", "virtio_ring"], "net_failover": ["failover"],
               "failover": [], "virtio": ["virtio_ring"], "virtio_ring": [], "ip_vs": ["nf_conntrack", "crc"],
               "nf_conntrack": ["nf_defrag_ipv4"], "nf_defrag_ipv4": []}
    order = initramfs.module_load_order(["virtio_net", "ip_vs"], depends, builtin=["crc"])
    assert set(order) == set(depends) and "crc" not in order
    for mod, deps in depends.items():
        for dep in deps:
            if dep in depends:
                assert order.index(dep) < order.index(mod), (dep, mod, order)


def test_module_load_order_errors() -> None:
    with pytest.raises(LabError, match="ip_vs_rr.*not in the kernel package"):
        initramfs.module_load_order(["ip_vs_rr"], {})
    with pytest.raises(LabError, match="needed by ip_vs"):
        initramfs.module_load_order(["ip_vs"], {"ip_vs": ["missing_mod"]})
    with pytest.raises(LabError, match="cycle: a -> b -> a"):
        initramfs.module_load_order(["a"], {"a": ["b"], "b": ["a"]})


def test_elf_needed_and_interpreter_on_host_binaries() -> None:
    ls_bytes = Path("/bin/ls").read_bytes()
    assert "libc.so.6" in initramfs.elf_needed(ls_bytes)
    assert initramfs.elf_interpreter(ls_bytes) == "/lib64/ld-linux-x86-64.so.2"
    readelf = shutil.which("readelf")
    if readelf:  # cross-check against binutils where present
        out = subprocess.run([readelf, "-d", "/bin/ls"], capture_output=True, text=True, check=True).stdout
        expected = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
        assert initramfs.elf_needed(ls_bytes) == expected
    with pytest.raises(ValueError, match="not an ELF"):
        initramfs.elf_needed(b"#!/bin/sh\n")


def test_modinfo_depends_reads_the_modinfo_section() -> None:
    # A minimal relocatable ELF with a .modinfo and a .shstrtab section, built here.
    modinfo = b"license=GPL\0depends=nf_conntrack,libcrc32c,nf-defrag-ipv6\0vermagic=6.1\0"
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    body_off = 64
    modinfo_off, shstr_off = body_off, body_off + len(modinfo)
    sh_off = (shstr_off + len(shstrtab) + 7) & ~7
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<QQ", header, 0x20, 0, sh_off)
    struct.pack_into("<HHHHH", header, 0x36, 56, 0, 64, 3, 2)
    sections = bytearray(64)  # null section
    sections += struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, modinfo_off, len(modinfo), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)
    blob = bytes(header) + modinfo + shstrtab
    blob += b"\0" * (sh_off - len(blob)) + bytes(sections)
    assert initramfs.modinfo_depends(blob) == ["nf_conntrack", "libcrc32c", "nf_defrag_ipv6"]
    assert initramfs.module_name(Path("kernel/net/nf-defrag-ipv6.ko.xz")) == "nf_defrag_ipv6"


def test_apt_output_parsers() -> None:
    depends = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n"
    assert parse_apt_depends_targets(depends) == ["linux-image-6.1.0-57-cloud-amd64"]
    recurse = "ipvsadm\n  Depends: libc6\n  Depends: <lvs>\nlibc6\n  Depends: libgcc-s1\n<lvs>\nlibgcc-s1\n"
    assert parse_apt_depends(recurse) == ["ipvsadm", "libc6", "libgcc-s1"]
    policy = ("ipvsadm:\n  Installed: 1:1.31-1+b1\n  Candidate: 1:1.31-1+b1\n  Version table:\n"
              "foo:\n  Installed: (none)\n  Candidate: (none)\n")
    assert parse_apt_policy(policy) == {"ipvsadm": "1:1.31-1+b1"}


@pytest.mark.parametrize("override, message", [
    ({"vip": "300.1.1.1"}, "vip"),
    ({"dip": "not-an-ip"}, "dip"),
    ({"real_servers": "192.168.88.20"}, "real_servers"),
    ({"real_servers": ["192.168.88.20", "x"]}, "real_servers"),
    ({"real_servers": ["192.168.88.20", "192.168.88.20"]}, "duplicate"),
    ({"dip": VIP}, "also the VIP"),
    ({"vip_prefix": 33}, "vip_prefix"),
    ({"port": 0}, "port"),
    ({"scheduler": "random"}, "scheduler"),
    ({"vip_ifname": "a-name-longer-than-15"}, "vip_ifname"),
    ({"dip_ifname": "eth7"}, "same"),
    ({"vip_mac": "03:00:00:00:00:01"}, "vip_mac"),
    ({"dip_mac": VM_VIP_MAC}, "same"),
    ({"dip_mac": 42}, "dip_mac"),
    ({"extra_commands": "nft list ruleset"}, "extra_commands"),
])
def test_bad_spec_is_a_lab_error(override: dict[str, object], message: str, tmp_path: Path) -> None:
    spec = _spec(**override)
    with pytest.raises(LabError, match=message):
        spec.validate()
    # start_ipvs_vm validates before touching anything: no namespace needed for this.
    with pytest.raises(LabError, match=message):
        start_ipvs_vm(spec, netns="t3v-does-not-exist", bridge_vip="br_e", bridge_rs="br_lvs", workdir=tmp_path)


def test_config_is_shell_quoted_and_macs_default_to_derived_ones() -> None:
    spec = IpvsVmSpec(vip=VIP, dip=DIP, real_servers=[RIP, "192.168.88.21"], port=PORT)
    spec.validate()
    conf = spec.config_sh()
    assert "REAL_SERVERS='192.168.88.20 192.168.88.21'\n" in conf and f"PORT={PORT}\n" in conf
    assert spec.vip_mac_resolved.startswith("02:") and spec.vip_mac_resolved != spec.dip_mac_resolved
    assert tap_names("t3v") == ("t3v-vm-vip", "t3v-vm-dip")
    with pytest.raises(LabError, match="15 characters"):
        tap_names("a-very-long-prefix")


def test_kvm_needs_hardware_virtualisation_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor avx2\n")
    assert kvm_usable(cpuinfo) is False  # whatever /dev/kvm says: without vmx/svm qemu crawls or crashes
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vme svm sse2\n")
    assert kvm_usable(cpuinfo) is os.access("/dev/kvm", os.R_OK | os.W_OK)


def test_package_resolution_is_remembered_until_apt_state_changes(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "bookworm_Packages").write_text("v1")
    monkeypatch.setattr(asset_cache, "APT_STATE_PATHS", (lists,))
    calls: list[int] = []

    def fake_resolve() -> dict[str, str]:
        calls.append(1)
        return {"linux-image-6.1.0-99-cloud-amd64": f"6.1.{len(calls)}", "ipvsadm": "1:1.31-1"}

    monkeypatch.setattr(asset_cache, "resolve_vm_packages", fake_resolve)
    first = asset_cache._resolve_vm_packages_cached(tmp_path)
    assert asset_cache._resolve_vm_packages_cached(tmp_path) == first and len(calls) == 1
    (lists / "bookworm_Packages").write_text("v2 after apt-get update")
    second = asset_cache._resolve_vm_packages_cached(tmp_path)
    assert len(calls) == 2 and second["linux-image-6.1.0-99-cloud-amd64"] == "6.1.2"
    assert asset_cache.asset_key(first) != asset_cache.asset_key(second)


def test_missing_tools_name_the_debian_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(MissingToolError, match="apt-get install apt"):
        ensure_vm_assets(tmp_path / "cache")
    with pytest.raises(MissingToolError, match="apt-get install (iproute2|qemu-system-x86)"):
        start_ipvs_vm(_spec(), netns="t3v-none", bridge_vip="br_e", bridge_rs="br_lvs", workdir=tmp_path,
                      assets=VmAssets(tmp_path, tmp_path / "k", tmp_path / "i", "x", {}))


def test_missing_namespace_and_missing_assets_are_lab_errors(tmp_path: Path) -> None:
    require_root_netns()
    require_tool("qemu-system-x86_64", "qemu-system-x86")
    missing = VmAssets(tmp_path, tmp_path / "vmlinuz", tmp_path / "initramfs.img", "x", {})
    with pytest.raises(LabError, match="namespace 't3v-none' does not exist"):
        start_ipvs_vm(_spec(), netns="t3v-none", bridge_vip="br_e", bridge_rs="br_lvs", workdir=tmp_path,
                      assets=missing)
    with _namespaces({NS_SW: []}):
        _sh(["ip", "-n", NS_SW, "link", "add", "br_e", "type", "bridge"])
        with pytest.raises(LabError, match="bridge 'br_lvs' not found"):
            start_ipvs_vm(_spec(), netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs", workdir=tmp_path,
                          assets=missing)
        _sh(["ip", "-n", NS_SW, "link", "add", "br_lvs", "type", "bridge"])
        with pytest.raises(LabError, match="VM asset .*vmlinuz missing"):
            start_ipvs_vm(_spec(), netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs", workdir=tmp_path,
                          assets=missing)


def test_stop_by_pid_leaves_foreign_processes_alone() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        stop_vm_by_pid(proc.pid, [], "")
        assert proc.poll() is None, "a process that is not our qemu must not be killed"
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------------
# The VM in a namespace topology


def _sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


class _namespaces:
    """Create the named namespaces (removing leftovers of a crashed run first), delete on exit."""

    def __init__(self, names: dict[str, list[str]]):
        self.names = list(names)

    def __enter__(self) -> _namespaces:
        self._delete()
        for name in self.names:
            _sh(["ip", "netns", "add", name])
            _sh(["ip", "-n", name, "link", "set", "lo", "up"])
        return self

    def __exit__(self, *exc: object) -> None:
        self._delete()

    def _delete(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _in(ns: str, *argv: str) -> None:
    _sh(["ip", "netns", "exec", ns, *argv])


def _build_topology() -> None:
    """Switch ns with br_e/br_lvs; client on br_e; one real server on both, VIP on lo /32."""
    for br in ("br_e", "br_lvs"):
        _sh(["ip", "-n", NS_SW, "link", "add", br, "type", "bridge"])
        _sh(["ip", "-n", NS_SW, "link", "set", br, "up"])
    links = [  # (switch-side name, bridge, ns, ns-side name, mac, address)
        ("t3v-cl0", "br_e", NS_CL, "eth0", CLIENT_MAC, f"{CLIENT_IP}/24"),
        ("t3v-rs0", "br_lvs", NS_RS, "eth0", RS_RIP_MAC, f"{RIP}/24"),
        ("t3v-rs1", "br_e", NS_RS, "eth1", RS_VIP_SIDE_MAC, f"{RS_VIP_SIDE_IP}/24"),
    ]
    for sw_name, bridge, ns, name, mac, addr in links:
        _sh(["ip", "-n", NS_SW, "link", "add", sw_name, "type", "veth", "peer", "name", name, "netns", ns])
        _sh(["ip", "-n", NS_SW, "link", "set", sw_name, "master", bridge, "up"])
        _sh(["ip", "-n", ns, "link", "set", name, "address", mac])
        _sh(["ip", "-n", ns, "addr", "add", addr, "dev", name])
        _sh(["ip", "-n", ns, "link", "set", name, "up"])
    _sh(["ip", "-n", NS_RS, "addr", "add", f"{VIP}/32", "dev", "lo"])
    for key, value in [("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2"),
                       ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.eth0.rp_filter", "0"),
                       ("net.ipv4.conf.eth1.rp_filter", "0")]:
        _in(NS_RS, "sysctl", "-q", "-w", f"{key}={value}")


SERVER_CODE = f"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT})); s.listen(8); s.settimeout(120)
print("listening", flush=True)
for _ in range(8):
    try:
        c, peer = s.accept()
    except TimeoutError:
        break
    c.sendall({BANNER!r}); c.close()
"""

CLIENT_CODE = f"""
import socket
c = socket.create_connection(("{VIP}", {PORT}), timeout=15)
data = b""
while True:
    chunk = c.recv(100)
    if not chunk:
        break
    data += chunk
print(data.decode(), end="")
"""


class _Capture:
    """tcpdump on one bridge of the switch namespace, writing a pcap; stopped on exit."""

    def __init__(self, bridge: str, path: Path):
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_SW, "tcpdump", "-i", bridge, "-n", "-U", "--immediate-mode", "-Z", "root",
             "-w", str(path), "tcp", "port", str(PORT)],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on br_lvs, ..." once the capture is armed
        assert "listening on" in line, f"tcpdump did not start: {line}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def vm_assets() -> VmAssets:
    require_root_netns()
    require_tool("qemu-system-x86_64", "qemu-system-x86")
    require_tool("apt-get", "apt")
    require_tool("dpkg", "dpkg")
    return ensure_vm_assets()


def test_assets_are_cached_and_hold_the_modules(vm_assets: VmAssets) -> None:
    again = ensure_vm_assets()
    assert again.directory == vm_assets.directory
    assert again.initramfs.stat().st_mtime == vm_assets.initramfs.stat().st_mtime
    assert any(p.startswith("linux-image-") and p.endswith("-cloud-amd64") for p in vm_assets.packages)
    import gzip
    members = _parse_newc(gzip.decompress(vm_assets.initramfs.read_bytes()))
    order = members["etc/dri/modules.load"][1].decode().split()
    for module in ("virtio_ring.ko", "virtio.ko", "virtio_net.ko", "ip_vs.ko", "ip_vs_rr.ko", "nf_conntrack.ko",
                   "nf_tables.ko", "nft_ct.ko"):
        assert module in order, module
        assert f"lib/modules/{vm_assets.kernel_release}/{module}" in members
    assert order.index("virtio_ring.ko") < order.index("virtio.ko") < order.index("virtio_net.ko")
    assert order.index("nf_conntrack.ko") < order.index("ip_vs.ko") < order.index("ip_vs_rr.ko")
    for program in ("bin/busybox", "sbin/ipvsadm", "usr/sbin/nft", "lib64/ld-linux-x86-64.so.2",
                    "lib/x86_64-linux-gnu/libnl-genl-3.so.200", "lib/x86_64-linux-gnu/libpopt.so.0"):
        assert program in members, program


def test_director_vm_forwards_to_the_real_server(vm_assets: VmAssets, tmp_path: Path) -> None:
    require_tool("tcpdump", "tcpdump")
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    vm = None
    server = None
    captures: list[_Capture] = []
    with _namespaces({NS_SW: [], NS_CL: [], NS_RS: []}):
        try:
            _build_topology()
            server = subprocess.Popen(["ip", "netns", "exec", NS_RS, sys.executable, "-c", SERVER_CODE],
                                      stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None and server.stdout.readline().strip() == "listening"
            vm = start_ipvs_vm(_spec(), netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs", tap_prefix="t3v",
                               workdir=tmp_path / "vm", timeout=90)
            print(f"director VM ready in {vm.boot_seconds:.2f} s ({vm.accel})")
            state = json.loads((tmp_path / "vm" / "vm-state.json").read_text())
            assert state["pid"] == vm.pid and state["taps"] == vm.taps == ["t3v-vm-vip", "t3v-vm-dip"]
            assert vm.boot_seconds > 0 and vm.console_log.is_file()

            table = vm.run("ipvsadm -Ln")
            assert f"TCP  {VIP}:{PORT} rr" in table, table
            assert f"-> {RIP}:{PORT}" in table and "Route" in table, table
            links = vm.run("ip -o link show")
            assert "eth7:" in links and VM_VIP_MAC in links and "eth8:" in links and VM_DIP_MAC in links, links
            assert vm.run("cat /proc/sys/net/ipv4/conf/all/rp_filter").strip() == "0"
            assert vm.run("cat /proc/sys/net/ipv4/conf/eth7/rp_filter").strip() == "0"
            failed = vm.execute("echo out; echo err >&2; exit 3")
            assert failed.returncode == 3 and failed.output.split() == ["out", "err"]
            with pytest.raises(LabError, match="exited 3"):
                vm.run("exit 3")

            captures = [_Capture("br_e", tmp_path / "br_e.pcap"), _Capture("br_lvs", tmp_path / "br_lvs.pcap")]
            answer = _sh(["ip", "netns", "exec", NS_CL, sys.executable, "-c", CLIENT_CODE], timeout=60).stdout
            assert answer.encode() == BANNER
            stats = vm.run(f"ipvsadm -Ln --stats -t {VIP}:{PORT}")
            assert f"-> {RIP}:{PORT}" in stats, stats
            # Give tcpdump a moment to write the last frames before stopping it.
            time.sleep(0.5)
        finally:
            for capture in captures:
                capture.stop()
            if vm is not None:
                vm.stop()
                vm.stop()  # idempotent
            if server is not None:
                server.kill()
                server.wait()
        assert vm is not None
        # Taps gone after stop, VM process gone.
        remaining = _sh(["ip", "-n", NS_SW, "-o", "link", "show"]).stdout
        assert "t3v-vm-" not in remaining, remaining
        assert not Path(f"/proc/{vm.pid}").exists() or b"qemu" not in Path(f"/proc/{vm.pid}/cmdline").read_bytes()

    def syns(pcap: Path) -> list:
        return [p for p in rdpcap(str(pcap)) if TCP in p and p[TCP].flags == "S" and p[IP].dst == VIP]

    client_syns = syns(tmp_path / "br_e.pcap")
    forwarded = syns(tmp_path / "br_lvs.pcap")
    assert client_syns, "client SYN not seen on br_e"
    assert forwarded, "forwarded SYN not seen on br_lvs"
    original = client_syns[0]
    copy = next(p for p in forwarded if p[TCP].seq == original[TCP].seq)
    assert original[Ether].src == CLIENT_MAC and original[Ether].dst == VM_VIP_MAC
    assert copy[Ether].dst == RS_RIP_MAC, "director must address the real server's MAC"
    assert copy[Ether].src == VM_DIP_MAC, "director must send from its DIP-side MAC"
    assert copy[IP].ttl == original[IP].ttl - 1, (original[IP].ttl, copy[IP].ttl)
    assert (copy[IP].src, copy[IP].dst, copy[IP].id, copy[TCP].sport, copy[TCP].dport) == \
        (original[IP].src, original[IP].dst, original[IP].id, original[TCP].sport, original[TCP].dport)
    # The reply bypasses the director: SYN-ACK from the VIP leaves the real server's VIP-side MAC on br_e.
    synacks = [p for p in rdpcap(str(tmp_path / "br_e.pcap"))
               if TCP in p and p[TCP].flags == "SA" and p[IP].src == VIP]
    assert synacks and synacks[0][Ether].src == RS_VIP_SIDE_MAC


def test_failing_extra_command_is_a_lab_error_with_console_tail(vm_assets: VmAssets, tmp_path: Path) -> None:
    with _namespaces({NS_SW: []}):
        for br in ("br_e", "br_lvs"):
            _sh(["ip", "-n", NS_SW, "link", "add", br, "type", "bridge"])
        spec = _spec(extra_commands=["nft add table inet dri", "false-command-that-does-not-exist"])
        with pytest.raises(LabError, match="extra commands.*false-command-that-does-not-exist") as info:
            start_ipvs_vm(spec, netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs", tap_prefix="t3v",
                          workdir=tmp_path / "vm", timeout=90)
        assert isinstance(info.value, DrInspectError)
        remaining = _sh(["ip", "-n", NS_SW, "-o", "link", "show"]).stdout
        assert "t3v-vm-" not in remaining, "taps must be removed after a failed start"
        state = json.loads((tmp_path / "vm" / "vm-state.json").read_text())
        assert not Path(f"/proc/{state['pid']}/cmdline").exists() or \
            b"qemu" not in Path(f"/proc/{state['pid']}/cmdline").read_bytes()


def test_kernel_panic_ends_qemu_and_is_a_lab_error(vm_assets: VmAssets, tmp_path: Path) -> None:
    """panic=-1 with -no-reboot: a crashed VM kernel makes qemu exit instead of hanging."""
    with _namespaces({NS_SW: []}):
        for br in ("br_e", "br_lvs"):
            _sh(["ip", "-n", NS_SW, "link", "add", br, "type", "bridge"])
        spec = _spec(extra_commands=["echo c > /proc/sysrq-trigger"])
        with pytest.raises(LabError, match="qemu exited .* before the VM was ready.*console:"):
            start_ipvs_vm(spec, netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs", tap_prefix="t3v",
                          workdir=tmp_path / "vm", timeout=90, accel="tcg")
        assert "sysrq" in (tmp_path / "vm" / "console.log").read_text(errors="replace").lower()
        assert "t3v-vm-" not in _sh(["ip", "-n", NS_SW, "-o", "link", "show"]).stdout


def test_director_drops_invalid_fault_and_teardown_from_state(vm_assets: VmAssets, tmp_path: Path) -> None:
    """The nft rule of the director-drops-invalid fault loads; a lab that lost its Python objects
    can still tear the VM down from the state file."""
    with _namespaces({NS_SW: []}):
        for br in ("br_e", "br_lvs"):
            _sh(["ip", "-n", NS_SW, "link", "add", br, "type", "bridge"])
        rules = ["nft add table inet dri",
                 "nft add chain inet dri input '{ type filter hook input priority 0; }'",
                 "nft add rule inet dri input ct state invalid drop"]
        # A workdir too long for a unix socket path: the control socket goes to a private temp dir.
        workdir = tmp_path / ("long-" * 12) / "vm"
        vm = start_ipvs_vm(_spec(extra_commands=rules), netns=NS_SW, bridge_vip="br_e", bridge_rs="br_lvs",
                           tap_prefix="t3v", workdir=workdir, timeout=90)
        socket_dir = vm.control_socket.parent
        try:
            assert socket_dir != workdir and socket_dir.name.startswith("dri-vm-")
            ruleset = vm.run("nft list ruleset")
            assert "ct state invalid drop" in ruleset, ruleset
            assert "nf_conntrack" in vm.run("cat /proc/modules")
            # Another process (here: a second handle from the state file) can use the VM.
            other = VmHandle.attach(workdir)
            assert other.pid == vm.pid and other.spec == vm.spec
            assert other.run("ipvsadm -Ln").count(f"{RIP}:{PORT}") == 1
        finally:
            stop_vm_from_state(workdir)
            vm.stop()
        assert "t3v-vm-" not in _sh(["ip", "-n", NS_SW, "-o", "link", "show"]).stdout
        assert not socket_dir.exists(), "the temp dir of the control socket must be removed"
        with pytest.raises(LabError, match="not running"):
            vm.run("true")
        with pytest.raises(LabError, match="not running"):
            VmHandle.attach(workdir)
    with pytest.raises(LabError, match="cannot read VM state"):
        stop_vm_from_state(tmp_path / "nowhere")
