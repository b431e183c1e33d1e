"""What a forwarded copy is matched on: dense ids of the loose key (the client endpoint, seq,
ack, flags: a copy whose VIP or port was rewritten still matches) and of the loose key with the
IP ID and length, for the to_vip rows and the real-server-side rows a copy may be."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import endpoint_in
from dr_inspect.columnar.ids import dense_ids, hash_key
from dr_inspect.columnar.pack import dense_span, fits, pack, span_of
from dr_inspect.columnar.tcp_view import LOOSE_KEY
from dr_inspect.columnar.text import member
from dr_inspect.topology.model import LearnedTopology


@dataclass
class LooseKeys:
    """Dense integer ids of the loose key (LOOSE_KEY) and of the loose key with the IP ID and
    the payload length, for two sets of view rows (a: ingress frames, b: real-server-side
    frames)."""
    loose_a: np.ndarray
    loose_b: np.ndarray
    ident_a: np.ndarray
    ident_b: np.ndarray
    n_loose: int                # loose ids are 0..n_loose-1
    n_ident: int                # ident ids are 0..n_ident-1 (not every id is used)


def loose_keys(tv: pd.DataFrame, packet: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray
                ) -> LooseKeys:
    """LooseKeys of the view rows rows_a and rows_b; packet: the view's packet ids (one per
    strict key).

    Both keys are parts of the strict key, so each is a function of the packet: the loose key
    is hashed and factorized once per distinct packet (a frame and its forwarded copy are
    usually one packet: half the rows), and the IP ID joins it as an integer, only for loose
    keys several packets share (retransmissions, rewritten copies)."""
    pa, pb = packet[rows_a], packet[rows_b]
    n_packets = int(packet.max()) + 1 if len(packet) else 0
    # one view row per packet: every row of a packet has the same strict key, so the same values
    # (rows and ids in int32 while they fit: these arrays are read at random)
    small = len(tv) < 1 << 31
    rep = np.full(n_packets, -1, dtype=np.int32 if small else np.int64)
    rep[pb] = rows_b
    rep[pa] = rows_a
    used = np.flatnonzero(rep >= 0)
    rep = rep[used]
    loose, n_loose = dense_ids(hash_key(tv[LOOSE_KEY].iloc[rep], LOOSE_KEY))
    # per packet id (a dense array over the packets: a gather, not a lookup)
    by_packet = np.zeros(n_packets, dtype=np.int32 if small else np.int64)
    by_packet[used] = loose
    loose_a, loose_b = by_packet[pa], by_packet[pb]
    shared = np.flatnonzero(np.bincount(loose, minlength=n_loose)[loose] > 1)
    if len(shared) == 0:
        # no two packets share a loose key: the IP ID tells none apart
        return LooseKeys(loose_a=loose_a, loose_b=loose_b, ident_a=loose_a, ident_b=loose_b,
                          n_loose=n_loose, n_ident=n_loose)
    ident = loose.copy()
    ip_id = tv["ip_id"].to_numpy()[rep[shared]].astype(np.int64)
    # the length too: a pure ACK and the data segment after it share seq, ack and flags (and,
    # in IPv6, have no IP ID): each must find its own copy first, GRO/TSO ones by seq range
    length = tv["payload_len"].to_numpy()[rep[shared]].astype(np.int64)
    spans = [dense_span(n_loose), span_of(ip_id), span_of(length)]
    if fits(spans):
        # exact: (loose id, IP ID, length) packed
        pair = pack([ident[shared], ip_id, length], spans)
    else:
        pair = hash_key(pd.DataFrame({"loose": ident[shared], "ip_id": ip_id, "len": length}),
                        ["loose", "ip_id", "len"])
    # these packets get ids after the loose ids (those of their loose keys stay unused)
    pair_ids, pairs = pd.factorize(pair)
    ident[shared] = n_loose + pair_ids
    n_ident = n_loose + len(pairs)
    by_packet = by_packet.astype(np.int64) if n_ident >= 1 << 31 else by_packet
    by_packet[used] = ident
    return LooseKeys(loose_a=loose_a, loose_b=loose_b, ident_a=by_packet[pa],
                      ident_b=by_packet[pb], n_loose=n_loose, n_ident=n_ident)


@dataclass
class CopyKeys:
    """What the forwarded copies are matched on: dense loose-key ids of every to_vip table row
    (keys.*_a) and of the real-server-side view rows a copy may be (rs_rows, keys.*_b)."""
    keys: LooseKeys
    rs_rows: np.ndarray


def copy_keys(tv: pd.DataFrame, topo: LearnedTopology, view_rows: np.ndarray,
              packet: np.ndarray) -> CopyKeys:
    """CopyKeys of the to_vip table built from the view rows `view_rows` (vip_rows(tv,
    topo.vips)); packet: the view's packet ids (tcp_view). The table itself is not read: the
    keys can be made while it is built."""
    rs_points = [p for p, r in topo.roles.items() if r in ("rs-segment", "both")]
    # a copy leaves the director: a frame another host sends to a director MAC (a client's
    # original, a looping real server's frame coming back) or to a silent MAC (a client's
    # stale ARP entry) is none. One the director sends to its own MAC is a copy it did not
    # re-address (DR001 names it, DR007 must not call the packet lost)
    not_copy = (member(tv["dst_mac"], topo.director_macs | topo.silent_macs)
                & ~member(tv["src_mac"], topo.director_out))
    rs_rows = np.flatnonzero(member(tv["point"], rs_points) & ~not_copy
                             & ~endpoint_in(tv["src_ip"], tv["src_port"], topo.vips))
    return CopyKeys(keys=loose_keys(tv, packet, view_rows, rs_rows), rs_rows=rs_rows)

