"""Run the library on a written scenario and compare what it found with the ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dr_inspect.analysis.paths import analyse_paths
from dr_inspect.options import VerifyOptions

from .model import RealServerTruth, Truth

ARP_RULES = ("DR005", "DR006")


@dataclass
class Observed:
    verdict: str
    exit_code: int
    failed: frozenset[str]
    vips: frozenset[str]
    director_macs: dict[str, frozenset[str]]
    real_servers: frozenset[RealServerTruth]
    evidence: dict[str, frozenset]
    connections: frozenset
    names: dict[str, str]
    warnings: frozenset[str]                  # warning-severity rules that failed


def observe(folder: Path) -> Observed:
    """verify the capture set; exit 2 (a TopologyError/InputError) propagates to the caller."""
    analysis = analyse_paths([folder], VerifyOptions(max_evidence=100_000))
    report = analysis.report
    flows = analysis.flows
    by_flow = {}
    if len(flows):
        for fid, client_ip, port, vip, seq in zip(flows["flow_id"], flows["client_ip"],
                                                  flows["client_port"], flows["vip"], flows["seq"]):
            by_flow[int(fid)] = (str(client_ip), int(port), str(vip), int(seq))
    failed = frozenset(r.id for r in report.rules if r.status == "fail" and r.severity == "error")
    evidence: dict[str, frozenset] = {}
    for r in report.rules:
        if r.id not in failed:
            continue
        if r.id in ARP_RULES:
            evidence[r.id] = frozenset(str(e.extra.get("claimer_mac")) for e in r.evidence)
        elif r.id == "DR013":
            evidence[r.id] = frozenset(e.point for e in r.evidence)
        else:
            evidence[r.id] = frozenset(by_flow.get(int(e.extra["flow_id"]), ("?", e.five_tuple))
                                       if "flow_id" in e.extra else ("no flow_id", e.five_tuple)
                                       for e in r.evidence)
    topo = report.topology
    servers = frozenset(RealServerTruth(rs.rip, frozenset(rs.macs.items()))
                        for rs in topo.real_servers) if topo else frozenset()
    return Observed(verdict=report.verdict, exit_code=report.exit_code, failed=failed,
                    vips=frozenset(topo.vips) if topo else frozenset(),
                    director_macs={k: frozenset(v) for k, v in (topo.director_macs if topo else {}).items()},
                    real_servers=servers, evidence=evidence,
                    connections=frozenset(by_flow.values()),
                    names={rs.rip: rs.name for rs in topo.real_servers if rs.rip} if topo else {},
                    warnings=frozenset(r.id for r in report.rules
                                       if r.status == "fail" and r.severity == "warning"))


def _rs_text(servers) -> list[str]:
    return sorted(f"{s.rip}={sorted(m for _, m in s.macs)}" for s in servers)


def differences(truth: Truth, seen: Observed) -> list[str]:
    """What the analysis got wrong, one line each (empty: it agrees with the truth)."""
    out = []
    if seen.verdict != truth.verdict:
        out.append(f"verdict {seen.verdict}, truth {truth.verdict}")
    if seen.failed != truth.failed:
        out.append(f"failed rules {sorted(seen.failed)}, truth {sorted(truth.failed)}")
    if seen.warnings & truth.quiet_warnings:
        out.append(f"warnings {sorted(seen.warnings & truth.quiet_warnings)} must not fail")
    if seen.vips != truth.vips:
        out.append(f"VIPs {sorted(seen.vips)}, truth {sorted(truth.vips)}")
    if seen.director_macs != truth.director_macs:
        out.append(f"director MACs {seen.director_macs}, truth {truth.director_macs}")
    # a server whose RIP the traffic never shows (truth None) matches any learned RIP
    want = {s.macs: s.rip for s in truth.real_servers}
    got = {s.macs: s.rip for s in seen.real_servers}
    rip_ok = all(want[m] is None or got[m] == want[m] for m in want if m in got)
    if set(want) != set(got) or not rip_ok:
        out.append(f"real servers {_rs_text(seen.real_servers)}, truth {_rs_text(truth.real_servers)}")
    named = {rip: seen.names.get(rip) for rip in truth.names}
    if named != truth.names:
        out.append(f"real server names {named}, manifest {truth.names}")
    flows = frozenset(c for c in seen.connections
                      if c in truth.connections or c[:3] not in truth.partial)
    if flows != truth.connections:
        extra = sorted(map(str, flows - truth.connections))
        missing = sorted(map(str, truth.connections - flows))
        out.append(f"connections: {len(flows)} flows, truth {len(truth.connections)}; "
                   f"extra {extra[:3]}, missing {missing[:3]}")
    for rule in sorted(truth.failed & seen.failed):
        if seen.evidence.get(rule) != truth.evidence.get(rule):
            extra = sorted(map(str, seen.evidence.get(rule, set()) - truth.evidence.get(rule, set())))
            missing = sorted(map(str, truth.evidence.get(rule, set()) - seen.evidence.get(rule, set())))
            out.append(f"{rule} evidence: extra {extra[:4]}, missing {missing[:4]}")
    return out
