"""Learn the LVS-DR topology from the traffic: VIPs, director MACs, real servers, point roles.

The signature of DR: the same client->VIP packet is seen with two destination MACs (the director's,
then a real server's after forwarding), and the SYN-ACK of the connection comes from a MAC other
than the one the SYN was addressed to (the real server answers directly). Plain client/server or
unrelated traffic shows neither, so no VIP is found there and the caller is told so.

Learning reads the TCP view as numpy arrays: addresses as their categorical codes, rows as
positions, packets as the view's packet ids; what it counts per MAC, point or connection is
counted on packed integer codes (bincounts, hash tables, a nearly sorted stable sort), and only
the few distinct MACs, points and endpoints become Python values.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import fmt_endpoint, is_group_mac
from dr_inspect.columnar.ids import hash_key
from dr_inspect.columnar.plain import ints, obj, text
from dr_inspect.columnar.tcp_view import STRICT_KEY, flags
from dr_inspect.decode.schema import ACK, RST, SYN
from dr_inspect.errors import TopologyError
from dr_inspect.model import RealServer, Topology
from dr_inspect.topology.pins import TopologyPins, vip_text

MOD32 = 1 << 32


@dataclass
class RealServerInfo:
    name: str
    macs: dict[str, str]          # segment (point role) -> MAC
    rip: str | None = None

    @property
    def all_macs(self) -> set[str]:
        return set(self.macs.values())


@dataclass
class LearnedTopology:
    vips: list[tuple[str, int]]
    director_in: set[str]                 # MACs client->VIP frames are addressed to
    director_out: set[str]                # MACs forwarded copies leave from
    real_servers: list[RealServerInfo]
    roles: dict[str, str]                 # point -> role
    shape: str
    client_macs: set[str] = field(default_factory=set)
    silent_macs: set[str] = field(default_factory=set)    # VIP frames go to them; they never send
    unserved: dict[str, int] = field(default_factory=dict)   # 'ip:port' -> SYNs lost at the director
    scheduler: str | None = None
    conflicts: list[str] = field(default_factory=list)
    pinned: dict[str, Any] = field(default_factory=dict)

    @property
    def director_macs(self) -> set[str]:
        return self.director_in | self.director_out

    @property
    def vip_ips(self) -> list[str]:
        return sorted({ip for ip, _ in self.vips})

    def rs_name_by_mac(self) -> dict[str, str]:
        return {mac: rs.name for rs in self.real_servers for mac in rs.macs.values()}

    def rs_macs(self) -> set[str]:
        return set(self.rs_name_by_mac())

    def to_model(self) -> Topology:
        dmacs: dict[str, list[str]] = {}
        if self.shape == "shared-segment":
            dmacs["both"] = sorted(self.director_macs)
        else:
            if self.director_in:
                dmacs["vip-segment"] = sorted(self.director_in)
            if self.director_out:
                dmacs["rs-segment"] = sorted(self.director_out)
        return Topology(
            vips=[fmt_endpoint(ip, port) for ip, port in self.vips],
            director_macs=dmacs,
            real_servers=[RealServer(name=r.name, macs=dict(r.macs), rip=r.rip)
                          for r in self.real_servers],
            point_roles=dict(self.roles), shape=self.shape, pinned=dict(self.pinned),
            conflicts=list(self.conflicts))


INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max
PORT_SPAN = 1 << 17         # -1 (missing) .. 65535, packed as port + 1


@dataclass(frozen=True)
class _Coded:
    """The TCP-view columns learning reads, as numpy arrays over all its rows (no copy of the
    view): MACs and IPs as integer codes over one value list per kind, so src and dst compare."""
    src_mac: np.ndarray
    dst_mac: np.ndarray
    macs: np.ndarray                  # MAC code -> value (NaN for a missing one)
    src_ip: np.ndarray
    dst_ip: np.ndarray
    ips: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (0..) and the values they stand for (NA a value of its own): a
    categorical's own codes, else factorized."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.array.codes                  # a read-only view (Series.cat.codes copies)
        values = np.append(np.asarray(s.cat.categories, dtype=object), np.nan)
        if len(codes) and codes.min() < 0:
            codes = np.where(codes < 0, len(values) - 1, codes.astype(np.int64))
        return codes, values
    codes, values = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=False)
    return codes, np.asarray(values, dtype=object)


def _shared_codes(columns: list[pd.Series]) -> tuple[list[np.ndarray], np.ndarray]:
    """Codes of text columns of one kind over one value list (equal values, equal codes): the
    TCP view's own codes when the columns share their categories, as tcp_view makes them."""
    parts = [_codes(c) for c in columns]
    dtypes = [c.dtype for c in columns]
    if all(isinstance(d, pd.CategoricalDtype) for d in dtypes) and all(
            d.categories.equals(dtypes[0].categories) for d in dtypes[1:]):
        return [codes for codes, _ in parts], parts[0][1]
    union = pd.Index(pd.unique(np.concatenate([values for _, values in parts])), dtype=object)
    return ([union.get_indexer(values)[codes] for codes, values in parts],
            np.asarray(union, dtype=object))


def _coded(tv: pd.DataFrame) -> _Coded:
    """The view's address and port columns as a _Coded (views of its arrays where it can)."""
    (src_mac, dst_mac), macs = _shared_codes([tv["src_mac"], tv["dst_mac"]])
    (src_ip, dst_ip), ips = _shared_codes([tv["src_ip"], tv["dst_ip"]])
    return _Coded(src_mac=src_mac, dst_mac=dst_mac, macs=macs, src_ip=src_ip, dst_ip=dst_ip,
                  ips=ips, src_port=tv["src_port"].to_numpy(), dst_port=tv["dst_port"].to_numpy())


def _point_codes(pk: pd.DataFrame, tv: pd.DataFrame, *rows: np.ndarray
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """_codes of the view's point column at each array of positions `rows` (one value list). A
    view with an object point column has the packets table's row number of each row (`row`,
    its position in pk): pk's categorical point codes are gathered through it (no hashing of a
    string per row)."""
    if isinstance(tv["point"].dtype, pd.CategoricalDtype):
        codes, values = _codes(tv["point"])
        return [codes[at] for at in rows], values
    if ("row" in tv.columns and "point" in pk.columns
            and isinstance(pk["point"].dtype, pd.CategoricalDtype)):
        codes, values = _codes(pk["point"])
        pk_row = tv["row"].to_numpy()
        return [codes[pk_row[at]] for at in rows], values
    codes, values = _codes(pd.Series(tv["point"].to_numpy(dtype=object)[np.concatenate(rows)],
                                     dtype=object))
    return np.split(codes, np.cumsum([len(at) for at in rows])[:-1]), values


def _packed(columns: list[np.ndarray]) -> np.ndarray:
    """One int64 per row, equal exactly where the rows are equal in every column: the columns
    packed into one integer (what is packed so far numbered densely first if it would not fit)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    if len(key) == 0:
        return key
    span = 1
    for col in columns:
        col = np.asarray(col).astype(np.int64)
        lo = int(col.min())
        width = int(col.max()) - lo + 1
        if span * width >= 1 << 62:
            key, uniq = pd.factorize(key)
            key, span = key.astype(np.int64), len(uniq)
        if span * width >= 1 << 62:
            col, uniq = pd.factorize(col)
            col, lo, width = col.astype(np.int64), 0, len(uniq)
        key = key * width + (col - lo)
        span *= width
    return key


def _first_rows(ids: np.ndarray) -> np.ndarray:
    """Row of each id's first appearance, for ids numbered in order of first appearance
    (pd.factorize)."""
    seen = np.maximum.accumulate(ids)
    return np.flatnonzero(ids > np.concatenate(([-1], seen[:-1])))


def _seen(codes: np.ndarray, values: np.ndarray) -> set:
    """The values whose code occurs in `codes`."""
    return {values[c] for c in np.flatnonzero(np.bincount(codes, minlength=len(values)))}


def _member(values: np.ndarray, wanted: set) -> np.ndarray:
    """Per code: whether its value is one of `wanted` (judged once per distinct value)."""
    return np.fromiter((v in wanted for v in values), dtype=bool, count=len(values))


def _endpoints(ip: np.ndarray, port: np.ndarray, ips: np.ndarray) -> set[tuple[Any, int]]:
    """Distinct (ip value, port) of the rows."""
    if len(ip) == 0:
        return set()
    key = ip.astype(np.int64) * PORT_SPAN + (port.astype(np.int64) + 1)
    distinct = pd.unique(key)                  # a hash table: a few endpoints, many rows
    return {(ips[k // PORT_SPAN], int(k % PORT_SPAN) - 1) for k in distinct.tolist()}


def _endpoint_rows(ip: np.ndarray, port: np.ndarray, ips: np.ndarray,
                   endpoints: list[tuple[str, int]]) -> np.ndarray:
    """Rows whose (ip, port) is one of `endpoints` (correlate.keys.endpoint_in on codes)."""
    mask = np.zeros(len(ip), dtype=bool)
    for ip_text, port_number in endpoints:
        is_ip = np.asarray(ips == ip_text, dtype=bool)
        if is_ip.any():
            mask |= is_ip[ip] & (port == port_number)
    return mask


def _per_key_range(keys: np.ndarray, codes: np.ndarray, n_keys: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest code per key (INT64_MAX / -1 for a key without rows)."""
    lo = np.full(n_keys, INT64_MAX, dtype=np.int64)
    hi = np.full(n_keys, -1, dtype=np.int64)
    np.minimum.at(lo, keys, codes)
    np.maximum.at(hi, keys, codes)
    return lo, hi


def _syn_rows(tv: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the SYNs (ACK clear) and of the SYN-ACKs."""
    f = tv["tcp_flags"]
    # the view's flags are plain integers (0 when missing): no widened copy needed
    f = f.to_numpy() if f.dtype.kind in "iu" else flags(tv)
    # SYN bit set (few rows), then split on the ACK bit
    with_syn = np.flatnonzero((f & SYN) != 0)          # (nonzero is fastest on booleans)
    acked = (f[with_syn] & ACK) != 0
    return with_syn[~acked], with_syn[acked]


def _detect_vips(pk: pd.DataFrame, tv: pd.DataFrame, cv: _Coded) -> list[tuple[str, int]]:
    """ip:port that DR serves: a SYN forwarded with a new dst MAC, or answered from another MAC."""
    syn, sa = _syn_rows(tv)
    # a frame without a MAC (raw IP, Linux cooked captures; '' in the view) shows no rewrite:
    # only two known MACs that differ are evidence of DR
    mac_na = pd.isna(cv.macs) | (cv.macs == "")
    found: set[tuple[Any, int]] = set()
    if len(syn) == 0:
        return []
    # (client ip, port, server ip, port, ISN) of the SYNs, then of the SYN-ACKs (ack = ISN + 1)
    seq = tv["seq"].to_numpy()
    ids, uniq = pd.factorize(_packed([
        np.concatenate([cv.src_ip[syn], cv.dst_ip[sa]]),
        np.concatenate([cv.src_port[syn], cv.dst_port[sa]]),
        np.concatenate([cv.dst_ip[syn], cv.src_ip[sa]]),
        np.concatenate([cv.dst_port[syn], cv.src_port[sa]]),
        np.concatenate([seq[syn], (tv["ack"].to_numpy()[sa] - 1) % MOD32])]))
    syn_ids = ids[:len(syn)]
    syn_mac, sa_mac = cv.dst_mac[syn].astype(np.int64), cv.src_mac[sa].astype(np.int64)
    # the same SYN seen with two or more destination MACs (a missing one not counted)
    named = ~mac_na[syn_mac]
    lo, hi = _per_key_range(syn_ids[named], syn_mac[named], len(uniq))
    rows = syn[(hi > lo)[syn_ids]]
    found |= _endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)
    if len(sa):
        # a SYN and its SYN-ACK at one point with different MACs: the SYN's destination, the
        # SYN-ACK's source (a missing MAC differs from every MAC)
        (syn_point, sa_point), point_values = _point_codes(pk, tv, syn, sa)
        at_point = ids * len(point_values) + np.concatenate([syn_point, sa_point])
        n_keys = len(uniq) * len(point_values)
        if n_keys > 4 * len(at_point) + 1024:
            at_point, distinct = pd.factorize(at_point)
            n_keys = len(distinct)
        syn_at, sa_at = at_point[:len(syn)], at_point[len(syn):]
        s_named, a_named = ~mac_na[syn_mac], ~mac_na[sa_mac]
        s_lo, s_hi = _per_key_range(syn_at[s_named], syn_mac[s_named], n_keys)
        a_lo, a_hi = _per_key_range(sa_at[a_named], sa_mac[a_named], n_keys)
        differ = (s_lo != s_hi) | (a_lo != a_hi) | (s_lo != a_lo)
        differ &= (s_hi >= 0) & (a_hi >= 0)
        rows = syn[differ[syn_at]]
        found |= _endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)
    found |= _contested_services(pk, cv, syn)
    return sorted((str(ip), int(port)) for ip, port in found)


def _claims(pk: pd.DataFrame) -> pd.DataFrame:
    """Who claims which address on the LAN: ARP replies and gratuitous ARP (sender IP, sender
    MAC) and IPv6 neighbour advertisements (target, its link-layer address or the frame's
    source), as plain str columns `ip` and `mac`."""
    op = pk["arp_op"].to_numpy(dtype=np.float64, na_value=np.nan)
    rows = np.flatnonzero((op == 2) | (op == 1))
    arp = pk[["arp_op", "arp_sender_ip", "arp_target_ip", "arp_sender_mac"]].iloc[rows]
    sender, target = text(arp["arp_sender_ip"]), text(arp["arp_target_ip"])
    claim = (ints(arp["arp_op"]) == 2) | (sender == target).to_numpy()
    icmp = pk["icmp_type"].to_numpy(dtype=np.float64, na_value=np.nan)
    na = pk[["nd_target", "nd_lladdr", "src_mac"]].iloc[np.flatnonzero(icmp == 136)]
    lladdr = text(na["nd_lladdr"])
    return pd.DataFrame({
        "ip": np.concatenate([sender.to_numpy()[claim], text(na["nd_target"]).to_numpy()]),
        "mac": np.concatenate([text(arp["arp_sender_mac"]).to_numpy()[claim],
                               lladdr.where(lladdr != "", text(na["src_mac"])).to_numpy()])})


def _contested_services(pk: pd.DataFrame, cv: _Coded, syn: np.ndarray) -> set[tuple[Any, int]]:
    """ip:port of the TCP SYNs to an address two or more MACs claim on the LAN. A real server
    that answers ARP for the VIP takes clients away from the director, which then sees nothing
    to forward: two hosts claiming one address that clients open connections to is itself the
    sign of a VIP (DR005 and DR012 then say what is wrong)."""
    claims = _claims(pk)
    claims = claims[(claims["ip"] != "") & (claims["mac"] != "")]
    owners = claims.drop_duplicates().groupby("ip")["mac"].size()
    contested = set(owners.index[owners.to_numpy() >= 2])
    if not contested:
        return set()
    is_contested = _member(cv.ips, contested)
    rows = syn[is_contested[cv.dst_ip[syn]]]
    return _endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)


def _used_services(tv: pd.DataFrame, cv: _Coded, services: list[tuple[str, int]]
                   ) -> set[tuple[str, int]]:
    """Those of `services` (ip, port) that some SYN in the traffic goes to."""
    if not services:
        return set()
    syn = _syn_rows(tv)[0]
    hit = _endpoint_rows(cv.dst_ip[syn], cv.dst_port[syn], cv.ips, services)
    return {(str(ip), int(port)) for ip, port in
            _endpoints(cv.dst_ip[syn[hit]], cv.dst_port[syn[hit]], cv.ips)}


def _unserved(tv: pd.DataFrame, cv: _Coded, vips: list[tuple[str, int]],
              director_in: np.ndarray) -> dict[str, int]:
    """'ip:port' -> SYNs to it that reached a director MAC (director_in: per MAC code) and that
    nobody answered (no SYN-ACK, no RST), for endpoints that are no VIP: a virtual service
    without a real server, or traffic the director drops. They are not DR traffic the rules
    can judge, but they must not go unmentioned."""
    syn, _ = _syn_rows(tv)
    syn = syn[director_in[cv.dst_mac[syn]] & ~_endpoint_rows(cv.dst_ip[syn], cv.dst_port[syn],
                                                             cv.ips, vips)]
    if len(syn) == 0:
        return {}
    f = tv["tcp_flags"].to_numpy()
    answer = np.flatnonzero(((f & (SYN | ACK)) == (SYN | ACK)) | ((f & RST) != 0))
    seq, ack = tv["seq"].to_numpy(), tv["ack"].to_numpy()
    keys = _packed([np.concatenate([cv.src_ip[syn], cv.dst_ip[answer]]),
                    np.concatenate([cv.src_port[syn], cv.dst_port[answer]]),
                    np.concatenate([cv.dst_ip[syn], cv.src_ip[answer]]),
                    np.concatenate([cv.dst_port[syn], cv.src_port[answer]]),
                    np.concatenate([(seq[syn].astype(np.int64) + 1) % MOD32,
                                    ack[answer].astype(np.int64)])])
    lost = syn[~np.isin(keys[:len(syn)], keys[len(syn):])]
    ends = pd.Series(_endpoint_texts(cv.dst_ip[lost], cv.dst_port[lost], cv.ips))
    return {str(k): int(v) for k, v in ends.value_counts().sort_index().items()}


def _endpoint_texts(ip: np.ndarray, port: np.ndarray, ips: np.ndarray) -> list[str]:
    return [fmt_endpoint(str(ips[i]), int(p)) for i, p in zip(ip.tolist(), port.tolist())]


def _resolve_pinned_vips(tv: pd.DataFrame, cv: _Coded, pins: TopologyPins,
                         conflicts: list[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    syn = _syn_rows(tv)[0]
    for ip, port in pins.vips:
        is_ip = np.asarray(cv.ips == ip, dtype=bool)
        if port is None:
            ports = np.unique(cv.dst_port[syn[is_ip[cv.dst_ip[syn]]]]).tolist()
            if not ports:
                conflicts.append(f"pinned VIP {ip}: no TCP SYN to it in the traffic, so its "
                                 "port is unknown (pin it as ip:port)")
            out.extend((ip, int(p)) for p in ports)
            continue
        if not (is_ip[cv.dst_ip] & (cv.dst_port == port)).any():
            conflicts.append(f"pinned VIP {vip_text(ip, port)}: no TCP traffic to it in the "
                             "captures")
        out.append((ip, port))
    return sorted(set(out))


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


def _packet_ids(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows grouped by packet key, hashed part by part: (rows in order of the key's top bits,
    stable; a packet id per row in that order, numbered by first appearance within each part;
    the number of packets). Parts of a few thousand keys hash in cache: one table over all keys
    would miss it on nearly every row."""
    bits = min(8, max(0, int(np.ceil(np.log2(max(len(key), 1) / 16384)))))
    if bits == 0:
        ids, distinct = pd.factorize(key)
        return np.arange(len(key)), ids.astype(np.int64), len(distinct)
    top = (key >> np.uint64(64 - bits)).astype(np.uint8)
    by_part = np.argsort(top, kind="stable")          # one radix pass
    bounds = np.concatenate(([0], np.cumsum(np.bincount(top, minlength=1 << bits)))).tolist()
    del top
    sorted_key = key[by_part]
    ids = np.empty(len(key), dtype=np.int64)
    n_packets = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b > a:
            part_ids, distinct = pd.factorize(sorted_key[a:b])
            ids[a:b] = part_ids
            ids[a:b] += n_packets
            n_packets += len(distinct)
    return by_part, ids, n_packets


def _leg_votes(key: np.ndarray | None, src: np.ndarray, dst: np.ndarray, ttl: np.ndarray,
               ts: np.ndarray, n_mac: int, packet: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Legs of the client->VIP packets seen with more than one (src MAC, dst MAC): each distinct
    (packet key, src, dst) is a leg with its highest TTL and earliest time; a packet's legs rank
    0 = the original, 1.. = forwarded copies (TTL falls, time rises, then first in the view).

    packet: the rows' packet ids when known (the TCP view's `packet` column: one id per strict
    key), else the keys are grouped here.

    Returns per MAC code the number of packets whose original goes to it and the number of
    copies that go to it, and the distinct (src, dst) MAC codes of packets' first copies (rank
    1)."""
    none = np.zeros(0, dtype=np.int64)
    if len(src) == 0:
        return np.zeros(n_mac, dtype=np.int64), np.zeros(n_mac, dtype=np.int64), none, none
    if packet is None:
        by_part, packet, n_packets = _packet_ids(key)
        # packet ids come in the parts' order of the rows
        part_src, part_dst = src[by_part], dst[by_part]
    else:
        by_part, n_packets = None, int(packet.max()) + 1
        part_src, part_dst = src, dst
    n_pair = n_mac * n_mac
    if n_packets * n_pair < 1 << 62:
        leg_key = packet.astype(np.int64)
        leg_key *= n_pair
        leg_key += np.multiply(part_src, n_mac,
                               dtype=np.int32 if n_pair < 1 << 31 else np.int64)
        leg_key += part_dst
    else:
        pair, distinct = pd.factorize(np.multiply(part_src, n_mac, dtype=np.int64) + part_dst)
        n_pair = len(distinct)
        leg_key = packet.astype(np.int64) * n_pair + pair
        del pair
    # rows sorted on (packet, src, dst), stable: a leg's rows are adjacent, its first row first,
    # and the legs of one packet adjacent (nearly sorted already: packets are numbered in order
    # of first appearance, within their part)
    by_leg = np.argsort(leg_key, kind="stable")
    leg_key.sort(kind="stable")
    packet = packet[by_leg]
    new_leg = leg_key[1:] != leg_key[:-1]
    del leg_key, part_src, part_dst
    order = by_leg if by_part is None else by_part[by_leg]   # the row at each sorted place
    del by_part, by_leg
    if new_leg.all():
        # every leg one row (the usual case): no reductions
        first, leg_ttl, leg_ts = order, ttl[order], ts[order]
        new_packet = packet[1:] != packet[:-1]
    else:
        start = np.flatnonzero(np.concatenate(([True], new_leg)))
        first = order[start]
        leg_ttl = np.maximum.reduceat(ttl[order], start)
        leg_ts = np.minimum.reduceat(ts[order], start)
        leg_packet = packet[start]
        new_packet = leg_packet[1:] != leg_packet[:-1]
        del start, leg_packet
    del order, packet, new_leg
    if len(first) % 2 == 0 and not new_packet[0::2].any() and new_packet[1::2].all():
        # every packet has two legs (seen before and after the director), legs 2i and 2i + 1:
        # one comparison each, on strided views
        a_first = _first_of_pair(slice(0, None, 2), slice(1, None, 2), leg_ttl, leg_ts, first)
        original = np.arange(0, len(first), 2)
        first_copy = original + a_first
        original += ~a_first
    else:
        block = np.flatnonzero(np.concatenate(([True], new_packet)))
        size = np.diff(np.append(block, len(first)))
        multi = size >= 2
        if not multi.all():
            keep = np.repeat(multi, size)
            first, leg_ttl, leg_ts, size = first[keep], leg_ttl[keep], leg_ts[keep], size[multi]
        if len(first) == 0:
            return np.zeros(n_mac, dtype=np.int64), np.zeros(n_mac, dtype=np.int64), none, none
        blocks = np.concatenate(([0], np.cumsum(size)[:-1]))
        original, first_copy = _top_two(blocks, size, leg_ttl, leg_ts, first)
    del new_packet, leg_ttl, leg_ts
    # every leg that is not a packet's original is one of its copies
    in_votes = np.bincount(dst[first[original]], minlength=n_mac)
    first_copy = first[first_copy]
    # the first copy goes to a real server; later legs may be a loop coming back (a real server
    # routing the packet to the director again): not votes for a real server
    rs_votes = np.bincount(dst[first_copy], minlength=n_mac)
    copy_src, copy_dst = _combos([src[first_copy], dst[first_copy]], [n_mac, n_mac])
    return in_votes, rs_votes, copy_src, copy_dst


def _combos(columns: list[np.ndarray], sizes: list[int]) -> list[np.ndarray]:
    """The distinct combinations of codes that occur in the rows of `columns` (codes of column i
    below sizes[i]), one array per column."""
    if len(columns[0]) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in columns]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for col, size in zip(columns, sizes):
        key = key * size + col
    total = int(np.prod(sizes, dtype=object))
    seen = (np.flatnonzero(np.bincount(key, minlength=total)) if total <= 4 * len(key) + 65536
            else np.unique(key))
    out = []
    for size in reversed(sizes):
        out.append(seen % size)
        seen = seen // size
    return out[::-1]


def _segment_roles(macs: np.ndarray, points: np.ndarray, mac_values: np.ndarray,
                   point_values: np.ndarray, roles: dict[str, str], role: str) -> dict[Any, str]:
    """{MAC: role} over the distinct (MAC, point) of the rows in order of first appearance, a
    later pair's point deciding (in the MAC's place of first appearance): `role`, or 'both' at a
    point of role both."""
    out: dict[Any, str] = {}
    n_points = len(point_values)
    for pair in pd.unique(macs.astype(np.int64) * n_points + points).tolist():
        mac, point = divmod(pair, n_points)
        out[mac_values[mac]] = "both" if roles.get(point_values[point]) == "both" else role
    return out


@dataclass(frozen=True)
class LearnedVips:
    """The VIPs learning starts from, and the conflicts resolving pinned ones found."""
    vips: list[tuple[str, int]]
    conflicts: list[str]


def learn_vips(pk: pd.DataFrame, tv: pd.DataFrame, pins: TopologyPins | None = None
               ) -> LearnedVips:
    """The pinned VIPs (a pinned address without a port: the ports its SYNs go to), else those
    the traffic shows DR serving (see _detect_vips). Raises TopologyError when there is none.

    The first step of learn_topology, on its own: what needs only the VIPs can start early."""
    pins = pins or TopologyPins()
    conflicts: list[str] = []
    cv = _coded(tv)
    if pins.vips:
        vips = _resolve_pinned_vips(tv, cv, pins, conflicts)
        if not vips:
            raise TopologyError("the pinned VIP(s) " + ", ".join(vip_text(*v) for v in pins.vips)
                                + " have no port and no SYN in the traffic: pin them as ip:port")
    else:
        vips = _detect_vips(pk, tv, cv)
        # the virtual services the director's snapshot lists are VIPs when clients use them,
        # even if the traffic shows no forwarding (a service without a real server)
        vips = sorted(set(vips) | _used_services(tv, cv, pins.services))
        if not vips:
            raise TopologyError(
                "no LVS-DR virtual service found in the traffic: no TCP SYN to an ip:port was "
                "forwarded with a rewritten MAC or answered from another MAC; these captures show "
                "no DR traffic (pin the VIP with --vip ip:port if the capture holds only part of "
                "it)")
    return LearnedVips(vips=vips, conflicts=conflicts)


def learn_topology(pk: pd.DataFrame, tv: pd.DataFrame, points: list[str],
                   pins: TopologyPins | None = None,
                   learned_vips: LearnedVips | None = None) -> LearnedTopology:
    """Learn from the combined packets table `pk` and its TCP view `tv` (correlate.keys.tcp_view).
    learned_vips: learn_vips(pk, tv, pins) when the caller has it.

    Raises TopologyError when no VIP is found and none is pinned.
    """
    pins = pins or TopologyPins()
    if learned_vips is None:
        learned_vips = learn_vips(pk, tv, pins)
    vips = list(learned_vips.vips)
    conflicts = list(learned_vips.conflicts)
    cv = _coded(tv)

    # rows to a VIP (tov) and from one (rep), as positions: their columns are gathered as needed
    tov = np.flatnonzero(_endpoint_rows(cv.dst_ip, cv.dst_port, cv.ips, vips))
    rep = np.flatnonzero(_endpoint_rows(cv.src_ip, cv.src_port, cv.ips, vips))
    macs, n_mac = cv.macs, len(cv.macs)
    named = ~pd.isna(macs) & (macs != "")
    t_src, t_dst, r_src = cv.src_mac[tov], cv.dst_mac[tov], cv.src_mac[rep]
    (t_point, r_point), point_values = _point_codes(pk, tv, tov, rep)
    n_point = len(point_values)
    # (point, src MAC, dst MAC) that occur to a VIP, (point, src MAC) from one: the MAC sets and
    # point roles below are judged on these few combinations, not on every frame
    tc_point, tc_src, tc_dst = _combos([t_point, t_src, t_dst], [n_point, n_mac, n_mac])
    rc_point, rc_src = _combos([r_point, r_src], [n_point, n_mac])
    rep_src = {macs[m] for m in np.unique(rc_src)}

    # packets: the view's ids of its strict keys when it has them, else the keys
    if "packet" in tv.columns:
        key, packet = None, tv["packet"].to_numpy()[tov]
    else:
        packet = None
        key = (tv["strict_key"].to_numpy(dtype=np.uint64)[tov] if "strict_key" in tv.columns
               else hash_key(tv.iloc[tov], STRICT_KEY))
    # a packet's legs rank by TTL (IPVS lowers it), then by the point's pinned role (a leg on
    # the VIP segment before one on the real-server segment), then by whether the leg's sender
    # relays VIP frames (it also receives them: a director, a looping real server; a client
    # only sends), then by whether it is a client (a MAC replies from the VIP go to and never
    # come from): the nft director keeps the TTL, and corrected clocks can put a copy
    # microseconds before its original; then by time
    relays = np.zeros(n_mac, dtype=np.int32)
    relays[np.intersect1d(tc_src, tc_dst)] = 1
    is_client = np.zeros(n_mac, dtype=np.int32)
    is_client[np.unique(cv.dst_mac[rep])] = 1
    is_client[np.unique(cv.src_mac[rep])] = 0
    on_vip_segment = np.array([pins.roles.get(p) == "vip-segment" for p in point_values] + [0],
                              dtype=np.int32)
    rank = (tv["ttl"].to_numpy()[tov].astype(np.int32) * 8 + on_vip_segment[t_point] * 4
            + (1 - relays[t_src]) * 2 + is_client[t_src])
    in_votes, rs_votes, copy_src, copy_dst = _leg_votes(
        key, t_src, t_dst, rank, tv["ts"].to_numpy()[tov], n_mac, packet)
    del rank
    del key, packet
    director_in = {macs[m] for m in np.flatnonzero((in_votes > rs_votes) & named)}
    senders = _senders(pk)
    if not director_in and len(tov):
        # One point only: the director is where clients send VIP frames and no reply comes
        # from; a MAC that never sends a frame is no host at all (a stale ARP entry's MAC)
        director_in = ({macs[m] for m in np.unique(tc_dst)} & senders) - rep_src - {""}
    if not director_in:
        # No forwarding seen (clients all bypass it): the director is the VIP's ARP/ND claimer
        # that is not a real server (real servers are where replies from the VIP come from).
        director_in = _vip_claimers(pk, {ip for ip, _ in vips}) - rep_src - {""}
    # the first copy of a packet leaves the director; later ones may be a loop coming back
    director_out = _seen(copy_src[~_member(macs, director_in)[copy_dst]], macs) - {""}

    pinned_dir = pins.director_macs
    if pinned_dir:
        p_in = set(pinned_dir.get("vip-segment", [])) | set(pinned_dir.get("both", []))
        p_out = set(pinned_dir.get("rs-segment", [])) | set(pinned_dir.get("both", []))
        for mac in sorted((p_in | p_out) - director_in - director_out):
            conflicts.append(f"pinned director MAC {mac}: the traffic shows no VIP frame to or "
                             f"forwarded copy from it (learned: "
                             f"{', '.join(sorted(director_in | director_out)) or 'none'})")
        for mac in sorted((director_in | director_out) - p_in - p_out):
            conflicts.append(f"MAC {mac} acts as a director in the traffic but is not pinned")
        director_in = p_in or director_in
        director_out = p_out or director_out
    dmacs = director_in | director_out
    is_in, is_out, is_dir = (_member(macs, director_in), _member(macs, director_out),
                             _member(macs, dmacs))

    client_macs = {macs[m] for m in tc_src[is_in[tc_dst]]} - dmacs - {""}
    # a MAC the director forwards to is a real server: when it routes VIP packets back to the
    # director (a loop) it sends to it too, but is no client
    client_macs -= {macs[m] for m in copy_dst}
    unserved = _unserved(tv, cv, vips, is_in)
    # VIP frames from clients to a MAC that never sends anything: a stale ARP entry for the
    # VIP (a former director); they were meant for the director and are lost before it
    silent_macs = ({macs[m] for m in tc_dst[~is_dir[tc_src]]} - senders
                   - set(pins.host_addresses) - {""})
    silent_macs = {m for m in silent_macs if isinstance(m, str) and not is_group_mac([m])[0]}

    # roles of the points
    ingress = is_in[tc_dst] & ~_member(macs, director_out - director_in)[tc_src]
    forwarded = is_out[tc_src] & ~is_dir[tc_dst]
    roles: dict[str, str] = {}
    ing_pts, fwd_pts, rep_pts = ({point_values[p] for p in tc_point[ingress]},
                                 {point_values[p] for p in tc_point[forwarded]},
                                 {point_values[p] for p in rc_point})
    for p in points:
        learned = ("both" if p in ing_pts and p in fwd_pts else "vip-segment" if p in ing_pts
                   else "rs-segment" if p in fwd_pts else "vip-segment" if p in rep_pts
                   else "unknown")
        pinned = pins.roles.get(p)
        if pinned and pinned != "unknown":
            if learned != "unknown" and learned != pinned:
                conflicts.append(f"point {p} is pinned as {pinned} but its traffic looks like "
                                 f"{learned}")
            roles[p] = pinned
        else:
            roles[p] = learned

    # real servers: forwarded copies go to their rs-segment MAC; replies leave their VIP-segment
    # MAC. Connections are (client ip, port, VIP, port) on both sides.
    f_dst_ok = ~is_dir & ~np.asarray(is_group_mac(macs), dtype=bool) & ~_member(macs, client_macs)
    f_rows = np.flatnonzero(is_out[t_src] & f_dst_ok[t_dst])
    r_rows = np.flatnonzero(~is_dir[r_src] & (macs != "")[r_src])
    f_at, r_at = tov[f_rows], rep[r_rows]
    # the addresses clients send VIP traffic from: never a real server's own address (a real
    # server that forwards such a packet, a loop, sends it from its MAC with the client's IP)
    client_ips = {cv.ips[c] for c in np.unique(cv.src_ip[tov])}
    f_mac, r_mac = t_dst[f_rows], r_src[r_rows]
    f_point, r_point = t_point[f_rows], r_point[r_rows]
    from_vip = rep                  # every frame from a VIP, whoever sent it
    del tov, rep, t_src, t_dst, t_point, r_src, f_rows, r_rows  # the rows below are f_at, r_at
    rs_seg_role = _segment_roles(f_mac, f_point, macs, point_values, roles, "rs-segment")
    vip_seg_role = _segment_roles(r_mac, r_point, macs, point_values, roles, "vip-segment")
    del f_point, r_point
    servers: dict[str, RealServerInfo] = {}
    for mac in sorted(rs_seg_role, key=str):
        servers[mac] = RealServerInfo(name="", macs={rs_seg_role[mac]: mac})
    if len(f_at) and len(r_at):
        for mac_r, mac_f in _reply_links(tv, cv, f_at, r_at, f_mac, r_mac, macs).items():
            if mac_f in servers and mac_r != mac_f:
                servers[mac_f].macs.setdefault(vip_seg_role.get(mac_r, "vip-segment"), mac_r)
    linked = {m for rs in servers.values() for m in rs.macs.values()}
    for mac in sorted(set(vip_seg_role) - linked, key=str):
        servers[mac] = RealServerInfo(name="", macs={vip_seg_role[mac]: mac})
    # a MAC the director forwards to is a real server only when it shows itself alive: it sent
    # a frame (an ARP answer, a reply from the VIP, anything), its host's snapshot holds it, or
    # the connections forwarded to it are answered from the VIP (through whatever path). One
    # that never is a stale neighbour entry on the director: its copies fail DR001 instead of
    # naming a new server.
    alive = senders | set(pins.host_addresses)
    alive |= _answered(tv, cv, f_at, f_mac, from_vip, macs,
                       {m for rs in servers.values() for m in rs.all_macs} - alive)
    found = [rs for rs in servers.values() if rs.all_macs & alive]
    _find_rips(pk, found, {ip for ip, _ in vips} | client_ips, pins)
    _apply_rs_pins(found, pins, conflicts)
    ordered = sorted(found, key=_server_order)
    _name_servers(ordered, pins)

    if pins.shape:
        shape = pins.shape
    elif any(r == "both" for r in roles.values()):
        shape = "shared-segment"
    elif len(points) == 1:
        shape = "single-point"
    else:
        shape = "two-segment"
    return LearnedTopology(vips=vips, director_in=director_in, director_out=director_out,
                           real_servers=ordered, roles=roles, shape=shape, client_macs=client_macs,
                           silent_macs=silent_macs, unserved=unserved,
                           scheduler=pins.scheduler, conflicts=conflicts, pinned=pins.as_dict())


def _answered(tv: pd.DataFrame, cv: _Coded, f_at: np.ndarray, f_mac: np.ndarray,
              from_vip: np.ndarray, macs: np.ndarray, unproven: set[str]) -> set[str]:
    """Those of the `unproven` MACs that some connection forwarded to them (view rows f_at,
    their dst MAC codes f_mac) has a frame from the VIP for (view rows from_vip). A forwarded
    SYN is answered by a frame acknowledging its ISN (a client may reuse the 4-tuple: another
    connection's answer is not this one's); other rows by any frame of their 4-tuple."""
    if not unproven or len(from_vip) == 0:
        return set()
    mine = np.flatnonzero(_member(macs, unproven)[f_mac])
    at = f_at[mine]
    f_conn, r_conn = _conn_keys(
        (cv.src_ip[at], cv.src_port[at], cv.dst_ip[at], cv.dst_port[at]),
        (cv.dst_ip[from_vip], cv.dst_port[from_vip], cv.src_ip[from_vip], cv.src_port[from_vip]),
        n_ip=len(cv.ips))
    flags = tv["tcp_flags"].to_numpy()
    syn = (flags[at] & (SYN | ACK)) == SYN
    answered = np.isin(f_conn, r_conn) & ~syn
    if syn.any():
        acked = ((flags[from_vip] & ACK) != 0)
        keys = _packed([np.concatenate([f_conn[syn], r_conn[acked]]),
                        np.concatenate([(tv["seq"].to_numpy()[at[syn]].astype(np.int64) + 1)
                                        % MOD32, tv["ack"].to_numpy()[from_vip[acked]]])])
        answered[np.flatnonzero(syn)] = np.isin(keys[:int(syn.sum())], keys[int(syn.sum()):])
    return {macs[m] for m in np.unique(f_mac[mine][answered])}


def _conn_keys(*sides: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], n_ip: int
               ) -> list[np.ndarray]:
    """One int64 per row and side for (ip, port, ip, port), equal exactly for equal values."""
    if (n_ip * PORT_SPAN) ** 2 >= 1 << 62:
        # too many addresses to pack directly: packed over all sides at once
        n = [len(side[0]) for side in sides]
        key = _packed([np.concatenate([side[i] for side in sides]) for i in range(4)])
        return np.split(key, np.cumsum(n)[:-1])
    out = []
    for ip_a, port_a, ip_b, port_b in sides:
        key = ip_a.astype(np.int64)
        key *= PORT_SPAN
        key += port_a
        key += 1                  # a missing port (-1) is 0
        key *= n_ip
        key += ip_b
        key *= PORT_SPAN
        key += port_b
        key += 1
        out.append(key)
    return out


def _reply_links(tv: pd.DataFrame, cv: _Coded, f_at: np.ndarray, r_at: np.ndarray,
                 f_mac: np.ndarray, r_mac: np.ndarray, macs: np.ndarray) -> dict[Any, Any]:
    """reply MAC -> the forwarded-to MAC of the same server: paired per connection by its
    handshake (the forwarded SYN's ISN, the SYN-ACK's ack - 1), exact even when a client reuses
    a 4-tuple; reply MACs no handshake pairs are paired per 4-tuple (see _best_reply_macs)."""
    f_conn, r_conn = _conn_keys(
        (cv.src_ip[f_at], cv.src_port[f_at], cv.dst_ip[f_at], cv.dst_port[f_at]),
        (cv.dst_ip[r_at], cv.dst_port[r_at], cv.src_ip[r_at], cv.src_port[r_at]),
        n_ip=len(cv.ips))
    flags = tv["tcp_flags"].to_numpy()
    syn = np.flatnonzero((flags[f_at] & (SYN | ACK)) == SYN)
    synack = np.flatnonzero((flags[r_at] & (SYN | ACK)) == (SYN | ACK))
    links: dict[Any, Any] = {}
    if len(syn) and len(synack):
        isn = np.concatenate([tv["seq"].to_numpy()[f_at[syn]].astype(np.int64),
                              (tv["ack"].to_numpy()[r_at[synack]].astype(np.int64) - 1) % MOD32])
        keys = _packed([np.concatenate([f_conn[syn], r_conn[synack]]), isn])
        best = _best_reply_macs(keys[:len(syn)], keys[len(syn):], f_mac[syn], r_mac[synack], macs)
        links.update(zip(best["mac_r"], best["mac_f"]))
    best = _best_reply_macs(f_conn, r_conn, f_mac, r_mac, macs)
    for mac_r, mac_f in zip(best["mac_r"], best["mac_f"]):
        links.setdefault(mac_r, mac_f)
    return links


def _best_reply_macs(f_conn: np.ndarray, r_conn: np.ndarray, f_mac: np.ndarray,
                     r_mac: np.ndarray, macs: np.ndarray) -> pd.DataFrame:
    """Per reply MAC, the forwarded-to MAC it shares the most connections with: a connection
    pairs the dst MAC of its first forwarded copy with the src MAC of its first reply; counted
    per (reply MAC, forwarded MAC) in the order of those texts, then the largest count first."""
    f_ids, f_conns = pd.factorize(f_conn)
    r_ids, r_conns = pd.factorize(r_conn)
    first_f = f_mac[_first_rows(f_ids)].astype(np.int64)
    first_r = r_mac[_first_rows(r_ids)].astype(np.int64)
    in_f = pd.Index(f_conns).get_indexer(r_conns)
    both = in_f >= 0
    mac_r, mac_f = first_r[both], first_f[in_f[both]]
    named = ~pd.isna(macs)
    keep = named[mac_r] & named[mac_f]
    pairs, n = np.unique(mac_r[keep] * len(macs) + mac_f[keep], return_counts=True)
    counted = sorted(zip(macs[pairs // len(macs)].tolist(), macs[pairs % len(macs)].tolist(),
                         n.tolist()))
    counts = pd.DataFrame({"mac_r": obj([r for r, _, _ in counted]),
                           "mac_f": obj([f for _, f, _ in counted]),
                           "n": np.array([c for _, _, c in counted], dtype=np.int64)})
    return counts.sort_values("n", ascending=False).drop_duplicates("mac_r")


def _vip_claimers(pk: pd.DataFrame, vip_ips: set[str]) -> set[str]:
    claims = _claims(pk)
    return set(claims["mac"][claims["ip"].isin(vip_ips).to_numpy()]) - {""}


def _pair_counts(mac: pd.Series, ip: pd.Series, macs: set[str]) -> pd.DataFrame:
    """Rows per distinct (mac, ip) among the rows whose mac is one of `macs` and that have an
    ip, as plain str columns and a count n (counted on the columns' codes)."""
    mac_codes, mac_values = _codes_na(mac)
    ip_codes, ip_values = _codes_na(ip)
    wanted = _member(mac_values, macs)
    # the wanted MACs numbered 0.., -1 for the others and for a missing MAC (code -1)
    compact = np.append(np.where(wanted, np.cumsum(wanted) - 1, -1), -1).astype(np.int32)[
        mac_codes]
    rows = np.flatnonzero((compact >= 0) & (ip_codes >= 0))
    n_ip = max(len(ip_values), 1)
    pair = compact[rows].astype(np.int64) * n_ip + ip_codes[rows]
    size = int(wanted.sum()) * n_ip
    if size <= 4 * len(pair) + 65536:
        n = np.bincount(pair, minlength=size)
        pairs = np.flatnonzero(n)
        n = n[pairs]
    else:
        pairs, n = np.unique(pair, return_counts=True)
    return pd.DataFrame({"mac": obj(mac_values[np.flatnonzero(wanted)][pairs // n_ip]),
                         "ip": obj(ip_values[pairs % n_ip]), "n": n.astype(np.int64)})


def _codes_na(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes with -1 where missing, and the values they stand for."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.array.codes, np.asarray(s.cat.categories, dtype=object)
    codes, values = pd.factorize(s.to_numpy(dtype=object))
    return codes, np.asarray(values, dtype=object)


def _find_rips(pk: pd.DataFrame, servers: list[RealServerInfo], not_rips: set[str],
               pins: TopologyPins) -> None:
    """RIP = the address on the real-server segment that the director forwards to: the one a
    director's IPVS table lists for the server's host (host snapshots), else what the server's
    real-server-segment MAC owns: its interface's address (snapshot), the sender address of its
    ARP frames, the source address of its other frames; never a VIP or a client's address
    (not_rips). A server seen only on the VIP segment keeps its RIP unknown: its address there
    is not the RIP."""
    for rs in servers:
        rs.rip = next((pins.host_rips[m] for m in sorted(rs.all_macs) if m in pins.host_rips),
                      None)
    servers = [rs for rs in servers if rs.rip is None]
    if not servers:
        return
    macs = {m for rs in servers for m in rs.macs.values()}
    held = [(mac, ip, 0, 1) for mac in sorted(macs) for ip in pins.host_addresses.get(mac, [])]
    arp = _pair_counts(pk["arp_sender_mac"], pk["arp_sender_ip"], macs).assign(kind=1)
    ip = _pair_counts(pk["src_mac"], pk["src_ip"], macs).assign(kind=2)
    cand = pd.concat([pd.DataFrame(held, columns=["mac", "ip", "kind", "n"]), arp, ip])
    cand = cand[~cand["ip"].isin(not_rips) & (cand["ip"] != "")
                & ~cand["ip"].str.startswith("fe80")]
    if not len(cand):
        return
    # the host's word first, then ARP, then the most frames
    best = (cand.groupby(["mac", "ip"]).agg(kind=("kind", "min"), n=("n", "sum")).reset_index()
            .sort_values(["kind", "n", "ip"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("mac"))
    by_mac = dict(zip(best["mac"], best["ip"]))
    for rs in servers:
        for mac in (rs.macs[seg] for seg in ("rs-segment", "both") if seg in rs.macs):
            if mac in by_mac:
                rs.rip = by_mac[mac]
                break


def _server_order(rs: RealServerInfo) -> tuple:
    """Real servers in a stable order (by RIP, then MAC), not by when a capture first saw them:
    two captures of one farm name them alike."""
    if rs.rip:
        try:
            addr = ipaddress.ip_address(rs.rip)
            return (0, addr.version, int(addr), min(rs.all_macs, default=""))
        except ValueError:
            pass
    return (1, 0, 0, min(rs.all_macs, default=""))


def _senders(pk: pd.DataFrame) -> set[str]:
    """The MACs that sent at least one frame (judged on the column's codes)."""
    codes, values = _codes_na(pk["src_mac"])
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(values)))
    return {str(values[c]) for c in present if isinstance(values[c], str) and values[c]}


def _name_servers(servers: list[RealServerInfo], pins: TopologyPins) -> None:
    """Pinned names stay; a manifest name goes to the server with its RIP; the others are rsN
    by their place in `servers` (see _server_order; the next free number if that name is
    taken)."""
    for rs in servers:
        if not rs.name and rs.rip and rs.rip in pins.rs_names_by_rip:
            rs.name = pins.rs_names_by_rip[rs.rip]
    taken = {rs.name for rs in servers if rs.name}
    for i, rs in enumerate(servers, 1):
        if rs.name:
            continue
        while f"rs{i}" in taken:
            i += 1
        rs.name = f"rs{i}"
        taken.add(rs.name)


def _apply_rs_pins(servers: list[RealServerInfo], pins: TopologyPins, conflicts: list[str]) -> None:
    """Pinned real servers name and complete the learned ones; when servers are pinned, a MAC
    the director forwards to that matches none of them is not a real server (DR001 fails)."""
    if not pins.real_servers:
        return
    pinned_macs = {m for p in pins.real_servers for m in p["macs"].values()}
    for rs in list(servers):
        if not rs.all_macs & pinned_macs:
            conflicts.append(f"the director forwards to {', '.join(sorted(rs.all_macs))}, which is "
                             "not a pinned real server")
            servers.remove(rs)
    for pinned in pins.real_servers:
        pmacs = set(pinned["macs"].values())
        match = next((rs for rs in servers if rs.all_macs & pmacs), None)
        if match is None:
            if pmacs:
                conflicts.append(f"pinned real server {pinned['name']} ({', '.join(sorted(pmacs))}) "
                                 "is not seen in the traffic")
                servers.append(RealServerInfo(name=pinned["name"], macs=dict(pinned["macs"]),
                                              rip=pinned.get("rip")))
            continue
        match.name = pinned["name"]
        if pinned.get("rip") and match.rip and match.rip != pinned["rip"]:
            conflicts.append(f"pinned real server {pinned['name']}: RIP {pinned['rip']} but the "
                             f"traffic shows {match.rip}")
        if pinned.get("rip"):
            match.rip = pinned["rip"]
        for seg, mac in pinned["macs"].items():
            match.macs[seg] = mac
