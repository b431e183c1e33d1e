"""Fields deeper in a frame than the headers layers.py walks, for the frames it has found:
the TCP payload digest, the TCP MSS option, and what an ICMP/ICMPv6 error says (its MTU and
the header it quotes). The C kernel (_native.c) decodes the same fields of the frames it takes
the same way; tests/test_decode_native.py holds both to the same table."""

from __future__ import annotations

import numpy as np

from dr_inspect.decode import digest
from dr_inspect.decode.fields import Col, Fields, be16, be32
from dr_inspect.decode.gather import gather


def payload_digest(buf: np.ndarray, start: np.ndarray, tcp_ok: np.ndarray, payload: np.ndarray,
                   captured: np.ndarray) -> tuple[Col, Col]:
    """(payload_hash, payload_whole): the digest (digest.py) of the captured TCP payload bytes
    at `start` in buf, and whether the capture holds all `payload` of them (frames cut by the
    snaplen hold a part; Ethernet padding past the IP packet is no payload)."""
    count = np.where(tcp_ok, np.clip(np.minimum(payload, captured), 0, None), 0)
    return Col(digest.digests(buf, start, count), tcp_ok), Col(captured >= payload, tcp_ok)


def tcp_mss(buf: np.ndarray, start: np.ndarray, tcp_ok: np.ndarray, end: np.ndarray) -> Col:
    """tcp_mss of the TCP headers at `start` in buf: the first MSS option (kind 2, length 4)
    among the options up to `end` (the header length, or the captured bytes if fewer). The
    options are walked as a receiver does: end of list (0) stops, NOP (1) is one byte, any other
    kind has a length byte (below 2: malformed, the walk stops). Every frame's walk advances in
    one vector step."""
    mss = np.zeros(len(start), np.uint16)
    found = np.zeros(len(start), bool)
    rows = np.flatnonzero(tcp_ok & (end > 20))
    if len(rows):
        opts = gather(buf, start[rows], 60)
        stop = end[rows]
        pos = np.full(len(rows), 20, np.int64)
        active = pos < stop
        lane = np.arange(len(rows))
        while active.any():
            at = np.flatnonzero(active)
            p = pos[at]
            kind = opts[lane[at], p]
            size = np.where(p + 1 < stop[at], opts[lane[at], np.minimum(p + 1, 59)], 0)
            nop = kind == 1
            hit = (kind == 2) & (size == 4) & (p + 4 <= stop[at])
            done = (kind == 0) | (~nop & (size < 2)) | hit
            found[rows[at[hit]]] = True
            mss[rows[at[hit]]] = (opts[lane[at[hit]], p[hit] + 2].astype(np.uint16) << 8) \
                | opts[lane[at[hit]], p[hit] + 3]
            pos[at] = p + np.where(nop, 1, size)
            active[at[done]] = False
            active &= pos < stop
    return Col(mss, found)


ICMP4_ERRORS = (3, 4, 5, 11, 12)      # unreachable, source quench, redirect, time exceeded, param.
ICMP6_ERRORS = (1, 2, 3, 4)           # unreachable, packet too big, time exceeded, param. problem


def icmp_errors(f: Fields, buf: np.ndarray, start: np.ndarray, g4: np.ndarray,
                cap4: np.ndarray, icmp4: np.ndarray, icmp6: np.ndarray) -> None:
    """Into f: of ICMP/ICMPv6 errors (their headers at `start` in buf; g4: their first bytes,
    cap4: the bytes captured from there), the MTU of fragmentation-needed / packet-too-big, and
    the header of the packet they quote (from byte 8): its addresses and protocol, and where
    the quote holds them (a first fragment, TCP/UDP) its ports and TCP sequence number."""
    n, ints = f.n, f.ints
    itype, code = g4[:, 0], g4[:, 1]
    mtu4 = icmp4 & (itype == 3) & (code == 4) & (cap4 >= 8)
    mtu6 = icmp6 & (itype == 2) & (cap4 >= 8)
    ints["icmp_mtu"] = Col(np.where(mtu6, be32(g4, 4), be16(g4, 6)), mtu4 | mtu6)
    err4 = icmp4 & np.isin(itype, ICMP4_ERRORS)
    err6 = icmp6 & np.isin(itype, ICMP6_ERRORS)
    rows = np.flatnonzero((err4 | err6) & (cap4 >= 28))
    q = gather(buf, start[rows] + 8, 68)
    held = cap4[rows] - 8
    version, ihl = q[:, 0] >> 4, (q[:, 0] & 0x0F).astype(np.int64) * 4
    is4 = err4[rows] & (version == 4) & (ihl >= 20)
    is6 = err6[rows] & (held >= 40) & (version == 6)
    hl = np.where(is4, ihl, 40)
    proto = np.where(is4, q[:, 9], q[:, 6])
    first = is6 | (is4 & ((be16(q, 6) & 0x1FFF) == 0))
    # the quoted transport header's first 8 bytes, at each row's own header length
    l4 = q[np.arange(len(rows))[:, None], np.minimum(hl[:, None] + np.arange(8), 67)]
    ports = first & np.isin(proto, (6, 17)) & (held >= hl + 4)
    seq = first & (proto == 6) & (held >= hl + 8)
    for name, values, ok in (("inner_proto", proto, is4 | is6),
                             ("inner_src_port", be16(l4, 0), ports),
                             ("inner_dst_port", be16(l4, 2), ports),
                             ("inner_seq", be32(l4, 4), seq)):
        ints[name] = Col(_scatter(n, rows, values), _scatter(n, rows, ok))
    for name, at4, at6 in (("inner_src_ip", 12, 8), ("inner_dst_ip", 16, 24)):
        f.ip4[name] = Col(_scatter(n, rows, be32(q, at4)), _scatter(n, rows, is4))
        f.ip6[name] = Col(q[is6, at6:at6 + 16], _scatter(n, rows, is6))


def _scatter(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A column of n frames holding values at rows (zeros elsewhere)."""
    out = np.zeros(n, values.dtype)
    out[rows] = values
    return out
