"""`watch --metrics ADDR`: a Prometheus endpoint fed by each rolling verdict, so a watch running
under systemd next to the farm feeds existing dashboards and alerts.

Exported (all prefixed dr_inspect_):
  rule_failing{rule,name,severity}          1 while the rule fails in the current window, else 0
  rule_exercised{rule,name,severity}        1 when the current window had traffic for the rule
  rule_violations_total{rule,name,severity} distinct violations seen since the start
  violations_beyond_evidence_total          violations past --max-evidence (not told apart by rule)
  window_failing                            1 when an error-severity rule fails in the window
  intervals_total{status}                   verdicts by status (pass, fail, waiting, idle)
  rs_connections{real_server}               connections to the real server in the window
  rs_response_seconds{real_server,quantile} reply time of its connections (0.5, 0.95)
  rs_forward_delay_seconds{...}             director forwarding delay toward it (0.5, 0.95)
  capture_packets_total{point}              frames decoded at the capture point
  capture_kernel_drops{point}               tcpdump's count of frames the kernel dropped
  capture_lag_seconds, verify_seconds       decoder lag and time to verify the window
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from dr_inspect.errors import InputError
from dr_inspect.live.rolling import IntervalVerdict

QUANTILES = (0.5, 0.95)
_RULE = ("rule", "name", "severity")
_STATUSES = ("pass", "fail", "waiting", "idle")


def parse_listen_address(text: str) -> tuple[str, int]:
    """"HOST:PORT", ":PORT" (every address), "PORT" or "[IPv6]:PORT" -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--metrics {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9469")
    return host, int(port)


class WatchMetrics:
    """The metrics of one watch run in their own registry; update() with each verdict."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rule_failing = Gauge("dr_inspect_rule_failing", "1 while the rule fails in the "
                                  "current window", _RULE, registry=r)
        self.rule_exercised = Gauge("dr_inspect_rule_exercised", "1 when the current window had "
                                    "traffic the rule could check", _RULE, registry=r)
        self.violations = Counter("dr_inspect_rule_violations", "Distinct violations seen since "
                                  "the start", _RULE, registry=r)
        self.unshown = Counter("dr_inspect_violations_beyond_evidence", "Violations past "
                               "--max-evidence per window, not told apart by rule", registry=r)
        self.window_failing = Gauge("dr_inspect_window_failing", "1 when an error-severity rule "
                                    "fails in the current window", registry=r)
        self.intervals = Counter("dr_inspect_intervals", "Rolling verdicts by status",
                                 ["status"], registry=r)
        for status in _STATUSES:
            self.intervals.labels(status=status)
        self.rs_connections = Gauge("dr_inspect_rs_connections", "Connections to the real server "
                                    "in the current window", ["real_server"], registry=r)
        self.rs_response = Gauge("dr_inspect_rs_response_seconds", "Reply time of the real "
                                 "server's connections in the window", ["real_server", "quantile"],
                                 registry=r)
        self.rs_forward = Gauge("dr_inspect_rs_forward_delay_seconds", "Director forwarding delay "
                                "toward the real server in the window", ["real_server", "quantile"],
                                registry=r)
        self.packets = Counter("dr_inspect_capture_packets", "Frames decoded at the capture point",
                               ["point"], registry=r)
        self.drops = Gauge("dr_inspect_capture_kernel_drops", "Frames the kernel dropped before "
                           "tcpdump saw them (tcpdump's count)", ["point"], registry=r)
        self.lag = Gauge("dr_inspect_capture_lag_seconds", "Age of the newest frame when decoded",
                         registry=r)
        self.verify_time = Gauge("dr_inspect_verify_seconds", "Time to verify the last window",
                                 registry=r)

    def update(self, verdict: IntervalVerdict) -> None:
        self.intervals.labels(status=verdict.status).inc()
        for point, n in verdict.packets.items():
            self.packets.labels(point=point).inc(n)
        for point, dropped in verdict.drops.items():
            if dropped is not None:
                self.drops.labels(point=point).set(dropped)
        if verdict.lag_ms is not None:
            self.lag.set(verdict.lag_ms / 1e3)
        self.verify_time.set(verdict.eval_ms / 1e3)
        new = Tally(rule.id for rule, _ in verdict.new)
        self.unshown.inc(verdict.new_unshown)
        report = verdict.report
        if report is None:            # idle or not verifiable yet: the last values stay
            return
        self.window_failing.set(1 if verdict.status == "fail" else 0)
        for rule in report.rules:
            labels = {"rule": rule.id, "name": rule.name, "severity": rule.severity}
            self.rule_failing.labels(**labels).set(1 if rule.id in verdict.failing else 0)
            self.rule_exercised.labels(**labels).set(0 if rule.status == "not-exercised" else 1)
            self.violations.labels(**labels).inc(new.get(rule.id, 0))
        for rs in report.stats.get("real_servers", []):
            self._real_server(rs)

    def _real_server(self, rs: dict[str, Any]) -> None:
        name = str(rs["name"])
        self.rs_connections.labels(real_server=name).set(int(rs.get("connections") or 0))
        for gauge, key in ((self.rs_response, "response_us"), (self.rs_forward, "forward_delay_us")):
            values = np.asarray(rs.get(key) or [], dtype=float)
            values = values[np.isfinite(values)]
            for q in QUANTILES:
                child = gauge.labels(real_server=name, quantile=str(q))
                child.set(float(np.quantile(values, q)) / 1e6 if values.size else float("nan"))

    def text(self) -> str:
        """The exposition text (what a scrape returns)."""
        return generate_latest(self.registry).decode()


@contextmanager
def serving_metrics(address: str | None) -> Iterator[WatchMetrics | None]:
    """The exporter served at `address` for the duration of the block (None: no endpoint)."""
    if address is None:
        yield None
        return
    metrics, server = serve_metrics(address)
    try:
        yield metrics
    finally:
        server.shutdown()
        server.server_close()


def serve_metrics(address: str) -> tuple[WatchMetrics, Any]:
    """Start the endpoint at `address` (HOST:PORT) in a daemon thread; (metrics, http server).
    The server's shutdown() stops it."""
    host, port = parse_listen_address(address)
    metrics = WatchMetrics()
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise InputError(f"--metrics {address}: cannot listen: {exc.strerror or exc}") from None
    return metrics, server
