"""The link layer of the numpy decoder: Ethernet, Linux cooked v1/v2, BSD loopback and raw IP
headers (MACs, the ethertype, where L3 starts) and 802.1Q/802.1ad VLAN tags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dr_inspect.decode.fields import Col, be16, u48
from dr_inspect.decode.frame_batch import FrameBatch, mask
from dr_inspect.decode.gather import gather

ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT = 1, 12, 14, 101, 113, 276, 228, 229
NULL, LOOP = 0, 108   # BSD loopback: a 4-byte address family, then the IP packet
SUPPORTED_LINKTYPES = {ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT, NULL, LOOP}
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 4


@dataclass
class Link:
    """What the link layer gave: ethertype (valid where et_valid), where L3 starts, MACs."""

    ethertype: np.ndarray
    et_valid: np.ndarray
    l3off: np.ndarray
    raw: np.ndarray                 # raw IP (or BSD loopback): no ethertype, the version says
    loop: np.ndarray


def link_layer(b: FrameBatch) -> Link:
    """Ethernet, Linux cooked v1/v2 and BSD loopback headers: MACs, ethertype, the L3 offset."""
    n, cap, lt, g2, flag = b.n, b.cap, b.lt, b.g2, b.flag
    eth = lt == ETH
    sll = lt == SLL
    sll2 = lt == SLL2
    raw = np.isin(lt, (RAW_BSD, RAW_OPENBSD, RAW))
    known = np.isin(lt, list(SUPPORTED_LINKTYPES))
    if b.idx.bad_interface is not None:
        flag(b.idx.bad_interface, "undefined pcapng interface")
        known &= ~b.idx.bad_interface
    for value in np.unique(lt[~known & (lt >= 0)]):
        flag(~known & (lt == value), f"unsupported link type {int(value)}")

    ethertype = np.zeros(n, np.uint32)
    l3off = np.zeros(n, np.int64)
    dst_ok = eth & (cap >= 6)
    src_ok = eth & (cap >= 12)
    e_full = eth & (cap >= 14)
    flag(eth & ~e_full, "truncated Ethernet header")
    macs = u48(g2, 6)
    dst_mac = np.where(eth, u48(g2, 0), np.uint64(0))
    src_mac = np.where(eth, macs, np.uint64(0))
    ethertype = np.where(e_full, be16(g2, 12), ethertype)
    et_valid = e_full.copy()
    l3off[eth] = 14

    # Linux cooked v1: pkttype(2) hatype(2) halen(2) addr(8) protocol(2).
    s_full = sll & (cap >= 16)
    flag(sll & ~s_full, "truncated Linux cooked header")
    s_mac = s_full & (g2[:, 4] == 0) & (g2[:, 5] == 6)
    src_mac = np.where(s_mac, macs, src_mac)  # address at offset 6, same bytes as the eth source
    src_ok |= s_mac
    if s_full.any():
        ethertype = np.where(s_full, be16(g2, 14), ethertype)
    et_valid |= s_full
    l3off[sll] = 16

    # Linux cooked v2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8).
    s2_full = sll2 & (cap >= 20)
    flag(sll2 & ~s2_full, "truncated Linux cooked v2 header")
    s2_mac = s2_full & (g2[:, 11] == 6)
    if s2_full.any():
        src_mac = np.where(s2_mac, u48(g2, 12), src_mac)
        ethertype = np.where(s2_full, be16(g2, 0), ethertype)
    src_ok |= s2_mac
    et_valid |= s2_full
    l3off[sll2] = 20

    # BSD loopback: the family word is in host (NULL) or network (LOOP) byte order; the IP
    # version nibble after it says the same more simply.
    loop = (lt == NULL) | (lt == LOOP)
    flag(loop & (cap < 4), "truncated loopback header")
    l3off[loop] = 4
    raw = raw | (loop & (cap >= 4))
    b.f.macs["src_mac"] = Col(src_mac, src_ok)
    b.f.macs["dst_mac"] = Col(dst_mac, dst_ok)
    return Link(ethertype, et_valid, l3off, raw, loop)


def vlan_tags(b: FrameBatch, link: Link) -> None:
    """802.1Q, 802.1ad and old QinQ tags: the outermost id kept, ethertype = the innermost."""
    n, cap, ethertype, l3off = b.n, b.cap, link.ethertype, link.l3off
    vlan = np.zeros(n, np.uint32)
    vlan_ok = np.zeros(n, bool)
    tagged = link.et_valid & np.isin(ethertype, VLAN_TPIDS)
    for _ in range(MAX_VLAN_TAGS):
        rows = np.flatnonzero(tagged)
        if len(rows) == 0:
            break
        full = cap[rows] >= l3off[rows] + 4
        b.flag(mask(n, rows[~full]), "truncated VLAN tag")
        link.et_valid[rows[~full]] = False
        rows = rows[full]
        tag = gather(b.buf, b.data[rows] + l3off[rows], 4)
        first = rows[~vlan_ok[rows]]
        vlan[first] = (be16(tag, 0) & 0x0FFF)[~vlan_ok[rows]]
        vlan_ok[first] = True
        ethertype[rows] = be16(tag, 2)
        l3off[rows] += 4
        tagged = np.zeros(n, bool)
        tagged[rows] = np.isin(ethertype[rows], VLAN_TPIDS)
    b.f.ints["vlan"] = Col(vlan, vlan_ok)
