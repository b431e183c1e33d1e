"""Checks made before any tcpdump starts, so bad input gives one clear message and starts nothing."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

from dr_inspect.errors import CaptureAgentError, InputError, MissingToolError
from dr_inspect.netns import check_netns_name

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")


def check_point_name(name: str) -> None:
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise InputError(f"capture point name {name!r}: use letters, digits and . _ - + @ (it names a file)")


def netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


def check_netns(netns: str) -> None:
    check_netns_name(netns)
    if not netns_exists(netns):
        raise CaptureAgentError(f"network namespace {netns!r} does not exist (ip netns list)")


def check_snapshot_hosts(hosts: dict[str, str | None] | None) -> None:
    """Snapshot host names (they name files) and their namespaces, before any tcpdump starts:
    a typo is bad input now, not a warning after the whole capture."""
    for host, netns in (hosts or {}).items():
        check_point_name(host)
        if netns is not None:
            check_netns(netns)


def check_interface(interface: str, netns: str | None) -> None:
    """The interface must exist where tcpdump will run (in `netns`, or in this namespace)."""
    if netns is None:
        if interface != "any" and not Path("/sys/class/net", interface).exists():
            where = namespaces_with(interface)
            hint = (f"; it is in network namespace {', '.join(where)}: add --netns {where[0]}"
                    if where else "")
            raise CaptureAgentError(f"interface {interface!r} does not exist on this host{hint}")
        return
    check_netns(netns)
    if interface == "any":
        return
    argv = ["ip", "-n", netns, "link", "show", "dev", interface]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise MissingToolError("ip", "iproute2", "needed to capture inside a network namespace") from None
    if result.returncode != 0:
        raise CaptureAgentError(f"interface {interface!r} does not exist in network namespace {netns!r}")


def namespaces_with(interface: str) -> list[str]:
    """The named network namespaces that have `interface` (a lab's bridges live in its switch
    namespace), for the hint when it is not in this one. Empty when none or `ip` is missing."""
    try:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name:
            continue
        shown = subprocess.run(["ip", "-n", name, "link", "show", "dev", interface],
                               capture_output=True, text=True, timeout=10)
        if shown.returncode == 0:
            found.append(name)
    return found


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output folder (and parents) and prove it is writable. Refuse a symlink, a
    folder with anything in it (a set, or files and symlinks planted for a root capture to write
    through) and one other users may write into."""
    if out_dir.is_symlink():
        raise CaptureAgentError(f"{out_dir}: is a symlink; give the real folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaptureAgentError(f"{out_dir}: cannot create output folder: {exc.strerror}") from None
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise CaptureAgentError(f"{out_dir}: not a folder")
    try:
        entries = sorted(os.listdir(out_dir))
    except OSError as exc:
        raise CaptureAgentError(f"{out_dir}: cannot list the output folder: {exc.strerror}") from None
    if "manifest.toml" in entries:
        raise CaptureAgentError(f"{out_dir}: already holds a capture set (manifest.toml); choose another folder")
    if entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise CaptureAgentError(f"{out_dir}: not empty ({shown}); choose a new or empty folder")
    st = out_dir.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX \
            and st.st_uid != os.geteuid():
        raise CaptureAgentError(f"{out_dir}: other users may write into this folder (mode "
                                f"{stat.S_IMODE(st.st_mode):o}); choose a folder of your own")
    try:
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".dri-write-test-"):
            pass
    except OSError as exc:
        raise CaptureAgentError(f"{out_dir}: output folder is not writable: {exc.strerror}") from None
    return out_dir
