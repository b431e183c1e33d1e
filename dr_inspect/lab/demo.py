"""`lab demo` and lab captures: up, capture on br_e and br_lvs, traffic, stop, (verify), down.

`capture_traffic` is the piece shared with scripts/make_captures.py: it captures on both bridges
of a running lab while a traffic function runs, adds host snapshots, and records the lab (director
backend, faults, VIP) in the manifest's [capture] table.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dr_inspect.errors import DrInspectError, LabError
from dr_inspect.lab.build import lab_up
from dr_inspect.lab.faults import describe_faults
from dr_inspect.lab.plan import BRIDGE_RS, BRIDGE_VIP, LabConfig
from dr_inspect.lab.state import LabState
from dr_inspect.lab.teardown import lab_down
from dr_inspect.lab.traffic import TrafficResult, run_curl, run_traffic

# Let the last frames reach tcpdump's file before stopping it: tcpdump (without
# --immediate-mode) gets packets from the kernel in blocks retired after up to 1 s, and a block
# still open when it is interrupted is lost (measured: 0 packets written with a 0.3 s pause).
SETTLE_S = 1.5

Progress = Callable[[str], None]


@dataclass
class CaptureRun:
    out_dir: Path
    traffic: list[TrafficResult]
    points: dict[str, int]                       # point -> packets captured
    warnings: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    capture: CaptureRun
    state_summary: str                           # e.g. "nft director, 2 real servers"
    report: Any = None                           # the VerifyReport, once verified
    removed: list[str] = field(default_factory=list)


def lab_description(state: LabState) -> str:
    cfg = state.config
    text = (f"dr-inspect lab {state.prefix}: {state.director_mode} director, {cfg.real_servers} real "
            f"server(s), VIP {cfg.vip}:{cfg.port}")
    if cfg.faults:
        text += f"; faults: {describe_faults(cfg.faults)}"
    return text


def _snapshot_hosts(state: LabState, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """snapshots/<host>.json for every lab host (the VM director through its control channel)."""
    try:
        from dr_inspect.doctor.snapshot import runner_from, take_snapshot, write_snapshot
    except ImportError:
        return {}, ["host snapshots unavailable (dr_inspect.doctor.snapshot missing)"]
    written: dict[str, Path] = {}
    warnings: list[str] = []
    roles = {"director": "director", "real-server": "realserver"}
    for name, host in state.hosts.items():
        try:
            if host.netns is not None:
                snap = take_snapshot(host.netns, host=name, role=roles.get(host.role))
            else:
                snap = take_snapshot(runner=runner_from(lambda argv, n=name: state.run(n, argv)),
                                     host=name, role=roles.get(host.role))
            written[name] = write_snapshot(snap, out_dir / "snapshots" / f"{name}.json")
        except DrInspectError as exc:
            warnings.append(f"snapshot of {name}: {exc}")
    return written, warnings


def _real_servers(state: LabState) -> list[dict[str, str]]:
    """Real servers by name and RIP (their rs-segment address), so reports use the lab's names."""
    named = []
    for host in state.real_servers:
        rips = [i["ip"] for i in host.interfaces.values() if i.get("bridge") == BRIDGE_RS and i.get("ip")]
        if rips:
            named.append({"name": host.name, "rip": rips[0]})
    return named


def _annotate_manifest(manifest: Path, state: LabState, description: str) -> None:
    """Add the lab's facts to [capture] (keys documented in dr_inspect.captureset).

    The capture wrote the manifest; it is read without following a symlink and replaced by a
    new file (O_EXCL|O_NOFOLLOW, then a rename), so nothing planted in the folder since is read
    or written through: a symlink there is refused (LabError), a hard link replaced."""
    from dr_inspect.live.files import write_new
    from dr_inspect.live.manifest import render_manifest
    try:
        fd = os.open(manifest, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            data = tomllib.loads(f.read().decode())
        capture = dict(data.get("capture", {}))
        capture.update({"director": state.config.director, "faults": list(state.config.faults),
                        "real_servers": _real_servers(state), "vip": state.config.vip,
                        "port": state.config.port, "description": description})
        capture["scheduler"] = state.config.effective_scheduler
        fresh = manifest.with_name(f".{manifest.name}.new")
        write_new(fresh, render_manifest(capture, data.get("points", []),
                                         data.get("snapshots", {})).encode())
        os.replace(fresh, manifest)
    except OSError as exc:
        raise LabError(f"{manifest}: cannot add the lab's facts: {exc.strerror or exc} (a "
                       "symlink or file planted in the capture folder is never followed or "
                       f"overwritten); the capture files are kept in {manifest.parent}") from None


def capture_traffic(state: LabState, out_dir: Path, traffic: Callable[[LabState], list[TrafficResult]],
                    *, description: str | None = None, snapshots: bool = True) -> CaptureRun:
    """Capture on br_e and br_lvs of a running lab while `traffic(state)` runs."""
    from dr_inspect.live.capture import CapturePoint, start_capture
    points = [CapturePoint(name=BRIDGE_VIP, interface=BRIDGE_VIP, netns=state.switch_netns, role="vip-segment"),
              CapturePoint(name=BRIDGE_RS, interface=BRIDGE_RS, netns=state.switch_netns, role="rs-segment")]
    description = description or lab_description(state)
    session = start_capture(points, Path(out_dir), description=description)
    results: list[TrafficResult] = []
    warnings: list[str] = []
    try:
        if snapshots:
            written, warnings = _snapshot_hosts(state, Path(out_dir))
            session.snapshots.update(written)
        results = traffic(state)
        time.sleep(SETTLE_S)
    finally:
        summary = session.stop()
    _annotate_manifest(summary.manifest, state, description)
    return CaptureRun(out_dir=summary.out_dir, traffic=results,
                      points={p.name: p.captured or 0 for p in summary.points},
                      warnings=warnings + summary.warnings)


def seed_traffic(requests: int = 6, concurrency: int = 2, payload: int | list[int] = 0,
                 curl: int = 2, timeout: float = 3.0) -> Callable[[LabState], list[TrafficResult]]:
    """The seed's curl requests, then the concurrent generator."""
    def traffic(state: LabState) -> list[TrafficResult]:
        out = []
        if curl:
            out.append(run_curl(state, curl, timeout=timeout))
        if requests:
            out.append(run_traffic(state, requests=requests, concurrency=concurrency, payload=payload,
                                   timeout=timeout, fresh_arp=not curl))
        return out
    return traffic


def verify_capture(out_dir: Path) -> Any:
    """The verify report of a capture set."""
    from dr_inspect import verify
    return verify([out_dir])


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold off a second Ctrl-C (or SIGTERM) while tearing down, so the teardown completes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def new_demo_dir(parent: Path = Path("."), now: datetime | None = None) -> Path:
    """A folder name no earlier run used: lab-demo-DATE-TIME (with -2, -3 ... within a second)."""
    base = f"lab-demo-{(now or datetime.now()):%Y%m%d-%H%M%S}"
    candidate, n = parent / base, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{base}-{n}"
    return candidate


def run_demo(cfg: LabConfig, out_dir: Path | None = None, *, requests: int = 6,
             concurrency: int = 2, payload: int | list[int] = 0, curl: int = 2,
             timeout: float = 3.0, verify: bool = True,
             progress: Progress | None = None) -> DemoResult:
    """Up, capture, traffic, stop, verify, down. Tears down also on Ctrl-C or any error.

    out_dir: None writes to a new folder per run (new_demo_dir)."""
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir) if out_dir is not None else new_demo_dir()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise LabError(f"{out_dir}: exists and is not empty; give a new --out folder")
    removed: list[str] = []
    say(f"lab up ({cfg.director} director, {cfg.real_servers} real server(s))")
    state = lab_up(cfg, progress=say)
    try:
        say(f"capturing on {BRIDGE_VIP} and {BRIDGE_RS} in {state.switch_netns}; traffic")
        run = capture_traffic(state, out_dir, seed_traffic(requests, concurrency, payload, curl, timeout))
        summary = f"{state.director_mode} director, {cfg.real_servers} real server(s)"
    finally:
        say("lab down")
        with _no_interrupt():
            removed = lab_down(cfg.prefix)
    report = None
    if verify:
        say("verifying the capture")
        report = verify_capture(run.out_dir)
    return DemoResult(capture=run, state_summary=summary, report=report, removed=removed)
