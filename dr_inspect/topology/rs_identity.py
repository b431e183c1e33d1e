"""Who each real server is: its RIP (the host's word, its ARP, its frames), its place in a
stable order, its name (pinned, from the manifest, else rsN) and what the pins say of it."""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

from dr_inspect.columnar.codes import category_codes, value_in
from dr_inspect.columnar.pack import dense_span, pack, unpack
from dr_inspect.columnar.plain import obj
from dr_inspect.topology.model import RealServerInfo
from dr_inspect.topology.pins import TopologyPins


def _pair_counts(mac: pd.Series, ip: pd.Series, macs: set[str]) -> pd.DataFrame:
    """Rows per distinct (mac, ip) among the rows whose mac is one of `macs` and that have an
    ip, as plain str columns and a count n (counted on the columns' codes)."""
    mac_codes, mac_values = category_codes(mac)
    ip_codes, ip_values = category_codes(ip)
    wanted = value_in(mac_values, macs)
    # the wanted MACs numbered 0.., -1 for the others and for a missing MAC (code -1)
    compact = np.append(np.where(wanted, np.cumsum(wanted) - 1, -1), -1).astype(np.int32)[
        mac_codes]
    rows = np.flatnonzero((compact >= 0) & (ip_codes >= 0))
    spans = [dense_span(int(wanted.sum())), dense_span(len(ip_values))]
    pair = pack([compact[rows], ip_codes[rows]], spans)
    size = spans[0].size * spans[1].size
    if size <= 4 * len(pair) + 65536:
        n = np.bincount(pair, minlength=size)
        pairs = np.flatnonzero(n)
        n = n[pairs]
    else:
        pairs, n = np.unique(pair, return_counts=True)
    mac_at, ip_at = unpack(pairs, spans)
    return pd.DataFrame({"mac": obj(mac_values[np.flatnonzero(wanted)][mac_at]),
                         "ip": obj(ip_values[ip_at]), "n": n.astype(np.int64)})


def find_rips(pk: pd.DataFrame, servers: list[RealServerInfo], not_rips: set[str],
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


def server_order(rs: RealServerInfo) -> tuple:
    """Real servers in a stable order (by RIP, then MAC), not by when a capture first saw them:
    two captures of one farm name them alike."""
    if rs.rip:
        try:
            addr = ipaddress.ip_address(rs.rip)
            return (0, addr.version, int(addr), min(rs.all_macs, default=""))
        except ValueError:
            pass
    return (1, 0, 0, min(rs.all_macs, default=""))


def name_servers(servers: list[RealServerInfo], pins: TopologyPins) -> None:
    """Pinned names stay; a manifest name goes to the server with its RIP; the others are rsN
    by their place in `servers` (see server_order; the next free number if that name is
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


def apply_rs_pins(servers: list[RealServerInfo], pins: TopologyPins, conflicts: list[str]) -> None:
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
