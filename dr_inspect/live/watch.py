"""watch: verify while traffic flows.

One tcpdump per point streams pcap (`-w -`) into a StreamDecoder; every `interval` seconds the
packets of the last `window` seconds are verified (dr_inspect.analysis.pipeline.analyse_packets) and a rolling
verdict is handed to `on_interval`. Frames older than the window are dropped, so memory stays
bounded however long it runs. At the end: one VerifyReport for the whole run (see rolling.py).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace, dataclass, field
from pathlib import Path

import pandas as pd

from dr_inspect.decode import StreamDecoder
from dr_inspect.errors import (CaptureAgentError, CaptureError, DrInspectError, InputError,
                               TopologyError)
from dr_inspect.live.capture import (CapturePoint, CaptureSummary, PointResult, manifest_text,
                                     repair_tails, reserve_manifest, take_snapshots, utc_now,
                                     validate_points, write_reserved)
from dr_inspect.live.preflight import check_interface, check_snapshot_hosts, prepare_out_dir
from dr_inspect.live.rolling import IntervalVerdict, PointLive, RollingVerdict
from dr_inspect.live.stream import StreamAgent
from dr_inspect.live.files import stream_user
from dr_inspect.live.tcpdump import build_argv, find_tcpdump, supports_nano
from dr_inspect.live.window import PacketWindow
from dr_inspect.model import PointSummary, VerifyReport
from dr_inspect.options import VerifyOptions

START_TIMEOUT_S = 15.0
# Headers only: the rules read no payload bytes, and libpcap sizes its ring blocks by the snaplen;
# with 262144 a 32 MiB ring has ~64 blocks and overflowed (10 % of br_e lost at ~10 k pkts/s while
# the verifier used the CPU); with 512 nothing was lost at the same rate (bench/bench_live.py).
WATCH_SNAPLEN = 512
# Frames younger than this are left for the next verdict: the copy of a packet at another point
# may still be in that point's pipe, and judging it now would report a false DR007 / DR009.
# Grows to 1.5 x the decoder lag seen in the last interval when that is larger.
SETTLE_S = 0.25
# Violations this close to either edge of a window are left to the overlapping neighbour window,
# which sees the packets around them (a SYN-ACK 300 ms after its SYN on a busy host).
EDGE_S = 0.75
# Rules over these tables judge single frames (an ARP claim, a reply's addresses): no edge needed.
EDGE_FREE_TABLES = frozenset({"arp", "replies", "to_vip", "points"})
_POLL_S = 0.05
_SYN, _ACK = 0x02, 0x10


@dataclass
class WatchResult:
    report: VerifyReport
    intervals: int
    max_lag_ms: float | None          # worst age of a frame when decoded (capture -> decoder)
    max_eval_ms: float                # slowest window verification
    max_backlog_bytes: int            # most pcap bytes waiting for the decoder at once
    saved: CaptureSummary | None = None
    crashed: dict[str, str] = field(default_factory=dict)   # point -> tcpdump's message


def count_connections(table: pd.DataFrame) -> int:
    """Distinct TCP connections opened (SYN without ACK) in a packets-table chunk."""
    if not len(table) or "tcp_flags" not in table:
        return 0
    flags = table["tcp_flags"].to_numpy(dtype="float64", na_value=0).astype("int64")
    syn = table[(flags & (_SYN | _ACK)) == _SYN]
    return len(syn.drop_duplicates(["src_ip", "src_port", "dst_ip", "dst_port"]))


def _until(table: pd.DataFrame, upper_ns: int) -> pd.DataFrame:
    if not len(table):
        return table
    keep = table["ts_ns"].to_numpy() <= upper_ns
    return table if keep.all() else table[keep].reset_index(drop=True)


class Watcher:
    """The state of one watch run; `run()` drives it. Split out so each step is small."""

    def __init__(self, points: list[CapturePoint], agents: list[StreamAgent], *, interval: float,
                 window_s: float,
                 analyse: Callable[[dict[str, pd.DataFrame], dict[str, int]], VerifyReport],
                 max_evidence: int, on_interval: Callable[[IntervalVerdict], None] | None,
                 edge_free: frozenset[str] = frozenset()):
        self.points = points
        self.agents = agents
        self.interval = interval
        self.window_ns = int(window_s * 1e9)
        self.analyse = analyse
        self.edge_free = edge_free
        self.on_interval = on_interval
        self.decoders = {p.name: StreamDecoder(p.name) for p in points}
        self.windows = {p.name: PacketWindow() for p in points}
        self.live = {p.name: PointLive(p.name, p.role or "unknown", p.interface) for p in points}
        self.flow_point = next((p.name for p in points if p.role in ("vip-segment", "both")), points[0].name)
        self.rolling = RollingVerdict(max_evidence)
        self.new_packets = {p.name: 0 for p in points}
        self.connections = 0
        self.index = 0
        self.reports = 0
        self.last_error: DrInspectError | None = None
        self.lag_ms: float | None = None
        self.max_lag_ms: float | None = None
        self.max_eval_ms = 0.0
        self.max_backlog = 0
        self.started_ns = time.time_ns()
        self.drops_judged: dict[str, int] = {}     # kernel drops already shown to DR013

    # -- data in --------------------------------------------------------------------------
    def _add(self, name: str, table: pd.DataFrame) -> None:
        self.windows[name].add(table)
        if not len(table):
            return
        live = self.live[name]
        live.packets += len(table)
        self.new_packets[name] += len(table)
        ts = table["ts_ns"].to_numpy()
        live.first_ts_ns = int(ts.min()) if live.first_ts_ns is None else live.first_ts_ns
        live.last_ts_ns = int(ts.max())
        lag = (time.time_ns() - live.last_ts_ns) / 1e6
        self.lag_ms = lag if self.lag_ms is None else max(self.lag_ms, lag)
        self.max_lag_ms = lag if self.max_lag_ms is None else max(self.max_lag_ms, lag)
        if name == self.flow_point:
            self.connections += count_connections(table)

    def pump(self) -> None:
        """Move every byte read so far into the decoders and the windows."""
        for agent in self.agents:
            self.max_backlog = max(self.max_backlog, agent.backlog)
            data = agent.take()
            if not data:
                continue
            decoder = self.decoders[agent.name]
            try:
                self._add(agent.name, decoder.feed(data))
            except CaptureError as exc:
                self.live[agent.name].error = str(exc)
            if decoder.stats.error is not None:
                self.live[agent.name].error = str(decoder.stats.error)

    def finish_streams(self) -> None:
        for name, decoder in self.decoders.items():
            try:
                self._add(name, decoder.finish())
            except CaptureError as exc:
                self.live[name].error = str(exc)

    # -- verdicts -------------------------------------------------------------------------
    def evaluate(self, *, final: bool = False) -> IntervalVerdict:
        now_ns = time.time_ns()
        for agent in self.agents:
            st = agent.agent.state.stats
            self.live[agent.name].received = st.received
            self.live[agent.name].dropped = st.dropped
            if not final:
                agent.agent.request_stats()   # fresh counts arrive before the next interval
        settle_ns = 0 if final else int(max(SETTLE_S, 1.5 * (self.lag_ms or 0) / 1e3) * 1e9)
        upper = now_ns - settle_ns
        for w in self.windows.values():
            w.trim(upper - self.window_ns)
        packets = {name: _until(w.table(), upper) for name, w in self.windows.items()
                   if w.template is not None}
        in_window = sum(len(t) for t in packets.values())
        for name, t in packets.items():
            self.live[name].window_packets = len(t)
        status, failing, new, unshown, flows, note, eval_ms = "idle", [], [], 0, 0, "", 0.0
        report = None
        if in_window:
            t0 = time.perf_counter()
            drops_now = {n: max(0, (self.live[n].dropped or 0) - self.drops_judged.get(n, 0))
                         for n in packets}
            try:
                report = self.analyse(packets, drops_now)
            except (TopologyError, InputError) as exc:
                self.last_error = exc
                status, note = "waiting", f"not verifiable yet: {exc}"
            else:
                self.reports += 1
                lower = upper - self.window_ns
                edge = int(EDGE_S * 1e9)
                failing, new, unshown = self.rolling.add(
                    # from the start too: before every point listened, copies went unseen
                    report, judged_from_ns=max(lower, self.started_ns) + edge,
                    judged_to_ns=None if final else upper - edge, forget_before_ns=lower,
                    edge_free=self.edge_free)
                severity = {r.id: r.severity for r in report.rules}
                status = "fail" if any(severity[r] == "error" for r in failing) else "pass"
                flows = report.flows
                self.drops_judged.update({n: self.live[n].dropped or 0 for n in packets})
            eval_ms = (time.perf_counter() - t0) * 1e3
            self.max_eval_ms = max(self.max_eval_ms, eval_ms)
        elif not any(self.live[p].packets for p in self.live):
            note = "no packets yet"
        self.index += 1
        verdict = IntervalVerdict(
            index=self.index, at_ns=now_ns, status=status, failing=failing, new=new,
            new_unshown=unshown, packets=dict(self.new_packets), window_packets=in_window,
            flows=flows, drops={n: p.dropped for n, p in self.live.items()}, lag_ms=self.lag_ms,
            eval_ms=eval_ms, note="; ".join(filter(None, [note, "final window" if final else ""])),
            report=report)
        self.new_packets = {n: 0 for n in self.new_packets}
        self.lag_ms = None
        if self.on_interval is not None:
            self.on_interval(verdict)
        return verdict

    def streams_done(self) -> bool:
        return all(a.finished() for a in self.agents)

    def final_report(self) -> VerifyReport:
        if self.reports == 0:
            if self.last_error is not None:
                raise self.last_error
            raise InputError("no packets captured at " + ", ".join(self.live) + ": nothing to verify")
        return self.rolling.final_report(list(self.live.values()), self.connections)


def _analyser(points: list[CapturePoint], options: VerifyOptions
              ) -> tuple[Callable[[dict[str, pd.DataFrame], dict[str, int]], VerifyReport], frozenset[str]]:
    """The window verifier, and the ids of the rules that need no context around a frame."""
    from dr_inspect.analysis.pipeline import CaptureFacts, analyse_packets, load_options
    from dr_inspect.topology import parse_vip

    for vip in options.vips:        # a bad --vip is bad input now, not after the whole capture
        parse_vip(vip)
    loaded = load_options(options)
    roles = {p.name: p.role or "unknown" for p in points}
    host = socket.gethostname()
    hosts = {p.name: host for p in points}   # one machine, one clock

    def analyse(packets: dict[str, pd.DataFrame], drops: dict[str, int]) -> VerifyReport:
        # kernel drops of this interval go to DR013 (capture-health) like a file's counts do
        summaries = [PointSummary(name=p, file="(live)", role=roles[p], frames=len(t), decoded=len(t),
                                  first_ts_ns=int(t["ts_ns"].min()) if len(t) else None,
                                  last_ts_ns=int(t["ts_ns"].max()) if len(t) else None,
                                  kernel_drops=drops.get(p))
                     for p, t in packets.items()]
        facts = CaptureFacts(summaries=summaries, scheduler=options.scheduler,
                             hosts={p: hosts[p] for p in packets})
        return analyse_packets(packets, roles, loaded, facts).report
    return analyse, frozenset(r.id for r in loaded.rules if r.table in EDGE_FREE_TABLES)


def _save_capture_set(save_dir: Path, points: list[CapturePoint], agents: list[StreamAgent],
                      codes: dict[str, int], crashed: dict[str, str],
                      span: tuple[str, str], snapshots: dict, warnings: list[str],
                      snaplen: int) -> CaptureSummary:
    """The --save capture set: each point's teed stream, its counts and errors, the manifest."""
    results = [PointResult(name=p.name, interface=p.interface, netns=p.netns, role=p.role,
                           files=[a.tee_path] if a.tee_path and a.tee_path.exists() else [],
                           received=a.agent.state.stats.received,
                           dropped=a.agent.state.stats.dropped,
                           captured=a.agent.state.stats.captured, exit_code=codes[a.name],
                           error=(f"tcpdump died: {crashed[p.name]}" if p.name in crashed
                                  else a.tee_error),
                           started=a.agent.state.listening_at, stopped=a.agent.state.stopped_at)
               for p, a in zip(points, agents)]
    saved = CaptureSummary(out_dir=save_dir, manifest=save_dir / "manifest.toml", started=span[0],
                           stopped=span[1], points=results, snapshots=snapshots, warnings=warnings)
    saved.warnings += repair_tails(save_dir, results)
    write_reserved(saved.manifest, manifest_text(saved, host=socket.gethostname(), snaplen=snaplen,
                                                 description="saved by dr-inspect watch"))
    return saved


def _lab_scheduler(points: list[CapturePoint], options: VerifyOptions) -> VerifyOptions:
    """options with the watched lab director's real scheduler when none is given (the nft one
    hashes flows)."""
    if options.scheduler is not None:
        return options
    from dr_inspect.lab.state import scheduler_for_netns
    lab_scheduler = next((s for s in map(scheduler_for_netns, sorted(
        {p.netns for p in points if p.netns})) if s), None)
    return replace(options, scheduler=lab_scheduler) if lab_scheduler else options


def _window_s(interval: float, window_s: float | None) -> float:
    """The window each verdict looks at (InputError for an interval or window that cannot
    work)."""
    if interval <= 0:
        raise InputError(f"--interval must be positive, got {interval}")
    window_s = window_s if window_s is not None else max(5 * interval, 10.0)
    if window_s < interval + 2 * EDGE_S:
        raise InputError(f"--window ({window_s:g} s) must be at least the interval plus "
                         f"{2 * EDGE_S:g} s ({interval + 2 * EDGE_S:g} s): each moment is judged away from a window edge")
    return window_s


def _start_agents(points: list[CapturePoint], tcpdump: str, *, snaplen: int, bpf: str | None,
                  count: int | None, save_dir: Path | None,
                  snapshot_hosts: dict[str, str | None] | None, start_timeout: float
                  ) -> tuple[list[StreamAgent], str, dict[str, Path], list[str]]:
    """(the agents, listening at every point; when they all were; the host snapshots taken
    then and their warnings). Agents already started are stopped when one fails."""
    nano = supports_nano(tcpdump)
    agents: list[StreamAgent] = []
    try:
        for p in points:
            argv = build_argv(tcpdump, p.interface, "-", netns=p.netns, snaplen=snaplen, bpf=bpf,
                              count=count, nano=nano, run_as=stream_user() if os.geteuid() == 0 else None)
            tee = save_dir / f"{p.name}.pcap" if save_dir is not None else None
            agents.append(StreamAgent(p.name, argv, tee))
        for a in agents:
            a.agent.wait_listening(start_timeout)
        started = utc_now()       # from now on every point captures
        snapshots, warnings = (take_snapshots(dict(snapshot_hosts or {}), save_dir)
                               if save_dir is not None else ({}, []))
    except BaseException:
        for a in agents:
            a.stop(timeout=2.0)
        raise
    return agents, started, snapshots, warnings


def _run(watcher: Watcher, agents: list[StreamAgent], interval: float, duration: float | None,
         on_tick: Callable[[dict[str, tuple[int, int | None]]], None] | None
         ) -> tuple[dict[str, str], str, dict[str, int]]:
    """Pump and verify every interval until the end; (crashed agents' errors, when the capture
    stopped, each agent's exit status)."""
    crashed: dict[str, str] = {}
    t_end = None if duration is None else time.monotonic() + duration
    next_tick = time.monotonic() + interval
    try:
        while True:
            watcher.pump()
            now = time.monotonic()
            if on_tick is not None:
                on_tick({n: (p.packets, p.dropped) for n, p in watcher.live.items()})
            if now >= next_tick:
                watcher.evaluate()
                while next_tick <= time.monotonic():
                    next_tick += interval
            crashed = {a.name: a.agent.error_message() for a in agents if a.agent.crashed()}
            if crashed or watcher.streams_done() or (t_end is not None and now >= t_end):
                break
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        pass
    finally:
        stopped = utc_now()
        codes = {a.name: a.stop() for a in agents}
    return crashed, stopped, codes


def watch(points: list[CapturePoint], *, interval: float = 2.0, window_s: float | None = None,
          options: VerifyOptions = VerifyOptions(), duration: float | None = None,
          count: int | None = None,
          snaplen: int = WATCH_SNAPLEN, bpf: str | None = None, save_dir: Path | None = None,
          snapshot_hosts: dict[str, str | None] | None = None,
          on_interval: Callable[[IntervalVerdict], None] | None = None,
          on_tick: Callable[[dict[str, tuple[int, int | None]]], None] | None = None,
          start_timeout: float = START_TIMEOUT_S) -> WatchResult:
    """Capture and verify until `duration`, --count at every point, a crash or Ctrl-C/SIGTERM.

    window_s: how much recent traffic each verdict looks at (default: 5 intervals, at least 10 s).
    save_dir: also keep the capture set there (the streams teed to <point>.pcap, a manifest).
    options: what shapes each window's verification; options.scheduler is the director's
    scheduler for DR011 (e.g. "flow-hash" for the lab's nft director), a topology file's wins.
    """
    validate_points(points)
    options = _lab_scheduler(points, options)
    window_s = _window_s(interval, window_s)
    tcpdump = find_tcpdump()
    for p in points:
        check_interface(p.interface, p.netns)
    if save_dir is not None:
        check_snapshot_hosts(snapshot_hosts)
    analyse, edge_free = _analyser(points, options)
    if save_dir is not None:
        save_dir = prepare_out_dir(Path(save_dir))
        try:
            reserve_manifest(save_dir)
        except OSError as exc:
            raise CaptureAgentError(f"{save_dir}: cannot write: {exc.strerror}") from None
    agents, started, snapshots, warnings = _start_agents(
        points, tcpdump, snaplen=snaplen, bpf=bpf, count=count, save_dir=save_dir,
        snapshot_hosts=snapshot_hosts, start_timeout=start_timeout)
    watcher = Watcher(points, agents, interval=interval, window_s=window_s, analyse=analyse,
                      max_evidence=options.max_evidence, on_interval=on_interval, edge_free=edge_free)
    crashed, stopped, codes = _run(watcher, agents, interval, duration, on_tick)
    watcher.pump()
    watcher.finish_streams()
    watcher.evaluate(final=True)
    report = watcher.final_report()
    for name, message in crashed.items():
        report.errors.append(f"{name}: tcpdump died during the run: {message}")
    saved = None
    if save_dir is not None:
        saved = _save_capture_set(save_dir, points, agents, codes, crashed, (started, stopped),
                                  snapshots, warnings, snaplen)
    return WatchResult(report=report, intervals=watcher.index, max_lag_ms=watcher.max_lag_ms,
                       max_eval_ms=watcher.max_eval_ms, max_backlog_bytes=watcher.max_backlog,
                       saved=saved, crashed=crashed)
