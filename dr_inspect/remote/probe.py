"""Before capturing: ask each remote host (one ssh session) whether it has tcpdump and the
interfaces, and measure its clock against this one.

The clock: the session answers each line we send with `date +%s%N`; a round trip that took
`rtt` puts the remote reading within rtt/2 of the midpoint of our send and receive times
(the NTP bound). The shortest of several round trips (the first, which waited for the
connection, is dropped) gives the offset and its bound.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field

from dr_inspect.errors import CaptureAgentError
from dr_inspect.remote.ssh import SshHost, end_group, find_ssh, first_line, ssh_argv

ROUND_TRIPS = 8
_PROBE = r"""
t=$(command -v tcpdump || ls /usr/sbin/tcpdump /usr/bin/tcpdump /sbin/tcpdump 2>/dev/null | head -n 1)
echo "tcpdump=$t"
if [ -n "$t" ] && "$t" --help 2>&1 | grep -q time-stamp-precision; then echo nano=1; fi
for i in "$@"; do [ -e "/sys/class/net/$i" ] || echo "missing=$i"; done
echo ready
while read -r _; do date +%s%N; done
"""


@dataclass
class HostProbe:
    tcpdump: str | None
    nano: bool
    missing: list[str] = field(default_factory=list)
    offset_ns: int | None = None        # remote clock minus this one
    bound_ns: int | None = None         # |error| of offset_ns is at most this (half the RTT)


def best_offset(samples: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """(offset, bound) from (sent, remote, received) samples in ns: the shortest round trip's."""
    good = [(t1 - t0, remote - (t0 + t1) // 2) for t0, remote, t1 in samples if t1 >= t0]
    if not good:
        return None
    rtt, offset = min(good)
    return offset, (rtt + 1) // 2


def parse_probe(lines: list[str]) -> HostProbe:
    values = [line.partition("=") for line in lines]
    tcpdump = next((v for k, _, v in values if k == "tcpdump" and v), None)
    return HostProbe(tcpdump=tcpdump, nano=any(k == "nano" for k, _, _ in values),
                     missing=[v for k, _, v in values if k == "missing"])


def probe_host(host: SshHost, interfaces: list[str], *, timeout: float = 30.0,
               round_trips: int = ROUND_TRIPS) -> HostProbe:
    """Probe one host; CaptureAgentError when ssh fails or the host does not answer."""
    argv = ssh_argv(host, ["sh", "-c", _PROBE, "dr-inspect-probe", *interfaces], ssh=find_ssh())
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
    timed_out = threading.Event()

    def give_up() -> None:             # a host that stops answering ends the probe
        timed_out.set()
        end_group(proc)

    timer = threading.Timer(timeout, give_up)
    timer.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        lines: list[str] = []
        while True:
            line = proc.stdout.readline()
            if not line or line.strip() == "ready":
                break
            lines.append(line.strip())
        if not line:
            raise CaptureAgentError(_failed(host, proc, timed_out))
        probe = parse_probe(lines)
        samples = []
        for _ in range(round_trips + 1):
            t0 = time.time_ns()
            proc.stdin.write("\n")
            proc.stdin.flush()
            answer = proc.stdout.readline()
            t1 = time.time_ns()
            if not answer:
                raise CaptureAgentError(_failed(host, proc, timed_out))
            if not answer.strip().isdigit():
                break          # a date without %N (busybox): the clock stays unmeasured
            samples.append((t0, int(answer), t1))
        found = best_offset(samples[1:])
        if found is not None:
            probe.offset_ns, probe.bound_ns = found
        return probe
    except (BrokenPipeError, OSError):
        raise CaptureAgentError(_failed(host, proc, timed_out)) from None
    except BaseException:
        end_group(proc)           # Ctrl-C / SIGTERM while connecting: end ssh (and a ProxyCommand)
        raise
    finally:
        timer.cancel()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()          # EOF ends the remote loop
            except OSError:
                pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            end_group(proc)
        proc.stderr.close()


def _failed(host: SshHost, proc: subprocess.Popen, timed_out: threading.Event, what: str = "") -> str:
    if timed_out.is_set():
        return f"ssh {host.target} ({host.name}): no answer (timed out)"
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        end_group(proc)
    err = first_line(proc.stderr.read() or "")
    return f"ssh {host.target} ({host.name}): {err or what or 'the session ended early'}"
