"""dr-inspect watch: streaming capture into the decoder, sliding-window verdicts, final report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, reap, running_lab, wait_for
from dr_inspect.live.capture import CapturePoint
from dr_inspect.live.render import render_interval
from dr_inspect.live.rolling import IntervalVerdict, PointLive, RollingVerdict
from dr_inspect.live.watch import count_connections
from dr_inspect.live.window import PacketWindow
from dr_inspect.model import Evidence, RuleResult, VerifyReport
from dr_inspect.options import VerifyOptions

PREFIX = "t5"


# -- pure parts ---------------------------------------------------------------------------------

def _chunk(ts: list[int], macs: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"ts_ns": pd.array(ts, dtype="int64"), "src_mac": pd.Categorical(macs)})


def test_window_drops_old_frames_and_keeps_categoricals():
    w = PacketWindow()
    w.add(_chunk([1, 2, 3], ["a", "a", "b"]))
    w.add(_chunk([4, 5], ["c", "c"]))
    w.add(_chunk([6], ["d"]))
    w.trim(3)
    t = w.table()
    assert t["ts_ns"].tolist() == [3, 4, 5, 6]
    assert isinstance(t["src_mac"].dtype, pd.CategoricalDtype)
    assert t["src_mac"].tolist() == ["b", "c", "c", "d"]
    w.trim(6)
    assert len(w) == 1 and w.total == 6
    w.trim(100)
    assert len(w) == 0 and list(w.table().columns) == ["ts_ns", "src_mac"]   # empty, same columns


def _rule(rid: str, status: str, evidence: list[Evidence], omitted: int = 0,
          severity: str = "error") -> RuleResult:
    return RuleResult(id=rid, name=rid.lower(), title=rid, severity=severity, status=status,
                      checked=5, violations=len(evidence) + omitted, evidence=evidence,
                      evidence_omitted=omitted)


def _ev(frame: int) -> Evidence:
    return Evidence(point="br_e", frames=[frame], ts_ns=[frame * 1000], five_tuple="arp 10.0.0.1",
                    expected="director", actual=f"rs1 #{frame}", display_filter=f"frame.number == {frame}")


def _report(*rules: RuleResult) -> VerifyReport:
    failed = any(r.status == "fail" and r.severity == "error" for r in rules)
    return VerifyReport(verdict="fail" if failed else "pass", rules=list(rules), topology=None,
                        points=[], flows=3, hops=7)


def test_rolling_reports_each_violation_once_and_merges_the_run():
    rolling = RollingVerdict(max_evidence=2)
    failing, new, unshown = rolling.add(_report(_rule("DR001", "pass", []), _rule("DR005", "not-exercised", [])))
    assert failing == [] and new == []
    failing, new, _ = rolling.add(_report(_rule("DR001", "pass", []), _rule("DR005", "fail", [_ev(10)])))
    assert failing == ["DR005"] and [ev.frames for _, ev in new] == [[10]]
    # the next window still holds frame 10 plus two new ones and one beyond the evidence cap
    failing, new, unshown = rolling.add(_report(_rule("DR001", "pass", []),
                                                _rule("DR005", "fail", [_ev(10), _ev(11), _ev(12)], omitted=1)))
    assert [ev.frames for _, ev in new] == [[11], [12]] and unshown == 1
    rolling.add(_report(_rule("DR001", "pass", []), _rule("DR005", "pass", [])))
    final = rolling.final_report([PointLive("br_e", "vip-segment", packets=40, dropped=0)], flows=9)
    by_id = {r.id: r for r in final.rules}
    assert final.verdict == "fail" and final.exit_code == 1
    assert by_id["DR005"].status == "fail" and by_id["DR005"].violations == 4
    assert len(by_id["DR005"].evidence) == 2 and by_id["DR005"].evidence_omitted == 2
    assert "failed earlier" in by_id["DR005"].note
    assert by_id["DR001"].status == "pass" and final.flows == 9 and final.hops == 7
    assert final.points[0].frames == 40


def test_rolling_never_passes_a_rule_that_was_not_exercised():
    rolling = RollingVerdict()
    rolling.add(_report(_rule("DR009", "not-exercised", [])))
    final = rolling.final_report([], flows=0)
    assert final.rules[0].status == "not-exercised" and final.verdict == "pass"


def test_interval_text_names_rule_point_frames_and_filter():
    rule = _rule("DR005", "fail", [_ev(578)])
    v = IntervalVerdict(index=3, at_ns=0, status="fail", failing=["DR005"], new=[(rule, _ev(578))],
                        new_unshown=4, packets={"br_e": 120, "br_lvs": 60}, window_packets=900,
                        flows=12, drops={"br_e": 0, "br_lvs": 2}, lag_ms=40.0, eval_ms=120.0)
    text = render_interval(v)
    assert "#3 FAIL" in text and "br_e +120, br_lvs +60" in text and "drops 2" in text
    assert "failing now: DR005" in text and "NEW DR005" in text and "br_e #578" in text
    assert "frame.number == 578" in text and "4 more new" in text


def test_count_connections_counts_distinct_syns():
    t = pd.DataFrame({"tcp_flags": pd.array([0x02, 0x02, 0x12, 0x10, 0x02, None], dtype="UInt16"),
                      "src_ip": ["c", "c", "v", "c", "c", "c"], "src_port": [1, 1, 80, 1, 2, 3],
                      "dst_ip": ["v", "v", "c", "v", "v", "v"], "dst_port": [80, 80, 1, 80, 80, 80]})
    assert count_connections(t) == 2   # a retransmitted SYN is one connection


# -- live, on the lab ---------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def tcpdumps_in(netns: str) -> list[str]:
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return [n for n in names if n == "tcpdump"]


@pytest.fixture(scope="module")
def lab():
    with running_lab(PREFIX, director="nft", real_servers=2) as state:
        yield state


class Traffic:
    """Lab traffic in a background thread until stopped (fresh ARP only at the start)."""

    def __init__(self, state):
        self.state = state
        self.stop_event = threading.Event()
        self.ok = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from dr_inspect.lab import run_traffic
        first = True
        while not self.stop_event.is_set():
            result = run_traffic(self.state, requests=6, concurrency=2, fresh_arp=first, timeout=2.0)
            self.ok += result.ok
            first = False
            self.stop_event.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(60)


def lab_points(state) -> list[CapturePoint]:
    return [CapturePoint("br_e", "br_e", netns=state.switch_netns, role="vip-segment"),
            CapturePoint("br_lvs", "br_lvs", netns=state.switch_netns, role="rs-segment")]


def _rs_answers_arp(state, host: str) -> None:
    """The classic misconfiguration: arp_ignore=0 on a real server (all + every interface)."""
    ifaces = ["all", "default", "lo", *state.host(host).interfaces]
    for iface in ifaces:
        state.run(host, ["sysctl", "-q", "-w", f"net.ipv4.conf.{iface}.arp_ignore=0"])
    state.run("client", ["ip", "neigh", "flush", "all"])


def _restore_arp(state, host: str) -> None:
    for iface in ["all", *state.host(host).interfaces]:
        state.run(host, ["sysctl", "-q", "-w", f"net.ipv4.conf.{iface}.arp_ignore=1"])
    state.run("client", ["ip", "neigh", "flush", "all"])


@pytest.mark.lab
def test_watch_healthy_lab_passes_then_a_fault_is_reported_within_two_intervals(lab):
    from dr_inspect.live.watch import watch
    verdicts: list[IntervalVerdict] = []
    fault_at: list[int] = []

    def on_interval(v: IntervalVerdict) -> None:
        verdicts.append(v)
        if v.index == 3 and not fault_at:
            from dr_inspect.lab import run_traffic
            _rs_answers_arp(lab, "rs1")
            run_traffic(lab, requests=1, concurrency=1, fresh_arp=False)   # the client ARPs now
            fault_at.append(v.index)   # switched on right after verdict #3

    try:
        with Traffic(lab) as traffic:
            result = watch(lab_points(lab), interval=1.0, window_s=3.0, duration=7.5,
                           options=VerifyOptions(scheduler="flow-hash"), on_interval=on_interval)
    finally:
        _restore_arp(lab, "rs1")
    assert traffic.ok > 0 and fault_at == [3]
    before = [v for v in verdicts if v.index <= 3]
    assert [v.status for v in before if v.status != "waiting"] and \
        all(v.status == "pass" for v in before if v.status != "waiting"), [(v.index, v.status, v.failing) for v in before]
    soon = [v for v in verdicts if 3 < v.index <= 5]
    assert any("DR005" in v.failing for v in soon), \
        ([(v.index, v.status, v.failing, v.note, v.window_packets) for v in verdicts], result.crashed)
    first = next(v for v in soon if "DR005" in v.failing)
    assert any(rule.id == "DR005" and ev.point == "br_e" for rule, ev in first.new)
    # bounded memory: the last window holds less than everything captured
    total = sum(sum(v.packets.values()) for v in verdicts)
    assert verdicts[-1].window_packets < total
    report = result.report
    assert report.verdict == "fail" and report.exit_code == 1
    dr005 = next(r for r in report.rules if r.id == "DR005")
    assert dr005.status == "fail" and dr005.evidence and dr005.evidence[0].point == "br_e"
    assert not tcpdumps_in(lab.switch_netns)


@pytest.mark.lab
def test_watch_cli_healthy_lab_exit_0_and_saved_set_verifies(lab, tmp_path):
    from dr_inspect.analysis.paths import verify_paths
    save = tmp_path / "saved"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dr_inspect", "watch", "--bridge", "br_e", "--bridge", "br_lvs",
         "--netns", lab.switch_netns, "--role", "br_e=vip-segment", "--role", "br_lvs=rs-segment",
         "--interval", "1", "--duration", "5", "--scheduler", "flow-hash", "--save", str(save),
         "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        # traffic once every point listens (the first verdict): the saved set then has no
        # packet seen at one point before the other point's tcpdump started
        first = proc.stderr.readline()
        assert "#1 " in first, first + proc.stderr.read()
        with Traffic(lab):
            stdout, rest = proc.communicate(timeout=120)
    finally:
        reap(proc)
    proc.stderr_text = first + rest
    assert proc.returncode == 0, stdout[-2000:] + proc.stderr_text[-2000:]
    import json
    report = json.loads(stdout)
    assert report["verdict"] == "pass"
    assert "#2 PASS" in proc.stderr_text       # rolling verdicts on stderr with --format json
    offline = verify_paths([save])
    assert offline.verdict == "pass", [(r.id, r.status) for r in offline.rules if r.status == "fail"]
    assert not tcpdumps_in(lab.switch_netns)


@pytest.mark.lab
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_watch_with_report_and_valid_files(lab, tmp_path, sig):
    from dr_inspect.captureset import read_manifest
    from dr_inspect.decode import decode_file
    save = tmp_path / "saved"
    with Traffic(lab):
        proc = subprocess.Popen(
            [sys.executable, "-m", "dr_inspect", "watch", "--bridge", "br_e", "--bridge", "br_lvs",
             "--netns", lab.switch_netns, "--interval", "1", "--save", str(save), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        try:
            wait_for(lambda: (save / "br_e.pcap").exists() and (save / "br_e.pcap").stat().st_size > 1000,
                     proc, "watch did not start", poll=0.2)
            time.sleep(1.5)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            reap(proc)
    assert proc.returncode in (0, 1), stderr
    assert "Traceback" not in stderr and "rules" in stdout
    assert not tcpdumps_in(lab.switch_netns)
    for point in read_manifest(save).points:
        decoded = decode_file(point.file)
        assert decoded.stats.error is None and len(decoded.packets) > 0


@pytest.mark.lab
def test_watch_bad_bridge_is_one_line_exit_2(lab, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dr_inspect", "watch", "--bridge", "br_nope",
                           "--netns", lab.switch_netns, "--duration", "1"],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "br_nope" in lines[0] and "does not exist" in lines[0]
    assert not tcpdumps_in(lab.switch_netns)


@pytest.mark.lab
def test_watch_reports_a_tcpdump_that_dies(lab):
    from dr_inspect.live.watch import watch

    def kill_one(v: IntervalVerdict) -> None:
        if v.index == 1:
            pids = subprocess.run(["ip", "netns", "pids", lab.switch_netns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if cmd[0].endswith(b"tcpdump") and b"br_lvs" in cmd:
                    os.kill(int(pid), signal.SIGKILL)

    with Traffic(lab):
        result = watch(lab_points(lab), interval=1.0, duration=20, on_interval=kill_one)
    assert list(result.crashed) == ["br_lvs"]
    assert any("br_lvs: tcpdump died" in e for e in result.report.errors)
    assert not tcpdumps_in(lab.switch_netns)


def test_violations_at_a_window_edge_wait_for_the_next_window():
    rolling = RollingVerdict()
    dr007 = _rule("DR007", "fail", [_ev(10), _ev(50)])     # ts 10_000 and 50_000
    arp = _rule("DR005", "fail", [_ev(49)])
    failing, new, _ = rolling.add(_report(dr007, arp), judged_from_ns=20_000, judged_to_ns=40_000,
                                  edge_free={"DR005"})
    # DR007 needs the packets around its frames: both sit at an edge, so it is not failing yet;
    # the ARP claim is judged on its own frame anywhere in the window
    assert failing == ["DR005"] and [ev.frames for _, ev in new] == [[49]]
    failing, new, _ = rolling.add(_report(dr007, arp), judged_from_ns=45_000, judged_to_ns=None,
                                  edge_free={"DR005"}, forget_before_ns=30_000)
    assert failing == ["DR007", "DR005"] and [(r.id, ev.frames) for r, ev in new] == [("DR007", [50])]
    final = rolling.final_report([], flows=0)
    assert {r.id: r.violations for r in final.rules} == {"DR007": 1, "DR005": 1}


@pytest.mark.lab
def test_watch_count_ends_by_itself(lab):
    from dr_inspect.live.watch import watch
    with Traffic(lab):
        result = watch(lab_points(lab), interval=1.0, count=40, duration=60,
                       options=VerifyOptions(scheduler="flow-hash"))
    frames = {p.name: p.frames for p in result.report.points}
    assert frames == {"br_e": 40, "br_lvs": 40}
    assert result.report.rules and not result.crashed
    assert not tcpdumps_in(lab.switch_netns)
