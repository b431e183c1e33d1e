"""Pure readers over a snapshot dict: interfaces, addresses, effective sysctls, route lookup,
IPVS services and firewall rules. No I/O."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Address:
    ifname: str
    ip: IPAddress
    prefixlen: int

    @property
    def network(self) -> IPNetwork:
        return ipaddress.ip_network(f"{self.ip}/{self.prefixlen}", strict=False)


def links(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in (snap.get("addr") or []) if isinstance(link, dict) and "ifname" in link]


def link(snap: dict[str, Any], ifname: str) -> dict[str, Any] | None:
    return next((l for l in links(snap) if l["ifname"] == ifname), None)


def is_loopback(lnk: dict[str, Any]) -> bool:
    return "LOOPBACK" in lnk.get("flags", []) or lnk.get("link_type") == "loopback"


def is_arp_interface(lnk: dict[str, Any]) -> bool:
    """An interface that answers ARP: not loopback, not NOARP (dummy, tun), Ethernet-like."""
    return not is_loopback(lnk) and "NOARP" not in lnk.get("flags", []) \
        and lnk.get("link_type", "ether") == "ether"


def is_up(lnk: dict[str, Any]) -> bool:
    return "UP" in lnk.get("flags", [])


def addresses(snap: dict[str, Any]) -> list[Address]:
    out: list[Address] = []
    for lnk in links(snap):
        for info in lnk.get("addr_info", []):
            try:
                out.append(Address(lnk["ifname"], ipaddress.ip_address(info["local"]), int(info["prefixlen"])))
            except (KeyError, ValueError, TypeError):
                continue
    return out


def macs(snap: dict[str, Any]) -> dict[str, str]:
    """ifname -> MAC (lower case) of the ARP interfaces."""
    return {l["ifname"]: l["address"].lower() for l in links(snap)
            if is_arp_interface(l) and isinstance(l.get("address"), str)}


def conf(snap: dict[str, Any]) -> dict[str, dict[str, int]]:
    return (snap.get("sysctl") or {}).get("net.ipv4.conf") or {}


@dataclass(frozen=True)
class Effective:
    """A per-interface sysctl the kernel reads as max(all, iface)."""
    key: str
    ifname: str
    all_value: int | None
    if_value: int | None

    @property
    def value(self) -> int | None:
        vals = [v for v in (self.all_value, self.if_value) if v is not None]
        return max(vals) if vals else None

    @property
    def set_by(self) -> str:
        """Which setting decides: 'all', the interface name, or 'all and <if>' when equal."""
        if self.all_value is None or self.if_value is None:
            return "all" if self.if_value is None else self.ifname
        if self.all_value == self.if_value:
            return f"all and {self.ifname}"
        return "all" if self.all_value > self.if_value else self.ifname

    def describe(self) -> str:
        return (f"{self.key}={self.value} (set by {self.set_by}: all={self.all_value}, "
                f"{self.ifname}={self.if_value})")


def effective(snap: dict[str, Any], ifname: str, key: str) -> Effective:
    table = conf(snap)
    return Effective(key, ifname, table.get("all", {}).get(key), table.get(ifname, {}).get(key))


def sysctl_name(ifname: str, key: str) -> str:
    # sysctl(8) writes dots inside an interface name (VLANs: eth0.100) as slashes.
    return f"net.ipv4.conf.{ifname.replace('.', '/')}.{key}"


# -- routes -----------------------------------------------------------------------------------

def route_network(route: dict[str, Any], family: int) -> IPNetwork | None:
    dst = route.get("dst")
    if dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
    try:
        return ipaddress.ip_network(dst, strict=False)
    except (TypeError, ValueError):
        return None


def routes(snap: dict[str, Any], family: int) -> list[tuple[IPNetwork, dict[str, Any]]]:
    """Unicast routes of the main table as (network, route), in table order."""
    out = []
    for r in snap.get("route4" if family == 4 else "route6") or []:
        if r.get("type", "unicast") != "unicast":
            continue
        net = route_network(r, family)
        if net is not None:
            out.append((net, r))
    return out


def lookup_route(snap: dict[str, Any], target: IPNetwork) -> dict[str, Any] | None:
    """The main-table route the kernel uses for `target` (longest prefix containing it; on equal
    prefixes the lowest metric, then table order)."""
    best: tuple[int, int, int] | None = None
    chosen = None
    for i, (net, r) in enumerate(routes(snap, target.version)):
        if not target.subnet_of(net):  # type: ignore[arg-type]
            continue
        key = (-net.prefixlen, int(r.get("metric", 0) or 0), i)
        if best is None or key < best:
            best, chosen = key, r
    return chosen


def more_specific_routes(snap: dict[str, Any], target: IPNetwork) -> list[dict[str, Any]]:
    """Routes inside `target` that are more specific than it (e.g. a /32 to one client)."""
    return [r for net, r in routes(snap, target.version)
            if net != target and net.subnet_of(target)]  # type: ignore[arg-type]


def route_text(route: dict[str, Any]) -> str:
    parts = [str(route.get("dst"))]
    if route.get("gateway"):
        parts.append(f"via {route['gateway']}")
    if route.get("dev"):
        parts.append(f"dev {route['dev']}")
    return " ".join(parts)


def neigh_mac(snap: dict[str, Any], ip: str) -> str | None:
    for n in snap.get("neigh") or []:
        if n.get("dst") == ip and n.get("lladdr"):
            return str(n["lladdr"]).lower()
    return None


def neigh_state(snap: dict[str, Any], ip: str) -> list[str] | None:
    for n in snap.get("neigh") or []:
        if n.get("dst") == ip:
            return list(n.get("state", []))
    return None


# -- IPVS -------------------------------------------------------------------------------------

@dataclass
class RealServerEntry:
    ip: str
    port: int | None
    method: str          # Route | Masq | Tunnel | Local | ?
    weight: int | None = None


@dataclass
class VirtualService:
    proto: str           # TCP | UDP | SCTP | FWM
    ip: str
    port: int | None
    scheduler: str
    reals: list[RealServerEntry]

    @property
    def label(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.proto} {host}:{self.port}" if self.port is not None else f"{self.proto} {self.ip}"


_METHODS = {"-g": "Route", "-m": "Masq", "-i": "Tunnel"}
_PROTO_FLAGS = {"-t": "TCP", "-u": "UDP", "--sctp-service": "SCTP", "-f": "FWM"}


def split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host.count(":") == 0:
        return host, int(port)
    return text, None


def parse_ipvsadm_save(text: str) -> list[VirtualService]:
    """`ipvsadm -Sn` lines: '-A -t 1.2.3.4:80 -s rr' and '-a -t 1.2.3.4:80 -r 10.0.0.2:80 -g -w 1'."""
    services: dict[tuple[str, str], VirtualService] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] not in ("-A", "-a"):
            continue
        proto = _PROTO_FLAGS.get(words[1])
        if proto is None:
            continue
        key = (proto, words[2])
        if words[0] == "-A":
            sched = words[words.index("-s") + 1] if "-s" in words[:-1] else ""
            ip, port = split_hostport(words[2]) if proto != "FWM" else (words[2], None)
            services[key] = VirtualService(proto, ip, port, sched, [])
        elif key in services and "-r" in words[:-1]:
            rip, rport = split_hostport(words[words.index("-r") + 1])
            method = next((_METHODS[w] for w in words if w in _METHODS), "Route")
            weight = int(words[words.index("-w") + 1]) if "-w" in words[:-1] and words[words.index("-w") + 1].isdigit() else None
            services[key].reals.append(RealServerEntry(rip, rport, method, weight))
    return list(services.values())


def parse_ipvsadm_list(text: str) -> list[VirtualService]:
    """`ipvsadm -Ln` table: 'TCP  1.2.3.4:80 rr' then '  -> 10.0.0.2:80  Route 1 0 0'."""
    services: list[VirtualService] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("TCP", "UDP", "SCTP", "FWM") and len(words) >= 2:
            ip, port = split_hostport(words[1]) if words[0] != "FWM" else (words[1], None)
            services.append(VirtualService(words[0], ip, port, words[2] if len(words) > 2 else "", []))
        elif words[0] == "->" and len(words) >= 3 and services and words[1] != "RemoteAddress:Port":
            rip, rport = split_hostport(words[1])
            weight = int(words[3]) if len(words) > 3 and words[3].isdigit() else None
            services[-1].reals.append(RealServerEntry(rip, rport, words[2], weight))
    return services


def ipvs_services(snap: dict[str, Any]) -> list[VirtualService] | None:
    """The IPVS table, or None when it could not be read (no ipvsadm, no IPVS in the kernel)."""
    if isinstance(snap.get("ipvsadm_sn"), str):
        return parse_ipvsadm_save(snap["ipvsadm_sn"])
    if isinstance(snap.get("ipvsadm_ln"), str):
        return parse_ipvsadm_list(snap["ipvsadm_ln"])
    return None


# -- firewalls --------------------------------------------------------------------------------

@dataclass
class FirewallRule:
    tool: str            # nft | iptables
    family: str          # nft family / iptables table
    table: str
    chain: str
    rule: str
    handle: int | None = None


_NFT_TABLE = re.compile(r"^\s*table\s+(\S+)\s+(\S+)\s*\{")
_NFT_CHAIN = re.compile(r"^\s*chain\s+(\S+)\s*\{")
_NFT_HANDLE = re.compile(r"\s*#\s*handle\s+(\d+)\s*$")
_INVALID = re.compile(r"\bct\s+state\s+(?:\{[^}]*\binvalid\b[^}]*\}|invalid\b)")


def _nft_chain_lines(text: str) -> Iterator[tuple[str, str, str, str]]:
    """(family, table, chain, line) for each line inside a chain of an `nft list ruleset`."""
    family = table = chain = ""
    for line in text.splitlines():
        if m := _NFT_TABLE.match(line):
            family, table, chain = m.group(1), m.group(2), ""
        elif m := _NFT_CHAIN.match(line):
            chain = m.group(1)
        elif chain:
            yield family, table, chain, line


def nft_invalid_drops(text: str) -> list[FirewallRule]:
    """nft rules that drop (or reject) packets in conntrack state invalid."""
    found: list[FirewallRule] = []
    for family, table, chain, line in _nft_chain_lines(text):
        if not _INVALID.search(line):
            continue
        body = _NFT_HANDLE.sub("", line).strip()
        if re.search(r"\b(drop|reject)\b", body):
            hm = _NFT_HANDLE.search(line)
            found.append(FirewallRule("nft", family, table, chain, body, int(hm.group(1)) if hm else None))
    return found


def iptables_invalid_drops(text: str) -> list[FirewallRule]:
    """iptables-save rules that drop/reject --ctstate INVALID (or -m state --state INVALID)."""
    found: list[FirewallRule] = []
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        words = line.split()
        if len(words) < 2 or words[0] != "-A":
            continue
        states = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--ctstate", "--state")]
        target = words[words.index("-j") + 1] if "-j" in words[:-1] else ""
        if any("INVALID" in s.split(",") for s in states) and target in ("DROP", "REJECT"):
            found.append(FirewallRule("iptables", table, table, words[1], line.strip()))
    return found


def nft_dr_forwards(text: str, vip: str) -> list[str]:
    """nft netdev rules that forward frames for the VIP to another host (`fwd to` in a chain that
    matches the VIP): the nft way of doing DR without IPVS."""
    vip_re = re.compile(rf"(?<![\w.:]){re.escape(vip)}(?![\w.:])")
    chains: dict[tuple[str, str, str], tuple[bool, list[str]]] = {}
    for family, table, chain, line in _nft_chain_lines(text):
        if family != "netdev":
            continue
        body = _NFT_HANDLE.sub("", line).strip()
        mentions, fwds = chains.get((family, table, chain), (False, []))
        if "fwd to" in body:
            fwds = fwds + [f"{family} {table} {chain}: {body}"]
        chains[(family, table, chain)] = (mentions or bool(vip_re.search(body)), fwds)
    return [rule for mentions, fwds in chains.values() if mentions for rule in fwds]
