"""Hops (the same packet seen twice) and clock offsets between capture points."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from dr_inspect.columnar.codes import category_codes
from dr_inspect.columnar.ids import argsort_hashes
from dr_inspect.columnar.tcp_view import packet_ids, strict_key

# Below this an estimated offset is indistinguishable from forwarding delay on one clock, so
# timestamps are left as they are (the estimate is still reported).
CLOCK_TOLERANCE_NS = 1_000_000
ESTIMATE_WINDOW_NS = 60_000_000_000


NEVER = np.iinfo(np.int64).max      # "not seen at this point" in a per-packet time array


def _first_sightings(tv: pd.DataFrame, packet: np.ndarray
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per point: (packet ids seen there, ascending; the first ts_ns of each there).
    The minimum per packet is scattered into one array indexed by packet id (no grouping, no
    sort), reused point after point."""
    codes, names = category_codes(tv["point"])
    ts = tv["ts_ns"].to_numpy(dtype=np.int64)
    first = np.full(int(packet.max()) + 1 if len(packet) else 0, NEVER, dtype=np.int64)
    out = {}
    for code, name in enumerate(names):
        mine = codes == code
        np.minimum.at(first, packet[mine], ts[mine])
        seen = np.flatnonzero(first != NEVER)
        out[str(name)] = (seen, first[seen])
        first[seen] = NEVER
    return out


def _deltas(mine: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray],
            scratch: np.ndarray) -> np.ndarray:
    """First-sighting time at one point minus that at `ref`, per packet seen at both (what an
    inner merge of the two on the packet gives, in packet order). scratch: all NEVER, and left
    so."""
    scratch[ref[0]] = ref[1]
    theirs = scratch[mine[0]]
    scratch[ref[0]] = NEVER
    both = theirs != NEVER
    return mine[1][both] - theirs[both]


def estimate_offsets(tv: pd.DataFrame, points: list[str], hosts: dict[str, str] | None = None
                     ) -> tuple[dict[str, int], dict[str, int]]:
    """(estimated, applied) clock offset per point against the first point, in ns.

    Estimated = the delta most packets seen at both points agree on (see _densest_offset; within
    a wide window); applied only
    when it exceeds CLOCK_TOLERANCE_NS and the points are not known to share a host (one clock:
    the delta is then forwarding delay, e.g. a director waiting for ARP). Points sharing no packet
    with a point of known offset get 0.
    """
    hosts = hosts or {}
    est = {p: 0 for p in points}
    if len(points) < 2 or len(tv) == 0:
        return est, dict(est)
    packet = packet_ids(tv)
    f = _first_sightings(tv, packet)
    nothing = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    scratch = np.full(int(packet.max()) + 1, NEVER, dtype=np.int64)

    def pair(p: str, ref: str) -> tuple[int, int] | None:
        d = _deltas(f.get(p, nothing), f.get(ref, nothing), scratch)
        d = d[np.abs(d) <= ESTIMATE_WINDOW_NS]
        return (_densest_offset(d), len(d)) if len(d) else None

    return resolve_offsets(points, hosts, pair)


def resolve_offsets(points: list[str], hosts: dict[str, str],
                    pair: Callable[[str, str], tuple[int, int] | None]
                    ) -> tuple[dict[str, int], dict[str, int]]:
    """(estimated, applied) offset per point against the first point, from pair(p, ref): the
    offset of p's clock against ref's and the number of packets it rests on (None: no packet
    seen at both). Each point takes it from the known point it shares the most packets with;
    points of the first point's host share its clock."""
    est = {p: 0 for p in points}
    known = {points[0]}
    for _ in range(len(points)):
        progressed = False
        for p in points:
            if p in known:
                continue
            best = None
            for ref in sorted(known):
                found = pair(p, ref)
                if found is not None and found[1] and (best is None or found[1] > best[1]):
                    best = (found[0] + est[ref], found[1])
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


def _densest_offset(deltas: np.ndarray) -> int:
    """The clock offset a set of deltas (one point's first sighting minus another's, per packet)
    shows: the median of the deltas in the densest window two tolerances wide. Forwarding
    delays cluster tightly above the true offset; a director that holds some copies back adds
    a second, looser cluster, which a plain median would average into the offset (and then
    absorb the delay). Between two equally dense windows the one nearer zero wins: clocks are
    more often right than wrong. Counted on a histogram of tolerance-wide bins (one pass)."""
    bins = np.floor_divide(deltas, CLOCK_TOLERANCE_NS)
    lo = int(bins.min())
    counts = np.bincount(bins - lo)
    pair = counts[:-1] + counts[1:] if len(counts) > 1 else counts
    best = np.flatnonzero(pair == pair.max())
    start = (best + lo) * CLOCK_TOLERANCE_NS               # window start of each candidate
    pick = int(start[np.argmin(np.abs(start + CLOCK_TOLERANCE_NS))])
    inside = deltas[(deltas >= pick) & (deltas < pick + 2 * CLOCK_TOLERANCE_NS)]
    return int(np.median(inside))


def find_hops(tv: pd.DataFrame, window_ns: int) -> pd.DataFrame:
    """Consecutive sightings of one packet (strict key) within the window: at two points, or at
    one point with different MACs (shared segment: the client's frame and the forwarded copy)."""
    cols = ["k", "a_point", "a_frame", "a_ts_ns", "b_point", "b_frame", "b_ts_ns", "delta_ns",
            "mac_changed", "ttl_drop"]
    if len(tv) == 0:
        return pd.DataFrame({c: [] for c in cols})
    # Sort positions by (packet, ts) and compare each sighting with the one before it, on
    # integer codes (points, MACs) rather than strings. Packet ids are numbered in order of first
    # appearance, so this sort is nearly in order already (a sort on the hashed key is not);
    # the hops found are then put in key order, as a stable sort by (key, ts) gave them.
    packet = packet_ids(tv)
    ts = tv["ts"].to_numpy(dtype=np.int64)
    order = np.lexsort((ts, packet))
    packet, ts = packet[order], ts[order]
    point = category_codes(tv["point"])[0][order]
    src = _codes(tv["src_mac"])[order]
    dst = _codes(tv["dst_mac"])[order]
    keep = np.zeros(len(order), dtype=bool)
    keep[1:] = packet[1:] == packet[:-1]
    del packet
    keep[1:] &= np.abs(ts[1:] - ts[:-1]) <= window_ns
    del ts
    macs_differ = np.ones(len(order), dtype=bool)
    macs_differ[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    del src, dst
    other_point = np.ones(len(order), dtype=bool)
    other_point[1:] = point[1:] != point[:-1]
    keep &= other_point | macs_differ
    del other_point
    at = np.flatnonzero(keep)
    # gathered in packet order (reads near the rows before), then put in key order (stable:
    # within one key the hops stay in time order)
    b, a = order[at], order[at - 1]
    k = strict_key(tv)[b]
    by_key = argsort_hashes(k)
    codes, names = category_codes(tv["point"])
    frames = tv["frame"].to_numpy(dtype=np.int64)
    ts_ns = tv["ts_ns"].to_numpy(dtype=np.int64)
    ts_adj = tv["ts"].to_numpy(dtype=np.int64)
    ttl = tv["ttl"].to_numpy()
    return pd.DataFrame({
        "k": k[by_key], "a_point": _texts(names, codes[a][by_key]),
        "a_frame": frames[a][by_key], "a_ts_ns": ts_ns[a][by_key],
        "b_point": _texts(names, codes[b][by_key]), "b_frame": frames[b][by_key],
        "b_ts_ns": ts_ns[b][by_key],
        "delta_ns": (ts_adj[b] - ts_adj[a])[by_key],
        "mac_changed": macs_differ[at][by_key],
        "ttl_drop": (ttl[a].astype(np.int16) - ttl[b].astype(np.int16))[by_key],
    }, copy=False)  # the columns are new arrays: no consolidating copy


def _texts(names: np.ndarray, codes: np.ndarray) -> pd.Categorical:
    """names[codes] as a Categorical of the point names (one byte a hop, not a string)."""
    return pd.Categorical.from_codes(np.asarray(codes), dtype=pd.CategoricalDtype(
        pd.Index(np.asarray(names, dtype=object), dtype=object)))


def _codes(s: pd.Series) -> np.ndarray:
    """Integer codes of a column: equal codes for equal values (a categorical's own codes, where
    missing is the one code -1)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy()
    return pd.factorize(s, use_na_sentinel=False)[0]
