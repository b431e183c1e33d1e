"""diff: compare two JSON reports of `dr-inspect verify` (schema dr-inspect.verify/1).

What changed between a run before and a run after a change to the farm: rules that started or
stopped failing, real servers that appeared or vanished, each real server's share of the
connections and its latency percentiles. A regression (exit 1 for CI) is an error-severity rule
that started failing, a verdict that went from pass to fail, a real server that vanished, or a
latency percentile that grew by more than the given limit.

Pure functions of the two documents; load_report is the only I/O.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.errors import InputError

SCHEMA_PREFIX = "dr-inspect.verify/"
DIFF_SCHEMA = "dr-inspect.diff/1"
LATENCY_KEYS = ("response_us", "forward_delay_us")
PERCENTILES = ("p50", "p95")


@dataclass
class RuleChange:
    id: str
    name: str
    severity: str
    old_status: str | None          # None: the rule is not in that report
    new_status: str | None
    old_violations: int
    new_violations: int
    change: str                     # started failing | stopped failing | more violations | ...
    regression: bool


@dataclass
class ServerChange:
    name: str
    old_share: float | None         # fraction of all connections; None: not in that report
    new_share: float | None
    old_connections: int
    new_connections: int
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # "response_us.p95" -> {"old", "new", "change_pct"}
    regressions: list[str] = field(default_factory=list)


@dataclass
class ReportDiff:
    old_verdict: str
    new_verdict: str
    rules: list[RuleChange]
    servers: list[ServerChange]
    added_servers: list[str]
    removed_servers: list[str]
    regressions: list[str]          # one sentence each

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressed else 0

    def to_json(self) -> dict[str, Any]:
        return {"schema": DIFF_SCHEMA, "regressed": self.regressed, **asdict(self)}


def load_report(path: str | Path) -> dict[str, Any]:
    """A verify JSON report from `path`; InputError when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc}); write one with "
                         "`dr-inspect verify SET --format json -o FILE`") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise InputError(f"{path}: not a dr-inspect verify JSON report (schema {schema!r}, "
                         f"expected {SCHEMA_PREFIX}1)")
    return doc


def _rule_change(old: dict | None, new: dict | None) -> RuleChange | None:
    ref = new or old
    assert ref is not None
    before = old["status"] if old else None
    after = new["status"] if new else None
    nv_old = int(old.get("violations", 0)) if old else 0
    nv_new = int(new.get("violations", 0)) if new else 0
    severity = str(ref.get("severity", "error"))
    if before == after and nv_old == nv_new:
        return None
    if after == "fail" and before != "fail":
        change = "started failing"
    elif before == "fail" and after != "fail":
        change = "stopped failing" if after == "pass" else f"stopped failing ({after or 'absent'})"
    elif before == "fail" and after == "fail":
        change = "more violations" if nv_new > nv_old else "fewer violations"
    elif after is None:
        change = "not in the new report"
    elif before is None:
        change = "new rule"
    elif after == "not-exercised":
        change = "no longer exercised"
    else:
        change = "now exercised"
    regression = change == "started failing" and severity == "error"
    return RuleChange(id=str(ref["id"]), name=str(ref.get("name", "")), severity=severity,
                      old_status=before, new_status=after, old_violations=nv_old,
                      new_violations=nv_new, change=change, regression=regression)


def _servers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    servers = (doc.get("stats") or {}).get("real_servers") or []
    return {str(s["name"]): s for s in servers if isinstance(s, dict) and "name" in s}


def _share(servers: dict[str, dict[str, Any]]) -> dict[str, float]:
    total = sum(int(s.get("connections") or 0) for s in servers.values())
    return {name: (int(s.get("connections") or 0) / total if total else 0.0)
            for name, s in servers.items()}


def _percentile(server: dict[str, Any] | None, key: str, pct: str) -> float | None:
    summary = (server or {}).get(key)
    if not isinstance(summary, dict):
        return None
    value = summary.get(pct)
    return float(value) if value is not None else None


def _server_change(name: str, old: dict | None, new: dict | None, old_share: dict[str, float],
                   new_share: dict[str, float], max_latency_increase_pct: float | None
                   ) -> ServerChange:
    change = ServerChange(name=name, old_share=old_share.get(name), new_share=new_share.get(name),
                          old_connections=int((old or {}).get("connections") or 0),
                          new_connections=int((new or {}).get("connections") or 0))
    for key in LATENCY_KEYS:
        for pct in PERCENTILES:
            before, after = _percentile(old, key, pct), _percentile(new, key, pct)
            if before is None and after is None:
                continue
            grew = (round(100.0 * (after - before) / before, 1)
                    if before and after is not None else None)
            change.latency[f"{key}.{pct}"] = {"old": before, "new": after, "change_pct": grew}
            if (max_latency_increase_pct is not None and grew is not None
                    and grew > max_latency_increase_pct):
                change.regressions.append(
                    f"{name}: {key} {pct} grew {grew:.0f}% ({before:.0f} -> {after:.0f} us), "
                    f"over the {max_latency_increase_pct:g}% allowed")
    return change


def diff_reports(old: dict[str, Any], new: dict[str, Any], *,
                 max_latency_increase_pct: float | None = None) -> ReportDiff:
    """What changed from the `old` verify report to the `new` one (both as loaded JSON).

    max_latency_increase_pct: a real server's p50/p95 latency growing by more than this is a
    regression (None: latency changes are shown, never a regression; capture timing is noisy)."""
    old_rules = {r["id"]: r for r in old.get("rules", [])}
    new_rules = {r["id"]: r for r in new.get("rules", [])}
    rules = [c for rid in sorted(old_rules.keys() | new_rules.keys())
             if (c := _rule_change(old_rules.get(rid), new_rules.get(rid))) is not None]
    old_rs, new_rs = _servers(old), _servers(new)
    old_share, new_share = _share(old_rs), _share(new_rs)
    names = list(old_rs) + [n for n in new_rs if n not in old_rs]
    servers = [_server_change(n, old_rs.get(n), new_rs.get(n), old_share, new_share,
                              max_latency_increase_pct) for n in names]
    added = [n for n in new_rs if n not in old_rs]
    removed = [n for n in old_rs if n not in new_rs]
    regressions = [f"{c.id} {c.name} started failing ({c.new_violations} violations)"
                   for c in rules if c.regression]
    old_verdict, new_verdict = str(old.get("verdict", "?")), str(new.get("verdict", "?"))
    if old_verdict == "pass" and new_verdict == "fail" and not regressions:
        regressions.append("the verdict went from pass to fail")
    regressions += [f"real server {n} no longer receives connections" for n in removed]
    regressions += [r for s in servers for r in s.regressions]
    return ReportDiff(old_verdict=old_verdict, new_verdict=new_verdict, rules=rules,
                      servers=servers, added_servers=added, removed_servers=removed,
                      regressions=regressions)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_diff_text(diff: ReportDiff) -> str:
    """The diff for a person: verdicts, rule changes, real servers, then the regressions."""
    lines = [f"verdict: {diff.old_verdict} -> {diff.new_verdict}"]
    if diff.rules:
        lines.append("rules:")
        for c in diff.rules:
            lines.append(f"  {c.id} {c.name}: {c.change} ({c.old_status or 'absent'}, "
                         f"{c.old_violations} violations -> {c.new_status or 'absent'}, "
                         f"{c.new_violations})")
    else:
        lines.append("rules: no change")
    if diff.added_servers:
        lines.append(f"new real servers: {', '.join(diff.added_servers)}")
    if diff.removed_servers:
        lines.append(f"real servers gone: {', '.join(diff.removed_servers)}")
    if diff.servers:
        lines.append("real servers (share of connections; latency us old -> new):")
        for s in diff.servers:
            lat = ", ".join(f"{k} {_num(v['old'])} -> {_num(v['new'])}"
                            + (f" ({v['change_pct']:+.0f}%)" if v["change_pct"] is not None else "")
                            for k, v in s.latency.items())
            lines.append(f"  {s.name}: share {_pct(s.old_share)} -> {_pct(s.new_share)} "
                         f"({s.old_connections} -> {s.new_connections} connections)"
                         + (f"; {lat}" if lat else ""))
    if diff.regressions:
        lines.append("REGRESSION:")
        lines += [f"  {r}" for r in diff.regressions]
    else:
        lines.append("no regression")
    return "\n".join(lines) + "\n"
