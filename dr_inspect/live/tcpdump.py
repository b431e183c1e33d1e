"""tcpdump as a capture agent: its argv (pure), its stderr messages (pure parsers), its lookup.

tcpdump 4.99 writes, on stderr: "listening on IF, link-type ..." once capturing, "Got N" (with -v
and -w, once a second, ended by a carriage return), and at exit "N packets captured",
"N packets received by filter", "N packets dropped by kernel" (some builds also "... dropped by
interface"). SIGUSR1 makes it print the same three counts on one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from dr_inspect.errors import InputError, MissingToolError

DEFAULT_SNAPLEN = 262144
# Kernel ring per agent, KiB (tcpdump -B). In immediate mode libpcap retires a ring block per
# wake-up, so the default 2 MiB ring (a few dozen blocks) overflows on a busy, shared CPU.
DEFAULT_BUFFER_KIB = 32768

_LISTENING = re.compile(r"listening on (\S+), link-type (\S+)")
_GOT = re.compile(r"^Got (\d+)$")
_COUNT = re.compile(r"(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)")


@dataclass
class TcpdumpStats:
    """Counts tcpdump reports on stderr; None where it has not said."""

    captured: int | None = None
    received: int | None = None
    dropped: int | None = None
    if_dropped: int | None = None


def find_tcpdump() -> str:
    path = shutil.which("tcpdump")
    if path is None:
        raise MissingToolError("tcpdump", "tcpdump", "dr-inspect capture runs one tcpdump per capture point")
    return path


@lru_cache(maxsize=4)
def supports_nano(tcpdump: str) -> bool:
    """True when this tcpdump accepts --time-stamp-precision (nanosecond pcap files)."""
    try:
        out = subprocess.run([tcpdump, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--time-stamp-precision" in (out.stdout + out.stderr)


def build_argv(tcpdump: str, interface: str, output: str, *, netns: str | None = None,
               snaplen: int = DEFAULT_SNAPLEN, bpf: str | None = None, count: int | None = None,
               rotate_mb: int | None = None, rotate_files: int | None = None, nano: bool = True,
               run_as: str | None = "root", verbose_counts: bool = True,
               buffer_kib: int | None = DEFAULT_BUFFER_KIB) -> list[str]:
    """The argv of one capture agent. `output` is a file path, or "-" for a pcap stream on stdout.

    --immediate-mode hands each packet to tcpdump at once: without it libpcap's TPACKET_V3 ring
    holds packets up to a second, and the ones still held when tcpdump is stopped are lost
    (counted as received, never written). -U flushes each packet to the file or stream; -n: no DNS;
    run_as: the user tcpdump drops to after opening the interface (-Z; see files.writer_for),
    None to leave tcpdump's own default (not running as root: nothing to drop). The filter
    comes after `--`, so it can never be read as an option (-z would run a program as root).
    """
    check_filter(bpf)
    argv: list[str] = []
    if netns:
        argv += ["ip", "netns", "exec", netns]
    argv += [tcpdump, "-i", interface, "-n", "--immediate-mode", "-U", "-s", str(snaplen), "-w", output]
    if buffer_kib:
        argv += ["-B", str(buffer_kib)]
    if verbose_counts and output != "-":
        argv.append("-v")  # "Got N" once a second: live progress without reading the file
    if nano:
        argv += ["--time-stamp-precision", "nano"]
    if run_as:
        argv += ["-Z", run_as]
    if count is not None:
        argv += ["-c", str(count)]
    if rotate_mb is not None:
        argv += ["-C", str(rotate_mb)]
        if rotate_files is not None:
            argv += ["-W", str(rotate_files)]
    if bpf:
        argv += ["--", bpf]  # one argument: tcpdump joins the remaining words into the filter
    return argv


def check_filter(bpf: str | None) -> None:
    """A capture filter is an expression, never an option: refuse one that starts with '-'
    (after `--` tcpdump would reject it anyway; refused here with a clear message) or holds
    a NUL or a newline."""
    if bpf is None:
        return
    text = bpf.strip()
    if text.startswith("-"):
        raise InputError(f"capture filter {bpf!r} starts with '-': a filter is an expression "
                         "such as 'tcp or arp', not a tcpdump option")
    if any(c in bpf for c in "\0\n\r"):
        raise InputError("capture filter must be one line of text")


def parse_listening(line: str) -> tuple[str, str] | None:
    """(interface, link type) from tcpdump's "listening on" line, else None."""
    m = _LISTENING.search(line)
    return (m.group(1), m.group(2)) if m else None


def parse_got(fragment: str) -> int | None:
    m = _GOT.match(fragment.strip())
    return int(m.group(1)) if m else None


def parse_counts(text: str, stats: TcpdumpStats | None = None) -> TcpdumpStats:
    """Fold every count statement found in `text` into `stats` (later statements win)."""
    stats = stats if stats is not None else TcpdumpStats()
    for m in _COUNT.finditer(text):
        value, what = int(m.group(1)), m.group(2)
        if what == "captured":
            stats.captured = value
        elif what == "received by filter":
            stats.received = value
        elif what == "dropped by kernel":
            stats.dropped = value
        else:
            stats.if_dropped = value
    return stats


def error_lines(text: str) -> list[str]:
    """tcpdump's diagnostic lines, without the progress and count chatter."""
    out = []
    for raw in re.split(r"[\r\n]+", text):
        line = raw.strip()
        if not line or parse_listening(line) or parse_got(line) is not None:
            continue
        if _COUNT.fullmatch(line) or line.startswith("tcpdump: ") and _COUNT.search(line) and "," in line:
            continue
        out.append(line)
    return out
