"""The lab reports the scheduler its director really uses: IPVS's (rr by default), or the nft
director's flow hash, so a watch on an nft lab does not judge round-robin balance (DR011)."""

from __future__ import annotations

import pytest

from dr_inspect.lab import state as lab_state
from dr_inspect.lab.plan import LabConfig


@pytest.mark.parametrize("director, expected", [("ipvs", "rr"), ("nft", "flow-hash")])
def test_effective_scheduler(director, expected):
    assert LabConfig(director=director).effective_scheduler == expected


def test_a_watch_on_a_lab_namespace_gets_its_scheduler(tmp_path, monkeypatch):
    monkeypatch.setattr(lab_state, "STATE_DIR", tmp_path)
    state = lab_state.LabState(prefix="t9", config=LabConfig(prefix="t9", director="nft"),
                               switch_netns="t9-sw", hosts={})
    lab_state.save_state(state)
    assert lab_state.scheduler_for_netns("t9-sw") == "flow-hash"
    assert lab_state.scheduler_for_netns("t8-sw") is None          # no such lab
    assert lab_state.scheduler_for_netns("t9-client") is None      # not the switch
    assert lab_state.scheduler_for_netns(None) is None
