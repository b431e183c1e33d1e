"""The role of each capture point (where VIP frames arrive, where copies leave, or both) and the
shape of the capture set, learned from the director's MACs or pinned."""

from __future__ import annotations

from dr_inspect.columnar.codes import value_in
from dr_inspect.topology.directors import Directors
from dr_inspect.topology.pins import TopologyPins
from dr_inspect.topology.view import CodedView, VipTraffic


def point_roles(points: list[str], cv: CodedView, traffic: VipTraffic, dirs: Directors,
                pins: TopologyPins, conflicts: list[str]) -> dict[str, str]:
    """point -> vip-segment | rs-segment | both | unknown: a pinned role wins (a conflict when
    the traffic says otherwise)."""
    tc_point, tc_src, tc_dst = traffic.tc_point, traffic.tc_src, traffic.tc_dst
    point_values = traffic.point_values
    ingress = dirs.is_in[tc_dst] & ~value_in(cv.macs,
                                             dirs.director_out - dirs.director_in)[tc_src]
    forwarded = dirs.is_out[tc_src] & ~dirs.is_dir[tc_dst]
    roles: dict[str, str] = {}
    ing_pts, fwd_pts, rep_pts = ({point_values[p] for p in tc_point[ingress]},
                                 {point_values[p] for p in tc_point[forwarded]},
                                 {point_values[p] for p in traffic.rc_point})
    for p in points:
        learned = ("both" if p in ing_pts and p in fwd_pts else "vip-segment" if p in ing_pts
                   else "rs-segment" if p in fwd_pts else "vip-segment" if p in rep_pts
                   else "unknown")
        pinned = pins.roles.get(p)
        if pinned and pinned != "unknown":
            if learned != "unknown" and learned != pinned:
                conflicts.append(f"point {p} is pinned as {pinned} but its traffic looks like "
                                 f"{learned}")
            roles[p] = pinned
        else:
            roles[p] = learned
    return roles


def topology_shape(pins: TopologyPins, roles: dict[str, str], points: list[str]) -> str:
    """The pinned shape, else shared-segment (a point sees both sides), single-point or
    two-segment."""
    if pins.shape:
        return pins.shape
    if any(r == "both" for r in roles.values()):
        return "shared-segment"
    if len(points) == 1:
        return "single-point"
    return "two-segment"
