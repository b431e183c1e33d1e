"""Decode protocol fields of all frames at once, column-wise with numpy.

Each layer is gathered once into a fixed-width matrix with its header at column 0 (one row per
frame: the L2 header at the frame start, the L3 header at data + l3 offset, the L4 header at
data + l3 offset + IP header length), so every field is a fixed column slice whatever the VLAN
tags or IP options before it. Only rare cases (IPv6 extension headers, ND options that are not
first) take a Python loop over just those frames. A field is valid only where the frame's captured
length covers it; frames cut inside a header keep the fields that were captured and are counted
under a reason.

The layers: link.py (link headers, VLAN tags), network.py (IPv4, IPv6, ARP), transport.py (TCP,
UDP, ICMP, neighbour discovery); frame_batch.py holds the batch they fill.
"""

from __future__ import annotations

import numpy as np

from dr_inspect.decode.fields import Col, Fields
from dr_inspect.decode.frame_batch import FrameBatch
from dr_inspect.decode.frames import FrameIndex
from dr_inspect.decode.link import link_layer, vlan_tags
from dr_inspect.decode.network import arp, ipv6_extension_headers, network_layer
from dr_inspect.decode.transport import neighbour_discovery, transport_layer


def decode_batch(buf: np.ndarray, idx: FrameIndex) -> Fields:
    """Fields of every frame of idx, decoded layer by layer with numpy."""
    b = FrameBatch(buf, idx)
    link = link_layer(b)
    vlan_tags(b, link)
    # Below 0x0600 the field is an 802.3 length (LLC follows), not an ethertype.
    link.et_valid &= link.ethertype >= 0x0600
    net = network_layer(b, link)
    ipv6_extension_headers(b, link, net)
    b.f.ints["proto"] = Col(net.proto, net.v4 | net.v6)
    g4, cap4, icmp6 = transport_layer(b, link, net)
    neighbour_discovery(b, link, net, g4, cap4, icmp6)
    arp(b, link, net)
    b.f.ints["ethertype"] = Col(link.ethertype, link.et_valid)
    return b.finish()
