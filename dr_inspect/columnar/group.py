"""Reductions per group of integer ids (bincounts and ufunc.at over dense ids, no groupby), and
the nearest-in-time join by key (pd.merge_asof only for the keys held several times)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.pack import dense_span, pack

INT64_MAX = np.iinfo(np.int64).max


def per_key_range(keys: np.ndarray, codes: np.ndarray, n_keys: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest code per key (INT64_MAX / -1 for a key without rows)."""
    lo = np.full(n_keys, INT64_MAX, dtype=np.int64)
    hi = np.full(n_keys, -1, dtype=np.int64)
    np.minimum.at(lo, keys, codes)
    np.maximum.at(hi, keys, codes)
    return lo, hi


def count_per(group: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum of weights) per group 0..n-1."""
    return np.bincount(group, weights=weights, minlength=n)[:n]


def any_per(group_codes: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Per row: whether any row of its group has `flag`."""
    n = int(group_codes.max()) + 1 if len(group_codes) else 0
    return (np.bincount(group_codes, weights=flag, minlength=n) > 0)[group_codes]


def most_per_point(group: np.ndarray, point_codes: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1: the most rows it has at any one point (the same packet seen at two
    points is one packet)."""
    if len(group) == 0:
        return np.zeros(n, dtype=np.int64)
    n_points = int(point_codes.max()) + 1
    counts = np.bincount(pack([group, point_codes], [dense_span(n), dense_span(n_points)]),
                         minlength=n * n_points)[:n * n_points]
    return counts.reshape(n, n_points).max(axis=1).astype(np.int64)


def first_per(group: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Per group 0..n-1: the row with the smallest ts (the earliest row among equal times), -1
    if none."""
    lo = np.full(n, INT64_MAX, dtype=np.int64)
    np.minimum.at(lo, group, ts)
    at_min = np.flatnonzero(ts == lo[group])
    first = np.full(n, len(ts), dtype=np.int64)
    np.minimum.at(first, group[at_min], at_min)
    return np.where(first < len(ts), first, -1)


def min_per(group: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group 0..n-1: (smallest value, whether the group has a row), in int64 (times in ns
    need all their digits: a float64 holds them to 256 ns only)."""
    lo = np.full(n, INT64_MAX, dtype=np.int64)
    np.minimum.at(lo, group, values.astype(np.int64))
    seen = np.zeros(n, dtype=bool)
    seen[group] = True
    return lo, seen


def nearest_by_key(left_key: np.ndarray, left_ts: np.ndarray, right_key: np.ndarray,
                   right_ts: np.ndarray, window_ns: int, n_keys: int | None = None) -> np.ndarray:
    """For each left row the right row with its key nearest in time within the window, -1 for
    none: pd.merge_asof(direction="nearest", tolerance=window) by key (a tie goes to the earlier
    right row, equal times to the later one of them in right order). A key the right side holds
    once (almost every packet) is looked up directly; only keys held several times go through
    merge_asof.

    n_keys: the keys are dense ids 0..n_keys-1 already (no factorize), else any integers."""
    out = np.full(len(left_key), -1, dtype=np.int64)
    if len(left_key) == 0 or len(right_key) == 0:
        return out
    if n_keys is None:
        codes = pd.factorize(np.concatenate([right_key, left_key]))[0]
        rc, lc = codes[:len(right_key)], codes[len(right_key):]
        n_keys = int(codes.max()) + 1
        del codes
    else:
        rc, lc = right_key, left_key
    count = np.bincount(rc, minlength=n_keys)
    first = np.full(len(count), -1, dtype=np.int64)
    first[rc[::-1]] = np.arange(len(rc) - 1, -1, -1)      # first right row of each key
    left_count = count[lc]
    once = np.flatnonzero(left_count == 1)
    r = first[lc[once]]
    close = np.abs(right_ts[r] - left_ts[once]) <= window_ns
    out[once[close]] = r[close]
    several = np.flatnonzero(left_count > 1)
    if len(several):
        rows = np.flatnonzero(count[rc] > 1)
        right = pd.DataFrame({"key": rc[rows], "rts": right_ts[rows], "rpos": rows})
        right = right.sort_values("rts", kind="stable")
        left = pd.DataFrame({"ts": left_ts[several], "key": lc[several], "lpos": several})
        left = left.sort_values("ts", kind="stable")
        m = pd.merge_asof(left, right, left_on="ts", right_on="rts", by="key",
                          direction="nearest", tolerance=window_ns)
        hit = m["rpos"].notna().to_numpy()
        out[m["lpos"].to_numpy()[hit]] = m["rpos"].to_numpy()[hit].astype(np.int64)
    return out
