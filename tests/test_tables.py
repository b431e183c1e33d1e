"""Helpers of the rule tables (dr_inspect.correlate.tables) against the pandas operations they
stand in for."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_inspect.correlate import tables


def merge_asof_nearest(left_key, left_ts, right_key, right_ts, window):
    """The reference: pandas merge_asof by key, nearest within the window."""
    right = pd.DataFrame({"key": right_key, "rts": right_ts,
                          "rpos": np.arange(len(right_key))}).sort_values("rts", kind="stable")
    left = pd.DataFrame({"ts": left_ts, "key": left_key,
                         "lpos": np.arange(len(left_key))}).sort_values("ts", kind="stable")
    m = pd.merge_asof(left, right, left_on="ts", right_on="rts", by="key", direction="nearest",
                      tolerance=window)
    out = np.full(len(left_key), -1)
    hit = m["rpos"].notna().to_numpy()
    out[m["lpos"].to_numpy()[hit]] = m["rpos"].to_numpy()[hit].astype(int)
    return out


@settings(max_examples=150, deadline=None)
@given(left=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), max_size=40),
       right=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40)), max_size=40),
       window=st.integers(0, 10))
def test_nearest_by_key_is_merge_asof_nearest(left, right, window):
    """Keys held once and several times, equal times, ties of distance, nothing in the window."""
    lk = np.array([k for k, _ in left], dtype=np.uint64)
    lt = np.array([t for _, t in left], dtype=np.int64)
    rk = np.array([k for k, _ in right], dtype=np.uint64)
    rt = np.array([t for _, t in right], dtype=np.int64)
    got = tables._nearest_by_key(lk, lt, rk, rt, window)
    if len(lk) and len(rk):
        want = merge_asof_nearest(lk, lt, rk, rt, window)
    else:
        want = np.full(len(lk), -1)
    assert got.tolist() == want.tolist()


def test_copy_counts_per_packet_and_point():
    # key 1: two copies at point 0 with different TTLs (a loop), one at point 1;
    # key 2: one copy; key 3 asked for but never copied
    lkey = np.array([1, 1, 1, 2], dtype=np.uint64)
    point = np.array([0, 0, 1, 0])
    ttl = np.array([64, 63, 64, 64])
    ttls, copies = tables._copy_counts(lkey, point, ttl, np.array([1, 2, 3], dtype=np.uint64))
    assert ttls.tolist() == [2, 1, 0] and copies.tolist() == [3, 1, 0]


def test_first_per_flow_takes_the_earliest_row_and_the_first_of_equal_times():
    flow = np.array([0, 1, 0, 0, 2])
    ts = np.array([5, 3, 2, 2, 9])
    assert tables._first_per_flow(flow, ts, 4).tolist() == [2, 1, 4, -1]


def test_max_over_points_counts_a_packet_seen_at_two_points_once():
    flow = np.array([0, 0, 0, 1])
    point = np.array([0, 1, 0, 1])
    assert tables._max_over_points(flow, point, 3).tolist() == [2, 1, 0]


def test_endpoint_text_per_distinct_pair_as_keys_render_it():
    from dr_inspect.correlate.keys import endpoints_text

    ips = pd.Series(pd.Categorical(["1.2.3.4", "::1", "1.2.3.4", "1.2.3.4"]))
    ports = np.array([80, -1, 65535, 80])
    got = list(tables._endpoint_text(ips, ports))
    assert got == list(endpoints_text(ips.astype(object), ports))
    assert got == ["1.2.3.4:80", "[::1]:-1", "1.2.3.4:65535", "1.2.3.4:80"]
