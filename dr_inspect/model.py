"""Result objects shared by verify, doctor and every report renderer.

Plain dataclasses so renderers (table, JSON, JUnit, Markdown, HTML) are pure functions of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "not-exercised"]
Severity = Literal["error", "warning"]


@dataclass
class Evidence:
    """One violation, with what a person needs to find it in Wireshark."""

    point: str                      # capture point name
    frames: list[int]               # 1-based frame numbers at that point
    ts_ns: list[int]                # their timestamps
    five_tuple: str                 # "tcp 192.168.7.2:51000 -> 192.168.7.33:8000" (or "arp" ...)
    expected: str
    actual: str
    display_filter: str             # a Wireshark display filter that shows it
    cause: str = ""                 # one line: likely cause and the fix
    seq: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuleResult:
    id: str                         # DR001 ... (public contract)
    name: str                       # forward-mac-rewrite ...
    title: str
    severity: Severity
    status: Status
    checked: int = 0                # how many items the rule looked at
    violations: int = 0
    evidence: list[Evidence] = field(default_factory=list)   # capped; see evidence_omitted
    evidence_omitted: int = 0       # "and N more"
    explanation: str = ""
    fix_hint: str = ""
    note: str = ""                  # e.g. why not exercised
    host_causes: list[str] = field(default_factory=list)     # doctor checks that explain it


@dataclass
class PointSummary:
    name: str
    file: str
    role: str                       # vip-segment | rs-segment | both | unknown
    interface: str = ""
    frames: int = 0
    decoded: int = 0
    undecodable: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    clock_offset_ns: int = 0        # estimated offset against the reference point
    kernel_drops: int | None = None
    snaplen: int | None = None
    error: str | None = None        # a read error; frames before it were kept


@dataclass
class RealServer:
    name: str                       # rs1, rs2 ... in order of first appearance
    macs: dict[str, str]            # segment/point role -> MAC
    rip: str | None = None


@dataclass
class Topology:
    vips: list[str]                                  # "ip:port" (IPv6 as "[ip]:port")
    director_macs: dict[str, list[str]]              # segment -> MACs
    real_servers: list[RealServer]
    point_roles: dict[str, str]                      # point -> role
    shape: str = "two-segment"                       # two-segment | shared-segment | single-point
    pinned: dict[str, Any] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # pinned values the traffic contradicts


@dataclass
class VerifyReport:
    verdict: Literal["pass", "fail"]
    rules: list[RuleResult]
    topology: Topology | None
    points: list[PointSummary]
    flows: int = 0
    hops: int = 0
    errors: list[str] = field(default_factory=list)  # input problems that did not stop the run
    stats: dict[str, Any] = field(default_factory=dict)
    # failing host checks (snapshots) that no failing rule shows: latent misconfiguration
    host_findings: list[str] = field(default_factory=list)
    # the connection filter (--client/--rs/--vip/--since/--until) and what it kept and left
    # out: {"filter", "connections", "connections_left_out", "arp_frames", "arp_left_out"}
    filter: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        # verdict "fail" also covers captures that never exercised the core forwarding rules
        if self.verdict == "fail":
            return 1
        return 1 if any(r.status == "fail" and r.severity == "error" for r in self.rules) else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LadderStep:
    """One packet at one capture point, placed on the seed's narrative."""

    label: str        # client send | director receive | director send | server receive | server send | client receive
    point: str
    frame: int
    ts_ns: int
    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    src_port: int | None
    dst_port: int | None
    ttl: int | None
    tcp_flags: int | None
    seq: int | None
    ack: int | None
    payload_len: int | None
    src_host: str = ""   # client | director | rs1 ... (column the arrow starts at)
    dst_host: str = ""   # column the arrow ends at
    note: str = ""       # e.g. "dst MAC rewritten to rs1", "reply bypasses director"
    instance: int = 0    # 0: the packet's first sending; 1, 2 ...: its retransmissions
    breaks: list[str] = field(default_factory=list)   # rule ids whose evidence names this frame


@dataclass
class Ladder:
    flow_id: int
    five_tuple: str
    real_server: str | None
    hosts: list[str]             # columns, left to right: client, director, rs1...
    points: list[str]
    steps: list[LadderStep]
    violations: list[str] = field(default_factory=list)   # rule ids this flow violates
