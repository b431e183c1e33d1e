"""VerifyOptions: what shapes one verification, passed from the CLI (or a library caller) down
to the analysis in one object instead of a run of keyword arguments."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from dr_inspect.errors import InputError


@dataclass(frozen=True)
class TimeBound:
    """One end of a --since/--until window: seconds after the capture start (offset_s) or an
    absolute time (epoch_ns, UTC). text: as the user gave it, for the report's filter line."""

    text: str
    offset_s: float | None = None
    epoch_ns: int | None = None

    def __post_init__(self) -> None:
        if (self.offset_s is None) == (self.epoch_ns is None):
            raise InputError(f"time {self.text!r}: exactly one of an offset and an absolute "
                             "time")

    def at_ns(self, capture_start_ns: int) -> int:
        """The bound on the capture's clock (ns since the epoch)."""
        if self.epoch_ns is not None:
            return self.epoch_ns
        return capture_start_ns + round(self.offset_s * 1e9)


@dataclass(frozen=True)
class FlowFilter:
    """Which connections verify judges and reports (the topology and the clock offsets are
    still learned from the whole capture set, so names are those of an unfiltered run).

    Within one field the values are alternatives; the fields together must all hold.
    clients: client IPs or CIDR networks. real_servers: real-server names, RIPs or MACs.
    vips: VIPs, "IP" (every port) or "IP:PORT". since/until: connections that start in
    [since, until)."""

    clients: tuple[str, ...] = ()
    real_servers: tuple[str, ...] = ()
    vips: tuple[str, ...] = ()
    since: TimeBound | None = None
    until: TimeBound | None = None

    def __post_init__(self) -> None:
        for name in ("clients", "real_servers", "vips"):
            object.__setattr__(self, name, tuple(str(v).strip() for v in getattr(self, name)))
        for client in self.clients:
            try:
                ipaddress.ip_network(client, strict=False)
            except ValueError:
                raise InputError(f"--client {client!r} is not an IP address or a CIDR network "
                                 "(10.0.0.5, 10.0.0.0/24)") from None
        if not all(self.real_servers):
            raise InputError("--rs: give a real-server name, RIP or MAC")

    @property
    def active(self) -> bool:
        return bool(self.clients or self.real_servers or self.vips or self.since or self.until)

    def describe(self) -> str:
        """The filter as command-line options: `--client 10.0.0.0/24 --rs rs1`."""
        parts = [f"--client {c}" for c in self.clients]
        parts += [f"--rs {r}" for r in self.real_servers]
        parts += [f"--vip {v}" for v in self.vips]
        return " ".join(parts + [self.describe_times()]).strip()

    def describe_times(self) -> str:
        """`--since 30s --until 2m` (as given), or ''."""
        return " ".join(f"--{name} {bound.text}" for name, bound in
                        (("since", self.since), ("until", self.until)) if bound)


@dataclass(frozen=True)
class VerifyOptions:
    """Options of `dr_inspect.verify` (and of the ladder, the HTML report and watch).

    vips: VIPs to check ("IP:PORT", "[IPv6]:PORT" or a bare IP); default: learned from traffic.
    topology_file: a topology.toml pinning VIPs, director, real servers, roles, scheduler.
    rule_files: extra rule files, added to the bundled catalogue (ids must be unique).
    window_ms: how far apart in time two sightings of one packet at different points may be.
    max_evidence: evidence items kept per rule (the rest are counted).
    scheduler: the director's scheduler when neither the capture set's manifest nor the
        topology file names it (watch's --scheduler); None: unknown, checked as round robin.
    flow_filter: judge and report only these connections (None: all).
    """

    vips: tuple[str, ...] = ()
    topology_file: Path | None = None
    rule_files: tuple[Path, ...] = ()
    window_ms: float = 500.0
    max_evidence: int = 10
    scheduler: str | None = None
    flow_filter: FlowFilter | None = None

    def __post_init__(self) -> None:
        # lists from callers become tuples: the options stay hashable and unchanged
        object.__setattr__(self, "vips", tuple(self.vips))
        object.__setattr__(self, "rule_files", tuple(self.rule_files))
        if not self.window_ms > 0:
            raise InputError(f"window must be positive, got {self.window_ms} ms")
        if self.max_evidence < 0:
            raise InputError(f"max evidence must be >= 0, got {self.max_evidence}")
