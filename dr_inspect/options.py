"""VerifyOptions: what shapes one verification, passed from the CLI (or a library caller) down
to the analysis in one object instead of a run of keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dr_inspect.errors import InputError


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
    """

    vips: tuple[str, ...] = ()
    topology_file: Path | None = None
    rule_files: tuple[Path, ...] = ()
    window_ms: float = 500.0
    max_evidence: int = 10
    scheduler: str | None = None

    def __post_init__(self) -> None:
        # lists from callers become tuples: the options stay hashable and unchanged
        object.__setattr__(self, "vips", tuple(self.vips))
        object.__setattr__(self, "rule_files", tuple(self.rule_files))
        if not self.window_ms > 0:
            raise InputError(f"window must be positive, got {self.window_ms} ms")
        if self.max_evidence < 0:
            raise InputError(f"max evidence must be >= 0, got {self.max_evidence}")
