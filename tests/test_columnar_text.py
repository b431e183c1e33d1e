"""Text columns as categoricals (dr_inspect.columnar.text): each helper agrees with doing the
same per row on plain str values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar import text as coded

VALUES = ["b", None, "a", "b", "", "c", "a"]


def sources():
    """The same column as object, as a Categorical with NaN, and with unused categories."""
    yield pd.Series(np.array(VALUES, dtype=object), dtype=object)
    yield pd.Series(pd.Categorical(VALUES))
    yield pd.Series(pd.Categorical(VALUES, categories=["z", "c", "b", "a", ""]))


def plain():
    return ["" if v is None else v for v in VALUES]


def test_as_text_never_holds_missing_values():
    for s in sources():
        cat = coded.as_text(s)
        assert isinstance(cat, pd.Categorical) and (cat.codes >= 0).all()
        assert list(cat) == plain()


def test_mapped_and_member_are_per_value():
    mapping = {"a": "one", "b": "two"}
    for s in sources():
        assert list(coded.mapped(s, mapping, "?")) == [mapping.get(v, "?") for v in plain()]
        assert coded.member(s, {"a", ""}).tolist() == [v in {"a", ""} for v in plain()]


def test_text_rank_sorts_like_str():
    for s in sources():
        rank = coded.text_rank(s)
        order = np.argsort(rank, kind="stable")
        assert [plain()[i] for i in order] == sorted(plain())
        # equal texts share a rank, whether missing or ''
        assert rank[1] == rank[4]


def test_categorical_merges_duplicate_values_and_take_with_default():
    cat = coded.categorical(np.array([0, 1, 2, 1]), ["x", "y", "x"])
    assert list(cat) == ["x", "y", "x", "y"] and list(cat.categories) == ["x", "y"]
    taken = coded.take(pd.Series(pd.Categorical(VALUES)), np.array([0, 1, 2]))
    assert list(taken) == ["b", "", "a"]
    kept = coded.with_default(taken, np.array([True, True, False]), "-")
    assert list(kept) == ["b", "", "-"]


def test_categorical_of_values_known_distinct_is_the_same_categorical():
    codes, values = np.array([2, 0, 2, 1]), ["x", "", "y"]
    fast = coded.categorical(codes, values, distinct=True)
    assert list(fast) == ["y", "x", "y", ""] and list(fast.categories) == values
    assert fast.equals(coded.categorical(codes, values))
