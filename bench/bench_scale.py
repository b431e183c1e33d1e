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

import numpy as np

from tabulate import tabulate

if __package__ in (None, ""):   # run as `python bench/<script>.py`: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen  # noqa: E402
from bench.bench_decode import parse_sizes  # noqa: E402
from bench.measure import (ROOT, cache_dir, progress, run_child, size_bytes,  # noqa: E402
                           warm_page_cache)

SIZES = [10_000_000, 50_000_000, 200_000_000]
QUICK = [200_000]
PART_FRAMES = 4_000_000           # frames per point per generated file
GOAL_PER_CORE = 1.5               # dask per worker within 1.5x of the local engine's frames/s
FAULT_EVERY = 1000                # every 1000th connection's forwarded copies carry the TTL fault
TTL_FAULT = 3                     # hops lower than the director makes them: DR002 fails
TRUTH = "truth.json"              # the generator's counts, beside manifest.toml
BYTES_PER_FRAME = 362             # the generator's mean frame on disk (pcap record header included)
BEYOND_RAM = 1.1                  # --beyond-ram: capture files this many times the machine's RAM


def _write_part(directory: Path, i: int, frames_per_point: int, start_ns: int,
                fault_every: int) -> tuple[dict, int, dict]:
    """Part i of a set: br_e.pcap<i> and br_lvs.pcap<i>, its times from start_ns on, every
    fault_every-th connection's forwarded copies with the TTL fault (0: none). Returns (frames
    per point, the part's last time, the part's truth counts)."""
    lab = gen.SyntheticLab(client_net=f"10.{1 + i % 250}.0.0")
    points = gen.dr_set_frames(frames_per_point, lab=lab, seed=1 + i)
    points["br_lvs"], truth = _inject_ttl_fault(points, fault_every)
    first = min(int(f.ts_ns.min()) for f in points.values())
    last = start_ns
    counts = {}
    for name, frames in points.items():
        frames = frames.with_columns(ts_ns=frames.ts_ns - first + start_ns)
        gen.write_capture(directory / f"{name}.pcap{i}", frames, if_name=name)
        counts[name] = len(frames)
        last = max(last, int(frames.ts_ns.max()))
    return counts, last, truth


def _inject_ttl_fault(points: dict[str, gen.Frames], fault_every: int
                      ) -> tuple[gen.Frames, dict[str, int]]:
    """br_lvs with the copies of every fault_every-th connection TTL_FAULT hops lower than the
    director makes them (a DR002 violation each, nothing else changes), and the truth counts."""
    vip_side, copies = points["br_e"], points["br_lvs"]
    tcp = copies.conn >= 0
    faulty = tcp & (copies.conn % fault_every == fault_every // 2) if fault_every else tcp & False
    truth = {"connections": int(np.unique(vip_side.conn[vip_side.conn >= 0]).size),
             "copies": int(tcp.sum()),
             "replies": int(((vip_side.conn >= 0) & ~vip_side.c2s.astype(bool)).sum()),
             "faulty_copies": int(faulty.sum())}
    return copies.with_columns(ttl=np.where(faulty, copies.ttl - TTL_FAULT, copies.ttl)), truth


def ensure_set(directory: Path, frames: int, fault_every: int = FAULT_EVERY) -> Path:
    """A two-point set of about `frames` frames in all, as rotated files, with the TTL fault on
    every fault_every-th connection (0: healthy); truth.json holds the generator's counts."""
    if (directory / "manifest.toml").is_file() and (directory / TRUTH).is_file():
        return directory
    progress(f"generating {directory.name} (~{frames:,} frames in all)")
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per_point = max(1, frames // 2)
    parts = max(1, -(-per_point // PART_FRAMES))
    totals = {"br_e": 0, "br_lvs": 0}
    truth = {"connections": 0, "copies": 0, "replies": 0, "faulty_copies": 0}
    start = 1_700_000_000 * 10**9
    for i in range(parts):
        counts, last, part_truth = _write_part(tmp, i, -(-per_point // parts), start, fault_every)
        start = last + 10**9          # the next part a second later
        for k, v in counts.items():
            totals[k] += v
        for k, v in part_truth.items():
            truth[k] += v
    lines = ["[capture]", 'tool = "bench/bench_scale.py"', 'host = "synthetic"', ""]
    for name, count in totals.items():
        files = ", ".join(f'"{name}.pcap{i}"' for i in range(parts))
        lines += ["[[points]]", f'name = "{name}"', f'file = "{name}.pcap0"', f"files = [{files}]",
                  f'role = "{gen.ROLES[name]}"', f"received = {count}", "dropped = 0", ""]
    (tmp / "manifest.toml").write_text("\n".join(lines))
    (tmp / TRUTH).write_text(json.dumps(dict(truth, frames=sum(totals.values()))))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def expected_rules(truth: dict[str, int]) -> dict[str, tuple[str, int | None, int]]:
    """rule id -> (status, checked, violations) the generator's truth implies (checked None: not
    counted by the generator, e.g. the ARP rules)."""
    copies, conns, replies = truth["copies"], truth["connections"], truth["replies"]
    want: dict[str, tuple[str, int | None, int]] = {
        r: ("pass", copies, 0) for r in ("DR001", "DR007", "DR010", "DR012")}
    want["DR002"] = ("fail" if truth["faulty_copies"] else "pass", copies, truth["faulty_copies"])
    want.update({r: ("pass", replies, 0) for r in ("DR003", "DR004")})
    want.update({r: ("pass", conns, 0) for r in ("DR008", "DR009", "DR011")})
    want.update({r: ("pass", None, 0) for r in ("DR005", "DR006", "DR013")})
    return want


def truth_mismatches(truth: dict[str, int], verdict: str, flows: int,
                     rules: dict[str, list] | None) -> list[str]:
    """How a run's verdict, flows and rules ({id: [status, checked, violations]}) differ from the
    generator's truth (empty: they agree)."""
    want_verdict = "fail" if truth["faulty_copies"] else "pass"
    out = [f"verdict {verdict}, truth {want_verdict}"] if verdict != want_verdict else []
    if flows != truth["connections"]:
        out.append(f"flows {flows}, truth {truth['connections']}")
    for rule, (status, checked, violations) in expected_rules(truth).items():
        if rules is None:
            break
        got = rules.get(rule)
        if got is None or got[0] != status or got[2] != violations or \
                (checked is not None and got[1] != checked):
            out.append(f"{rule} {got}, truth {[status, checked, violations]}")
    return out


def _set_frames(directory: Path) -> int:
    import tomllib
    manifest = tomllib.loads((directory / "manifest.toml").read_text())
    return sum(int(p["received"]) for p in manifest["points"])


# -- the dask child ---------------------------------------------------------------------------

def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def child(directory: str, workers: int, memory_limit: str | None, shard_dir: str | None,
          buckets: int | None = None) -> int:
    """One dask run: prints a JSON line (seconds, verdict, rules, client and worker peak RSS,
    the client's RSS before the run)."""
    import logging

    from dask.distributed import Client, LocalCluster

    from dr_inspect.distributed import DaskOptions, verify_on_dask

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory_limit or "auto", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        # the workers import dr-inspect before the clock starts, as a running cluster's have
        client.run(importlib.import_module, "dr_inspect.distributed.merge")
        start_kb = _rss_kb()          # the client with its scheduler, before any work
        t0, c0 = time.perf_counter(), time.process_time()
        report = verify_on_dask([directory], dask=DaskOptions(
            scheduler=cluster.scheduler_address,
            shard_dir=Path(shard_dir) if shard_dir else None, buckets=buckets))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        peaks = client.run(_peak_kb)
    print(json.dumps({"seconds": seconds, "client_cpu_seconds": cpu, "client_hwm_kb": _peak_kb(),
                      "client_start_kb": start_kb,
                      "worker_hwm_kb": sorted(peaks.values()), "verdict": report.verdict,
                      "flows": report.flows, "hops": report.hops,
                      "rules": {r.id: [r.status, r.checked, r.violations] for r in report.rules}}))
    return 0


def run_dask(directory: Path, workers: int, memory_limit: str | None, shard_dir: Path | None,
             buckets: int | None = None) -> dict:
    """One dask run in a fresh interpreter (child's JSON; CalledProcessError if it failed)."""
    argv = [sys.executable, "-m", "bench.bench_scale", "--child", str(directory),
            "--workers", str(workers)]
    if buckets:
        argv += ["--buckets", str(buckets)]
    if memory_limit:
        argv += ["--memory-limit", memory_limit]
    if shard_dir:
        argv += ["--shard-dir", str(shard_dir)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def beyond_ram_frames() -> int:
    """Frames of a set whose capture files are BEYOND_RAM times this machine's memory."""
    return int(BEYOND_RAM * ram_bytes() / BYTES_PER_FRAME)


def _verdict_cell(truth: dict, verdict: str, flows: int, rules: dict | None) -> tuple[str, bool]:
    wrong = truth_mismatches(truth, verdict, flows, rules)
    return (f"{verdict}, " + ("= truth" if not wrong else "TRUTH DIFFERS: " + "; ".join(wrong)),
            not wrong)


def _local_row(directory: Path, frames: int, label: str, truth: dict
               ) -> tuple[list, float | None, bool]:
    progress(f"local engine on {directory.name} ({frames:,} frames)")
    try:
        res = run_child(["verify", str(directory)])
    except RuntimeError as exc:      # e.g. killed: the set is larger than memory
        return [label, "local", "", "", "", "", "", "", f"failed: {exc}", "", ""], None, \
            False
    rate = frames / res.seconds
    cell, ok = _verdict_cell(truth, res.data["verdict"], res.data["flows"], None)
    return [label, "local", "", f"{res.seconds:.1f}", f"{rate / 1e3:,.0f}k", "",
            f"{res.hwm_kb / 1024:,.0f}", "", cell, res.data["flows"], ""], rate, ok


def _dask_row(directory: Path, frames: int, label: str, truth: dict, w: int,
              local_rate: float | None, args: argparse.Namespace) -> tuple[list, bool]:
    progress(f"dask engine, {w} worker(s), on {directory.name}")
    try:
        d = run_dask(directory, w, args.memory_limit, args.shard_dir, args.buckets)
    except subprocess.CalledProcessError as exc:
        return [label, "dask", w, "", "", "", "", "",
                f"failed: exit code {exc.returncode}", "", ""], False
    rate = frames / d["seconds"]
    cell, ok = _verdict_cell(truth, d["verdict"], d["flows"], d["rules"])
    goal = ""
    if local_rate:
        per_core = local_rate / (rate / w)
        goal = f"{per_core:.2f}x ({'met' if per_core <= GOAL_PER_CORE else 'MISSED'})"
    return [label, "dask", w, f"{d['seconds']:.1f}", f"{rate / 1e3:,.0f}k",
            f"{rate / w / 1e3:,.0f}k", f"{d['client_hwm_kb'] / 1024:,.0f}",
            " / ".join(f"{k / 1024:,.0f}" for k in d["worker_hwm_kb"]), cell, d["flows"],
            goal], ok


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="frames per set, over both points (default 10M,50M,200M)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} frames (smoke run)")
    parser.add_argument("--beyond-ram", action="store_true",
                        help=f"one set of capture files {BEYOND_RAM}x this machine's memory "
                             "(dask only: implies --no-local)")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts (default 1,2)")
    parser.add_argument("--memory-limit", default=None, help="per Dask worker, e.g. 2GB")
    parser.add_argument("--no-local", action="store_true",
                        help="skip the local engine (a set larger than this machine's memory)")
    parser.add_argument("--keep", action="store_true", help="keep generated sets for the next run")
    parser.add_argument("--dir", type=Path, default=None, help="cache folder for the sets")
    parser.add_argument("--shard-dir", type=Path, default=None, help="where dask writes shards")
    parser.add_argument("--buckets", type=int, default=None,
                        help="Dask buckets (default: from the frame count)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    if args.child:
        return child(args.child, worker_counts[0], args.memory_limit,
                     str(args.shard_dir) if args.shard_dir else None, args.buckets)
    sizes = [beyond_ram_frames()] if args.beyond_ram else \
        args.sizes or (QUICK if args.quick else SIZES)
    work = cache_dir(args.dir)
    rows, ok = [], True
    for n in sizes:
        directory = work / f"scale-{n}-ttl{FAULT_EVERY}"
        fresh = not (directory / "manifest.toml").is_file()
        try:
            started = time.perf_counter()
            ensure_set(directory, n)
            made = time.perf_counter() - started
            truth = json.loads((directory / TRUTH).read_text())
            frames, on_disk = truth["frames"], size_bytes(directory)
            label = f"{frames:,} ({on_disk / 2**30:.1f} GiB)"
            progress(f"{directory.name}: {frames:,} frames, {on_disk / 2**30:.1f} GiB on disk "
                     f"({on_disk / ram_bytes():.2f}x RAM), generated in {made:.0f} s; truth "
                     f"{truth}")
            if on_disk < ram_bytes():     # else it cannot stay cached: every run reads the disk
                warm_page_cache(directory)
            local_rate = None
            if not (args.no_local or args.beyond_ram):
                row, local_rate, good = _local_row(directory, frames, label, truth)
                rows.append(row)
                ok &= good
            for w in worker_counts:
                row, good = _dask_row(directory, frames, label, truth, w, local_rate, args)
                rows.append(row)
                ok &= good
        finally:
            if fresh and not args.keep:
                shutil.rmtree(directory, ignore_errors=True)
    print(f"scale benchmark: two-point DR sets with the TTL fault on every {FAULT_EVERY}th "
          f"connection (DR002), frames over both points; {os.cpu_count()} CPUs, "
          f"{ram_bytes() / 2**30:.1f} GiB RAM, load average {os.getloadavg()[0]:.1f} at the end")
    print(tabulate(rows, headers=["frames (on disk)", "engine", "workers", "seconds",
                                  "frames/s", "frames/s per worker", "client peak RSS MB",
                                  "worker peak RSS MB", "verdict vs generator truth", "flows",
                                  f"local frames/s / dask per worker (goal <= {GOAL_PER_CORE}x)"],
                   disable_numparse=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
