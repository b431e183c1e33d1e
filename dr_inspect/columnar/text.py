"""Text columns of the rule tables as categoricals: one small integer code per row.

The rule tables have up to millions of rows but few distinct texts per column (points, roles,
MACs, addresses, 5-tuples of the connections, causes). A pandas Categorical holds them as codes
(1-4 bytes per row) over a short list of str categories; mapping a column through a dict, testing
membership and comparing are done once per category. Tables never hold a missing text: '' is a
category like any other.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd


def codes_and_values(s: pd.Series | pd.Categorical | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, values): values[codes] is the column, as str objects with '' for missing; codes
    index values (a categorical's own codes, else a factorize)."""
    if isinstance(s, pd.Series):
        s = s.array if isinstance(s.dtype, pd.CategoricalDtype) else s.to_numpy(dtype=object)
    if isinstance(s, pd.Categorical):
        values = np.append(np.asarray(s.categories, dtype=object), "")
        codes = s.codes.astype(np.int32)
        codes[codes < 0] = len(values) - 1
        return codes, values
    codes, uniq = pd.factorize(np.asarray(s, dtype=object), use_na_sentinel=False)
    values = np.asarray(uniq, dtype=object)
    values = np.where(pd.isna(values), "", values).astype(object) if len(values) else values
    return codes.astype(np.int32), values


def categorical(codes: np.ndarray, values: np.ndarray | list, distinct: bool = False
                ) -> pd.Categorical:
    """values[codes] as a Categorical over the distinct values (duplicates among values merged).
    distinct: the caller knows the values are all different (one text per connection): they are
    not hashed twice to find out."""
    values = np.asarray(values, dtype=object)
    if distinct:
        return pd.Categorical.from_codes(np.asarray(codes), dtype=pd.CategoricalDtype(
            pd.Index(values, dtype=object)))
    uniq_codes, uniq = pd.factorize(values, use_na_sentinel=False)
    if len(uniq) == len(values):
        return pd.Categorical.from_codes(np.asarray(codes), dtype=pd.CategoricalDtype(
            pd.Index(values, dtype=object)))
    return pd.Categorical.from_codes(uniq_codes[np.asarray(codes)], dtype=pd.CategoricalDtype(
        pd.Index(np.asarray(uniq, dtype=object), dtype=object)))


def as_text(s: pd.Series | pd.Categorical | np.ndarray) -> pd.Categorical:
    """The column as a Categorical of str with '' where missing."""
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.array.codes            # a view (Series.cat.codes would copy them)
        if len(codes) == 0 or codes.min() >= 0:
            return s.array
    codes, values = codes_and_values(s)
    return categorical(codes, values)


def mapped(s: pd.Series | pd.Categorical | np.ndarray, mapping: dict, default: str = ""
           ) -> pd.Categorical:
    """mapping[value] per row (default where absent), looked up once per distinct value."""
    codes, values = codes_and_values(s)
    looked = np.array([mapping.get(v, default) if isinstance(v, str) else default
                       for v in values], dtype=object)
    return categorical(codes, looked)


def member(s: pd.Series | pd.Categorical | np.ndarray, wanted: Iterable[Any]) -> np.ndarray:
    """Whether each row's value is in `wanted`, judged once per distinct value."""
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        s = s.array
    if isinstance(s, pd.Categorical):
        # the categorical's own codes as they are: a missing value's -1 picks the appended ''
        codes, values = s.codes, np.append(np.asarray(s.categories, dtype=object), "")
    else:
        codes, values = codes_and_values(s)
    wanted = set(wanted)
    hit = np.array([v in wanted for v in values], dtype=bool)
    return hit[codes] if len(codes) else np.zeros(0, dtype=bool)


def text_rank(s: pd.Series | pd.Categorical | np.ndarray) -> np.ndarray:
    """Each row's place in the sorted order of the distinct texts: sorting on it sorts as str."""
    codes, values = codes_and_values(s)
    if len(values) == 0:
        return np.zeros(len(codes), dtype=np.int32)
    # equal texts share a rank (a categorical's '' category and its appended '' for missing)
    rank = np.unique(values.astype(str), return_inverse=True)[1].astype(np.int32)
    return rank[codes]


def take(s: pd.Series | pd.Categorical, positions: np.ndarray) -> pd.Categorical:
    """Rows `positions` of a text column, as a Categorical ('' where missing)."""
    cat = as_text(s)
    # codes of the categorical itself: in range already
    return pd.Categorical.from_codes(cat.codes[positions], dtype=cat.dtype, validate=False)


def with_default(cat: pd.Categorical, keep: np.ndarray, default: str = "") -> pd.Categorical:
    """cat where keep, else `default`."""
    cats = list(cat.categories)
    if default in cats:
        fill = cats.index(default)
        dtype = cat.dtype
    else:
        fill = len(cats)
        dtype = pd.CategoricalDtype(pd.Index(cats + [default], dtype=object))
    codes = np.where(keep, cat.codes, fill)
    return pd.Categorical.from_codes(codes, dtype=dtype)
