"""Terminal report: rule table, evidence of failing rules, topology, capture points, verdict."""

from __future__ import annotations

from tabulate import tabulate

from dr_inspect.model import PointSummary, RuleResult, Topology, VerifyReport
from dr_inspect.report.escape import clean_report
from dr_inspect.report.format import failure_lines, filter_line, verdict_line

_RESET = "\x1b[0m"
_COLOURS = {"red": "\x1b[31;1m", "yellow": "\x1b[33;1m", "green": "\x1b[32m", "dim": "\x1b[2m",
            "bold": "\x1b[1m"}


def _paint(text: str, colour: str, enabled: bool) -> str:
    return f"{_COLOURS[colour]}{text}{_RESET}" if enabled else text


def _status_cell(rule: RuleResult, colour: bool) -> str:
    if rule.status == "pass":
        return _paint("pass", "green", colour)
    if rule.status == "fail":
        return _paint("FAIL", "red" if rule.severity == "error" else "yellow", colour)
    return _paint("not exercised", "dim", colour)


def _rules_table(report: VerifyReport, colour: bool) -> str:
    rows = [[r.id, r.name, r.severity, _status_cell(r, colour), r.violations, r.checked]
            for r in report.rules]
    return tabulate(rows, headers=["id", "name", "severity", "status", "violations", "checked"],
                    tablefmt="simple")


def _evidence_section(rule: RuleResult, colour: bool) -> list[str]:
    # the host fix is the line to act on: bold (on a terminal) above everything else
    return [f"{rule.id} {rule.name}: {rule.title}",
            *(_paint(line, "bold", colour) if line.startswith("  HOST FIX:") else line
              for line in failure_lines(rule, indent="  ", bullet="- "))]


def _not_exercised_section(rules: list[RuleResult]) -> list[str]:
    return [f"  {r.id} {r.name}: {r.note or 'nothing matched'}" for r in rules]


def topology_lines(topology: Topology | None) -> list[str]:
    if topology is None:
        return ["topology: not learned"]
    lines = [f"topology ({topology.shape}): VIPs {', '.join(topology.vips) or '-'}"]
    for segment, macs in topology.director_macs.items():
        lines.append(f"  director on {segment}: {', '.join(macs) or '-'}")
    for rs in topology.real_servers:
        macs = ", ".join(f"{seg} {mac}" for seg, mac in rs.macs.items()) or "-"
        lines.append(f"  {rs.name}: RIP {rs.rip or '-'}; {macs}")
    if topology.point_roles:
        roles = ", ".join(f"{p}={r}" for p, r in topology.point_roles.items())
        lines.append(f"  point roles: {roles}")
    if topology.pinned:
        lines.append(f"  pinned: {', '.join(sorted(topology.pinned))}")
    for conflict in topology.conflicts:
        lines.append(f"  CONFLICT: {conflict}")
    return lines


def undecodable_text(point: PointSummary) -> str:
    total = sum(point.undecodable.values())
    if not total:
        return "0"
    detail = ", ".join(f"{k} {v}" for k, v in sorted(point.undecodable.items()))
    return f"{total} ({detail})"


def _points_table(points: list[PointSummary]) -> str:
    rows = [[p.name, p.role, p.frames, p.decoded, undecodable_text(p),
             "-" if p.kernel_drops is None else p.kernel_drops,
             f"{p.clock_offset_ns / 1e3:.1f}", p.error or ""] for p in points]
    return tabulate(rows, headers=["point", "role", "frames", "decoded", "undecodable",
                                   "kernel drops", "clock offset us", "error"],
                    tablefmt="simple")


def render_table(report: VerifyReport, *, colour: bool = False) -> str:
    """The default terminal report. ANSI colour only when the caller says so (a TTY). Every
    text from the input is one line (escaped control characters): no forged lines or colours."""
    report = clean_report(report)
    selected = filter_line(report)
    out: list[str] = [selected, ""] if selected else []
    out += [_rules_table(report, colour), ""]
    failing = [r for r in report.rules if r.status == "fail"]
    for rule in failing:
        out.extend(_evidence_section(rule, colour))
        out.append("")
    idle = [r for r in report.rules if r.status == "not-exercised"]
    if idle:
        out.append("not exercised (no traffic matched; these did not pass):")
        out.extend(_not_exercised_section(idle))
        out.append("")
    out.extend(topology_lines(report.topology))
    out.append("")
    if report.points:
        out.append(_points_table(report.points))
        out.append("")
    for finding in report.host_findings:
        out.append(f"host problem the traffic did not show: {finding}")
    for err in report.errors:
        out.append(f"input problem: {err}")
    verdict = verdict_line(report)
    out.append(_paint(verdict, "green" if report.verdict == "pass" else "red", colour))
    return "\n".join(out) + "\n"
