"""The arp table: every ARP and IPv6 neighbour discovery frame, who claims or uses which address,
VIP owner changes (failovers), and the likely meaning of a claim of a VIP."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.ids import hash_key
from dr_inspect.columnar.plain import ints, text
from dr_inspect.columnar.text import categorical, codes_and_values, mapped
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.topology.model import LearnedTopology


ARP_COLUMNS = ["point", "frame", "ts_ns", "ts", "arp_op", "arp_sender_ip", "arp_target_ip",
               "arp_sender_mac", "src_mac"]


ND_COLUMNS = ["point", "frame", "ts_ns", "ts", "icmp_type", "nd_lladdr", "nd_target", "src_mac",
              "src_ip"]


def _lookup(s: pd.Series, mapping: dict) -> np.ndarray:
    """Map values through a dict, once per distinct value; '' where absent (object array)."""
    return np.asarray(mapped(s, mapping, ""), dtype=object)


def _roles(points: pd.Series, topo: LearnedTopology) -> np.ndarray:
    return np.asarray(mapped(points, topo.roles, "unknown"), dtype=object)


def arp_table(pk: pd.DataFrame, topo: LearnedTopology) -> pd.DataFrame:
    """Every ARP and IPv6 neighbour discovery frame: who claims or uses which address.

    sender_ip is the address the frame vouches for: ARP sender, NA target, NS source. Claims of a
    VIP (ARP reply / gratuitous ARP / NA) are tracked per VIP for owner changes."""
    if len(pk) == 0:
        return empty_table("arp")
    vip_ips = topo.vip_ips
    # the few ARP / ND frames: found by position, then only the columns read here are gathered
    # (a boolean filter would copy every column of the packets table)
    arp = pk[ARP_COLUMNS].iloc[np.flatnonzero(pk["arp_op"].notna().to_numpy())]
    op = ints(arp["arp_op"])
    sender, target = text(arp["arp_sender_ip"]), text(arp["arp_target_ip"])
    a = pd.DataFrame({
        "point": arp["point"].astype(object).to_numpy(), "frame": arp["frame"].to_numpy(np.int64),
        "ts_ns": arp["ts_ns"].to_numpy(np.int64), "ts": arp["ts"].to_numpy(np.int64),
        "kind": np.where(op == 2, "reply", np.where(sender.to_numpy() == target.to_numpy(),
                                                      "gratuitous", "request")),
        "sender_ip": sender.to_numpy(), "claimer_mac": text(arp["arp_sender_mac"]).to_numpy(),
        "src_mac": text(arp["src_mac"]).to_numpy(), "target_ip": target.to_numpy(),
        "five_tuple": ("arp " + sender + " -> " + target).to_numpy()})
    a["match_filter"] = np.where(
        op == 2, "arp.opcode == 2 && arp.src.proto_ipv4 == " + a["sender_ip"],
        "arp.opcode == 1 && arp.src.proto_ipv4 == " + a["sender_ip"] + " && arp.src.hw_mac == "
        + a["claimer_mac"])
    icmp = pk["icmp_type"].to_numpy(dtype=np.int16, na_value=-1)
    nd = pk[ND_COLUMNS].iloc[np.flatnonzero((icmp == 135) | (icmp == 136))]
    nd_na = ints(nd["icmp_type"]) == 136
    lladdr = text(nd["nd_lladdr"])
    claimer = lladdr.where(lladdr != "", text(nd["src_mac"]))
    ndt = text(nd["nd_target"])
    who = ndt.where(pd.Series(nd_na, index=nd.index), text(nd["src_ip"]))
    n = pd.DataFrame({
        "point": nd["point"].astype(object).to_numpy(), "frame": nd["frame"].to_numpy(np.int64),
        "ts_ns": nd["ts_ns"].to_numpy(np.int64), "ts": nd["ts"].to_numpy(np.int64),
        "kind": np.where(nd_na, "na", "ns"), "sender_ip": who.to_numpy(),
        "claimer_mac": claimer.to_numpy(), "src_mac": text(nd["src_mac"]).to_numpy(),
        "target_ip": ndt.to_numpy(),
        "five_tuple": ("icmpv6 " + pd.Series(np.where(nd_na, "na ", "ns "), index=nd.index)
                       + ndt).to_numpy()})
    n["match_filter"] = np.where(
        nd_na, "icmpv6.type == 136 && icmpv6.nd.na.target_address == " + n["target_ip"],
        "icmpv6.type == 135 && ipv6.src == " + n["sender_ip"] + " && eth.src == " + n["src_mac"])
    t = pd.concat([a, n], ignore_index=True)
    if len(t) == 0:
        return empty_table("arp")
    t["role"] = _roles(t["point"], topo)
    t["seq"] = -1
    t["about_vip"] = t["sender_ip"].isin(vip_ips).to_numpy()
    t["vip"] = t["sender_ip"].where(t["about_vip"], "")
    dmacs = topo.director_macs
    rs_names = topo.rs_name_by_mac()
    t["is_director"] = t["claimer_mac"].isin(dmacs).to_numpy()
    t["is_rs"] = t["claimer_mac"].isin(set(rs_names)).to_numpy()
    t["real_server"] = _lookup(t["claimer_mac"], rs_names)
    t = t.sort_values(["ts", "point", "frame"], kind="stable").reset_index(drop=True)
    claim = (t["about_vip"] & t["kind"].isin(["reply", "gratuitous", "na"])).to_numpy()
    c = t[claim]
    prev_mac = c.groupby("vip")["claimer_mac"].shift(1)
    prev_dir = c.groupby("vip")["is_director"].shift(1)
    changed = (prev_mac.notna() & (prev_mac != c["claimer_mac"])).to_numpy(dtype=bool)
    failover = changed & c["is_director"].to_numpy() & prev_dir.fillna(False).astype(bool).to_numpy()
    t["changed"] = False
    t["failover"] = False
    t.loc[c.index, "changed"] = changed
    t.loc[c.index, "failover"] = failover
    t["director_changes"] = t.groupby("vip")["failover"].transform("sum").astype(np.int64)
    t["claimer"] = np.where(t["is_director"], "director",
                            np.where(t["is_rs"], "real server " + t["real_server"], "unknown host"))
    t["likely_cause"] = _arp_causes(t, prev_mac.reindex(t.index))
    return finish_table(t, "arp")


def _arp_causes(t: pd.DataFrame, prev_claimer: pd.Series) -> pd.Categorical:
    """One line per ARP/ND frame: what a VIP claim or a request from the VIP most likely means;
    rendered once per distinct (case, claimer, MAC, VIP, previous claimer) of those it names."""
    # the first that holds: a request from the VIP, a director failover, a real server's
    # claim, a director's claim (nothing to say), anyone else's claim
    case = np.select([t["kind"].isin(["request", "ns"]).to_numpy(),
                      t["failover"].to_numpy(dtype=bool), t["is_rs"].to_numpy(dtype=bool),
                      t["is_director"].to_numpy(dtype=bool)], [0, 1, 2, 3], default=4)
    columns = [t["claimer"], t["claimer_mac"], t["vip"], prev_claimer.fillna("?").astype(str)]
    # which texts each case names: claimer, MAC, VIP, previous claimer
    names = np.array([[1, 1, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 1, 0]],
                     dtype=bool)
    coded = [codes_and_values(c) for c in columns]
    key = pd.DataFrame({"case": case, **{str(i): np.where(names[case, i], codes, -1)
                                         for i, (codes, _) in enumerate(coded)}})
    ids, distinct = pd.factorize(hash_key(key, list(key.columns)))
    first = np.full(len(distinct), len(ids), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(ids), dtype=np.int64))
    texts = []
    for row in first.tolist():
        claimer, mac, vip, prev = (values[codes[row]] for codes, values in coded)
        texts.append([
            f"{claimer} ({mac}) sends ARP requests from the VIP {vip}: set arp_announce=2 on "
            "that real server's interfaces",
            f"the VIP {vip} moved from director {prev} to {mac}: a director failover (one change "
            "is a warning; more mean two directors claim it: check keepalived priorities and "
            "VRRP)",
            f"{claimer} ({mac}) answers ARP/ND for the VIP {vip}: set arp_ignore=1 and "
            "arp_announce=2 on its VIP-segment interface (VIP on lo only)",
            "",
            f"unknown host {mac} claims the VIP {vip}: an address conflict; find it with arping "
            "-D and remove the VIP there"][case[row]])
    return categorical(ids, texts)

