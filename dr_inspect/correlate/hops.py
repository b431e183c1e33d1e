"""Hops (the same packet seen twice) and clock offsets between capture points."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.correlate.keys import strict_key

# Below this an estimated offset is indistinguishable from forwarding delay on one clock, so
# timestamps are left as they are (the estimate is still reported).
CLOCK_TOLERANCE_NS = 1_000_000
ESTIMATE_WINDOW_NS = 60_000_000_000


def _firsts(tv: pd.DataFrame) -> pd.DataFrame:
    """First sighting (min ts_ns) of each packet at each point: columns k, point, ts.
    Grouped on one packed integer id (packet id x point id), not on per-frame point strings."""
    k = strict_key(tv)
    pc, pnames = pd.factorize(tv["point"].to_numpy(dtype=object))
    kc, kvalues = pd.factorize(k)
    n_points = max(len(pnames), 1)
    gid, groups = pd.factorize(kc.astype(np.int64) * n_points + pc)
    ts = pd.Series(tv["ts_ns"].to_numpy(dtype=np.int64)).groupby(gid).min().to_numpy()
    return pd.DataFrame({"k": np.asarray(kvalues)[groups // n_points],
                         "point": pd.Series(np.asarray(pnames, dtype=object)[groups % n_points],
                                            dtype=object),
                         "ts": ts})


def estimate_offsets(tv: pd.DataFrame, points: list[str], hosts: dict[str, str] | None = None
                     ) -> tuple[dict[str, int], dict[str, int]]:
    """(estimated, applied) clock offset per point against the first point, in ns.

    Estimated = median delta of packets seen at both points (within a wide window); applied only
    when it exceeds CLOCK_TOLERANCE_NS and the points are not known to share a host (one clock:
    the delta is then forwarding delay, e.g. a director waiting for ARP). Points sharing no packet
    with a point of known offset get 0.
    """
    hosts = hosts or {}
    est = {p: 0 for p in points}
    if len(points) < 2 or len(tv) == 0:
        return est, dict(est)
    f = _firsts(tv)
    known = {points[0]}
    for _ in range(len(points)):
        progressed = False
        for p in points:
            if p in known:
                continue
            mine = f[f["point"] == p]
            best = None
            for ref in sorted(known):
                other = f[f["point"] == ref]
                m = mine.merge(other, on="k", suffixes=("", "_ref"))
                d = (m["ts"] - m["ts_ref"]).to_numpy()
                d = d[np.abs(d) <= ESTIMATE_WINDOW_NS]
                if len(d) and (best is None or len(d) > best[1]):
                    best = (int(np.median(d)) + est[ref], len(d))
            if best is not None:
                est[p] = best[0]
                known.add(p)
                progressed = True
        if not progressed:
            break
    ref_host = hosts.get(points[0], "")
    for p in points:
        if ref_host and hosts.get(p) == ref_host:
            est[p] = 0  # one clock: the delta measured is forwarding delay, not an offset
    applied = {p: (v if abs(v) > CLOCK_TOLERANCE_NS else 0) for p, v in est.items()}
    return est, applied


def find_hops(tv: pd.DataFrame, window_ns: int) -> pd.DataFrame:
    """Consecutive sightings of one packet (strict key) within the window: at two points, or at
    one point with different MACs (shared segment: the client's frame and the forwarded copy)."""
    cols = ["k", "a_point", "a_frame", "a_ts_ns", "b_point", "b_frame", "b_ts_ns", "delta_ns",
            "mac_changed", "ttl_drop"]
    if len(tv) == 0:
        return pd.DataFrame({c: [] for c in cols})
    # sort positions by (key, ts) and compare each sighting with the one before it, on integer
    # codes (points, MACs) rather than strings; np.lexsort is stable like the stable sort it
    # replaces
    k = strict_key(tv)
    ts = tv["ts"].to_numpy(dtype=np.int64)
    order = np.lexsort((ts, k))
    k, ts = k[order], ts[order]
    point = pd.factorize(tv["point"], use_na_sentinel=False)[0][order]
    src = pd.factorize(tv["src_mac"], use_na_sentinel=False)[0][order]
    dst = pd.factorize(tv["dst_mac"], use_na_sentinel=False)[0][order]
    same = np.zeros(len(k), dtype=bool)
    same[1:] = k[1:] == k[:-1]
    macs_differ = np.ones(len(k), dtype=bool)
    macs_differ[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    other_point = np.ones(len(k), dtype=bool)
    other_point[1:] = point[1:] != point[:-1]
    close = np.zeros(len(k), dtype=bool)
    close[1:] = np.abs(ts[1:] - ts[:-1]) <= window_ns
    keep = same & close & (other_point | macs_differ)
    b = order[keep]
    a = order[np.flatnonzero(keep) - 1]
    points = tv["point"].to_numpy(dtype=object)
    frames = tv["frame"].to_numpy(dtype=np.int64)
    ts_ns = tv["ts_ns"].to_numpy(dtype=np.int64)
    ts_adj = tv["ts"].to_numpy(dtype=np.int64)
    ttl = tv["ttl"].to_numpy(dtype=np.int64)
    return pd.DataFrame({
        "k": k[keep], "a_point": points[a],
        "a_frame": frames[a], "a_ts_ns": ts_ns[a],
        "b_point": points[b], "b_frame": frames[b],
        "b_ts_ns": ts_ns[b],
        "delta_ns": ts_adj[b] - ts_adj[a],
        "mac_changed": macs_differ[keep],
        "ttl_drop": ttl[a] - ttl[b],
    })
