"""End-to-end verify benchmark on a healthy synthetic two-point DR capture set (br_e + br_lvs):
dr_inspect.verify (decode + topology + correlate + rules) against `tshark -T fields`
only decoding the same files, measured in the same run; prints the verdict (must be pass).

    python -m bench.bench_verify                  # 1M frames per point (mean; ~2M in total)
    python -m bench.bench_verify --quick          # 20k frames per point: a smoke run
    python -m bench.bench_verify --sizes 100000,1000000 --format pcapng --keep

Frames/s and bytes/frame are over both points together. Timing covers the library call only, in
a fresh interpreter (see bench/measure.py); tshark's start-up is measured and excluded. Exit
code 1 when the healthy set does not pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tomllib
from pathlib import Path

from tabulate import tabulate

if __package__ in (None, ""):   # run as `python bench/<script>.py`: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen  # noqa: E402
from bench.bench_decode import parse_sizes, ratio  # noqa: E402
from bench.measure import (  # noqa: E402
    ChildResult, baseline, cache_dir, progress, run_child, size_bytes,
    tshark_seconds, warm_page_cache)

TARGET_RATE = 1.0e6            # frames/s end to end, over both points
TARGET_BYTES_PER_FRAME = 400


def _ensure_set(directory: Path, frames_per_point: int, fmt: str, generated: list[Path]) -> Path:
    if not (directory / "manifest.toml").is_file():
        progress(f"generating {directory.name} (~{frames_per_point} frames per point, {fmt})")
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        gen.write_dr_set(tmp, frames_per_point, fmt=fmt, seed=1)
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
        generated.append(directory)
    return directory


def _point_files(directory: Path) -> tuple[list[Path], int]:
    manifest = tomllib.loads((directory / "manifest.toml").read_text())
    points = manifest["points"]
    return [directory / p["file"] for p in points], sum(int(p["received"]) for p in points)


def _best(job: list[str], repeat: int, label: str) -> tuple[ChildResult, int, int]:
    """Best time of `repeat` runs, with the largest memory figures seen over them."""
    best: ChildResult | None = None
    hwm = anon = 0
    for i in range(repeat):
        progress(f"{label} (run {i + 1}/{repeat})")
        res = run_child(job)
        hwm, anon = max(hwm, res.hwm_kb), max(anon, res.peak_anon_kb)
        if best is None or res.seconds < best.seconds:
            best = res
    assert best is not None
    return best, hwm, anon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_verify", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="frames per point (mean over the two points; default 1000000)")
    parser.add_argument("--quick", action="store_true", help="small size (smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep generated sets for the next run")
    parser.add_argument("--dir", type=Path, default=None, help="cache folder (default: $TMPDIR/dr-inspect-bench)")
    parser.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    parser.add_argument("--repeat", type=int, default=1, help="runs of verify per set (best time)")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode-only breakdown row")
    parser.add_argument("--profile", type=int, default=0,
                        help="also run verify under cProfile on the largest set, top N functions")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([20_000] if args.quick else [1_000_000])
    run_tshark = not args.no_tshark and shutil.which("tshark") is not None
    if not args.no_tshark and not run_tshark:
        progress("tshark not installed (apt-get install tshark): its rows are left out")
    work = cache_dir(args.dir)
    generated: list[Path] = []
    table: list[list[str]] = []
    verdicts: list[tuple[int, dict]] = []
    try:
        progress("baseline interpreter (numpy + pandas imported)")
        base = baseline()
        for n in sizes:
            directory = _ensure_set(work / f"drset-{n}-{args.format}", n, args.format, generated)
            files, frames = _point_files(directory)
            warm_page_cache(directory)
            file_bytes = size_bytes(directory)
            res, hwm, anon = _best(["verify", str(directory)], max(1, args.repeat),
                                   f"verify on {directory.name} ({frames} frames)")
            if args.profile and n == sizes[-1]:
                progress(f"profiling verify on {directory.name} (cProfile, top {args.profile}, stderr)")
                run_child(["verify", str(directory), "--profile", str(args.profile)])
            verdicts.append((n, res.data))
            rss, anon_b = (hwm - base.hwm_kb) * 1024.0, (anon - base.peak_anon_kb) * 1024.0
            rows = [["dr-inspect verify (decode+correlate+rules)", res.seconds, res.cpu_seconds, rss, anon_b]]
            if not args.no_decode:
                dec, dhwm, danon = _best(["decode", *map(str, files)], 1, "decode only, both points")
                rows.append(["dr-inspect decode only", dec.seconds, dec.cpu_seconds, (dhwm - base.hwm_kb) * 1024.0,
                             (danon - base.peak_anon_kb) * 1024.0])
            if run_tshark:
                progress(f"tshark -T fields on {', '.join(f.name for f in files)}")
                t = tshark_seconds(files)
                rows.append([f"tshark -T fields (start-up {t.startup:.2f} s excluded)",
                             t.seconds, t.cpu_seconds, None, None])
            tshark_rate = frames / rows[-1][1] if run_tshark else None
            tshark_cpu_rate = frames / rows[-1][2] if run_tshark else None
            for label, seconds, cpu_seconds, rss_b, anon_bytes in rows:
                r = frames / seconds
                r_cpu = frames / cpu_seconds
                target = ratio_text = ""
                if label.startswith("dr-inspect verify"):
                    mem_ok = anon_bytes / frames < TARGET_BYTES_PER_FRAME
                    rss_ok = rss_b / frames < TARGET_BYTES_PER_FRAME
                    target = (f">=1.0M/s wall {'met' if r >= TARGET_RATE else 'MISSED'}, "
                              f"CPU {'met' if r_cpu >= TARGET_RATE else 'MISSED'}; "
                              f"<{TARGET_BYTES_PER_FRAME} B/frame anon {'met' if mem_ok else 'MISSED'}, "
                              f"RSS {'met' if rss_ok else 'MISSED'}")
                if tshark_rate and not label.startswith("tshark"):
                    ratio_text = f"{ratio(r / tshark_rate)} tshark (CPU {ratio(r_cpu / tshark_cpu_rate)})"
                table.append([f"{frames:,}", label, f"{seconds:.2f}", f"{r / 1e3:,.0f}k",
                              f"{r_cpu / 1e3:,.0f}k",
                              f"{file_bytes / seconds / 1e6:,.0f}",
                              "" if rss_b is None else f"{rss_b / 1e6:.0f}",
                              "" if rss_b is None else f"{rss_b / frames:.0f}",
                              "" if anon_bytes is None else f"{anon_bytes / 1e6:.0f}",
                              "" if anon_bytes is None else f"{anon_bytes / frames:.0f}",
                              ratio_text, target])
    finally:
        if not args.keep:
            for path in generated:
                shutil.rmtree(path, ignore_errors=True)
    from dr_inspect.decode import native
    decoder = "compiled decoder kernels" if native.enabled() else \
        "numpy decoder (compiled kernels not built or DR_INSPECT_NATIVE=0)"
    print(f"verify benchmark: healthy two-point DR set ({args.format}), frames over both points; "
          f"{decoder}; baseline interpreter RSS {base.hwm_kb / 1024:.0f} MB; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(tabulate(table, headers=["frames", "run", "seconds", "frames/s", "frames/CPU-s", "MB/s", "peak RSS MB",
                                   "B/frame RSS", "peak anon MB", "B/frame anon", "ratio", "target"],
                   disable_numparse=True))
    print(f"targets: >= {TARGET_RATE / 1e6:.1f} M frames/s end to end, < {TARGET_BYTES_PER_FRAME} "
          "B/frame peak memory")
    healthy = True
    for n, data in verdicts:
        print(f"\nverdict on the healthy set ({n} frames per point): {data['verdict']} "
              f"(exit code {data['exit_code']}; {data['flows']} flows, {data['hops']} hops)")
        print(tabulate([[r["id"], r["name"], r["status"], r["severity"], r["checked"], r["violations"],
                         r["note"][:60]] for r in data["rules"]],
                       headers=["rule", "name", "status", "severity", "checked", "violations", "note"]))
        for r in data["rules"]:
            if r["status"] == "fail":
                for ev in r["evidence"]:
                    print(f"  {r['id']}: {ev}")
        for err in data["errors"]:
            print(f"  error: {err}")
        healthy = healthy and data["verdict"] == "pass"
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
