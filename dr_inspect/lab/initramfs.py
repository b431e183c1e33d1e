"""Initramfs for the IPVS director VM: what goes in it, and the archive format.

Everything here is a pure function of its inputs (bytes, mappings, a package tree already
unpacked by ``dpkg -x``), so the pieces are testable without a VM:

- ``elf_needed`` / ``elf_interpreter``: the shared libraries a binary links against (DT_NEEDED)
  and its program interpreter, read from the ELF headers (the host may lack readelf/ldd, and the
  tree is not installed, so ldd could not resolve it anyway);
- ``modinfo_depends``: the ``depends=`` field of a kernel module; the linux-image package ships no
  modules.dep (depmod runs in its postinst, which ``dpkg -x`` does not run), so we rebuild the
  dependency map from each module's .modinfo section;
- ``module_load_order``: the modules to insmod, dependencies first (virtio_ring before virtio);
- ``cpio_newc``: the "newc" archive the kernel unpacks as initramfs (several gzip members may be
  concatenated: the shared base image plus a small per-VM config archive);
- ``INIT_SCRIPT``: PID 1 of the VM (busybox sh).
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dr_inspect.errors import LabError

# Modules the director needs: NICs, IPVS with every scheduler ipvsadm accepts, conntrack (the
# director-drops-invalid fault matches `ct state invalid`) and the nft expressions faults use.
IPVS_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh")
WANTED_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_net",
    "nf_conntrack",
    "ip_vs",
    *(f"ip_vs_{s}" for s in IPVS_SCHEDULERS),
    "nf_tables",
    "nft_ct",
    "nft_reject_inet",
    "nft_limit",
    "nft_log",
    "nf_log_syslog",
)
# Programs copied from the unpacked packages (path inside the tree -> path inside the VM).
VM_PROGRAMS: dict[str, str] = {
    "bin/busybox": "bin/busybox",
    "sbin/ipvsadm": "sbin/ipvsadm",
    "usr/sbin/nft": "usr/sbin/nft",
}
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib")
VM_LIB_DIR = "lib/x86_64-linux-gnu"
READY_MARKER = "DRI-VM-READY"
FAILED_MARKER = "DRI-VM-FAILED"


# --------------------------------------------------------------------------------------------
# ELF


@dataclass(frozen=True)
class _Elf64:
    data: bytes

    def header(self) -> tuple[int, int, int, int, int, int, int]:
        d = self.data
        if len(d) < 64 or d[:4] != b"\x7fELF":
            raise ValueError("not an ELF file")
        if d[4] != 2 or d[5] != 1:
            raise ValueError("not a little-endian 64-bit ELF file")
        e_phoff, e_shoff = struct.unpack_from("<QQ", d, 0x20)
        e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", d, 0x36)
        return e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx

    def program_headers(self) -> list[tuple[int, int, int, int]]:
        """(p_type, p_offset, p_vaddr, p_filesz) of each segment."""
        e_phoff, _, e_phentsize, e_phnum, *_ = self.header()
        out = []
        for i in range(e_phnum):
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
                "<IIQQQQ", self.data, e_phoff + i * e_phentsize
            )
            out.append((p_type, p_offset, p_vaddr, p_filesz))
        return out

    def sections(self) -> dict[str, tuple[int, int]]:
        """Section name -> (offset, size)."""
        _, e_shoff, _, _, e_shentsize, e_shnum, e_shstrndx = self.header()
        raw = []
        for i in range(e_shnum):
            sh_name, _t, _f, _a, sh_offset, sh_size = struct.unpack_from(
                "<IIQQQQ", self.data, e_shoff + i * e_shentsize
            )
            raw.append((sh_name, sh_offset, sh_size))
        if not raw or e_shstrndx >= len(raw):
            return {}
        str_off = raw[e_shstrndx][1]
        out = {}
        for sh_name, off, size in raw:
            end = self.data.index(b"\0", str_off + sh_name)
            out[self.data[str_off + sh_name : end].decode("ascii", "replace")] = (off, size)
        return out


PT_DYNAMIC, PT_INTERP, PT_LOAD, DT_NEEDED, DT_STRTAB = 2, 3, 1, 1, 5


def elf_interpreter(data: bytes) -> str | None:
    """The PT_INTERP path of a dynamically linked executable, None for a static one."""
    for p_type, off, _vaddr, size in _Elf64(data).program_headers():
        if p_type == PT_INTERP:
            return data[off : off + size].rstrip(b"\0").decode()
    return None


def elf_needed(data: bytes) -> list[str]:
    """DT_NEEDED entries (library sonames) of an ELF file, in order; [] for a static binary."""
    elf = _Elf64(data)
    phdrs = elf.program_headers()
    dyn = [(off, size) for t, off, _v, size in phdrs if t == PT_DYNAMIC]
    if not dyn:
        return []
    off, size = dyn[0]
    needed_offsets: list[int] = []
    strtab_vaddr = None
    for i in range(0, size - 15, 16):
        tag, val = struct.unpack_from("<qQ", data, off + i)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            needed_offsets.append(val)
        elif tag == DT_STRTAB:
            strtab_vaddr = val
    if strtab_vaddr is None:
        raise ValueError("dynamic section without DT_STRTAB")
    # DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments.
    strtab_off = None
    for t, p_off, p_vaddr, p_filesz in phdrs:
        if t == PT_LOAD and p_vaddr <= strtab_vaddr < p_vaddr + p_filesz:
            strtab_off = p_off + (strtab_vaddr - p_vaddr)
    if strtab_off is None:
        raise ValueError("DT_STRTAB outside every PT_LOAD segment")
    names = []
    for rel in needed_offsets:
        end = data.index(b"\0", strtab_off + rel)
        names.append(data[strtab_off + rel : end].decode())
    return names


# --------------------------------------------------------------------------------------------
# Kernel modules


def read_module(path: Path) -> bytes:
    """A module's bytes, decompressed when the package ships .ko.xz or .ko.gz."""
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".gz"):
        return gzip.decompress(raw)
    return raw


def module_name(path: PurePosixPath | Path) -> str:
    """Module name as modules.dep and `depends=` spell it: file stem, '-' folded to '_'."""
    name = path.name
    for suffix in (".xz", ".gz", ".zst"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


def modinfo_depends(data: bytes) -> list[str]:
    """The `depends=` list from a module's .modinfo section."""
    sections = _Elf64(data).sections()
    if ".modinfo" not in sections:
        raise ValueError("no .modinfo section")
    off, size = sections[".modinfo"]
    for field in data[off : off + size].split(b"\0"):
        if field.startswith(b"depends="):
            value = field[len(b"depends=") :].decode()
            return [m.replace("-", "_") for m in value.split(",") if m]
    return []


def module_load_order(
    wanted: Iterable[str], depends: Mapping[str, Iterable[str]], builtin: Iterable[str] = ()
) -> list[str]:
    """Modules to load, each after everything it depends on; built-in ones are left out.

    Raises LabError for a module that is neither available nor built in, or a dependency cycle.
    """
    builtin_set = {b.replace("-", "_") for b in builtin}
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LabError(f"kernel module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in depends:
            if name in builtin_set:
                state[name] = "done"
                return
            via = f" (needed by {chain[-1]})" if chain else ""
            raise LabError(f"kernel module {name}{via} is not in the kernel package")
        state[name] = "visiting"
        for dep in depends[name]:
            visit(dep, chain + (name,))
        state[name] = "done"
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def scan_modules(modules_dir: Path) -> dict[str, Path]:
    """Module name -> file, for every .ko under lib/modules/<release>."""
    found: dict[str, Path] = {}
    for path in sorted(modules_dir.rglob("*.ko*")):
        if path.is_file():
            found[module_name(path)] = path
    return found


# --------------------------------------------------------------------------------------------
# cpio "newc"


@dataclass(frozen=True)
class CpioEntry:
    """One archive member. kind: 'file', 'dir', 'symlink' or 'chardev'."""

    path: str
    kind: str
    mode: int = 0o644
    data: bytes = b""  # file contents, or the symlink target
    rdev: tuple[int, int] = (0, 0)


_KIND_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "chardev": stat.S_IFCHR}


def cpio_newc(entries: Iterable[CpioEntry]) -> bytes:
    """An uncompressed newc archive with a TRAILER!!! record, parents of each path included."""
    members: dict[str, CpioEntry] = {}
    for entry in entries:
        path = entry.path.strip("/")
        if not path or ".." in PurePosixPath(path).parts:
            raise LabError(f"initramfs: invalid member path {entry.path!r}")
        if entry.kind not in _KIND_BITS:
            raise LabError(f"initramfs: unknown member kind {entry.kind!r} for {path}")
        parts = PurePosixPath(path).parts
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            members.setdefault(parent, CpioEntry(parent, "dir", 0o755))
        members[path] = CpioEntry(path, entry.kind, entry.mode, entry.data, entry.rdev)
    out = bytearray()
    ino = 1
    # Parents sort before children, so directories exist when the kernel unpacks their files.
    for path in sorted(members, key=lambda p: (p.count("/"), p)):
        entry = members[path]
        _append_record(out, ino, path, entry)
        ino += 1
    _append_record(out, ino, "TRAILER!!!", CpioEntry("TRAILER!!!", "file", 0))
    return bytes(out)


def _append_record(out: bytearray, ino: int, name: str, entry: CpioEntry) -> None:
    mode = _KIND_BITS[entry.kind] | (entry.mode & 0o7777) if name != "TRAILER!!!" else 0
    data = b"" if entry.kind in ("dir", "chardev") else entry.data
    nlink = 2 if entry.kind == "dir" else 1
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, entry.rdev[0], entry.rdev[1], len(name_b), 0)
    out += b"070701" + b"".join(b"%08X" % f for f in fields)
    out += name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)


def gzip_member(archive: bytes) -> bytes:
    """gzip without a timestamp, so the same inputs give the same bytes."""
    return gzip.compress(archive, compresslevel=6, mtime=0)


# --------------------------------------------------------------------------------------------
# Base image from an unpacked package tree


def _resolve_in_tree(root: Path, rel: str) -> Path:
    """Follow symlinks inside `root` (absolute targets are taken relative to root)."""
    path = root / rel
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
    raise LabError(f"initramfs: symlink loop at {rel}")


def _find_library(root: Path, soname: str) -> Path:
    for lib_dir in LIB_DIRS:
        candidate = root / lib_dir / soname
        if candidate.exists() or candidate.is_symlink():
            resolved = _resolve_in_tree(root, str(candidate.relative_to(root)))
            if resolved.is_file():
                return resolved
    raise LabError(f"initramfs: shared library {soname} not found in the unpacked packages under {root}")


def program_entries(root: Path, programs: Mapping[str, str] = VM_PROGRAMS) -> list[CpioEntry]:
    """The programs plus every shared library they need (transitively) and the ELF interpreter."""
    entries: list[CpioEntry] = []
    pending: list[tuple[str, bytes]] = []
    for src, dst in programs.items():
        path = _resolve_in_tree(root, src)
        if not path.is_file():
            raise LabError(f"initramfs: {src} not found in the unpacked packages under {root}")
        data = path.read_bytes()
        entries.append(CpioEntry(dst, "file", 0o755, data))
        pending.append((src, data))
    seen: set[str] = set()
    interpreters: set[str] = set()
    while pending:
        what, data = pending.pop()
        try:
            needed = elf_needed(data)
            interp = elf_interpreter(data)
        except ValueError as exc:
            raise LabError(f"initramfs: {what}: {exc}") from exc
        if interp:
            interpreters.add(interp)
        for soname in needed:
            if soname in seen:
                continue
            seen.add(soname)
            lib_data = _find_library(root, soname).read_bytes()
            entries.append(CpioEntry(f"{VM_LIB_DIR}/{soname}", "file", 0o755, lib_data))
            pending.append((soname, lib_data))
    for interp in sorted(interpreters):
        interp_data = _resolve_in_tree(root, interp.lstrip("/"))
        if not interp_data.is_file():
            raise LabError(f"initramfs: ELF interpreter {interp} not found under {root}")
        entries.append(CpioEntry(interp.lstrip("/"), "file", 0o755, interp_data.read_bytes()))
    return entries


def module_entries(root: Path, kernel_release: str, wanted: Iterable[str] = WANTED_MODULES) -> list[CpioEntry]:
    """The wanted modules and their dependencies, flat in lib/modules/<release>/, plus the load
    order in etc/dri/modules.load (one file name per line)."""
    modules_dir = root / "lib" / "modules" / kernel_release
    if not modules_dir.is_dir():
        raise LabError(f"initramfs: {modules_dir} missing: kernel package not unpacked")
    files = scan_modules(modules_dir)
    builtin_file = modules_dir / "modules.builtin"
    builtin = [module_name(PurePosixPath(line.strip())) for line in builtin_file.read_text().splitlines()
               if line.strip()] if builtin_file.exists() else []
    depends: dict[str, list[str]] = {}
    contents: dict[str, bytes] = {}

    # Read only what the wanted set reaches: modinfo of all ~3000 modules would be slow.
    def load(name: str) -> None:
        if name in depends or name not in files:
            return
        data = read_module(files[name])
        contents[name] = data
        try:
            depends[name] = modinfo_depends(data)
        except ValueError as exc:
            raise LabError(f"initramfs: module {files[name]}: {exc}") from exc
        for dep in depends[name]:
            load(dep)

    for name in wanted:
        load(name.replace("-", "_"))
    order = module_load_order(wanted, depends, builtin)
    entries = [CpioEntry(f"lib/modules/{kernel_release}/{name}.ko", "file", 0o644, contents[name]) for name in order]
    load_list = "".join(f"{name}.ko\n" for name in order).encode()
    entries.append(CpioEntry("etc/dri/modules.load", "file", 0o644, load_list))
    return entries


def base_entries() -> list[CpioEntry]:
    """Skeleton directories, the console node, /init and the sh link."""
    dirs = ["proc", "sys", "dev", "tmp", "run", "root", "etc/dri", "bin", "sbin", "usr/bin", "usr/sbin", "lib64"]
    entries = [CpioEntry(d, "dir", 0o755) for d in dirs]
    # The kernel opens /dev/console for PID 1 before init can mount devtmpfs.
    entries.append(CpioEntry("dev/console", "chardev", 0o600, rdev=(5, 1)))
    entries.append(CpioEntry("bin/sh", "symlink", 0o777, b"busybox"))
    entries.append(CpioEntry("init", "file", 0o755, INIT_SCRIPT.encode()))
    return entries


def build_base_initramfs(root: Path, kernel_release: str) -> bytes:
    """The gzip-compressed base initramfs for a tree unpacked from the Debian packages."""
    entries = base_entries() + program_entries(root) + module_entries(root, kernel_release)
    return gzip_member(cpio_newc(entries))


def config_initramfs(config_sh: str, extra_sh: str) -> bytes:
    """The per-VM archive appended to the base image: settings and the extra commands."""
    entries = [
        CpioEntry("etc/dri/vm.conf", "file", 0o644, config_sh.encode()),
        CpioEntry("etc/dri/extra.sh", "file", 0o644, extra_sh.encode()),
    ]
    return gzip_member(cpio_newc(entries))


# --------------------------------------------------------------------------------------------
# PID 1. Messages go to the console (ttyS0, captured in console.log); commands from the host
# arrive on ttyS1 (a unix socket on the host side) as "<nonce> <base64 shell line>" and are
# answered with "<nonce> BEGIN", the base64 of the output, "<nonce> END <exit status>".

INIT_SCRIPT = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp
fail() {
    echo "DRI-VM-FAILED: $*"
    echo "--- dmesg tail ---"; dmesg | tail -n 15
    poweroff -f
    sleep 5
}
echo "dri-vm: init started, kernel $(uname -r)"
. /etc/dri/vm.conf || fail "cannot read /etc/dri/vm.conf"
KREL=$(uname -r)
for m in $(cat /etc/dri/modules.load); do
    out=$(insmod "/lib/modules/$KREL/$m" 2>&1) || fail "insmod $m: $out"
done
# NICs appear when virtio_net probes; match them by MAC and give them the lab's names.
i=0
while :; do
    vip_dev=""; dip_dev=""
    for d in /sys/class/net/*; do
        mac=$(cat "$d/address")
        [ "$mac" = "$VIP_MAC" ] && vip_dev=${d##*/}
        [ "$mac" = "$DIP_MAC" ] && dip_dev=${d##*/}
    done
    [ -n "$vip_dev" ] && [ -n "$dip_dev" ] && break
    i=$((i+1)); [ $i -gt 100 ] && fail "NICs with MAC $VIP_MAC and $DIP_MAC not found: $(ls /sys/class/net)"
    usleep 50000
done
# Two steps, so that renaming eth0->eth1 never collides with an existing eth1.
ip link set "$vip_dev" name dritmpvip || fail "rename $vip_dev"
ip link set "$dip_dev" name dritmpdip || fail "rename $dip_dev"
ip link set dritmpvip name "$VIP_IF" || fail "rename to $VIP_IF"
ip link set dritmpdip name "$DIP_IF" || fail "rename to $DIP_IF"
for k in all default lo "$VIP_IF" "$DIP_IF"; do
    echo 0 > "/proc/sys/net/ipv4/conf/$k/rp_filter" || fail "rp_filter $k"
done
ip link set lo up
ip addr add "$VIP/$VIP_PREFIX" dev "$VIP_IF" || fail "address $VIP/$VIP_PREFIX on $VIP_IF"
ip addr add "$DIP/$DIP_PREFIX" dev "$DIP_IF" || fail "address $DIP/$DIP_PREFIX on $DIP_IF"
ip link set "$VIP_IF" up || fail "link $VIP_IF up"
ip link set "$DIP_IF" up || fail "link $DIP_IF up"
out=$(ipvsadm -A -t "$VIP:$PORT" -s "$SCHEDULER" 2>&1) || fail "ipvsadm -A -t $VIP:$PORT -s $SCHEDULER: $out"
for rs in $REAL_SERVERS; do
    out=$(ipvsadm -a -t "$VIP:$PORT" -r "$rs:$PORT" -g 2>&1) || fail "ipvsadm -a -t $VIP:$PORT -r $rs:$PORT -g: $out"
done
if [ -s /etc/dri/extra.sh ]; then
    out=$(sh -e /etc/dri/extra.sh 2>&1) || fail "extra commands: $out"
fi
ctl_loop() {
    while IFS= read -r line; do
        [ -z "$line" ] && continue
        nonce=${line%% *}
        echo "${line#* }" | base64 -d > /tmp/ctl.cmd 2>/dev/null || { echo "$nonce BEGIN"; echo "$nonce END 255"; continue; }
        sh /tmp/ctl.cmd > /tmp/ctl.out 2>&1 < /dev/null
        rc=$?
        echo "$nonce BEGIN"
        base64 /tmp/ctl.out
        echo "$nonce END $rc"
    done
}
# PID 1 keeps ttyS1 open for good: the 8250 driver flushes the receive FIFO whenever the port
# is first opened, so a gap between two opens could eat a command the host just sent.
exec 3<>/dev/ttyS1 || fail "open ttyS1"
stty -F /dev/ttyS1 raw -echo || fail "stty ttyS1"
( while :; do ctl_loop <&3 >&3; sleep 1; done ) &
echo "DRI-VM-READY"
while :; do sleep 3600; done
"""
