"""Host check results (HC001...) and the doctor report. Plain dataclasses, rendered elsewhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# `doctor --format json` documents carry it; keys are only ever added, never renamed
SCHEMA = "dr-inspect.doctor/1"

CheckStatus = Literal["pass", "fail", "not-checked"]
Role = Literal["director", "realserver"]


@dataclass
class HostCheck:
    id: str                 # HC001 ... (public contract, see catalogue.CATALOGUE)
    name: str               # rs-vip-on-loopback ...
    host: str               # snapshot host name (rs1, director, a netns, a hostname)
    role: str               # director | realserver
    status: CheckStatus
    subject: str = ""       # what was looked at: "eth14", "VIP 192.168.7.33:8000" ...
    found: str = ""         # the value found ("arp_ignore=0 (all=0, eth14=0)")
    needed: str = ""        # the value DR needs ("arp_ignore >= 1")
    fix: str = ""           # the command that fixes it (or what to do when no command does)
    reason: str = ""        # why not checked, or a one-line detail

    @property
    def line(self) -> str:
        """One line for reports and host_causes: 'HC002 rs1 eth14: arp_ignore=0 ... (need ...)'."""
        where = f"{self.host} {self.subject}".strip()
        if self.status == "not-checked":
            return f"{self.id} {where}: not checked: {self.reason}"
        text = f"{self.id} {where}: {self.found}"
        if self.status == "fail" and self.needed:
            text += f" (need {self.needed})"
        return text


@dataclass
class HostReport:
    host: str
    role: str
    role_source: str          # given | snapshot | guessed
    netns: str | None
    taken_at: str | None
    checks: list[HostCheck]
    snapshot_errors: dict[str, str] = field(default_factory=dict)


@dataclass
class DoctorReport:
    vip: str                  # "ip" or "ip:port" ("[v6]:port")
    hosts: list[HostReport]
    source: str = "live"      # live | capture-set path

    @property
    def checks(self) -> list[HostCheck]:
        return [c for h in self.hosts for c in h.checks]

    @property
    def verdict(self) -> str:
        return "fail" if any(c.status == "fail" for c in self.checks) else "pass"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "fail" else 0

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "not-checked": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        data = {"schema": SCHEMA, **asdict(self)}
        data["verdict"] = self.verdict
        data["counts"] = self.counts()
        return data
