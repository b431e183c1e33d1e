"""What topology learning finds: LearnedTopology (VIPs, director MACs, real servers, point
roles, shape and what contradicts the pins) and its parts, and its report form (model.Topology)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dr_inspect.columnar.addresses import fmt_endpoint
from dr_inspect.model import RealServer, Topology


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
    silent_macs: set[str] = field(default_factory=set)    # VIP frames go to them; they never send
    unserved: dict[str, int] = field(default_factory=dict)   # 'ip:port' -> SYNs lost at the director
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


@dataclass(frozen=True)
class LearnedVips:
    """The VIPs learning starts from, and the conflicts resolving pinned ones found."""
    vips: list[tuple[str, int]]
    conflicts: list[str]
