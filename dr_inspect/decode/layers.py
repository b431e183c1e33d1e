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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dr_inspect.decode import native
from dr_inspect.decode.containers import FrameIndex
from dr_inspect.decode.gather import gather

ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT = 1, 12, 14, 101, 113, 276, 228, 229
NULL, LOOP = 0, 108   # BSD loopback: a 4-byte address family, then the IP packet
SUPPORTED_LINKTYPES = {ETH, RAW_BSD, RAW_OPENBSD, RAW, SLL, SLL2, IPV4_LT, IPV6_LT, NULL, LOOP}
ET_IPV4, ET_IPV6, ET_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 4
IPV6_EXT = (0, 43, 44, 60, 51)       # hop-by-hop, routing, fragment, destination options, AH
K_FRAME, K3, K4 = 96, 40, 40          # bytes gathered at the frame start, per L3 / L4 header


@dataclass
class Col:
    values: np.ndarray
    valid: np.ndarray


@dataclass
class Fields:
    """Numeric columns of one batch of frames; addresses still numeric."""

    n: int
    ints: dict[str, Col] = field(default_factory=dict)
    macs: dict[str, Col] = field(default_factory=dict)        # uint64
    ip4: dict[str, Col] = field(default_factory=dict)         # uint32
    ip6: dict[str, Col] = field(default_factory=dict)         # (valid rows, 16) uint8
    reasons: Counter = field(default_factory=Counter)
    undecodable: np.ndarray | None = None                    # bool per frame


def at_offsets(g: np.ndarray, buf: np.ndarray, data: np.ndarray, off: np.ndarray, k: int,
               needed: np.ndarray | None = None) -> np.ndarray:
    """(n, k): the k bytes at data + off of each frame, sliced from the frame-start matrix g where
    it holds them (a view when every frame has the same offset), else gathered from buf. Rows not
    `needed` get arbitrary bytes (they are read at a common offset, to keep the fast path)."""
    n, width = g.shape
    if n == 0:
        return np.zeros((0, k), np.uint8)
    if needed is not None:
        first = np.flatnonzero(needed)
        off = np.where(needed, off, off[first[0]] if len(first) else 0)
    lo, hi = int(off.min()), int(off.max())
    if lo == hi and 0 <= lo and lo + k <= width:
        return g[:, lo:lo + k]
    values, counts = np.unique(off, return_counts=True)
    out = np.empty((n, k), np.uint8)
    if len(values) > 16:
        return gather(buf, data + off, k)
    for v in values:
        rows = np.flatnonzero(off == v)
        if 0 <= v and v + k <= width:
            out[rows] = g[rows, v:v + k]
        else:
            out[rows] = gather(buf, data[rows] + v, k)
    return out


# Field readers: a zero-copy big-endian view of the field's bytes in every row, converted once.
def be16(m: np.ndarray, o: int) -> np.ndarray:
    return m[:, o:o + 2].view(">u2")[:, 0].astype(np.uint16)


def be32(m: np.ndarray, o: int) -> np.ndarray:
    return m[:, o:o + 4].view(">u4")[:, 0].astype(np.uint32)


def u48(m: np.ndarray, o: int) -> np.ndarray:
    if o + 8 <= m.shape[1]:
        return m[:, o:o + 8].view(">u8")[:, 0].astype(np.uint64) >> np.uint64(16)
    return (be16(m, o).astype(np.uint64) << np.uint64(32)) | be32(m, o + 2).astype(np.uint64)


BATCH = 65536   # frames decoded together: temporaries stay small, cache-resident and reused


def decode_fields(buf: np.ndarray, idx: FrameIndex) -> Fields:
    """Fields of every frame of idx; works through the frames in batches of BATCH."""
    return merge_fields(decode_field_batches(buf, idx))


def decode_field_batches(buf: np.ndarray, idx: FrameIndex,
                         release: Callable[[int], None] | None = None) -> list[Fields]:
    """Fields of consecutive batches of frames (merge once, at the very end): one batch when the
    compiled kernel does the common frames, else batches of at most BATCH frames. release: see
    native.decode_frames (the kernel's path only)."""
    if native.enabled() and len(idx):
        return [_decode_with_kernel(buf, idx, release)]
    return _numpy_batches(buf, idx)


def _numpy_batches(buf: np.ndarray, idx: FrameIndex) -> list[Fields]:
    n = len(idx)
    if n <= BATCH:
        return [_decode_batch(buf, idx)]
    return [_decode_batch(buf, _slice(idx, s, min(n, s + BATCH))) for s in range(0, n, BATCH)]


def merge_fields(parts: list[Fields]) -> Fields:
    """Fields of consecutive frame batches as one."""
    if len(parts) == 1:
        return parts[0]
    out = Fields(sum(p.n for p in parts))
    for group in ("ints", "macs", "ip4", "ip6"):
        target = getattr(out, group)
        for name in list(getattr(parts[0], group)):
            # Popped column by column: the batches' copies are freed as the merged ones appear.
            cols = [getattr(p, group).pop(name) for p in parts]
            target[name] = Col(np.concatenate([c.values for c in cols]),
                               np.concatenate([c.valid for c in cols]))
            del cols
    out.undecodable = np.concatenate([p.undecodable for p in parts])  # type: ignore[misc]
    for p in parts:
        out.reasons.update(p.reasons)
    return out


def _decode_with_kernel(buf: np.ndarray, idx: FrameIndex,
                        release: Callable[[int], None] | None = None) -> Fields:
    """The compiled kernel decodes the ordinary frames; the frames it leaves (odd link types,
    anything truncated or malformed, IPv6 extension headers, ICMPv6) are decoded by the numpy
    code below and written over their rows."""
    linktype = idx.linktype
    if idx.bad_interface is not None and idx.bad_interface.any():
        linktype = np.where(idx.bad_interface, -1, linktype)   # never a kernel frame
    cols, slow, ip6 = native.decode_frames(buf, idx.data_pos, idx.caplen, idx.wirelen, linktype,
                                           release)
    return kernel_fields(buf, idx, cols, slow, ip6)


def kernel_fields(buf: np.ndarray, idx: FrameIndex,
                  cols: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], slow: np.ndarray,
                  ip6: np.ndarray) -> Fields:
    """Fields from the compiled kernel's columns (native.decode_frames or PcapRecords), with
    the frames it left (`slow`) decoded here and written over their rows."""
    n = len(idx)
    f = Fields(n)
    for (group, name), (values, valid) in cols.items():
        getattr(f, group)[name] = Col(values, valid)
    v6 = ~slow & f.ints["ip_version"].valid & (f.ints["ip_version"].values == 6)
    f.undecodable = np.zeros(n, bool)
    rows = np.flatnonzero(slow)
    if len(rows) == 0:
        f.ip6["src_ip"] = Col(ip6[:, :16], v6)
        f.ip6["dst_ip"] = Col(ip6[:, 16:], v6)
        f.ip6["nd_target"] = Col(np.zeros((0, 16), np.uint8), np.zeros(n, bool))
        return f
    rest = merge_fields(_numpy_batches(buf, _take(idx, rows)))
    for group in ("ints", "macs", "ip4"):
        for name, col in getattr(rest, group).items():
            target = getattr(f, group)[name]
            target.values[rows] = col.values
            target.valid[rows] = col.valid
    for name, fast, fast_valid in (("src_ip", ip6[:, :16], v6), ("dst_ip", ip6[:, 16:], v6),
                                   ("nd_target", ip6[:0, :16], np.zeros(n, bool))):
        f.ip6[name] = _ip6_rows(fast, fast_valid, rest.ip6[name], rows)
    f.undecodable[rows] = rest.undecodable
    f.reasons = rest.reasons
    return f


def _ip6_rows(fast: np.ndarray, fast_valid: np.ndarray, rest: Col, rows: np.ndarray) -> Col:
    """An IPv6 column (values of the valid rows only, in frame order) from the kernel's rows
    and the numpy-decoded `rows`."""
    valid = fast_valid.copy()
    valid[rows] = rest.valid
    rank = np.cumsum(valid) - 1
    values = np.empty((int(valid.sum()), 16), np.uint8)
    values[rank[fast_valid]] = fast
    values[rank[rows[rest.valid]]] = rest.values
    return Col(values, valid)


def _take(idx: FrameIndex, rows: np.ndarray) -> FrameIndex:
    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]
    return FrameIndex(idx.data_pos[rows], idx.caplen[rows], idx.wirelen[rows], idx.ts_ns[rows],
                      idx.interface[rows], idx.linktype[rows],
                      bad_interface=pick(idx.bad_interface), head=pick(idx.head))


def _slice(idx: FrameIndex, start: int, stop: int) -> FrameIndex:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[start:stop]
    return FrameIndex(idx.data_pos[start:stop], idx.caplen[start:stop], idx.wirelen[start:stop],
                      idx.ts_ns[start:stop], idx.interface[start:stop], idx.linktype[start:stop],
                      bad_interface=cut(idx.bad_interface), head=cut(idx.head))


def _decode_batch(buf: np.ndarray, idx: FrameIndex) -> Fields:
    n = len(idx)
    f = Fields(n)
    cap = idx.caplen.astype(np.int64)
    lt = idx.linktype.astype(np.int64)
    data = idx.data_pos.astype(np.int64)
    reason_code = np.zeros(n, np.int16)   # 0 = fine; index into reason_names
    reason_names: list[str] = [""]

    def flag(mask: np.ndarray, why: str) -> None:
        """Count frames under a reason (the first reason found for a frame wins)."""
        mask = mask & (reason_code == 0)
        if mask.any():
            if why not in reason_names:
                reason_names.append(why)
            reason_code[mask] = reason_names.index(why)

    g2 = idx.head if idx.head is not None and idx.head.shape[1] >= K_FRAME else \
        gather(buf, data, K_FRAME)
    eth = lt == ETH
    sll = lt == SLL
    sll2 = lt == SLL2
    raw = np.isin(lt, (RAW_BSD, RAW_OPENBSD, RAW))
    known = np.isin(lt, list(SUPPORTED_LINKTYPES))
    if idx.bad_interface is not None:
        flag(idx.bad_interface, "undefined pcapng interface")
        known &= ~idx.bad_interface
    for value in np.unique(lt[~known & (lt >= 0)]):
        flag(~known & (lt == value), f"unsupported link type {int(value)}")

    # ---- link layer
    ethertype = np.zeros(n, np.uint32)
    et_valid = np.zeros(n, bool)
    l3off = np.zeros(n, np.int64)
    src_mac = np.zeros(n, np.uint64)
    dst_mac = np.zeros(n, np.uint64)
    src_ok = np.zeros(n, bool)
    dst_ok = np.zeros(n, bool)

    dst_ok |= eth & (cap >= 6)
    src_ok |= eth & (cap >= 12)
    e_full = eth & (cap >= 14)
    flag(eth & ~e_full, "truncated Ethernet header")
    macd = u48(g2, 0)
    macs = u48(g2, 6)
    dst_mac = np.where(eth, macd, dst_mac)
    src_mac = np.where(eth, macs, src_mac)
    et16 = be16(g2, 12)
    ethertype = np.where(e_full, et16, ethertype)
    et_valid |= e_full
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

    # ---- VLAN tags (802.1Q, 802.1ad, old QinQ): outermost id kept, ethertype = innermost.
    vlan = np.zeros(n, np.uint32)
    vlan_ok = np.zeros(n, bool)
    tagged = et_valid & np.isin(ethertype, VLAN_TPIDS)
    for _ in range(MAX_VLAN_TAGS):
        rows = np.flatnonzero(tagged)
        if len(rows) == 0:
            break
        full = cap[rows] >= l3off[rows] + 4
        flag(_mask(n, rows[~full]), "truncated VLAN tag")
        et_valid[rows[~full]] = False
        rows = rows[full]
        tag = gather(buf, data[rows] + l3off[rows], 4)
        first = rows[~vlan_ok[rows]]
        vlan[first] = (be16(tag, 0) & 0x0FFF)[~vlan_ok[rows]]
        vlan_ok[first] = True
        ethertype[rows] = be16(tag, 2)
        l3off[rows] += 4
        tagged = np.zeros(n, bool)
        tagged[rows] = np.isin(ethertype[rows], VLAN_TPIDS)

    # Below 0x0600 the field is an 802.3 length (LLC follows), not an ethertype.
    et_valid &= ethertype >= 0x0600

    # ---- network layer
    cap3 = cap - l3off
    g3 = at_offsets(g2, buf, data, l3off, K3, needed=et_valid | raw | (lt == IPV4_LT)
                    | (lt == IPV6_LT))
    version = g3[:, 0] >> 4
    is4 = ((et_valid & (ethertype == ET_IPV4)) | (raw & (version == 4)) | (lt == IPV4_LT))
    is6 = ((et_valid & (ethertype == ET_IPV6)) | (raw & (version == 6)) | (lt == IPV6_LT))
    flag(raw & ~loop & (cap >= 1) & ~is4 & ~is6, "raw IP with unknown version")
    flag(loop & (cap >= 5) & ~is4 & ~is6, "loopback frame of a non-IP family")
    flag((raw | (lt == IPV4_LT) | (lt == IPV6_LT)) & (cap < 1), "empty raw IP frame")
    is4 &= cap3 >= 1
    is6 &= cap3 >= 1
    bad4 = is4 & (version != 4)
    bad6 = is6 & (version != 6)
    flag(bad4 | bad6, "bad IP version")
    is4 &= ~bad4
    is6 &= ~bad6

    ip_version = np.where(is4, 4, np.where(is6, 6, 0)).astype(np.uint8)
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
    on_wire = idx.wirelen.astype(np.int64) - l3off
    tot = np.where((tot == 0) | (tot > on_wire), on_wire, tot)
    frag = be16(g3, 6)
    ttl = g3[:, 8]
    proto = g3[:, 9].astype(np.uint32)
    v6 = is6 & (cap3 >= 40)
    flag(is6 & ~v6, "truncated IPv6 header")

    ip_id = be16(g3, 4)
    ints = f.ints
    ints["ip_version"] = Col(ip_version, is4 | is6)
    ints["ip_id"] = Col(ip_id.astype(np.uint32), v4)
    ints["ttl"] = Col(np.where(v6, g3[:, 7], ttl), v4 | v6)
    f.ip4["src_ip"] = Col(be32(g3, 12), v4)
    f.ip4["dst_ip"] = Col(be32(g3, 16), v4)
    # IPv6 addresses are kept for the valid rows only (16 bytes each would dominate memory).
    f.ip6["src_ip"] = Col(g3[v6, 8:24], v6)
    f.ip6["dst_ip"] = Col(g3[v6, 24:40], v6)

    l4off = np.where(v4, ihl, 40)
    ip_payload = np.where(v4, tot - ihl, np.minimum(be16(g3, 4).astype(np.int64), on_wire - 40))
    has_l4 = (v4 & ~bad_ihl & ((frag & 0x1FFF) == 0)) | v6
    proto = np.where(v6, g3[:, 6], proto)
    # IPv6 extension headers: rare, walked per frame.
    ext_rows = np.flatnonzero(v6 & np.isin(proto, IPV6_EXT))
    ext_truncated: list[int] = []
    for r in ext_rows:
        nh = int(proto[r])
        off = 40
        base = int(data[r] + l3off[r])
        avail = int(cap3[r])
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
        l4off[r] = off
        ip_payload[r] -= off - 40
    flag(_mask(n, ext_truncated), "truncated IPv6 extension header")
    ints["proto"] = Col(proto.astype(np.uint8), v4 | v6)

    # ---- transport layer
    cap4 = cap3 - l4off
    g4 = at_offsets(g2, buf, data, l3off + l4off, K4, needed=has_l4)
    tcp = has_l4 & (proto == 6)
    udp = has_l4 & (proto == 17)
    icmp4 = has_l4 & v4 & (proto == 1)
    icmp6 = has_l4 & v6 & (proto == 58)
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
    payload = np.where(tcp, ip_payload - doff, np.where(udp | icmp, ip_payload - 8, 0))
    payload_ok = (tcp & flags_ok & ~bad_doff) | (udp & (cap4 >= 8)) | (icmp & (cap4 >= 4))
    ints["payload_len"] = Col(payload.astype(np.int32), payload_ok)
    ints["icmp_type"] = Col(g4[:, 0].copy(), icmp & (cap4 >= 1))
    ints["icmp_code"] = Col(g4[:, 1].copy(), icmp & (cap4 >= 2))

    # ---- IPv6 neighbour discovery: target, flags, link-layer address option (ICMPv6 rows only).
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
        flag(_mask(n, r6[ns_na & (c4 < 24)]), "truncated neighbour discovery message")
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
                o = start
                base = int(data[r] + l3off[r] + l4off[r])
                while o + 8 <= cap4[r]:
                    t, ln = int(buf[base + o]), int(buf[base + o + 1])
                    if ln == 0:
                        break
                    if t == want[j] and ln == 1:
                        lladdr[r] = int.from_bytes(bytes(buf[base + o + 2:base + o + 8]), "big")
                        ll_ok[r] = True
                        break
                    o += ln * 8
    f.ip6["nd_target"] = Col(target[target_ok], target_ok)
    ints["nd_flags"] = Col(nd_flags, nd_flags_ok)
    f.macs["nd_lladdr"] = Col(lladdr, ll_ok)

    # ---- ARP (Ethernet/IPv4 form for the addresses; op for every ARP frame).
    arp = et_valid & (ethertype == ET_ARP)
    arp_op_ok = arp & (cap3 >= 8)
    arp_full = arp_op_ok & (g3[:, 4] == 6) & (g3[:, 5] == 4) & (cap3 >= 28)
    flag(arp & ~arp_op_ok, "truncated ARP header")
    flag(arp_op_ok & (g3[:, 4] == 6) & (g3[:, 5] == 4) & (cap3 < 28), "truncated ARP header")
    ints["arp_op"] = Col(be16(g3, 6), arp_op_ok)
    rows = np.flatnonzero(arp_full)
    ga = g3[rows]
    for name, fn, o in (("arp_sender_mac", u48, 8), ("arp_target_mac", u48, 18),
                        ("arp_sender_ip", be32, 14), ("arp_target_ip", be32, 24)):
        values = np.zeros(n, np.uint64 if fn is u48 else np.uint32)
        values[rows] = fn(ga, o)
        (f.macs if fn is u48 else f.ip4)[name] = Col(values, arp_full)

    ints["vlan"] = Col(vlan.astype(np.uint16), vlan_ok)
    ints["ethertype"] = Col(ethertype.astype(np.uint16), et_valid)
    f.macs["src_mac"] = Col(src_mac, src_ok)
    f.macs["dst_mac"] = Col(dst_mac, dst_ok)

    f.undecodable = reason_code > 0
    codes, counts = np.unique(reason_code[reason_code > 0], return_counts=True)
    f.reasons = Counter({reason_names[int(c)]: int(k) for c, k in zip(codes, counts)})
    return f


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
