"""What a capture set's host snapshots tell the analysis (doctor's readers, when installed):
real-server names and RIPs, the addresses each MAC's host holds, the virtual services a
director lists, and the host checks that explain failing rules."""

from __future__ import annotations

import importlib.util
import ipaddress
from typing import Any

from dr_inspect.captureset import CaptureSet
from dr_inspect.errors import InputError
from dr_inspect.model import VerifyReport

Snapshots = dict[str, dict[str, Any]]


def read_snapshots(cs: CaptureSet) -> tuple[Snapshots, list[str]]:
    """The set's host snapshots (doctor's reader, when it is installed) and the errors of the
    unreadable ones."""
    if not cs.snapshots or importlib.util.find_spec("dr_inspect.doctor.snapshot") is None:
        return {}, []
    from dr_inspect.doctor.snapshot import read_snapshot

    snaps, errors = {}, []
    for host, path in cs.snapshots.items():
        try:
            snaps[host] = read_snapshot(path)
        except InputError as exc:
            errors.append(f"host snapshot {host}: {exc}")
    return snaps, errors


def farm_names(snaps: Snapshots) -> dict[str, str]:
    """RIP -> real-server name, from the hosts a director's IPVS table lists."""
    from dr_inspect.doctor.farm import real_servers
    names: dict[str, str] = {}
    for entry in real_servers(snaps):
        names.setdefault(entry["rip"], entry["name"])
    return names


def host_addresses(snaps: Snapshots) -> dict[str, list[str]]:
    """MAC -> the addresses its host holds on that interface, from the snapshots."""
    from dr_inspect.doctor import hoststate

    out: dict[str, list[str]] = {}
    for snap in snaps.values():
        by_if: dict[str, list[str]] = {}
        for addr in hoststate.addresses(snap):
            if not addr.ip.is_link_local and not addr.ip.is_loopback:
                by_if.setdefault(addr.ifname, []).append(str(addr.ip))
        for ifname, mac in hoststate.macs(snap).items():
            out.setdefault(mac, []).extend(by_if.get(ifname, []))
    return out


def host_rips(snaps: Snapshots) -> dict[str, str]:
    """MAC -> RIP for every MAC of a host whose RIP a director's IPVS table lists."""
    from dr_inspect.doctor import hoststate
    from dr_inspect.doctor.farm import real_servers

    rip_of = {e["name"]: e["rip"] for e in real_servers(snaps)}
    return {mac: rip_of[str(snap.get("host") or name)] for name, snap in snaps.items()
            if str(snap.get("host") or name) in rip_of for mac in hoststate.macs(snap).values()}


def ipvs_services(snaps: Snapshots) -> list[tuple[str, int]]:
    """The TCP virtual services (ip, port) the snapshots' IPVS tables list."""
    from dr_inspect.doctor import hoststate

    return sorted({(str(ipaddress.ip_address(s.ip)), s.port) for snap in snaps.values()
                   for s in hoststate.ipvs_services(snap) or []
                   if s.proto == "TCP" and s.port is not None})


def join_host_causes(snaps: Snapshots, report: VerifyReport) -> None:
    """Host snapshots in the set explain failing rules (doctor's join, when it is installed)."""
    if not snaps or importlib.util.find_spec("dr_inspect.doctor.join") is None:
        return
    from dr_inspect.doctor.join import host_causes

    host_causes(snaps, report)
