"""Learn the LVS-DR topology from the traffic: VIPs, director MACs, real servers, point roles.

The signature of DR: the same client->VIP packet is seen with two destination MACs (the director's,
then a real server's after forwarding), and the SYN-ACK of the connection comes from a MAC other
than the one the SYN was addressed to (the real server answers directly). Plain client/server or
unrelated traffic shows neither, so no VIP is found there and the caller is told so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.correlate.keys import (endpoint_in, fmt_endpoint, hash_key, is_group_mac,
                                       strict_key, syn_ack, syn_only, text)
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


def _detect_vips(tv: pd.DataFrame) -> list[tuple[str, int]]:
    """ip:port that DR serves: a SYN forwarded with a new dst MAC, or answered from another MAC."""
    syn = tv[syn_only(tv)]
    found: set[tuple[str, int]] = set()
    if len(syn):
        k = hash_key(syn, ["src_ip", "src_port", "dst_ip", "dst_port", "seq"])
        macs = pd.DataFrame({"k": k, "mac": syn["dst_mac"].to_numpy()})
        nmac = macs.groupby("k")["mac"].nunique()
        fwd = syn[np.isin(k, nmac.index[nmac >= 2].to_numpy())]
        found |= set(fwd[["dst_ip", "dst_port"]].drop_duplicates().itertuples(index=False, name=None))
    sa = tv[syn_ack(tv)]
    if len(syn) and len(sa):
        left = pd.DataFrame({"point": syn["point"], "cip": syn["src_ip"], "cport": syn["src_port"],
                             "sip": syn["dst_ip"], "sport": syn["dst_port"], "isn": syn["seq"],
                             "syn_dst_mac": syn["dst_mac"]})
        right = pd.DataFrame({"point": sa["point"], "cip": sa["dst_ip"], "cport": sa["dst_port"],
                              "sip": sa["src_ip"], "sport": sa["src_port"],
                              "isn": (sa["ack"] - 1) % MOD32, "sa_src_mac": sa["src_mac"]})
        pairs = left.merge(right, on=["point", "cip", "cport", "sip", "sport", "isn"])
        dr = pairs[pairs["syn_dst_mac"] != pairs["sa_src_mac"]]
        found |= set(dr[["sip", "sport"]].drop_duplicates().itertuples(index=False, name=None))
    return sorted((str(ip), int(port)) for ip, port in found)


def _resolve_pinned_vips(tv: pd.DataFrame, pins: TopologyPins,
                         conflicts: list[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    syn = tv[syn_only(tv)]
    for ip, port in pins.vips:
        if port is None:
            ports = sorted(set(syn.loc[syn["dst_ip"] == ip, "dst_port"].tolist()))
            if not ports:
                conflicts.append(f"pinned VIP {ip}: no TCP SYN to it in the traffic, so its "
                                 "port is unknown (pin it as ip:port)")
            out.extend((ip, int(p)) for p in ports)
            continue
        if not ((tv["dst_ip"] == ip) & (tv["dst_port"] == port)).any():
            conflicts.append(f"pinned VIP {vip_text(ip, port)}: no TCP traffic to it in the captures")
        out.append((ip, port))
    return sorted(set(out))


# TCP-view columns topology learning never reads once the packet identity is the strict_key
# column (seq, ack and flags only feed that key; VIP detection reads them from the whole view)
_UNUSED_HERE = {"frame", "ts_ns", "row", "ip_id", "payload_len", "seq", "ack", "tcp_flags"}


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (0..) and the values they stand for (NA a value of its own): a categorical's
    own codes, else factorized."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        values = np.append(np.asarray(s.cat.categories, dtype=object), np.nan)
        return np.where(codes < 0, len(values) - 1, codes), values
    codes, values = pd.factorize(s, use_na_sentinel=False)
    return codes.astype(np.int64), np.asarray(values, dtype=object)


def _categorical(codes: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """The values of `codes` (from _codes) as a categorical over the distinct non-NA values."""
    values = np.asarray(values, dtype=object)
    keep = ~pd.isna(values)
    new_code = np.where(keep, np.cumsum(keep) - 1, -1)
    return pd.Categorical.from_codes(new_code[codes], categories=pd.Index(values[keep], dtype=object))


def _legs(tov: pd.DataFrame) -> pd.DataFrame:
    """Distinct (packet, src MAC, dst MAC) sightings of client->VIP packets seen more than once
    with different MACs, ranked: 0 = the original, 1.. = forwarded copies (TTL falls, time rises)."""
    if len(tov) == 0:
        return pd.DataFrame(columns=["k", "src_mac", "dst_mac", "ttl", "ts", "point", "rank"])
    # Groups of (packet key, src MAC, dst MAC) as integer ids in order of first appearance
    # (factorize numbers values as they first occur), aggregated with numpy.
    src_codes, src_values = _codes(tov["src_mac"])
    dst_codes, dst_values = _codes(tov["dst_mac"])
    point_values = tov["point"].to_numpy(dtype=object)
    k = strict_key(tov)
    key_codes = pd.factorize(k)[0].astype(np.int64)
    # one id per distinct (packet, src MAC, dst MAC), numbered in order of first appearance
    gid = pd.factorize((key_codes * (int(src_codes.max()) + 1) + src_codes)
                       * (int(dst_codes.max()) + 1) + dst_codes)[0]
    seen = np.maximum.accumulate(gid)
    first = np.flatnonzero(gid > np.concatenate(([-1], seen[:-1])))   # group g starts at first[g]
    # per-group max TTL / min time by unbuffered scatter (numpy 2's ufunc.at): no sort of the ids
    g_ttl = np.full(len(first), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(g_ttl, gid, tov["ttl"].to_numpy(dtype=np.int64))
    g_ts = np.full(len(first), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(g_ts, gid, tov["ts"].to_numpy(dtype=np.int64))
    g_k = k[first]
    per_key = np.bincount(key_codes[first])[key_codes[first]]
    multi = np.flatnonzero(per_key >= 2)
    # rank within a key: TTL falling, then time rising, then first appearance (keys are
    # blocked by their integer id; the order of the blocks does not matter to the votes)
    g_kc = key_codes[first]
    ranked = multi[np.lexsort((first[multi], g_ts[multi], -g_ttl[multi], g_kc[multi]))]
    rk = g_kc[ranked]
    block = np.ones(len(ranked), dtype=bool)
    block[1:] = rk[1:] != rk[:-1]
    block_start = np.flatnonzero(block)
    rank = np.arange(len(ranked)) - np.repeat(block_start, np.diff(np.append(block_start,
                                                                           len(ranked))))
    rows = first[ranked]
    multi = pd.DataFrame({
        "k": g_k[ranked],
        "src_mac": _categorical(src_codes[rows], src_values),
        "dst_mac": _categorical(dst_codes[rows], dst_values),
        "ttl": g_ttl[ranked], "ts": g_ts[ranked],
        "point": pd.Series(point_values[rows], dtype=object),
        "rank": rank.astype(np.int64)})
    return multi


def learn_topology(pk: pd.DataFrame, tv: pd.DataFrame, points: list[str],
                   pins: TopologyPins | None = None) -> LearnedTopology:
    """Learn from the combined packets table `pk` and its TCP view `tv` (correlate.keys.tcp_view).

    Raises TopologyError when no VIP is found and none is pinned.
    """
    pins = pins or TopologyPins()
    conflicts: list[str] = []
    learned_vips = _detect_vips(tv)
    if pins.vips:
        vips = _resolve_pinned_vips(tv, pins, conflicts)
        if not vips:
            raise TopologyError("the pinned VIP(s) " + ", ".join(vip_text(*v) for v in pins.vips)
                                + " have no port and no SYN in the traffic: pin them as ip:port")
    elif learned_vips:
        vips = learned_vips
    else:
        raise TopologyError(
            "no LVS-DR virtual service found in the traffic: no TCP SYN to an ip:port was forwarded "
            "with a rewritten MAC or answered from another MAC; these captures show no DR traffic "
            "(pin the VIP with --vip ip:port if the capture holds only part of it)")

    # only the columns learning reads: these selections are most of the TCP view
    unused = _UNUSED_HERE if "strict_key" in tv.columns else {"frame", "ts_ns", "row"}
    cols = [c for c in tv.columns if c not in unused]
    tov = tv.loc[endpoint_in(tv["dst_ip"], tv["dst_port"], vips), cols]
    rep = tv.loc[endpoint_in(tv["src_ip"], tv["src_port"], vips), cols]
    legs = _legs(tov)
    orig, fwd = legs[legs["rank"] == 0], legs[legs["rank"] >= 1]
    in_votes = orig["dst_mac"].value_counts().to_dict()
    rs_votes = fwd["dst_mac"].value_counts().to_dict()
    director_in = {m for m, c in in_votes.items() if c > rs_votes.get(m, 0) and m}
    if not director_in and len(tov):
        # One point only: the director is where clients send VIP frames and no reply comes from.
        director_in = set(tov["dst_mac"].unique()) - set(rep["src_mac"].unique()) - {""}
    if not director_in:
        # No forwarding seen (clients all bypass it): the director is the VIP's ARP/ND claimer
        # that is not a real server (real servers are where replies from the VIP come from).
        director_in = (_vip_claimers(pk, {ip for ip, _ in vips}) - set(rep["src_mac"].unique())
                       - {""})
    # the first copy of a packet leaves the director; later ones may be a loop coming back
    first_copy = fwd[(fwd["rank"] == 1) & ~fwd["dst_mac"].isin(director_in)]
    director_out = set(first_copy["src_mac"].unique()) - {""}

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

    client_macs = (set(tov.loc[tov["dst_mac"].isin(director_in), "src_mac"].unique()) - dmacs
                   - {""})

    # roles of the points
    ingress = tov["dst_mac"].isin(director_in) & ~tov["src_mac"].isin(director_out - director_in)
    forwarded = tov["src_mac"].isin(director_out) & ~tov["dst_mac"].isin(dmacs)
    roles: dict[str, str] = {}
    ing_pts, fwd_pts, rep_pts = (set(tov.loc[ingress, "point"].unique()),
                                 set(tov.loc[forwarded, "point"].unique()), set(rep["point"].unique()))
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

    # real servers: forwarded copies go to their rs-segment MAC; replies leave their VIP-segment MAC
    fwd_rows = tov[forwarded.to_numpy()]
    fwd_rows = fwd_rows[~is_group_mac(fwd_rows["dst_mac"]) & ~fwd_rows["dst_mac"].isin(client_macs)]
    rep_rs = rep[~rep["src_mac"].isin(dmacs) & (rep["src_mac"] != "")]
    conn_f = pd.DataFrame({"c": hash_key(fwd_rows, ["src_ip", "src_port", "dst_ip", "dst_port"]),
                           "mac": fwd_rows["dst_mac"].to_numpy(), "ts": fwd_rows["ts"].to_numpy(),
                           "point": fwd_rows["point"].to_numpy()})
    rep_keyed = rep_rs.rename(columns={"src_ip": "dst_ip", "dst_ip": "src_ip",
                                       "src_port": "dst_port", "dst_port": "src_port"})
    conn_r = pd.DataFrame({"c": hash_key(rep_keyed, ["src_ip", "src_port", "dst_ip", "dst_port"]),
                           "mac": rep_rs["src_mac"].to_numpy(), "ts": rep_rs["ts"].to_numpy(),
                           "point": rep_rs["point"].to_numpy()})
    first_seen: dict[str, int] = {}
    for frame in (conn_f, conn_r):
        if len(frame):
            for mac, ts in frame.groupby("mac")["ts"].min().items():
                first_seen[mac] = min(first_seen.get(mac, ts), ts)
    rs_seg_role = {m: ("both" if roles.get(p) == "both" else "rs-segment")
                   for m, p in conn_f[["mac", "point"]].drop_duplicates().itertuples(index=False)}
    vip_seg_role = {m: ("both" if roles.get(p) == "both" else "vip-segment")
                    for m, p in conn_r[["mac", "point"]].drop_duplicates().itertuples(index=False)}
    servers: dict[str, RealServerInfo] = {}
    for mac in sorted(rs_seg_role, key=lambda m: first_seen.get(m, 0)):
        servers[mac] = RealServerInfo(name="", macs={rs_seg_role[mac]: mac})
    if len(conn_f) and len(conn_r):
        pairs = (conn_f.drop_duplicates("c")[["c", "mac"]]
                 .merge(conn_r.drop_duplicates("c")[["c", "mac"]], on="c", suffixes=("_f", "_r")))
        counts = pairs.groupby(["mac_r", "mac_f"]).size().reset_index(name="n")
        best = counts.sort_values("n", ascending=False).drop_duplicates("mac_r")
        for mac_r, mac_f in zip(best["mac_r"], best["mac_f"]):
            if mac_f in servers and mac_r != mac_f:
                servers[mac_f].macs.setdefault(vip_seg_role.get(mac_r, "vip-segment"), mac_r)
    linked = {m for rs in servers.values() for m in rs.macs.values()}
    for mac in sorted(set(vip_seg_role) - linked, key=lambda m: first_seen.get(m, 0)):
        servers[mac] = RealServerInfo(name="", macs={vip_seg_role[mac]: mac})
    ordered = sorted(servers.values(), key=lambda r: min(first_seen.get(m, 0)
                                                          for m in r.macs.values()))
    _find_rips(pk, ordered, {ip for ip, _ in vips})
    _apply_rs_pins(ordered, pins, conflicts)
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
                           scheduler=pins.scheduler, conflicts=conflicts, pinned=pins.as_dict())


def _vip_claimers(pk: pd.DataFrame, vip_ips: set[str]) -> set[str]:
    arp = pk[(pk["arp_op"] == 2).fillna(False).to_numpy(dtype=bool)
             & pk["arp_sender_ip"].isin(vip_ips).to_numpy(dtype=bool)]
    na = pk[(pk["icmp_type"] == 136).fillna(False).to_numpy(dtype=bool)
            & pk["nd_target"].isin(vip_ips).to_numpy(dtype=bool)]
    return set(text(arp["arp_sender_mac"]).unique()) | set(text(na["nd_lladdr"]).unique())


def _pair_counts(mac: pd.Series, ip: pd.Series) -> pd.DataFrame:
    """Rows per distinct (mac, ip) with both present, as plain str columns and a count n."""
    pairs = pd.DataFrame({"mac": mac.reset_index(drop=True), "ip": ip.reset_index(drop=True)})
    n = pairs.groupby(["mac", "ip"], observed=True, dropna=True).size()
    return pd.DataFrame({"mac": text(pd.Series(n.index.get_level_values(0))).to_numpy(),
                         "ip": text(pd.Series(n.index.get_level_values(1))).to_numpy(),
                         "n": n.to_numpy(dtype=np.int64)})


def _find_rips(pk: pd.DataFrame, servers: list[RealServerInfo], vip_ips: set[str]) -> None:
    """RIP = the address a real server MAC uses as ARP sender (or IP source), never the VIP."""
    if not servers:
        return
    macs = {m for rs in servers for m in rs.macs.values()}
    arp = pk["arp_sender_mac"].isin(macs).to_numpy(dtype=bool)
    ipsrc = pk["src_mac"].isin(macs).to_numpy(dtype=bool) & pk["src_ip"].notna().to_numpy()
    # (mac, ip) pairs counted on the selected rows of two columns (not a copy of every column
    # of every frame a real server sent); rows without an address are dropped below anyway
    cand = pd.concat([_pair_counts(pk["arp_sender_mac"][arp], pk["arp_sender_ip"][arp]),
                      _pair_counts(pk["src_mac"][ipsrc], pk["src_ip"][ipsrc])])
    cand = cand[~cand["ip"].isin(vip_ips) & (cand["ip"] != "") & ~cand["ip"].str.startswith("fe80")]
    if not len(cand):
        return
    best = (cand.groupby(["mac", "ip"])["n"].sum().reset_index(name="n")
            .sort_values("n", ascending=False))
    by_mac = dict(zip(best.drop_duplicates("mac")["mac"], best.drop_duplicates("mac")["ip"]))
    for rs in servers:
        # prefer the rs-segment address: that is the one the director resolves
        for seg in ("rs-segment", "both", "vip-segment"):
            mac = rs.macs.get(seg)
            if mac in by_mac:
                rs.rip = by_mac[mac]
                break


def _name_servers(servers: list[RealServerInfo], pins: TopologyPins) -> None:
    """Pinned names stay; a manifest name goes to the server with its RIP; the others are rsN
    by their place in order of first appearance (the next free number if that name is taken)."""
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
