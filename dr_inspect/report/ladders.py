"""Which connections the HTML report draws as ladders, and building them (capped).

One offending connection per failing rule (the first evidence that names a flow id in
Evidence.extra["flow_id"]), plus a few healthy connections: flows that no evidence names, spread
over the real servers. Ladders are built only for those, so the cost does not grow with the
number of flows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from dr_inspect.errors import DrInspectError
from dr_inspect.model import Ladder, VerifyReport

MAX_HEALTHY = 3
_WHOLE_IF_TRUE = ("syn_forwarded", "synack_seen", "handshake_complete")
_WHOLE_IF_FALSE = ("rst_from_vip", "refused")


@dataclass
class ReportLadders:
    offending: dict[str, Ladder] = field(default_factory=dict)   # rule id -> ladder
    healthy: list[Ladder] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)            # ladders that could not be built


def _flow_id(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def offending_flow_ids(report: VerifyReport) -> dict[str, int]:
    """rule id -> the first flow id its evidence names (failing rules only)."""
    chosen: dict[str, int] = {}
    for rule in report.rules:
        if rule.status != "fail":
            continue
        for ev in rule.evidence:
            fid = _flow_id(ev.extra.get("flow_id"))
            if fid is not None:
                chosen[rule.id] = fid
                break
    return chosen


def named_flow_ids(report: VerifyReport) -> set[int]:
    """Every flow id any evidence names: not a sample of a healthy connection."""
    ids = set()
    for rule in report.rules:
        for ev in rule.evidence:
            fid = _flow_id(ev.extra.get("flow_id"))
            if fid is not None:
                ids.add(fid)
    return ids


def healthy_flow_ids(flows: Any, exclude: set[int], limit: int = MAX_HEALTHY) -> list[int]:
    """Up to `limit` flow ids from the flows table, skipping `exclude`: first one per real server
    (in order of appearance), then the next flows in table order.

    `flows` is the analysis flows table (a DataFrame with a flow_id column and, where known, a
    real_server column); anything without a flow_id column yields no samples. Connections that
    look whole (handshake answered, one real server, no RST) come first when the table says so.
    """
    columns = getattr(flows, "columns", ())
    if flows is None or "flow_id" not in columns or limit <= 0:
        return []
    candidates = flows[~flows["flow_id"].isin(list(exclude))].reset_index(drop=True)
    # Connections that look whole come first: forwarded SYN answered, one real server, no RST.
    good = pd.Series(True, index=candidates.index)
    for col in _WHOLE_IF_TRUE:
        if col in columns:
            good &= candidates[col].fillna(False).astype(bool)
    for col in _WHOLE_IF_FALSE:
        if col in columns:
            good &= ~candidates[col].fillna(False).astype(bool)
    if "rs_count" in columns:
        good &= candidates["rs_count"].fillna(0).eq(1)
    candidates = pd.concat([candidates[good], candidates[~good]], ignore_index=True)
    if "real_server" in columns:
        first = candidates.drop_duplicates("real_server")
        candidates = pd.concat([first, candidates.drop(index=first.index)])
    return [int(f) for f in candidates["flow_id"].head(limit)]


def select_ladders(report: VerifyReport, analysis: Any, *, healthy: int = MAX_HEALTHY,
                   build: Callable[..., Ladder] | None = None) -> ReportLadders:
    """Build the ladders the HTML report shows. `build` defaults to the analysis's ladder view."""
    if build is None:
        from dr_inspect.analysis.ladder import build_ladder as build
    out = ReportLadders()
    built: dict[int, Ladder] = {}
    offending = offending_flow_ids(report)
    # A few spare candidates in case a ladder cannot be built; still a small, fixed number.
    candidates = healthy_flow_ids(getattr(analysis, "flows", None), named_flow_ids(report),
                                  3 * healthy)

    def get(fid: int) -> Ladder | None:
        if fid not in built:
            try:
                built[fid] = build(analysis, flow=fid)
            except DrInspectError as exc:
                out.problems.append(f"flow {fid}: {exc}")
                return None
        return built[fid]

    for rule_id, fid in offending.items():
        ladder = get(fid)
        if ladder is not None:
            out.offending[rule_id] = ladder
    for fid in candidates:
        if len(out.healthy) >= healthy:
            break
        ladder = get(fid)
        if ladder is not None:
            out.healthy.append(ladder)
    return out
