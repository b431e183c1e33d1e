"""verify on Dask: the local engine's report, computed bucket by bucket on a cluster.

  1. decode     one task per capture file (per byte range of a big plain pcap file: ranges.py)
                -> Parquet shards + small extracts (shards.py)
  2. VIPs       learned on the extracts (non-TCP frames, SYN/SYN-ACK/RST, first frame per MAC
                pair): the bucket key needs them
  3. shuffle    one task per shard: its TCP frames into buckets by client endpoint (buckets.py)
  4. clocks     one task per bucket: first-sighting deltas per pair of points; the offsets are
                the local engine's, found by rank selection over all buckets (offsets.py)
  5. topology   learned on the extracts with the clocks corrected
  6. correlate  one task per bucket: the local correlator with the set's topology and clocks
                pinned (merge.py); the ARP/ND table once, from the non-TCP frames
  7. rules      one task per bucket: the rules over the per-frame tables, reduced to the
                set's results (bucket_rules.py); the flows merged in the local engine's order
                (merge.py); then the local rule engine on flows, ARP/ND and points, and the
                report (adapter.build_report)
Every task reads and writes files under one shard folder: on a multi-node cluster it must be
storage every worker and this process see at the same path (as must the capture files).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.distributed import adapter
from dr_inspect.distributed.buckets import VipEndpoints, partition_shard, sentinels
from dr_inspect.distributed.bucket_rules import (bucket_local, evaluate_bucket, reduce_rule,
                                                 table_files)
from dr_inspect.distributed.merge import ROW_TABLES, BucketResult, correlate_bucket, merge_buckets
from dr_inspect.distributed.offsets import bucket_deltas, bucket_files, estimate
from dr_inspect.distributed.points import FileRoute, PointPlan, decode_jobs, plan_points
from dr_inspect.distributed.ranges import decode_range, discard, join_ranges, plan_ranges
from dr_inspect.distributed.shards import DecodedFile, concat_rows, decode_to_shards
from dr_inspect.errors import InputError, MissingToolError, TopologyError
from dr_inspect.model import VerifyReport
from dr_inspect.options import VerifyOptions

BUCKET_ROWS = 1_000_000        # TCP frames per bucket aimed at: a bucket's correlation memory
Progress = Callable[[str], None]


@dataclass
class DaskOptions:
    """Where and how the engine runs."""

    scheduler: str | None = None       # address of a running scheduler; None: a LocalCluster
    workers: int = 2                   # LocalCluster workers (one thread each)
    memory_limit: str | None = None    # per LocalCluster worker ("4GB"; None: Dask's auto)
    shard_dir: Path | None = None      # parent of the run's shard folder (default: the temp dir)
    buckets: int | None = None         # None: from the frame count (BUCKET_ROWS) and workers
    processes: bool = True             # LocalCluster workers as processes (False: threads)
    on_start: Callable[[str], None] | None = None   # told the dashboard address once running


@contextmanager
def dask_client(opts: DaskOptions) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MissingToolError("--engine dask needs Dask: pip install 'dr-inspect[dask]' "
                               "(dask[distributed] and pyarrow)") from None
    import logging

    if opts.scheduler:
        try:
            client = Client(opts.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler {opts.scheduler}: {exc}") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                raise InputError(f"the Dask scheduler {opts.scheduler} has no workers "
                                 "(start some: dask worker " + opts.scheduler + ")") from None
            yield client
        return
    with LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=opts.processes,
                      memory_limit=opts.memory_limit or "auto", dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


class _Runner:
    """Maps a function over items on the cluster, reporting progress per finished task."""

    def __init__(self, client: Any, progress: Progress | None):
        self.client = client
        self.progress = progress

    def __call__(self, fn: Callable, items: list, *args: Any, stage: str = "") -> list:
        from dask.distributed import as_completed

        if not items:
            return []
        futures = self.client.map(fn, items, *[[a] * len(items) for a in args], pure=False)
        at = {f.key: n for n, f in enumerate(futures)}
        # each result fetched as its task ends and its future dropped (as_completed holds the
        # only other reference until then), so the workers free it: they do not hold a whole
        # stage's results (e.g. every bucket's flows) until its last task ends
        pending = as_completed(futures, with_results=True)
        del futures
        results: list = [None] * len(items)
        done = 0
        for future, result in pending:      # (not enumerate: its tuple would keep the future)
            results[at[future.key]] = result
            del future
            done += 1
            if stage and self.progress is not None:
                self.progress(f"{stage} {done}/{len(items)}")
        return results

    def each(self, fn: Callable, rows: list[tuple], stage: str = "") -> list:
        """fn(*row) per row."""
        return self(lambda row: fn(*row), rows, stage=stage)


def _extract_table(plan: PointPlan, decoded: list[DecodedFile]) -> pd.DataFrame:
    """The files' extracts as one combined table (every point, frames in the set's numbers)."""
    per_point: dict[str, list[pd.DataFrame]] = {n: [] for n in plan.names}
    for n, d in enumerate(decoded):
        route = plan.routes.get(n)
        if route is None or d.extract is None or not len(d.extract):
            continue
        ex = d.extract
        ex["frame"] = ex["frame"].to_numpy() + route.offset
        iface = ex["interface"].to_numpy()
        for iid, name in route.points.items():
            per_point[name].append(ex[iface == iid])
    tables = {}
    for name, parts in per_point.items():
        parts = [p for p in parts if len(p)]
        df = concat_rows(parts) if parts else pd.DataFrame()
        tables[name] = df.sort_values("frame", kind="stable").reset_index(drop=True) \
            if len(parts) > 1 else df
    for d in decoded:
        d.extract = None          # copied into the tables: not held twice for the whole run
    return adapter.combine_points(tables)


def _learn_vips(ctx: adapter.CaptureContext, learn_pk: pd.DataFrame, names: list[str]
                ) -> tuple[adapter.CaptureContext, Any, Any, bool]:
    """(context, pins, learned VIPs, whether the manifest's VIP was used), as analyse_paths
    falls back to it."""
    learn_pk = adapter.with_ts(learn_pk, {})
    pins = adapter.pins_for(ctx, ctx.options.vips)
    try:
        return ctx, pins, adapter.learn_on(learn_pk, names, pins), False
    except TopologyError:
        file_pins = ctx.loaded.file_pins
        if ctx.options.vips or (file_pins and file_pins.vips) or not ctx.manifest_vip:
            raise
        ctx = adapter.with_fallback_vip(ctx)
        pins = adapter.pins_for(ctx, ctx.options.vips)
        return ctx, pins, adapter.learn_on(learn_pk, names, pins), True


def _decode(run: _Runner, ctx: adapter.CaptureContext, root: Path
            ) -> tuple[PointPlan, list[DecodedFile]]:
    plan, jobs = decode_jobs(ctx.cs)
    shard_dir = root / "shards"
    shard_dir.mkdir()
    decoded = _decode_files(run, [(Path(f).resolve(), name) for f, name in jobs], shard_dir)
    points = plan_points(plan, decoded)
    if not points.frames:
        raise InputError("no frames could be read from "
                         + ", ".join(str(p.file) for p in ctx.cs.points)
                         + (f" ({'; '.join(points.errors)})" if points.errors else ""))
    return points, decoded


def _decode_files(run: _Runner, jobs: list[tuple[Path, str]], shard_dir: Path
                  ) -> list[DecodedFile]:
    """Every file decoded into shards: a big plain pcap file by byte range (ranges.py), any
    other whole; a file whose ranges do not join is decoded again whole."""
    plans = [plan_ranges(path) for path, _ in jobs]
    tasks = [(decode_to_shards, (str(path), name, str(shard_dir), n)) if plan is None else
             (decode_range, (str(path), name, str(shard_dir), n, k, rng))
             for n, ((path, name), plan) in enumerate(zip(jobs, plans))
             for k, rng in enumerate(plan or [None])]
    results = iter(run.each(lambda fn, args: fn(*args), tasks, stage="decoding file"))
    decoded: list[DecodedFile | None] = []
    for plan in plans:
        if plan is None:
            decoded.append(next(results))
            continue
        parts = [next(results) for _ in plan]
        joined = join_ranges(parts)
        if joined is None:
            discard(parts)
        decoded.append(joined)
    again = [n for n, d in enumerate(decoded) if d is None]
    redone = run.each(decode_to_shards, [(str(jobs[n][0]), jobs[n][1], str(shard_dir), n)
                                         for n in again], stage="decoding file again")
    for n, d in zip(again, redone):
        decoded[n] = d
    return decoded


def _shuffle(run: _Runner, points: PointPlan, decoded: list[DecodedFile], vips: VipEndpoints,
             n_buckets: int, root: Path) -> list[str]:
    """Bucket folders that received frames, in bucket order."""
    bucket_dir = root / "buckets"
    bucket_dir.mkdir()
    shards = [(s, FileRoute(points.routes[n].offset + off, points.routes[n].points))
              for n, d in enumerate(decoded) if n in points.routes
              for s, off in zip(d.shards, d.shard_offsets)]
    rows = [(shard, route, vips, n_buckets, str(bucket_dir), k)
            for k, (shard, route) in enumerate(shards)]
    run.each(partition_shard, rows, stage="shuffling shard")
    for n, d in enumerate(decoded):
        for s in d.shards:
            Path(s).unlink(missing_ok=True)
    return [str(p) for p in sorted(bucket_dir.glob("b*"))]


def verify_on_dask(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                   progress: Progress | None = None, dask: DaskOptions | None = None
                   ) -> VerifyReport:
    """dr_inspect.verify on a Dask cluster: the same report, computed bucket by bucket."""
    return analyse_on_dask(paths, options, progress=progress, dask=dask)[0]


def analyse_on_dask(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                    progress: Progress | None = None, dask: DaskOptions | None = None
                    ) -> tuple[VerifyReport, pd.DataFrame]:
    """(report, flows table) of verify_on_dask: the flows are the local analysis's (the JSON
    report's connection list)."""
    opts = dask or DaskOptions()
    ctx = adapter.capture_context(list(paths), options)
    with dask_client(opts) as client:
        if opts.on_start is not None:
            opts.on_start(f"dask dashboard: {client.dashboard_link} "
                          f"({len(client.scheduler_info()['workers'])} workers)")
        root = Path(tempfile.mkdtemp(prefix="dr-inspect-dask-", dir=opts.shard_dir))
        try:
            return _run(_Runner(client, progress), ctx, opts, root,
                        len(client.scheduler_info()["workers"]))
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _run(run: _Runner, ctx: adapter.CaptureContext, opts: DaskOptions, root: Path,
         n_workers: int) -> tuple[VerifyReport, pd.DataFrame]:
    points, decoded = _decode(run, ctx, root)
    names = points.names
    learn_pk = _extract_table(points, decoded)
    ctx, pins, learned_vips, fallback = _learn_vips(ctx, learn_pk, names)
    n_buckets = opts.buckets or max(2 * max(n_workers, 1), math.ceil(points.frames / BUCKET_ROWS))
    buckets = _shuffle(run, points, decoded, VipEndpoints(tuple(learned_vips.vips)), n_buckets,
                       root)
    src_macs = set().union(*(d.src_macs for d in decoded))
    del decoded

    extra = sentinels(points.spans, src_macs)
    tables, files = zip(*[bucket_files(str(root), i) for i in range(len(buckets))]) \
        if buckets else ((), ())
    found = run.each(bucket_deltas, [(b, names, extra, t, f)
                                     for b, t, f in zip(buckets, tables, files)],
                     stage="clock offsets, bucket")
    counts: dict = {}
    for _, c in found:
        for pair, n in c.items():
            counts[pair] = counts.get(pair, 0) + n
    offsets = estimate(list(files), counts, sum(n for n, _ in found), names, ctx.facts.hosts,
                       run)

    learn_pk = adapter.with_ts(learn_pk, offsets[1])
    topo = adapter.learn_on(learn_pk, names, pins, learned_vips)
    pinned = adapter.pinned_pins(pins, adapter.Pinned(vips=learned_vips, topology=topo))
    outs = [table_files(str(root), i) for i in range(max(len(tables), 1))]
    parts: list[BucketResult] = run.each(
        correlate_bucket, [(t, names, extra, pinned, ctx.options.window_ms, offsets,
                            ctx.facts.capture_span, o)
                           for t, o in zip(tables or [None], outs)], stage="correlating bucket")
    # every rule over a per-frame table evaluated bucket by bucket, or those tables merged whole
    whole = any(r.table in ROW_TABLES and not bucket_local(r) for r in ctx.rules)
    corr, new_ids = merge_buckets(parts, names, offsets, rows=whole)
    for p in parts:
        p.flows = p.flow_keys = None      # merged into corr: not held twice
    corr.topology = topo
    non_tcp = learn_pk.iloc[np.flatnonzero(~adapter.is_tcp(learn_pk))].reset_index(drop=True)
    corr.tables["arp"] = adapter.global_arp_table(non_tcp, topo)
    corr.packets = _truncation_rows(points, names)
    presolved = {} if whole else _bucket_rules(run, parts, new_ids, corr, ctx, names, offsets,
                                               len(points.summaries))
    if run.progress is not None:
        run.progress("rules")
    report = adapter.build_report(ctx, corr, points.summaries, points.errors, presolved)
    if fallback:
        report.errors.append(f"no DR traffic pattern found; used the VIP {ctx.manifest_vip} "
                             "named in manifest.toml")
    adapter.join_host_causes(ctx, report)
    return report, corr.tables["flows"]


def _bucket_rules(run: _Runner, parts: list[BucketResult], new_ids: list[np.ndarray], corr: Any,
                  ctx: adapter.CaptureContext, names: list[str], offsets: tuple[dict, dict],
                  n_points: int) -> dict[str, Any]:
    """The per-frame tables' rules evaluated per bucket and reduced; corr's forwards table
    becomes the rows the report reads of it (bucket_rules.report_rows, in order)."""
    topo = corr.topology
    local = [r for r in ctx.rules if bucket_local(r)]
    variables = adapter.rule_variables(topo, ctx, n_points)
    max_evidence = ctx.options.max_evidence
    rs_names = [rs.name for rs in topo.real_servers]
    found = run.each(evaluate_bucket, [(p.tables, ids, local, variables, max_evidence, names,
                                        offsets[1], rs_names)
                                       for p, ids in zip(parts, new_ids)], stage="rules, bucket")
    rows = concat_rows([b.report_rows for b in found])
    order = np.lexsort((rows.pop("k2").to_numpy(), rows.pop("k1").to_numpy(),
                        rows.pop("k0").to_numpy()))
    for b in found:
        b.report_rows = None
    corr.tables["forwards"] = rows.take(order).reset_index(drop=True)
    return {r.id: reduce_rule(r, [b.partials[r.id] for b in found], max_evidence) for r in local}


def _truncation_rows(points: PointPlan, names: list[str]) -> pd.DataFrame:
    """A packets table standing for the set where the report reads it (frames cut by snaplen per
    point): one narrow row per truncated frame."""
    counts = [points.truncated.get(n, 0) for n in names]
    total = sum(counts)
    return pd.DataFrame({
        "point": pd.Categorical.from_codes(np.repeat(np.arange(len(names)), counts),
                                           categories=names),
        "caplen": np.zeros(total, dtype=np.int8), "wirelen": np.ones(total, dtype=np.int8)})
