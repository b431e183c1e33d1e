"""The network layer of the numpy decoder: IPv4 and IPv6 headers (IPv6 extension headers walked
per frame, they are rare) and ARP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dr_inspect.decode.fields import Col, at_offsets, be16, be32, u48
from dr_inspect.decode.frame_batch import FrameBatch, mask
from dr_inspect.decode.link import IPV4_LT, IPV6_LT, Link

ET_IPV4, ET_IPV6, ET_ARP = 0x0800, 0x86DD, 0x0806
IPV6_EXT = (0, 43, 44, 60, 51)       # hop-by-hop, routing, fragment, destination options, AH
K3 = 40                              # bytes gathered per L3 header


@dataclass
class Net:
    """What the network layer gave: the L3 header matrix and where L4 starts."""

    g3: np.ndarray
    cap3: np.ndarray
    v4: np.ndarray
    v6: np.ndarray
    proto: np.ndarray
    l4off: np.ndarray
    ip_payload: np.ndarray
    has_l4: np.ndarray


def _ip_versions(b: FrameBatch, link: Link, g3: np.ndarray, cap3: np.ndarray
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


def network_layer(b: FrameBatch, link: Link) -> Net:
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
    return Net(g3, cap3, v4, v6, proto, l4off, ip_payload, has_l4)


def ipv6_extension_headers(b: FrameBatch, link: Link, net: Net) -> None:
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
    b.flag(mask(b.n, ext_truncated), "truncated IPv6 extension header")


def arp(b: FrameBatch, link: Link, net: Net) -> None:
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
