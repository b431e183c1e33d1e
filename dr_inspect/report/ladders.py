"""Which connections the HTML report draws as ladders, and building them (capped).

One offending connection per failing rule (the first evidence that names a flow id in
Evidence.extra["flow_id"]), plus a few healthy connections: flows that no evidence names, spread
over the real servers. Ladders are built only for those, so the cost does not grow with the
number of flows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dr_inspect.errors import DrInspectError
from dr_inspect.model import Ladder, VerifyReport

MAX_HEALTHY = 3


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
    """Up to `limit` flow ids from the flows table, one per real server first, skipping `exclude`.

    `flows` is the analysis flows table (a DataFrame with a flow_id column and, where known, a
    real_server column); anything without those yields no samples.
    """
    columns = getattr(flows, "columns", ())
    if flows is None or "flow_id" not in columns or limit <= 0:
        return []
    ids = flows["flow_id"].to_numpy()
    servers = flows["real_server"].to_numpy() if "real_server" in columns else None
    # Prefer connections that completed a handshake, when the table says so.
    ok = None
    for col in ("handshake_complete", "complete", "established"):
        if col in columns:
            ok = flows[col].to_numpy()
            break
    picked: list[int] = []
    seen_servers: set = set()
    for pass_no in (0, 1):   # first one per real server, then fill up
        for i in range(len(ids)):
            if len(picked) >= limit:
                return picked
            fid = _flow_id(ids[i])
            if fid is None or fid in exclude or fid in picked:
                continue
            if ok is not None and pass_no == 0 and not bool(ok[i]):
                continue
            server = servers[i] if servers is not None else None
            if pass_no == 0 and server in seen_servers:
                continue
            seen_servers.add(server)
            picked.append(fid)
    return picked


def select_ladders(report: VerifyReport, analysis: Any, *, healthy: int = MAX_HEALTHY,
                   build: Callable[..., Ladder] | None = None) -> ReportLadders:
    """Build the ladders the HTML report shows. `build` defaults to verify.build_ladder."""
    if build is None:
        from dr_inspect.verify import build_ladder as build   # the verifier owns ladder building
    out = ReportLadders()
    built: dict[int, Ladder] = {}

    def get(fid: int) -> Ladder | None:
        if fid not in built:
            try:
                built[fid] = build(analysis, flow=fid)
            except DrInspectError as exc:
                out.problems.append(f"flow {fid}: {exc}")
                return None
        return built[fid]

    for rule_id, fid in offending_flow_ids(report).items():
        ladder = get(fid)
        if ladder is not None:
            out.offending[rule_id] = ladder
    flows = getattr(analysis, "flows", None)
    for fid in healthy_flow_ids(flows, named_flow_ids(report), healthy):
        ladder = get(fid)
        if ladder is not None:
            out.healthy.append(ladder)
    return out
