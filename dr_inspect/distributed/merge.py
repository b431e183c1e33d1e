"""Per-bucket correlation and the merge of the buckets' tables into the set's tables.

A bucket's tables are the local engine's rows of its connections. Merged, each table is put
back in the local engine's order and the flow ids renumbered as the local engine numbers them:
  to_vip   the TCP view's order: point (in report order), then frame;
  forwards and replies   (clock-adjusted time, point name, frame);
  flows    by first clock-adjusted time of the connection, then client port, then the
           connection's first to_vip row in view order; flow_id = position + 1;
  hops     by their packet key (stable: the bucket's order within a key).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dr_inspect.distributed.adapter import Correlation, analyse_bucket
from dr_inspect.distributed.buckets import read_bucket
from dr_inspect.distributed.shards import concat_rows, read_table

ROW_TABLES = ("to_vip", "forwards", "replies")


@dataclass
class BucketResult:
    tables: dict[str, pd.DataFrame]
    hops: pd.DataFrame
    stats: dict
    flow_keys: pd.DataFrame          # per flows row: first_ts, client_port, point_rank, frame
    frames: int = 0
    timings: dict = field(default_factory=dict)


def _point_rank(points: pd.Series, names: list[str]) -> np.ndarray:
    """Each row's point as its place in `names` (judged once per distinct point)."""
    rank = {n: i for i, n in enumerate(names)}
    if isinstance(points.dtype, pd.CategoricalDtype):
        codes, uniq = points.cat.codes.to_numpy(), points.cat.categories
    else:
        codes, uniq = pd.factorize(np.asarray(points, dtype=object))
    return np.array([rank.get(str(u), len(names)) for u in uniq] + [len(names)],
                    dtype=np.int64)[codes]


def _adjusted(table: pd.DataFrame, applied: dict[str, int]) -> np.ndarray:
    """The rows' clock-adjusted times (ts_ns less their point's applied offset)."""
    names = list(applied)
    shift = np.array([applied[n] for n in names] + [0], dtype=np.int64)
    return table["ts_ns"].to_numpy(dtype=np.int64) - shift[_point_rank(table["point"], names)]


def flow_keys(tables: dict[str, pd.DataFrame], names: list[str], applied: dict[str, int]
              ) -> pd.DataFrame:
    """What orders the bucket's flows among the set's (see the module doc)."""
    flows, tovt = tables["flows"], tables["to_vip"]
    n = len(flows)
    first_ts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    at = tovt["flow_id"].to_numpy(dtype=np.int64) - 1
    np.minimum.at(first_ts, at, _adjusted(tovt, applied))
    first_row = np.full(n, len(tovt), dtype=np.int64)
    np.minimum.at(first_row, at, np.arange(len(tovt)))
    first_row = np.minimum(first_row, max(len(tovt) - 1, 0))
    return pd.DataFrame({
        "first_ts": first_ts,
        "client_port": flows["client_port"].to_numpy(dtype=np.int64),
        "point_rank": _point_rank(tovt["point"], names)[first_row] if len(tovt) else
        np.zeros(n, np.int64),
        "frame": tovt["frame"].to_numpy(dtype=np.int64)[first_row] if len(tovt) else
        np.zeros(n, np.int64)})


def correlate_bucket(table: str | None, names: list[str], extra: dict[str, pd.DataFrame],
                     pins, window_ms: float, offsets: tuple[dict[str, int], dict[str, int]],
                     capture_span: tuple[int, int] | None) -> BucketResult:
    """The local correlation of one bucket (its combined packets table, see bucket_deltas; None:
    a set without TCP frames), with the set's topology and clock offsets."""
    pk = read_table(table) if table else read_bucket(None, names, extra)
    corr = analyse_bucket(pk, names, pins, window_ms, offsets, capture_span)
    tables = {k: corr.tables[k] for k in ROW_TABLES + ("flows",)}
    return BucketResult(tables=tables, hops=corr.hops, stats=corr.stats,
                        flow_keys=flow_keys(tables, names, offsets[1]), frames=len(pk))


def _renumbered(parts: list[BucketResult]) -> tuple[list[np.ndarray], np.ndarray]:
    """(per bucket: new flow id of each old flow id - 1; the flows' merged order)."""
    keys = pd.concat([p.flow_keys for p in parts], ignore_index=True)
    order = np.lexsort((keys["frame"].to_numpy(), keys["point_rank"].to_numpy(),
                        keys["client_port"].to_numpy(), keys["first_ts"].to_numpy()))
    new_id = np.empty(len(order), dtype=np.int64)
    new_id[order] = np.arange(1, len(order) + 1)
    sizes = np.cumsum([0] + [len(p.flow_keys) for p in parts])
    return [new_id[a:b] for a, b in zip(sizes[:-1], sizes[1:])], order


def _row_order(name: str, table: pd.DataFrame, names: list[str], applied: dict[str, int]
               ) -> np.ndarray:
    frame = table["frame"].to_numpy(dtype=np.int64)
    if name == "to_vip":
        return np.lexsort((frame, _point_rank(table["point"], names)))
    by_name = _point_rank(table["point"], sorted(names))
    return np.lexsort((frame, by_name, _adjusted(table, applied)))


def merge_buckets(parts: list[BucketResult], names: list[str],
                  offsets: tuple[dict[str, int], dict[str, int]]) -> Correlation:
    """One Correlation of the buckets' (packets, topology, arp left for the caller)."""
    new_ids, flow_order = _renumbered(parts)
    tables: dict[str, pd.DataFrame] = {}
    for name in ROW_TABLES + ("flows",):
        pieces = []
        for p, ids in zip(parts, new_ids):
            t = p.tables[name]
            if len(t):
                t = t.copy(deep=False)
                t["flow_id"] = ids[t["flow_id"].to_numpy(dtype=np.int64) - 1]
            pieces.append(t)
        merged = concat_rows(pieces)
        if name == "flows":
            order = flow_order
        else:
            order = _row_order(name, merged, names, offsets[1]) if len(merged) else []
        tables[name] = merged.take(order).reset_index(drop=True) if len(merged) else merged
    hops = concat_rows([p.hops for p in parts])
    if len(hops):
        hops = hops.take(np.argsort(hops["k"].to_numpy(), kind="stable")).reset_index(drop=True)
    stats: dict = {}
    for p in parts:
        for k, v in p.stats.items():
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                stats[k] = stats.get(k, 0) + int(v)
            else:
                stats.setdefault(k, v)
    return Correlation(packets=pd.DataFrame(), topology=None, offsets_estimated=offsets[0],
                       offsets_applied=offsets[1], hops=hops, tables=tables, stats=stats)
