"""The legs of the client->VIP packets: the same packet seen with more than one (src MAC, dst
MAC) is the director's original and its forwarded copies. Ranking each packet's legs (TTL
falls, time rises) votes which MACs receive originals (the director) and which receive copies
(the real servers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dr_inspect.columnar.ids import dense_ids, hash_key
from dr_inspect.columnar.pack import dense_span, distinct_rows, fits, pack
from dr_inspect.columnar.tcp_view import STRICT_KEY
from dr_inspect.topology.pins import TopologyPins
from dr_inspect.topology.view import CodedView, VipTraffic

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max


def _best_of_blocks(blocks: np.ndarray, block_of: np.ndarray, ttl: np.ndarray, ts: np.ndarray,
                    first: np.ndarray) -> np.ndarray:
    """Per group: whether it ranks first in its block (adjacent groups of one packet): highest
    TTL, then earliest time, then first in the view."""
    top = ttl == np.maximum.reduceat(ttl, blocks)[block_of]
    ts_top = np.where(top, ts, INT64_MAX)
    top &= ts_top == np.minimum.reduceat(ts_top, blocks)[block_of]
    first_top = np.where(top, first, INT64_MAX)
    return first_top == np.minimum.reduceat(first_top, blocks)[block_of]


def _first_of_pair(a: np.ndarray | slice, b: np.ndarray | slice, ttl: np.ndarray,
                   ts: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Whether leg a ranks before leg b: higher TTL, then earlier time, then first in the view."""
    ttl_a, ttl_b, ts_a, ts_b = ttl[a], ttl[b], ts[a], ts[b]
    return (ttl_a > ttl_b) | ((ttl_a == ttl_b)
                              & ((ts_a < ts_b) | ((ts_a == ts_b) & (first[a] < first[b]))))


def _top_two(blocks: np.ndarray, size: np.ndarray, ttl: np.ndarray, ts: np.ndarray,
             first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The legs that rank first and second in each block (blocks[i]: start of block i, of
    size[i] >= 2 adjacent legs) by TTL falling, then time rising, then first in the view."""
    rank0 = np.empty(len(blocks), dtype=np.int64)
    rank1 = np.empty(len(blocks), dtype=np.int64)
    two = size == 2
    a = blocks[two]
    a_first = _first_of_pair(a, a + 1, ttl, ts, first)
    rank0[two] = a + ~a_first
    rank1[two] = a + a_first
    more = ~two
    if more.any():
        sizes = size[more]
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        block_of = np.repeat(np.arange(len(sizes)), sizes)
        legs = np.repeat(blocks[more], sizes) + (np.arange(len(block_of)) - starts[block_of])
        legs_ttl = ttl[legs].astype(np.int64)
        best = _best_of_blocks(starts, block_of, legs_ttl, ts[legs], first[legs])
        second = _best_of_blocks(starts, block_of, np.where(best, INT64_MIN, legs_ttl),
                                 ts[legs], first[legs])
        rank0[more] = legs[best]
        rank1[more] = legs[second]
    return rank0, rank1


@dataclass
class LegVotes:
    """Per MAC code: the packets whose original goes to it (in_votes) and whose first copy goes
    to it (rs_votes); and the distinct (src, dst) MAC codes of the packets' first copies."""
    in_votes: np.ndarray
    rs_votes: np.ndarray
    copy_src: np.ndarray
    copy_dst: np.ndarray


def _legs(packet: np.ndarray, n_packets: int, src: np.ndarray, dst: np.ndarray,
          ttl: np.ndarray, ts: np.ndarray, n_mac: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct (packet, src, dst) is a leg: (its first row, highest TTL, earliest time;
    per leg after the first, whether it starts a new packet), the legs of a packet adjacent."""
    spans = [dense_span(n_packets), dense_span(n_mac), dense_span(n_mac)]
    if fits(spans):
        leg_key = pack([packet, src, dst], spans)
    else:
        pair, distinct = pd.factorize(pack([src, dst], spans[1:]))
        leg_key = pack([packet, pair], [spans[0], dense_span(len(distinct))])
        del pair
    # rows sorted on (packet, src, dst), stable: a leg's rows are adjacent, its first row first,
    # and the legs of one packet adjacent (nearly sorted already: packets are numbered in order
    # of first appearance)
    order = np.argsort(leg_key, kind="stable")
    leg_key.sort(kind="stable")
    packet = packet[order]
    new_leg = leg_key[1:] != leg_key[:-1]
    del leg_key
    if new_leg.all():
        # every leg one row (the usual case): no reductions
        return order, ttl[order], ts[order], packet[1:] != packet[:-1]
    start = np.flatnonzero(np.concatenate(([True], new_leg)))
    leg_packet = packet[start]
    return (order[start], np.maximum.reduceat(ttl[order], start),
            np.minimum.reduceat(ts[order], start), leg_packet[1:] != leg_packet[:-1])


def _original_and_first_copy(first: np.ndarray, leg_ttl: np.ndarray, leg_ts: np.ndarray,
                             new_packet: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of each packet's original (rank 0) and first copy (rank 1), for the packets with
    two legs or more; None when no packet has two."""
    if len(first) % 2 == 0 and not new_packet[0::2].any() and new_packet[1::2].all():
        # every packet has two legs (seen before and after the director), legs 2i and 2i + 1:
        # one comparison each, on strided views
        a_first = _first_of_pair(slice(0, None, 2), slice(1, None, 2), leg_ttl, leg_ts, first)
        original = np.arange(0, len(first), 2)
        first_copy = original + a_first
        original += ~a_first
        return first[original], first[first_copy]
    block = np.flatnonzero(np.concatenate(([True], new_packet)))
    size = np.diff(np.append(block, len(first)))
    multi = size >= 2
    if not multi.all():
        keep = np.repeat(multi, size)
        first, leg_ttl, leg_ts, size = first[keep], leg_ttl[keep], leg_ts[keep], size[multi]
    if len(first) == 0:
        return None
    blocks = np.concatenate(([0], np.cumsum(size)[:-1]))
    original, first_copy = _top_two(blocks, size, leg_ttl, leg_ts, first)
    return first[original], first[first_copy]


def _leg_votes(key: np.ndarray | None, src: np.ndarray, dst: np.ndarray, ttl: np.ndarray,
               ts: np.ndarray, n_mac: int, packet: np.ndarray | None = None) -> LegVotes:
    """Legs of the client->VIP packets seen with more than one (src MAC, dst MAC): each distinct
    (packet key, src, dst) is a leg with its highest TTL and earliest time; a packet's legs rank
    0 = the original, 1.. = forwarded copies (TTL falls, time rises, then first in the view).

    packet: the rows' packet ids when known (the TCP view's `packet` column: one id per strict
    key), else the keys are numbered here."""
    none = np.zeros(0, dtype=np.int64)
    no_votes = LegVotes(np.zeros(n_mac, dtype=np.int64), np.zeros(n_mac, dtype=np.int64),
                        none, none)
    if len(src) == 0:
        return no_votes
    if packet is None:
        packet, n_packets = dense_ids(key)
    else:
        n_packets = int(packet.max()) + 1
    ranked = _original_and_first_copy(*_legs(packet, n_packets, src, dst, ttl, ts, n_mac))
    if ranked is None:
        return no_votes
    original, first_copy = ranked
    # the first copy goes to a real server; later legs may be a loop coming back (a real server
    # routing the packet to the director again): not votes for a real server
    copy_src, copy_dst = distinct_rows([src[first_copy], dst[first_copy]], [n_mac, n_mac])
    return LegVotes(in_votes=np.bincount(dst[original], minlength=n_mac),
                    rs_votes=np.bincount(dst[first_copy], minlength=n_mac),
                    copy_src=copy_src, copy_dst=copy_dst)


def _leg_rank(tv: pd.DataFrame, cv: CodedView, traffic: VipTraffic, pins: TopologyPins
              ) -> np.ndarray:
    """Per row to a VIP, what ranks a packet's legs: TTL (IPVS lowers it), then the point's
    pinned role (a leg on the VIP segment before one on the real-server segment), then whether
    the leg's sender relays VIP frames (it also receives them: a director, a looping real
    server; a client only sends), then whether it is a client (a MAC replies from the VIP go to
    and never come from): the nft director keeps the TTL, and corrected clocks can put a copy
    microseconds before its original; time decides after these."""
    n_mac = len(cv.macs)
    relays = np.zeros(n_mac, dtype=np.int32)
    relays[np.intersect1d(traffic.tc_src, traffic.tc_dst)] = 1
    is_client = np.zeros(n_mac, dtype=np.int32)
    is_client[np.unique(cv.dst_mac[traffic.rep])] = 1
    is_client[np.unique(cv.src_mac[traffic.rep])] = 0
    on_vip_segment = np.array([pins.roles.get(p) == "vip-segment" for p in traffic.point_values]
                              + [0], dtype=np.int32)
    return (tv["ttl"].to_numpy()[traffic.tov].astype(np.int32) * 8
            + on_vip_segment[traffic.t_point] * 4 + (1 - relays[traffic.t_src]) * 2
            + is_client[traffic.t_src])


def leg_votes(tv: pd.DataFrame, cv: CodedView, traffic: VipTraffic, pins: TopologyPins
              ) -> LegVotes:
    """The legs' votes of the frames to a VIP (see _leg_votes, ranked by _leg_rank)."""
    tov = traffic.tov
    # packets: the view's ids of its strict keys when it has them, else the keys
    if "packet" in tv.columns:
        key, packet = None, tv["packet"].to_numpy()[tov]
    else:
        packet = None
        key = (tv["strict_key"].to_numpy(dtype=np.uint64)[tov] if "strict_key" in tv.columns
               else hash_key(tv.iloc[tov], STRICT_KEY))
    return _leg_votes(key, traffic.t_src, traffic.t_dst, _leg_rank(tv, cv, traffic, pins),
                      tv["ts"].to_numpy()[tov], len(cv.macs), packet)
