"""Join per-point packets tables into one table with a `point` column and shared categories.

pd.concat of categoricals with different categories silently gives object dtype; union the
categories first so codes stay comparable across points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.decode.schema import ANALYSED_COLUMNS, DTYPES


def _object_categories(cat: pd.Categorical) -> pd.Categorical:
    """The same categorical with object-dtype categories (the union needs one dtype; pandas 3
    infers its arrow str for categories built from strings)."""
    if cat.categories.dtype == object:
        return cat
    categories = pd.Index(np.asarray(cat.categories, dtype=object), dtype=object)
    return pd.Categorical.from_codes(cat.codes, categories=categories, validate=False)


def _conformed(df: pd.DataFrame, col: str) -> pd.Series:
    """Column `col` of one point's table with the schema dtype (no copy when the table already
    conforms, as decoded tables do); all-NA (zeros for plain ints) when absent."""
    dtype = DTYPES[col]
    n = len(df)
    if col not in df.columns:
        if dtype == "category":
            values = pd.Categorical.from_codes(np.full(n, -1, dtype=np.int8),
                                               categories=pd.Index([], dtype=object))
        elif dtype in ("int64", "int32"):
            values = np.zeros(n, dtype=dtype)
        else:
            masked = pd.api.types.pandas_dtype(dtype)
            values = masked.construct_array_type()(np.zeros(n, dtype=masked.numpy_dtype),
                                                   np.ones(n, dtype=bool))
        return pd.Series(values, copy=False)
    s = df[col].reset_index(drop=True)
    if dtype == "category":
        if not isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype("object").where(s.notna(), None).astype("category")
        if s.cat.categories.dtype != object:
            s = pd.Series(_object_categories(s.array), copy=False)
        return s
    if str(s.dtype) != dtype:
        s = s.astype(dtype)
    return s


def _values(s: pd.Series):
    return s.to_numpy() if isinstance(s.dtype, np.dtype) else s.array


def _union(columns: list[pd.Series]):
    """union_categoricals(parts, ignore_order=True), its codes written once into one array:
    categories in order of first appearance, each part's codes mapped through a small table."""
    if len(columns) == 1:
        return columns[0]
    parts = [s.array for s in columns]
    first = parts[0].categories
    if all(len(p.categories) == len(first) and (first.get_indexer(p.categories) >= 0).all()
           for p in parts[1:]):
        categories = first      # the same categories (as union_categoricals, keeps their dtype)
    else:
        # (an append of object indexes of str infers pandas' str dtype, as union_categoricals')
        categories = first.append([p.categories for p in parts[1:]]).unique()
    n = sum(len(p) for p in parts)
    codes = np.empty(n, dtype=code_dtype(len(categories)))
    at = 0
    for p in parts:
        mapped = categories.get_indexer(p.categories)
        if (mapped == np.arange(len(mapped))).all():
            # its categories begin the union in the same order (always the first part's): the
            # codes stay as they are
            codes[at:at + len(p)] = p.codes
        else:
            # code -1 (missing) picks the appended -1 ("wrap": unbuffered, and -1 is the last
            # slot)
            remap = np.append(mapped, -1).astype(codes.dtype)
            np.take(remap, p.codes, out=codes[at:at + len(p)], mode="wrap")
        at += len(p)
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories, ordered=False),
                                     validate=False)


def code_dtype(n_categories: int) -> np.dtype:
    """The codes' integer type pandas gives a Categorical of n categories: the smallest signed
    type that holds n as a count (int8 below 127, ...), so codes made here are used as they are."""
    for kind in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(kind).max:
            return np.dtype(kind)
    return np.dtype(np.int64)


def _concat(columns: list[pd.Series]):
    """One column from the points' conformed columns (one copy; none for a single point)."""
    if len(columns) == 1:
        return columns[0]
    parts = [_values(s) for s in columns]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])._concat_same_type(parts)


def combine_points(packets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One table for all points: `point` (category) + the schema columns the verify stages read
    (ANALYSED_COLUMNS; the others are left out)."""
    names = list(packets)
    frames = [packets[p] for p in names] or [pd.DataFrame()]
    lengths = [len(f) for f in frames]
    n = sum(lengths)
    # from codes: building it from one name object per frame cost more than the whole concat
    columns = {"point": pd.Categorical.from_codes(
        np.repeat(np.arange(len(names), dtype=code_dtype(len(names))), lengths if names else []),
        categories=names, validate=False)}
    for col in ANALYSED_COLUMNS:
        parts = [_conformed(f, col) for f in frames]
        columns[col] = _union(parts) if DTYPES[col] == "category" else _concat(parts)
    # the arrays are new (or a single point's own columns, shared copy-on-write): no
    # consolidating copy
    return pd.DataFrame(columns, index=pd.RangeIndex(n), copy=False)
