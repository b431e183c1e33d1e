"""Integer codes of text columns: a categorical's own codes where it has them (no hashing of a
string per row), else one factorize; and the few distinct values they stand for.

Three conventions for a missing value, each named: category_codes gives it -1,
codes_with_na gives it a value of its own (NaN, appended), text.codes_and_values a '' (appended).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def category_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values): codes with -1 where missing (a categorical's own codes, read-only), and
    the values (object array) they stand for."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.array.codes, np.asarray(s.cat.categories, dtype=object)
    codes, values = pd.factorize(s.to_numpy(dtype=object))
    return codes, np.asarray(values, dtype=object)


def codes_with_na(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes 0.., values): a missing value is a value of its own (NaN)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.array.codes                  # a read-only view (Series.cat.codes copies)
        values = np.append(np.asarray(s.cat.categories, dtype=object), np.nan)
        if len(codes) and codes.min() < 0:
            codes = np.where(codes < 0, len(values) - 1, codes.astype(np.int64))
        return codes, values
    codes, values = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=False)
    return codes, np.asarray(values, dtype=object)


def _same_categories(columns: list[pd.Series]) -> bool:
    dtypes = [c.dtype for c in columns]
    return all(isinstance(d, pd.CategoricalDtype) for d in dtypes) and all(
        d.categories.equals(dtypes[0].categories) for d in dtypes[1:])


def own_shared_codes(columns: list[pd.Series]) -> tuple[list[np.ndarray], int] | None:
    """The categoricals' own codes (-1 where missing) and the number of categories, when the
    columns share their categories (the TCP view's address columns, and the connections' taken
    from them, do); else None."""
    if not _same_categories(columns):
        return None
    return [c.array.codes for c in columns], len(columns[0].dtype.categories)


def shared_codes(columns: list[pd.Series]) -> tuple[list[np.ndarray], np.ndarray]:
    """codes_with_na of text columns of one kind over one value list (equal values, equal
    codes): the columns' own codes when they share their categories, as tcp_view makes them."""
    parts = [codes_with_na(c) for c in columns]
    if _same_categories(columns):
        return [codes for codes, _ in parts], parts[0][1]
    union = pd.Index(pd.unique(np.concatenate([values for _, values in parts])), dtype=object)
    return ([union.get_indexer(values)[codes] for codes, values in parts],
            np.asarray(union, dtype=object))


def shared_text_codes(columns: list[pd.Series]) -> list[pd.Categorical]:
    """Text columns of one kind (MACs, IPs) as categoricals over one sorted category list that
    holds '' for missing: they compare across columns, sort like str, never hold NA, and
    hashing, grouping and isin work on the few categories instead of every row's string."""
    cats = [np.asarray(c.cat.categories if isinstance(c.dtype, pd.CategoricalDtype)
                       else pd.unique(c.dropna()), dtype=object) for c in columns]
    union = pd.Index(np.unique(np.concatenate(cats + [np.array([""], dtype=object)])
                               .astype(str)).astype(object), dtype=object)
    dtype = pd.CategoricalDtype(union)
    # the codes' own type (int8 for up to 127 categories, as pandas chooses it): remapped
    # straight into it
    code_type = pd.Categorical([], dtype=dtype).codes.dtype
    out = []
    empty = union.get_loc("")
    for c in columns:
        if isinstance(c.dtype, pd.CategoricalDtype):
            codes = c.cat.codes.to_numpy()
            # code -1 (missing) picks the appended '' (a column may have no categories at all:
            # a capture without MACs)
            remap = np.append(union.get_indexer(np.asarray(c.cat.categories, dtype=object)),
                              empty).astype(code_type)
            codes = remap[codes]
        else:
            codes = union.get_indexer(c.to_numpy(dtype=object, na_value="")).astype(code_type)
        out.append(pd.Categorical.from_codes(codes, dtype=dtype, validate=False))
    return out


def present_values(codes: np.ndarray, values: np.ndarray) -> set:
    """The values whose code occurs in `codes` (codes 0..)."""
    return {values[c] for c in np.flatnonzero(np.bincount(codes, minlength=len(values)))}


def value_in(values: np.ndarray, wanted: set[Any]) -> np.ndarray:
    """Per code: whether its value is one of `wanted` (judged once per distinct value)."""
    return np.fromiter((v in wanted for v in values), dtype=bool, count=len(values))
