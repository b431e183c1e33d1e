"""Pinned topology: `--vip` flags and topology.toml, validated strictly.

topology.toml (every key optional):

    vips = ["192.168.7.33:8000", "[fd00::33]:8000", "192.168.7.34"]   # bare IP: every port
    scheduler = "rr"
    shape = "two-segment"            # two-segment | shared-segment | single-point
    [director_macs]                  # segment (point role) -> MACs
    vip-segment = ["02:00:00:00:00:01"]
    rs-segment = ["02:00:00:00:01:01"]
    [roles]                          # point name -> role
    br_e = "vip-segment"
    [[real_servers]]
    name = "rs1"
    rip = "10.0.0.11"
    macs = { vip-segment = "02:00:00:00:00:11", rs-segment = "02:00:00:00:01:11" }
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.errors import TopologyError

ROLES = ("vip-segment", "rs-segment", "both", "unknown")
SHAPES = ("two-segment", "shared-segment", "single-point")
_TOP_KEYS = {"vips", "scheduler", "shape", "director_macs", "roles", "real_servers"}
_RS_KEYS = {"name", "rip", "macs"}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class TopologyPins:
    vips: list[tuple[str, int | None]] = field(default_factory=list)
    scheduler: str | None = None
    shape: str | None = None
    director_macs: dict[str, list[str]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    real_servers: list[dict[str, Any]] = field(default_factory=list)
    # names only (a capture set's manifest lists real servers as name + RIP): they name the
    # learned servers with that RIP and pin nothing else
    rs_names_by_rip: dict[str, str] = field(default_factory=dict)
    # what the capture set's host snapshots say: MAC -> the addresses on that interface (a real
    # server's RIP, and proof that a MAC the director forwards to is a live host)
    host_addresses: dict[str, list[str]] = field(default_factory=dict)
    # MAC -> the RIP of its host, for hosts whose RIP a director's IPVS table lists (every MAC
    # of such a host, on either segment)
    host_rips: dict[str, str] = field(default_factory=dict)
    # the virtual services (ip, port) a director's snapshot lists: VIPs when clients use them
    services: list[tuple[str, int]] = field(default_factory=list)
    source: str = "flags"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.vips:
            out["vips"] = [vip_text(ip, port) for ip, port in self.vips]
        for key in ("scheduler", "shape"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        for key in ("director_macs", "roles", "real_servers"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def vip_text(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def parse_vip(text: str, where: str = "--vip") -> tuple[str, int | None]:
    """'192.168.7.33:8000', '[fd00::33]:8000', '192.168.7.33' or 'fd00::33' -> (ip, port|None)."""
    raw = str(text).strip()
    port: int | None = None
    host = raw
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", raw)
    if m:
        host, port = m.group(1), int(m.group(2)) if m.group(2) else None
    elif raw.count(":") == 1:
        host, _, p = raw.partition(":")
        if not p.isdigit():
            raise TopologyError(f"{where}: VIP {raw!r}: port {p!r} is not a number")
        port = int(p)
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise TopologyError(f"{where}: VIP {raw!r}: {host!r} is not an IP address") from None
    if port is not None and not 0 < port < 65536:
        raise TopologyError(f"{where}: VIP {raw!r}: port {port} out of range")
    return ip, port


def _mac(value: Any, where: str) -> str:
    mac = str(value).strip().lower()
    if not _MAC.match(mac):
        raise TopologyError(f"{where}: {value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac


def _unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise TopologyError(f"{where}: unknown key(s) {', '.join(extra)} "
                            f"(allowed: {', '.join(sorted(allowed))})")


def pins_from_dict(data: dict[str, Any], where: str) -> TopologyPins:
    _unknown(data, _TOP_KEYS, where)
    pins = TopologyPins(source=where)
    vips = data.get("vips", [])
    if not isinstance(vips, list):
        raise TopologyError(f"{where}: vips must be a list of \"ip:port\" strings")
    pins.vips = [parse_vip(v, f"{where} vips") for v in vips]
    if "scheduler" in data:
        if not isinstance(data["scheduler"], str) or not data["scheduler"]:
            raise TopologyError(f"{where}: scheduler must be an IPVS scheduler name such as \"rr\", "
                                f"not {data['scheduler']!r}")
        pins.scheduler = data["scheduler"]
    if "shape" in data:
        if data["shape"] not in SHAPES:
            raise TopologyError(f"{where}: shape {data['shape']!r} is not one of {', '.join(SHAPES)}")
        pins.shape = data["shape"]
    dm = data.get("director_macs", {})
    if not isinstance(dm, dict):
        raise TopologyError(f"{where}: director_macs must be a table segment -> [MACs]")
    _unknown(dm, set(ROLES) - {"unknown"}, f"{where} [director_macs]")
    for seg, macs in dm.items():
        macs = macs if isinstance(macs, list) else [macs]
        pins.director_macs[seg] = [_mac(m, f"{where} director_macs.{seg}") for m in macs]
    roles = data.get("roles", {})
    if not isinstance(roles, dict):
        raise TopologyError(f"{where}: roles must be a table point -> role")
    for point, role in roles.items():
        if role not in ROLES:
            raise TopologyError(f"{where}: roles.{point}: {role!r} is not one of {', '.join(ROLES)}")
        pins.roles[str(point)] = role
    for i, rs in enumerate(data.get("real_servers", [])):
        w = f"{where} real_servers[{i}]"
        if not isinstance(rs, dict):
            raise TopologyError(f"{w}: must be a table with name, rip, macs")
        _unknown(rs, _RS_KEYS, w)
        macs = rs.get("macs", {})
        if not isinstance(macs, dict):
            raise TopologyError(f"{w}: macs must be a table segment -> MAC")
        _unknown(macs, set(ROLES) - {"unknown"}, f"{w} macs")
        entry: dict[str, Any] = {"name": str(rs.get("name", f"rs{i + 1}")),
                                 "macs": {seg: _mac(m, f"{w} macs.{seg}") for seg, m in macs.items()}}
        if "rip" in rs:
            try:
                entry["rip"] = str(ipaddress.ip_address(str(rs["rip"])))
            except ValueError:
                raise TopologyError(f"{w}: rip {rs['rip']!r} is not an IP address") from None
        pins.real_servers.append(entry)
    return pins


def load_topology_file(path: Path | str) -> TopologyPins:
    """Read and strictly validate a topology.toml (unknown keys are errors naming the file)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as exc:
        raise TopologyError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{p}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise TopologyError(f"{p}: not a text file") from None
    return pins_from_dict(data, str(p))


def merge_pins(file_pins: TopologyPins | None, vips: list[str] | tuple[str, ...] = (),
               roles: dict[str, str] | None = None,
               rs_names_by_rip: dict[str, str] | None = None) -> TopologyPins:
    """Flags win over the file; manifest roles and real-server names fill in what the file
    does not pin."""
    pins = file_pins or TopologyPins()
    if vips:
        pins.vips = [parse_vip(v) for v in vips]
    for point, role in (roles or {}).items():
        if role != "unknown" and point not in pins.roles:
            pins.roles[point] = role
    for rip, name in (rs_names_by_rip or {}).items():
        pins.rs_names_by_rip.setdefault(rip, name)
    return pins


def manifest_rs_names(value: Any) -> dict[str, str]:
    """RIP -> name from a manifest's `real_servers = [{name = ..., rip = ...}, ...]`; anything
    else (the lab writes a count) names nothing."""
    out: dict[str, str] = {}
    if not isinstance(value, list):
        return out
    for entry in value:
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("rip"):
            continue
        try:
            rip = str(ipaddress.ip_address(str(entry["rip"])))
        except ValueError:
            continue
        out.setdefault(rip, str(entry["name"]))
    return out
