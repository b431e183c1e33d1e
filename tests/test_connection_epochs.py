"""Connection identity: a 5-tuple plus its SYN epoch (correlate/epochs.py), through verify.

A client that reuses a 5-tuple (a new SYN with a new ISN after the earlier connection closed)
opens a new connection: its packets may go to another real server without breaking DR008, and
every table that groups by connection keeps the two apart.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecaps import RS, DrCapture

from dr_inspect.correlate.epochs import split_epochs
from dr_inspect.analysis.paths import analyse_paths

TOL = 1_000_000


@st.composite
def reused_five_tuples(draw):
    """Rows of connections over a few 5-tuples: each connection a SYN (its own ISN) then data, the
    connections of one 5-tuple one after another in time; rows shuffled the way two capture
    points interleave them (by time). Returns (codes, is_syn, seq, ts, truth)."""
    n_tuples = draw(st.integers(1, 4))
    rows = []
    truth_id = 0
    for five in range(n_tuples):
        t = draw(st.integers(0, 10**9))
        pre = draw(st.booleans())                   # capture starts mid-connection
        if pre:
            for _ in range(draw(st.integers(1, 3))):
                t += draw(st.integers(1, 10**6))
                rows.append((five, False, draw(st.integers(0, 2**32 - 1)), t, truth_id))
            truth_id += 1
            t += 2 * TOL
        # a reused 5-tuple gets a new ISN (RFC 6528): that is what tells its connections apart
        isns = draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3, unique=True))
        for isn in isns:
            t += 2 * TOL
            for _ in range(draw(st.integers(1, 2))):     # the SYN and its retransmits/copies
                rows.append((five, True, isn, t, truth_id))
                t += draw(st.integers(0, TOL // 2))
            for _ in range(draw(st.integers(0, 4))):
                t += draw(st.integers(1, 10**6))
                rows.append((five, False, (isn + draw(st.integers(1, 10**6))) % 2**32, t,
                             truth_id))
            truth_id += 1
    rows.sort(key=lambda r: r[3])
    five = np.array([r[0] for r in rows])
    codes = np.unique(five, return_index=False, return_inverse=True)[1]
    # codes numbered in order of first appearance, as the correlator makes them
    _, first = np.unique(codes, return_index=True)
    order = np.argsort(np.argsort(first))
    codes = order[codes]
    return (codes.astype(np.int64), np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows], dtype=np.int64),
            np.array([r[3] for r in rows], dtype=np.int64), np.array([r[4] for r in rows]))


@settings(max_examples=200, deadline=None)
@given(reused_five_tuples())
def test_split_epochs_finds_every_connection(case):
    codes, is_syn, seq, ts, truth = case
    ids = split_epochs(codes, is_syn, seq, ts, TOL)
    # the same partition of the rows as the truth, numbered in order of first appearance
    pairs = set(zip(ids.tolist(), truth.tolist()))
    assert len(pairs) == len(set(ids.tolist())) == len(set(truth.tolist()))
    first_seen = [int(i) for i in dict.fromkeys(ids.tolist())]
    assert first_seen == list(range(len(first_seen)))


def test_no_reuse_keeps_the_codes():
    codes = np.array([0, 1, 0, 1])
    is_syn = np.array([True, True, False, False])
    seq = np.array([5, 9, 6, 10])
    ts = np.array([0, 1, 2, 3]) * 1000
    assert split_epochs(codes, is_syn, seq, ts, TOL) is codes


def _reuse(tmp_path, **second):
    cap = DrCapture().healthy()
    cap.t += 2.0
    cap.connection(40000, isn=777_777, **{"rs": 1, **second})   # 40000's first went to rs1
    return analyse_paths([cap.write(tmp_path / "reuse")])


def test_reused_five_tuple_to_another_server_passes(tmp_path):
    analysis = _reuse(tmp_path)
    assert analysis.report.verdict == "pass"
    flows = analysis.tables["flows"]
    reused = flows[flows["client_port"] == 40000]
    assert len(flows) == 5 and len(reused) == 2
    assert list(reused["real_server"]) == [RS[0].name, RS[1].name]
    assert reused["synack_seen"].all() and (reused["packets_out"] == 2).all()
    # each reply belongs to the connection that had started by then
    rp = analysis.tables["replies"]
    assert sorted(rp[rp["dst_port"] == 40000]["flow_id"].tolist()) == sorted(
        reused["flow_id"].tolist() * 2)


def test_a_split_inside_the_reused_connection_still_fails(tmp_path):
    analysis = _reuse(tmp_path, data_rs=0)
    failed = {r.id for r in analysis.report.rules if r.status == "fail"}
    assert "DR008" in failed
    dr008 = next(r for r in analysis.report.rules if r.id == "DR008")
    assert dr008.violations == 1


def test_a_capture_started_mid_connection_then_reused(tmp_path):
    cap = DrCapture().healthy()
    first = [p for p in cap.frames["br_e"] + cap.frames["br_lvs"]
             if p.haslayer("TCP") and 40000 in (p["TCP"].sport, p["TCP"].dport)
             and "S" in str(p["TCP"].flags)]
    for point in cap.frames:                         # the first connection's SYN, SYN-ACK lost
        cap.frames[point] = [p for p in cap.frames[point] if not any(p is f for f in first)]
    cap.t += 2.0
    cap.connection(40000, rs=1, isn=5)
    flows = analyse_paths([cap.write(tmp_path / "mid")]).tables["flows"]
    reused = flows[flows["client_port"] == 40000]
    assert len(reused) == 2
    assert list(reused["syn_seen"]) == [False, True]
