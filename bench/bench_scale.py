"""Scale benchmark of `verify --engine dask` beside the local engine, on healthy synthetic two-point
DR capture sets of 10M, 50M and 200M frames (over both points), on 1 and 2 Dask workers.

    python -m bench.bench_scale --quick                 # 200k frames: a smoke run (CI-sized)
    python -m bench.bench_scale                         # 10M, 50M, 200M frames (hours, disk!)
    python -m bench.bench_scale --sizes 2000000 --workers 1,2 --memory-limit 2GB --keep

Every row is one run in a fresh interpreter. The local row is `dr_inspect.verify` (bench/measure.py's
verify job: its peak RSS is the whole run's). A dask row starts a LocalCluster of process
workers (one thread each) first, then times verify_on_dask alone; it reports the client
process's peak RSS (it holds the merged rule tables) and each worker's (ru_maxrss); the workers
import dr-inspect before the clock starts (a running cluster's workers have). Sets are
generated once into the cache folder as rotated files of PART_FRAMES frames per point (each part
its own seed, client network and time slot), so no set needs more memory to generate than one
part. The big sizes need ~1 GB of disk per million frames, twice over while they are shuffled.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tabulate import tabulate

if __package__ in (None, ""):   # run as `python bench/<script>.py`: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen  # noqa: E402
from bench.bench_decode import parse_sizes  # noqa: E402
from bench.measure import ROOT, cache_dir, progress, run_child, warm_page_cache  # noqa: E402

SIZES = [10_000_000, 50_000_000, 200_000_000]
QUICK = [200_000]
PART_FRAMES = 4_000_000           # frames per point per generated file
GOAL_PER_CORE = 1.5               # dask per worker within 1.5x of the local engine's frames/s


def _write_part(directory: Path, i: int, frames_per_point: int, start_ns: int) -> tuple[dict, int]:
    """Part i of a set: br_e.pcap<i> and br_lvs.pcap<i>, its times from start_ns on. Returns
    (frames per point, the part's last time)."""
    lab = gen.SyntheticLab(client_net=f"10.{1 + i % 250}.0.0")
    points = gen.dr_set_frames(frames_per_point, lab=lab, seed=1 + i)
    first = min(int(f.ts_ns.min()) for f in points.values())
    last = start_ns
    counts = {}
    for name, frames in points.items():
        frames = frames.with_columns(ts_ns=frames.ts_ns - first + start_ns)
        gen.write_capture(directory / f"{name}.pcap{i}", frames, if_name=name)
        counts[name] = len(frames)
        last = max(last, int(frames.ts_ns.max()))
    return counts, last


def ensure_set(directory: Path, frames: int) -> Path:
    """A healthy two-point set of about `frames` frames in all, as rotated files."""
    if (directory / "manifest.toml").is_file():
        return directory
    progress(f"generating {directory.name} (~{frames:,} frames in all)")
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per_point = max(1, frames // 2)
    parts = max(1, -(-per_point // PART_FRAMES))
    totals = {"br_e": 0, "br_lvs": 0}
    start = 1_700_000_000 * 10**9
    for i in range(parts):
        counts, last = _write_part(tmp, i, -(-per_point // parts), start)
        start = last + 10**9          # the next part a second later
        for k, v in counts.items():
            totals[k] += v
    lines = ["[capture]", 'tool = "bench/bench_scale.py"', 'host = "synthetic"', ""]
    for name, count in totals.items():
        files = ", ".join(f'"{name}.pcap{i}"' for i in range(parts))
        lines += ["[[points]]", f'name = "{name}"', f'file = "{name}.pcap0"', f"files = [{files}]",
                  f'role = "{gen.ROLES[name]}"', f"received = {count}", "dropped = 0", ""]
    (tmp / "manifest.toml").write_text("\n".join(lines))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def _set_frames(directory: Path) -> int:
    import tomllib
    manifest = tomllib.loads((directory / "manifest.toml").read_text())
    return sum(int(p["received"]) for p in manifest["points"])


# -- the dask child ---------------------------------------------------------------------------

def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(directory: str, workers: int, memory_limit: str | None, shard_dir: str | None) -> int:
    """One dask run: prints a JSON line (seconds, verdict, client and worker peak RSS)."""
    import logging

    from dask.distributed import Client, LocalCluster

    from dr_inspect.distributed import DaskOptions, verify_on_dask

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory_limit or "auto", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        # the workers import dr-inspect before the clock starts, as a running cluster's have
        client.run(importlib.import_module, "dr_inspect.distributed.merge")
        t0, c0 = time.perf_counter(), time.process_time()
        report = verify_on_dask([directory], dask=DaskOptions(
            scheduler=cluster.scheduler_address,
            shard_dir=Path(shard_dir) if shard_dir else None))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        peaks = client.run(_peak_kb)
    print(json.dumps({"seconds": seconds, "client_cpu_seconds": cpu, "client_hwm_kb": _peak_kb(),
                      "worker_hwm_kb": sorted(peaks.values()), "verdict": report.verdict,
                      "flows": report.flows, "hops": report.hops}))
    return 0


def run_dask(directory: Path, workers: int, memory_limit: str | None, shard_dir: Path | None
             ) -> dict:
    argv = [sys.executable, "-m", "bench.bench_scale", "--child", str(directory),
            "--workers", str(workers)]
    if memory_limit:
        argv += ["--memory-limit", memory_limit]
    if shard_dir:
        argv += ["--shard-dir", str(shard_dir)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="frames per set, over both points (default 10M,50M,200M)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} frames (smoke run)")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts (default 1,2)")
    parser.add_argument("--memory-limit", default=None, help="per Dask worker, e.g. 2GB")
    parser.add_argument("--no-local", action="store_true",
                        help="skip the local engine (a set larger than this machine's memory)")
    parser.add_argument("--keep", action="store_true", help="keep generated sets for the next run")
    parser.add_argument("--dir", type=Path, default=None, help="cache folder for the sets")
    parser.add_argument("--shard-dir", type=Path, default=None, help="where dask writes shards")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.child:
        return child(args.child, worker_counts[0], args.memory_limit,
                     str(args.shard_dir) if args.shard_dir else None)
    sizes = args.sizes or (QUICK if args.quick else SIZES)
    work = cache_dir(args.dir)
    rows, ok = [], True
    for n in sizes:
        directory = work / f"scale-{n}"
        fresh = not (directory / "manifest.toml").is_file()
        try:
            ensure_set(directory, n)
            frames = _set_frames(directory)
            warm_page_cache(directory)
            local_rate = None
            if not args.no_local:
                progress(f"local engine on {directory.name} ({frames:,} frames)")
                try:
                    res = run_child(["verify", str(directory)])
                except RuntimeError as exc:      # e.g. killed: the set is larger than memory
                    rows.append([f"{frames:,}", "local", "", "", "", "", "", "", f"failed: {exc}",
                                 "", ""])
                else:
                    local_rate = frames / res.seconds
                    ok &= res.data["verdict"] == "pass"
                    rows.append([f"{frames:,}", "local", "", f"{res.seconds:.1f}",
                                 f"{local_rate / 1e3:,.0f}k", "", f"{res.hwm_kb / 1024:,.0f}", "",
                                 res.data["verdict"], res.data["flows"], ""])
            for w in worker_counts:
                progress(f"dask engine, {w} worker(s), on {directory.name}")
                try:
                    d = run_dask(directory, w, args.memory_limit, args.shard_dir)
                except subprocess.CalledProcessError as exc:
                    ok = False
                    rows.append([f"{frames:,}", "dask", w, "", "", "", "", "",
                                 f"failed: exit code {exc.returncode}", "", ""])
                    continue
                rate = frames / d["seconds"]
                ok &= d["verdict"] == "pass"
                goal = ""
                if local_rate:
                    per_core = local_rate / (rate / w)
                    goal = f"{per_core:.2f}x ({'met' if per_core <= GOAL_PER_CORE else 'MISSED'})"
                rows.append([f"{frames:,}", "dask", w, f"{d['seconds']:.1f}",
                             f"{rate / 1e3:,.0f}k", f"{rate / w / 1e3:,.0f}k",
                             f"{d['client_hwm_kb'] / 1024:,.0f}",
                             " / ".join(f"{k / 1024:,.0f}" for k in d["worker_hwm_kb"]),
                             d["verdict"], d["flows"], goal])
        finally:
            if fresh and not args.keep:
                shutil.rmtree(directory, ignore_errors=True)
    print(f"scale benchmark: healthy two-point DR sets, frames over both points; {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(tabulate(rows, headers=["frames", "engine", "workers", "seconds", "frames/s",
                                  "frames/s per worker", "client peak RSS MB",
                                  "worker peak RSS MB", "verdict", "flows",
                                  f"local frames/s / dask per worker (goal <= {GOAL_PER_CORE}x)"],
                   disable_numparse=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
