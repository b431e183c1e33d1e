"""Markdown report for a CI job summary (GitHub $GITHUB_STEP_SUMMARY, GitLab MR notes)."""

from __future__ import annotations

from dr_inspect.model import RuleResult, VerifyReport
from dr_inspect.report.escape import clean_report, md_block, md_cell, md_code, md_text
from dr_inspect.report.format import evidence_rows, filter_line, host_fixes, verdict_line
from dr_inspect.report.table import topology_lines, undecodable_text

_STATUS = {"pass": "pass", "fail": "**FAIL**", "not-exercised": "not exercised"}


def _rule_details(rule: RuleResult) -> list[str]:
    lines = [f"### {md_text(rule.id)} {md_text(rule.name)} ({rule.severity})", "",
             md_text(rule.title), ""]
    for fix, findings in host_fixes(rule.host_causes):
        if fix:
            lines.append(f"**Fix on the host:** {md_code(fix)}")
        lines += [f"- because {md_text(found)}" for found in findings] + [""]
    if rule.explanation:
        lines += [md_text(rule.explanation), ""]
    rows = evidence_rows(rule)
    if rows:
        lines.append("| point | frames | 5-tuple | seq | expected | actual | cause | filter |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for row in rows:
            cells = [row[k] for k in ("point", "frames", "five_tuple", "seq", "expected",
                                      "actual", "cause")]
            lines.append("| " + " | ".join(md_cell(c) for c in cells)
                         + f" | {md_code(row['filter']).replace('|', chr(92) + '|')} |")
        lines.append("")
    if rule.evidence_omitted:
        lines += [f"... and {rule.evidence_omitted} more", ""]
    if rule.fix_hint:
        lines += [f"**Fix:** {md_text(rule.fix_hint)}", ""]
    return lines


def render_markdown(report: VerifyReport) -> str:
    report = clean_report(report)
    icon = ":white_check_mark:" if report.verdict == "pass" else ":x:"
    selected = filter_line(report)
    lines = [f"## dr-inspect {icon} {report.verdict.upper()}", "", verdict_line(report), "",
             *([md_text(selected), ""] if selected else []),
             "| id | name | severity | status | violations | checked |",
             "|---|---|---|---|---:|---:|"]
    for r in report.rules:
        lines.append(f"| {md_cell(r.id)} | {md_cell(r.name)} | {r.severity} | {_STATUS[r.status]} "
                     f"| {r.violations} | {r.checked} |")
    lines.append("")
    for rule in report.rules:
        if rule.status == "fail":
            lines += _rule_details(rule)
    idle = [r for r in report.rules if r.status == "not-exercised"]
    if idle:
        lines += ["### Not exercised", ""]
        lines += [f"- {md_text(r.id)} {md_text(r.name)}: {md_text(r.note or 'no traffic matched')}"
                  for r in idle]
        lines.append("")
    lines += ["### Topology", "", *md_block(topology_lines(report.topology)), ""]
    if report.points:
        lines += ["### Capture points", "",
                  "| point | role | frames | decoded | undecodable | kernel drops | error |",
                  "|---|---|---:|---:|---|---:|---|"]
        for p in report.points:
            drops = "-" if p.kernel_drops is None else p.kernel_drops
            lines.append(f"| {md_cell(p.name)} | {md_cell(p.role)} | {p.frames} | {p.decoded} "
                         f"| {md_cell(undecodable_text(p))} | {drops} | {md_cell(p.error or '')} |")
        lines.append("")
    if report.host_findings:
        lines += ["### Host problems the traffic did not show", ""] + [
            f"- {md_cell(f)}" for f in report.host_findings] + [""]
    if report.errors:
        lines += ["### Input problems", ""] + [f"- {md_cell(e)}" for e in report.errors] + [""]
    return "\n".join(lines)
