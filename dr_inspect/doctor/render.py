"""Doctor report renderers: table, JSON, JUnit XML, Markdown. Pure: DoctorReport -> text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from tabulate import tabulate

from dr_inspect.doctor.catalogue import BY_ID, CATALOGUE
from dr_inspect.doctor.result import DoctorReport, HostCheck, HostReport

FORMATS = ("table", "json", "junit", "markdown")
_MARK = {"pass": "PASS", "fail": "FAIL", "not-checked": "NOT CHECKED"}


def _summary(report: DoctorReport) -> str:
    c = report.counts()
    return (f"doctor {report.vip}: {_MARK.get(report.verdict, report.verdict.upper())} - {c['fail']} failed, {c['pass']} passed, "
            f"{c['not-checked']} not checked ({len(report.hosts)} host(s), {report.source})")


def _host_title(h: HostReport) -> str:
    ns = f", netns {h.netns}" if h.netns else ""
    return f"{h.host}: {h.role} (role {h.role_source}{ns}, snapshot {h.taken_at or '?'})"


def _detail(c: HostCheck) -> str:
    if c.status == "not-checked":
        return c.reason
    text = c.found
    if c.status == "fail" and c.reason:
        text += f" - {c.reason}"
    return text


def _fixes(h: HostReport) -> list[tuple[str, str]]:
    """(which checks, command), one entry per distinct command: one cause can fail two checks."""
    grouped: dict[str, list[str]] = {}
    for c in h.checks:
        if c.status == "fail" and c.fix:
            grouped.setdefault(c.fix, []).append(f"{c.id} {c.subject}".strip())
    return [(", ".join(who), fix) for fix, who in grouped.items()]


def render_table(report: DoctorReport) -> str:
    out = []
    for h in report.hosts:
        rows = [[c.id, BY_ID[c.id].name, c.subject, _MARK[c.status], _detail(c),
                 c.needed if c.status == "fail" else ""] for c in h.checks]
        out.append(_host_title(h))
        out.append(tabulate(rows, headers=["id", "check", "subject", "status", "found", "needed"],
                            tablefmt="simple", maxcolwidths=[None, None, 24, None, 60, 36]))
        fixes = _fixes(h)
        if fixes:
            out.append("fix:")
            out.extend(f"  {who}: {fix}" for who, fix in fixes)
        out.append("")
    out.append(_summary(report))
    return "\n".join(out) + "\n"


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def render_junit(report: DoctorReport) -> str:
    c = report.counts()
    suites = ET.Element("testsuites", {"name": "dr-inspect doctor", "tests": str(len(report.checks)),
                                       "failures": str(c["fail"]), "skipped": str(c["not-checked"])})
    for h in report.hosts:
        hc = {"pass": 0, "fail": 0, "not-checked": 0}
        for chk in h.checks:
            hc[chk.status] += 1
        suite = ET.SubElement(suites, "testsuite", {"name": f"dr-inspect.doctor.{h.host}",
                                                    "tests": str(len(h.checks)), "failures": str(hc["fail"]),
                                                    "skipped": str(hc["not-checked"]), "errors": "0"})
        for chk in h.checks:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"dr-inspect.doctor.{h.host}",
                "name": f"{chk.id} {chk.name} {chk.subject}".strip(), "time": "0"})
            if chk.status == "fail":
                failure = ET.SubElement(case, "failure", {"message": chk.line, "type": "error"})
                failure.text = "\n".join(x for x in (f"found: {chk.found}", f"needed: {chk.needed}",
                                                     f"why: {chk.reason}" if chk.reason else "",
                                                     f"fix: {chk.fix}" if chk.fix else "") if x)
            elif chk.status == "not-checked":
                ET.SubElement(case, "skipped", {"message": f"not checked: {chk.reason}"})
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _md(text: object) -> str:
    """Host-provided text (interface names, sysctl values, command output) as one Markdown
    table cell: no raw HTML, no table break (| and newlines), no markup of its own (backticks
    included)."""
    # deferred: only Markdown output needs the report package (and what it loads)
    from dr_inspect.report.escape import md_cell
    return md_cell(text).replace("`", "\\`")


def render_markdown(report: DoctorReport) -> str:
    from dr_inspect.report.escape import md_code
    out = [f"# dr-inspect doctor: {_md(report.vip)}", "", f"**{_md(_summary(report))}**", ""]
    for h in report.hosts:
        out += [f"## {_md(_host_title(h))}", ""]
        out += ["| id | check | subject | status | found | needed |", "|---|---|---|---|---|---|"]
        for c in h.checks:
            out.append(f"| {_md(c.id)} | {_md(c.name)} | {_md(c.subject)} | {_MARK[c.status]} "
                       f"| {_md(_detail(c))} | {_md(c.needed) if c.status == 'fail' else ''} |")
        fixes = _fixes(h)
        if fixes:
            out += ["", "Fix:", ""]
            out += [f"- {_md(who)}: {md_code(fix)}"
                    for who, fix in fixes]
        out.append("")
    return "\n".join(out)


def render(report: DoctorReport, fmt: str) -> str:
    renderers = {"table": render_table, "json": render_json, "junit": render_junit,
                 "markdown": render_markdown}
    return renderers[fmt](report)


def render_catalogue(fmt: str = "table") -> str:
    """The host check list (ids are a public contract) with the DR rules each one explains."""
    rows = [{"id": c.id, "name": c.name, "role": c.role, "checks": c.title, "explains": list(c.explains)}
            for c in CATALOGUE]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "markdown":
        out = ["| id | name | role | checks | explains |", "|---|---|---|---|---|"]
        out += [f"| {r['id']} | {r['name']} | {r['role']} | {_md(r['checks'])} | {', '.join(r['explains'])} |"
                for r in rows]
        return "\n".join(out) + "\n"
    return tabulate([[r["id"], r["name"], r["role"], r["checks"], ", ".join(r["explains"])] for r in rows],
                    headers=["id", "name", "role", "checks", "explains"], maxcolwidths=[None, None, None, 60, 20]) + "\n"
