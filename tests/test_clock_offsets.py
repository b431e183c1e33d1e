"""Clock offsets between capture hosts are estimated from the packets seen at both, and never
absorb what the director did: a director that holds copies back is not a clock, and a copy seen
before its original after the correction is flagged (DR013), never passed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecaps import DrCapture

from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS, _densest_offset
from dr_inspect.analysis.paths import verify_paths


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(-30 * 10**9, 30 * 10**9), n=st.integers(1, 200),
       late=st.floats(0, 0.49), hold=st.integers(5 * CLOCK_TOLERANCE_NS, 10**9),
       seed=st.integers(0, 2**32 - 1))
def test_the_offset_is_where_the_forwarding_delays_cluster(offset, n, late, hold, seed):
    """Delays are tens of microseconds; fewer than half the copies are held back by `hold`:
    the estimate stays within the tolerance of the true offset."""
    rng = np.random.default_rng(seed)
    deltas = offset + rng.integers(2_000, 200_000, n)
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[:int(late * n)]] = True      # strictly fewer than half
    deltas[held] += hold
    assert abs(_densest_offset(deltas) - offset) <= CLOCK_TOLERANCE_NS


def _set(tmp_path, shift_copies):
    cap = DrCapture().healthy(connections=8)
    copies = [p for p in cap.frames["br_lvs"] if p.haslayer("TCP")]
    shift_copies(copies)
    folder = cap.write(tmp_path / "set", manifest=False)      # no hosts: clocks may differ
    return verify_paths([folder])


def _failed(report):
    return {r.id for r in report.rules if r.status == "fail"}


def test_a_clock_offset_alone_is_corrected(tmp_path):
    def shift(copies):
        for p in copies:
            p.time = float(p.time) + 0.25
    report = _set(tmp_path, shift)
    assert report.verdict == "pass"
    assert abs(report.stats["clock_offsets_ns"]["br_lvs"] - 250_000_000) < CLOCK_TOLERANCE_NS


def test_copies_held_back_are_not_absorbed_as_an_offset(tmp_path):
    """Half the copies 900 ms late: no clock moves, and they are late beyond the window."""
    def hold(copies):
        for p in copies[::2]:
            p.time = float(p.time) + 0.9
    report = _set(tmp_path, hold)
    assert report.verdict == "fail" and "DR007" in _failed(report)
    assert abs(report.stats["clock_offsets_ns"]["br_lvs"]) < CLOCK_TOLERANCE_NS


def test_copies_before_their_original_fail_capture_health(tmp_path):
    """Most copies show a 250 ms offset, a few arrive 'before' their original once it is
    corrected: that point's clock cannot be trusted."""
    def skew(copies):
        for i, p in enumerate(copies):
            p.time = float(p.time) + (0.25 if i % 4 else 0.0)
    report = _set(tmp_path, skew)
    health = next(r for r in report.rules if r.id == "DR013")
    assert health.status == "fail"
    assert "before their original" in health.evidence[0].cause
