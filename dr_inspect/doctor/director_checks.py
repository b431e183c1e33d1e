"""Director checks HC010-HC014: pure functions snapshot, target -> HostCheck list."""

from __future__ import annotations

import ipaddress
from typing import Any

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.checkbase import Maker, Target, fix_cmd, full_prefix, missing, vip_addresses
from dr_inspect.doctor.result import HostCheck


def check_director_vip(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if snap.get("addr") is None:
        return [mk("HC010", "not-checked", "VIP", reason=missing(snap, "addr"))]
    needed = f"{target.vip} on an UP interface that answers ARP (the one clients reach)"
    found = vip_addresses(snap, target.vip)
    for a in found:
        lnk = hs.link(snap, a.ifname) or {}
        if hs.is_arp_interface(lnk) and hs.is_up(lnk):
            return [mk("HC010", "pass", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname} (UP)", needed=needed)]
    if found:
        a = found[0]
        lnk = hs.link(snap, a.ifname) or {}
        if hs.is_arp_interface(lnk):
            return [mk("HC010", "fail", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}, which is DOWN",
                       needed=needed, fix=fix_cmd(snap, ["ip", "link", "set", a.ifname, "up"]))]
    # Suggest the interface on the VIP's subnet, else the one with the default route.
    dev = next((a.ifname for a in hs.addresses(snap) if a.ip.version == target.vip.version and target.vip in a.network
                and hs.is_arp_interface(hs.link(snap, a.ifname) or {})), None)
    if dev is None:
        dev = next((r.get("dev") for _, r in hs.routes(snap, target.vip.version) if r.get("dst") == "default"), None)
    where = ", ".join(f"{a.ifname}" for a in found)
    return [mk("HC010", "fail", "VIP",
               found=f"VIP {target.vip} only on {where} (clients cannot reach it there)" if found
               else f"VIP {target.vip} is not configured",
               needed=needed,
               fix=fix_cmd(snap, ["ip", "addr", "add", f"{target.vip}/{full_prefix(target.vip)}", "dev", dev or "IFACE"]),
               reason="" if dev else "replace IFACE with the interface on the client segment")]


def _service_for(services: list[hs.VirtualService], target: Target) -> list[hs.VirtualService]:
    return [s for s in services if s.proto == "TCP" and s.ip == str(target.vip)
            and (target.port is None or s.port == target.port)]


def check_director_service(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    services = hs.ipvs_services(snap)
    subject = f"TCP {target.vip_port}"
    needed = f"an IPVS virtual service TCP {target.vip_port}"
    nft_rules = hs.nft_dr_forwards(snap.get("nft") or "", str(target.vip))
    if target.port is not None:
        nft_rules = [r for r in nft_rules if f"dport {target.port}" in r]
    if services is None:
        if nft_rules:
            return [mk("HC011", "pass", subject, found=f"nft netdev DR forwarding: {nft_rules[0]}", needed=needed)]
        reason = missing(snap, "ipvsadm_sn")
        return [mk("HC011", "not-checked", subject,
                   reason=f"{reason}; and no nft netdev rule forwards {target.vip_port}")]
    found = _service_for(services, target)
    if found:
        s = found[0]
        return [mk("HC011", "pass", subject, found=f"{s.label} {s.scheduler} with {len(s.reals)} real server(s)",
                   needed=needed)]
    if nft_rules:
        return [mk("HC011", "pass", subject, found=f"nft netdev DR forwarding: {nft_rules[0]}", needed=needed)]
    existing = ", ".join(s.label for s in services) or "none"
    vip = f"[{target.vip}]" if target.vip.version == 6 else str(target.vip)
    service = target.vip_port if target.port is not None else f"{vip}:PORT"
    return [mk("HC011", "fail", subject, found=f"no IPVS service for {target.vip_port} (services: {existing})",
               needed=needed, fix=fix_cmd(snap, ["ipvsadm", "-A", "-t", service, "-s", "rr"]))]


def check_director_route_mode(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    services = hs.ipvs_services(snap)
    found = _service_for(services, target) if services is not None else []
    if not found:
        nft_rules = hs.nft_dr_forwards(snap.get("nft") or "", str(target.vip))
        if nft_rules:
            rule = nft_rules[0]
            natted = any(w in rule for w in ("ip daddr set", "dnat", "snat", "masquerade"))
            if "ether daddr set" in rule and not natted:
                return [mk("HC012", "pass", f"TCP {target.vip_port}", found="nft rule rewrites only MACs and "
                           "forwards (direct routing)", needed="MAC rewrite only")]
            return [mk("HC012", "fail", f"TCP {target.vip_port}", found=f"nft rule: {rule}",
                       needed="MAC rewrite only (ether daddr set ... fwd to), no address translation",
                       fix="rewrite the rule to change only the destination MAC")]
        why = "no IPVS service for the VIP (see HC011)" if services is not None else missing(snap, "ipvsadm_sn")
        return [mk("HC012", "not-checked", f"TCP {target.vip_port}", reason=why)]
    results = []
    for s in found:
        if not s.reals:
            results.append(mk("HC012", "fail", s.label, found="the service has no real servers",
                              needed="real servers in Route (-g) mode",
                              fix=fix_cmd(snap, ["ipvsadm", "-a", "-t", target.vip_port, "-r", "RIP", "-g"]),
                              reason="replace RIP with each real server's address"))
        for r in s.reals:
            rip = f"[{r.ip}]" if ":" in r.ip else r.ip
            rport = f"{rip}:{r.port}" if r.port is not None else rip
            svc = f"[{s.ip}]:{s.port}" if ":" in s.ip else f"{s.ip}:{s.port}"
            if r.method == "Route":
                results.append(mk("HC012", "pass", f"{s.label} -> {rport}", found="Route", needed="Route (-g)"))
            else:
                results.append(mk("HC012", "fail", f"{s.label} -> {rport}", found=r.method, needed="Route (-g)",
                                  fix=fix_cmd(snap, ["ipvsadm", "-e", "-t", svc, "-r", rport, "-g"])))
    return results


def check_director_rs_on_segment(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    services = hs.ipvs_services(snap)
    found = _service_for(services, target) if services is not None else []
    if not found:
        if hs.nft_dr_forwards(snap.get("nft") or "", str(target.vip)):
            return [mk("HC013", "not-checked", f"TCP {target.vip_port}",
                       reason="the nft forwarding rule names real servers by MAC, not RIP")]
        why = "no IPVS service for the VIP (see HC011)" if services is not None else missing(snap, "ipvsadm_sn")
        return [mk("HC013", "not-checked", f"TCP {target.vip_port}", reason=why)]
    results = []
    needed = "RIP on a directly connected segment, resolving by ARP"
    for s in found:
        for r in s.reals:
            try:
                rip = ipaddress.ip_address(r.ip)
            except ValueError:
                results.append(mk("HC013", "not-checked", r.ip, reason="not an IP address"))
                continue
            onlink = [a for a in hs.addresses(snap) if a.ip.version == rip.version and rip in a.network
                      and not hs.is_loopback(hs.link(snap, a.ifname) or {}) and a.prefixlen < full_prefix(rip)]
            if not onlink:
                route = hs.lookup_route(snap, ipaddress.ip_network(f"{rip}/{full_prefix(rip)}"))
                how = f"reached via {hs.route_text(route)}" if route else "no route"
                results.append(mk("HC013", "fail", r.ip, found=f"{r.ip} is not on a connected segment ({how})",
                                  needed=needed,
                                  fix="attach the director to the real server's segment "
                                      f"({fix_cmd(snap, ['ip', 'addr', 'add', 'ADDR/PREFIX', 'dev', 'IFACE'])})",
                                  reason="DR rewrites only the MAC: the real server must be one L2 hop away"))
                continue
            state = hs.neigh_state(snap, r.ip)
            dev = onlink[0].ifname
            if state and any(s_ in ("FAILED", "INCOMPLETE") for s_ in state):
                results.append(mk("HC013", "fail", r.ip, found=f"{r.ip} on {dev}, ARP state {'/'.join(state)}",
                                  needed=needed, fix=f"bring the real server {r.ip} up on {dev}'s segment "
                                  f"(check: {fix_cmd(snap, ['ip', 'neigh', 'show', r.ip])})"))
            else:
                st = "/".join(state) if state else "not yet resolved"
                results.append(mk("HC013", "pass", r.ip, found=f"{r.ip} on {dev}'s segment (ARP: {st})", needed=needed))
    return results


def check_director_firewall(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    nft, ipt = snap.get("nft"), snap.get("iptables_save")
    if nft is None and ipt is None:
        return [mk("HC014", "not-checked", "firewall",
                   reason=f"{missing(snap, 'nft')}; {missing(snap, 'iptables_save')}")]
    needed = "no rule dropping ct state invalid before IPVS (input/prerouting/forward)"
    rules = (hs.nft_invalid_drops(nft) if nft else []) + (hs.iptables_invalid_drops(ipt) if ipt else [])
    if not rules:
        read = " and ".join(n for n, v in (("nft ruleset", nft), ("iptables-save", ipt)) if v is not None)
        return [mk("HC014", "pass", "firewall", found=f"no invalid-state drop in the {read}", needed=needed)]
    results = []
    for r in rules:
        if r.tool == "nft":
            fix = fix_cmd(snap, ["nft", "delete", "rule", r.family, r.table, r.chain, "handle", str(r.handle)]) \
                if r.handle is not None else f"delete the rule '{r.rule}' from {r.family} {r.table} {r.chain}"
            subject = f"nft {r.family} {r.table} {r.chain}"
        else:
            spec = r.rule.split()
            fix = fix_cmd(snap, ["iptables", "-t", r.table, "-D", *spec[1:]])
            subject = f"iptables {r.table} {r.chain}"
        results.append(mk("HC014", "fail", subject, found=r.rule, needed=needed, fix=fix,
                          reason="the director sees only the client half of each connection: "
                                 "conntrack calls the client's ACK invalid and the rule drops it"))
    return results


DIRECTOR_CHECKS = (check_director_vip, check_director_service, check_director_route_mode,
                   check_director_rs_on_segment, check_director_firewall)
