"""Small value formatters shared by every renderer (pure, no I/O)."""

from __future__ import annotations

import re

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


def split_host_cause(cause: str) -> tuple[str, str]:
    """A host cause line ("HC002 on real server rs1 (...): arp_ignore=0 ...; fix: sysctl -w ...")
    as (the command that fixes it or "", what was found)."""
    found, sep, fix = cause.partition("; fix: ")
    return (fix, found) if sep else ("", cause)


def host_fixes(causes: list[str]) -> list[tuple[str, list[str]]]:
    """Host causes grouped by the command that fixes them (one command, all its findings), in
    order; causes without a command each stand alone under ""."""
    grouped: dict[str, list[str]] = {}
    alone: list[tuple[str, list[str]]] = []
    for cause in causes:
        fix, found = split_host_cause(cause)
        if fix:
            grouped.setdefault(fix, []).append(found)
        else:
            alone.append(("", [found]))
    return list(grouped.items()) + alone


_FRAME_FILTER = re.compile(r"^frame\.number == (\d+)(?: && (.*))?$")


def group_evidence(evidence: list[Evidence]) -> list[list[Evidence]]:
    """Evidence items that say the same thing (point, expected, actual, cause) grouped, in order
    of first appearance: ten identical DR012 lines become one group."""
    groups: dict[tuple[str, str, str, str], list[Evidence]] = {}
    for ev in evidence:
        groups.setdefault((ev.point, ev.expected, ev.actual, ev.cause), []).append(ev)
    return list(groups.values())


def group_filter(group: list[Evidence]) -> str:
    """One Wireshark filter for a group: 'frame.number in {3 5 6} && <the common rest>' when each
    filter is 'frame.number == N && <the same rest>', else the first item's filter."""
    found = [_FRAME_FILTER.match(ev.display_filter) for ev in group]
    rests = {m.group(2) for m in found if m}
    if len(group) == 1 or not all(found) or len(rests) != 1:
        return group[0].display_filter
    frames = " ".join(m.group(1) for m in found if m)
    rest = rests.pop()
    return f"frame.number in {{{frames}}}" + (f" && {rest}" if rest else "")


def group_summary(group: list[Evidence]) -> str:
    """'7 frames in 2 connections' (or '1 connection: tcp ...') for a group of evidence."""
    frames = sum(len(ev.frames) or 1 for ev in group)
    tuples = list(dict.fromkeys(ev.five_tuple for ev in group))
    where = (f"1 connection: {tuples[0]}" if len(tuples) == 1
             else f"{len(tuples)} connections")
    return f"{frames} frames in {where}"


def evidence_rows(rule: RuleResult) -> list[dict[str, str]]:
    """The rule's evidence as table rows, one per group of items that say the same thing:
    point, frames, five_tuple (or the group summary), seq, expected, actual, cause, filter."""
    rows = []
    for group in group_evidence(rule.evidence):
        ev = group[0]
        single = len(group) == 1
        rows.append({"point": ev.point,
                     "frames": frames_text([f for e in group for f in e.frames]),
                     "five_tuple": ev.five_tuple if single else group_summary(group),
                     "seq": "" if not single or ev.seq is None else str(ev.seq),
                     "expected": ev.expected, "actual": ev.actual, "cause": ev.cause,
                     "filter": group_filter(group)})
    return rows


def failure_lines(rule: RuleResult, *, indent: str = "", bullet: str = "",
                  gap: bool = False) -> list[str]:
    """A failing rule's host fixes first (the most useful lines), its explanation, evidence
    (where, 5-tuple, seq, expected, actual, cause, filter; items that say the same thing grouped),
    the count left out and the fix, as plain text lines: the terminal table and JUnit bodies
    differ only in `indent` (the rule's own lines), `bullet` (before each violation) and `gap`
    (a blank line before each violation)."""
    detail = indent + " " * len(bullet) + "  "
    lines = []
    for fix, findings in host_fixes(rule.host_causes):
        lines.append(f"{indent}HOST FIX: {fix}" if fix else f"{indent}HOST: {findings[0]}")
        lines += [f"{indent}  because {found}" for found in (findings if fix else findings[1:])]
    if rule.explanation:
        lines.append(f"{indent}why: {rule.explanation}")
    for group in group_evidence(rule.evidence):
        ev = group[0]
        if gap:
            lines.append("")
        if len(group) == 1:
            lines.append(f"{indent}{bullet}{evidence_where(ev)}  {ev.five_tuple}"
                         + (f"  seq {ev.seq}" if ev.seq is not None else ""))
        else:
            frames = [f for e in group for f in e.frames]
            lines.append(f"{indent}{bullet}{ev.point} {frames_text(frames)}: {group_summary(group)}")
        lines.append(f"{detail}expected: {ev.expected}")
        lines.append(f"{detail}actual:   {ev.actual}")
        if ev.cause:
            lines.append(f"{detail}cause:    {ev.cause}")
        lines.append(f"{detail}filter:   {group_filter(group)}")
    if rule.evidence_omitted:
        lines.append(f"{indent}... and {rule.evidence_omitted} more (--max-evidence keeps "
                     f"{len(rule.evidence)})")
    if rule.fix_hint:
        lines.append(f"{indent}fix: {rule.fix_hint}")
    return lines


def rule_counts(report: VerifyReport) -> dict[str, int]:
    counts = {"rules": len(report.rules), "pass": 0, "fail": 0, "not-exercised": 0,
              "errors_failed": 0, "warnings_failed": 0}
    for rule in report.rules:
        counts[rule.status] = counts.get(rule.status, 0) + 1
        if rule.status == "fail":
            counts["errors_failed" if rule.severity == "error" else "warnings_failed"] += 1
    return counts


def filter_line(report: VerifyReport) -> str | None:
    """'filter: --rs rs1: 3 of 6 connections judged (3 left out); ARP/ND frames: 8 kept, 2 left
    out', or None for an unfiltered report."""
    f = report.filter
    if not f:
        return None
    total = f["connections"] + f["connections_left_out"]
    return (f"filter: {f['filter']}: {f['connections']} of {total} connections judged "
            f"({f['connections_left_out']} left out); ARP/ND frames: {f['arp_frames']} kept, "
            f"{f['arp_left_out']} left out")


def verdict_line(report: VerifyReport) -> str:
    """One line a person (and a log grep) can read: 'FAIL: 2 error rules failed ...'."""
    c = rule_counts(report)
    head = "PASS" if report.verdict == "pass" else "FAIL"
    parts = [f"{c['pass']} passed", f"{c['errors_failed']} failed (error)",
             f"{c['warnings_failed']} failed (warning)", f"{c['not-exercised']} not exercised"]
    return (f"{head}: {', '.join(parts)} of {c['rules']} rules; "
            f"{report.flows} flows, {report.hops} hops")
