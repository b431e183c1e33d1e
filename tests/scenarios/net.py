"""The deployment's hosts and addresses, derived from a Scenario (like the lab: the VIP segment
x.7 with the clients, the director's VIP side and the real servers' own VIP-side address; the
real-server segment x.88 with the director's DIP and the RIPs; one LAN x.7 in shared shape)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .model import SHARED, Scenario

SERVICE_PORTS = (80, 443, 8000, 8080, 8443)


def address(family: int, net: int, host: int) -> str:
    return f"192.168.{net}.{host}" if family == 4 else f"fd00:{net}::{host:x}"


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class Host:
    mac_e: str        # on the VIP segment (in shared shape: its only MAC)
    mac_lvs: str      # on the real-server segment
    ip_e: str         # its own address on the VIP segment (clients: their address)
    ip_lvs: str       # director: DIP; real server: RIP


class Net:
    def __init__(self, sc: Scenario):
        shared = sc.shape == SHARED
        f = sc.family
        self.shared = shared
        self.family = f
        self.vips = [address(f, 7, 33 + i) for i in range(sc.vips)]
        ports = list(SERVICE_PORTS)
        random.Random(sc.seed ^ 0x5EED).shuffle(ports)
        self.services = [(vip, port) for vip in self.vips for port in sorted(ports[:sc.ports_per_vip])]
        rs_net = 7 if shared else 88
        dir_e = "02:d0:00:07:00:21"
        self.director = Host(dir_e, dir_e if shared else "02:d0:00:88:00:0a", "",
                             address(f, rs_net, 10))
        self.rs = []
        for k in range(sc.real_servers):
            mac_e = f"02:a0:00:07:00:{k + 1:02x}"
            rip = address(f, rs_net, 20 + k)
            self.rs.append(Host(mac_e, mac_e if shared else f"02:a0:00:88:00:{k + 1:02x}",
                                rip if shared else address(f, 7, 99 + k), rip))
        self.clients = [Host(f"02:c0:00:07:00:{i + 2:02x}", "", address(f, 7, 2 + i), "")
                        for i in range(sc.clients)]
        self.bg = [Host(f"02:bb:00:07:00:{i + 1:02x}", "", address(f, 7, 60 + i), "")
                   for i in range(2)]

    @staticmethod
    def stale_mac(k: int) -> str:
        return f"02:de:ad:00:00:{k + 1:02x}"

    def point(self, segment: str) -> str:
        return "lan" if self.shared else {"e": "br_e", "lvs": "br_lvs"}[segment]

    @property
    def roles(self) -> dict[str, str]:
        return {"lan": "both"} if self.shared else {"br_e": "vip-segment", "br_lvs": "rs-segment"}
