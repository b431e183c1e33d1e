"""A copy of another length is GRO/TSO only when the bytes on both sides tile the same range.

Once any length mismatch passed as coalescing: a director that stripped the payload, or cut 10
bytes, passed DR002. Now a longer copy must be tiled exactly by the client's segments and a
shorter one must be one of the pieces that tile the client's segment; anything else fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecaps import DrCapture

from dr_inspect.correlate.coverage import tiles_exactly
from dr_inspect.analysis.paths import verify_paths


def _cuts(draw, total: int) -> list[tuple[int, int]]:
    """A random cutting of [0, total) into consecutive (start, length) segments."""
    points = sorted(draw(st.sets(st.integers(1, total - 1), max_size=6))) if total > 1 else []
    edges = [0, *points, total]
    return [(a, b - a) for a, b in zip(edges[:-1], edges[1:])]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_tiles_exactly_is_exact_coverage(data):
    base = data.draw(st.integers(0, 2**32 - 1))            # wraps around 2**32 at times
    total = data.draw(st.integers(1, 3000))
    segments = _cuts(data.draw, total)
    # a fault: drop a segment, shorten one, or add bytes past the end
    fault = data.draw(st.sampled_from(["none", "drop", "shorten", "extend", "duplicate"]))
    exact = True
    if fault == "drop" and len(segments) > 1:
        segments.pop(data.draw(st.integers(0, len(segments) - 1)))
        exact = False
    elif fault == "shorten" and segments[-1][1] > 1:
        segments[-1] = (segments[-1][0], segments[-1][1] - 1)
        exact = False
    elif fault == "extend":
        segments[-1] = (segments[-1][0], segments[-1][1] + 1)
        exact = False
    elif fault == "duplicate":
        segments.append(segments[0])                     # a retransmission: no extra bytes
    seg_seq = np.array([(base + a) % 2**32 for a, _ in segments], dtype=np.int64)
    seg_len = np.array([n for _, n in segments], dtype=np.int64)
    got = tiles_exactly(np.zeros(len(segments), dtype=np.int64), seg_seq, seg_len,
                        np.array([0]), np.array([base]), np.array([total]))
    assert bool(got[0]) == exact


def _verdict(tmp_path, **connection) -> set[str]:
    cap = DrCapture().healthy()
    cap.connection(44000, **connection)
    cap.connection(44001, rs=1)
    report = verify_paths([cap.write(tmp_path / "set")])
    return {r.id for r in report.rules if r.status == "fail"}


@pytest.mark.parametrize("connection", [{"gro": True}, {"tso": True}], ids=["gro", "tso"])
def test_coalesced_or_cut_copies_with_the_same_bytes_pass(tmp_path, connection):
    assert _verdict(tmp_path, **connection) == set()


@pytest.mark.parametrize("cut", [10, 40], ids=["10-bytes-less", "payload-stripped"])
def test_copies_that_lost_bytes_fail_dr002(tmp_path, cut):
    assert "DR002" in _verdict(tmp_path, copy_changes={"payload_cut": cut})


def test_pieces_that_leave_a_gap_fail_dr002(tmp_path):
    assert "DR002" in _verdict(tmp_path, tso=True, tso_pieces=(0, 2))
