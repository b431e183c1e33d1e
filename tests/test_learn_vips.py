"""The VIPs learned on their own (learn_vips) give the topology learn_topology learns alone."""

from __future__ import annotations

import pytest
from rulecaps import VIP, DrCapture, unrelated_capture

from dr_inspect.analysis.correlation import prepare
from dr_inspect.errors import TopologyError
from dr_inspect.topology import pins_from_dict
from dr_inspect.topology.learn import learn_topology, learn_vips


def _view(tmp_path, cap: DrCapture):
    packets = cap.decoded(tmp_path / "set")
    pk, tv, _, _ = prepare(packets)
    return pk, tv, list(packets)


@pytest.mark.parametrize("pinned", [None, {"vips": [f"{VIP}:8000", "192.168.7.99:80"]},
                                    {"vips": [VIP]}])
def test_topology_from_vips_learned_first_is_the_same(tmp_path, pinned):
    pins = pins_from_dict(pinned, "flags") if pinned else None
    pk, tv, points = _view(tmp_path, DrCapture().healthy())
    vips = learn_vips(pk, tv, pins)
    alone = learn_topology(pk, tv, points, pins)
    assert learn_topology(pk, tv, points, pins, vips) == alone
    assert alone.vips == vips.vips
    # a pinned VIP without traffic is reported once
    assert sum("192.168.7.99:80" in c for c in alone.conflicts) == (1 if pinned and len(
        pinned["vips"]) == 2 else 0)


def test_no_vip_is_an_error_before_anything_else_is_learned(tmp_path):
    pk, tv, _ = _view(tmp_path, unrelated_capture())
    with pytest.raises(TopologyError, match="no LVS-DR virtual service found"):
        learn_vips(pk, tv)
