"""watch --metrics: the Prometheus exporter fed a verdict made from a bundled report (unit), and
scraped over HTTP while `dr-inspect watch` runs on the lab (lab, prefix t17m)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from conftest import ROOT, reap, running_lab, wait_for
from dr_inspect.errors import InputError
from dr_inspect.live.metrics import WatchMetrics, parse_listen_address, serve_metrics
from dr_inspect.live.rolling import IntervalVerdict
from dr_inspect.analysis.paths import verify_paths
from test_watch import Traffic, _env


def verdict_of(report, index: int = 1, drops: int = 0) -> IntervalVerdict:
    failing = [r.id for r in report.rules if r.status == "fail"]
    new = [(r, ev) for r in report.rules if r.status == "fail" for ev in r.evidence]
    return IntervalVerdict(index=index, at_ns=0, status="fail" if failing else "pass",
                           failing=failing, new=new, new_unshown=0,
                           packets={"br_e": 100, "br_lvs": 40}, window_packets=140,
                           flows=report.flows, drops={"br_e": drops, "br_lvs": None}, lag_ms=12.0,
                           eval_ms=30.0, report=report)


def value(text: str, metric: str, **labels: str) -> float:
    """The sample `name{labels}` of an exposition text (labels in any order)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == metric:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if got == labels:
                return float(m.group(3))
    raise AssertionError(f"no sample {metric}{labels} in:\n{text}")


def test_exporter_fed_a_failing_then_a_passing_report():
    metrics = WatchMetrics()
    report = verify_paths([ROOT / "captures" / "fault-port-mismatch"])
    metrics.update(verdict_of(report, drops=3))
    text = metrics.text()
    dr009 = {"rule": "DR009", "name": "handshake-completes", "severity": "error"}
    assert value(text, "dr_inspect_rule_failing", **dr009) == 1
    assert value(text, "dr_inspect_rule_violations_total", **dr009) == 3
    dr001 = {"rule": "DR001", "name": "forward-mac-rewrite", "severity": "error"}
    assert value(text, "dr_inspect_rule_failing", **dr001) == 0
    assert value(text, "dr_inspect_rule_exercised", **dr001) == 1
    assert value(text, "dr_inspect_window_failing") == 1
    assert value(text, "dr_inspect_intervals_total", status="fail") == 1
    assert value(text, "dr_inspect_capture_kernel_drops", point="br_e") == 3
    assert value(text, "dr_inspect_capture_packets_total", point="br_lvs") == 40
    servers = {rs["name"]: rs for rs in report.stats["real_servers"]}
    assert value(text, "dr_inspect_rs_connections", real_server="rs1") == \
        servers["rs1"]["connections"] == 3
    rs2 = np.array(servers["rs2"]["response_us"], dtype=float)
    assert value(text, "dr_inspect_rs_response_seconds", real_server="rs2", quantile="0.5") == \
        pytest.approx(np.quantile(rs2, 0.5) / 1e6)
    # rs1 refused every connection: no reply time, NaN rather than a made-up number
    assert np.isnan(value(text, "dr_inspect_rs_response_seconds", real_server="rs1",
                          quantile="0.95"))

    healthy = verify_paths([ROOT / "captures" / "seed-ipvs"])
    metrics.update(verdict_of(healthy, index=2))
    text = metrics.text()
    assert value(text, "dr_inspect_rule_failing", **dr009) == 0
    assert value(text, "dr_inspect_rule_violations_total", **dr009) == 3     # a counter
    assert value(text, "dr_inspect_window_failing") == 0
    assert value(text, "dr_inspect_intervals_total", status="pass") == 1
    assert value(text, "dr_inspect_capture_packets_total", point="br_e") == 200


def test_idle_verdict_keeps_the_last_window_values():
    metrics = WatchMetrics()
    report = verify_paths([ROOT / "captures" / "fault-port-mismatch"])
    metrics.update(verdict_of(report))
    idle = IntervalVerdict(index=2, at_ns=0, status="idle", failing=[], new=[], new_unshown=0,
                           packets={"br_e": 0}, window_packets=0, flows=0, drops={"br_e": 5},
                           lag_ms=None, eval_ms=0.0)
    metrics.update(idle)
    text = metrics.text()
    assert value(text, "dr_inspect_window_failing") == 1
    assert value(text, "dr_inspect_intervals_total", status="idle") == 1
    assert value(text, "dr_inspect_capture_kernel_drops", point="br_e") == 5


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9469", ("127.0.0.1", 9469)), (":9469", ("0.0.0.0", 9469)),
    ("9469", ("0.0.0.0", 9469)), ("[::1]:9469", ("::1", 9469)),
])
def test_listen_address(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", "1.2.3.4:http", "1.2.3.4:70000", ""])
def test_bad_listen_address(text):
    with pytest.raises(InputError, match="--metrics"):
        parse_listen_address(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_endpoint_serves_the_registry():
    port = free_port()
    metrics, server = serve_metrics(f"127.0.0.1:{port}")
    try:
        metrics.update(verdict_of(verify_paths([ROOT / "captures" / "seed-ipvs"])))
        assert value(scrape(port), "dr_inspect_window_failing") == 0
        with pytest.raises(InputError, match="cannot listen"):
            serve_metrics(f"127.0.0.1:{port}")           # taken
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.lab
def test_metrics_scraped_during_a_lab_watch():
    port = free_port()
    with running_lab("t17m", director="nft", real_servers=2) as lab:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dr_inspect", "watch", "--bridge", "br_e", "--bridge", "br_lvs",
             "--netns", lab.switch_netns, "--role", "br_e=vip-segment",
             "--role", "br_lvs=rs-segment", "--interval", "1", "--duration", "8",
             "--scheduler", "flow-hash", "--metrics", f"127.0.0.1:{port}", "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        scraped = []
        try:
            with Traffic(lab):
                def has_servers() -> bool:
                    try:
                        text = scrape(port)
                    except OSError:
                        return False
                    scraped.append(text)
                    # tcpdump's drop counts come with its stats, a moment after the first verdicts
                    return ("dr_inspect_rs_connections{" in text
                            and 'dr_inspect_capture_kernel_drops{point="br_lvs"}' in text)
                wait_for(has_servers, proc, "no per-real-server or drop metrics while watching",
                         timeout=60, poll=0.5)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            reap(proc)
    assert proc.returncode == 0, stderr[-2000:]
    text = scraped[-1]
    dr001 = {"rule": "DR001", "name": "forward-mac-rewrite", "severity": "error"}
    assert value(text, "dr_inspect_rule_failing", **dr001) == 0
    assert value(text, "dr_inspect_rule_exercised", **dr001) == 1
    assert value(text, "dr_inspect_intervals_total", status="pass") >= 1
    assert value(text, "dr_inspect_capture_packets_total", point="br_e") > 0
    assert value(text, "dr_inspect_capture_kernel_drops", point="br_lvs") == 0
    served = [value(text, "dr_inspect_rs_connections", real_server=rs) for rs in ("rs1", "rs2")
              if f'real_server="{rs}"' in text]
    assert served and sum(served) > 0
    assert f"metrics: http://127.0.0.1:{port}/metrics" in stderr
    time.sleep(0.2)
    with pytest.raises(OSError):                  # the endpoint ends with the watch
        scrape(port)
