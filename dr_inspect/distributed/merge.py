"""Per-bucket correlation and the merge of the buckets' tables into the set's tables.

A bucket's tables are the local engine's rows of its connections. Merged, each table is put
back in the local engine's order and the flow ids renumbered as the local engine numbers them:
  to_vip   the TCP view's order: point (in report order), then frame;
  forwards and replies   (clock-adjusted time, point name, frame);
  flows    by first clock-adjusted time of the connection, then client port, then the
           connection's first to_vip row in view order; flow_id = position + 1;
Only the flows table and the hops' number come to the client; the per-frame tables stay in
files, read back whole (merged_rows) only when a rule needs them whole (see bucket_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.distributed.adapter import Correlation, analyse_bucket
from dr_inspect.distributed.buckets import read_bucket
from dr_inspect.distributed.shards import concat_rows, read_table, write_table

ROW_TABLES = ("to_vip", "forwards", "replies")


@dataclass
class BucketResult:
    flows: pd.DataFrame
    flow_keys: pd.DataFrame          # per flows row: first_ts, client_port, point_rank, frame
    stats: dict
    hops: int
    tables: dict[str, str]           # per-frame table -> its file
    frames: int = 0


def point_rank(points: pd.Series, names: list[str]) -> np.ndarray:
    """Each row's point as its place in `names` (judged once per distinct point)."""
    rank = {n: i for i, n in enumerate(names)}
    if isinstance(points.dtype, pd.CategoricalDtype):
        codes, uniq = points.cat.codes.to_numpy(), points.cat.categories
    else:
        codes, uniq = pd.factorize(np.asarray(points, dtype=object))
    return np.array([rank.get(str(u), len(names)) for u in uniq] + [len(names)],
                    dtype=np.int64)[codes]


def adjusted_ts(table: pd.DataFrame, applied: dict[str, int]) -> np.ndarray:
    """The rows' clock-adjusted times (ts_ns less their point's applied offset)."""
    names = list(applied)
    shift = np.array([applied[n] for n in names] + [0], dtype=np.int64)
    return table["ts_ns"].to_numpy(dtype=np.int64) - shift[point_rank(table["point"], names)]


def order_keys(name: str, table: pd.DataFrame, names: list[str], applied: dict[str, int]
               ) -> np.ndarray:
    """Per row of a per-frame table, its order key in the set's table (3 int64 columns)."""
    frame = table["frame"].to_numpy(dtype=np.int64)
    if name == "to_vip":
        cols = [point_rank(table["point"], names), frame, np.zeros(len(table), np.int64)]
    else:
        cols = [adjusted_ts(table, applied), point_rank(table["point"], sorted(names)), frame]
    return np.stack(cols, axis=1) if len(table) else np.zeros((0, 3), np.int64)


def flow_keys(tables: dict[str, pd.DataFrame], names: list[str], applied: dict[str, int]
              ) -> pd.DataFrame:
    """What orders the bucket's flows among the set's (see the module doc)."""
    flows, tovt = tables["flows"], tables["to_vip"]
    n = len(flows)
    first_ts = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    at = tovt["flow_id"].to_numpy(dtype=np.int64) - 1
    np.minimum.at(first_ts, at, adjusted_ts(tovt, applied))
    first_row = np.full(n, len(tovt), dtype=np.int64)
    np.minimum.at(first_row, at, np.arange(len(tovt)))
    first_row = np.minimum(first_row, max(len(tovt) - 1, 0))
    return pd.DataFrame({
        "first_ts": first_ts,
        "client_port": flows["client_port"].to_numpy(dtype=np.int64),
        "point_rank": point_rank(tovt["point"], names)[first_row] if len(tovt) else
        np.zeros(n, np.int64),
        "frame": tovt["frame"].to_numpy(dtype=np.int64)[first_row] if len(tovt) else
        np.zeros(n, np.int64)})


def correlate_bucket(table: str | None, names: list[str], extra: dict[str, pd.DataFrame],
                     pins, window_ms: float, offsets: tuple[dict[str, int], dict[str, int]],
                     capture_span: tuple[int, int] | None, out: dict[str, str]) -> BucketResult:
    """The local correlation of one bucket (its combined packets table, see bucket_deltas; None:
    a set without TCP frames), with the set's topology and clock offsets. Its per-frame tables
    are written to the files `out` names; the flows come back."""
    pk = read_table(table) if table else read_bucket(None, names, extra)
    corr = analyse_bucket(pk, names, pins, window_ms, offsets, capture_span)
    for name, path in out.items():
        write_table(corr.tables[name], Path(path))
    return BucketResult(flows=corr.tables["flows"], stats=corr.stats, hops=len(corr.hops),
                        flow_keys=flow_keys(corr.tables, names, offsets[1]), tables=out,
                        frames=len(pk))


def renumbered(parts: list[BucketResult]) -> tuple[list[np.ndarray], np.ndarray]:
    """(per bucket: new flow id of each old flow id - 1; the flows' merged order)."""
    keys = pd.concat([p.flow_keys for p in parts], ignore_index=True)
    order = np.lexsort((keys["frame"].to_numpy(), keys["point_rank"].to_numpy(),
                        keys["client_port"].to_numpy(), keys["first_ts"].to_numpy()))
    new_id = np.empty(len(order), dtype=np.int64)
    new_id[order] = np.arange(1, len(order) + 1)
    sizes = np.cumsum([0] + [len(p.flow_keys) for p in parts])
    return [new_id[a:b] for a, b in zip(sizes[:-1], sizes[1:])], order


def _with_ids(t: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    if len(t):
        t = t.copy(deep=False)
        t["flow_id"] = ids[t["flow_id"].to_numpy(dtype=np.int64) - 1]
    return t


def merged_rows(name: str, parts: list[BucketResult], new_ids: list[np.ndarray],
                names: list[str], applied: dict[str, int]) -> pd.DataFrame:
    """One per-frame table of the set, from the buckets' files, in the local engine's order."""
    merged = concat_rows([_with_ids(read_table(p.tables[name], packets=False), ids)
                          for p, ids in zip(parts, new_ids)])
    if not len(merged):
        return merged
    keys = order_keys(name, merged, names, applied)
    return merged.take(np.lexsort(keys.T[::-1])).reset_index(drop=True)


def merge_buckets(parts: list[BucketResult], names: list[str],
                  offsets: tuple[dict[str, int], dict[str, int]], rows: bool
                  ) -> tuple[Correlation, list[np.ndarray]]:
    """One Correlation of the buckets': flows, stats and hop count; the per-frame tables too when
    `rows` (else the caller fills them). Packets, topology and arp are left to the caller. Also
    returns each bucket's new flow ids (see renumbered)."""
    new_ids, flow_order = renumbered(parts)
    flows = concat_rows([_with_ids(p.flows, ids) for p, ids in zip(parts, new_ids)])
    tables = {"flows": flows.take(flow_order).reset_index(drop=True) if len(flows) else flows}
    if rows:
        for name in ROW_TABLES:
            tables[name] = merged_rows(name, parts, new_ids, names, offsets[1])
    stats: dict = {}
    for p in parts:
        for k, v in p.stats.items():
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                stats[k] = stats.get(k, 0) + int(v)
            else:
                stats.setdefault(k, v)
    # only the hops' number is reported
    hops = pd.DataFrame(index=pd.RangeIndex(sum(p.hops for p in parts)))
    return Correlation(packets=pd.DataFrame(), topology=None, offsets_estimated=offsets[0],
                       offsets_applied=offsets[1], hops=hops, tables=tables,
                       stats=stats), new_ids
