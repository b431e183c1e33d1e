"""IpvsVmSpec: what the director VM sets up before it reports ready (checked before boot)."""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha256

from dr_inspect.errors import LabError
from dr_inspect.lab import initramfs

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True, kw_only=True)
class IpvsVmSpec:
    """What the director VM sets up before it reports ready."""

    vip: str
    dip: str
    real_servers: Sequence[str] = field(default_factory=tuple)
    port: int = 80
    vip_prefix: int = 24
    dip_prefix: int = 24
    scheduler: str = "rr"
    vip_ifname: str = "eth0"
    dip_ifname: str = "eth1"
    vip_mac: str | None = None  # default: derived from the VIP, locally administered
    dip_mac: str | None = None
    extra_commands: Sequence[str] = field(default_factory=tuple)  # shell lines run after setup

    @property
    def vip_mac_resolved(self) -> str:
        return (self.vip_mac or _derived_mac("vip", self.vip)).lower()

    @property
    def dip_mac_resolved(self) -> str:
        return (self.dip_mac or _derived_mac("dip", self.dip)).lower()

    def validate(self) -> None:
        """Raise LabError naming the first bad field."""
        for name in ("vip", "dip"):
            _ipv4(getattr(self, name), name)
        if isinstance(self.real_servers, str):
            raise LabError("IpvsVmSpec.real_servers: expected a list of addresses, got a string")
        for rs in self.real_servers:
            _ipv4(rs, "real_servers")
        if len(set(self.real_servers)) != len(self.real_servers):
            raise LabError(f"IpvsVmSpec.real_servers: duplicate address in {list(self.real_servers)}")
        if self.vip == self.dip or self.dip in self.real_servers:
            raise LabError(f"IpvsVmSpec.dip: {self.dip} is also the VIP or a real server")
        for name in ("vip_prefix", "dip_prefix"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 32:
                raise LabError(f"IpvsVmSpec.{name}: {value!r} is not a prefix length 0..32")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise LabError(f"IpvsVmSpec.port: {self.port!r} is not a TCP port 1..65535")
        if self.scheduler not in initramfs.IPVS_SCHEDULERS:
            raise LabError(f"IpvsVmSpec.scheduler: {self.scheduler!r} is not one of "
                           f"{', '.join(initramfs.IPVS_SCHEDULERS)}")
        for name in ("vip_ifname", "dip_ifname"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _IFNAME.match(value) or value.startswith("dritmp"):
                raise LabError(f"IpvsVmSpec.{name}: {value!r} is not a valid interface name")
        if self.vip_ifname == self.dip_ifname:
            raise LabError("IpvsVmSpec: vip_ifname and dip_ifname are the same")
        for name in ("vip_mac", "dip_mac"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise LabError(f"IpvsVmSpec.{name}: {getattr(self, name)!r} is not a MAC address string")
        for name, mac in (("vip_mac", self.vip_mac_resolved), ("dip_mac", self.dip_mac_resolved)):
            if not _MAC.match(mac) or int(mac[:2], 16) & 1:
                raise LabError(f"IpvsVmSpec.{name}: {mac!r} is not a unicast MAC address")
        if self.vip_mac_resolved == self.dip_mac_resolved:
            raise LabError("IpvsVmSpec: vip_mac and dip_mac are the same")
        if isinstance(self.extra_commands, str):
            raise LabError("IpvsVmSpec.extra_commands: expected a list of shell lines, got a string")
        for line in self.extra_commands:
            if not isinstance(line, str) or "\0" in line:
                raise LabError(f"IpvsVmSpec.extra_commands: invalid line {line!r}")

    def config_sh(self) -> str:
        """The VM's /etc/dri/vm.conf (sourced by init)."""
        values = {
            "VIP": self.vip, "VIP_PREFIX": str(self.vip_prefix), "PORT": str(self.port),
            "DIP": self.dip, "DIP_PREFIX": str(self.dip_prefix), "SCHEDULER": self.scheduler,
            "REAL_SERVERS": " ".join(self.real_servers), "VIP_IF": self.vip_ifname,
            "DIP_IF": self.dip_ifname, "VIP_MAC": self.vip_mac_resolved, "DIP_MAC": self.dip_mac_resolved,
        }
        return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())

    def extra_sh(self) -> str:
        return "".join(f"{line}\n" for line in self.extra_commands)


def _ipv4(value: object, name: str) -> None:
    try:
        ipaddress.IPv4Address(value)  # type: ignore[arg-type]
    except (ipaddress.AddressValueError, ValueError, TypeError) as exc:
        raise LabError(f"IpvsVmSpec.{name}: {value!r} is not an IPv4 address") from exc


def _derived_mac(role: str, address: str) -> str:
    digest = sha256(f"{role}:{address}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def tap_names(tap_prefix: str) -> tuple[str, str]:
    """(VIP-side tap, RS-side tap) in the switch namespace."""
    taps = (f"{tap_prefix}-vm-vip", f"{tap_prefix}-vm-dip")
    for tap in taps:
        if not _IFNAME.match(tap):
            raise LabError(f"tap name {tap!r} (from tap_prefix {tap_prefix!r}) is not a valid interface name "
                           "(at most 15 characters)")
    return taps
