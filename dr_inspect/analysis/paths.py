"""Verify a capture set from disk (the I/O edge of the analysis): read the set, decode its
points, analyse them, join the host snapshots it carries.

Internal: the public entry point is dr_inspect.verify (which calls verify_paths)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from dr_inspect.analysis.pipeline import CaptureFacts, analyse_packets, load_options
from dr_inspect.analysis.result import Analysis
from dr_inspect.capturefacts import capture_span_of, clock_hosts, manifest_vip, scheduler_of
from dr_inspect.captureset import CaptureSet, load_capture_set
from dr_inspect.correlate.combine import combine_points
from dr_inspect.decode.pointset import decode_set
from dr_inspect.doctor.farm import host_facts, real_servers
from dr_inspect.doctor.join import host_causes
from dr_inspect.doctor.snapshot import read_snapshot
from dr_inspect.errors import DrInspectError, InputError, TopologyError
from dr_inspect.model import VerifyReport
from dr_inspect.options import VerifyOptions
from dr_inspect.topology.pins import TopologyPins, manifest_rs_names, parse_vip

Progress = Callable[[str], None]
IPAddress = IPv4Address | IPv6Address


def analyse_paths(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                  progress: Progress | None = None) -> Analysis:
    """Read a capture set (or files), decode every point and verify it.

    progress(stage) is called as each stage starts ("decoding <point>", "correlating", "rules")."""
    cs = load_capture_set(list(paths))
    loaded = load_options(options)
    packets, summaries, errors = decode_set(cs, progress)
    if not any(len(df) for df in packets.values()):
        raise InputError("no frames could be read from " + ", ".join(str(p.file) for p in cs.points)
                         + (f" ({'; '.join(errors)})" if errors else ""))
    roles = {p.name: p.role for p in cs.points}
    # one combined table; the per-point tables are dropped (only names and order are kept)
    combined = combine_points(packets)
    packets = {name: pd.DataFrame() for name in packets}
    rs_names = manifest_rs_names(cs.capture.get("real_servers"))
    snaps, snap_errors = _read_snapshots(cs)
    if snaps:
        # what the hosts hold (their MACs, addresses, the director's IPVS table) completes what
        # the traffic shows, and names the real servers the manifest does not
        pins = replace(loaded.file_pins or TopologyPins(), **host_facts(snaps))
        loaded = replace(loaded, file_pins=pins)
        for entry in real_servers(snaps):
            rs_names.setdefault(entry["rip"], entry["name"])
    facts = CaptureFacts(summaries=summaries, errors=errors,
                         scheduler=scheduler_of(cs) or options.scheduler, hosts=clock_hosts(cs),
                         rs_names=rs_names, capture_span=capture_span_of(cs))
    try:
        analysis = analyse_packets(packets, roles, loaded, facts, combined=combined,
                                   progress=progress)
    except TopologyError:
        vip = manifest_vip(cs)
        if options.vips or (loaded.file_pins and loaded.file_pins.vips) or not vip:
            raise
        # nothing in the traffic shows DR, but the capture set says which VIP it was taken for
        # (this retry has never passed the manifest's scheduler on: kept as it was)
        retry = replace(loaded, options=replace(options, vips=(vip,)))
        analysis = analyse_packets(packets, roles, retry,
                                   replace(facts, scheduler=options.scheduler),
                                   combined=combined, progress=progress)
        analysis.report.errors.append(f"no DR traffic pattern found; used the VIP {vip} "
                                      "named in manifest.toml")
    analysis.report.errors.extend(snap_errors)
    if snaps:
        # failing rules get the host settings that explain them; the rest are listed as latent
        host_causes(snaps, analysis.report)
    return analysis


def _read_snapshots(cs: CaptureSet) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The set's host snapshots and the errors of the unreadable ones."""
    snaps, errors = {}, []
    for host, path in cs.snapshots.items():
        try:
            snaps[host] = read_snapshot(path)
        except InputError as exc:
            errors.append(f"host snapshot {host}: {exc}")
    return snaps, errors


def verify_paths(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                 progress: Progress | None = None) -> VerifyReport:
    """Verify a capture set directory or capture files: the report says whether DR works."""
    return analyse_paths(paths, options, progress=progress).report


def vip_from_traffic(path: str | Path) -> tuple[IPAddress, int | None] | None:
    """The VIP verify learns from a capture set's traffic (None when it learns none), for doctor
    on a set whose manifest names none; more than one is an InputError naming them, since the
    host checks are for one virtual service."""
    try:
        topology = verify_paths([path]).topology
    except DrInspectError:
        return None
    vips = list(topology.vips) if topology is not None else []
    if len(vips) > 1:
        raise InputError(f"{path}: the traffic shows several VIPs ({', '.join(vips)}): "
                         "give --vip IP:PORT")
    if not vips:
        return None
    ip, port = parse_vip(vips[0])
    return ipaddress.ip_address(ip), port
