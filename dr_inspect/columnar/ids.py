"""Rows hashed to one uint64 and the hashes numbered: the one factorizer of the analysis.

pd.factorize over a million hashes is mostly cache misses; the compiled kernel (_hashids.c)
numbers them in one pass where it was built, and the numpy fallback splits the keys by their top
bits (one stable radix pass) into parts whose hash tables fit the caches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect import kernels

try:
    from dr_inspect.columnar import _hashids
except ImportError:          # built without a compiler: numpy and pandas number the keys
    _hashids = None

# Rows hashed at a time: each column's hash and their combination pass over the data several
# times, which is about twice as fast when a piece's arrays stay in the CPU caches.
HASH_ROWS = 1 << 18


def hash_key(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row identifying the values of `columns` (categoricals hash by value)."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.uint64)
    part = df[columns]
    if len(part) <= HASH_ROWS:
        return pd.util.hash_pandas_object(part, index=False).to_numpy(dtype=np.uint64)
    # a row's hash depends on that row's values alone: pieces give the same hashes
    out = np.empty(len(part), dtype=np.uint64)
    for start in range(0, len(part), HASH_ROWS):
        piece = part.iloc[start:start + HASH_ROWS]
        out[start:start + len(piece)] = pd.util.hash_pandas_object(
            piece, index=False).to_numpy(dtype=np.uint64)
    return out


def _kernel_ids(keys: np.ndarray, dtype: type) -> tuple[np.ndarray, int] | None:
    """First-appearance ids by the compiled kernel (_hashids.c), None where it is not built or
    is turned off (dr_inspect.kernels)."""
    if _hashids is None or not kernels.allowed():
        return None
    ids = np.empty(len(keys), dtype=dtype)
    n = _hashids.first_appearance_ids(np.ascontiguousarray(keys, dtype=np.uint64), ids)
    return ids, n


def _by_top_bits(keys: np.ndarray, bits: int) -> tuple[np.ndarray, list[int], np.ndarray]:
    """(order, sizes, in_parts): the rows in order of their keys' top `bits` bits (one stable
    radix pass: the rows of a part stay in row order), each part's size, and the keys in that
    order."""
    top = (keys >> np.uint64(64 - bits)).astype(np.uint8)
    order = np.argsort(top, kind="stable")
    sizes = np.bincount(top, minlength=1 << bits).tolist()
    del top
    return order, sizes, keys[order]


def first_appearance_ids(keys: np.ndarray) -> np.ndarray:
    """pd.factorize(keys)[0] as int32, for uint64 hashes: 0, 1, ... in order of first appearance.

    The compiled kernel does it in one pass where it was built. Otherwise the keys are split into
    64 parts by their top bits, each part factorized in a table that fits the caches, and the
    parts' ids put back in order of first appearance over all rows."""
    done = _kernel_ids(keys, np.int32)
    if done is not None:
        return done[0]
    n = len(keys)
    if n < HASH_ROWS:
        return pd.factorize(keys)[0].astype(np.int32)
    order, sizes, in_parts = _by_top_bits(keys, 6)
    ids = np.empty(n, dtype=np.int64)                # per sorted row: id in part order
    firsts = []                                      # per id: its first sorted row
    n_ids = start = 0
    for size in sizes:
        if size == 0:
            continue
        local = pd.factorize(in_parts[start:start + size])[0]
        ids[start:start + size] = local + n_ids
        firsts.append(first_rows(local) + start)
        n_ids += int(local.max()) + 1
        start += size
    del in_parts
    # ids in order of their first row over all rows: mark each first row with its id
    first_at = order[np.concatenate(firsts)]
    mark = np.full(n, -1, dtype=np.int64)
    mark[first_at] = np.arange(n_ids)
    rank = np.empty(n_ids, dtype=np.int32)
    rank[mark[mark >= 0]] = np.arange(n_ids, dtype=np.int32)
    out = np.empty(n, dtype=np.int32)
    out[order] = rank[ids]
    return out


def dense_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """(ids, n): ids 0..n-1 per uint64 hash, equal exactly where the keys are equal, in no
    particular order (for matching, not numbering: see first_appearance_ids for that).

    As in first_appearance_ids, the keys are split into 256 parts by their top bits and each
    part is factorized in a hash table that fits the caches (bench_verify shows the gain over
    one table). The compiled kernel, where built, numbers them in order of first appearance
    instead."""
    done = _kernel_ids(keys, np.int64)
    if done is not None:
        return done
    if len(keys) < HASH_ROWS:
        ids, distinct = pd.factorize(keys)
        return ids, len(distinct)
    order, sizes, in_parts = _by_top_bits(keys, 8)
    ids = np.empty(len(keys), dtype=np.int64)        # per sorted row
    n = start = 0
    for size in sizes:
        if size:
            local, distinct = pd.factorize(in_parts[start:start + size])
            ids[start:start + size] = local
            ids[start:start + size] += n
            n += len(distinct)
            start += size
    del in_parts
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = ids
    return out, n


def argsort_hashes(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for uint64 hashes: one stable radix pass on the top 8
    bits, then each part (in the caches) sorted on its own; the parts are in key order already."""
    if len(keys) < HASH_ROWS // 4:
        return np.argsort(keys, kind="stable")
    order, sizes, in_parts = _by_top_bits(keys, 8)
    start = 0
    for size in sizes:
        if size > 1:
            part = slice(start, start + size)
            order[part] = order[part][np.argsort(in_parts[part], kind="stable")]
        start += size
    return order


def first_rows(ids: np.ndarray) -> np.ndarray:
    """Row of each id's first appearance, for ids numbered in order of first appearance
    (pd.factorize)."""
    seen = np.maximum.accumulate(ids)
    return np.flatnonzero(ids > np.concatenate(([-1], seen[:-1])))
