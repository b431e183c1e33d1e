"""Ladders: a retransmission is a sending of its own, matched to its own copies; the arrow whose
frame is evidence of a failing rule says so and stands out."""

from __future__ import annotations

import pytest
from rulecaps import DrCapture

from dr_inspect.report.ladder_notes import step_views
from dr_inspect.report.ladder_svg import render_ladder_svg
from dr_inspect.analysis.ladder import build_ladder
from dr_inspect.analysis.paths import analyse_paths


def _ladder(tmp_path, shape="two-segment", **connection):
    cap = DrCapture(shape).healthy()
    cap.connection(45000, **connection)
    cap.connection(45001, rs=1)
    analysis = analyse_paths([cap.write(tmp_path / "set")])
    flows = analysis.tables["flows"]
    return build_ladder(analysis, flow=int(flows[flows["client_port"] == 45000]["flow_id"].iloc[0]))


@pytest.mark.parametrize("shape", ["two-segment", "shared-segment"])
def test_a_retransmitted_syn_is_a_new_send_with_its_own_copy(tmp_path, shape):
    ladder = _ladder(tmp_path, shape, syn_retransmit=True)
    syns = [(s, v) for s, v in zip(ladder.steps, step_views(ladder)) if s.tcp_flags == 0x02]
    assert [s.instance for s, _ in syns] == [0, 0, 1, 1]
    assert [s.label for s, _ in syns] == ["client send", "director send"] * 2
    # the retransmission is compared with its own sightings: nothing changed at the client,
    # the director's rewrite shows on its copy
    assert not syns[2][1].changed and "dst_mac" in syns[3][1].changed
    assert "retransmission 1" in syns[2][1].note


def test_a_frame_that_breaks_a_rule_is_marked(tmp_path):
    ladder = _ladder(tmp_path, reply_via_director=True)
    broken = [s for s in ladder.steps if s.breaks]
    assert broken and all(s.breaks == ["DR003"] for s in broken)
    assert all(s.tcp_flags & 0x10 for s in broken)          # the replies, not the client's
    svg = render_ladder_svg(ladder)
    assert svg.count('class="step breaks"') + svg.count('class="step direct breaks"') == len(broken)


def test_a_healthy_ladder_marks_nothing(tmp_path):
    ladder = _ladder(tmp_path)
    assert not any(s.breaks or s.instance for s in ladder.steps)
