"""Buckets: every TCP frame of one client endpoint (client ip:port), at every point, in one bucket.

The key is the client's end of the connection, not a symmetric 5-tuple: what the correlator
matches across points keeps the client endpoint (a forwarded copy whose VIP or port was
rewritten, a reply from the real server's own address; see correlate.copy_keys), and those
rewrites are exactly the faults verify must see. A frame's client end is its source, except
for a frame from a VIP endpoint (or from a VIP port, not to a VIP): then its destination.

A bucket's packets table is rebuilt as the local engine's combined table of those frames (every
point, in point order, frames ascending), plus per point a few non-TCP sentinel rows carrying
what the correlator reads of the whole set: each point's first and last time (capture spans)
and every source MAC seen (the forwarding-drop causes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.decode.schema import ANALYSED_COLUMNS
from dr_inspect.distributed.adapter import combine_points, is_tcp
from dr_inspect.distributed.points import FileRoute
from dr_inspect.distributed.shards import concat_rows, read_table, write_table

_MIX = np.uint64(0x9E3779B97F4A7C15)
# columns a TCP frame never has (ARP, ICMP, ND): not written to the buckets
NOT_TCP = ("arp_op", "arp_sender_mac", "arp_sender_ip", "arp_target_mac", "arp_target_ip",
           "icmp_type", "icmp_code", "nd_target", "nd_lladdr", "nd_flags")


@dataclass(frozen=True)
class VipEndpoints:
    endpoints: tuple[tuple[str, int], ...]

    @property
    def ports(self) -> set[int]:
        return {p for _, p in self.endpoints}


def _ints(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=np.int64, na_value=-1)


def _is_endpoint(ips: pd.Series, ports: np.ndarray, vips: VipEndpoints) -> np.ndarray:
    cats = np.asarray(ips.cat.categories, dtype=object)
    codes = ips.cat.codes.to_numpy()
    out = np.zeros(len(ports), dtype=bool)
    for ip, port in vips.endpoints:
        is_ip = np.append(cats == ip, False)     # code -1 (missing) takes the appended False
        out |= is_ip[codes] & (ports == port)
    return out


def _ip_hashes(ips: pd.Series) -> np.ndarray:
    """A hash of each row's address text, computed once per distinct address."""
    cats = np.asarray(ips.cat.categories, dtype=object).astype(str)
    per_cat = np.append(pd.util.hash_array(cats), np.uint64(0))
    return per_cat[ips.cat.codes.to_numpy()]


def client_buckets(df: pd.DataFrame, vips: VipEndpoints, n_buckets: int) -> np.ndarray:
    """Bucket number of each TCP row of df: a hash of its client ip:port."""
    sport, dport = _ints(df["src_port"]), _ints(df["dst_port"])
    to_vip = _is_endpoint(df["dst_ip"], dport, vips)
    from_vip = _is_endpoint(df["src_ip"], sport, vips) | np.isin(sport, list(vips.ports))
    client_is_dst = ~to_vip & from_vip
    h = np.where(client_is_dst, _ip_hashes(df["dst_ip"]), _ip_hashes(df["src_ip"]))
    port = np.where(client_is_dst, dport, sport).astype(np.uint64)
    mixed = pd.util.hash_array(h ^ ((port + np.uint64(1)) * _MIX))
    return (mixed % np.uint64(n_buckets)).astype(np.int64)


def partition_shard(shard: str, route: FileRoute, vips: VipEndpoints, n_buckets: int,
                    out_dir: str, shard_no: int) -> dict[int, int]:
    """Split one shard's TCP frames into out_dir/b<bucket>/s<shard_no>.parquet, with their
    point name and frame number in the set. Returns rows per bucket."""
    df = read_table(shard)
    # (nor the columns no verify stage reads: the combined table leaves them out)
    df = df[[c for c in df.columns if c not in NOT_TCP and c in ANALYSED_COLUMNS]
            ].iloc[np.flatnonzero(is_tcp(df))]
    if not len(df):
        return {}
    if route.offset:
        df["frame"] = df["frame"].to_numpy() + route.offset
    iface = df["interface"].to_numpy()
    names = sorted(set(route.points.values()))
    lookup = {iid: names.index(name) for iid, name in route.points.items()}
    codes = np.array([lookup[int(i)] for i in np.unique(iface)])[np.searchsorted(
        np.unique(iface), iface)]
    df["point"] = pd.Categorical.from_codes(codes, categories=names)
    bucket = client_buckets(df, vips, n_buckets)
    order = np.argsort(bucket, kind="stable")
    bounds = np.flatnonzero(np.diff(bucket[order])) + 1
    counts = {}
    for part in np.split(order, bounds):
        b = int(bucket[part[0]])
        where = Path(out_dir) / f"b{b:05d}"
        where.mkdir(exist_ok=True)
        write_table(df.iloc[part], where / f"s{shard_no:06d}.arrow")
        counts[b] = len(part)
    return counts


def sentinels(spans: dict[str, tuple[int, int]], src_macs: set[str]) -> dict[str, pd.DataFrame]:
    """Per point with frames: non-TCP rows at its first and last time; the first point's rows also
    carry every source MAC of the set ('' for a frame without one)."""
    out = {}
    macs = sorted(src_macs)
    for i, (name, (lo, hi)) in enumerate(spans.items()):
        extra = macs if i == 0 else []
        out[name] = pd.DataFrame({
            "frame": np.full(2 + len(extra), -1, dtype=np.int64),
            "ts_ns": np.array([lo, hi] + [lo] * len(extra), dtype=np.int64),
            "src_mac": pd.Categorical([None, None] + [m or None for m in extra])})
    return out


def read_bucket(bucket_dir: str | None, names: list[str],
                extra: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The combined packets table of one bucket as combine_points makes it (`point` a
    Categorical of `names`, the points in that order, each one's frames ascending), with the
    `extra` rows (sentinels) after all frames."""
    files = sorted(Path(bucket_dir).glob("*.arrow")) if bucket_dir else []
    parts = [read_table(f) for f in files]
    if extra:
        # the sentinel rows with every column of the schema (all missing but a few)
        rows = combine_points({n: extra[n] for n in names if n in extra})
        rows["point"] = np.asarray(rows["point"], dtype=object)
        parts.append(rows[[c for c in rows.columns if c in parts[0].columns]] if parts else rows)
    if not parts:
        return combine_points({n: pd.DataFrame() for n in names})
    df = concat_rows(parts)
    rank = {n: i for i, n in enumerate(names)}
    point = df.pop("point").array
    codes = np.array([rank[str(c)] for c in point.categories], dtype=np.int64)[point.codes]
    sentinel = df["frame"].to_numpy() < 0
    order = np.lexsort((df["frame"].to_numpy(), codes, sentinel))
    df = df.take(order).reset_index(drop=True)
    # the columns TCP frames never fill (not written to buckets) come back as missing
    pk = combine_points({"": df})
    pk["point"] = pd.Categorical.from_codes(codes[order], categories=names)
    return pk
