"""Clock offsets between points over all buckets, exactly as estimate_offsets finds them.

estimate_offsets compares, per pair of points, the first-sighting times of every packet seen at
both (a packet is its strict key: all its sightings are in one bucket) and takes the median of
the deltas in their densest window two clock tolerances wide. Each bucket writes its deltas per
pair to disk; the counts are summed, the densest window is found on the buckets' counts per
tolerance-wide bin, and the median in it by rank selection over histograms of every bucket's
deltas (a few rounds, each narrowing the bin holding the wanted rank by NBINS), so no process
ever holds all deltas.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.distributed.adapter import CLOCK_TOLERANCE_NS, pair_deltas, resolve_offsets
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


def bucket_tolerance_bins(path: str, pairs: list[Pair]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pair: the tolerance-wide bins its deltas fall in (floor(delta / tolerance)) and how
    many in each."""
    deltas = _load(path)
    return [np.unique(np.floor_divide(deltas.get(p, np.zeros(0, np.int64)), CLOCK_TOLERANCE_NS),
                      return_counts=True) for p in pairs]


def _windows(files: list[str], pairs: list[Pair], run: MapBuckets) -> dict[Pair, tuple[int, int]]:
    """Per pair: (start of the densest window two tolerances wide, deltas in it), chosen as
    hops._densest_offset chooses it (the one nearer zero between equally dense ones)."""
    per_bucket = run(bucket_tolerance_bins, files, pairs)
    out = {}
    for i, pair in enumerate(pairs):
        bins = np.concatenate([h[i][0] for h in per_bucket]).astype(np.int64)
        n = np.concatenate([h[i][1] for h in per_bucket]).astype(np.int64)
        lo = int(bins.min())
        counts = np.bincount(bins - lo, weights=n).astype(np.int64)
        pair_n = counts[:-1] + counts[1:] if len(counts) > 1 else counts
        best = np.flatnonzero(pair_n == pair_n.max())
        start = (best + lo) * CLOCK_TOLERANCE_NS
        k = int(np.argmin(np.abs(start + CLOCK_TOLERANCE_NS)))
        out[pair] = (int(start[k]), int(pair_n[best[k]]))
    return out


def _select(files: list[str], wanted: list[tuple[Pair, int, int, int]], run: MapBuckets
            ) -> dict[tuple[Pair, int], int]:
    """The value of rank r (0-based) among each pair's deltas in [lo, lo + span), over all
    buckets, per wanted (pair, r, lo, span)."""
    state = {(p, r): [lo, -(-span // NBINS), r] for p, r, lo, span in wanted}  # lo, width, rank
    done: dict[tuple[Pair, int], int] = {}
    while len(done) < len(state):
        todo = [w for w in state if w not in done]
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


def _offsets(files: list[str], pairs: list[Pair], run: MapBuckets) -> dict[Pair, int]:
    """Per pair: the median of its deltas in their densest window (hops._densest_offset)."""
    windows = _windows(files, pairs, run)
    wanted = [(p, r, start, 2 * CLOCK_TOLERANCE_NS) for p, (start, n) in windows.items()
              for r in sorted({n // 2, max(n // 2 - 1, 0)})]
    values = _select(files, wanted, run)
    return {p: _median(values, p, n) for p, (_, n) in windows.items()}


def estimate(files: list[str], counts: dict[Pair, int], n_tcp: int, points: list[str],
             hosts: dict[str, str] | None, run: MapBuckets) -> tuple[dict[str, int], dict[str, int]]:
    """(estimated, applied) offset per point, as estimate_offsets over the whole set."""
    hosts = hosts or {}
    est = {p: 0 for p in points}
    if len(points) < 2 or n_tcp == 0:
        return est, dict(est)
    offset = _offsets(files, [pair for pair, n in counts.items() if n], run)
    return resolve_offsets(points, hosts, lambda p, ref: (
        (offset[(p, ref)], counts[(p, ref)]) if counts.get((p, ref), 0) else None))


def bucket_files(root: str, bucket: int) -> tuple[str, str]:
    """(combined packets table, deltas) of bucket number `bucket`."""
    return (str(Path(root) / f"bucket-{bucket:05d}.arrow"),
            str(Path(root) / f"deltas-{bucket:05d}.npz"))
