"""The host checks: pure functions of a snapshot (and what DR expects) -> HostCheck results.

Every check that cannot read what it needs says "not-checked" with the reason; none passes on
missing data. Fix commands run where the snapshot was taken (`ip netns exec NS ...` for a
namespace).
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.catalogue import BY_ID
from dr_inspect.doctor.result import HostCheck
from dr_inspect.errors import InputError

ROLES = ("director", "realserver")


@dataclass(frozen=True)
class Target:
    """What the host should serve, and what is known about its neighbours."""
    vip: hs.IPAddress
    port: int | None = None
    clients: tuple[hs.IPNetwork, ...] = ()        # client addresses/networks (hints)
    director_ips: tuple[str, ...] = ()            # the director's addresses (its DIP above all)
    director_macs: tuple[str, ...] = ()           # from a verify topology

    @property
    def vip_port(self) -> str:
        host = f"[{self.vip}]" if self.vip.version == 6 else str(self.vip)
        return f"{host}:{self.port}" if self.port is not None else str(self.vip)


def parse_vip(text: str) -> tuple[hs.IPAddress, int | None]:
    """'192.168.7.33', '192.168.7.33:8000', '2001:db8::1', '[2001:db8::1]:80' -> (ip, port)."""
    raw = text.strip()
    host, port = raw, None
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise InputError(f"--vip {text!r}: expected IP, IP:PORT or [IPv6]:PORT")
            port = int(rest[1:])
    elif raw.count(":") == 1:
        host, _, p = raw.partition(":")
        if not p.isdigit():
            raise InputError(f"--vip {text!r}: port {p!r} is not a number")
        port = int(p)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"--vip {text!r}: {host!r} is not an IP address") from None
    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"--vip {text!r}: port {port} is not in 1..65535")
    return ip, port


def parse_networks(values: list[str] | tuple[str, ...], what: str) -> tuple[hs.IPNetwork, ...]:
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v, strict=False))
        except ValueError:
            raise InputError(f"{what} {v!r}: not an IP address or network") from None
    return tuple(out)


# -- helpers ----------------------------------------------------------------------------------

def _cmd(snap: dict[str, Any], *argvs: list[str]) -> str:
    """Fix command line(s), prefixed with `ip netns exec NS` when the snapshot is of a namespace."""
    ns = snap.get("netns")
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return "; ".join(shlex.join(prefix + argv) for argv in argvs)


class _Maker:
    def __init__(self, snap: dict[str, Any], role: str):
        self.snap, self.role = snap, role
        self.host = str(snap.get("host") or "unknown")

    def __call__(self, check_id: str, status: str, subject: str = "", found: str = "",
                 needed: str = "", fix: str = "", reason: str = "") -> HostCheck:
        return HostCheck(check_id, BY_ID[check_id].name, self.host, self.role, status,  # type: ignore[arg-type]
                         subject, found, needed, fix, reason)


def _missing(snap: dict[str, Any], item: str) -> str:
    err = (snap.get("errors") or {}).get(item)
    return f"{item} unreadable: {err}" if err else f"{item} missing from the snapshot"


def _vip_addresses(snap: dict[str, Any], vip: hs.IPAddress) -> list[hs.Address]:
    return [a for a in hs.addresses(snap) if a.ip == vip]


def _arp_interfaces(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [l for l in hs.links(snap) if hs.is_arp_interface(l) and hs.is_up(l)]


def _full_prefix(vip: hs.IPAddress) -> int:
    return 32 if vip.version == 4 else 128


def _director_ip_set(target: Target) -> set[str]:
    return {str(ipaddress.ip_address(ip)) for ip in target.director_ips}


def _is_director_gateway(snap: dict[str, Any], target: Target, gateway: str) -> bool:
    if gateway in _director_ip_set(target):
        return True
    mac = hs.neigh_mac(snap, gateway)
    return mac is not None and mac in {m.lower() for m in target.director_macs}


def _director_known(target: Target) -> bool:
    return bool(target.director_ips or target.director_macs)


# -- real server --------------------------------------------------------------------------------

def check_rs_vip(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    if snap.get("addr") is None:
        return [mk("HC001", "not-checked", "VIP", reason=_missing(snap, "addr"))]
    full = _full_prefix(target.vip)
    needed = f"{target.vip}/{full} on lo (or a NOARP dummy interface)"
    found = _vip_addresses(snap, target.vip)
    if not found:
        return [mk("HC001", "fail", "VIP", found=f"VIP {target.vip} is not configured", needed=needed,
                   fix=_cmd(snap, ["ip", "addr", "add", f"{target.vip}/{full}", "dev", "lo"]),
                   reason="the real server drops forwarded packets for an address it does not own")]
    results = []
    for a in found:
        lnk = hs.link(snap, a.ifname) or {}
        quiet = hs.is_loopback(lnk) or "NOARP" in lnk.get("flags", [])
        if quiet and a.prefixlen == full:
            results.append(mk("HC001", "pass", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}",
                              needed=needed))
            continue
        fix = _cmd(snap, ["ip", "addr", "del", f"{a.ip}/{a.prefixlen}", "dev", a.ifname],
                   ["ip", "addr", "add", f"{a.ip}/{full}", "dev", "lo"])
        why = (f"the whole {a.network} becomes local: replies to clients in it never leave"
               if quiet else f"{a.ifname} answers ARP/ND for the VIP and competes with the director")
        results.append(mk("HC001", "fail", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}",
                          needed=needed, fix=fix, reason=why))
    return results


def _arp_sysctl_check(check_id: str, key: str, ok: Callable[[int], bool], needed: str, fix_value: int,
                      snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    if target.vip.version == 6:
        return [mk(check_id, "not-checked", "VIP", reason="IPv6 VIP: ARP sysctls do not apply "
                   "(neighbour discovery has no arp_ignore/arp_announce)")]
    if snap.get("addr") is None:
        return [mk(check_id, "not-checked", reason=_missing(snap, "addr"))]
    if "all" not in hs.conf(snap):
        return [mk(check_id, "not-checked", reason=_missing(snap, "sysctl"))]
    ifaces = _arp_interfaces(snap)
    if not ifaces:
        return [mk(check_id, "not-checked", reason="no UP interface that answers ARP")]
    results = []
    for lnk in ifaces:
        eff = hs.effective(snap, lnk["ifname"], key)
        if eff.value is None:
            results.append(mk(check_id, "not-checked", lnk["ifname"],
                              reason=_missing(snap, f"sysctl {hs.sysctl_name(lnk['ifname'], key)}")))
        elif ok(eff.value):
            results.append(mk(check_id, "pass", lnk["ifname"], found=eff.describe(), needed=needed))
        else:
            fix = _cmd(snap, ["sysctl", "-w", f"{hs.sysctl_name(lnk['ifname'], key)}={fix_value}"])
            results.append(mk(check_id, "fail", lnk["ifname"], found=eff.describe(), needed=needed, fix=fix))
    return results


def check_rs_arp_ignore(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    return _arp_sysctl_check("HC002", "arp_ignore", lambda v: v >= 1, "arp_ignore >= 1", 1, snap, target, mk)


def check_rs_arp_announce(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
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
        if hs.is_loopback(lnk) and a.ip.version == net.version and a.prefixlen < _full_prefix(a.ip) \
                and net.subnet_of(a.network):  # type: ignore[arg-type]
            return a
    return None


def _route_text(route: dict[str, Any]) -> str:
    parts = [str(route.get("dst"))]
    if route.get("gateway"):
        parts.append(f"via {route['gateway']}")
    if route.get("dev"):
        parts.append(f"dev {route['dev']}")
    return " ".join(parts)


def check_rs_reply_route(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    item = "route4" if target.vip.version == 4 else "route6"
    if snap.get(item) is None:
        return [mk("HC005", "not-checked", reason=_missing(snap, item))]
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
                              fix=_cmd(snap, ["ip", "addr", "del", f"{local.ip}/{local.prefixlen}", "dev", local.ifname],
                                       ["ip", "addr", "add", f"{local.ip}/{_full_prefix(local.ip)}", "dev", local.ifname])))
            continue
        route = hs.lookup_route(snap, net)
        # A host route to the VIP itself is no route to a client (HC001 judges where the VIP is).
        vip_net = ipaddress.ip_network(f"{target.vip}/{_full_prefix(target.vip)}")
        relevant = ([route] if route else []) + [
            r for r in hs.more_specific_routes(snap, net)
            if hs.route_network(r, net.version) != vip_net]
        if route is None and not relevant:
            results.append(mk("HC005", "fail", subject, found=f"no route to {net}", needed=needed,
                              fix=_cmd(snap, ["ip", "route", "add", str(net), "via", "GATEWAY"]),
                              reason="replace GATEWAY with the router toward the clients (not the director)"))
            continue
        via_director = [r for r in relevant if r.get("gateway") and _is_director_gateway(snap, target, r["gateway"])]
        gated = [r for r in relevant if r.get("gateway")]
        if via_director:
            r = via_director[0]
            results.append(mk("HC005", "fail", subject, needed=needed,
                              found=f"route {_route_text(r)}: replies go back through the director {r['gateway']}",
                              fix=_cmd(snap, ["ip", "route", "del", str(r["dst"]), "via", str(r["gateway"])]),
                              reason="then route the clients through their own gateway or segment"))
        elif gated and not _director_known(target):
            results.append(mk("HC005", "not-checked", subject,
                              found="; ".join(_route_text(r) for r in gated),
                              reason="director address unknown: give --director-ip (or doctor a capture "
                                     "set with the director's snapshot) to tell whether this gateway is it"))
        else:
            results.append(mk("HC005", "pass", subject, found="; ".join(_route_text(r) for r in relevant),
                              needed=needed))
    return results


def check_rs_rp_filter(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    if target.vip.version == 6:
        return [mk("HC004", "not-checked", reason="IPv6 VIP: rp_filter is IPv4 only")]
    if snap.get("addr") is None or "all" not in hs.conf(snap):
        return [mk("HC004", "not-checked", reason=_missing(snap, "addr" if snap.get("addr") is None else "sysctl"))]
    ifaces = [l for l in _arp_interfaces(snap)
              if any(a.ifname == l["ifname"] and a.ip.version == 4 for a in hs.addresses(snap))]
    # Forwarded packets arrive where the director is; without knowing it, every interface could.
    director = _director_ip_set(target)
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
            results.append(mk("HC004", "not-checked", name, reason=_missing(snap, f"sysctl {hs.sysctl_name(name, 'rp_filter')}")))
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
                          fix=_cmd(snap, *argvs),
                          reason=f"packets forwarded to the VIP arrive on {name} from clients routed elsewhere: "
                                 "strict reverse-path filtering drops them"))
    return results


def check_rs_listener(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    if target.port is None:
        return [mk("HC006", "not-checked", "VIP", reason="no port given: use --vip IP:PORT")]
    listeners = snap.get("listeners")
    if listeners is None:
        return [mk("HC006", "not-checked", target.vip_port, reason=_missing(snap, "listeners"))]
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


# -- director -----------------------------------------------------------------------------------

def check_director_vip(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    if snap.get("addr") is None:
        return [mk("HC010", "not-checked", "VIP", reason=_missing(snap, "addr"))]
    needed = f"{target.vip} on an UP interface that answers ARP (the one clients reach)"
    found = _vip_addresses(snap, target.vip)
    for a in found:
        lnk = hs.link(snap, a.ifname) or {}
        if hs.is_arp_interface(lnk) and hs.is_up(lnk):
            return [mk("HC010", "pass", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname} (UP)", needed=needed)]
    if found:
        a = found[0]
        lnk = hs.link(snap, a.ifname) or {}
        if hs.is_arp_interface(lnk):
            return [mk("HC010", "fail", a.ifname, found=f"{a.ip}/{a.prefixlen} on {a.ifname}, which is DOWN",
                       needed=needed, fix=_cmd(snap, ["ip", "link", "set", a.ifname, "up"]))]
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
               fix=_cmd(snap, ["ip", "addr", "add", f"{target.vip}/{_full_prefix(target.vip)}", "dev", dev or "IFACE"]),
               reason="" if dev else "replace IFACE with the interface on the client segment")]


def _service_for(services: list[hs.VirtualService], target: Target) -> list[hs.VirtualService]:
    return [s for s in services if s.proto == "TCP" and s.ip == str(target.vip)
            and (target.port is None or s.port == target.port)]


def check_director_service(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    services = hs.ipvs_services(snap)
    subject = f"TCP {target.vip_port}"
    needed = f"an IPVS virtual service TCP {target.vip_port}"
    nft_rules = hs.nft_dr_forwards(snap.get("nft") or "", str(target.vip))
    if target.port is not None:
        nft_rules = [r for r in nft_rules if f"dport {target.port}" in r]
    if services is None:
        if nft_rules:
            return [mk("HC011", "pass", subject, found=f"nft netdev DR forwarding: {nft_rules[0]}", needed=needed)]
        reason = _missing(snap, "ipvsadm_sn")
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
    port = target.port if target.port is not None else "PORT"
    return [mk("HC011", "fail", subject, found=f"no IPVS service for {target.vip_port} (services: {existing})",
               needed=needed, fix=_cmd(snap, ["ipvsadm", "-A", "-t", f"{target.vip_port if target.port else f'{target.vip}:{port}'}", "-s", "rr"]))]


def check_director_route_mode(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
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
        why = "no IPVS service for the VIP (see HC011)" if services is not None else _missing(snap, "ipvsadm_sn")
        return [mk("HC012", "not-checked", f"TCP {target.vip_port}", reason=why)]
    results = []
    for s in found:
        if not s.reals:
            results.append(mk("HC012", "fail", s.label, found="the service has no real servers",
                              needed="real servers in Route (-g) mode",
                              fix=_cmd(snap, ["ipvsadm", "-a", "-t", target.vip_port, "-r", "RIP", "-g"]),
                              reason="replace RIP with each real server's address"))
        for r in s.reals:
            rip = f"[{r.ip}]" if ":" in r.ip else r.ip
            rport = f"{rip}:{r.port}" if r.port is not None else rip
            svc = f"[{s.ip}]:{s.port}" if ":" in s.ip else f"{s.ip}:{s.port}"
            if r.method == "Route":
                results.append(mk("HC012", "pass", f"{s.label} -> {rport}", found="Route", needed="Route (-g)"))
            else:
                results.append(mk("HC012", "fail", f"{s.label} -> {rport}", found=r.method, needed="Route (-g)",
                                  fix=_cmd(snap, ["ipvsadm", "-e", "-t", svc, "-r", rport, "-g"])))
    return results


def check_director_rs_on_segment(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    services = hs.ipvs_services(snap)
    found = _service_for(services, target) if services is not None else []
    if not found:
        if hs.nft_dr_forwards(snap.get("nft") or "", str(target.vip)):
            return [mk("HC013", "not-checked", f"TCP {target.vip_port}",
                       reason="the nft forwarding rule names real servers by MAC, not RIP")]
        why = "no IPVS service for the VIP (see HC011)" if services is not None else _missing(snap, "ipvsadm_sn")
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
                      and not hs.is_loopback(hs.link(snap, a.ifname) or {}) and a.prefixlen < _full_prefix(rip)]
            if not onlink:
                route = hs.lookup_route(snap, ipaddress.ip_network(f"{rip}/{_full_prefix(rip)}"))
                how = f"reached via {_route_text(route)}" if route else "no route"
                results.append(mk("HC013", "fail", r.ip, found=f"{r.ip} is not on a connected segment ({how})",
                                  needed=needed,
                                  fix="attach the director to the real server's segment "
                                      f"({_cmd(snap, ['ip', 'addr', 'add', 'ADDR/PREFIX', 'dev', 'IFACE'])})",
                                  reason="DR rewrites only the MAC: the real server must be one L2 hop away"))
                continue
            state = hs.neigh_state(snap, r.ip)
            dev = onlink[0].ifname
            if state and any(s_ in ("FAILED", "INCOMPLETE") for s_ in state):
                results.append(mk("HC013", "fail", r.ip, found=f"{r.ip} on {dev}, ARP state {'/'.join(state)}",
                                  needed=needed, fix=f"bring the real server {r.ip} up on {dev}'s segment "
                                  f"(check: {_cmd(snap, ['ip', 'neigh', 'show', r.ip])})"))
            else:
                st = "/".join(state) if state else "not yet resolved"
                results.append(mk("HC013", "pass", r.ip, found=f"{r.ip} on {dev}'s segment (ARP: {st})", needed=needed))
    return results


def check_director_firewall(snap: dict[str, Any], target: Target, mk: _Maker) -> list[HostCheck]:
    nft, ipt = snap.get("nft"), snap.get("iptables_save")
    if nft is None and ipt is None:
        return [mk("HC014", "not-checked", "firewall",
                   reason=f"{_missing(snap, 'nft')}; {_missing(snap, 'iptables_save')}")]
    needed = "no rule dropping ct state invalid before IPVS (input/prerouting/forward)"
    rules = (hs.nft_invalid_drops(nft) if nft else []) + (hs.iptables_invalid_drops(ipt) if ipt else [])
    if not rules:
        read = " and ".join(n for n, v in (("nft ruleset", nft), ("iptables-save", ipt)) if v is not None)
        return [mk("HC014", "pass", "firewall", found=f"no invalid-state drop in the {read}", needed=needed)]
    results = []
    for r in rules:
        if r.tool == "nft":
            fix = _cmd(snap, ["nft", "delete", "rule", r.family, r.table, r.chain, "handle", str(r.handle)]) \
                if r.handle is not None else f"delete the rule '{r.rule}' from {r.family} {r.table} {r.chain}"
            subject = f"nft {r.family} {r.table} {r.chain}"
        else:
            spec = r.rule.split()
            fix = _cmd(snap, ["iptables", "-t", r.table, "-D", *spec[1:]])
            subject = f"iptables {r.table} {r.chain}"
        results.append(mk("HC014", "fail", subject, found=r.rule, needed=needed, fix=fix,
                          reason="the director sees only the client half of each connection: "
                                 "conntrack calls the client's ACK invalid and the rule drops it"))
    return results


RS_CHECKS = (check_rs_vip, check_rs_arp_ignore, check_rs_arp_announce, check_rs_rp_filter,
             check_rs_reply_route, check_rs_listener)
DIRECTOR_CHECKS = (check_director_vip, check_director_service, check_director_route_mode,
                   check_director_rs_on_segment, check_director_firewall)


def run_checks(snap: dict[str, Any], role: str, target: Target) -> list[HostCheck]:
    """Every check of `role` on one snapshot, in id order."""
    if role not in ROLES:
        raise InputError(f"role {role!r}: expected director or realserver")
    mk = _Maker(snap, role)
    checks = RS_CHECKS if role == "realserver" else DIRECTOR_CHECKS
    results = [r for check in checks for r in check(snap, target, mk)]
    return sorted(results, key=lambda r: r.id)


def guess_role(snap: dict[str, Any], vip: hs.IPAddress | None) -> str | None:
    """director: it has IPVS services (or an nft DR forwarding rule), or the VIP on an ARP
    interface; realserver: the VIP on lo / a NOARP interface. None when nothing tells."""
    services = hs.ipvs_services(snap) or []
    if vip is not None:
        if any(s.ip == str(vip) for s in services) or hs.nft_dr_forwards(snap.get("nft") or "", str(vip)):
            return "director"
        for a in _vip_addresses(snap, vip):
            lnk = hs.link(snap, a.ifname) or {}
            return "director" if hs.is_arp_interface(lnk) else "realserver"
    elif services:
        return "director"
    return None
