"""JSON report: a stable, documented document for scripts and CI.

Schema (``schema`` = "dr-inspect.verify/1"; keys are only ever added, never renamed):

    {
      "schema": "dr-inspect.verify/1",
      "verdict": "pass" | "fail",
      "exit_code": 0 | 1,
      "summary": {"rules", "pass", "fail", "not-exercised", "errors_failed",
                  "warnings_failed", "flows", "hops"},
      "rules": [{"id", "name", "title", "severity": "error"|"warning",
                 "status": "pass"|"fail"|"not-exercised", "checked", "violations",
                 "evidence": [{"point", "frames", "ts_ns", "five_tuple", "seq", "expected",
                               "actual", "cause", "display_filter", "extra", "community_id"}],
                 "evidence_omitted", "explanation", "fix_hint", "note", "host_causes"}],
      "topology": null | {"shape", "vips", "director_macs": {segment: [mac]},
                          "real_servers": [{"name", "rip", "macs": {segment: mac}}],
                          "point_roles": {point: role}, "pinned", "conflicts"},
      "points": [{"name", "file", "role", "interface", "frames", "decoded", "undecodable",
                  "first_ts_ns", "last_ts_ns", "clock_offset_ns", "kernel_drops", "snaplen",
                  "error"}],
      "errors": [str],
      "host_findings": [str],          # failing host checks no failing rule shows
      "stats": {...; "real_servers": [{"name", "connections",
                                        "forward_delay_us": {"count","min","p50","p95","max"},
                                        "response_us": {...same}}]},
      "connections": [{"flow_id", "five_tuple", "client", "vip", "real_server",
                       "community_id"}],     (verify --format json; absent where not computed)
      "filter": {"filter", "connections", "connections_left_out", "arp_frames",
                 "arp_left_out"}             (only with --client/--rs/--vip/--since/--until:
                                              the options and what they kept and left out)
    }

community_id is the Community ID v1 of the connection (report/community_id.py), the key Zeek,
Suricata and Arkime logs share; null for evidence without ports (ARP, ICMP).

Per-connection latency lists in stats are summarised (count and quantiles) so the document stays
small for large captures. Times are integers in nanoseconds unless the key says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np

from dr_inspect.model import VerifyReport
from dr_inspect.report.charts import finite_values
from dr_inspect.report.community_id import community_id_of
from dr_inspect.report.format import rule_counts

SCHEMA = "dr-inspect.verify/1"
_LATENCY_KEYS = ("forward_delay_us", "response_us")


def latency_summary(values: Any) -> dict[str, float | int | None]:
    """count, min, p50, p95, max of a latency list (None entries and NaN ignored)."""
    arr = finite_values(values)
    if arr.size == 0:
        return {"count": 0, "min": None, "p50": None, "p95": None, "max": None}
    p50, p95 = np.percentile(arr, [50, 95])
    return {"count": int(arr.size), "min": round(float(arr.min()), 3),
            "p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "max": round(float(arr.max()), 3)}


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    out = dict(stats)
    servers = stats.get("real_servers")
    if isinstance(servers, list):
        summarised = []
        for entry in servers:
            item = dict(entry)
            for key in _LATENCY_KEYS:
                if key in item and isinstance(item[key], (list, tuple, np.ndarray)):
                    item[key] = latency_summary(item[key])
            summarised.append(item)
        out["real_servers"] = summarised
    return out


def _jsonable(value: Any) -> Any:
    """json.dumps default: numpy scalars/arrays and paths from the stats dict."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def report_document(report: VerifyReport,
                    connections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The report as the documented JSON-ready dict; connections: connection_rows(flows)."""
    counts = rule_counts(report)
    rules = []
    for rule in report.rules:
        r = asdict(rule)
        for ev in r["evidence"]:
            ev["community_id"] = community_id_of(ev["five_tuple"])
        # Key order as documented: id, name, title, severity, status, checked, violations, evidence...
        rules.append({k: r[k] for k in ("id", "name", "title", "severity", "status", "checked",
                                        "violations", "evidence", "evidence_omitted",
                                        "explanation", "fix_hint", "note", "host_causes")})
    document = {
        "schema": SCHEMA,
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "summary": {"rules": counts["rules"], "pass": counts["pass"], "fail": counts["fail"],
                    "not-exercised": counts["not-exercised"],
                    "errors_failed": counts["errors_failed"],
                    "warnings_failed": counts["warnings_failed"],
                    "flows": report.flows, "hops": report.hops},
        "rules": rules,
        "topology": asdict(report.topology) if report.topology is not None else None,
        "points": [asdict(p) for p in report.points],
        "errors": list(report.errors),
        "host_findings": list(report.host_findings),
        "stats": _stats(report.stats),
    }
    if report.filter is not None:
        document["filter"] = dict(report.filter)
    if connections is not None:
        document["connections"] = connections
    return document


def render_json(report: VerifyReport, connections: list[dict[str, Any]] | None = None) -> str:
    return json.dumps(report_document(report, connections), indent=2, default=_jsonable) + "\n"
