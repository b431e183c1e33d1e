"""The transport layer of the numpy decoder: TCP, UDP and ICMP headers (with the deeper fields of
deeper.py) and IPv6 neighbour discovery."""

from __future__ import annotations

import numpy as np

from dr_inspect.decode import deeper
from dr_inspect.decode.fields import Col, at_offsets, be16, be32, u48
from dr_inspect.decode.frame_batch import FrameBatch, mask
from dr_inspect.decode.link import Link
from dr_inspect.decode.network import Net

K4 = 40                              # bytes gathered per L4 header


def transport_layer(b: FrameBatch, link: Link, net: Net
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


def neighbour_discovery(b: FrameBatch, link: Link, net: Net, g4: np.ndarray, cap4: np.ndarray,
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
        b.flag(mask(n, r6[ns_na & (c4 < 24)]), "truncated neighbour discovery message")
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
