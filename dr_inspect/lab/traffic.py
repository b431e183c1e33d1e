"""`lab traffic`: real clients in the client namespace (loadgen, curl), with fresh ARP caches."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

from dr_inspect.errors import LabError
from dr_inspect.lab import sysrun
from dr_inspect.lab.state import LabState


@dataclass
class TrafficResult:
    ok: int
    failed: int
    per_server: dict[str, int]
    errors: dict[str, int] = field(default_factory=dict)
    tool: str = "loadgen"

    @property
    def requests(self) -> int:
        return self.ok + self.failed


def flush_arp(state: LabState) -> None:
    """Empty the neighbour caches so the traffic starts with ARP, as a fresh client would.

    A fault that plants a client ARP entry (stale-arp) keeps it: that entry is the fault.
    """
    faults = set(state.config.faults)
    for host in state.hosts.values():
        if host.netns is None or host.role == "director":
            continue
        if host.role == "client" and "stale-arp" in faults:
            continue
        state.run(host.name, ["ip", "neigh", "flush", "all"])


def run_traffic(state: LabState, requests: int = 10, concurrency: int = 2, payload: int | list[int] = 0,
                *, reply_size: int = 0, timeout: float = 5.0, fresh_arp: bool = True) -> TrafficResult:
    """Run the load generator in the client namespace; count answers per real server."""
    if requests < 1 or concurrency < 1:
        raise LabError("requests and concurrency must be at least 1")
    payloads = payload if isinstance(payload, list) else [payload]
    if fresh_arp:
        flush_arp(state)
    from dr_inspect.lab.build import python_env
    client = state.host("client")
    argv = ["ip", "netns", "exec", client.netns, sys.executable, "-m", "dr_inspect.lab.loadgen",
            "--vip", state.vip, "--port", str(state.port), "--requests", str(requests),
            "--concurrency", str(concurrency), "--payload", ",".join(str(p) for p in payloads),
            "--reply-size", str(reply_size), "--timeout", str(timeout), "--json"]
    budget = timeout * (requests / concurrency + 2) + 10
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=python_env(), timeout=budget)
    except subprocess.TimeoutExpired:
        raise LabError(f"traffic generator did not finish in {budget:g}s") from None
    if proc.returncode != 0:
        raise LabError(f"traffic generator failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return TrafficResult(ok=data["ok"], failed=data["failed"], per_server=data["per_server"],
                         errors=data["errors"], tool="loadgen")


def run_curl(state: LabState, requests: int = 4, *, timeout: float = 3.0, fresh_arp: bool = True) -> TrafficResult:
    """The seed's traffic: `curl http://VIP:PORT` from the client, one request after another."""
    sysrun.need_tool("curl", "lab traffic --curl")
    if fresh_arp:
        flush_arp(state)
    per_server: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    url = f"http://{state.vip}:{state.port}/"
    for _ in range(requests):
        proc = state.run("client", ["curl", "-s", "-S", "-m", f"{timeout:g}", "-D", "-", url],
                         timeout=timeout + 5)
        if proc.returncode != 0:
            errors[f"curl exit {proc.returncode}"] += 1
            continue
        served = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
                  if line.lower().startswith("x-served-by:")]
        per_server[served[0] if served else "unknown"] += 1
    ok = sum(per_server.values())
    return TrafficResult(ok=ok, failed=requests - ok, per_server=dict(sorted(per_server.items())),
                         errors=dict(errors), tool="curl")
