"""Small value formatters shared by every renderer (pure, no I/O)."""

from __future__ import annotations

from dr_inspect.model import Evidence, RuleResult, VerifyReport

# tcpdump's order and letters, so a ladder reads like the tcpdump lines people already know.
_TCP_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."),
                     (0x20, "U"), (0x40, "E"), (0x80, "W"))
_TCP_FLAG_NAMES = ((0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"),
                   (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))


def tcp_flags_short(flags: int | None) -> str:
    """tcpdump style: SYN 'S', SYN-ACK 'S.', PSH-ACK 'P.', none 'none'; '-' when not TCP."""
    if flags is None:
        return "-"
    letters = "".join(ch for bit, ch in _TCP_FLAG_LETTERS if flags & bit)
    return letters or "none"


def tcp_flags_long(flags: int | None) -> str:
    """'SYN,ACK' style for hover text."""
    if flags is None:
        return "-"
    names = [name for bit, name in _TCP_FLAG_NAMES if flags & bit]
    return ",".join(names) or "none"


def opt(value: object) -> str:
    """A value or '-' for None."""
    return "-" if value is None else str(value)


def frames_text(frames: list[int], limit: int = 5) -> str:
    shown = ", ".join(f"#{f}" for f in frames[:limit])
    if len(frames) > limit:
        shown += f" (+{len(frames) - limit})"
    return shown or "-"


def evidence_where(ev: Evidence) -> str:
    return f"{ev.point} {frames_text(ev.frames)}"


def failure_lines(rule: RuleResult, *, indent: str = "", bullet: str = "",
                  gap: bool = False) -> list[str]:
    """A failing rule's explanation, evidence (where, 5-tuple, seq, expected, actual, cause,
    filter), the count left out, the fix and the host causes, as plain text lines: the terminal
    table and JUnit bodies differ only in `indent` (the rule's own lines), `bullet` (before each
    violation) and `gap` (a blank line before each violation)."""
    detail = indent + " " * len(bullet) + "  "
    lines = [f"{indent}why: {rule.explanation}"] if rule.explanation else []
    for ev in rule.evidence:
        if gap:
            lines.append("")
        lines.append(f"{indent}{bullet}{evidence_where(ev)}  {ev.five_tuple}"
                     + (f"  seq {ev.seq}" if ev.seq is not None else ""))
        lines.append(f"{detail}expected: {ev.expected}")
        lines.append(f"{detail}actual:   {ev.actual}")
        if ev.cause:
            lines.append(f"{detail}cause:    {ev.cause}")
        lines.append(f"{detail}filter:   {ev.display_filter}")
    if rule.evidence_omitted:
        lines.append(f"{indent}... and {rule.evidence_omitted} more")
    if rule.fix_hint:
        lines.append(f"{indent}fix: {rule.fix_hint}")
    lines.extend(f"{indent}host: {cause}" for cause in rule.host_causes)
    return lines


def rule_counts(report: VerifyReport) -> dict[str, int]:
    counts = {"rules": len(report.rules), "pass": 0, "fail": 0, "not-exercised": 0,
              "errors_failed": 0, "warnings_failed": 0}
    for rule in report.rules:
        counts[rule.status] = counts.get(rule.status, 0) + 1
        if rule.status == "fail":
            counts["errors_failed" if rule.severity == "error" else "warnings_failed"] += 1
    return counts


def verdict_line(report: VerifyReport) -> str:
    """One line a person (and a log grep) can read: 'FAIL: 2 error rules failed ...'."""
    c = rule_counts(report)
    head = "PASS" if report.verdict == "pass" else "FAIL"
    parts = [f"{c['pass']} passed", f"{c['errors_failed']} failed (error)",
             f"{c['warnings_failed']} failed (warning)", f"{c['not-exercised']} not exercised"]
    return (f"{head}: {', '.join(parts)} of {c['rules']} rules; "
            f"{report.flows} flows, {report.hops} hops")
