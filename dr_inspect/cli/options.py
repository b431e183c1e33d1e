"""Click parameter types shared by the commands.

Durations: every --window, --interval and --duration takes seconds, or a number with a unit
(`500ms`, `2s`, `1.5m`); nan, inf, zero and negative values are refused at parse time (a nan
--duration never ended, a nan --window compared false with everything).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from dr_inspect.options import TimeBound

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(?P<n>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<u>ms|s|m|h)?\s*$")
DURATION_HELP = "seconds, or with a unit: 500ms, 2s, 1m"


def parse_duration(text: str) -> float:
    """Seconds of a duration given as `2`, `2.5s`, `500ms`, `1m` or `1h`; ValueError otherwise."""
    m = _DURATION.match(str(text))
    if m is None:
        raise ValueError(f"{text!r} is not a duration ({DURATION_HELP})")
    seconds = float(m.group("n")) * _UNITS[m.group("u") or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} is not a positive, finite duration")
    return seconds


class Duration(click.ParamType):
    """A positive, finite duration (see parse_duration), given to the command in seconds, or in
    milliseconds with per_second=1000 (for a library argument counted in ms)."""

    name = "duration"

    def __init__(self, per_second: float = 1.0):
        self.per_second = per_second

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(float(value))
        try:
            return parse_duration(str(value)) * self.per_second
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
DURATION_MS = Duration(per_second=1000.0)


def ssh_host_options(func):
    """--host, --inventory, --ssh-config, --ssh-option: the remote hosts of capture and doctor."""
    for decorator in reversed([
        click.option("--host", "hosts", multiple=True, metavar="NAME=[USER@]HOST[:PORT]",
                     help="A remote host, reached with ssh (your keys and ssh config; "
                          "BatchMode, read-only for doctor); repeatable."),
        click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path),
                     metavar="FILE", help="Remote hosts, their roles, interfaces and ssh "
                                          "settings (TOML; see the README)."),
        click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
                     metavar="FILE", help="ssh -F FILE for the --host hosts (default: your "
                                          "~/.ssh/config)."),
        click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
                     help="ssh -o KEY=VALUE for the --host hosts; repeatable."),
    ]):
        func = decorator(func)
    return func


TIME_HELP = ("an offset from the capture's first frame as a duration (30s, 2m) or an ISO 8601 "
             "time (2026-12-03T16:40:00Z; UTC when it names no zone)")


class TimeBoundType(click.ParamType):
    """--since/--until: an offset from the capture start (a duration, see parse_duration) or
    an absolute ISO 8601 time, as the library's TimeBound."""

    name = "time"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "TIME"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> TimeBound:
        if isinstance(value, TimeBound):
            return value
        text = str(value).strip()
        try:
            return TimeBound(text, offset_s=parse_duration(text))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is neither an offset (30s, 2m) nor an ISO 8601 time "
                      "(2026-12-03T16:40:00Z)", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        return TimeBound(text, epoch_ns=(when - epoch) // timedelta(microseconds=1) * 1000)


TIME_BOUND = TimeBoundType()
