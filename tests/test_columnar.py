"""The columnar toolkit (dr_inspect/columnar/): hashing and numbering keys (ids, compiled or
numpy), packing integer columns (pack), codes of text columns (codes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dr_inspect.columnar import pack


def test_shared_text_codes_of_columns_without_values():
    # a capture without MACs (raw IP, some SLL): the MAC columns are all missing
    from dr_inspect.columnar.codes import shared_text_codes
    empty = pd.Series(pd.Categorical([None, None], categories=pd.Index([], dtype=object)))
    some = pd.Series(pd.Categorical(["02:00:00:00:00:01", None]))
    a, b = shared_text_codes([empty, some])
    assert list(a) == ["", ""] and list(b) == ["02:00:00:00:00:01", ""]


def test_hash_key_in_pieces_equals_one_hash_of_all_rows(monkeypatch):
    import numpy as np

    import dr_inspect.columnar.ids as keys
    n = 1000
    i = np.arange(n)
    df = pd.DataFrame({
        "a": pd.Categorical(np.where(i % 7 == 0, None, (i % 13).astype(str)).astype(object)),
        "b": pd.array(np.where(i % 5 == 0, None, i).astype(object), dtype="UInt16"),
        "c": np.array([None if v % 11 == 0 else f"x{v % 17}" for v in i], dtype=object),
        "d": i.astype(np.int16)})
    whole = keys.hash_key(df, list(df.columns))
    monkeypatch.setattr(keys, "HASH_ROWS", 64)
    assert (keys.hash_key(df, list(df.columns)) == whole).all()
    assert len(np.unique(whole)) > 100


def _numbering(monkeypatch, kernel: str) -> None:
    """Key numbering by the compiled kernel (columnar/_hashids.c) or by the numpy split."""
    import dr_inspect.columnar.ids as keys
    from dr_inspect import kernels
    if kernel == "compiled":
        from conftest import require
        require(keys._hashids is not None, "the columnar C extension was not built")
    monkeypatch.setenv(kernels.ENV, "1" if kernel == "compiled" else "0")
    monkeypatch.setattr(keys, "HASH_ROWS", 16)        # the split path even on small arrays


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_first_appearance_ids_equal_factorize(monkeypatch, kernel):
    import numpy as np

    import dr_inspect.columnar.ids as keys
    _numbering(monkeypatch, kernel)
    rng = np.random.default_rng(5)
    assert len(keys.first_appearance_ids(np.zeros(0, dtype=np.uint64))) == 0
    for n, distinct in [(5000, 40), (5000, 4000), (3000, 1), (17, 17)]:
        values = rng.integers(0, 2**64 - 1, size=distinct, dtype=np.uint64, endpoint=True)
        k = values[rng.integers(0, distinct, size=n)]
        ids = keys.first_appearance_ids(k)
        assert ids.dtype == np.int32 and (ids == pd.factorize(k)[0]).all()
    # every key in one part (the top bits alike)
    k = rng.integers(0, 2**40, size=2000, dtype=np.uint64)[rng.integers(0, 2000, size=4000)]
    assert (keys.first_appearance_ids(k) == pd.factorize(k)[0]).all()


def test_argsort_hashes_equals_a_stable_argsort(monkeypatch):
    import numpy as np

    import dr_inspect.columnar.ids as keys
    monkeypatch.setattr(keys, "HASH_ROWS", 16)        # take the split path on small arrays
    rng = np.random.default_rng(9)
    for n, distinct in [(5000, 300), (5000, 5000), (40, 3)]:
        values = rng.integers(0, 2**64 - 1, size=distinct, dtype=np.uint64, endpoint=True)
        k = values[rng.integers(0, distinct, size=n)]      # ties keep their row order
        assert (keys.argsort_hashes(k) == np.argsort(k, kind="stable")).all()


@pytest.mark.parametrize("kernel", ["numpy", "compiled"])
def test_dense_ids_equal_where_the_keys_are_equal(monkeypatch, kernel):
    import numpy as np

    import dr_inspect.columnar.ids as keys
    _numbering(monkeypatch, kernel)
    rng = np.random.default_rng(7)
    for n, distinct in [(5000, 40), (5000, 4000), (3000, 1), (17, 17), (10, 3)]:
        values = rng.integers(0, 2**64 - 1, size=distinct, dtype=np.uint64, endpoint=True)
        k = values[rng.integers(0, distinct, size=n)]
        ids, count = keys.dense_ids(k)
        want = pd.factorize(k)[0]
        assert count == want.max() + 1 and ids.min() == 0 and ids.max() == count - 1
        # one id per key and one key per id: the same partition as factorize's
        pairs = np.unique(np.stack([ids, want]), axis=1)
        assert pairs.shape[1] == count



def test_pack_is_exact_and_ordered_and_unpacks():
    rng = np.random.default_rng(3)
    n = 2000
    ip = rng.integers(-1, 40, size=n)             # codes over 40 addresses, -1 missing
    port = rng.integers(-1, 65536, size=n)
    ttl = rng.integers(-1, 256, size=n)
    spans = [pack.code_span(40), pack.PORT, pack.TTL]
    assert pack.fits(spans)
    key = pack.pack([ip, port, ttl], spans)
    # equal exactly where the rows are equal, and sorted as the rows sort column by column
    rows = list(zip(ip.tolist(), port.tolist(), ttl.tolist()))
    assert len(np.unique(key)) == len(set(rows))
    assert [rows[i] for i in np.argsort(key, kind="stable")] == sorted(rows)
    back = pack.unpack(key, spans)
    assert all((b == c).all() for b, c in zip(back, [ip, port, ttl]))
    # the edges of each span
    edge = pack.pack([np.array([-1, 39]), np.array([-1, 65535]), np.array([-1, 255])], spans)
    assert edge[0] == 0 and edge[1] == 41 * 65537 * 257 - 1


def test_fits_refuses_what_overflows_int64():
    assert pack.fits([pack.code_span(46_000), pack.PORT, pack.code_span(46_000), pack.PORT])
    assert not pack.fits([pack.code_span(47_000), pack.PORT, pack.code_span(47_000), pack.PORT])


def test_pack_exact_keeps_equality_for_any_range():
    rng = np.random.default_rng(4)
    cols = [rng.integers(-2**40, 2**40, size=50)[rng.integers(0, 50, size=500)]
            for _ in range(3)]
    key = pack.pack_exact(cols)
    rows = list(zip(*(c.tolist() for c in cols)))
    want = pd.factorize(pd.Series(rows))[0]
    assert (pd.factorize(key)[0] == want).all()


def test_distinct_rows_are_sorted_and_complete():
    a, b = np.array([2, 0, 2, 1, 0]), np.array([1, 3, 1, 0, 3])
    got = pack.distinct_rows([a, b], [3, 4])
    assert list(zip(*(g.tolist() for g in got))) == [(0, 3), (1, 0), (2, 1)]
