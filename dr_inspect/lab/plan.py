"""The lab's configuration and its pure address plan: names, addresses and MACs of every host.

Nothing here touches the system; `build` turns a LabPlan into namespaces and links.
Defaults reproduce the seed exactly: client 192.168.7.2 on br_e; director eth7 with the VIP
192.168.7.33/24 on br_e and eth8 192.168.88.10/24 on br_lvs; real server eth14 192.168.7.99/24 on
br_e and eth12 192.168.88.20/24 on br_lvs with the VIP on lo/32. More real servers take the next
addresses (.100/.21 ...).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from dr_inspect.errors import LabError

DIRECTORS = ("ipvs", "nft")
BRIDGE_VIP = "br_e"        # the client / VIP segment
BRIDGE_RS = "br_lvs"       # the director / real-server segment
DIP_NETWORK = ipaddress.IPv4Network("192.168.88.0/24")
DIP_HOST = 10              # director eth8 = .10
RS_DIP_FIRST = 20          # real servers' eth12 = .20, .21 ...
RS_VIP_SEG_FIRST = 99      # real servers' eth14 = .99, .100 ... on the VIP segment
CLIENT_HOST = 2
MAX_REAL_SERVERS = 40
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,7}")


def check_prefix(prefix: str) -> str:
    """The lab prefix, or LabError. It names namespaces and files under the run directory, so
    nothing else may pass: '..' would make `lab down` remove the run directory's parent."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise LabError(f"prefix {prefix!r}: use 1-8 lowercase letters/digits starting with a letter")
    return prefix


@dataclass(frozen=True)
class LabConfig:
    prefix: str = "dri"
    director: str = "ipvs"
    real_servers: int = 1
    vip: str = "192.168.7.33"
    port: int = 8000
    faults: tuple[str, ...] = ()
    vip_prefix: int = 24           # mask of the VIP segment (the seed's /24)
    scheduler: str = "rr"

    @property
    def effective_scheduler(self) -> str:
        """What really picks the real server: IPVS's scheduler, or the nft director's flow hash
        (it has no round robin; DR011's balance check does not apply to it)."""
        return "flow-hash" if self.director == "nft" else self.scheduler

    def validate(self) -> None:
        check_prefix(self.prefix)
        if self.director not in DIRECTORS:
            raise LabError(f"director {self.director!r}: expected one of {', '.join(DIRECTORS)}")
        if not 1 <= self.real_servers <= MAX_REAL_SERVERS:
            raise LabError(f"real servers: {self.real_servers} is not in 1..{MAX_REAL_SERVERS}")
        if not 1 <= self.port <= 65535:
            raise LabError(f"port {self.port} is not in 1..65535")
        try:
            vip = ipaddress.IPv4Address(self.vip)
        except ValueError:
            raise LabError(f"VIP {self.vip!r} is not an IPv4 address") from None
        if not 8 <= self.vip_prefix <= 24:
            raise LabError(f"VIP segment prefix /{self.vip_prefix}: expected /8 ... /24")
        net = ipaddress.IPv4Network(f"{vip}/{self.vip_prefix}", strict=False)
        if vip in DIP_NETWORK or net.overlaps(DIP_NETWORK):
            raise LabError(f"VIP {vip}/{self.vip_prefix} overlaps the real-server segment {DIP_NETWORK}")
        taken = {_host(net, CLIENT_HOST)} | {_host(net, RS_VIP_SEG_FIRST + i) for i in range(self.real_servers)}
        if vip in taken:
            raise LabError(f"VIP {vip} collides with the client or a real server address in {net}")


def _host(net: ipaddress.IPv4Network, n: int) -> ipaddress.IPv4Address:
    return net.network_address + n


def mac_for(ip: str) -> str:
    """Deterministic, readable MAC of the interface holding `ip`: 02:00 + the four address bytes.

    Locally administered (02:), unique per interface because every lab interface has its own
    address, and the last byte is the host number people read in tcpdump output.
    """
    octets = ipaddress.IPv4Address(ip).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in octets)


@dataclass
class PlannedInterface:
    host: str            # client | director | rs1 ...
    ifname: str          # name inside the host (eth0, eth7 ...)
    ip: str
    prefix: int
    mac: str
    bridge: str          # br_e | br_lvs
    peer: str            # the switch-side veth name inside the switch namespace

    def as_dict(self) -> dict[str, Any]:
        return {"ip": self.ip, "prefix": self.prefix, "mac": self.mac, "bridge": self.bridge,
                "peer": self.peer}


@dataclass
class PlannedHost:
    name: str
    role: str            # client | director | real-server
    netns: str | None
    interfaces: list[PlannedInterface] = field(default_factory=list)

    def iface(self, ifname: str) -> PlannedInterface:
        for i in self.interfaces:
            if i.ifname == ifname:
                return i
        raise KeyError(ifname)


@dataclass
class LabPlan:
    config: LabConfig
    switch_netns: str
    hosts: list[PlannedHost]

    @property
    def client(self) -> PlannedHost:
        return self.hosts[0]

    @property
    def director(self) -> PlannedHost:
        return self.hosts[1]

    @property
    def real_servers(self) -> list[PlannedHost]:
        return self.hosts[2:]

    def host(self, name: str) -> PlannedHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in lab {self.config.prefix!r} "
                       f"(hosts: {', '.join(h.name for h in self.hosts)})")


def switch_netns(prefix: str) -> str:
    return f"{prefix}-sw"


def plan_lab(cfg: LabConfig, director_in_vm: bool = False) -> LabPlan:
    """Every host, interface, address and MAC of the lab described by `cfg`."""
    cfg.validate()
    net = ipaddress.IPv4Network(f"{cfg.vip}/{cfg.vip_prefix}", strict=False)
    p = cfg.prefix

    def iface(host: str, ifname: str, ip: str, prefix: int, bridge: str) -> PlannedInterface:
        return PlannedInterface(host, ifname, ip, prefix, mac_for(ip), bridge, f"{_short(host)}-{ifname}")

    client = PlannedHost("client", "client", f"{p}-client",
                         [iface("client", "eth0", str(_host(net, CLIENT_HOST)), cfg.vip_prefix, BRIDGE_VIP)])
    dip = str(DIP_NETWORK.network_address + DIP_HOST)
    director = PlannedHost("director", "director", None if director_in_vm else f"{p}-director",
                           [iface("director", "eth7", cfg.vip, cfg.vip_prefix, BRIDGE_VIP),
                            iface("director", "eth8", dip, DIP_NETWORK.prefixlen, BRIDGE_RS)])
    hosts = [client, director]
    for i in range(cfg.real_servers):
        name = f"rs{i + 1}"
        hosts.append(PlannedHost(name, "real-server", f"{p}-{name}", [
            iface(name, "eth14", str(_host(net, RS_VIP_SEG_FIRST + i)), cfg.vip_prefix, BRIDGE_VIP),
            iface(name, "eth12", str(DIP_NETWORK.network_address + RS_DIP_FIRST + i),
                  DIP_NETWORK.prefixlen, BRIDGE_RS),
        ]))
    return LabPlan(cfg, switch_netns(p), hosts)


def _short(host: str) -> str:
    return {"client": "c", "director": "d"}.get(host, host)
