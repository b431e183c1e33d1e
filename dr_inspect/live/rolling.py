"""Rolling verdicts of `watch`: what changed since the last interval, and the run's final report.

Each interval verifies the packets of the sliding window; windows overlap, so the same violation
is seen several times. Violations are identified by rule, point, frames and 5-tuple (frame
numbers keep counting for the whole run), which makes "new" and the final counts exact. Pure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from dr_inspect.model import Evidence, PointSummary, RuleResult, Topology, VerifyReport


_MAX_ERRORS = 50


def violation_key(rule_id: str, ev: Evidence) -> tuple:
    # not `actual`: aggregate rules (DR011) restate their counts each window for the same frames
    return (rule_id, ev.point, tuple(ev.frames), ev.five_tuple)


@dataclass
class PointLive:
    name: str
    role: str
    interface: str = ""
    packets: int = 0                 # frames decoded since the start
    window_packets: int = 0          # frames in the current window
    received: int | None = None      # tcpdump's counts (SIGUSR1 each interval, final at exit)
    dropped: int | None = None
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    error: str | None = None


@dataclass
class IntervalVerdict:
    index: int
    at_ns: int                        # wall clock of the evaluation
    status: str                       # pass | fail | waiting (no DR traffic learned yet) | idle
    failing: list[str]                # rule ids failing in the window now
    new: list[tuple[RuleResult, Evidence]]
    new_unshown: int                  # new violations beyond the evidence a rule keeps
    packets: dict[str, int]           # point -> frames decoded in this interval
    window_packets: int
    flows: int                        # flows in the window
    drops: dict[str, int | None]      # point -> kernel drops so far
    lag_ms: float | None              # newest frame's age when it was decoded (capture -> decoder)
    eval_ms: float                    # time verify took on the window
    note: str = ""
    report: VerifyReport | None = None   # the window's own report (None: idle or not verifiable)


@dataclass
class _RuleAcc:
    last: RuleResult
    ever_failed: bool = False
    ever_passed: bool = False
    checked: int = 0
    keys: dict = field(default_factory=dict)   # violation key -> its newest timestamp
    unique: int = 0
    evidence: list[Evidence] = field(default_factory=list)
    omitted_seen: int = 0


class RollingVerdict:
    """Accumulates interval reports into new-violation lists and one final VerifyReport."""

    def __init__(self, max_evidence: int = 10):
        self.max_evidence = max_evidence
        self._rules: dict[str, _RuleAcc] = {}
        self._order: list[str] = []
        self.topology: Topology | None = None
        self.errors: list[str] = []
        self.intervals = 0
        self.max_flows = 0
        self.max_hops = 0

    def add(self, report: VerifyReport, *, judged_from_ns: int | None = None,
            judged_to_ns: int | None = None,
            forget_before_ns: int | None = None,
            edge_free: frozenset[str] | set[str] = frozenset()) -> tuple[list[str], list[tuple[RuleResult, Evidence]], int]:
        """Fold one window's report in; return (failing now, new violations, new ones not shown).

        Only evidence whose first timestamp lies in [judged_from_ns, judged_to_ns] counts: near
        the window's edges a packet's context (its copy, its SYN-ACK) may be outside the window,
        and the neighbouring window, which overlaps, judges it with that context. Evidence
        without timestamps, and rules in `edge_free` (judged on single frames, e.g. ARP claims),
        always count. Keys of violations older than forget_before_ns (gone
        from every later window) are forgotten, so memory stays bounded.
        """
        self.intervals += 1
        self.topology = report.topology or self.topology
        self.max_flows = max(self.max_flows, report.flows)
        self.max_hops = max(self.max_hops, report.hops)
        for err in report.errors:
            if err not in self.errors and len(self.errors) < _MAX_ERRORS:   # bounded memory
                self.errors.append(err)
        lo = judged_from_ns if judged_from_ns is not None else -(1 << 63)
        hi = judged_to_ns if judged_to_ns is not None else (1 << 63) - 1
        failing: list[str] = []
        new: list[tuple[RuleResult, Evidence]] = []
        unshown = 0
        for rule in report.rules:
            acc = self._rules.get(rule.id)
            if acc is None:
                acc = self._rules[rule.id] = _RuleAcc(last=rule)
                self._order.append(rule.id)
            acc.last = rule
            acc.checked = max(acc.checked, rule.checked)
            if forget_before_ns is not None:
                acc.keys = {k: ts for k, ts in acc.keys.items() if ts is None or ts >= forget_before_ns}
            if rule.status == "pass":
                acc.ever_passed = True
            if rule.status != "fail":
                continue
            judged = [ev for ev in rule.evidence
                      if rule.id in edge_free or not ev.ts_ns or lo <= min(ev.ts_ns) <= hi]
            if not judged and rule.evidence:
                continue   # every violation sits at an edge: the next window decides
            acc.ever_failed = True
            failing.append(rule.id)
            for ev in judged:
                key = violation_key(rule.id, ev)
                if key in acc.keys:
                    continue
                acc.keys[key] = max(ev.ts_ns) if ev.ts_ns else None
                acc.unique += 1
                new.append((rule, ev))
                if len(acc.evidence) < self.max_evidence:
                    acc.evidence.append(ev)
            # violations beyond the kept evidence cannot be told apart: count them once per window
            # when they grow, so the final count is a lower bound, never a double count.
            if rule.evidence_omitted > acc.omitted_seen:
                unshown += rule.evidence_omitted - acc.omitted_seen
                acc.omitted_seen = rule.evidence_omitted
        return failing, new, unshown

    def final_report(self, points: list[PointLive], flows: int) -> VerifyReport:
        rules: list[RuleResult] = []
        for rid in self._order:
            acc = self._rules[rid]
            rule = copy.copy(acc.last)
            status = "fail" if acc.ever_failed else ("pass" if acc.ever_passed else "not-exercised")
            unique = acc.unique + acc.omitted_seen
            rule.status = status  # type: ignore[assignment]
            rule.checked = acc.checked
            rule.violations = unique if acc.ever_failed else 0
            rule.evidence = list(acc.evidence)
            rule.evidence_omitted = max(0, unique - len(acc.evidence)) if acc.ever_failed else 0
            if status == "fail" and acc.last.status != "fail":
                rule.note = (rule.note + "; " if rule.note else "") + "failed earlier in the run, passes in the last window"
            rules.append(rule)
        failed = any(r.status == "fail" and r.severity == "error" for r in rules)
        summaries = [PointSummary(name=p.name, file="(live)", role=p.role, interface=p.interface,
                                  frames=p.packets, decoded=p.packets, first_ts_ns=p.first_ts_ns,
                                  last_ts_ns=p.last_ts_ns, kernel_drops=p.dropped, error=p.error)
                     for p in points]
        stats: dict[str, Any] = {"live_intervals": self.intervals,
                                 "checked": "largest count of one window (windows overlap)",
                                 "max_flows_in_window": self.max_flows,
                                 "hops": "largest count of one window"}
        return VerifyReport(verdict="fail" if failed else "pass", rules=rules, topology=self.topology,
                            points=summaries, flows=flows, hops=self.max_hops, errors=list(self.errors), stats=stats)
