"""Clock offsets between points over all buckets, exactly as estimate_offsets finds them.

estimate_offsets compares, per pair of points, the first-sighting times of every packet seen at
both (a packet is its strict key: all its sightings are in one bucket). Each bucket writes its
deltas per pair to disk; the counts are summed, and the medians are found by rank selection
over histograms of every bucket's deltas (a few rounds, each narrowing the bin holding the
wanted rank by NBINS), so no process ever holds all deltas.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.distributed.adapter import CLOCK_TOLERANCE_NS, ESTIMATE_WINDOW_NS, pair_deltas
from dr_inspect.distributed.buckets import read_bucket
from dr_inspect.distributed.shards import write_table

NBINS = 4096
Pair = tuple[str, str]
# runs fn(items, *args) on every bucket, returns the results in order (the engine's map)
MapBuckets = Callable[..., list]


def bucket_deltas(bucket_dir: str, names: list[str], extra: dict[str, pd.DataFrame],
                  table: str, out: str) -> tuple[int, dict[Pair, int]]:
    """Writes the bucket's combined packets table (with the `extra` rows: read_bucket) to
    `table`, for the correlation pass, and its deltas per pair of points to `out` (.npz);
    returns (TCP rows, count per pair). The bucket's pieces are removed."""
    pk = read_bucket(bucket_dir, names, extra)
    write_table(pk, Path(table))
    shutil.rmtree(bucket_dir, ignore_errors=True)
    n_tcp, deltas = pair_deltas(pk)
    del pk
    np.savez(out, **{f"{i}": d for i, d in enumerate(deltas.values())},
             pairs=np.array([f"{p}\x1f{r}" for p, r in deltas], dtype=object).astype(str))
    return n_tcp, {k: len(v) for k, v in deltas.items()}


def _load(path: str) -> dict[Pair, np.ndarray]:
    with np.load(path) as z:
        pairs = [tuple(s.split("\x1f")) for s in z["pairs"].tolist()] if "pairs" in z else []
        return {pair: z[str(i)] for i, pair in enumerate(pairs)}


def bucket_histograms(path: str, queries: list[tuple[Pair, int, int]]) -> list[np.ndarray]:
    """Per query (pair, lo, width): how many of the pair's deltas fall in each of NBINS bins of
    `width` from lo."""
    deltas = _load(path)
    out = []
    for pair, lo, width in queries:
        d = deltas.get(pair, np.zeros(0, dtype=np.int64))
        at = (d - lo) // width
        at = at[(at >= 0) & (at < NBINS)]
        out.append(np.bincount(at, minlength=NBINS))
    return out


def _select(files: list[str], wanted: list[tuple[Pair, int]], run: MapBuckets
            ) -> dict[tuple[Pair, int], int]:
    """The value of rank r (0-based) of each pair's deltas over all buckets."""
    lo = -ESTIMATE_WINDOW_NS
    span = 2 * ESTIMATE_WINDOW_NS + 1
    state = {w: [lo, -(-span // NBINS), w[1]] for w in wanted}      # lo, width, rank left
    done: dict[tuple[Pair, int], int] = {}
    while len(done) < len(wanted):
        todo = [w for w in wanted if w not in done]
        queries = [(w[0], state[w][0], state[w][1]) for w in todo]
        per_bucket = run(bucket_histograms, files, queries)
        for i, w in enumerate(todo):
            counts = np.sum([h[i] for h in per_bucket], axis=0)
            lo, width, rank = state[w]
            b = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
            rank -= int(counts[:b].sum())
            lo += b * width
            if width == 1:
                done[w] = lo
            else:
                state[w] = [lo, -(-width // NBINS), rank]
    return done


def _median(values: dict[tuple[Pair, int], int], pair: Pair, n: int) -> int:
    """int(np.median) of the n deltas of pair from their middle values."""
    if n % 2:
        return int(float(values[(pair, n // 2)]))
    return int(np.mean(np.array([values[(pair, n // 2 - 1)], values[(pair, n // 2)]])))


def estimate(files: list[str], counts: dict[Pair, int], n_tcp: int, points: list[str],
             hosts: dict[str, str] | None, run: MapBuckets) -> tuple[dict[str, int], dict[str, int]]:
    """(estimated, applied) offset per point, as estimate_offsets over the whole set."""
    hosts = hosts or {}
    est = {p: 0 for p in points}
    if len(points) < 2 or n_tcp == 0:
        return est, dict(est)
    used = [pair for pair, n in counts.items() if n]
    wanted = [(pair, r) for pair in used for r in sorted({counts[pair] // 2,
                                                          max(counts[pair] // 2 - 1, 0)})]
    values = _select(files, wanted, run)
    known = {points[0]}
    for _ in range(len(points)):
        progressed = False
        for p in points:
            if p in known:
                continue
            best = None
            for ref in sorted(known):
                n = counts.get((p, ref), 0)
                if n and (best is None or n > best[1]):
                    best = (_median(values, (p, ref), n) + est[ref], n)
            if best is not None:
                est[p] = best[0]
                known.add(p)
                progressed = True
        if not progressed:
            break
    ref_host = hosts.get(points[0], "")
    for p in points:
        if ref_host and hosts.get(p) == ref_host:
            est[p] = 0
    applied = {p: (v if abs(v) > CLOCK_TOLERANCE_NS else 0) for p, v in est.items()}
    return est, applied


def bucket_files(root: str, bucket: int) -> tuple[str, str]:
    """(combined packets table, deltas) of bucket number `bucket`."""
    return (str(Path(root) / f"bucket-{bucket:05d}.arrow"),
            str(Path(root) / f"deltas-{bucket:05d}.npz"))
