"""Decoder benchmark: dr_inspect.decode vs `tshark -T fields` vs scapy's PcapReader, measured in
the same run on the same synthetic captures (classic pcap and pcapng), with ratios and targets.
Ours is measured twice: with its compiled kernels (the default) and with numpy alone (the
fallback where the C extension could not be built; DR_INSPECT_NATIVE=0).

    python -m bench.bench_decode                  # 100k and 1M frames, pcap and pcapng
    python -m bench.bench_decode --quick          # small sizes: a smoke run
    python -m bench.bench_decode --sizes 1000000 --tshark-max 1000000 --keep

Generated files are kept under a cache folder only with --keep (then reused by the next run).
Timing covers the decode call only (ours: decode_file in a fresh interpreter, best of --repeat;
wall time, and CPU time, which a busy shared machine inflates less;
tshark: without its ~0.3 s start-up, measured separately; scapy: extracting the same columns on
a smaller file, its rate scaled). Memory: peak RSS (VmHWM, includes the touched pages of the
memory-mapped capture) and peak anonymous memory (heap and arrays), each minus a baseline
interpreter that only imported numpy and pandas.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

if __package__ in (None, ""):   # run as `python bench/<script>.py`: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen  # noqa: E402
from dr_inspect.decode import native  # noqa: E402
from bench.measure import (  # noqa: E402
    ChildResult, baseline, cache_dir, progress, run_child, size_bytes,
    tshark_seconds, warm_page_cache)

TARGET_RATE = {"pcap": 1.5e6, "pcapng": 1.0e6}      # frames/s, ours
TARGET_BYTES_PER_FRAME = 250
TARGET_FIXED_BYTES = 150e6


@dataclass
class Row:
    fmt: str
    tool: str
    frames: int
    seconds: float
    file_bytes: int
    cpu_seconds: float = 0.0
    rss_bytes: float | None = None      # peak RSS minus baseline
    anon_bytes: float | None = None     # peak anonymous memory minus baseline
    note: str = ""

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_rate(self) -> float:
        return self.frames / self.cpu_seconds if self.cpu_seconds > 0 else float("inf")


def _ensure(path: Path, frames: int, generated: list[Path]) -> Path:
    if not path.exists():
        progress(f"generating {path.name} ({frames} frames)")
        tmp = path.with_name(path.name + ".tmp")
        gen.write_single_capture(tmp, frames, fmt=gen.format_for(path), seed=1)
        tmp.rename(path)
        generated.append(path)
    return path


# Our decoder with its compiled kernels (the default when they were built), and with numpy
# alone (the fallback where no C compiler was found at install time).
OURS = "dr-inspect"
OURS_NUMPY = "dr-inspect, numpy only"


def _ours(path: Path, frames: int, fmt: str, repeat: int, base: ChildResult, profile: int,
          tool: str = OURS) -> Row:
    best: ChildResult | None = None
    worst_hwm, worst_anon, cpu = 0, 0, float("inf")
    env = {native.ENV: "0"} if tool == OURS_NUMPY else None
    for i in range(repeat):
        progress(f"{tool} on {path.name} (run {i + 1}/{repeat})")
        res = run_child(["decode", str(path)], env=env)
        if res.data["frames"] != frames:
            raise RuntimeError(f"decoder returned {res.data['frames']} rows for {frames} frames")
        worst_hwm, worst_anon = max(worst_hwm, res.hwm_kb), max(worst_anon, res.peak_anon_kb)
        cpu = min(cpu, res.cpu_seconds)
        if best is None or res.seconds < best.seconds:
            best = res
    assert best is not None
    if profile:
        progress(f"profiling ours on {path.name} (cProfile, top {profile}, printed to stderr)")
        run_child(["decode", str(path), "--profile", str(profile)], env=env)
    note = f"undecodable {best.data['undecodable']}" if best.data["undecodable"] else ""
    return Row(fmt, tool, frames, best.seconds, size_bytes(path), cpu,
               (worst_hwm - base.hwm_kb) * 1024.0, (worst_anon - base.peak_anon_kb) * 1024.0, note)


def _tshark(path: Path, frames: int, fmt: str, repeat: int) -> Row:
    progress(f"tshark -T fields on {path.name}")
    t = tshark_seconds([path], repeat=repeat if frames <= 100_000 else 1)
    return Row(fmt, "tshark -T fields", frames, t.seconds, size_bytes(path), t.cpu_seconds,
               note=f"start-up {t.startup:.2f} s excluded")


def _scapy(path: Path, frames: int, fmt: str) -> Row:
    progress(f"scapy PcapReader on {path.name}")
    res = run_child(["scapy", str(path)])
    return Row(fmt, "scapy PcapReader", frames, res.seconds, size_bytes(path), res.cpu_seconds,
               note=f"{frames} frames, rate scaled")


def _mem_text(value: float | None, frames: int) -> tuple[str, str]:
    if value is None:
        return "", ""
    return f"{value / 1e6:.0f}", f"{value / frames:.0f}"


def ratio(x: float) -> str:
    return f"x{x:.0f}" if x >= 10 else f"x{x:.2f}"


def render(rows: list[Row]) -> str:
    table = []
    for fmt in dict.fromkeys(r.fmt for r in rows):
        ours = [r for r in rows if r.fmt == fmt and r.tool == OURS]
        tshark = [r for r in rows if r.fmt == fmt and r.tool.startswith("tshark")]
        scapy = [r for r in rows if r.fmt == fmt and r.tool.startswith("scapy")]
        for r in rows:
            if r.fmt != fmt:
                continue
            rss, rss_pf = _mem_text(r.rss_bytes, r.frames)
            anon, anon_pf = _mem_text(r.anon_bytes, r.frames)
            target = ""
            ratios = ""
            if r.tool in (OURS, OURS_NUMPY):
                rate_ok = r.rate >= TARGET_RATE[fmt]
                cpu_ok = r.cpu_rate >= TARGET_RATE[fmt]
                budget = TARGET_BYTES_PER_FRAME * r.frames + TARGET_FIXED_BYTES
                mem_ok = r.anon_bytes is not None and r.anon_bytes <= budget
                rss_ok = r.rss_bytes is not None and r.rss_bytes <= budget
                target = (f">={TARGET_RATE[fmt] / 1e6:.1f}M/s wall {'met' if rate_ok else 'MISSED'}, "
                          f"CPU {'met' if cpu_ok else 'MISSED'}; "
                          f"mem<={budget / 1e6:.0f}MB anon {'met' if mem_ok else 'MISSED'}, "
                          f"RSS {'met' if rss_ok else 'MISSED'}")
                same = [t for t in tshark if t.frames == r.frames] or tshark[-1:]
                at = "" if not same or same[0].frames == r.frames else f" at {same[0].frames:,}"
                parts = [f"{ratio(r.rate / same[0].rate)} tshark{at} (CPU {ratio(r.cpu_rate / same[0].cpu_rate)})"
                         ] if same else []
                parts += [f"{ratio(r.rate / scapy[0].rate)} scapy (CPU {ratio(r.cpu_rate / scapy[0].cpu_rate)})"
                          ] if scapy else []
                ratios = ", ".join(parts)
            elif ours:
                mine = [o for o in ours if o.frames == r.frames] or ours[-1:]
                ratios = f"ours {ratio(mine[0].rate / r.rate)}"
            table.append([fmt, r.tool, f"{r.frames:,}", f"{r.seconds:.3f}", f"{r.rate / 1e3:,.1f}k",
                          f"{r.cpu_rate / 1e3:,.1f}k",
                          f"{r.file_bytes / r.seconds / 1e6:,.0f}", rss, rss_pf, anon, anon_pf,
                          ratios, target, r.note])
    headers = ["format", "decoder", "frames", "seconds", "frames/s", "frames/CPU-s", "MB/s", "peak RSS MB",
               "B/frame RSS", "peak anon MB", "B/frame anon", "ratio", "target", "note"]
    return tabulate(table, headers=headers, disable_numparse=True)


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(float(s)) for s in text.split(",") if s.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, e.g. 100000,1000000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_decode", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="frame counts of the test files (default 100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep generated files for the next run")
    parser.add_argument("--dir", type=Path, default=None, help="cache folder (default: $TMPDIR/dr-inspect-bench)")
    parser.add_argument("--formats", default="pcap,pcapng")
    parser.add_argument("--repeat", type=int, default=2, help="runs of ours per file (best time)")
    parser.add_argument("--tshark-max", type=int, default=100_000,
                        help="run tshark on files up to this many frames (it does ~40k frames/s)")
    parser.add_argument("--scapy-frames", type=int, default=20_000)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--no-scapy", action="store_true")
    parser.add_argument("--no-numpy", action="store_true",
                        help="leave out the numpy-only decoder (DR_INSPECT_NATIVE=0) rows")
    parser.add_argument("--profile", type=int, default=0,
                        help="also run ours under cProfile on the largest file, top N functions")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000, 30_000] if args.quick else [100_000, 1_000_000])
    scapy_frames = min(args.scapy_frames, 2_000) if args.quick else args.scapy_frames
    formats = [f for f in args.formats.split(",") if f]
    if any(f not in ("pcap", "pcapng") for f in formats):
        parser.error("--formats: pcap and/or pcapng")
    run_tshark = not args.no_tshark and shutil.which("tshark") is not None
    if not args.no_tshark and not run_tshark:
        progress("tshark not installed (apt-get install tshark): its rows are left out")
    work = cache_dir(args.dir)
    generated: list[Path] = []
    rows: list[Row] = []
    try:
        progress("baseline interpreter (numpy + pandas imported)")
        base = baseline()
        for fmt in formats:
            for n in sizes:
                path = _ensure(work / f"single-{n}.{fmt}", n, generated)
                warm_page_cache(path)
                rows.append(_ours(path, n, fmt, max(1, args.repeat), base,
                                  args.profile if n == sizes[-1] and fmt == formats[0] else 0))
                if native.available() and not args.no_numpy:
                    rows.append(_ours(path, n, fmt, max(1, args.repeat), base, 0, OURS_NUMPY))
                if run_tshark and n <= max(args.tshark_max, sizes[0]):
                    rows.append(_tshark(path, n, fmt, max(1, args.repeat)))
            if not args.no_scapy:
                path = _ensure(work / f"single-{scapy_frames}.{fmt}", scapy_frames, generated)
                rows.append(_scapy(path, scapy_frames, fmt))
    finally:
        if not args.keep:
            for path in generated:
                path.unlink(missing_ok=True)
    kernels = "compiled kernels built" if native.available() else \
        "compiled kernels NOT built (no C compiler at install): numpy only"
    print(f"decoder benchmark ({kernels}; {', '.join(formats)}; frames of ~{rows[0].file_bytes / rows[0].frames:.0f} B "
          f"on average; baseline interpreter RSS {base.hwm_kb / 1024:.0f} MB; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")
    print(render(rows))
    print(f"targets: ours >= {TARGET_RATE['pcap'] / 1e6:.1f} M frames/s classic pcap, "
          f">= {TARGET_RATE['pcapng'] / 1e6:.1f} M/s pcapng; peak memory <= "
          f"{TARGET_BYTES_PER_FRAME} B/frame + {TARGET_FIXED_BYTES / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
