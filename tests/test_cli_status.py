"""The status line: rewritten in place on a terminal; off a terminal, silent for short work and a
plain line now and then for long work (a CI log shows a capture is alive); nothing when quiet."""

from __future__ import annotations

import io

from dr_inspect.cli.status import PLAIN_AFTER, PLAIN_EVERY, StatusLine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_long_work_prints_plain_lines_now_and_then():
    out, clock = io.StringIO(), Clock()
    status = StatusLine(out, clock=clock)
    status.show("starting")                       # short work: nothing
    clock.now += PLAIN_AFTER
    status.show("br_e 10 packets")
    clock.now += 2.0
    status.show("br_e 20 packets")                # too soon after the last line
    clock.now += PLAIN_EVERY + 1.0
    status.show("br_e 30 packets")
    status.clear()
    assert out.getvalue().splitlines() == ["[2s] br_e 10 packets", "[10s] br_e 30 packets"]
    assert "\r" not in out.getvalue()


def test_short_work_and_quiet_stay_silent():
    for quiet, advance in ((False, PLAIN_AFTER / 2), (True, 60.0)):
        out, clock = io.StringIO(), Clock()
        status = StatusLine(out, quiet=quiet, clock=clock)
        clock.now += advance
        status.show("verifying")
        status.clear()
        assert out.getvalue() == ""


def test_on_a_terminal_one_line_is_rewritten():
    out = Tty()
    with StatusLine(out) as status:
        status.show("decoding br_e")
        status.show("rules")
    assert out.getvalue().startswith("\rdecoding br_e\rrules")
    assert out.getvalue().endswith("\r")
