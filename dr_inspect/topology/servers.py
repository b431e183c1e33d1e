"""The real servers: the MACs the director forwards copies to (their real-server-segment MAC),
linked to the MACs their replies from the VIP leave from (their VIP-segment MAC), kept when they
show themselves alive; then named and given their RIP (rs_identity)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import is_group_mac
from dr_inspect.columnar.codes import value_in
from dr_inspect.columnar.ids import first_rows
from dr_inspect.columnar.pack import dense_span, pack, pack_exact, unpack
from dr_inspect.columnar.plain import obj
from dr_inspect.columnar.tcp_view import MOD32
from dr_inspect.decode.schema import ACK, SYN
from dr_inspect.topology.directors import Directors
from dr_inspect.topology.model import RealServerInfo
from dr_inspect.topology.pins import TopologyPins
from dr_inspect.topology.rs_identity import apply_rs_pins, find_rips, name_servers, server_order
from dr_inspect.topology.view import CodedView, VipTraffic, conn_keys


def _segment_roles(macs: np.ndarray, points: np.ndarray, mac_values: np.ndarray,
                   point_values: np.ndarray, roles: dict[str, str], role: str) -> dict[Any, str]:
    """{MAC: role} over the distinct (MAC, point) of the rows in order of first appearance, a
    later pair's point deciding (in the MAC's place of first appearance): `role`, or 'both' at a
    point of role both."""
    out: dict[Any, str] = {}
    spans = [dense_span(len(mac_values)), dense_span(len(point_values))]
    pairs = unpack(pd.unique(pack([macs, points], spans)), spans)
    for mac, point in zip(*(p.tolist() for p in pairs)):
        out[mac_values[mac]] = "both" if roles.get(point_values[point]) == "both" else role
    return out


def _answered(tv: pd.DataFrame, cv: CodedView, f_at: np.ndarray, f_mac: np.ndarray,
              from_vip: np.ndarray, macs: np.ndarray, unproven: set[str]) -> set[str]:
    """Those of the `unproven` MACs that some connection forwarded to them (view rows f_at,
    their dst MAC codes f_mac) has a frame from the VIP for (view rows from_vip). A forwarded
    SYN is answered by a frame acknowledging its ISN (a client may reuse the 4-tuple: another
    connection's answer is not this one's); other rows by any frame of their 4-tuple."""
    if not unproven or len(from_vip) == 0:
        return set()
    mine = np.flatnonzero(value_in(macs, unproven)[f_mac])
    at = f_at[mine]
    f_conn, r_conn = conn_keys(
        (cv.src_ip[at], cv.src_port[at], cv.dst_ip[at], cv.dst_port[at]),
        (cv.dst_ip[from_vip], cv.dst_port[from_vip], cv.src_ip[from_vip], cv.src_port[from_vip]),
        n_ip=len(cv.ips))
    flags = tv["tcp_flags"].to_numpy()
    syn = (flags[at] & (SYN | ACK)) == SYN
    answered = np.isin(f_conn, r_conn) & ~syn
    if syn.any():
        acked = ((flags[from_vip] & ACK) != 0)
        keys = pack_exact([np.concatenate([f_conn[syn], r_conn[acked]]),
                           np.concatenate([(tv["seq"].to_numpy()[at[syn]].astype(np.int64) + 1)
                                           % MOD32, tv["ack"].to_numpy()[from_vip[acked]]])])
        answered[np.flatnonzero(syn)] = np.isin(keys[:int(syn.sum())], keys[int(syn.sum()):])
    return {macs[m] for m in np.unique(f_mac[mine][answered])}


def _reply_links(tv: pd.DataFrame, cv: CodedView, f_at: np.ndarray, r_at: np.ndarray,
                 f_mac: np.ndarray, r_mac: np.ndarray, macs: np.ndarray) -> dict[Any, Any]:
    """reply MAC -> the forwarded-to MAC of the same server: paired per connection by its
    handshake (the forwarded SYN's ISN, the SYN-ACK's ack - 1), exact even when a client reuses
    a 4-tuple; reply MACs no handshake pairs are paired per 4-tuple (see _best_reply_macs)."""
    f_conn, r_conn = conn_keys(
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
        keys = pack_exact([np.concatenate([f_conn[syn], r_conn[synack]]), isn])
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
    first_f = f_mac[first_rows(f_ids)].astype(np.int64)
    first_r = r_mac[first_rows(r_ids)].astype(np.int64)
    in_f = pd.Index(f_conns).get_indexer(r_conns)
    both = in_f >= 0
    mac_r, mac_f = first_r[both], first_f[in_f[both]]
    named = ~pd.isna(macs)
    keep = named[mac_r] & named[mac_f]
    spans = [dense_span(len(macs)), dense_span(len(macs))]
    pairs, n = np.unique(pack([mac_r[keep], mac_f[keep]], spans), return_counts=True)
    pair_r, pair_f = unpack(pairs, spans)
    counted = sorted(zip(macs[pair_r].tolist(), macs[pair_f].tolist(), n.tolist()))
    counts = pd.DataFrame({"mac_r": obj([r for r, _, _ in counted]),
                           "mac_f": obj([f for _, f, _ in counted]),
                           "n": np.array([c for _, _, c in counted], dtype=np.int64)})
    return counts.sort_values("n", ascending=False).drop_duplicates("mac_r")


def _candidates(tv: pd.DataFrame, cv: CodedView, traffic: VipTraffic, dirs: Directors,
                roles: dict[str, str]) -> tuple[dict[Any, RealServerInfo], np.ndarray, np.ndarray]:
    """The real servers the traffic suggests, by their forwarded-to MAC (or their reply MAC when
    no forwarded copy links it); and the forwarded copies (view rows, their dst MAC codes).

    Forwarded copies go to a real server's rs-segment MAC; its replies leave its VIP-segment
    MAC. Connections are (client ip, port, VIP, port) on both sides."""
    macs = cv.macs
    f_dst_ok = (~dirs.is_dir & ~np.asarray(is_group_mac(macs), dtype=bool)
                & ~value_in(macs, dirs.client_macs))
    f_rows = np.flatnonzero(dirs.is_out[traffic.t_src] & f_dst_ok[traffic.t_dst])
    r_rows = np.flatnonzero(~dirs.is_dir[traffic.r_src] & (macs != "")[traffic.r_src])
    f_at, r_at = traffic.tov[f_rows], traffic.rep[r_rows]
    f_mac, r_mac = traffic.t_dst[f_rows], traffic.r_src[r_rows]
    rs_seg_role = _segment_roles(f_mac, traffic.t_point[f_rows], macs, traffic.point_values,
                                 roles, "rs-segment")
    vip_seg_role = _segment_roles(r_mac, traffic.r_point[r_rows], macs, traffic.point_values,
                                  roles, "vip-segment")
    servers: dict[Any, RealServerInfo] = {}
    for mac in sorted(rs_seg_role, key=str):
        servers[mac] = RealServerInfo(name="", macs={rs_seg_role[mac]: mac})
    if len(f_at) and len(r_at):
        for mac_r, mac_f in _reply_links(tv, cv, f_at, r_at, f_mac, r_mac, macs).items():
            if mac_f in servers and mac_r != mac_f:
                servers[mac_f].macs.setdefault(vip_seg_role.get(mac_r, "vip-segment"), mac_r)
    linked = {m for rs in servers.values() for m in rs.macs.values()}
    for mac in sorted(set(vip_seg_role) - linked, key=str):
        servers[mac] = RealServerInfo(name="", macs={vip_seg_role[mac]: mac})
    return servers, f_at, f_mac


def find_real_servers(pk: pd.DataFrame, tv: pd.DataFrame, cv: CodedView, traffic: VipTraffic,
                      dirs: Directors, roles: dict[str, str], pins: TopologyPins,
                      senders: set[str], vips: list[tuple[str, int]], conflicts: list[str]
                      ) -> list[RealServerInfo]:
    """The real servers in a stable order (rs_identity.server_order), named, with their RIPs."""
    servers, f_at, f_mac = _candidates(tv, cv, traffic, dirs, roles)
    # the addresses clients send VIP traffic from: never a real server's own address (a real
    # server that forwards such a packet, a loop, sends it from its MAC with the client's IP)
    client_ips = {cv.ips[c] for c in np.unique(cv.src_ip[traffic.tov])}
    # a MAC the director forwards to is a real server only when it shows itself alive: it sent
    # a frame (an ARP answer, a reply from the VIP, anything), its host's snapshot holds it, or
    # the connections forwarded to it are answered from the VIP (through whatever path). One
    # that never is a stale neighbour entry on the director: its copies fail DR001 instead of
    # naming a new server. Every frame from a VIP counts as an answer, whoever sent it.
    alive = senders | set(pins.host_addresses)
    alive |= _answered(tv, cv, f_at, f_mac, traffic.rep, cv.macs,
                       {m for rs in servers.values() for m in rs.all_macs} - alive)
    found = [rs for rs in servers.values() if rs.all_macs & alive]
    find_rips(pk, found, {ip for ip, _ in vips} | client_ips, pins)
    apply_rs_pins(found, pins, conflicts)
    ordered = sorted(found, key=server_order)
    name_servers(ordered, pins)
    return ordered
