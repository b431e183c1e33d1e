"""Capture on remote hosts over ssh into one capture set (the same set local `capture` writes).

    inv = load_inventory("farm.toml")            # or merge_command_line(None, hosts, ...)
    summary = remote_capture_for(inv, Path("out"), duration=30)

Each point is HOST-IFACE: tcpdump on that host streams pcap back over ssh (remote/agent.py) into
`<point>.pcap`. Before any tcpdump starts each host is probed (tcpdump there, the interfaces
exist, its clock against this one); while they capture, each host's state is snapshotted over ssh
into snapshots/<host>.json. Stopping (duration, Ctrl-C, SIGTERM, a host failing) ends every
remote tcpdump and writes manifest.toml with each point's host, ssh target and clock offset.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable

from dr_inspect.doctor.runners import ssh_runner
from dr_inspect.doctor.snapshot import take_snapshot, write_snapshot
from dr_inspect.errors import CaptureAgentError, DrInspectError, InputError
from dr_inspect.live.capture import (START_TIMEOUT_S, CapturePoint, CaptureSession, CaptureSummary,
                                     launch_agents, open_capture_set, run_session, validate_points)
from dr_inspect.live.files import trim_partial_record
from dr_inspect.live.tcpdump import DEFAULT_SNAPLEN, build_argv, check_filter
from dr_inspect.remote.agent import RemoteAgent, remote_argv
from dr_inspect.remote.inventory import Inventory
from dr_inspect.remote.probe import HostProbe, probe_host
from dr_inspect.remote.ssh import SshHost, find_ssh, multiplexed


def remote_points(inv: Inventory, probes: dict[str, HostProbe]) -> list[CapturePoint]:
    points = []
    for i in inv.interfaces:
        host, probe = inv.hosts[i.host], probes.get(i.host)
        clock: dict[str, Any] = {}
        if probe is not None and probe.offset_ns is not None:
            clock = {"clock_offset_ns": probe.offset_ns, "clock_bound_ns": probe.bound_ns}
        points.append(CapturePoint(i.point, i.interface, None, i.role, host=host.name,
                                   extra={"ssh": host.target, **clock}))
    return points


def probe_hosts(inv: Inventory) -> dict[str, HostProbe]:
    """Probe every host that has a point; CaptureAgentError naming what is missing where."""
    probes: dict[str, HostProbe] = {}
    for name in dict.fromkeys(i.host for i in inv.interfaces):
        ifaces = [i.interface for i in inv.interfaces if i.host == name]
        probe = probe_host(inv.hosts[name], [f for f in ifaces if f != "any"])
        if probe.tcpdump is None:
            raise CaptureAgentError(f"{name}: tcpdump is not installed there (apt-get install tcpdump)")
        if probe.missing:
            raise CaptureAgentError(f"{name}: no interface {', '.join(probe.missing)} there")
        probes[name] = probe
    return probes


def remote_snapshots(hosts: list[SshHost], out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """snapshots/<host>.json of each host, read over ssh (read-only commands)."""
    written: dict[str, Path] = {}
    warnings: list[str] = []
    for host in hosts:
        try:
            with multiplexed(host) as shared:
                snap = take_snapshot(runner=ssh_runner(shared), host=host.name, role=host.role)
        except DrInspectError as exc:
            warnings.append(f"snapshot of {host.name}: {exc}")
            continue
        snap["ssh"] = host.target
        written[host.name] = write_snapshot(snap, out_dir / "snapshots" / f"{host.name}.json")
    return written, warnings


def start_remote_capture(inv: Inventory, out_dir: Path, *, snaplen: int | None = None,
                         bpf: str | None = None, count: int | None = None,
                         max_mb: int | None = None, snapshots: bool = True,
                         description: str | None = None,
                         start_timeout: float = START_TIMEOUT_S) -> CaptureSession:
    """Probe the hosts, start one remote tcpdump per point, return once all capture.
    snaplen, bpf and max_mb default to the inventory's; max_mb bounds each point's file."""
    if not inv.interfaces:
        raise InputError("no remote capture point: give --iface HOST:INTERFACE (or interfaces "
                         "in the inventory)")
    bpf = bpf if bpf is not None else inv.bpf
    snaplen = snaplen or inv.snaplen or DEFAULT_SNAPLEN
    max_mb = max_mb or inv.max_mb
    check_filter(bpf)
    find_ssh()
    validate_points(remote_points(inv, {}))
    probes = probe_hosts(inv)         # before the folder: an unreachable host leaves nothing
    out_dir, created = open_capture_set(Path(out_dir))
    points = remote_points(inv, probes)
    warnings = [f"{name}: its tcpdump cannot write nanosecond timestamps; files have microseconds"
                for name, probe in probes.items() if not probe.nano]
    warnings += [f"{name}: its clock could not be measured (no `date +%s%N` there); verify "
                 "estimates it from the traffic only" for name, probe in probes.items()
                 if probe.offset_ns is None]

    def make_agent(p: CapturePoint, path: Path) -> RemoteAgent:
        probe = probes[str(p.host)]
        argv = build_argv(str(probe.tcpdump), p.interface, "-", snaplen=snaplen, bpf=bpf,
                          count=count, nano=probe.nano, run_as=None)
        argv.insert(1, "-v")      # "Got N" on stderr: live progress
        return RemoteAgent(p.name, remote_argv(inv.hosts[str(p.host)], argv, find_ssh()), path,
                           max_bytes=max_mb * 1_000_000 if max_mb else None)

    hosts = list(inv.hosts.values()) if snapshots else []
    agents, bases, started, snaps, snap_warnings = launch_agents(
        points, out_dir, created, make_agent, lambda folder: remote_snapshots(hosts, folder),
        start_timeout)
    return CaptureSession(points, agents, out_dir, bases, snaplen=snaplen, started=started,
                          host=socket.gethostname(), snapshots=snaps,
                          warnings=warnings + snap_warnings, description=description)


def remote_capture_for(inv: Inventory, out_dir: Path, *, duration: float | None = None,
                       on_tick: Callable[[CaptureSession], None] | None = None,
                       **options: Any) -> CaptureSummary:
    """Capture until `duration`, every point's --count / size bound, a host failing, or Ctrl-C /
    SIGTERM (KeyboardInterrupt); always stops every remote tcpdump and writes the manifest."""
    session = start_remote_capture(inv, out_dir, **options)
    summary = run_session(session, duration=duration, on_tick=on_tick)
    for agent, point in zip(session.agents, summary.points):
        if isinstance(agent, RemoteAgent) and agent.capped:
            if point.files:
                trim_partial_record(point.files[-1])    # the bound may cut a record in two
            summary.warnings.append(f"{agent.name}: stopped at the size bound "
                                    f"({agent.bytes_written / 1e6:.1f} MB)")
        if isinstance(agent, RemoteAgent) and agent.write_error:
            summary.warnings.append(f"{agent.name}: writing its file failed: {agent.write_error}")
    return summary
