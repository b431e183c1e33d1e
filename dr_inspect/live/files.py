"""Which files one capture point wrote, oldest first (tcpdump's own rotation naming)."""

from __future__ import annotations

import re
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
