"""The one place the distributed engine touches the single-machine analysis.

Everything the engine needs from dr_inspect.verify, dr_inspect.correlate and
dr_inspect.topology goes through this module, so a change there is adapted here alone.

Two steps of the single-machine pipeline are global and cannot run inside a bucket: the clock
offsets (estimate_offsets) and the topology (learn_vips, learn_topology). The engine computes them
once for the whole set and pins them into every bucket's `correlate` call; `verify._analyse`
then builds the report from the merged correlation. Neither function takes those as arguments
yet, so the module-level names they call are wrapped (once, idempotently) by functions that
return the pinned values when the call carries them (a marked TopologyPins / hosts mapping) and
call the original otherwise. The hook that would replace this: `correlate(..., learned=(vips,
topology), offsets=(estimated, applied))` and `_analyse(..., correlation=corr)`.
"""

from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

import dr_inspect.correlate as _correlate_mod
import dr_inspect.verify as _verify_mod
from dr_inspect.captureset import CaptureSet, load_capture_set
from dr_inspect.correlate import CLOCK_TOLERANCE_NS, Correlation, combine_points
from dr_inspect.correlate.hops import ESTIMATE_WINDOW_NS, NEVER, _deltas, _first_sightings
from dr_inspect.correlate.keys import is_tcp, packet_ids, point_codes, tcp_view
from dr_inspect.correlate.tables import arp_table
from dr_inspect.decode import decode_file
from dr_inspect.model import PointSummary, RuleResult, VerifyReport
from dr_inspect.rules import Rule, load_rules
from dr_inspect.rules.engine import evaluate_rule
from dr_inspect.topology import TopologyPins, load_topology_file
from dr_inspect.topology.learn import LearnedTopology, LearnedVips, learn_topology, learn_vips
from dr_inspect.topology.pins import manifest_rs_names

__all__ = ["CLOCK_TOLERANCE_NS", "evaluate_rule", "rule_variables", "CaptureContext", "ESTIMATE_WINDOW_NS", "Pinned", "analyse_bucket", "build_report",
           "capture_context", "combine_points", "decode_file", "digest", "is_tcp", "learn_on",
           "global_arp_table", "pair_deltas", "pinned_pins", "point_file_label", "with_ts"]

point_file_label = _verify_mod._point_file_label
digest = _verify_mod._digest


@dataclass
class Pinned:
    """What the whole set gave, pinned into each bucket's correlate call."""

    vips: LearnedVips
    topology: LearnedTopology | None = None
    correlation: Correlation | None = None


class _OffsetHosts(dict):
    """The hosts mapping (point -> capturing host) carrying the set's clock offsets."""

    offsets: tuple[dict[str, int], dict[str, int]] = ({}, {})


def _marked(pins: Any) -> Pinned | None:
    return getattr(pins, "_dr_pinned", None)


def _wrap_once(module: Any, name: str, pinned: Callable[..., Any]) -> None:
    """module.name becomes a function that returns pinned(*args, **kw) when that is not None,
    else calls the original (installed once per process)."""
    original = getattr(module, name)
    if getattr(original, "_dr_wrapped", False):
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kw: Any) -> Any:
        value = pinned(*args, **kw)
        return original(*args, **kw) if value is None else value

    wrapper._dr_wrapped = True   # type: ignore[attr-defined]
    setattr(module, name, wrapper)


def _arg(args: tuple, kw: dict, at: int, name: str) -> Any:
    return args[at] if len(args) > at else kw.get(name)


def _pinned_vips(*args: Any, **kw: Any) -> LearnedVips | None:
    marked = _marked(_arg(args, kw, 2, "pins"))
    return marked.vips if marked else None


def _pinned_topology(*args: Any, **kw: Any) -> LearnedTopology | None:
    marked = _marked(_arg(args, kw, 3, "pins"))
    return marked.topology if marked else None


def _pinned_offsets(*args: Any, **kw: Any) -> tuple[dict, dict] | None:
    hosts = _arg(args, kw, 2, "hosts")
    return copy.deepcopy(hosts.offsets) if isinstance(hosts, _OffsetHosts) else None


def _pinned_correlation(*args: Any, **kw: Any) -> Correlation | None:
    marked = _marked(kw.get("pins"))
    return marked.correlation if marked else None


def _presolved_rules(rules: list[Rule], tables: dict, *args: Any, **kw: Any) -> list | None:
    presolved = getattr(_PRESOLVED, "results", None)
    if not presolved:
        return None
    return [presolved.get(r.id) or evaluate_rule(r, tables, *args, **kw) for r in rules]


_INSTALL_LOCK = threading.Lock()
# rule id -> result already evaluated bucket by bucket, while build_report runs in this thread
_PRESOLVED = threading.local()


def _install() -> None:
    with _INSTALL_LOCK:
        _wrap_once(_correlate_mod, "learn_vips", _pinned_vips)
        _wrap_once(_correlate_mod, "learn_topology", _pinned_topology)
        _wrap_once(_correlate_mod, "estimate_offsets", _pinned_offsets)
        _wrap_once(_verify_mod, "correlate", _pinned_correlation)
        _wrap_once(_verify_mod, "evaluate_rules", _presolved_rules)


def pinned_pins(pins: TopologyPins, pinned: Pinned) -> TopologyPins:
    """A copy of pins that carries the set's learned values."""
    out = copy.copy(pins)
    out._dr_pinned = pinned      # type: ignore[attr-defined]
    return out


# -- the capture set -------------------------------------------------------------------------

@dataclass
class CaptureContext:
    """What analyse_paths reads from the capture set besides the frames."""

    cs: CaptureSet
    rules: list[Rule]
    file_pins: TopologyPins | None
    roles: dict[str, str]
    hosts: dict[str, str]
    rs_names: dict[str, str]
    span: tuple[int, int] | None
    scheduler: str | None
    manifest_vip: str | None
    snapshots: dict[str, dict[str, Any]]
    snapshot_errors: list[str]


def capture_context(paths: list[str | Path], topology_file: Path | None,
                    rule_files: list[Path] | tuple) -> CaptureContext:
    """As analyse_paths prepares them (the host snapshots complete the pins and names)."""
    cs = load_capture_set(list(paths))
    rules = load_rules(rule_files)
    file_pins = load_topology_file(topology_file) if topology_file else None
    rs_names = manifest_rs_names(cs.capture.get("real_servers"))
    snaps, snap_errors = _verify_mod._read_snapshots(cs)
    if snaps:
        from dr_inspect.doctor.farm import real_servers
        for entry in real_servers(snaps):
            rs_names.setdefault(entry["rip"], entry["name"])
        file_pins = file_pins or TopologyPins()
        file_pins.host_addresses = _verify_mod._host_addresses(snaps)
        file_pins.host_rips = _verify_mod._host_rips(snaps)
        file_pins.services = _verify_mod._ipvs_services(snaps)
    return CaptureContext(
        cs=cs, rules=rules, file_pins=file_pins, roles={p.name: p.role for p in cs.points},
        hosts={p.name: p.host or "this-machine" for p in cs.points if p.host or p.netns},
        rs_names=rs_names, span=_verify_mod.capture_span_of(cs),
        scheduler=_verify_mod._scheduler_of(cs), manifest_vip=_verify_mod._manifest_vip(cs),
        snapshots=snaps, snapshot_errors=snap_errors)


def pins_for(ctx: CaptureContext, vips: list[str] | tuple[str, ...]) -> TopologyPins:
    return _verify_mod._pins_for(ctx.file_pins, vips, ctx.roles, ctx.rs_names)


# -- global steps on small tables ----------------------------------------------------------------

def with_ts(pk: pd.DataFrame, applied: dict[str, int]) -> pd.DataFrame:
    """pk with the clock-adjusted `ts` column as prepare makes it (ts_ns shared while no clock
    is corrected)."""
    pk["ts"] = pk["ts_ns"] if pk["ts_ns"].dtype == np.int64 else pk["ts_ns"].to_numpy(np.int64)
    if any(applied.values()):
        codes, names = point_codes(pk["point"])
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

def analyse_bucket(pk: pd.DataFrame, points: list[str], pins: TopologyPins, window_ms: float,
                   offsets: tuple[dict[str, int], dict[str, int]],
                   capture_span: tuple[int, int] | None) -> Correlation:
    """correlate() over one bucket's packets (pk: combined, every point, no `ts`) with the set's
    topology (in pins, see pinned_pins) and clock offsets."""
    _install()
    hosts = _OffsetHosts()
    hosts.offsets = offsets
    return _correlate_mod.correlate({p: pd.DataFrame() for p in points}, pins=pins,
                                    window_ms=window_ms, hosts=hosts, combined=pk,
                                    capture_span=capture_span)


def rule_variables(topo: LearnedTopology, scheduler: str | None, window_ms: float,
                   n_points: int) -> dict[str, Any]:
    """The variables verify._analyse gives the rules."""
    return {"window_ms": window_ms, "scheduler": topo.scheduler or scheduler or "unknown",
            "shape": topo.shape, "points": n_points}


def build_report(ctx: CaptureContext, corr: Correlation, pins: TopologyPins,
                 summaries: list[PointSummary], errors: list[str], window_ms: float,
                 max_evidence: int, scheduler: str | None,
                 presolved: dict[str, RuleResult] | None = None) -> VerifyReport:
    """The report verify._analyse makes of the merged correlation, with the capture set's host
    causes joined as analyse_paths does. presolved: results of rules already evaluated (bucket
    by bucket); the other rules are evaluated on corr's tables."""
    _install()
    pinned = _marked(pins)
    assert pinned is not None
    pinned.correlation = corr
    _PRESOLVED.results = presolved or {}
    try:
        analysis = _verify_mod._analyse({s.name: pd.DataFrame() for s in summaries}, summaries,
                                        pins, ctx.rules, window_ms, max_evidence, list(errors),
                                        scheduler, ctx.hosts, None, corr.packets, ctx.span)
    finally:
        pinned.correlation = None
        _PRESOLVED.results = {}
    return analysis.report


def join_host_causes(ctx: CaptureContext, report: VerifyReport) -> None:
    """The snapshots' errors and host causes into the report, as analyse_paths ends."""
    report.errors.extend(ctx.snapshot_errors)
    _verify_mod._join_host_causes(ctx.snapshots, report)
