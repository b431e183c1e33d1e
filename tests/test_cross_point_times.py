"""Times between two capture points are taken on corrected clocks: a capture set whose
real-server-side clock runs ahead or behind gives the same per-connection times (forwarding
delay, server response) and the same verdicts as the same traffic on one clock, and a frame
whose copy was found is judged even where the estimated offset puts the copy at the very end
of its point's span (issue 12's residual SCENARIO_SEED=162125891)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenarios.build import write_scenario
from scenarios.check import differences, observe
from scenarios.model import Fault, Scenario

from dr_inspect.analysis.paths import analyse_paths
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.options import VerifyOptions

US = 1_000


def _flows(sc: Scenario):
    with tempfile.TemporaryDirectory(prefix="clock-") as tmp:
        write_scenario(sc, Path(tmp))
        analysis = analyse_paths([Path(tmp)], VerifyOptions(max_evidence=100_000))
        flows = analysis.flows.sort_values(["client_ip", "client_port", "seq"])
        failed = {r.id for r in analysis.report.rules if r.status == "fail"}
        return flows.reset_index(drop=True), failed


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), offset_us=st.integers(10_000, 80_000),
       sign=st.sampled_from([-1, 1]), family=st.sampled_from([4, 6]))
def test_times_between_points_do_not_depend_on_the_clocks(seed, offset_us, sign, family):
    one_clock = Scenario(seed=seed, family=family, real_servers=3, clients=2, rounds=2)
    two_clocks = replace(one_clock, clock_offset_us=sign * offset_us)
    a, failed_a = _flows(one_clock)
    b, failed_b = _flows(two_clocks)
    assert failed_a == failed_b
    assert len(a) == len(b) and (a["seq"].to_numpy() == b["seq"].to_numpy()).all()
    tolerance_us = CLOCK_TOLERANCE_NS / US
    for column in ("forward_delay_us", "response_us"):
        x, y = a[column].to_numpy(dtype=float), b[column].to_numpy(dtype=float)
        assert (np.isnan(x) == np.isnan(y)).all(), column
        known = ~np.isnan(x)
        assert (np.abs(x[known] - y[known]) <= tolerance_us).all(), (column, x, y)
    # a server answers after the SYN reached it: never a negative response time
    assert (b["response_us"].dropna() > -tolerance_us).all()


def test_a_copy_the_offset_puts_before_its_original_at_a_span_end_is_judged():
    """The last request of a connection split to another server: its copy is the real-server
    point's last frame, and the estimated offset (30 us off) puts it 14 us before its original.
    It is still a forward to judge (DR008 names the connection)."""
    sc = Scenario(seed=4294967294, shape='two-segment', family=6, director='ipvs',
                  real_servers=6, vips=1, ports_per_vip=1, clients=2, rounds=1, port_reuse=2,
                  tso=1, clock_offset_us=13791, manifest_names=True,
                  faults=(Fault(kind='flow-split', rs=1), Fault(kind='rs-rp-filter', rs=0)))
    with tempfile.TemporaryDirectory(prefix="clock-") as tmp:
        truth = write_scenario(sc, Path(tmp))
        assert not differences(truth, observe(Path(tmp)))
