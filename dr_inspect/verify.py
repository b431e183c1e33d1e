"""verify: capture files -> decoded points -> topology -> correlation -> rules -> VerifyReport.

I/O (reading the capture set, decoding files, host snapshots) happens in verify_paths /
analyse_paths; verify_packets and everything below it are pure functions of the tables.
"""

from __future__ import annotations

import hashlib
import ipaddress
import importlib.util
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from dr_inspect.captureset import CaptureSet, load_capture_set
from dr_inspect.correlate import (CLOCK_TOLERANCE_NS, Correlation, combine_points, correlate,
                                  points_table, return_freed_heap)
from dr_inspect.errors import CaptureError, InputError, TopologyError
from dr_inspect.correlate.ladder import build_ladder
from dr_inspect.model import PointSummary, Topology, VerifyReport
from dr_inspect.rules import Rule, evaluate_rules, load_rules
from dr_inspect.topology import (TopologyPins, load_topology_file, merge_pins, parse_vip)
from dr_inspect.topology.pins import manifest_rs_names

__all__ = ["Analysis", "analyse_packets", "analyse_paths", "build_ladder", "verify_packets",
           "verify_paths"]

SAMPLE = 1000

Progress = Callable[[str], None]


def _say(progress: Progress | None, stage: str) -> None:
    if progress is not None:
        progress(stage)


@dataclass
class Analysis:
    """Everything verify computed, for the HTML report and the ladder."""

    packets: pd.DataFrame                 # all points, with `point` and clock-adjusted `ts`
    topology: Topology
    hops: pd.DataFrame
    flows: pd.DataFrame
    tables: dict[str, pd.DataFrame]       # to_vip, forwards, replies, arp, flows, points
    points: list[PointSummary]
    report: VerifyReport
    correlation: Correlation | None = None
    errors: list[str] = field(default_factory=list)


# -- decoding (I/O) ---------------------------------------------------------------------------

def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _point_file_label(files: list[Path]) -> str:
    """What the point's summary names as its file; several rotated files are one point whose
    frame numbers run on across the files in order (as `mergecap -a` numbers them)."""
    if len(files) == 1:
        return str(files[0])
    return (" + ".join(str(f) for f in files)
            + f" (one point; frame numbers continue across these {len(files)} files in this order,"
              " as in `mergecap -a -w merged.pcap` of them)")


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0              # decoding it reports why


def _decode_file(path: Path, name: str) -> Any:
    """decode_file(path) for one file of point `name`, or the CaptureError it raised (returned so
    a pool can hand it back in order)."""
    from dr_inspect.decode import decode_file

    try:
        return decode_file(path, point=name)
    except CaptureError as exc:
        return exc
    finally:
        # what this decode freed goes back to the system now, not when all are done: glibc keeps
        # it in this thread's arena, where the other thread cannot reuse it
        return_freed_heap()


def _decode_point(files: list[Path], name: str, decoded: list[Any] | None = None
                  ) -> tuple[pd.DataFrame, Any, tuple[str, str] | None]:
    """Decode every file of one point as one table: frame numbers continue across the files.

    decoded: _decode_file(f, name) of each file, when already done (by decode_files).
    Returns (packets, stats of the first file with the counts of all, None or (error for the
    report, error for the point's summary)); a file that cannot be read at all is skipped with
    its error (the others are still verified)."""
    from dr_inspect.decode import DecodeStats, concat_packets

    parts: list[pd.DataFrame] = []
    total: DecodeStats | None = None
    errors: list[str] = []            # for the report's error list
    raw: list[str] = []               # for the point's summary
    first_failure: CaptureError | None = None
    offset = 0
    for i, path in enumerate(files):
        result = decoded[i] if decoded is not None else _decode_file(path, name)
        if isinstance(result, CaptureError):
            errors.append(str(result))
            raw.append(str(result))
            first_failure = first_failure or result
            continue
        st = result.stats
        df = result.packets
        if offset and len(df):
            df["frame"] = df["frame"].to_numpy() + offset
        offset += st.frames_read
        parts.append(df)
        if st.error is not None:
            raw.append(str(st.error))
            errors.append(f"{st.error} (the {st.frames_read} frames before it are verified)")
        if total is None:
            total = st
        else:
            total.frames_read += st.frames_read
            total.frames_decoded += st.frames_decoded
            total.add_undecodable(st.undecodable)
            total.snaplen = max(total.snaplen, st.snaplen)
    if total is None:
        assert first_failure is not None
        if len(files) == 1:
            raise first_failure
        raise CaptureError(str(files[0]), None, "no file of the point could be read: "
                           + "; ".join(errors))
    packets = parts[0] if len(parts) == 1 else concat_packets(parts)
    return packets, total, ("; ".join(errors), "; ".join(raw)) if errors else None


# Processes decoding at once: this one and DECODE_THREADS - 1 forked helper (decoding holds the
# GIL most of the time, so threads would not run it in parallel); 1 decodes everything here.
DECODE_THREADS = 2


def _decode_set(cs: CaptureSet, progress: Progress | None = None
                ) -> tuple[dict[str, pd.DataFrame], list[PointSummary], list[str]]:
    from dr_inspect.decode.parallel import decode_files

    packets: dict[str, pd.DataFrame] = {}
    summaries: list[PointSummary] = []
    errors: list[str] = []
    seen: dict[tuple[int, str], str] = {}
    sizes = [sum(f.stat().st_size for f in p.files) for p in cs.points]
    # which points to decode, in order (None: a duplicate, with its error)
    plan: list[tuple[Any, str | None]] = []
    for point, size in zip(cs.points, sizes):
        # only points of equal size can be duplicates: hash those alone
        key = (size, _digest(point.files) if sizes.count(size) > 1 else point.name)
        if key in seen:
            plan.append((None, f"{point.file}: same content as point {seen[key]}; "
                               "ignored as a duplicate"))
            continue
        seen[key] = point.name
        plan.append((point, None))
    jobs = [(f, point.name) for point, _ in plan if point is not None for f in point.files]
    # the results come in job order, each decoded when taken here (the helper process decodes
    # its share meanwhile); this thread alone reports progress
    results = decode_files(jobs, workers=min(DECODE_THREADS, os.cpu_count() or 1))
    try:
        for point, duplicate in plan:
            if point is None:
                errors.append(duplicate)
                continue
            summary = PointSummary(name=point.name, file=_point_file_label(point.files),
                                   role=point.role, interface=point.interface,
                                   kernel_drops=point.dropped, snaplen=point.snaplen)
            _say(progress, f"decoding {point.name}")
            decoded = []
            for _ in point.files:
                decoded.append(next(results))
                # what this decode freed goes back to the system now, before the next file
                return_freed_heap()
            try:
                df, st, error = _decode_point(point.files, point.name, decoded)
            except CaptureError as exc:
                summary.error = str(exc)
                errors.append(str(exc))
                summaries.append(summary)
                packets[point.name] = pd.DataFrame()
                continue
            if error is not None:
                errors.append(error[0])
                summary.error = error[1]
            ifaces = {i.id: i.name for i in st.interfaces}
            used = _interfaces_used(df)
            if len(used) > 1:
                # a pcapng with several interfaces is several points
                for iid in used:
                    name = f"{point.file.name}:{ifaces.get(iid) or iid}"
                    part = df[df["interface"] == iid].reset_index(drop=True)
                    packets[name] = part
                    summaries.append(_summary_of(part, PointSummary(
                        name=name, file=summary.file, role="unknown",
                        interface=ifaces.get(iid, ""), kernel_drops=None,
                        snaplen=st.snaplen or None), st.undecodable, summary.error))
                continue
            summary.snaplen = summary.snaplen or (st.snaplen or None)
            summary.frames = st.frames_read
            summary.decoded = st.frames_decoded
            summary.undecodable = dict(st.undecodable)
            packets[point.name] = df
            summaries.append(_summary_of(df, summary, None, summary.error))
    finally:
        # an error above (or ^C) stops the helper process
        results.close()
    return_freed_heap()
    return packets, summaries, errors


def _interfaces_used(df: pd.DataFrame) -> list[int]:
    """The distinct interface ids of a point's packets, ascending (one, nearly always: checked
    with min/max before any sort)."""
    if not len(df) or "interface" not in df:
        return []
    ids = df["interface"].to_numpy()
    if ids.min() == ids.max():
        return [int(ids[0])]
    return [int(i) for i in np.unique(ids)]


def _summary_of(df: pd.DataFrame, s: PointSummary, undecodable: dict[str, int] | None,
                error: str | None) -> PointSummary:
    if not s.frames:
        s.frames = len(df)
        s.decoded = len(df) - (sum(undecodable.values()) if undecodable else 0)
        s.decoded = max(s.decoded, 0)
    if undecodable is not None and not s.undecodable:
        s.undecodable = {}
    if len(df):
        s.first_ts_ns = int(df["ts_ns"].min())
        s.last_ts_ns = int(df["ts_ns"].max())
    s.error = error
    return s


# -- the pipeline (pure) ----------------------------------------------------------------------

def _early_copies(fw: pd.DataFrame) -> dict[str, int]:
    """Per real-server-side point: forwarded copies seen more than the clock tolerance before
    their original after the clocks were corrected. No copy leaves the director before the
    packet arrives: the clocks (or their correction) are wrong there."""
    if not len(fw):
        return {}
    early = fw["has_copy"].to_numpy(dtype=bool) & (
        fw["delay_us"].to_numpy(dtype=np.float64) * 1000 < -CLOCK_TOLERANCE_NS)
    if not early.any():
        return {}
    return {str(k): int(v) for k, v in
            pd.Series(np.asarray(fw["copy_point"], dtype=object)[early]).value_counts().items()}


def _points_rows(summaries: list[PointSummary], roles: dict[str, str], pk: pd.DataFrame,
                 est: dict[str, int], applied: dict[str, int],
                 early: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per point for DR013; early: see _early_copies."""
    spans = {}
    for s in summaries:
        if s.first_ts_ns is not None:
            off = applied.get(s.name, 0)
            spans[s.name] = (s.first_ts_ns - off, s.last_ts_ns - off)
    trunc: dict[str, int] = {}
    if len(pk):
        cut = (pk["caplen"].to_numpy() < pk["wirelen"].to_numpy())
        if cut.any():
            trunc = pk.loc[cut, "point"].astype(object).value_counts().to_dict()
    rows = []
    for s in summaries:
        span = spans.get(s.name)
        others = [v for k, v in spans.items() if k != s.name]
        # an empty point has no time range: its emptiness is judged on its own
        overlaps = span is None or not others or any(lo <= span[1] and span[0] <= hi
                                                     for lo, hi in others)
        problems = []
        role = roles.get(s.name, s.role)
        # a point that captured nothing is reported, not failed: what should have crossed it is
        # judged by the traffic rules (DR007 and DR009 name the symptom and the empty point);
        # DR013 fails on what makes the capture itself untrustworthy: kernel drops, frames that
        # cannot be read, points that do not overlap in time
        quiet_ok = not s.error and not s.frames
        if not s.decoded and not quiet_ok:
            problems.append("no frames decoded" if not s.frames else
                            f"none of {s.frames} frames could be decoded")
        if s.error:
            problems.append(f"read error: {s.error}")
        if s.kernel_drops:
            problems.append(f"{s.kernel_drops} frames dropped by the kernel during capture "
                            "(packets may look lost)")
        if span is not None and not overlaps:
            problems.append("its capture time does not overlap any other point's")
        if (early or {}).get(s.name):
            problems.append(f"{early[s.name]} forwarded copies seen here before their original "
                            "arrived at the director (more than the clock tolerance, after the "
                            "clock correction): this point's clock disagrees with the others")
        rows.append({"point": s.name, "role": role, "frame": -1,
                     "ts_ns": s.first_ts_ns if s.first_ts_ns is not None else -1,
                     "five_tuple": "", "seq": -1, "file": s.file, "frames": int(s.frames or 0),
                     "decoded": int(s.decoded or 0), "empty_expected": bool(quiet_ok),
                     "error": s.error or "",
                     "kernel_drops": int(s.kernel_drops) if s.kernel_drops is not None else -1,
                     "truncated": int(trunc.get(s.name, 0)), "overlaps": bool(overlaps),
                     "clock_offset_us": est.get(s.name, 0) / 1000.0,
                     "early_copies": int((early or {}).get(s.name, 0)),
                     "problem": "; ".join(problems) or "ok"})
    return rows


def _health_note(rows: list[dict[str, Any]], applied: dict[str, int]) -> str:
    notes = []
    for r in rows:
        if r["empty_expected"] and not r["decoded"]:
            notes.append(f"{r['point']}: saw no traffic")
        if r["truncated"]:
            notes.append(f"{r['point']}: {r['truncated']} frames cut by snaplen (headers kept)")
        if abs(r["clock_offset_us"]) * 1000 > CLOCK_TOLERANCE_NS:
            how = "corrected" if applied.get(r["point"]) else "within tolerance, not corrected"
            notes.append(f"{r['point']}: clock offset {r['clock_offset_us']:.0f} us vs "
                         f"{rows[0]['point']} ({how})")
    return "; ".join(notes)


def _sample(values: np.ndarray) -> list[float]:
    values = values[~np.isnan(values)]
    if len(values) > SAMPLE:
        values = values[np.linspace(0, len(values) - 1, SAMPLE).astype(int)]
    return [round(float(v), 3) for v in values]


def _rs_stats(corr: Correlation) -> list[dict[str, Any]]:
    fw, flows = corr.tables["forwards"], corr.tables["flows"]
    out = []
    for rs in corr.topology.real_servers:
        mine = flows[flows["real_server"] == rs.name]
        out.append({"name": rs.name,
                    "connections": int(mine["syn_forwarded"].sum()) or len(mine),
                    "forward_delay_us": _sample(fw.loc[fw["real_server"] == rs.name, "delay_us"]
                                                .to_numpy(dtype=float)),
                    "response_us": _sample(mine["response_us"].to_numpy(dtype=float))})
    return out


def _analyse(packets: dict[str, pd.DataFrame], summaries: list[PointSummary], pins: TopologyPins,
             rules: list[Rule], window_ms: float, max_evidence: int, errors: list[str],
             scheduler: str | None = None, hosts: dict[str, str] | None = None,
             progress: Progress | None = None, combined: pd.DataFrame | None = None,
             capture_span: tuple[int, int] | None = None) -> Analysis:
    _say(progress, "correlating")
    corr = correlate(packets, pins=pins, window_ms=window_ms, hosts=hosts, combined=combined,
                     capture_span=capture_span)
    topo = corr.topology
    for s in summaries:
        s.role = topo.roles.get(s.name, s.role)
        s.clock_offset_ns = int(corr.offsets_estimated.get(s.name, 0))
    rows = _points_rows(summaries, topo.roles, corr.packets, corr.offsets_estimated,
                        corr.offsets_applied, _early_copies(corr.tables["forwards"]))
    tables = dict(corr.tables)
    tables["points"] = points_table(rows)
    variables = {"window_ms": window_ms, "scheduler": topo.scheduler or scheduler or "unknown",
                 "shape": topo.shape, "points": len(summaries)}
    _say(progress, "rules")
    return_freed_heap()
    results = evaluate_rules(rules, tables, variables, max_evidence)
    note = _health_note(rows, corr.offsets_applied)
    for r in results:
        if r.id == "DR013" and note:
            r.note = f"{r.note}; {note}" if r.note else note
        if r.id == "DR011" and r.status != "not-exercised" and variables["scheduler"] == "unknown":
            r.note = "scheduler not pinned (topology.toml scheduler = ...): checked as round robin"
        if r.id == "DR009" and len(tables["flows"]):
            retrans = int(tables["flows"]["syn_retransmits"].sum())
            resets = int(tables["flows"]["rst_from_vip"].sum())
            if retrans or resets:
                r.note = f"{retrans} SYN retransmission(s), {resets} connection(s) with RST from the VIP"
        if r.id == "DR007" and corr.stats.get("coalesced"):
            r.note = (f"{corr.stats['coalesced']} packets matched by sequence range to segments "
                      "coalesced by GRO/TSO at another point (not lost)")
        if r.id == "DR007" and topo.unserved:
            lost = ", ".join(f"{n} to {ep}" for ep, n in topo.unserved.items())
            r.note = "; ".join(x for x in (r.note, (
                f"SYNs that reached the director and were neither forwarded nor answered: {lost} "
                "(a virtual service without a real server, or a firewall drop on the director; "
                "pin it with --vip if it is a virtual service)")) if x)
    core = [r for r in results if any(x.core for x in rules if x.id == r.id)]
    report_errors = list(errors)
    if corr.stats.get("capture_span"):
        report_errors.append(f"manifest.toml [capture]: {corr.stats['capture_span']}")
    unexercised = [r.id for r in core if r.status == "not-exercised"]
    if unexercised:
        report_errors.append(
            f"core forwarding rules {', '.join(unexercised)} were not exercised: verify needs "
            "client->VIP traffic captured on both sides of the director (VIP segment and "
            "real-server segment, or one shared segment)")
    failed = any(r.status == "fail" and r.severity == "error" for r in results)
    verdict = "pass" if not failed and core and not unexercised else "fail"
    model_topo = topo.to_model()
    report = VerifyReport(verdict=verdict, rules=results, topology=model_topo, points=summaries,
                          flows=len(tables["flows"]), hops=len(corr.hops), errors=report_errors,
                          stats={"real_servers": _rs_stats(corr), **corr.stats,
                                 "clock_offsets_ns": {k: int(v) for k, v in
                                                      corr.offsets_estimated.items()},
                                 "window_ms": window_ms, "scheduler": variables["scheduler"]})
    return Analysis(packets=corr.packets, topology=model_topo, hops=corr.hops,
                    flows=tables["flows"], tables=tables, points=summaries, report=report,
                    correlation=corr, errors=report_errors)


def _pins_for(topology: TopologyPins | Path | str | None, vips: list[str] | tuple[str, ...],
              roles: dict[str, str], rs_names: dict[str, str] | None = None) -> TopologyPins:
    if isinstance(topology, (str, Path)):
        file_pins: TopologyPins | None = load_topology_file(topology)
    else:
        file_pins = topology
    return merge_pins(file_pins, list(vips), roles, rs_names)


def verify_packets(packets: dict[str, pd.DataFrame], roles: dict[str, str], *,
                   vips: list[str] | tuple[str, ...] = (),
                   topology: TopologyPins | Path | str | None = None,
                   rules: list[Rule] | None = None, window_ms: float = 500.0,
                   max_evidence: int = 10) -> VerifyReport:
    """Verify already-decoded packets tables (point -> DataFrame); roles: point -> role."""
    return analyse_packets(packets, roles, vips=vips, topology=topology, rules=rules,
                           window_ms=window_ms, max_evidence=max_evidence).report


def analyse_packets(packets: dict[str, pd.DataFrame], roles: dict[str, str], *,
                    vips: list[str] | tuple[str, ...] = (),
                    topology: TopologyPins | Path | str | None = None,
                    rules: list[Rule] | None = None, window_ms: float = 500.0,
                    max_evidence: int = 10, summaries: list[PointSummary] | None = None,
                    errors: list[str] | None = None, scheduler: str | None = None,
                    hosts: dict[str, str] | None = None, rs_names: dict[str, str] | None = None,
                    progress: Progress | None = None,
                    combined: pd.DataFrame | None = None,
                    capture_span: tuple[int, int] | None = None) -> Analysis:
    """rs_names: RIP -> real-server name (a manifest's list); progress(stage) at stage starts;
    combined: combine_points(packets) already made (packets then only names the points);
    capture_span: (started, stopped) ns in which every point was capturing (see capture_span_of)."""
    if window_ms <= 0:
        raise InputError(f"window must be positive, got {window_ms} ms")
    pins = _pins_for(topology, vips, roles, rs_names)
    if summaries is None:
        summaries = [_summary_of(df, PointSummary(name=p, file="", role=roles.get(p, "unknown")),
                                 None, None) for p, df in packets.items()]
    return _analyse(packets, summaries, pins, rules if rules is not None else load_rules(),
                    window_ms, max_evidence, list(errors or []), scheduler, hosts, progress,
                    combined, capture_span)


def analyse_paths(paths: list[str | Path], *, vips: list[str] | tuple[str, ...] = (),
                  topology_file: Path | None = None, rule_files: list[Path] | tuple = (),
                  window_ms: float = 500.0, max_evidence: int = 10,
                  progress: Progress | None = None) -> Analysis:
    """Read a capture set (or files), decode every point and verify it.

    progress(stage) is called as each stage starts ("decoding <point>", "correlating", "rules")."""
    cs = load_capture_set(list(paths))
    rules = load_rules(rule_files)
    file_pins = load_topology_file(topology_file) if topology_file else None
    packets, summaries, errors = _decode_set(cs, progress)
    if not any(len(df) for df in packets.values()):
        raise InputError("no frames could be read from " + ", ".join(str(p.file) for p in cs.points)
                         + (f" ({'; '.join(errors)})" if errors else ""))
    roles = {p.name: p.role for p in cs.points}
    # one combined table; the per-point tables are dropped (only names and order are kept)
    combined = combine_points(packets)
    packets = {name: pd.DataFrame() for name in packets}
    # points captured on one host share its clock (netns-only points: the capturing machine)
    hosts = {p.name: p.host or "this-machine" for p in cs.points if p.host or p.netns}
    rs_names = manifest_rs_names(cs.capture.get("real_servers"))
    snaps, snap_errors = _read_snapshots(cs)
    if snaps:
        # the hosts name the real servers the manifest does not
        from dr_inspect.doctor.farm import real_servers
        for entry in real_servers(snaps):
            rs_names.setdefault(entry["rip"], entry["name"])
        # what the hosts hold (their MACs and addresses) completes what the traffic shows
        file_pins = file_pins or TopologyPins()
        file_pins.host_addresses = _host_addresses(snaps)
        file_pins.host_rips = _host_rips(snaps)
        file_pins.services = _ipvs_services(snaps)
    span = capture_span_of(cs)
    try:
        analysis = analyse_packets(packets, roles, vips=vips, topology=file_pins, rules=rules,
                                   window_ms=window_ms, max_evidence=max_evidence,
                                   summaries=summaries, errors=errors,
                                   scheduler=_scheduler_of(cs), hosts=hosts, rs_names=rs_names,
                                   progress=progress, combined=combined, capture_span=span)
    except TopologyError:
        manifest_vip = _manifest_vip(cs)
        if vips or (file_pins and file_pins.vips) or not manifest_vip:
            raise
        # nothing in the traffic shows DR, but the capture set says which VIP it was taken for
        analysis = analyse_packets(packets, roles, vips=[manifest_vip], topology=file_pins,
                                   rules=rules, window_ms=window_ms, max_evidence=max_evidence,
                                   summaries=summaries, errors=errors, hosts=hosts,
                                   rs_names=rs_names, progress=progress, combined=combined,
                                   capture_span=span)
        analysis.report.errors.append(f"no DR traffic pattern found; used the VIP {manifest_vip} "
                                      "named in manifest.toml")
    analysis.report.errors.extend(snap_errors)
    _join_host_causes(snaps, analysis.report)
    return analysis


def _utc_ns(value: Any, where: str) -> int:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{where}: {value!r} is not an ISO 8601 time "
                         "(e.g. 2026-11-30T06:56:53.852453Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    # whole microseconds from the datetime, exactly (a float timestamp would round)
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def capture_span_of(cs: CaptureSet) -> tuple[int, int] | None:
    """(started, stopped) in ns since the epoch from the manifest's [capture], when it has both:
    the span in which every point was capturing."""
    started, stopped = cs.capture.get("started"), cs.capture.get("stopped")
    if not started or not stopped:
        return None
    where = f"{cs.root / 'manifest.toml' if cs.root else 'manifest.toml'} [capture]"
    lo, hi = _utc_ns(started, where + " started"), _utc_ns(stopped, where + " stopped")
    if hi < lo:
        raise InputError(f"{where}: stopped ({stopped}) is before started ({started})")
    return lo, hi


def _scheduler_of(cs: CaptureSet) -> str | None:
    """The scheduler the capture set was taken with, when its manifest says: the lab's nft
    director picks real servers by a flow hash (DESIGN.md), which round robin checks do not fit."""
    named = cs.capture.get("scheduler")
    if named:
        return str(named)
    return {"nft": "flow-hash"}.get(str(cs.capture.get("director", "")))


def _manifest_vip(cs: CaptureSet) -> str | None:
    vip, port = cs.capture.get("vip"), cs.capture.get("port")
    if not vip:
        return None
    try:
        ip, p = parse_vip(str(vip), "manifest.toml [capture] vip")
    except TopologyError:
        return None
    p = p or (int(port) if isinstance(port, int) else None)
    if p is None:
        return ip
    return f"[{ip}]:{p}" if ":" in ip else f"{ip}:{p}"


def _read_snapshots(cs: CaptureSet) -> tuple[dict[str, dict[str, Any]], list[str]]:
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


def _host_addresses(snaps: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
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


def _host_rips(snaps: dict[str, dict[str, Any]]) -> dict[str, str]:
    """MAC -> RIP for every MAC of a host whose RIP a director's IPVS table lists."""
    from dr_inspect.doctor import hoststate
    from dr_inspect.doctor.farm import real_servers

    rip_of = {e["name"]: e["rip"] for e in real_servers(snaps)}
    return {mac: rip_of[str(snap.get("host") or name)] for name, snap in snaps.items()
            if str(snap.get("host") or name) in rip_of for mac in hoststate.macs(snap).values()}


def _ipvs_services(snaps: dict[str, dict[str, Any]]) -> list[tuple[str, int]]:
    """The TCP virtual services (ip, port) the snapshots' IPVS tables list."""
    from dr_inspect.doctor import hoststate

    return sorted({(str(ipaddress.ip_address(s.ip)), s.port) for snap in snaps.values()
                   for s in hoststate.ipvs_services(snap) or []
                   if s.proto == "TCP" and s.port is not None})


def _join_host_causes(snaps: dict[str, dict[str, Any]], report: VerifyReport) -> None:
    """Host snapshots in the set explain failing rules (doctor's join, when it is installed)."""
    if not snaps or importlib.util.find_spec("dr_inspect.doctor.join") is None:
        return
    from dr_inspect.doctor.join import host_causes

    host_causes(snaps, report)


def verify_paths(paths: list[str | Path], *, vips: list[str] | tuple[str, ...] = (),
                 topology_file: Path | None = None, rule_files: list[Path] | tuple = (),
                 window_ms: float = 500.0, max_evidence: int = 10,
                 progress: Progress | None = None) -> VerifyReport:
    """Verify a capture set directory or capture files: the report says whether DR works.

    progress(stage) is called as each stage starts ("decoding <point>", "correlating", "rules")."""
    return analyse_paths(paths, vips=vips, topology_file=topology_file, rule_files=rule_files,
                         window_ms=window_ms, max_evidence=max_evidence,
                         progress=progress).report
