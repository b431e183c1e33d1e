"""Doctor entry points: check a live host (or namespace), or every snapshot of a capture set.

The I/O is here (take_snapshot, reading files); the judging is checks.run_checks.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Callable

from dr_inspect.captureset import load_capture_set
from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.checks import Target, guess_role, parse_networks, parse_vip, run_checks
from dr_inspect.doctor.result import DoctorReport, HostCheck, HostReport
from dr_inspect.doctor.snapshot import Runner, read_snapshot, take_snapshot
from dr_inspect.errors import InputError
from dr_inspect.netns import check_netns_name
from dr_inspect.doctor.runners import reachable, ssh_runner
from dr_inspect.remote.ssh import SshHost, multiplexed

ROLE_ALIASES = {"director": "director", "realserver": "realserver", "real-server": "realserver",
                "rs": "realserver", "client": "client"}
_RS_NAME = re.compile(r"^(rs|realserver|real-server)[-_]?\d*$", re.IGNORECASE)


def normalise_role(role: str | None) -> str | None:
    if role is None:
        return None
    try:
        return ROLE_ALIASES[role.lower()]
    except KeyError:
        raise InputError(f"role {role!r}: expected director, realserver or client") from None


def director_neighbours(snap: dict[str, Any], vip: hs.IPAddress) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The director's own addresses (but the VIP) and MACs, as seen by real servers."""
    ips = tuple(str(a.ip) for a in hs.addresses(snap)
                if a.ip != vip and not hs.is_loopback(hs.link(snap, a.ifname) or {}) and not a.ip.is_link_local)
    return ips, tuple(hs.macs(snap).values())


def _role_for(name: str, snap: dict[str, Any], vip: hs.IPAddress | None,
              given: str | None) -> tuple[str | None, str]:
    if given:
        return normalise_role(given), "given"
    if snap.get("role"):
        return normalise_role(str(snap["role"])), "snapshot"
    guessed = guess_role(snap, vip)
    if guessed:
        return guessed, "guessed from host state"
    if name.lower() == "director":
        return "director", "guessed from host name"
    if _RS_NAME.match(name):
        return "realserver", "guessed from host name"
    if name.lower() == "client":
        return "client", "guessed from host name"
    return None, "unknown"


def vip_from_ipvs(snaps: dict[str, dict[str, Any]]) -> tuple[hs.IPAddress, int | None] | None:
    for snap in snaps.values():
        services = [s for s in hs.ipvs_services(snap) or [] if s.proto == "TCP"]
        if len(services) == 1:
            return ipaddress.ip_address(services[0].ip), services[0].port
    return None


def doctor_snapshots(snapshots: dict[str, dict[str, Any]], vip: hs.IPAddress, port: int | None, *,
                     roles: dict[str, str] | None = None, clients: tuple[hs.IPNetwork, ...] = (),
                     director_ips: tuple[str, ...] = (), director_macs: tuple[str, ...] = (),
                     source: str = "snapshots") -> DoctorReport:
    """Run the checks on several hosts' snapshots together: real servers learn the director's
    addresses from its snapshot (to tell whether their reply route goes back through it). Pure."""
    roles = roles or {}
    decided = {name: _role_for(name, snap, vip, roles.get(name)) for name, snap in snapshots.items()}
    d_ips, d_macs = list(director_ips), list(director_macs)
    for name, (role, _src) in decided.items():
        if role == "director":
            ips, found_macs = director_neighbours(snapshots[name], vip)
            d_ips += ips
            d_macs += found_macs
    target = Target(vip, port, clients, tuple(dict.fromkeys(d_ips)), tuple(dict.fromkeys(d_macs)))
    hosts = []
    for name, snap in snapshots.items():
        snap = dict(snap, host=snap.get("host") or name)
        role, src = decided[name]
        if role is None:
            checks = [HostCheck("HC000", "role-known", str(snap["host"]), "unknown", "not-checked",
                                reason="role unknown: no IPVS service, the VIP is not on this host, and the "
                                       "name does not tell; give the role")]
        else:
            checks = run_checks(snap, role, target)
        hosts.append(HostReport(str(snap["host"]), role or "unknown", src, snap.get("netns"),
                                snap.get("taken_at"), checks, dict(snap.get("errors") or {})))
    return DoctorReport(target.vip_port, hosts, source)


def _hints(clients: tuple[str, ...], director_ips: tuple[str, ...], director_macs: tuple[str, ...]
           ) -> dict[str, Any]:
    return {"clients": parse_networks(clients, "--client"),
            "director_ips": tuple(_parse_ip(ip, "--director-ip") for ip in director_ips),
            "director_macs": tuple(_parse_mac(mac) for mac in director_macs)}


def doctor_live(role: str, vip: str, netns: str | None = None, *, clients: tuple[str, ...] = (),
                director_ips: tuple[str, ...] = (), director_macs: tuple[str, ...] = (),
                runner: Runner | None = None) -> DoctorReport:
    """Snapshot this host (or namespace) now and check it as `role` (director, realserver, client).

    The hints say what one host cannot know about the others: where the clients are, the
    director's addresses (a real server's reply route must not use them) and MACs (a client's
    ARP entry for the VIP must be one of them)."""
    if netns is not None:
        check_netns_name(netns)
    role_n = normalise_role(role)
    vip_ip, port = parse_vip(vip)
    hints = _hints(clients, director_ips, director_macs)
    snap = take_snapshot(netns, runner=runner)
    name = str(snap["host"])
    return doctor_snapshots({name: snap}, vip_ip, port, roles={name: role_n} if role_n else {},
                            source="live", **hints)


def doctor_remote(hosts: list[SshHost], vip: str, *, clients: tuple[str, ...] = (),
                  director_ips: tuple[str, ...] = (), director_macs: tuple[str, ...] = ()
                  ) -> DoctorReport:
    """Snapshot each host over ssh now (read-only commands) and check them together; each host's
    role is its inventory role, else guessed from its state or name."""
    if not hosts:
        raise InputError("no remote host: give --host NAME=[user@]host (or --inventory FILE)")
    vip_ip, port = parse_vip(vip)
    hints = _hints(clients, director_ips, director_macs)
    snaps = {}
    for host in hosts:
        with multiplexed(host) as shared:
            runner = ssh_runner(shared)
            reachable(host, runner)
            snaps[host.name] = take_snapshot(runner=runner, host=host.name, role=host.role)
    roles = {h.name: h.role for h in hosts if h.role}
    return doctor_snapshots(snaps, vip_ip, port, roles=roles, source="ssh", **hints)


def doctor_capture_set(path: str | Path, vip: str | None = None, *, clients: tuple[str, ...] = (),
                       director_ips: tuple[str, ...] = (), director_macs: tuple[str, ...] = (),
                       traffic_vip: Callable[[str | Path], tuple[hs.IPAddress, int | None] | None]
                       | None = None) -> DoctorReport:
    """Check every snapshot of a capture set (manifest [snapshots]). Each host's role comes from
    its snapshot, else is guessed (IPVS entries: director; VIP on lo: real server; host name).

    The VIP: `vip`, else the manifest's, else traffic_vip(path) (the VIP the traffic shows: the
    analysis above doctor passes analysis.paths.vip_from_traffic), else the one IPVS service."""
    hints = _hints(clients, director_ips, director_macs)
    cs = load_capture_set([path])
    if not cs.snapshots:
        raise InputError(f"{path}: the capture set has no host snapshots (manifest [snapshots] table)")
    snaps = {host: read_snapshot(p) for host, p in cs.snapshots.items()}
    if vip is not None:
        vip_ip, port = parse_vip(vip)
    elif cs.capture.get("vip"):
        vip_ip, port = parse_vip(str(cs.capture["vip"]))
        if port is None and cs.capture.get("port"):
            port = int(cs.capture["port"])
    else:
        found = (traffic_vip(path) if traffic_vip is not None else None) or vip_from_ipvs(snaps)
        if found is None:
            raise InputError(f"{path}: the VIP is not in the manifest, the traffic shows no DR "
                             "service and no single IPVS service tells it: give --vip IP:PORT")
        vip_ip, port = found
    return doctor_snapshots(snaps, vip_ip, port, source=str(path), **hints)


def _parse_ip(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InputError(f"{what} {text!r}: not an IP address") from None


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _parse_mac(text: str) -> str:
    mac = text.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise InputError(f"--director-mac {text!r}: expected a MAC like 02:00:c0:a8:07:21")
    return mac
