"""verify --engine dask at scale: a 20M-frame set with a known fault, on worker processes whose
memory limit is about half the set's packets table (or less), gives the generator's truth.

The set is bench/bench_scale.py's (rotated two-point pcap files; every 1000th connection's
forwarded copies are 3 hops short of TTL, so DR002 fails on exactly those copies and nothing
else does). Its truth (connections, copies, replies, faulty copies) comes from the generator, not
from a verify run. The Dask run is bench_scale's child process: a LocalCluster of 2 worker
processes, whose peak RSS (ru_maxrss) and the client's are reported back. The set larger than
the machine's memory is the benchmark's (python -m bench.bench_scale --beyond-ram); figures in
the README.

DR_INSPECT_DASK_SCALE_FRAMES sets another size (e.g. 2000000 for a quick local run).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT, require

import dr_inspect

FRAMES = int(os.environ.get("DR_INSPECT_DASK_SCALE_FRAMES", 20_000_000))
BUCKET_FRAMES = 500_000          # frames per bucket: what sets a worker's peak memory
WORKER_LIMIT = "1.2GB"           # per worker: about half the 20M-frame set's packets table
WORKER_LIMIT_BYTES = 12 * 10**8  # (Dask restarts a worker at 95% of it: ~300 MB above the peak)


def _bench():
    sys.path.insert(0, str(ROOT))
    from bench import bench_scale, gen

    return bench_scale, gen


def _table_bytes_per_frame(folder: Path) -> float:
    """Bytes per row of the local engine's packets table, on a small set of the same traffic."""
    _, gen = _bench()
    gen.write_dr_set(folder, 20_000)
    tables = [dr_inspect.decode_file(f).packets for f in sorted(folder.glob("*.pcap"))]
    return sum(t.memory_usage(deep=True).sum() for t in tables) / sum(len(t) for t in tables)


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory):
    """(truth, the dask run's JSON, bytes of the set's packets table in memory)."""
    require(all(importlib.util.find_spec(m) is not None for m in ("distributed", "pyarrow")),
            "dask[distributed] and pyarrow not installed (pip install -e '.[dask]')")
    bench_scale, _ = _bench()
    tmp = tmp_path_factory.mktemp("dask-scale")
    table_bytes = FRAMES * _table_bytes_per_frame(tmp / "sample")
    folder = tmp / "set"
    try:
        bench_scale.ensure_set(folder, FRAMES)
        truth = bench_scale.json.loads((folder / bench_scale.TRUTH).read_text())
        run = bench_scale.run_dask(folder, 2, WORKER_LIMIT, tmp,
                                   buckets=math.ceil(truth["frames"] / BUCKET_FRAMES))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert not list(tmp.glob("dr-inspect-dask-*")), "the shard folder is removed"
    # the figures, for a CI log (pytest -s or -rP)
    print(f"dask scale: {truth['frames']:,} frames, packets table {table_bytes / 2**20:,.0f} MiB, "
          f"worker limit {WORKER_LIMIT}, peak RSS workers "
          f"{[kb // 1024 for kb in run['worker_hwm_kb']]} MiB, client "
          f"{run['client_hwm_kb'] // 1024} MiB ({run['client_start_kb'] // 1024} MiB before the "
          f"run), {run['seconds']:.0f} s")
    return truth, run, table_bytes


def test_truth_is_a_failing_set() -> None:
    """The truth the next tests compare with: a fault on 1 connection in 1000."""
    bench_scale, _ = _bench()
    truth = {"connections": 5000, "copies": 40_000, "replies": 30_000, "faulty_copies": 37}
    want = bench_scale.expected_rules(truth)
    assert want["DR002"] == ("fail", 40_000, 37)
    assert want["DR001"] == ("pass", 40_000, 0)
    assert bench_scale.truth_mismatches(truth, "pass", 5000, None) == ["verdict pass, truth fail"]
    rules = {r: [s, c if c is not None else 1, v] for r, (s, c, v) in want.items()}
    assert bench_scale.truth_mismatches(truth, "fail", 5000, rules) == []
    rules["DR002"] = ["fail", 40_000, 36]
    assert bench_scale.truth_mismatches(truth, "fail", 5000, rules) == \
        ["DR002 ['fail', 40000, 36], truth ['fail', 40000, 37]"]


def test_scale_set_verdict_and_counts_are_the_truth(scale_run) -> None:
    bench_scale, _ = _bench()
    truth, run, _ = scale_run
    assert truth["frames"] >= 0.99 * FRAMES
    assert truth["faulty_copies"] >= truth["copies"] // 2000 > 0
    assert run["verdict"] == "fail"
    assert run["rules"]["DR002"] == ["fail", truth["copies"], truth["faulty_copies"]]
    failing = sorted(r for r, (status, _, _) in run["rules"].items() if status != "pass")
    assert failing == ["DR002"]
    assert run["flows"] == truth["connections"]
    assert run["hops"] == truth["copies"]
    assert bench_scale.truth_mismatches(truth, run["verdict"], run["flows"], run["rules"]) == []


def test_scale_set_memory_is_bounded(scale_run) -> None:
    """Workers stay under a limit about half the set's packets table (the work is bucketed, not
    loaded whole); the client holds per-connection rows, not the set's frames."""
    _, run, table_bytes = scale_run
    assert WORKER_LIMIT_BYTES <= 0.6 * table_bytes, "the limit is not below the table"
    workers = [kb * 1024 for kb in run["worker_hwm_kb"]]
    assert len(workers) == 2
    assert max(workers) < WORKER_LIMIT_BYTES
    # what the run added to the client (its scheduler and imports were there before)
    assert (run["client_hwm_kb"] - run["client_start_kb"]) * 1024 < table_bytes


def test_report_rows_are_compact() -> None:
    """The one row per forwarded copy that comes to the client (the report's delay samples) holds
    the real server and point as codes, not a text object each (~35 bytes a row, not ~150)."""
    require(importlib.util.find_spec("pyarrow") is not None, "pyarrow not installed")
    import numpy as np
    import pandas as pd

    from dr_inspect.distributed.bucket_rules import report_rows

    n = 100_000
    rs = np.array(["rs1", "rs2", "rs3", "gone"], dtype=object)[np.arange(n) % 4]
    fw = pd.DataFrame({"real_server": pd.array(rs, dtype="string"),
                       "delay_us": np.where(np.arange(n) % 5 == 0, np.nan, 12.5),
                       "has_copy": np.ones(n, bool),
                       "copy_point": pd.array(np.full(n, "br_lvs", dtype=object), dtype="string")})
    keys = np.stack([np.arange(n), np.zeros(n, np.int64), np.arange(n)], axis=1)
    rows = report_rows(fw, keys, ["rs1", "rs2", "rs3"])
    assert len(rows) == sum(1 for i in range(n) if i % 4 != 3 and i % 5 != 0)
    assert sorted(rows["real_server"].unique()) == ["rs1", "rs2", "rs3"]
    assert rows.memory_usage(deep=True).sum() / len(rows) < 40


def _slow_square(x: int) -> int:
    import time

    time.sleep(0.05 * (6 - x))        # later items end first: results come back out of order
    return x * x


def test_stage_results_are_released_as_they_arrive() -> None:
    """A stage's results come back in item order, and each is let go on the cluster when it
    arrives (no reference to its future is left), not when the stage's last task ends: the
    workers do not hold every bucket's result at once."""
    require(importlib.util.find_spec("distributed") is not None, "dask[distributed] not installed")
    import time

    from dask.distributed import Client, LocalCluster

    from dr_inspect.distributed.engine import _Runner

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        held: list[int] = []

        def progress(message: str) -> None:
            done, total = (int(x) for x in message.split()[-1].split("/"))
            deadline = time.monotonic() + 10      # the release is sent by the client's loop
            while len(client.refcount) > total - done and time.monotonic() < deadline:
                time.sleep(0.01)
            held.append(len(client.refcount))

        assert _Runner(client, progress)(_slow_square, list(range(6)), stage="s") == \
            [x * x for x in range(6)]
    assert held == [5, 4, 3, 2, 1, 0]
