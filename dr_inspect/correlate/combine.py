"""Join per-point packets tables into one table with a `point` column and shared categories.

pd.concat of categoricals with different categories silently gives object dtype; union the
categories first so codes stay comparable across points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from dr_inspect.decode.schema import COLUMNS, DTYPES, EXTRA_COLUMNS

ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS


def _conform(df: pd.DataFrame) -> pd.DataFrame:
    """Give a points table every schema column with the schema dtype (missing ones all-NA)."""
    out = {}
    n = len(df)
    for col in ALL_COLUMNS:
        dtype = DTYPES[col]
        if col in df.columns:
            s = df[col]
            if dtype == "category":
                if not isinstance(s.dtype, pd.CategoricalDtype):
                    s = s.astype("object").where(s.notna(), None).astype("category")
            elif str(s.dtype) != dtype:
                s = s.astype(dtype)
            out[col] = s.reset_index(drop=True)
        elif dtype == "category":
            out[col] = pd.Categorical([None] * n, categories=pd.Index([], dtype=object))
        elif dtype in ("int64", "int32"):
            out[col] = np.zeros(n, dtype=dtype)
        else:
            out[col] = pd.array([pd.NA] * n, dtype=dtype)
    return pd.DataFrame(out)


def _object_categories(s: pd.Series) -> pd.Categorical:
    """The same categorical with object-dtype categories (union_categoricals needs one dtype)."""
    cat = s.array
    categories = pd.Index(np.asarray(cat.categories, dtype=object), dtype=object)
    return pd.Categorical.from_codes(cat.codes, categories=categories)


def combine_points(packets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One table for all points: schema columns + `point` (category) + `row` (position)."""
    names = list(packets)
    frames = [_conform(packets[p]) for p in names]
    if not frames:
        frames = [_conform(pd.DataFrame())]
        names = []
    cats = {}
    for col in ALL_COLUMNS:
        if DTYPES[col] != "category":
            continue
        parts = [_object_categories(f[col]) for f in frames]
        cats[col] = union_categoricals(parts, ignore_order=True)
    body = pd.concat([f.drop(columns=list(cats)) for f in frames], ignore_index=True)
    for col, values in cats.items():
        body[col] = values
    lengths = [len(f) for f in frames]
    # from codes: building it from one name object per frame cost more than the whole concat
    body["point"] = pd.Categorical.from_codes(
        np.repeat(np.arange(len(names), dtype=np.int64), lengths) if names else
        np.zeros(0, dtype=np.int64), categories=names)
    body["row"] = np.arange(len(body), dtype=np.int64)
    return body[["point"] + ALL_COLUMNS + ["row"]]
