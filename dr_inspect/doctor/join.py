"""Join host checks to a verify report: a failing DR rule gets the host configuration lines that
explain it ("HC002 on real server rs1 (MAC ...): arp_ignore=0 ...; fix: sysctl -w ...").

Pure: snapshots and report in, report.rules[*].host_causes filled in place.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.catalogue import BY_ID
from dr_inspect.doctor.checks import parse_vip
from dr_inspect.doctor.result import HostCheck
from dr_inspect.doctor.run import vip_from_ipvs, doctor_snapshots
from dr_inspect.errors import InputError
from dr_inspect.model import Topology, VerifyReport

_ROLE_WORDS = {"director": "director", "realserver": "real server"}


def _topology_names(snapshots: dict[str, dict[str, Any]], topology: Topology | None
                    ) -> dict[str, tuple[str, str | None, str | None]]:
    """snapshot name -> (label, role, MAC) from the MACs the traffic showed; label is the
    topology's name for the host (rs1 ...) or the snapshot's name."""
    out: dict[str, tuple[str, str | None, str | None]] = {}
    director_macs = {m.lower() for ms in (topology.director_macs.values() if topology else []) for m in ms}
    rs_macs = {m.lower(): rs.name for rs in (topology.real_servers if topology else []) for m in rs.macs.values()}
    for name, snap in snapshots.items():
        own = hs.macs(snap)
        hit_d = next((m for m in own.values() if m in director_macs), None)
        hit_rs = next((m for m in own.values() if m in rs_macs), None)
        if hit_d:
            out[name] = (name, "director", hit_d)
        elif hit_rs:
            topo_name = rs_macs[hit_rs]
            label = name if topo_name == name else f"{name} ({topo_name} in the traffic)"
            out[name] = (label, "realserver", hit_rs)
        else:
            out[name] = (name, None, None)
    return out


def _vips(snapshots: dict[str, dict[str, Any]], report: VerifyReport) -> list[tuple[Any, int | None]]:
    vips = []
    for text in (report.topology.vips if report.topology else []):
        try:
            vips.append(parse_vip(text))
        except InputError:
            continue
    if not vips:
        found = vip_from_ipvs(snapshots)
        if found:
            vips.append(found)
    return vips


def _mentions(text: str, subject: str) -> bool:
    """Whether `text` already names `subject` as a word ("... on lo" names "lo")."""
    return re.search(rf"(?<![\w.]){re.escape(subject)}(?![\w.])", text) is not None


def cause_line(check: HostCheck, label: str, role: str, mac: str | None, snap: dict[str, Any]) -> str:
    """One sentence per host cause, from one template: 'HC002 on real server rs1 (eth14, MAC
    02:00:..): arp_ignore=0 (...); fix: sysctl -w ...'. The host is named once (the director is
    "the director", not "director director") and the subject only when the finding does not
    already say it (no "on lo on lo")."""
    word = _ROLE_WORDS.get(role, role)
    host = f"the {word}" if label.lower() == word else f"{word} {label}"
    details = [check.subject] if check.subject and not _mentions(check.found, check.subject) else []
    mac_text = hs.macs(snap).get(check.subject) or mac
    if mac_text:
        details.append(f"MAC {mac_text}")
    text = f"{check.id} on {host}" + (f" ({', '.join(details)})" if details else "")
    text += f": {check.found}"
    if check.fix:
        text += f"; fix: {check.fix}"
    return text


def host_causes(snapshots: dict[str, dict[str, Any]], report: VerifyReport) -> None:
    """Fill RuleResult.host_causes of every failing DR rule that a failing host check explains,
    and report.host_findings with the failing checks no failing rule shows (latent
    misconfiguration the captured traffic did not exercise)."""
    failing = [r for r in report.rules if r.status == "fail"]
    if not snapshots:
        return
    names = _topology_names(snapshots, report.topology)
    roles = {n: role for n, (_label, role, _mac) in names.items() if role}
    director_macs = tuple(m for ms in (report.topology.director_macs.values() if report.topology else []) for m in ms)
    lines_by_rule: dict[str, list[str]] = {}
    for vip, port in _vips(snapshots, report):
        doctor = doctor_snapshots(snapshots, ipaddress.ip_address(vip), port, roles=roles,
                                  director_macs=director_macs, source="verify")
        by_host = {h.host: h for h in doctor.hosts}
        for name, snap in snapshots.items():
            hreport = by_host.get(str(snap.get("host") or name))
            if hreport is None:
                continue
            label, _role, mac = names[name]
            for check in hreport.checks:
                if check.status != "fail":
                    continue
                line = cause_line(check, label, hreport.role, mac, snap)
                if not {r.id for r in failing} & set(BY_ID[check.id].explains):
                    if line not in report.host_findings:
                        report.host_findings.append(line)
                    continue
                for rule_id in BY_ID[check.id].explains:
                    lines_by_rule.setdefault(rule_id, [])
                    if line not in lines_by_rule[rule_id]:
                        lines_by_rule[rule_id].append(line)
    for rule in failing:
        for line in lines_by_rule.get(rule.id, []):
            if line not in rule.host_causes:
                rule.host_causes.append(line)
