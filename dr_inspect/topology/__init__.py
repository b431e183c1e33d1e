"""Topology: VIPs, director MACs, real servers and point roles, learned from traffic or pinned."""

from dr_inspect.topology.learn import learn_topology
from dr_inspect.topology.model import LearnedTopology, RealServerInfo
from dr_inspect.topology.pins import (TopologyPins, load_topology_file, merge_pins, parse_vip,
                                      pins_from_dict)

__all__ = ["LearnedTopology", "RealServerInfo", "TopologyPins", "learn_topology",
           "load_topology_file", "merge_pins", "parse_vip", "pins_from_dict"]
