"""Real server checks HC001-HC007: pure functions snapshot, target -> HostCheck list."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.checkbase import (Maker, Target, arp_interfaces, director_ip_set, director_known,
                                         fix_cmd, full_prefix, is_director_gateway, missing, vip_addresses)
from dr_inspect.doctor.result import HostCheck


def check_rs_vip(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if snap.get("addr") is None:
        return [mk("HC001", "not-checked", "VIP", reason=missing(snap, "addr"))]
    full = full_prefix(target.vip)
    needed = f"{target.vip}/{full} on lo (or a NOARP dummy interface)"
    found = vip_addresses(snap, target.vip)
    if not found:
        return [mk("HC001", "fail", "VIP", found=f"VIP {target.vip} is not configured", needed=needed,
                   fix=fix_cmd(snap, ["ip", "addr", "add", f"{target.vip}/{full}", "dev", "lo"]),
                   reason="the real server drops forwarded packets for an address it does not own")]
    results = []
    for a in found:
        lnk = hs.link(snap, a.ifname) or {}
        quiet = hs.is_loopback(lnk) or "NOARP" in lnk.get("flags", [])
        if quiet and a.prefixlen == full and not hs.is_up(lnk):
            # The kernel installs the local route of an address only while its interface is up.
            results.append(mk("HC001", "fail", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}, which is DOWN",
                              needed=needed + ", UP", fix=fix_cmd(snap, ["ip", "link", "set", a.ifname, "up"]),
                              reason="an address on a down interface is not local: forwarded packets are dropped"))
            continue
        if quiet and a.prefixlen == full:
            results.append(mk("HC001", "pass", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}",
                              needed=needed))
            continue
        fix = fix_cmd(snap, ["ip", "addr", "del", f"{a.ip}/{a.prefixlen}", "dev", a.ifname],
                      ["ip", "addr", "add", f"{a.ip}/{full}", "dev", "lo"])
        why = (f"the whole {a.network} becomes local: replies to clients in it never leave"
               if quiet else f"{a.ifname} answers ARP/ND for the VIP and competes with the director")
        results.append(mk("HC001", "fail", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}",
                          needed=needed, fix=fix, reason=why))
    return results


def _arp_sysctl_check(check_id: str, key: str, ok: Callable[[int], bool], needed: str, fix_value: int,
                      snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if target.vip.version == 6:
        return [mk(check_id, "not-checked", "VIP", reason="IPv6 VIP: ARP sysctls do not apply "
                   "(neighbour discovery has no arp_ignore/arp_announce)")]
    if snap.get("addr") is None:
        return [mk(check_id, "not-checked", reason=missing(snap, "addr"))]
    if "all" not in hs.conf(snap):
        return [mk(check_id, "not-checked", reason=missing(snap, "sysctl"))]
    ifaces = arp_interfaces(snap)
    if not ifaces:
        return [mk(check_id, "not-checked", reason="no UP interface that answers ARP")]
    results = []
    for lnk in ifaces:
        eff = hs.effective(snap, lnk["ifname"], key)
        if eff.value is None:
            results.append(mk(check_id, "not-checked", lnk["ifname"],
                              reason=missing(snap, f"sysctl {hs.sysctl_name(lnk['ifname'], key)}")))
        elif ok(eff.value):
            results.append(mk(check_id, "pass", lnk["ifname"], found=eff.describe(), needed=needed))
        else:
            fix = fix_cmd(snap, ["sysctl", "-w", f"{hs.sysctl_name(lnk['ifname'], key)}={fix_value}"])
            results.append(mk(check_id, "fail", lnk["ifname"], found=eff.describe(), needed=needed, fix=fix))
    return results


def check_rs_arp_ignore(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    return _arp_sysctl_check("HC002", "arp_ignore", lambda v: v >= 1, "arp_ignore >= 1", 1, snap, target, mk)


def check_rs_arp_announce(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    return _arp_sysctl_check("HC003", "arp_announce", lambda v: v == 2, "arp_announce = 2", 2, snap, target, mk)


def _client_probes(snap: dict[str, Any], target: Target) -> list[tuple[hs.IPNetwork, str]]:
    """Where the clients are: the given hints; else the VIP's subnet on a non-loopback interface
    (clients on the VIP segment) and the default route (clients elsewhere)."""
    if target.clients:
        return [(n, "given") for n in target.clients if n.version == target.vip.version]
    probes: list[tuple[hs.IPNetwork, str]] = []
    for a in hs.addresses(snap):
        lnk = hs.link(snap, a.ifname) or {}
        if a.ip.version == target.vip.version and not hs.is_loopback(lnk) and a.ip != target.vip \
                and target.vip in a.network and a.network.prefixlen > 0:
            probes.append((a.network, f"the VIP's subnet on {a.ifname}"))
    if any(r.get("dst") == "default" for _, r in hs.routes(snap, target.vip.version)):
        probes.append((ipaddress.ip_network("0.0.0.0/0" if target.vip.version == 4 else "::/0"),
                       "the default route"))
    return probes


def _local_on_loopback(snap: dict[str, Any], net: hs.IPNetwork) -> hs.Address | None:
    """A non-host address on lo makes its whole prefix local (the kernel adds a local route)."""
    for a in hs.addresses(snap):
        lnk = hs.link(snap, a.ifname) or {}
        if hs.is_loopback(lnk) and a.ip.version == net.version and a.prefixlen < full_prefix(a.ip) \
                and net.subnet_of(a.network):  # type: ignore[arg-type]
            return a
    return None


def check_rs_reply_route(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    item = "route4" if target.vip.version == 4 else "route6"
    if snap.get(item) is None:
        return [mk("HC005", "not-checked", reason=missing(snap, item))]
    probes = _client_probes(snap, target)
    if not probes:
        return [mk("HC005", "not-checked", reason="clients unknown: no default route and no interface on the "
                   "VIP's subnet; give --client")]
    results = []
    needed = "a route to the clients that does not use the director as gateway"
    for net, _why in probes:
        subject = f"clients {net}"
        local = _local_on_loopback(snap, net)
        if local is not None:
            results.append(mk("HC005", "fail", subject, needed=needed,
                              found=f"{net} is local ({local.ip}/{local.prefixlen} on {local.ifname}): "
                                    "replies never leave the host",
                              fix=fix_cmd(snap, ["ip", "addr", "del", f"{local.ip}/{local.prefixlen}", "dev", local.ifname],
                                       ["ip", "addr", "add", f"{local.ip}/{full_prefix(local.ip)}", "dev", local.ifname])))
            continue
        route = hs.lookup_route(snap, net)
        # A host route to the VIP itself is no route to a client (HC001 judges where the VIP is).
        vip_net = ipaddress.ip_network(f"{target.vip}/{full_prefix(target.vip)}")
        relevant = ([route] if route else []) + [
            r for r in hs.more_specific_routes(snap, net)
            if hs.route_network(r, net.version) != vip_net]
        if route is None and not relevant:
            results.append(mk("HC005", "fail", subject, found=f"no route to {net}", needed=needed,
                              fix=fix_cmd(snap, ["ip", "route", "add", str(net), "via", "GATEWAY"]),
                              reason="replace GATEWAY with the router toward the clients (not the director)"))
            continue
        via_director = [r for r in relevant if r.get("gateway") and is_director_gateway(snap, target, r["gateway"])]
        gated = [r for r in relevant if r.get("gateway")]
        if via_director:
            r = via_director[0]
            results.append(mk("HC005", "fail", subject, needed=needed,
                              found=f"route {hs.route_text(r)}: replies go back through the director {r['gateway']}",
                              fix=fix_cmd(snap, ["ip", "route", "del", str(r["dst"]), "via", str(r["gateway"])]),
                              reason="then route the clients through their own gateway or segment"))
        elif gated and not director_known(target):
            results.append(mk("HC005", "not-checked", subject,
                              found="; ".join(hs.route_text(r) for r in gated),
                              reason="director address unknown: give --director-ip (or doctor a capture "
                                     "set with the director's snapshot) to tell whether this gateway is it"))
        else:
            results.append(mk("HC005", "pass", subject, found="; ".join(hs.route_text(r) for r in relevant),
                              needed=needed))
    return results


def check_rs_rp_filter(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if target.vip.version == 6:
        return [mk("HC004", "not-checked", reason="IPv6 VIP: rp_filter is IPv4 only")]
    if snap.get("addr") is None or "all" not in hs.conf(snap):
        return [mk("HC004", "not-checked", reason=missing(snap, "addr" if snap.get("addr") is None else "sysctl"))]
    ifaces = [l for l in arp_interfaces(snap)
              if any(a.ifname == l["ifname"] and a.ip.version == 4 for a in hs.addresses(snap))]
    # Forwarded packets arrive where the director is; without knowing it, every interface could.
    director = director_ip_set(target)
    toward_director = [l for l in ifaces if any(
        a.ifname == l["ifname"] and any(ipaddress.ip_address(d) in a.network for d in director
                                       if ipaddress.ip_address(d).version == 4)
        for a in hs.addresses(snap))]
    receiving = toward_director or ifaces
    if not receiving:
        return [mk("HC004", "not-checked", reason="no UP IPv4 interface that answers ARP")]
    reply_devs = set()
    for net, _why in _client_probes(snap, target):
        route = hs.lookup_route(snap, net)
        for r in ([route] if route else []) + hs.more_specific_routes(snap, net):
            if r.get("dev"):
                reply_devs.add(r["dev"])
    needed = "rp_filter 0 or 2 (loose) where forwarded packets arrive, or replies leaving by that interface"
    results = []
    for lnk in receiving:
        name = lnk["ifname"]
        eff = hs.effective(snap, name, "rp_filter")
        if eff.value is None:
            results.append(mk("HC004", "not-checked", name, reason=missing(snap, f"sysctl {hs.sysctl_name(name, 'rp_filter')}")))
            continue
        if eff.value != 1:
            results.append(mk("HC004", "pass", name, found=eff.describe(), needed=needed))
            continue
        if not reply_devs:
            results.append(mk("HC004", "not-checked", name, found=eff.describe(),
                              reason="strict, and the route to the clients is unknown: give --client"))
            continue
        if reply_devs == {name}:
            results.append(mk("HC004", "pass", name, found=f"{eff.describe()}; replies to clients leave by {name}",
                              needed=needed))
            continue
        # max(all, iface): lowering only the interface does not help while all=1.
        argvs = [["sysctl", "-w", f"{hs.sysctl_name(name, 'rp_filter')}=2"]]
        if (eff.all_value or 0) == 1:
            argvs.insert(0, ["sysctl", "-w", "net.ipv4.conf.all.rp_filter=2"])
        results.append(mk("HC004", "fail", name, needed=needed,
                          found=f"{eff.describe()}; replies to clients leave by {', '.join(sorted(reply_devs))}",
                          fix=fix_cmd(snap, *argvs),
                          reason=f"packets forwarded to the VIP arrive on {name} from clients routed elsewhere: "
                                 "strict reverse-path filtering drops them"))
    return results


def check_rs_listener(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if target.port is None:
        return [mk("HC006", "not-checked", "VIP", reason="no port given: use --vip IP:PORT")]
    listeners = snap.get("listeners")
    if listeners is None:
        return [mk("HC006", "not-checked", target.vip_port, reason=missing(snap, "listeners"))]
    wild = {"0.0.0.0", "::"} if target.vip.version == 4 else {"::"}
    ok = [l for l in listeners if l.get("port") == target.port and (l.get("local") in wild or l.get("local") == str(target.vip))]
    needed = f"a TCP listener on {target.vip_port} (or {'0.0.0.0 / ::' if target.vip.version == 4 else '::'} port {target.port})"
    if ok:
        return [mk("HC006", "pass", target.vip_port, found=f"listening on {ok[0]['local']}:{ok[0]['port']}", needed=needed)]
    on_vip = sorted({f"{l['local']}:{l['port']}" for l in listeners if l.get("local") in wild | {str(target.vip)}})
    found = f"no listener on port {target.port}" + (f" (listening: {', '.join(on_vip[:6])})" if on_vip else "")
    return [mk("HC006", "fail", target.vip_port, found=found, needed=needed,
               fix=f"start the service bound to {target.vip_port} or 0.0.0.0:{target.port} "
                   "(IPVS DR cannot change the destination port)")]


def check_rs_forwarding(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    """A real server that does not hold the VIP and forwards IP packets routes each forwarded
    VIP packet on, back toward the director when its route says so: a forwarding loop."""
    sysctl = snap.get("sysctl") or {}
    key = "net.ipv6.conf.all.forwarding" if target.vip.version == 6 else "net.ipv4.ip_forward"
    if snap.get("addr") is None or key not in sysctl:
        return [mk("HC007", "not-checked", key,
                   reason=missing(snap, "addr" if snap.get("addr") is None else f"sysctl {key}"))]
    needed = f"{key}=0, or the VIP held locally (HC001)"
    found = f"{key}={sysctl[key]}"
    if not sysctl[key] or vip_addresses(snap, target.vip):
        return [mk("HC007", "pass", "", found=found + ("" if not sysctl[key] else
                                                       "; the VIP is local"), needed=needed)]
    return [mk("HC007", "fail", "", found=f"{found} without the VIP {target.vip}", needed=needed,
               fix=fix_cmd(snap, ["sysctl", "-w", f"{key}=0"]),
               reason="packets forwarded to this server for the VIP are routed on, back toward "
                      "the director: a forwarding loop until the TTL runs out")]


RS_CHECKS = (check_rs_vip, check_rs_arp_ignore, check_rs_arp_announce, check_rs_rp_filter,
             check_rs_reply_route, check_rs_listener, check_rs_forwarding)
