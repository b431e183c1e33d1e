"""Which files one capture point wrote, oldest first (tcpdump's own rotation naming)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import stat
import struct
from pathlib import Path
from typing import BinaryIO


def point_files(out_dir: Path, base: str) -> list[Path]:
    """The files of a point whose tcpdump wrote to `base` (e.g. "br_e.pcap"), oldest first.

    tcpdump names rotated files by appending a number: with -C alone `br_e.pcap`, `br_e.pcap1`,
    `br_e.pcap2`...; with -C and -W (a ring) `br_e.pcap0` ... `br_e.pcap7` (zero-padded to the width
    of -W), reusing the oldest. So order by modification time, then by number.
    """
    pattern = re.compile(re.escape(base) + r"(\d*)")
    found = []
    for path in out_dir.iterdir():
        m = pattern.fullmatch(path.name)
        if m and path.is_file():
            number = int(m.group(1)) if m.group(1) else -1
            found.append((path.stat().st_mtime_ns, number, path))
    return [p for _, _, p in sorted(found)]


_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
                b"\xa1\xb2\x3c\x4d": ">"}


def complete_length(path: Path) -> int | None:
    """Bytes of a classic pcap file up to its last complete record (None: not classic pcap).

    tcpdump ignores write errors: on a full disk it keeps counting packets while the file ends
    in half a record. Reads only the 16-byte record headers."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24 or header[:4] not in _PCAP_MAGICS:
            return None
        fmt = _PCAP_MAGICS[header[:4]] + "IIII"
        size = os.fstat(f.fileno()).st_size
        good = 24
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return good
            caplen = struct.unpack(fmt, rec)[2]
            end = good + 16 + caplen
            if end > size:
                return good
            f.seek(end)
            good = end


def trim_partial_record(path: Path) -> int:
    """Cut a half-written last record off a classic pcap file; returns the bytes removed."""
    keep = complete_length(path)
    if keep is None:
        return 0
    size = path.stat().st_size
    if keep < size:
        os.truncate(path, keep)
    return size - keep


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


# A file this program writes into an output folder is always a new regular file, never one a
# symlink planted in the folder points to (a root capture would write through it).
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def create_new(path: Path, mode: int = 0o644) -> BinaryIO:
    """Open `path` for writing as a new file: fails (FileExistsError) when anything, a symlink
    included, is there already."""
    return os.fdopen(os.open(path, _NEW_FLAGS, mode), "wb")


def write_new(path: Path, data: bytes) -> None:
    with create_new(path) as f:
        f.write(data)


def open_own(path: Path) -> BinaryIO:
    """Open a regular file this program made earlier for rewriting in place; a symlink (planted
    since) is refused, not followed."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(fd, "wb")


def writer_for(folder: Path) -> str | None:
    """The user tcpdump can drop to (-Z) and still write into `folder`: its owner when that is
    not root and may write there; None (stay root) otherwise."""
    st = folder.stat()
    if st.st_uid == 0 or not st.st_mode & stat.S_IWUSR:
        return None
    try:
        user = pwd.getpwuid(st.st_uid)
    except KeyError:
        return None
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    # the user must also reach the folder: search permission on every folder above it
    for parent in folder.resolve().parents:
        p = parent.stat()
        if not (p.st_uid == user.pw_uid and p.st_mode & stat.S_IXUSR
                or p.st_gid in groups and p.st_mode & stat.S_IXGRP
                or p.st_mode & stat.S_IXOTH):
            return None
    return user.pw_name


def stream_user() -> str | None:
    """The unprivileged user a tcpdump writing to a pipe drops to (Debian's `tcpdump`), when
    this system has it."""
    try:
        return pwd.getpwnam("tcpdump").pw_name
    except KeyError:
        return None
