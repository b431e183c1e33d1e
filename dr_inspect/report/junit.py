"""JUnit XML: one testcase per rule, for Jenkins and GitLab test reports.

Failing rules are <failure> (type "error" or "warning", so Jenkins can mark warnings unstable),
rules that matched no traffic are <skipped> (they did not pass), passing rules are plain
testcases. The evidence goes into the failure body, one block per violation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dr_inspect.model import RuleResult, VerifyReport
from dr_inspect.report.escape import clean_report
from dr_inspect.report.format import failure_lines, filter_line, rule_counts, verdict_line
from dr_inspect.report.table import topology_lines

CLASSNAME = "dr-inspect.DR"
SUITE_NAME = "dr-inspect.DR"


def _failure_body(rule: RuleResult) -> str:
    return "\n".join([rule.title, *failure_lines(rule, gap=True)])


def _testcase(suite: ET.Element, rule: RuleResult) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": CLASSNAME,
                                             "name": f"{rule.id} {rule.name}", "time": "0"})
    if rule.status == "fail":
        failure = ET.SubElement(case, "failure", {
            "message": f"{rule.id} {rule.name}: {rule.violations} violation(s) of {rule.checked} checked",
            "type": rule.severity})
        failure.text = _failure_body(rule)
    elif rule.status == "not-exercised":
        ET.SubElement(case, "skipped", {"message": f"not exercised: {rule.note or 'no traffic matched'}"})
    else:
        out = ET.SubElement(case, "system-out")
        out.text = f"{rule.title}: {rule.checked} checked, 0 violations"


def render_junit(report: VerifyReport) -> str:
    """Always well-formed XML: every text from the input has its control characters (invalid
    in XML 1.0) escaped before ElementTree escapes markup."""
    report = clean_report(report)
    counts = rule_counts(report)
    attrs = {"tests": str(counts["rules"]), "failures": str(counts["fail"]),
             "errors": "0", "skipped": str(counts["not-exercised"]), "time": "0"}
    # junit-10.xsd (Jenkins) has no 'skipped' on <testsuites>, only on <testsuite>.
    root = ET.Element("testsuites", {"name": "dr-inspect",
                                     **{k: v for k, v in attrs.items() if k != "skipped"}})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **attrs})
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", report.verdict), ("flows", str(report.flows)),
                        ("hops", str(report.hops)),
                        ("points", ",".join(p.name for p in report.points))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    selected = filter_line(report)
    if selected:
        ET.SubElement(props, "property", {"name": "filter", "value": selected})
    for rule in report.rules:
        _testcase(suite, rule)
    out = ET.SubElement(suite, "system-out")
    out.text = "\n".join(topology_lines(report.topology) + [verdict_line(report)])
    if report.errors:
        err = ET.SubElement(suite, "system-err")
        err.text = "\n".join(report.errors)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
