"""Markdown report for a CI job summary (GitHub $GITHUB_STEP_SUMMARY, GitLab MR notes)."""

from __future__ import annotations

from dr_inspect.model import RuleResult, VerifyReport
from dr_inspect.report.format import evidence_rows, host_fixes, verdict_line
from dr_inspect.report.table import topology_lines, undecodable_text

_STATUS = {"pass": "pass", "fail": "**FAIL**", "not-exercised": "not exercised"}


def md_cell(text: object) -> str:
    """Table-cell safe: pipes escaped, newlines flattened."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _rule_details(rule: RuleResult) -> list[str]:
    lines = [f"### {rule.id} {rule.name} ({rule.severity})", "", rule.title, ""]
    for fix, findings in host_fixes(rule.host_causes):
        if fix:
            lines.append(f"**Fix on the host:** {md_code(fix)}")
        lines += [f"- because {found}" for found in findings] + [""]
    if rule.explanation:
        lines += [rule.explanation, ""]
    rows = evidence_rows(rule)
    if rows:
        lines.append("| point | frames | 5-tuple | seq | expected | actual | cause | filter |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for row in rows:
            cells = [row[k] for k in ("point", "frames", "five_tuple", "seq", "expected",
                                      "actual", "cause")]
            lines.append("| " + " | ".join(md_cell(c) for c in cells)
                         + f" | {md_cell(md_code(row['filter']))} |")
        lines.append("")
    if rule.evidence_omitted:
        lines += [f"... and {rule.evidence_omitted} more", ""]
    if rule.fix_hint:
        lines += [f"**Fix:** {rule.fix_hint}", ""]
    return lines


def render_markdown(report: VerifyReport) -> str:
    icon = ":white_check_mark:" if report.verdict == "pass" else ":x:"
    lines = [f"## dr-inspect {icon} {report.verdict.upper()}", "", verdict_line(report), "",
             "| id | name | severity | status | violations | checked |",
             "|---|---|---|---|---:|---:|"]
    for r in report.rules:
        lines.append(f"| {r.id} | {md_cell(r.name)} | {r.severity} | {_STATUS[r.status]} "
                     f"| {r.violations} | {r.checked} |")
    lines.append("")
    for rule in report.rules:
        if rule.status == "fail":
            lines += _rule_details(rule)
    idle = [r for r in report.rules if r.status == "not-exercised"]
    if idle:
        lines += ["### Not exercised", ""]
        lines += [f"- {r.id} {r.name}: {r.note or 'no traffic matched'}" for r in idle]
        lines.append("")
    lines += ["### Topology", "", "```", *topology_lines(report.topology), "```", ""]
    if report.points:
        lines += ["### Capture points", "",
                  "| point | role | frames | decoded | undecodable | kernel drops | error |",
                  "|---|---|---:|---:|---|---:|---|"]
        for p in report.points:
            drops = "-" if p.kernel_drops is None else p.kernel_drops
            lines.append(f"| {md_cell(p.name)} | {p.role} | {p.frames} | {p.decoded} "
                         f"| {md_cell(undecodable_text(p))} | {drops} | {md_cell(p.error or '')} |")
        lines.append("")
    if report.host_findings:
        lines += ["### Host problems the traffic did not show", ""] + [
            f"- {md_cell(f)}" for f in report.host_findings] + [""]
    if report.errors:
        lines += ["### Input problems", ""] + [f"- {md_cell(e)}" for e in report.errors] + [""]
    return "\n".join(lines)
