"""Plain columns from the packets table's nullable and categorical ones: numpy integers with -1
for missing, addresses as str objects with '' for missing (derived tables never hold NA)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def text(s: pd.Series) -> pd.Series:
    """Addresses as plain Python strings (object dtype), '' where missing (derived tables never
    hold NA). Object, not pandas' arrow str: the tables are iterated and compared column-wise."""
    values = s.to_numpy(dtype=object, na_value="")
    return pd.Series(values, index=s.index, dtype=object)


def obj(values, index=None) -> pd.Series:
    """A str column as an object Series (pandas 3 would infer its arrow-backed str dtype)."""
    return pd.Series(np.asarray(values, dtype=object), index=index, dtype=object)


def ints(s: pd.Series, missing: int = -1) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
        return s.astype("Float64").fillna(missing).to_numpy(dtype=np.int64)
    # nullable integers straight to int64 (no float round trip, no intermediate Series)
    return s.to_numpy(dtype=np.int64, na_value=missing)


def same_data(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are views of the same memory, element for element."""
    return (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def ints_at(s: pd.Series, pos: np.ndarray, missing: int, dtype) -> np.ndarray:
    """ints(s) at positions `pos`, as `dtype`: a nullable column's values and mask are gathered
    first, so only the selected rows are converted."""
    arr = s.array
    if isinstance(arr, pd.api.extensions.ExtensionArray) and hasattr(arr, "_mask"):
        return arr.take(pos).to_numpy(dtype=dtype, na_value=missing)
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
        return s.to_numpy()[pos].astype(dtype)
    return ints(s.iloc[pos], missing).astype(dtype)


def categorical_at(s: pd.Series, pos: np.ndarray) -> pd.Series:
    """A categorical column at positions `pos`, with all its categories (as a boolean filter
    keeps them); other columns are taken as they are."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical.from_codes(s.cat.codes.to_numpy()[pos], dtype=s.dtype,
                                                   validate=False), copy=False)
    return s.iloc[pos].reset_index(drop=True)


def int_column(s: pd.Series | np.ndarray) -> np.ndarray:
    """A numpy integer column as it is (the TCP view's are plain already, narrow ones stay
    narrow), else ints(s): int64 with -1 for missing."""
    if isinstance(s, pd.Series):
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
            return s.to_numpy()
        return ints(s)
    return np.asarray(s)
