"""Capture agents: one tcpdump per capture point, writing a capture set that `verify` reads.

    session = start_capture([CapturePoint("br_e", "br_e", netns="dri-sw", role="vip-segment"), ...],
                            Path("out"))
    ...                              # traffic
    summary = session.stop()         # stops the tcpdumps, writes manifest.toml

The set: `<point>.pcap` per point (rotated files `<point>.pcap1`, ... or, with a ring of -W
files, `<point>.pcap0`...), `manifest.toml`, and `snapshots/<host>.json` (host state).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dr_inspect import __version__
from dr_inspect.captureset import PLACEHOLDER_HEAD, ROLES
from dr_inspect.errors import CaptureAgentError, DrInspectError, InputError
from dr_inspect.live.agent import TcpdumpAgent
from dr_inspect.live.files import (create_new, free_bytes, open_own, point_files,
                                  trim_partial_record, write_new, writer_for)
from dr_inspect.live.manifest import render_manifest
from dr_inspect.live.preflight import (check_interface, check_point_name, check_snapshot_hosts,
                                      prepare_out_dir)
from dr_inspect.live.tcpdump import (DEFAULT_SNAPLEN, build_argv, check_filter, find_tcpdump,
                                    supports_nano)

START_TIMEOUT_S = 15.0
DEFAULT_RING_FILES = 8
# manifest.toml is written when capturing starts, padded to this size, and rewritten in place at
# the end: a disk the capture filled still has room for it.
MANIFEST_RESERVE = 16384
LOW_SPACE = 1 << 20


@dataclass
class CapturePoint:
    name: str                       # point name (names the file: <name>.pcap)
    interface: str                  # the bridge / interface tcpdump listens on
    netns: str | None = None        # network namespace it lives in (None: this one)
    role: str | None = None         # vip-segment | rs-segment | both | unknown
    host: str | None = None         # the (remote) host it is captured on; None: this machine
    extra: dict[str, Any] = field(default_factory=dict)   # more manifest keys (remote capture)


@dataclass
class PointResult:
    name: str
    interface: str
    netns: str | None
    role: str | None
    files: list[Path]               # oldest first; empty if tcpdump wrote nothing
    received: int | None            # tcpdump: packets received by filter
    dropped: int | None             # tcpdump: packets dropped by kernel
    captured: int | None            # tcpdump: packets written
    exit_code: int | None
    error: str | None = None        # tcpdump died on its own: its message
    started: str = ""               # when this point's tcpdump was listening
    stopped: str = ""               # when it ended
    host: str | None = None         # CapturePoint.host
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptureSummary:
    out_dir: Path
    manifest: Path
    started: str
    stopped: str
    points: list[PointResult]
    snapshots: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[PointResult]:
        return [p for p in self.points if p.error]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_points(points: list[CapturePoint]) -> None:
    if not points:
        raise InputError("no capture point given (--bridge NAME)")
    names = [p.name for p in points]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"capture point names must be unique: {', '.join(dupes)} given twice")
    for p in points:
        check_point_name(p.name)
        if p.role is not None and p.role not in ROLES:
            raise InputError(f"point {p.name}: role {p.role!r} is not one of {', '.join(ROLES)}")


def take_snapshots(hosts: dict[str, str | None], out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Write snapshots/<host>.json for each host (host name -> netns). Returns (written, warnings)."""
    if not hosts:
        return {}, []
    from dr_inspect.doctor.snapshot import take_snapshot, write_snapshot

    written: dict[str, Path] = {}
    warnings: list[str] = []
    for host, netns in hosts.items():
        check_point_name(host)
        try:
            snapshot = take_snapshot(netns, host=host)
        except DrInspectError as exc:
            warnings.append(f"snapshot of {host}: {exc}")
            continue
        written[host] = write_snapshot(snapshot, out_dir / "snapshots" / f"{host}.json")
    return written, warnings


class CaptureSession:
    """Running capture agents. Stop with stop(); wait() returns when they end by themselves."""

    def __init__(self, points: list[CapturePoint], agents: list[TcpdumpAgent], out_dir: Path,
                 bases: list[str], *, snaplen: int, started: str, host: str,
                 snapshots: dict[str, Path], warnings: list[str], description: str | None = None):
        self.points = points
        self.agents = agents
        self.out_dir = out_dir
        self.bases = bases
        self.snaplen = snaplen
        self.started = started
        self.host = host
        self.snapshots = snapshots
        self.warnings = warnings
        self.description = description
        self._summary: CaptureSummary | None = None

    def progress(self) -> dict[str, tuple[int, int | None]]:
        """Point -> (packets written so far, kernel drops reported so far)."""
        return {a.name: (a.state.got, a.state.stats.dropped) for a in self.agents}

    def running(self) -> list[str]:
        return [a.name for a in self.agents if a.alive()]

    def crashed(self) -> list[str]:
        return [a.name for a in self.agents if a.crashed()]

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> str:
        """Block until every agent has ended ("ended"), one crashed ("crashed") or `timeout` s
        passed ("timeout"). Ctrl-C propagates as KeyboardInterrupt; the caller then stop()s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.crashed():
                return "crashed"
            if not self.running():
                return "ended"
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))

    def stop(self) -> CaptureSummary:
        """Stop every agent (SIGINT: tcpdump flushes and prints its counts), write manifest.toml."""
        if self._summary is not None:
            return self._summary
        stopped = utc_now()       # every point captured until now
        codes = [a.stop() for a in self.agents]
        results: list[PointResult] = []
        for point, agent, base, rc in zip(self.points, self.agents, self.bases, codes):
            st = agent.state.stats
            error = None
            if agent.crashed():
                error = f"tcpdump exited with status {rc} during the capture: {agent.error_message()}"
            results.append(PointResult(
                name=point.name, interface=point.interface, netns=point.netns, role=point.role,
                files=point_files(self.out_dir, base), received=st.received, dropped=st.dropped,
                captured=st.captured, exit_code=rc, error=error,
                started=agent.state.listening_at, stopped=agent.state.stopped_at,
                host=point.host, extra=dict(point.extra)))
        summary = CaptureSummary(out_dir=self.out_dir, manifest=self.out_dir / "manifest.toml",
                                 started=self.started, stopped=stopped, points=results,
                                 snapshots=self.snapshots, warnings=list(self.warnings))
        summary.warnings += repair_tails(self.out_dir, results)
        write_reserved(summary.manifest, self.manifest_text(summary))
        self._summary = summary
        return summary

    def manifest_text(self, summary: CaptureSummary) -> str:
        return manifest_text(summary, host=self.host, snaplen=self.snaplen, description=self.description)


def manifest_text(summary: CaptureSummary, *, host: str, snaplen: int, description: str | None) -> str:
    """manifest.toml of a finished capture (also used by watch --save)."""
    notes = [f"{p.name}: {p.error}" for p in summary.failed]
    description = "; ".join(filter(None, [description, *notes])) or None
    capture = {"tool": f"dr-inspect {__version__}", "host": host,
               "started": summary.started, "stopped": summary.stopped, "description": description}
    points = []
    for p in summary.points:
        if not p.files:
            summary.warnings.append(f"{p.name}: tcpdump wrote no file; the point is left out of the manifest")
            continue
        rel = [str(f.relative_to(summary.out_dir)) for f in p.files]
        points.append({"name": p.name, "file": rel[0],
                       # `files` only when tcpdump rotated: every file of the point, oldest first.
                       "files": rel if len(rel) > 1 else None,
                       "role": p.role, "interface": p.interface, "netns": p.netns,
                       "host": p.host or host, "received": p.received, "dropped": p.dropped,
                       "snaplen": snaplen, "started": p.started or summary.started,
                       "stopped": p.stopped or summary.stopped, **p.extra})
    snaps = {h: str(path.relative_to(summary.out_dir)) for h, path in summary.snapshots.items()}
    capture["real_servers"] = _real_servers(summary.snapshots) or None
    return render_manifest(capture, points, snaps)


def _real_servers(snapshot_files: dict[str, Path]) -> list[dict[str, str]]:
    """The manifest's real_servers (name, RIP) from the host snapshots taken (the director's
    IPVS table lists the RIPs, the real servers' snapshots name them); none without them."""
    from dr_inspect.doctor.farm import real_servers
    from dr_inspect.doctor.snapshot import read_snapshot
    from dr_inspect.errors import InputError

    snaps = {}
    for host, path in snapshot_files.items():
        try:
            snaps[host] = read_snapshot(path)
        except InputError:
            continue              # named in the manifest; verify reports it
    return real_servers(snaps)


def repair_tails(out_dir: Path, results: list[PointResult]) -> list[str]:
    """After a crash or on a full disk: cut the half-written last record off each point's newest
    file, so every file stays readable. Returns warnings."""
    warnings: list[str] = []
    full = free_bytes(out_dir) < LOW_SPACE
    if full:
        warnings.append(f"the file system of {out_dir} is (nearly) full: packets captured after it "
                        "filled were not written (tcpdump does not report write errors)")
    for p in results:
        if p.files and (full or p.error):
            cut = trim_partial_record(p.files[-1])
            if cut:
                warnings.append(f"{p.name}: removed a half-written last record ({cut} bytes) "
                                f"from {p.files[-1].name}")
    return warnings


def write_reserved(path: Path, text: str) -> None:
    """Write `text` over the file in place (reusing its blocks), then cut it to length."""
    data = text.encode()
    try:
        with (open_own(path) if path.exists() or path.is_symlink() else create_new(path)) as f:
            f.write(data)
            f.truncate(len(data))
    except OSError as exc:
        raise CaptureAgentError(f"{path}: cannot write the manifest: {exc.strerror}; "
                                f"the capture files are kept in {path.parent}") from None


def reserve_manifest(out_dir: Path) -> None:
    head = PLACEHOLDER_HEAD + "\n"
    write_new(out_dir / "manifest.toml", (head + "#" * (MANIFEST_RESERVE - len(head) - 1) + "\n").encode())


def check_ring_fits(out_dir: Path, points: int, rotate_mb: int, rotate_files: int) -> None:
    need = points * rotate_mb * 1_000_000 * rotate_files + MANIFEST_RESERVE
    free = free_bytes(out_dir)
    if free < need:
        raise CaptureAgentError(
            f"{out_dir}: the rotation ring needs {need / 1e6:.0f} MB ({points} point(s) x "
            f"{rotate_files} files x {rotate_mb} MB) but only {free / 1e6:.0f} MB are free: "
            "lower --rotate-files or --rotate-mb")


def start_capture(points: list[CapturePoint], out_dir: Path, *, snaplen: int = DEFAULT_SNAPLEN,
                  bpf: str | None = None, count: int | None = None, rotate_mb: int | None = None,
                  rotate_files: int | None = None, snapshot_hosts: dict[str, str | None] | None = None,
                  description: str | None = None, start_timeout: float = START_TIMEOUT_S) -> CaptureSession:
    """Start one tcpdump per point writing into `out_dir`; return once every one is capturing.

    count: each point stops after that many packets. rotate_mb: start a new file every N million
    bytes, keeping a ring of `rotate_files` files per point (default 8; the oldest is reused).
    On any failure every agent already started is stopped before the error is raised.
    """
    validate_points(points)
    check_filter(bpf)
    if snaplen <= 0 or (count is not None and count <= 0) or (rotate_mb is not None and rotate_mb <= 0):
        raise InputError("snaplen, count and rotate-mb must be positive")
    if rotate_files is not None and rotate_mb is None:
        raise InputError("--rotate-files needs --rotate-mb (the size at which tcpdump starts the next file)")
    tcpdump = find_tcpdump()
    for p in points:
        check_interface(p.interface, p.netns)
    check_snapshot_hosts(snapshot_hosts)
    if rotate_mb is not None and rotate_files is None:
        rotate_files = DEFAULT_RING_FILES

    def ring_fits(folder: Path) -> None:
        if rotate_mb is not None:
            check_ring_fits(folder, len(points), rotate_mb, rotate_files or DEFAULT_RING_FILES)

    out_dir, created = open_capture_set(Path(out_dir), ring_fits)
    nano = supports_nano(tcpdump)
    # as root, tcpdump drops to the folder's owner where that user can write it, else stays root
    run_as = (writer_for(out_dir) or "root") if os.geteuid() == 0 else None
    warnings = [] if nano else ["this tcpdump cannot write nanosecond timestamps; files have microseconds"]

    def make_agent(p: CapturePoint, path: Path) -> TcpdumpAgent:
        argv = build_argv(tcpdump, p.interface, str(path), netns=p.netns, snaplen=snaplen,
                          bpf=bpf, count=count, rotate_mb=rotate_mb, rotate_files=rotate_files,
                          nano=nano, run_as=run_as)
        return TcpdumpAgent(p.name, argv)

    agents, bases, started, snapshots, snap_warnings = launch_agents(
        points, out_dir, created, make_agent,
        lambda folder: take_snapshots(dict(snapshot_hosts or {}), folder), start_timeout)
    return CaptureSession(points, agents, out_dir, bases, snaplen=snaplen, started=started,
                          host=socket.gethostname(), snapshots=snapshots,
                          warnings=warnings + snap_warnings, description=description)


def open_capture_set(out_dir: Path, check: Callable[[Path], None] | None = None) -> tuple[Path, bool]:
    """Create the (new or empty) output folder and reserve its manifest; (folder, whether this
    run created it). check(folder) may refuse it (CaptureAgentError); nothing is left then."""
    created = not out_dir.exists()
    out_dir = prepare_out_dir(out_dir)
    try:
        if check is not None:
            check(out_dir)
        reserve_manifest(out_dir)
    except OSError as exc:
        _remove_partial(out_dir, [], created)
        raise CaptureAgentError(f"{out_dir}: cannot write: {exc.strerror}") from None
    except CaptureAgentError:
        _remove_partial(out_dir, [], created)
        raise
    return out_dir, created


Snapshotter = Callable[[Path], "tuple[dict[str, Path], list[str]]"]


def launch_agents(points: list[CapturePoint], out_dir: Path, created: bool,
                  make_agent: Callable[[CapturePoint, Path], TcpdumpAgent], snapshot: Snapshotter,
                  start_timeout: float) -> tuple[list[TcpdumpAgent], list[str], str,
                                                 dict[str, Path], list[str]]:
    """Start one agent per point (make_agent(point, out_dir/<point>.pcap)), wait until every one
    captures, then snapshot the hosts (the state the captured traffic met). On any failure or
    interrupt every agent started is stopped and what this run wrote is removed.
    Returns (agents, file bases, started, snapshots, snapshot warnings)."""
    agents: list[TcpdumpAgent] = []
    bases: list[str] = []
    try:
        for p in points:
            bases.append(f"{p.name}.pcap")
            agents.append(make_agent(p, out_dir / bases[-1]))
        for a in agents:
            a.wait_listening(start_timeout)
        started = utc_now()       # from now on every point captures
        snapshots, snap_warnings = snapshot(out_dir)
    except BaseException:
        for a in agents:
            a.stop(timeout=2.0)
        _remove_partial(out_dir, bases, created)
        raise
    return agents, bases, started, snapshots, snap_warnings


def _remove_partial(out_dir: Path, bases: list[str], created: bool) -> None:
    """After a failed start: remove what this run wrote (the whole folder if this run made it)."""
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    for base in bases:
        for path in point_files(out_dir, base):
            path.unlink(missing_ok=True)
    (out_dir / "manifest.toml").unlink(missing_ok=True)   # ours: prepare_out_dir refused any other


def capture_for(points: list[CapturePoint], out_dir: Path, *, duration: float | None = None,
                on_tick=None, tick_s: float = 0.5, **options) -> CaptureSummary:
    """Capture until `duration` s passed, every point reached --count, a tcpdump died, or Ctrl-C/
    SIGTERM (KeyboardInterrupt). Always stops the agents and writes the manifest.

    on_tick(session) is called every tick_s seconds (live progress).
    """
    return run_session(start_capture(points, out_dir, **options), duration=duration,
                       on_tick=on_tick, tick_s=tick_s)


def run_session(session: CaptureSession, *, duration: float | None = None, on_tick=None,
                tick_s: float = 0.5) -> CaptureSummary:
    """Let a started session capture until `duration`, its agents end, one crashes, or Ctrl-C /
    SIGTERM (KeyboardInterrupt); then stop it (manifest written) and return the summary."""
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            reason = session.wait(tick_s if left is None else min(tick_s, left))
            if on_tick is not None:
                on_tick(session)
            if reason in ("ended", "crashed"):
                break
    except KeyboardInterrupt:
        pass
    finally:
        summary = session.stop()
    return summary


__all__ = ["CapturePoint", "CaptureSession", "CaptureSummary", "PointResult", "start_capture",
           "capture_for", "CaptureAgentError"]
