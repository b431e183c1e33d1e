"""Decode protocol fields of all frames at once, column-wise with numpy.

Each layer is gathered once into a fixed-width matrix with its header at column 0 (one row per
frame: the L2 header at the frame start, the L3 header at data + l3 offset, the L4 header at
data + l3 offset + IP header length), so every field is a fixed column slice whatever the VLAN
tags or IP options before it. Only rare cases (IPv6 extension headers, ND options that are not
first) take a Python loop over just those frames. A field is valid only where the frame's captured
length covers it; frames cut inside a header keep the fields that were captured and are counted
under a reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from dr_inspect.decode import deeper
from dr_inspect.decode.frames import FrameIndex
from dr_inspect.decode.fields import Col, Fields, at_offsets, be16, be32, u48
from dr_inspect.decode.gather import gather
from dr_inspect.decode.schema import DECODED_FIELDS

ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT = 1, 12, 14, 101, 113, 276, 228, 229
NULL, LOOP = 0, 108   # BSD loopback: a 4-byte address family, then the IP packet
SUPPORTED_LINKTYPES = {ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT, NULL, LOOP}
ET_IPV4, ET_IPV6, ET_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 4
IPV6_EXT = (0, 43, 44, 60, 51)       # hop-by-hop, routing, fragment, destination options, AH
K_FRAME, K3, K4 = 96, 40, 40          # bytes gathered at the frame start, per L3 / L4 header



class _Batch:
    """One batch of frames being decoded: its frame index columns, the frame-start matrix, the
    Fields filled layer by layer, and the first reason each frame is undecodable."""

    def __init__(self, buf: np.ndarray, idx: FrameIndex):
        self.buf = buf
        self.idx = idx
        self.n = n = len(idx)
        self.f = Fields(n)
        self.cap = idx.caplen.astype(np.int64)
        self.lt = idx.linktype.astype(np.int64)
        self.data = idx.data_pos.astype(np.int64)
        self.g2 = idx.head if idx.head is not None and idx.head.shape[1] >= K_FRAME else \
            gather(buf, self.data, K_FRAME)
        self.reason_code = np.zeros(n, np.int16)   # 0 = fine; index into reason_names
        self.reason_names: list[str] = [""]

    def flag(self, mask: np.ndarray, why: str) -> None:
        """Count frames under a reason (the first reason found for a frame wins)."""
        mask = mask & (self.reason_code == 0)
        if mask.any():
            if why not in self.reason_names:
                self.reason_names.append(why)
            self.reason_code[mask] = self.reason_names.index(why)

    def finish(self) -> Fields:
        f = self.f
        for (group, name), dtype in DECODED_FIELDS.items():
            if group != "ip6":      # the one declaration of each field's numeric type
                col = getattr(f, group)[name]
                col.values = col.values.astype(dtype, copy=False)
        code = self.reason_code
        f.undecodable = code > 0
        codes, counts = np.unique(code[code > 0], return_counts=True)
        f.reasons = Counter({self.reason_names[int(c)]: int(k) for c, k in zip(codes, counts)})
        return f


@dataclass
class _Link:
    """What the link layer gave: ethertype (valid where et_valid), where L3 starts, MACs."""

    ethertype: np.ndarray
    et_valid: np.ndarray
    l3off: np.ndarray
    raw: np.ndarray                 # raw IP (or BSD loopback): no ethertype, the version says
    loop: np.ndarray


@dataclass
class _Net:
    """What the network layer gave: the L3 header matrix and where L4 starts."""

    g3: np.ndarray
    cap3: np.ndarray
    v4: np.ndarray
    v6: np.ndarray
    proto: np.ndarray
    l4off: np.ndarray
    ip_payload: np.ndarray
    has_l4: np.ndarray


def decode_batch(buf: np.ndarray, idx: FrameIndex) -> Fields:
    """Fields of every frame of idx, decoded layer by layer with numpy."""
    b = _Batch(buf, idx)
    link = _link_layer(b)
    _vlan_tags(b, link)
    # Below 0x0600 the field is an 802.3 length (LLC follows), not an ethertype.
    link.et_valid &= link.ethertype >= 0x0600
    net = _network_layer(b, link)
    _ipv6_extension_headers(b, link, net)
    b.f.ints["proto"] = Col(net.proto, net.v4 | net.v6)
    g4, cap4, icmp6 = _transport_layer(b, link, net)
    _neighbour_discovery(b, link, net, g4, cap4, icmp6)
    _arp(b, link, net)
    b.f.ints["ethertype"] = Col(link.ethertype, link.et_valid)
    return b.finish()


def _link_layer(b: _Batch) -> _Link:
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
    return _Link(ethertype, et_valid, l3off, raw, loop)


def _vlan_tags(b: _Batch, link: _Link) -> None:
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
        b.flag(_mask(n, rows[~full]), "truncated VLAN tag")
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


def _ip_versions(b: _Batch, link: _Link, g3: np.ndarray, cap3: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(is4, is6): frames whose L3 header is IPv4 / IPv6 (by ethertype, link type or version)."""
    lt, cap, raw, loop, flag = b.lt, b.cap, link.raw, link.loop, b.flag
    version = g3[:, 0] >> 4
    is4 = ((link.et_valid & (link.ethertype == ET_IPV4)) | (raw & (version == 4)) | (lt == IPV4_LT))
    is6 = ((link.et_valid & (link.ethertype == ET_IPV6)) | (raw & (version == 6)) | (lt == IPV6_LT))
    flag(raw & ~loop & (cap >= 1) & ~is4 & ~is6, "raw IP with unknown version")
    flag(loop & (cap >= 5) & ~is4 & ~is6, "loopback frame of a non-IP family")
    flag((raw | (lt == IPV4_LT) | (lt == IPV6_LT)) & (cap < 1), "empty raw IP frame")
    is4 &= cap3 >= 1
    is6 &= cap3 >= 1
    bad4 = is4 & (version != 4)
    bad6 = is6 & (version != 6)
    flag(bad4 | bad6, "bad IP version")
    return is4 & ~bad4, is6 & ~bad6


def _network_layer(b: _Batch, link: _Link) -> _Net:
    """IPv4 and IPv6 headers: addresses, IP id, TTL, protocol, where L4 starts."""
    lt, cap, flag, f = b.lt, b.cap, b.flag, b.f
    cap3 = cap - link.l3off
    g3 = at_offsets(b.g2, b.buf, b.data, link.l3off, K3,
                    needed=link.et_valid | link.raw | (lt == IPV4_LT) | (lt == IPV6_LT))
    is4, is6 = _ip_versions(b, link, g3, cap3)
    ihl = (g3[:, 0] & 0x0F).astype(np.int64) * 4
    v4 = is4 & (cap3 >= 20)
    flag(is4 & ~v4, "truncated IPv4 header")
    bad_ihl = v4 & (ihl < 20)
    flag(bad_ihl, "bad IPv4 header length")
    flag(v4 & ~bad_ihl & (cap3 < ihl), "truncated IPv4 options")
    tot = be16(g3, 2).astype(np.int64)
    # A zero total length is what TSO/GSO frames carry on capture; the frame length stands in.
    # A total length beyond the frame's wire length is bogus; the frame length bounds it (as in
    # Wireshark).
    on_wire = b.idx.wirelen.astype(np.int64) - link.l3off
    tot = np.where((tot == 0) | (tot > on_wire), on_wire, tot)
    frag = be16(g3, 6)
    v6 = is6 & (cap3 >= 40)
    flag(is6 & ~v6, "truncated IPv6 header")

    f.ints["ip_version"] = Col(np.where(is4, 4, np.where(is6, 6, 0)), is4 | is6)
    f.ints["ip_id"] = Col(be16(g3, 4), v4)
    f.ints["ip_df"] = Col((g3[:, 6] & 0x40) != 0, v4)
    f.ints["ttl"] = Col(np.where(v6, g3[:, 7], g3[:, 8]), v4 | v6)
    f.ip4["src_ip"] = Col(be32(g3, 12), v4)
    f.ip4["dst_ip"] = Col(be32(g3, 16), v4)
    # IPv6 addresses are kept for the valid rows only (16 bytes each would dominate memory).
    f.ip6["src_ip"] = Col(g3[v6, 8:24], v6)
    f.ip6["dst_ip"] = Col(g3[v6, 24:40], v6)

    l4off = np.where(v4, ihl, 40)
    ip_payload = np.where(v4, tot - ihl, np.minimum(be16(g3, 4).astype(np.int64), on_wire - 40))
    has_l4 = (v4 & ~bad_ihl & ((frag & 0x1FFF) == 0)) | v6
    proto = np.where(v6, g3[:, 6], g3[:, 9].astype(np.uint32))
    return _Net(g3, cap3, v4, v6, proto, l4off, ip_payload, has_l4)


def _ipv6_extension_headers(b: _Batch, link: _Link, net: _Net) -> None:
    """Walk the IPv6 extension headers (rare: per frame) to the upper-layer protocol."""
    buf, proto, has_l4, ip_payload = b.buf, net.proto, net.has_l4, net.ip_payload
    on_wire = b.idx.wirelen.astype(np.int64) - link.l3off
    ext_truncated: list[int] = []
    for r in np.flatnonzero(net.v6 & np.isin(proto, IPV6_EXT)):
        nh = int(proto[r])
        off = 40
        base = int(b.data[r] + link.l3off[r])
        avail = int(net.cap3[r])
        while nh in IPV6_EXT:
            if off + 8 > avail:
                ext_truncated.append(int(r))
                has_l4[r] = False
                break
            h = bytes(buf[base + off:base + off + 8])
            if nh == 44:
                if (int.from_bytes(h[2:4], "big") >> 3) != 0:
                    has_l4[r] = False      # not the first fragment: no L4 header here
                size = 8
            elif nh == 51:
                size = (h[1] + 2) * 4
            else:
                size = (h[1] + 1) * 8
                if nh == 0 and ip_payload[r] == 0:
                    opts = buf[base + off + 2:base + off + min(size, avail - off)]
                    jumbo = _jumbo_length(bytes(opts))
                    if jumbo is not None:
                        ip_payload[r] = min(jumbo, int(on_wire[r]) - 40)
            nh = h[0]
            off += size
        proto[r] = nh
        net.l4off[r] = off
        ip_payload[r] -= off - 40
    b.flag(_mask(b.n, ext_truncated), "truncated IPv6 extension header")


def _transport_layer(b: _Batch, link: _Link, net: _Net
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TCP, UDP and ICMP headers: ports, seq/ack, flags, payload length, ICMP type and code.
    Returns (the L4 header matrix, captured bytes from L4 on, ICMPv6 frames)."""
    flag, ints, proto, has_l4 = b.flag, b.f.ints, net.proto, net.has_l4
    cap4 = net.cap3 - net.l4off
    g4 = at_offsets(b.g2, b.buf, b.data, link.l3off + net.l4off, K4, needed=has_l4)
    tcp = has_l4 & (proto == 6)
    udp = has_l4 & (proto == 17)
    icmp4 = has_l4 & net.v4 & (proto == 1)
    icmp6 = has_l4 & net.v6 & (proto == 58)
    icmp = icmp4 | icmp6
    ports_ok = (tcp | udp) & (cap4 >= 4)
    ints["src_port"] = Col(be16(g4, 0), ports_ok)
    ints["dst_port"] = Col(be16(g4, 2), ports_ok)
    ints["seq"] = Col(be32(g4, 4), tcp & (cap4 >= 8))
    ints["ack"] = Col(be32(g4, 8), tcp & (cap4 >= 12))
    flags_ok = tcp & (cap4 >= 14)
    ints["tcp_flags"] = Col(((g4[:, 12].astype(np.uint16) & 0x0F) << 8) | g4[:, 13], flags_ok)
    flag(tcp & (cap4 < 20), "truncated TCP header")
    flag(udp & (cap4 < 8), "truncated UDP header")
    flag(icmp & (cap4 < 4), "truncated ICMP header")
    doff = (g4[:, 12] >> 4).astype(np.int64) * 4
    bad_doff = flags_ok & (doff < 20)
    flag(bad_doff, "bad TCP header length")
    ip_payload = net.ip_payload
    payload = np.where(tcp, ip_payload - doff, np.where(udp | icmp, ip_payload - 8, 0))
    payload_ok = (tcp & flags_ok & ~bad_doff) | (udp & (cap4 >= 8)) | (icmp & (cap4 >= 4))
    ints["payload_len"] = Col(payload, payload_ok)
    tcp_ok = tcp & flags_ok & ~bad_doff
    l4 = b.data + link.l3off + net.l4off          # where each frame's transport header starts
    ints["payload_hash"], ints["payload_whole"] = deeper.payload_digest(
        b.buf, l4 + doff, tcp_ok, payload, cap4 - doff)
    ints["tcp_mss"] = deeper.tcp_mss(b.buf, l4, tcp_ok, np.minimum(doff, cap4))
    ints["icmp_type"] = Col(g4[:, 0].copy(), icmp & (cap4 >= 1))
    ints["icmp_code"] = Col(g4[:, 1].copy(), icmp & (cap4 >= 2))
    deeper.icmp_errors(b.f, b.buf, l4, g4, cap4, icmp4, icmp6)
    return g4, cap4, icmp6


def _neighbour_discovery(b: _Batch, link: _Link, net: _Net, g4: np.ndarray, cap4: np.ndarray,
                         icmp6: np.ndarray) -> None:
    """IPv6 neighbour discovery (ICMPv6 rows only): target, NA flags, link-layer address."""
    n, buf = b.n, b.buf
    lladdr = np.zeros(n, np.uint64)
    ll_ok = np.zeros(n, bool)
    target = np.zeros((n, 16), np.uint8)
    target_ok = np.zeros(n, bool)
    nd_flags = np.zeros(n, np.uint8)
    nd_flags_ok = np.zeros(n, bool)
    r6 = np.flatnonzero(icmp6)
    if len(r6):
        h = g4[r6]
        c4 = cap4[r6]
        itype = h[:, 0]
        ns_na = np.isin(itype, (135, 136))
        target[r6[ns_na & (c4 >= 24)]] = h[ns_na & (c4 >= 24), 8:24]
        target_ok[r6] = ns_na & (c4 >= 24)
        b.flag(_mask(n, r6[ns_na & (c4 < 24)]), "truncated neighbour discovery message")
        nd_flags[r6] = h[:, 4] & 0xE0
        nd_flags_ok[r6] = (itype == 136) & (c4 >= 8)
        opt_start = np.select([ns_na, itype == 133, itype == 134], [24, 8, 16], 0)
        want = np.where(itype == 136, 2, 1)   # NA: the target's address; the others: the source's
        for start in (8, 16, 24):
            rows = (opt_start == start) & (c4 >= start + 8)
            first_is = rows & (h[:, start] == want) & (h[:, start + 1] == 1)
            lladdr[r6[first_is]] = u48(h[first_is], start + 2)
            ll_ok[r6[first_is]] = True
            # The wanted option is not first: walk the options of just these frames.
            for j in np.flatnonzero(rows & ~first_is):
                r = r6[j]
                base = int(b.data[r] + link.l3off[r] + net.l4off[r])
                found = _ll_option(buf, base, start, int(cap4[r]), int(want[j]))
                if found is not None:
                    lladdr[r] = found
                    ll_ok[r] = True
    b.f.ip6["nd_target"] = Col(target[target_ok], target_ok)
    b.f.ints["nd_flags"] = Col(nd_flags, nd_flags_ok)
    b.f.macs["nd_lladdr"] = Col(lladdr, ll_ok)


def _ll_option(buf: np.ndarray, base: int, start: int, avail: int, want: int) -> int | None:
    """The MAC of the first ND option of type `want` (8 bytes long) from offset start, if any."""
    o = start
    while o + 8 <= avail:
        t, ln = int(buf[base + o]), int(buf[base + o + 1])
        if ln == 0:
            break
        if t == want and ln == 1:
            return int.from_bytes(bytes(buf[base + o + 2:base + o + 8]), "big")
        o += ln * 8
    return None


def _arp(b: _Batch, link: _Link, net: _Net) -> None:
    """ARP: op for every ARP frame; addresses of the Ethernet/IPv4 form."""
    n, g3, cap3 = b.n, net.g3, net.cap3
    arp = link.et_valid & (link.ethertype == ET_ARP)
    arp_op_ok = arp & (cap3 >= 8)
    arp_full = arp_op_ok & (g3[:, 4] == 6) & (g3[:, 5] == 4) & (cap3 >= 28)
    b.flag(arp & ~arp_op_ok, "truncated ARP header")
    b.flag(arp_op_ok & (g3[:, 4] == 6) & (g3[:, 5] == 4) & (cap3 < 28), "truncated ARP header")
    b.f.ints["arp_op"] = Col(be16(g3, 6), arp_op_ok)
    rows = np.flatnonzero(arp_full)
    ga = g3[rows]
    for name, fn, o in (("arp_sender_mac", u48, 8), ("arp_target_mac", u48, 18),
                        ("arp_sender_ip", be32, 14), ("arp_target_ip", be32, 24)):
        values = np.zeros(n, np.uint64 if fn is u48 else np.uint32)
        values[rows] = fn(ga, o)
        (b.f.macs if fn is u48 else b.f.ip4)[name] = Col(values, arp_full)


def _jumbo_length(options: bytes) -> int | None:
    """The Jumbo Payload option (RFC 2675) of a hop-by-hop header's options, if any."""
    i = 0
    while i + 1 < len(options):
        kind = options[i]
        if kind == 0:          # Pad1
            i += 1
            continue
        length = options[i + 1]
        if kind == 0xC2 and length == 4 and i + 6 <= len(options):
            return int.from_bytes(options[i + 2:i + 6], "big")
        i += 2 + length
    return None


def _mask(n: int, rows: np.ndarray | list[int]) -> np.ndarray:
    m = np.zeros(n, bool)
    m[np.asarray(rows, dtype=np.int64)] = True
    return m
