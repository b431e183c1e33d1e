"""Measurement helpers shared by the benchmark scripts.

Each measured decoder runs in its own child interpreter (`python -m bench.measure <job> ...`), so
its peak memory is its own: the child reports its VmHWM (peak resident set, which also counts the
pages of a memory-mapped capture file it touched) and the time of the measured call only (not
interpreter start-up or imports); the parent samples the child's RssAnon (heap/array memory,
without file pages) every few milliseconds. A baseline child that only imports numpy and pandas
gives the figures to subtract.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tshark fields equivalent to our packets-table columns (schema.COLUMNS).
TSHARK_FIELDS = [
    "frame.number", "frame.time_epoch", "eth.src", "eth.dst", "vlan.id", "eth.type",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.id", "ip.ttl", "ip.proto",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.seq_raw", "tcp.ack_raw",
    "tcp.flags", "tcp.len", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4",
    "arp.dst.hw_mac", "arp.dst.proto_ipv4",
]


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def cache_dir(base: Path | None) -> Path:
    """Generated files live under <base>/<hash of bench/gen.py>, so a changed generator never
    reuses stale files."""
    digest = hashlib.sha256((ROOT / "bench" / "gen.py").read_bytes()).hexdigest()[:10]
    root = base if base is not None else Path(tempfile.gettempdir()) / "dr-inspect-bench"
    path = root / digest
    path.mkdir(parents=True, exist_ok=True)
    return path


def warm_page_cache(path: Path) -> None:
    """Read a file (or every file of a directory) once so all decoders start from the page cache."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 << 20):
                pass


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return path.stat().st_size


# --------------------------------------------------------------------------------------------
# Parent side

@dataclass
class ChildResult:
    seconds: float              # wall time of the measured call
    cpu_seconds: float          # its CPU time (user + system): less sensitive to a busy machine
    hwm_kb: int                 # child's VmHWM at the end
    peak_anon_kb: int           # max RssAnon sampled by the parent
    data: dict = field(default_factory=dict)


def _status_kb(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[name] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def run_child(job: list[str], *, sample_s: float = 0.005, timeout_s: float = 1800,
              env: dict[str, str] | None = None) -> ChildResult:
    """Run `python -m bench.measure <job...>` and collect its JSON line plus sampled RssAnon.
    env: variables to set for the child on top of this process's environment."""
    argv = [sys.executable, "-m", "bench.measure", *job]
    env = dict(os.environ, **(env or {}),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=None, env=env, text=True)
    peak_anon = 0
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None:
            peak_anon = max(peak_anon, _status_kb(proc.pid, ("RssAnon",)).get("RssAnon", 0))
            if time.monotonic() > deadline:
                raise RuntimeError(f"timeout: {' '.join(argv)}")
            time.sleep(sample_s)
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(job)} failed with exit code {proc.returncode}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(job)} printed no result")
    data = json.loads(lines[-1])
    peak_anon = max(peak_anon, data.get("anon_kb", 0))
    return ChildResult(data["seconds"], data["cpu_seconds"], data["hwm_kb"], peak_anon, data)


def baseline() -> ChildResult:
    """Memory of an interpreter that only imported numpy and pandas (the figures to subtract)."""
    return run_child(["baseline"])


@dataclass
class TsharkTime:
    seconds: float              # wall, all paths, start-up excluded
    cpu_seconds: float          # user + system of the tshark processes, start-up excluded
    startup: float              # wall start-up per run, times the number of paths


def tshark_seconds(paths: list[Path], *, repeat: int = 1) -> TsharkTime:
    """Time `tshark -T fields` decoding all paths (best of `repeat`), without its start-up.

    Start-up (reading the dissector tables, ~0.3 s) is measured with `-c 1` on the first file and
    subtracted, as our figures exclude the interpreter start."""
    tshark = shutil.which("tshark")
    if tshark is None:
        raise FileNotFoundError("tshark not installed (apt-get install tshark)")

    def run(path: Path, limit: list[str]) -> tuple[float, float]:
        argv = [tshark, "-n", "-r", str(path), *limit, "-T", "fields", "-E", "separator=/t"]
        for f in TSHARK_FIELDS:
            argv += ["-e", f]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    starts = [run(paths[0], ["-c", "1"]) for _ in range(3)]
    start_wall, start_cpu = min(w for w, _ in starts), min(c for _, c in starts)
    runs = []
    for _ in range(repeat):
        each = [run(p, []) for p in paths]
        runs.append((sum(w for w, _ in each), sum(c for _, c in each)))
    wall, cpu = min(runs)
    n = len(paths)
    return TsharkTime(max(wall - n * start_wall, 1e-9), max(cpu - n * start_cpu, 1e-9), n * start_wall)


# --------------------------------------------------------------------------------------------
# Child side

def _status_now() -> dict[str, int]:
    return _status_kb(os.getpid(), ("VmHWM", "RssAnon"))


class _Clock:
    """Wall and CPU time of a block."""

    def __enter__(self) -> _Clock:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def _emit(clock: _Clock, **extra: object) -> None:
    status = _status_now()
    print(json.dumps({"seconds": clock.wall, "cpu_seconds": clock.cpu, "hwm_kb": status.get("VmHWM", 0),
                      "anon_kb": status.get("RssAnon", 0), **extra}), flush=True)


def _profiled(fn, top: int):  # type: ignore[no-untyped-def]
    """Run fn under cProfile when top > 0; print the top functions (own time) to stderr."""
    if top <= 0:
        return fn()
    prof = cProfile.Profile()
    result = prof.runcall(fn)
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    # stage view: our own functions by cumulative time (which stage the time above belongs to)
    stats.sort_stats("cumulative").print_stats(r"dr_inspect", top)
    print(text.getvalue(), file=sys.stderr)
    return result


def _job_decode(paths: list[str], profile: int) -> None:
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    from dr_inspect.decode import decode_file

    def work():  # type: ignore[no-untyped-def]
        return [decode_file(p) for p in paths]

    with _Clock() as clock:
        results = _profiled(work, profile)
    _emit(clock, frames=sum(len(r.packets) for r in results),
          undecodable=sum(sum(r.stats.undecodable.values()) for r in results),
          errors=[str(r.stats.error) for r in results if r.stats.error is not None])


def _job_verify(paths: list[str], profile: int) -> None:
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    from dr_inspect import verify

    with _Clock() as clock:
        report = _profiled(lambda: verify(paths), profile)
    rules = [{"id": r.id, "name": r.name, "status": r.status, "severity": r.severity,
              "checked": r.checked, "violations": r.violations, "note": r.note,
              "evidence": [f"{e.point} frames {e.frames[:3]}: expected {e.expected}, got {e.actual}"
                           for e in r.evidence[:2]]}
             for r in report.rules]
    _emit(clock, verdict=report.verdict, exit_code=report.exit_code, rules=rules,
          frames=sum(p.frames for p in report.points), flows=report.flows, hops=report.hops,
          errors=list(report.errors))


# Fields scapy extracts per packet: the same columns as ours (a fair "decode to columns").
def _job_scapy(paths: list[str], profile: int) -> None:
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import PcapReader

    def work() -> int:
        n = 0
        for path in paths:
            with PcapReader(path) as reader:
                for pkt in reader:
                    row = [float(pkt.time)]
                    if Ether in pkt:
                        e = pkt[Ether]
                        row += [e.src, e.dst, e.type]
                    if IP in pkt:
                        ip = pkt[IP]
                        row += [ip.src, ip.dst, ip.id, ip.ttl, ip.proto]
                        if TCP in pkt:
                            t = pkt[TCP]
                            row += [t.sport, t.dport, t.seq, t.ack, int(t.flags),
                                    ip.len - 4 * ip.ihl - 4 * t.dataofs]
                        elif UDP in pkt:
                            row += [pkt[UDP].sport, pkt[UDP].dport]
                    elif ARP in pkt:
                        a = pkt[ARP]
                        row += [a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst]
                    n += 1
        return n

    with _Clock() as clock:
        frames = _profiled(work, profile)
    _emit(clock, frames=frames)


def _job_baseline() -> None:
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    with _Clock() as clock:
        pass
    _emit(clock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measure",
                                     description="child side of the benchmarks (one measured job)")
    parser.add_argument("job", choices=("baseline", "decode", "verify", "scapy"))
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--profile", type=int, default=0, help="print the top N cProfile entries")
    args = parser.parse_args(argv)
    if args.job == "baseline":
        _job_baseline()
    elif args.job == "decode":
        _job_decode(args.paths, args.profile)
    elif args.job == "verify":
        _job_verify(args.paths, args.profile)
    else:
        _job_scapy(args.paths, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
