"""One self-contained HTML report: no network fetches, inline CSS and SVG, no script.

Sections: verdict and rule table; the learned topology as a picture; for each failing rule its
evidence and the ladder of one offending connection; ladders of a few healthy connections; per
real server the share of connections and the latency distributions; capture points.
"""

from __future__ import annotations

from html import escape
from typing import Any

from dr_inspect.model import Ladder, RuleResult, VerifyReport
from dr_inspect.report.escape import clean_report
from dr_inspect.report.charts import latency_chart, share_chart
from dr_inspect.report.format import evidence_rows, filter_line, host_fixes, verdict_line
from dr_inspect.report.ladder_svg import render_ladder_svg
from dr_inspect.report.ladder_text import render_ladder_text
from dr_inspect.report.ladders import ReportLadders, select_ladders
from dr_inspect.report.table import topology_lines, undecodable_text
from dr_inspect.report.topology_svg import render_topology_svg

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px;margin:0 0 8px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin-top:22px}
.verdict{padding:12px 16px;border-radius:6px;font-size:18px;font-weight:bold}
.verdict .summary{font-size:13px;font-weight:normal;margin-top:4px}
.verdict.pass{background:#d3f9d8;color:#0b6e1e} .verdict.fail{background:#ffe3e3;color:#a51111}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top;font-size:13px} th{background:#f1f3f5}
td.num{text-align:right} tr.fail td.status{color:#a51111;font-weight:bold}
tr.fail.warning td.status{color:#b35c00} tr.not-exercised td{color:#777}
tr.pass td.status{color:#0b6e1e}
code,pre{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
pre{background:#f8f9fa;padding:8px;overflow-x:auto} .figure{overflow-x:auto;margin:8px 0}
.note{color:#555} .muted{color:#777}
.figure svg{max-width:100%;height:auto}
.hostfix{background:#fff4e6;border-left:5px solid #e8590c;padding:8px 12px;margin:10px 0;
font-size:15px;color:#111} .hostfix code{font-size:14px;font-weight:bold;color:#a52a00}
.hostfix ul{margin:4px 0 0;font-size:13px;color:#333}
table.evidence td{overflow-wrap:anywhere}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _rule_table(report: VerifyReport) -> str:
    rows = []
    for r in report.rules:
        status = "FAIL" if r.status == "fail" else r.status.replace("-", " ")
        cls = f"{r.status} {r.severity}"
        ident = f'<a href="#{_e(r.id)}">{_e(r.id)}</a>' if r.status == "fail" else _e(r.id)
        rows.append(f'<tr class="{cls}"><td>{ident}</td><td>{_e(r.name)}</td>'
                    f'<td>{_e(r.title)}</td><td>{r.severity}</td><td class="status">{status}</td>'
                    f'<td class="num">{r.violations}</td><td class="num">{r.checked}</td></tr>')
    return ('<table class="rules"><thead><tr><th>id</th><th>name</th><th>title</th>'
            '<th>severity</th><th>status</th><th>violations</th><th>checked</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


MAX_LADDER_STEPS = 40   # packets drawn per ladder; keeps the file small for long connections


def _ladder_block(ladder: Ladder) -> str:
    return (f'<div class="figure">{render_ladder_svg(ladder, max_steps=MAX_LADDER_STEPS)}</div>'
            f'<details><summary>as text</summary><pre>{_e(render_ladder_text(ladder))}</pre>'
            '</details>')


def _failing_rule(rule: RuleResult, ladder: Ladder | None) -> str:
    parts = [f'<h3 id="{_e(rule.id)}">{_e(rule.id)} {_e(rule.name)} ({rule.severity}): '
             f'{rule.violations} violation(s)</h3>', f"<p>{_e(rule.title)}</p>"]
    for fix, findings in host_fixes(rule.host_causes):
        head = f"<b>Fix on the host:</b> <code>{_e(fix)}</code>" if fix else "<b>On the host:</b>"
        parts.append(f'<div class="hostfix">{head}<ul>'
                     + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ul></div>")
    if rule.explanation:
        parts.append(f'<p class="note">{_e(rule.explanation)}</p>')
    if rule.fix_hint:
        parts.append(f"<p><b>Fix:</b> {_e(rule.fix_hint)}</p>")
    rows = []
    for row in evidence_rows(rule):
        cells = "".join(f"<td>{_e(row[k])}</td>" for k in ("point", "frames", "five_tuple", "seq",
                                                            "expected", "actual", "cause"))
        rows.append(f"<tr>{cells}<td><code>{_e(row['filter'])}</code></td></tr>")
    if rows:
        parts.append('<table class="evidence"><thead><tr><th>point</th><th>frames</th>'
                     '<th>5-tuple</th><th>seq</th><th>expected</th><th>actual</th><th>cause</th>'
                     f'<th>Wireshark filter</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    if rule.evidence_omitted:
        parts.append(f"<p>... and {rule.evidence_omitted} more</p>")
    if ladder is not None:
        parts.append(f"<p>One offending connection (flow {ladder.flow_id}):</p>")
        parts.append(_ladder_block(ladder))
    return "\n".join(parts)


def _points_table(report: VerifyReport) -> str:
    rows = []
    for p in report.points:
        drops = "-" if p.kernel_drops is None else p.kernel_drops
        rows.append(f"<tr><td>{_e(p.name)}</td><td>{_e(p.role)}</td><td>{_e(p.file)}</td>"
                    f'<td class="num">{p.frames}</td><td class="num">{p.decoded}</td>'
                    f"<td>{_e(undecodable_text(p))}</td><td class=\"num\">{drops}</td>"
                    f'<td class="num">{p.clock_offset_ns / 1e3:.1f}</td><td>{_e(p.error or "")}</td></tr>')
    return ('<table><thead><tr><th>point</th><th>role</th><th>file</th><th>frames</th>'
            '<th>decoded</th><th>undecodable</th><th>kernel drops</th><th>clock offset us</th>'
            f'<th>error</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _server_section(stats: dict[str, Any]) -> str:
    servers = stats.get("real_servers") or []
    if not servers:
        return '<p class="muted">No per-server statistics.</p>'
    names = [str(s.get("name", "?")) for s in servers]
    return "\n".join([
        f'<div class="figure">{share_chart(servers)}</div>',
        '<div class="figure">' + latency_chart(
            list(zip(names, (s.get("forward_delay_us") for s in servers))),
            "director forwarding delay (VIP segment in -> RS segment out)") + "</div>",
        '<div class="figure">' + latency_chart(
            list(zip(names, (s.get("response_us") for s in servers))),
            "server response time (forwarded request -> reply from the VIP)") + "</div>",
        '<p class="muted">Boxes span the 25th to 75th percentile, the red line is the median, '
        "whiskers reach the 5th and 95th percentile; log scale. Hover for all figures.</p>",
    ])


def render_html(report: VerifyReport, analysis: Any = None, *,
                ladders: ReportLadders | None = None, title: str = "dr-inspect report") -> str:
    """The whole report as one HTML document. Ladders are built from `analysis` (capped) unless
    given; with neither, the report has no ladders. Every text is HTML-escaped and one line."""
    report = clean_report(report)
    if ladders is None:
        ladders = select_ladders(report, analysis) if analysis is not None else ReportLadders()
    body = [f"<h1>{_e(title)}</h1>",
            f'<div class="verdict {report.verdict}" id="verdict">Verdict: {report.verdict.upper()}'
            f'<div class="summary">{_e(verdict_line(report))}</div></div>']
    selected = filter_line(report)
    if selected:
        body.append(f'<p class="filter" id="filter">{_e(selected)}</p>')
    body += ["<h2>Rules</h2>", _rule_table(report)]
    if report.host_findings:
        body.append("<h3>Host problems the traffic did not show</h3><ul>"
                    + "".join(f"<li>{_e(f)}</li>" for f in report.host_findings) + "</ul>")
    if report.errors:
        body.append("<h3>Input problems</h3><ul>"
                    + "".join(f"<li>{_e(e)}</li>" for e in report.errors) + "</ul>")
    body += ["<h2>Learned topology</h2>",
             f'<div class="figure">{render_topology_svg(report.topology)}</div>',
             f"<pre>{_e(chr(10).join(topology_lines(report.topology)))}</pre>"]
    failing = [r for r in report.rules if r.status == "fail"]
    body.append("<h2>Failing rules</h2>")
    if failing:
        body += [_failing_rule(r, ladders.offending.get(r.id)) for r in failing]
    else:
        body.append("<p>None.</p>")
    idle = [r for r in report.rules if r.status == "not-exercised"]
    if idle:
        body.append("<h3>Not exercised (no traffic matched; these did not pass)</h3><ul>"
                    + "".join(f"<li>{_e(r.id)} {_e(r.name)}: {_e(r.note or 'nothing matched')}</li>"
                              for r in idle) + "</ul>")
    body.append("<h2>Other connections (sample)</h2>")
    unlisted = sum(r.evidence_omitted for r in failing)
    if ladders.healthy:
        body.append("<p>Connections that no evidence names; whole ones (handshake answered, one "
                    "real server) come first.</p>")
        if unlisted:
            body.append(f'<p class="note">{unlisted} violation(s) are not listed individually, so '
                        "these connections may share them: read their ladders with that in "
                        "mind.</p>")
        body += [_ladder_block(ladder) for ladder in ladders.healthy]
    else:
        body.append('<p class="muted">No ladders available.</p>')
    if ladders.problems:
        body.append("<ul>" + "".join(f'<li class="note">ladder not drawn: {_e(p)}</li>'
                                     for p in ladders.problems) + "</ul>")
    body += ["<h2>Real servers</h2>", _server_section(report.stats),
             "<h2>Capture points</h2>", _points_table(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}: {report.verdict.upper()}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
