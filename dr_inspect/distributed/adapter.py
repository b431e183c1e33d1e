"""The one place the distributed engine touches the single-machine analysis.

Everything the engine needs from dr_inspect.analysis, dr_inspect.correlate, dr_inspect.topology,
dr_inspect.rules and dr_inspect.decode.pointset goes through this module, so a change there is
adapted here alone.

Three steps of the single-machine pipeline are global and cannot run inside a bucket: the clock
offsets (estimate_offsets), the topology (learn_vips, learn_topology) and, for the rules over
the per-frame tables, their evaluation over the whole tables. The engine computes them for the
whole set and passes them to the library as its parameters for this: every bucket's
`correlate(..., set_wide=SetWide(vips, topology, offsets))`, and the report's
`analyse_packets(..., correlation=merged, presolved={rule id: RuleResult})`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.analysis import hosts
from dr_inspect.analysis.correlation import Correlation, SetWide, correlate
from dr_inspect.analysis.paths import capture_facts
from dr_inspect.analysis.pipeline import CaptureFacts, LoadedOptions, analyse_packets, load_options
from dr_inspect.capturefacts import manifest_vip
from dr_inspect.captureset import CaptureSet, load_capture_set
from dr_inspect.columnar.codes import category_codes
from dr_inspect.columnar.tcp_view import is_tcp, packet_ids, tcp_view
from dr_inspect.correlate.arp import arp_table
from dr_inspect.correlate.combine import combine_points
from dr_inspect.correlate.hops import (CLOCK_TOLERANCE_NS, ESTIMATE_WINDOW_NS, NEVER, _deltas,
                                       _first_sightings, resolve_offsets)
from dr_inspect.decode import decode_file
from dr_inspect.decode.pointset import _decode_plan, _point_file_label
from dr_inspect.model import PointSummary, RuleResult, VerifyReport
from dr_inspect.options import VerifyOptions
from dr_inspect.rules.engine import evaluate_rule
from dr_inspect.topology import TopologyPins, merge_pins
from dr_inspect.topology.learn import learn_topology, learn_vips
from dr_inspect.topology.model import LearnedTopology, LearnedVips

__all__ = ["CLOCK_TOLERANCE_NS", "CaptureContext", "Correlation", "ESTIMATE_WINDOW_NS", "Pinned",
           "PinnedPins", "analyse_bucket", "build_report", "capture_context", "combine_points",
           "decode_file", "decode_plan", "evaluate_rule", "global_arp_table", "is_tcp",
           "join_host_causes", "learn_on", "pair_deltas", "pinned_pins", "pins_for",
           "point_file_label", "resolve_offsets", "rule_variables", "with_ts"]

decode_plan = _decode_plan
point_file_label = _point_file_label


@dataclass
class Pinned:
    """What the whole set gave, pinned into each bucket's correlate call."""

    vips: LearnedVips
    topology: LearnedTopology | None = None


@dataclass
class PinnedPins:
    """A bucket's topology pins and what the whole set gave (sent to the workers as one)."""

    pins: TopologyPins
    pinned: Pinned


def pinned_pins(pins: TopologyPins, pinned: Pinned) -> PinnedPins:
    """The pins with the set's learned values, for analyse_bucket."""
    return PinnedPins(pins=pins, pinned=pinned)


# -- the capture set -------------------------------------------------------------------------

@dataclass
class CaptureContext:
    """What analyse_paths reads from the capture set besides the frames."""

    cs: CaptureSet
    options: VerifyOptions
    loaded: LoadedOptions              # rules and the topology file (with the hosts' facts)
    roles: dict[str, str]
    facts: CaptureFacts                # without the summaries and errors (the decode's)
    manifest_vip: str | None
    snapshots: dict[str, dict[str, Any]]
    snapshot_errors: list[str]

    @property
    def rules(self) -> list:
        return self.loaded.rules


def capture_context(paths: list[str | Path], options: VerifyOptions) -> CaptureContext:
    """As analyse_paths prepares them (the host snapshots complete the pins and names)."""
    cs = load_capture_set(list(paths))
    loaded, facts, snaps, snap_errors = capture_facts(cs, load_options(options))
    return CaptureContext(cs=cs, options=options, loaded=loaded,
                          roles={p.name: p.role for p in cs.points}, facts=facts,
                          manifest_vip=manifest_vip(cs), snapshots=snaps,
                          snapshot_errors=snap_errors)


def pins_for(ctx: CaptureContext, vips: tuple[str, ...]) -> TopologyPins:
    """The pins analyse_packets merges for these VIPs."""
    return merge_pins(ctx.loaded.file_pins, list(vips), ctx.roles, ctx.facts.rs_names)


def with_fallback_vip(ctx: CaptureContext) -> CaptureContext:
    """The context analyse_paths retries with when no VIP is found: the manifest's VIP, and no
    scheduler from the manifest (as it has always been)."""
    options = replace(ctx.options, vips=(ctx.manifest_vip,))
    return replace(ctx, options=options, loaded=replace(ctx.loaded, options=options),
                   facts=replace(ctx.facts, scheduler=ctx.options.scheduler))


# -- global steps on small tables ----------------------------------------------------------------

def with_ts(pk: pd.DataFrame, applied: dict[str, int]) -> pd.DataFrame:
    """pk with the clock-adjusted `ts` column as prepare makes it (ts_ns shared while no clock
    is corrected)."""
    pk["ts"] = pk["ts_ns"] if pk["ts_ns"].dtype == np.int64 else pk["ts_ns"].to_numpy(np.int64)
    if any(applied.values()):
        codes, names = category_codes(pk["point"])
        per_point = np.array([applied.get(n, 0) for n in names] + [0], dtype=np.int64)
        pk["ts"] = pk["ts_ns"].to_numpy(dtype=np.int64) - per_point[codes]
    return pk


def learn_on(pk: pd.DataFrame, points: list[str], pins: TopologyPins,
             vips: LearnedVips | None = None) -> LearnedVips | LearnedTopology:
    """learn_vips (vips None) or learn_topology over pk (which has `ts`, see with_ts)."""
    tv = tcp_view(pk)
    if vips is None:
        return learn_vips(pk, tv, pins)
    return learn_topology(pk, tv, points, pins, vips)


def global_arp_table(pk: pd.DataFrame, topo: LearnedTopology) -> pd.DataFrame:
    return arp_table(pk, topo)


def pair_deltas(pk: pd.DataFrame) -> tuple[int, dict[tuple[str, str], np.ndarray]]:
    """(TCP rows, {(point, ref): first-sighting deltas within the estimate window}) of the
    packets of pk: what estimate_offsets compares, for the packets of one bucket."""
    tv = tcp_view(pk)
    if len(tv) == 0:
        return 0, {}
    packet = packet_ids(tv)
    f = _first_sightings(tv, packet)
    scratch = np.full(int(packet.max()) + 1, NEVER, dtype=np.int64)
    out = {}
    for p in f:
        for ref in f:
            if p != ref:
                d = _deltas(f[p], f[ref], scratch)
                out[(p, ref)] = d[np.abs(d) <= ESTIMATE_WINDOW_NS]
    return len(tv), out


# -- buckets and the report ------------------------------------------------------------------

def analyse_bucket(pk: pd.DataFrame, points: list[str], pins: PinnedPins, window_ms: float,
                   offsets: tuple[dict[str, int], dict[str, int]],
                   capture_span: tuple[int, int] | None) -> Correlation:
    """correlate() over one bucket's packets (pk: combined, every point, no `ts`) with the set's
    topology (pinned_pins) and clock offsets."""
    set_wide = SetWide(vips=pins.pinned.vips, topology=pins.pinned.topology, offsets=offsets)
    return correlate({p: pd.DataFrame() for p in points}, pins=pins.pins, window_ms=window_ms,
                     combined=pk, capture_span=capture_span, set_wide=set_wide)


def rule_variables(topo: LearnedTopology, ctx: CaptureContext, n_points: int) -> dict[str, Any]:
    """The variables analyse_packets gives the rules."""
    return {"window_ms": ctx.options.window_ms,
            "scheduler": topo.scheduler or ctx.facts.scheduler or "unknown",
            "shape": topo.shape, "points": n_points}


def build_report(ctx: CaptureContext, corr: Correlation, summaries: list[PointSummary],
                 errors: list[str], presolved: dict[str, RuleResult] | None = None
                 ) -> VerifyReport:
    """The report analyse_packets makes of the merged correlation. presolved: results of rules
    already evaluated (bucket by bucket); the other rules are evaluated on corr's tables."""
    facts = replace(ctx.facts, summaries=summaries, errors=list(errors))
    analysis = analyse_packets({s.name: pd.DataFrame() for s in summaries}, ctx.roles,
                               ctx.loaded, facts, correlation=corr, presolved=presolved or {})
    return analysis.report


def join_host_causes(ctx: CaptureContext, report: VerifyReport) -> None:
    """The snapshots' errors and host causes into the report, as analyse_paths ends."""
    report.errors.extend(ctx.snapshot_errors)
    hosts.join_host_causes(ctx.snapshots, report)
