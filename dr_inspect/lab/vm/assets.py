"""The director VM's assets: the distribution's cloud kernel and an initramfs (busybox-static,
ipvsadm, nft, the kernel modules; see initramfs.py), built from Debian packages fetched with
``apt-get download`` and unpacked with ``dpkg -x``, cached per package versions."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from dr_inspect.errors import LabError
from dr_inspect.lab import initramfs
from dr_inspect.lab.sysrun import need_tool, run

CACHE_ENV = "DR_INSPECT_CACHE"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
VM_PACKAGES = ("busybox-static", "ipvsadm", "nftables")
# Bump when the initramfs layout or init script changes, so cached images are rebuilt.
ASSET_FORMAT = 2


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
    need_tool("apt-cache", "needed to fetch the VM's kernel and tools")

    def kernel_package() -> str | None:
        out = run(["apt-cache", "depends", KERNEL_META_PACKAGE], what="apt-cache depends").stdout
        targets = [t for t in parse_apt_depends_targets(out) if t.startswith("linux-image-")]
        return targets[0] if targets else None

    try:
        kernel = kernel_package()
    except LabError:
        kernel = None
    if kernel is None and update_if_unknown:
        need_tool("apt-get", "needed to fetch the VM's kernel and tools")
        run(["apt-get", "update", "-qq"], what="apt-get update", timeout=600)
        kernel = kernel_package()
    if kernel is None:
        raise LabError(f"apt knows no {KERNEL_META_PACKAGE}: check the Debian sources and run 'apt-get update'")
    closure_out = run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", *VM_PACKAGES],
        what="apt-cache depends --recurse", timeout=300,
    ).stdout
    # Only ELF files get into the initramfs; packages of scripts (lsb-base, ...) cost nothing more
    # than a download, but keep the set small and obvious.
    wanted = [kernel] + [p for p in parse_apt_depends(closure_out) if p not in ("lsb-base", "sysvinit-utils")]
    versions = parse_apt_policy(run(["apt-cache", "policy", *wanted], what="apt-cache policy",
                                    timeout=300).stdout)
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
    need_tool("apt-get", "needed to fetch the VM's kernel and tools")
    need_tool("dpkg", "needed to unpack the VM's packages")
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
        run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
             *(f"{p}={v}" for p, v in packages.items())], what="apt-get download", cwd=debs,
            timeout=600)
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg", "-x", str(deb), str(root)], what=f"dpkg -x {deb.name}", timeout=300)
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
