"""Command-line values of capture and watch turned into library inputs (pure)."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

from dr_inspect.captureset import ROLES
from dr_inspect.errors import InputError
from dr_inspect.live.capture import CapturePoint


def parse_pairs(values: tuple[str, ...] | list[str], option: str) -> dict[str, str]:
    """["br_e=vip-segment", ...] -> {"br_e": "vip-segment"}."""
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InputError(f"{option} {value!r}: expected NAME=VALUE")
        pairs[name] = rest
    return pairs


def points_from_bridges(bridges: tuple[str, ...] | list[str], netns: str | None,
                        roles: tuple[str, ...] | list[str]) -> list[CapturePoint]:
    """One capture point per --bridge (named after it), with its --role NAME=ROLE."""
    if not bridges:
        raise InputError("give at least one --bridge NAME")
    role_of = parse_pairs(roles, "--role")
    unknown = sorted(set(role_of) - set(bridges))
    if unknown:
        raise InputError(f"--role names {', '.join(unknown)}, which is not a --bridge")
    for name, role in role_of.items():
        if role not in ROLES:
            raise InputError(f"--role {name}={role}: role must be one of {', '.join(ROLES)}")
    return [CapturePoint(name=b, interface=b, netns=netns, role=role_of.get(b)) for b in bridges]


def snapshot_hosts(netns: str | None, extra: tuple[str, ...] | list[str], include_self: bool) -> dict[str, str | None]:
    """The capturing host itself (its netns, or this host) unless `include_self` is false
    (--no-snapshot), plus the --snapshot HOST=NETNS ones, which are always taken."""
    hosts: dict[str, str | None] = {netns or socket.gethostname(): netns} if include_self else {}
    for name, ns in parse_pairs(extra, "--snapshot").items():
        hosts[name] = None if ns == "-" else ns
    return hosts


def default_out_dir(now: datetime | None = None) -> Path:
    now = now or datetime.now()
    return Path(f"dr-capture-{now:%Y%m%d-%H%M%S}")
