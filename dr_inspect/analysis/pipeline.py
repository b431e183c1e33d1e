"""The analysis of decoded packets (pure): correlation -> points table -> rules -> report.

Internal: the public entry point is dr_inspect.verify; the CLI's ladder and HTML report and
`watch` use analyse_packets / analyse_paths for the tables behind the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from dr_inspect.analysis.correlation import Correlation, correlate, forward_counts
from dr_inspect.analysis.filters import apply_filter, capture_start_ns, filter_vips, unlearned_vips
from dr_inspect.analysis.result import Analysis
from dr_inspect.correlate.points import capture_health, early_copies, points_rows, points_table
from dr_inspect.decode.pointset import summary_of
from dr_inspect.errors import TopologyError
from dr_inspect.heap import return_freed_heap
from dr_inspect.model import PointSummary, RuleResult, VerifyReport
from dr_inspect.options import VerifyOptions
from dr_inspect.rules import Rule, evaluate_rules, load_rules
from dr_inspect.topology import TopologyPins, load_topology_file, merge_pins

SAMPLE = 1000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadedOptions:
    """VerifyOptions with its files read once (a live watch verifies many windows with them)."""

    options: VerifyOptions
    rules: list[Rule]
    file_pins: TopologyPins | None


def load_options(options: VerifyOptions) -> LoadedOptions:
    """Read the options' rule files and topology file (RuleFileError / TopologyError)."""
    if options.flow_filter is not None:
        filter_vips(options.flow_filter)        # a bad --vip fails before the decoding
    rules = load_rules(list(options.rule_files))
    pins = load_topology_file(options.topology_file) if options.topology_file else None
    return LoadedOptions(options, rules, pins)


@dataclass
class CaptureFacts:
    """What is known about the points besides their packets (a manifest, a live capture).

    summaries: one per point (default: made from the packets); errors: for the report;
    scheduler: the director's, when known; hosts: point -> capturing host (points of one host
    share a clock); rs_names: RIP -> real-server name; capture_span: (started, stopped) ns in
    which every point was capturing."""

    summaries: list[PointSummary] | None = None
    errors: list[str] = field(default_factory=list)
    scheduler: str | None = None
    hosts: dict[str, str] | None = None
    rs_names: dict[str, str] | None = None
    capture_span: tuple[int, int] | None = None


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


def _note_facts(flows: pd.DataFrame, corr: Correlation, health: str) -> dict[str, Any]:
    """What the rules' notes may show beside the tables (rules.loader.NOTE_FACTS)."""
    return {"coalesced": int(corr.stats.get("coalesced", 0)),
            "syn_retransmits": int(flows["syn_retransmits"].sum()) if len(flows) else 0,
            "rsts_from_vip": int(flows["rst_from_vip"].sum()) if len(flows) else 0,
            "capture_health": health,
            "unserved": ", ".join(f"{n} to {ep}" for ep, n in corr.topology.unserved.items())}


def _verdict_errors(results: list, rules: list[Rule], errors: list[str],
                    corr: Correlation) -> tuple[str, list[str]]:
    """(verdict, the report's errors): the verdict needs every core rule exercised."""
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
    return ("pass" if not failed and core and not unexercised else "fail"), report_errors


def _correlate(packets: dict[str, pd.DataFrame], pins: TopologyPins, options: VerifyOptions,
               facts: CaptureFacts, combined: pd.DataFrame | None) -> Correlation:
    """correlate(); a filter's --vip that the traffic does not show as a VIP is pinned beside
    the learned ones (as a pinned --vip was before it became a filter), when none is pinned."""
    def run(pinned: TopologyPins) -> Correlation:
        return correlate(packets, pins=pinned, window_ms=options.window_ms, hosts=facts.hosts,
                         combined=combined, capture_span=facts.capture_span)

    flt = options.flow_filter
    wanted = filter_vips(flt) if flt is not None and not pins.vips else []
    try:
        corr = run(pins)
    except TopologyError:
        if not wanted:
            raise
        return run(replace(pins, vips=wanted))
    missing = unlearned_vips(flt, corr.topology.vips) if wanted else []
    if missing:
        corr = run(replace(pins, vips=list(corr.topology.vips) + missing))
    return corr


def analyse_packets(packets: dict[str, pd.DataFrame], roles: dict[str, str],
                    loaded: LoadedOptions, facts: CaptureFacts | None = None, *,
                    combined: pd.DataFrame | None = None,
                    progress: Progress | None = None,
                    correlation: Correlation | None = None,
                    presolved: dict[str, RuleResult] | None = None) -> Analysis:
    """Verify decoded packets tables (point -> DataFrame); roles: point -> role.

    combined: combine_points(packets) already made (packets then only names the points);
    progress(stage) at stage starts. TopologyError when no VIP is pinned or learned.
    correlation: the correlation of these packets made elsewhere (the distributed engine merges
    its buckets'), used instead of correlating them here; presolved: results of rules evaluated
    elsewhere (see rules.evaluate_rules)."""
    facts = facts or CaptureFacts()
    options = loaded.options
    pins = merge_pins(loaded.file_pins, list(options.vips), roles, facts.rs_names)
    summaries = facts.summaries
    if summaries is None:
        summaries = [summary_of(df, PointSummary(name=p, file="", role=roles.get(p, "unknown")),
                                None, None) for p, df in packets.items()]
    if progress is not None:
        progress("correlating")
    corr = (correlation if correlation is not None
            else _correlate(packets, pins, options, facts, combined))
    topo = corr.topology
    for s in summaries:
        s.role = topo.roles.get(s.name, s.role)
        s.clock_offset_ns = int(corr.offsets_estimated.get(s.name, 0))
    rows = points_rows(summaries, topo.roles, corr.packets, corr.offsets_estimated,
                       corr.offsets_applied, early_copies(corr.tables["forwards"]))
    tables = dict(corr.tables)
    selection = None
    if options.flow_filter is not None and options.flow_filter.active:
        # after the points rows: capture health is about the whole capture
        tables, selection = apply_filter(tables, options.flow_filter, topo,
                                         capture_start_ns(corr.packets))
        corr.tables = dict(tables)
        corr.stats.update(forward_counts(tables["forwards"]))
    tables["points"] = points_table(rows)
    variables = {"window_ms": options.window_ms,
                 "scheduler": topo.scheduler or facts.scheduler or "unknown",
                 "shape": topo.shape, "points": len(summaries)}
    if progress is not None:
        progress("rules")
    return_freed_heap()
    facts_seen = _note_facts(tables["flows"], corr, capture_health(rows, corr.offsets_applied))
    results = evaluate_rules(loaded.rules, tables, variables, options.max_evidence, facts_seen,
                             presolved)
    verdict, report_errors = _verdict_errors(results, loaded.rules, facts.errors, corr)
    model_topo = topo.to_model()
    report = VerifyReport(verdict=verdict, rules=results, topology=model_topo, points=summaries,
                          flows=len(tables["flows"]), hops=len(corr.hops), errors=report_errors,
                          stats={"real_servers": _rs_stats(corr), **corr.stats,
                                 "clock_offsets_ns": {k: int(v) for k, v in
                                                      corr.offsets_estimated.items()},
                                 "window_ms": options.window_ms,
                                 "scheduler": variables["scheduler"]},
                          filter=selection)
    return Analysis(packets=corr.packets, topology=model_topo, hops=corr.hops,
                    flows=tables["flows"], tables=tables, points=summaries, report=report,
                    correlation=corr, errors=report_errors)


def verify_packets(packets: dict[str, pd.DataFrame], roles: dict[str, str],
                   options: VerifyOptions = VerifyOptions()) -> VerifyReport:
    """Verify already-decoded packets tables (point -> DataFrame); roles: point -> role."""
    return analyse_packets(packets, roles, load_options(options)).report


__all__ = ["CaptureFacts", "LoadedOptions", "analyse_packets", "load_options", "verify_packets"]
