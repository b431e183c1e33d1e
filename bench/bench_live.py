"""Live capture and watch under the heaviest load the lab's traffic generator makes.

    python -m bench.bench_live [--requests 3000] [--concurrency 32] [--watch-seconds 10]

Brings up the lab (prefix t5, nft director, 2 real servers), then
1. capture: both bridges captured while the generator runs `--requests` at `--concurrency`;
   prints packets/s per point (frames in the file / generator wall time) and tcpdump's counts;
2. watch: the generator loops for `--watch-seconds` while watch verifies every `--interval`;
   prints packets/s per point, kernel drops, the worst lag of the decoder behind the capture,
   the slowest window verification, the largest unread pcap backlog, and whether watch kept up
   (lag and verify time below one interval, no kernel drops).
The lab is removed at the end, also on error or Ctrl-C. Needs root.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from dr_inspect.decode import decode_file
from dr_inspect.lab import LabConfig, lab_down, lab_up, run_traffic
from dr_inspect.live.capture import CapturePoint, start_capture
from dr_inspect.live.tcpdump import DEFAULT_SNAPLEN
from dr_inspect.live.watch import WATCH_SNAPLEN, watch
from dr_inspect.options import VerifyOptions

PREFIX = "t5"


def points(state) -> list[CapturePoint]:
    return [CapturePoint("br_e", "br_e", netns=state.switch_netns, role="vip-segment"),
            CapturePoint("br_lvs", "br_lvs", netns=state.switch_netns, role="rs-segment")]


def bench_capture(state, requests: int, concurrency: int, folder: Path, snaplen: int | None) -> None:
    out = folder / "capture"
    session = start_capture(points(state), out, snaplen=snaplen or DEFAULT_SNAPLEN)
    try:
        t0 = time.perf_counter()
        result = run_traffic(state, requests=requests, concurrency=concurrency, timeout=5.0)
        elapsed = time.perf_counter() - t0
    finally:
        summary = session.stop()
    print(f"capture: {result.ok}/{result.requests} requests in {elapsed:.2f} s "
          f"({result.ok / elapsed:.0f} req/s, concurrency {concurrency})")
    print(f"  {'point':<8} {'frames':>8} {'pkts/s':>9} {'received':>9} {'dropped':>8}")
    for p in summary.points:
        frames = sum(len(decode_file(f).packets) for f in p.files)
        print(f"  {p.name:<8} {frames:>8} {frames / elapsed:>9.0f} {p.received!s:>9} {p.dropped!s:>8}")


def bench_watch(state, seconds: float, interval: float, concurrency: int, snaplen: int | None) -> None:
    stop = threading.Event()
    served = [0]

    def load() -> None:
        while not stop.is_set():
            served[0] += run_traffic(state, requests=concurrency * 20, concurrency=concurrency,
                                     fresh_arp=False, timeout=5.0).ok

    thread = threading.Thread(target=load, daemon=True)
    worst_interval = [0.0]

    def on_interval(v) -> None:
        worst_interval[0] = max(worst_interval[0], v.eval_ms)
        lag = "-" if v.lag_ms is None else f"{v.lag_ms:.0f}"
        print(f"  #{v.index:<3} {v.status:<8} +{sum(v.packets.values()):>6} pkts  window "
              f"{v.window_packets:>7}  lag {lag:>5} ms  verify {v.eval_ms:>6.0f} ms  failing {','.join(v.failing) or '-'}  drops {v.drops}", file=sys.stderr)

    thread.start()
    try:
        t0 = time.perf_counter()
        result = watch(points(state), interval=interval, duration=seconds,
                       options=VerifyOptions(scheduler="flow-hash"),
                       snaplen=snaplen or WATCH_SNAPLEN,
                       on_interval=on_interval)
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        thread.join(120)
    report = result.report
    print(f"watch: {served[0]} requests served in {elapsed:.1f} s, {result.intervals} intervals of "
          f"{interval:g} s, verdict {report.verdict}")
    print(f"  {'point':<8} {'frames':>8} {'pkts/s':>9} {'dropped':>8}")
    drops = 0
    for p in report.points:
        drops += p.kernel_drops or 0
        print(f"  {p.name:<8} {p.frames:>8} {p.frames / elapsed:>9.0f} {p.kernel_drops!s:>8}")
    lag = result.max_lag_ms or 0.0
    kept_up = lag < interval * 1e3 and result.max_eval_ms < interval * 1e3 and drops == 0
    print(f"  worst decoder lag {lag:.0f} ms, slowest window verify {result.max_eval_ms:.0f} ms, "
          f"largest unread backlog {result.max_backlog_bytes / 1024:.0f} KiB")
    print(f"  kept up: {'yes' if kept_up else 'NO'} (lag and verify below the {interval:g} s "
          f"interval, no kernel drops)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--watch-seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--snaplen", type=int, default=None,
                    help="default: capture 262144, watch 512 (their defaults)")
    args = ap.parse_args(argv)
    lab_down(PREFIX)
    state = lab_up(LabConfig(prefix=PREFIX, director="nft", real_servers=2))
    folder = Path(tempfile.mkdtemp(prefix="dr-bench-live-"))
    try:
        bench_capture(state, args.requests, args.concurrency, folder, args.snaplen)
        bench_watch(state, args.watch_seconds, args.interval, args.concurrency, args.snaplen)
    finally:
        lab_down(PREFIX)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
