"""Which files one capture point wrote, oldest first (tcpdump's own rotation naming)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path


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
