"""The VIPs: pinned ones resolved against the traffic, else the ip:port the traffic shows DR
serving (a SYN forwarded with a rewritten MAC, answered from another MAC, or to an address two
hosts claim); and the services that are no VIP but whose SYNs the director loses.

The signature of DR: the same client->VIP packet is seen with two destination MACs (the director's,
then a real server's after forwarding), and the SYN-ACK of the connection comes from a MAC other
than the one the SYN was addressed to (the real server answers directly). Plain client/server or
unrelated traffic shows neither, so no VIP is found there and the caller is told so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.columnar.codes import value_in
from dr_inspect.columnar.group import per_key_range
from dr_inspect.columnar.pack import dense_span, pack, pack_exact
from dr_inspect.columnar.plain import ints, text
from dr_inspect.columnar.tcp_view import MOD32
from dr_inspect.decode.schema import ACK, RST, SYN
from dr_inspect.errors import TopologyError
from dr_inspect.topology.model import LearnedVips
from dr_inspect.topology.pins import TopologyPins, vip_text
from dr_inspect.topology.view import (CodedView, coded_view, distinct_endpoints, endpoint_rows,
                                      endpoint_texts, point_codes_at, syn_rows)


def _detect_vips(pk: pd.DataFrame, tv: pd.DataFrame, cv: CodedView) -> list[tuple[str, int]]:
    """ip:port that DR serves: a SYN forwarded with a new dst MAC, or answered from another MAC."""
    syn, sa = syn_rows(tv)
    # a frame without a MAC (raw IP, Linux cooked captures; '' in the view) shows no rewrite:
    # only two known MACs that differ are evidence of DR
    mac_na = pd.isna(cv.macs) | (cv.macs == "")
    found: set[tuple[Any, int]] = set()
    if len(syn) == 0:
        return []
    # (client ip, port, server ip, port, ISN) of the SYNs, then of the SYN-ACKs (ack = ISN + 1)
    seq = tv["seq"].to_numpy()
    ids, uniq = pd.factorize(pack_exact([
        np.concatenate([cv.src_ip[syn], cv.dst_ip[sa]]),
        np.concatenate([cv.src_port[syn], cv.dst_port[sa]]),
        np.concatenate([cv.dst_ip[syn], cv.src_ip[sa]]),
        np.concatenate([cv.dst_port[syn], cv.src_port[sa]]),
        np.concatenate([seq[syn], (tv["ack"].to_numpy()[sa] - 1) % MOD32])]))
    syn_ids = ids[:len(syn)]
    syn_mac, sa_mac = cv.dst_mac[syn].astype(np.int64), cv.src_mac[sa].astype(np.int64)
    # the same SYN seen with two or more destination MACs (a missing one not counted)
    named = ~mac_na[syn_mac]
    lo, hi = per_key_range(syn_ids[named], syn_mac[named], len(uniq))
    rows = syn[(hi > lo)[syn_ids]]
    found |= distinct_endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)
    if len(sa):
        # a SYN and its SYN-ACK at one point with different MACs: the SYN's destination, the
        # SYN-ACK's source (a missing MAC differs from every MAC)
        (syn_point, sa_point), point_values = point_codes_at(pk, tv, syn, sa)
        at_point = pack([ids, np.concatenate([syn_point, sa_point])],
                        [dense_span(len(uniq)), dense_span(len(point_values))])
        n_keys = len(uniq) * len(point_values)
        if n_keys > 4 * len(at_point) + 1024:
            at_point, distinct = pd.factorize(at_point)
            n_keys = len(distinct)
        syn_at, sa_at = at_point[:len(syn)], at_point[len(syn):]
        s_named, a_named = ~mac_na[syn_mac], ~mac_na[sa_mac]
        s_lo, s_hi = per_key_range(syn_at[s_named], syn_mac[s_named], n_keys)
        a_lo, a_hi = per_key_range(sa_at[a_named], sa_mac[a_named], n_keys)
        differ = (s_lo != s_hi) | (a_lo != a_hi) | (s_lo != a_lo)
        differ &= (s_hi >= 0) & (a_hi >= 0)
        rows = syn[differ[syn_at]]
        found |= distinct_endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)
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


def _contested_services(pk: pd.DataFrame, cv: CodedView, syn: np.ndarray) -> set[tuple[Any, int]]:
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
    is_contested = value_in(cv.ips, contested)
    rows = syn[is_contested[cv.dst_ip[syn]]]
    return distinct_endpoints(cv.dst_ip[rows], cv.dst_port[rows], cv.ips)


def _used_services(tv: pd.DataFrame, cv: CodedView, services: list[tuple[str, int]]
                   ) -> set[tuple[str, int]]:
    """Those of `services` (ip, port) that some SYN in the traffic goes to."""
    if not services:
        return set()
    syn = syn_rows(tv)[0]
    hit = endpoint_rows(cv.dst_ip[syn], cv.dst_port[syn], cv.ips, services)
    return {(str(ip), int(port)) for ip, port in
            distinct_endpoints(cv.dst_ip[syn[hit]], cv.dst_port[syn[hit]], cv.ips)}


def unserved_services(tv: pd.DataFrame, cv: CodedView, vips: list[tuple[str, int]],
                      director_in: np.ndarray) -> dict[str, int]:
    """'ip:port' -> SYNs to it that reached a director MAC (director_in: per MAC code) and that
    nobody answered (no SYN-ACK, no RST), for endpoints that are no VIP: a virtual service
    without a real server, or traffic the director drops. They are not DR traffic the rules
    can judge, but they must not go unmentioned."""
    syn, _ = syn_rows(tv)
    syn = syn[director_in[cv.dst_mac[syn]] & ~endpoint_rows(cv.dst_ip[syn], cv.dst_port[syn],
                                                            cv.ips, vips)]
    if len(syn) == 0:
        return {}
    f = tv["tcp_flags"].to_numpy()
    answer = np.flatnonzero(((f & (SYN | ACK)) == (SYN | ACK)) | ((f & RST) != 0))
    seq, ack = tv["seq"].to_numpy(), tv["ack"].to_numpy()
    keys = pack_exact([np.concatenate([cv.src_ip[syn], cv.dst_ip[answer]]),
                       np.concatenate([cv.src_port[syn], cv.dst_port[answer]]),
                       np.concatenate([cv.dst_ip[syn], cv.src_ip[answer]]),
                       np.concatenate([cv.dst_port[syn], cv.src_port[answer]]),
                       np.concatenate([(seq[syn].astype(np.int64) + 1) % MOD32,
                                       ack[answer].astype(np.int64)])])
    lost = syn[~np.isin(keys[:len(syn)], keys[len(syn):])]
    ends = pd.Series(endpoint_texts(cv.dst_ip[lost], cv.dst_port[lost], cv.ips))
    return {str(k): int(v) for k, v in ends.value_counts().sort_index().items()}


def _resolve_pinned_vips(tv: pd.DataFrame, cv: CodedView, pins: TopologyPins,
                         conflicts: list[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    syn = syn_rows(tv)[0]
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


def vip_claimers(pk: pd.DataFrame, vip_ips: set[str]) -> set[str]:
    """The MACs that claim one of the VIP addresses (ARP, ND)."""
    claims = _claims(pk)
    return set(claims["mac"][claims["ip"].isin(vip_ips).to_numpy()]) - {""}


def learn_vips(pk: pd.DataFrame, tv: pd.DataFrame, pins: TopologyPins | None = None
               ) -> LearnedVips:
    """The pinned VIPs (a pinned address without a port: the ports its SYNs go to), else those
    the traffic shows DR serving (see _detect_vips). Raises TopologyError when there is none.

    The first step of learn_topology, on its own: what needs only the VIPs can start early."""
    pins = pins or TopologyPins()
    conflicts: list[str] = []
    cv = coded_view(tv)
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

