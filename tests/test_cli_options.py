"""Shared option types: one duration syntax (seconds, or a unit suffix) for every --window,
--interval and --duration; nan, inf, zero and negative values are usage errors, never a run
that never ends."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dr_inspect.cli import main
from dr_inspect.cli.options import parse_duration


@pytest.mark.parametrize("text, seconds", [("2", 2.0), ("2s", 2.0), ("500ms", 0.5), ("0.25", 0.25),
                                           ("1.5m", 90.0), ("1h", 3600.0), (" 3 s ", 3.0),
                                           ("1e-3", 0.001)])
def test_durations_with_and_without_units(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "0", "0ms", "", "2x", "1e400",
                                  "ms", "--1", "NaNms", "1 2"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_positive_finite_duration_or_refused(text):
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds) and seconds > 0


@pytest.mark.parametrize("argv", [
    ["verify", "--window", "{v}", "x"],
    ["ladder", "--window", "{v}", "--flow", "1", "x"],
    ["report", "--window", "{v}", "--html", "r.html", "x"],
    ["watch", "--bridge", "lo", "--interval", "{v}"],
    ["watch", "--bridge", "lo", "--window", "{v}"],
    ["watch", "--bridge", "lo", "--duration", "{v}"],
    ["capture", "--bridge", "lo", "--duration", "{v}"],
    ["lab", "traffic", "--timeout", "{v}"],
])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_every_duration_option_refuses_nan_inf_and_non_positive(argv, value):
    result = CliRunner().invoke(main, [a.replace("{v}", value) for a in argv])
    assert result.exit_code == 2, result.output
    assert "duration" in result.output and "Traceback" not in result.output


def test_verify_window_suffixes_mean_the_same(tmp_path):
    from test_cli_verify import write_dr_set
    healthy = write_dr_set(tmp_path / "set")
    outputs = {w: CliRunner().invoke(main, ["verify", "-q", "--format", "json", "--window", w,
                                            str(healthy)]) for w in ("500ms", "0.5", "0.5s")}
    assert {r.exit_code for r in outputs.values()} == {0}
    assert len({r.output for r in outputs.values()}) == 1
    assert '"window_ms": 500.0' in outputs["500ms"].output
