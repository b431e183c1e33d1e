"""What the host checks share: the target (VIP, port, hints), input parsing, result making,
fix-command formatting. Pure."""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from typing import Any

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.catalogue import BY_ID
from dr_inspect.doctor.result import HostCheck
from dr_inspect.errors import InputError

ROLES = ("director", "realserver", "client")


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


def fix_cmd(snap: dict[str, Any], *argvs: list[str]) -> str:
    """Fix command line(s), prefixed with `ip netns exec NS` when the snapshot is of a namespace."""
    ns = snap.get("netns")
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return "; ".join(shlex.join(prefix + argv) for argv in argvs)


class Maker:
    def __init__(self, snap: dict[str, Any], role: str):
        self.snap, self.role = snap, role
        self.host = str(snap.get("host") or "unknown")

    def __call__(self, check_id: str, status: str, subject: str = "", found: str = "",
                 needed: str = "", fix: str = "", reason: str = "") -> HostCheck:
        return HostCheck(check_id, BY_ID[check_id].name, self.host, self.role, status,  # type: ignore[arg-type]
                         subject, found, needed, fix, reason)


# snapshot keys as a person knows them (the command that produced them)
ITEM_NAMES = {"ipvsadm_sn": "the IPVS table (ipvsadm -Sn)", "ipvsadm_ln": "ipvsadm -Ln",
              "nft": "the nftables ruleset (nft list ruleset)", "iptables_save": "iptables-save",
              "sysctl": "the sysctl settings", "addr": "the addresses (ip addr)",
              "route4": "the IPv4 routes (ip -4 route)", "route6": "the IPv6 routes (ip -6 route)",
              "neigh": "the neighbour table (ip neigh)", "listeners": "the listening sockets (ss)"}


def missing(snap: dict[str, Any], item: str) -> str:
    err = (snap.get("errors") or {}).get(item)
    name = ITEM_NAMES.get(item, item)
    return f"{name} unreadable: {err}" if err else f"{name} missing from the snapshot"


def vip_addresses(snap: dict[str, Any], vip: hs.IPAddress) -> list[hs.Address]:
    return [a for a in hs.addresses(snap) if a.ip == vip]


def arp_interfaces(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [l for l in hs.links(snap) if hs.is_arp_interface(l) and hs.is_up(l)]


def full_prefix(vip: hs.IPAddress) -> int:
    return 32 if vip.version == 4 else 128


def director_ip_set(target: Target) -> set[str]:
    return {str(ipaddress.ip_address(ip)) for ip in target.director_ips}


def is_director_gateway(snap: dict[str, Any], target: Target, gateway: str) -> bool:
    if gateway in director_ip_set(target):
        return True
    mac = hs.neigh_mac(snap, gateway)
    return mac is not None and mac in {m.lower() for m in target.director_macs}


def director_known(target: Target) -> bool:
    return bool(target.director_ips or target.director_macs)
