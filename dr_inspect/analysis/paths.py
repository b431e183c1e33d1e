"""Verify a capture set from disk (the I/O edge of the analysis): read the set and its host
snapshots, decode its points, analyse them, join the host checks that explain failures.

Internal: the public entry point is dr_inspect.verify (which calls verify_paths)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dr_inspect.analysis import hosts
from dr_inspect.analysis.pipeline import CaptureFacts, LoadedOptions, analyse_packets, load_options
from dr_inspect.analysis.result import Analysis
from dr_inspect.capturefacts import (capture_span_of, clock_disagreements, clock_hosts,
                                    manifest_vip, measured_clocks, scheduler_of)
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.captureset import CaptureSet, load_capture_set
from dr_inspect.correlate.combine import combine_points
from dr_inspect.decode.pointset import decode_set
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
    loaded, facts, snaps, snap_errors = capture_facts(cs, loaded)
    facts = replace(facts, summaries=summaries, errors=errors)
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
    measured = measured_clocks(cs)
    if measured:      # a remote capture: the clocks measured over ssh beside the traffic's estimate
        analysis.report.stats["clock_measured_ns"] = {p: {"offset": o, "bound": b}
                                                      for p, (o, b) in measured.items()}
        analysis.report.errors.extend(clock_disagreements(
            measured, analysis.report.stats.get("clock_offsets_ns", {}), cs.points[0].name,
            CLOCK_TOLERANCE_NS))
    hosts.join_host_causes(snaps, analysis.report)
    return analysis


def capture_facts(cs: CaptureSet, loaded: LoadedOptions
                  ) -> tuple[LoadedOptions, CaptureFacts, hosts.Snapshots, list[str]]:
    """What a capture set says besides its packets: the options completed by its host
    snapshots (pins), the facts (scheduler, clock hosts, real-server names, capture span), the
    snapshots and the errors of unreadable ones."""
    rs_names = manifest_rs_names(cs.capture.get("real_servers"))
    snaps, snap_errors = hosts.read_snapshots(cs)
    if snaps:
        # the hosts name the real servers the manifest does not
        for rip, name in hosts.farm_names(snaps).items():
            rs_names.setdefault(rip, name)
        loaded = _with_host_pins(loaded, snaps)
    facts = CaptureFacts(scheduler=scheduler_of(cs) or loaded.options.scheduler,
                         hosts=clock_hosts(cs), rs_names=rs_names,
                         capture_span=capture_span_of(cs))
    return loaded, facts, snaps, snap_errors


def _with_host_pins(loaded: LoadedOptions, snaps: hosts.Snapshots) -> LoadedOptions:
    """What the hosts hold (their MACs and addresses, a director's services) completes what the
    traffic shows."""
    pins = replace(loaded.file_pins or TopologyPins(), host_addresses=hosts.host_addresses(snaps),
                   host_rips=hosts.host_rips(snaps), services=hosts.ipvs_services(snaps))
    return replace(loaded, file_pins=pins)


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
