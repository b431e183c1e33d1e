"""Learn the LVS-DR topology from the traffic: VIPs, director MACs, real servers, point roles.

The steps, each a module of this package: the VIPs (vips), the legs of the packets to them and
their votes (legs), the director's MACs and the clients' (directors), the points' roles
(roles), the real servers (servers, rs_identity). Learning reads the TCP view as numpy arrays
(view): addresses as their categorical codes, rows as positions, packets as the view's packet
ids; what it counts per MAC, point or connection is counted on packed integer codes
(dr_inspect.columnar), and only the few distinct MACs, points and endpoints become Python values.
"""

from __future__ import annotations

import pandas as pd

from dr_inspect.topology.directors import find_directors
from dr_inspect.topology.legs import leg_votes
from dr_inspect.topology.model import LearnedTopology, LearnedVips
from dr_inspect.topology.pins import TopologyPins
from dr_inspect.topology.roles import point_roles, topology_shape
from dr_inspect.topology.servers import find_real_servers
from dr_inspect.topology.view import coded_view, senders, vip_traffic
from dr_inspect.topology.vips import learn_vips, unserved_services

__all__ = ["learn_topology", "learn_vips"]


def learn_topology(pk: pd.DataFrame, tv: pd.DataFrame, points: list[str],
                   pins: TopologyPins | None = None,
                   learned_vips: LearnedVips | None = None) -> LearnedTopology:
    """Learn from the combined packets table `pk` and its TCP view `tv` (columnar.tcp_view).
    learned_vips: learn_vips(pk, tv, pins) when the caller has it.

    Raises TopologyError when no VIP is found and none is pinned.
    """
    pins = pins or TopologyPins()
    if learned_vips is None:
        learned_vips = learn_vips(pk, tv, pins)
    vips = list(learned_vips.vips)
    # in the order they are found: the VIPs', the director's, the points', the real servers'
    conflicts = list(learned_vips.conflicts)
    cv = coded_view(tv)
    traffic = vip_traffic(pk, tv, cv, vips)
    sent = senders(pk)
    dirs = find_directors(pk, cv, traffic, leg_votes(tv, cv, traffic, pins), vips, pins, sent,
                          conflicts)
    roles = point_roles(points, cv, traffic, dirs, pins, conflicts)
    servers = find_real_servers(pk, tv, cv, traffic, dirs, roles, pins, sent, vips, conflicts)
    return LearnedTopology(vips=vips, director_in=dirs.director_in,
                           director_out=dirs.director_out, real_servers=servers, roles=roles,
                           shape=topology_shape(pins, roles, points),
                           client_macs=dirs.client_macs, silent_macs=dirs.silent_macs,
                           unserved=unserved_services(tv, cv, vips, dirs.is_in),
                           scheduler=pins.scheduler, conflicts=conflicts,
                           pinned=pins.as_dict())
