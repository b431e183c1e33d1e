"""Remote capture through real ssh: sshd in the lab's namespaces (lab/sshd.py), the CLI run as a
user runs it (inventory file or --host/--iface). The set verifies like a local capture of the same
traffic; interrupting it in every phase (before tcpdump starts, while streaming, one host failing,
ssh killed, the connection lost, dr-inspect killed) leaves no process on any host.
Lab prefix "rmtc" (ours only)."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from remote_lab import agent_pids, children, cli, ssh_farm, stop, wait_capturing, wait_clean
from dr_inspect.live.capture import CapturePoint, start_capture
from dr_inspect.live.files import complete_length
from dr_inspect.analysis.paths import verify_paths

pytestmark = pytest.mark.lab
PREFIX = "rmtc"
FILTER = "tcp or arp"


@pytest.fixture(scope="module")
def farm():
    with ssh_farm(PREFIX) as (state, lab):
        yield state, lab


@pytest.fixture(autouse=True)
def nothing_left(farm):
    """Every test ends with no agent process on any host (and starts from there)."""
    state, lab = farm
    assert wait_clean(state, lab) == []
    yield
    assert wait_clean(state, lab) == []


def write_inventory(path: Path, lab, hosts: dict[str, list[str]], options: list[str] = ()) -> Path:
    lines = ["[ssh]", f'config = "{lab.config}"', f"options = {json.dumps(list(options))}", "",
             "[capture]", f'filter = "{FILTER}"', ""]
    for host, ifaces in hosts.items():
        lines += [f"[hosts.{host}]", f'ssh = "{lab.alias(host)}"', f"interfaces = {json.dumps(ifaces)}",
                  'role = "director"' if host == "director" else "", ""]
    path.write_text("\n".join(lines))
    return path


def tcp_frames(path: Path) -> list[bytes]:
    """The IPv4/TCP frames of a classic pcap file (tcpdump's), in file order."""
    data = path.read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frames, at = [], 24
    while at + 16 <= len(data):
        caplen = struct.unpack(endian + "IIII", data[at:at + 16])[2]
        frame = data[at + 16:at + 16 + caplen]
        if frame[12:14] == b"\x08\x00" and frame[23] == 6:
            frames.append(frame)
        at += 16 + caplen
    return frames


def traffic(state, requests: int = 6, **kw) -> None:
    from dr_inspect.lab import run_traffic

    result = run_traffic(state, requests=requests, concurrency=2, **kw)
    assert result.ok == requests, result


def test_remote_capture_verifies_like_a_local_capture_of_the_same_traffic(farm, tmp_path):
    state, lab = farm
    inventory = write_inventory(tmp_path / "farm.toml", lab,
                                {"switch": ["br_e", "br_lvs"], "director": ["eth7"], "rs1": ["eth12"]})
    local = start_capture([CapturePoint("br_e", "br_e", state.switch_netns),
                           CapturePoint("br_lvs", "br_lvs", state.switch_netns)],
                          tmp_path / "local", bpf=FILTER, snapshot_hosts={})
    proc = cli("capture", "--inventory", str(inventory), "--out", str(tmp_path / "remote"), "-q")
    try:
        wait_capturing(lab, ["switch", "director", "rs1"], proc)
        snaps = tmp_path / "remote" / "snapshots"
        deadline = time.monotonic() + 120
        while len(list(snaps.glob("*.json"))) < 3:        # snapshots are taken while capturing
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        traffic(state)
        time.sleep(1.5)
        rc, out, err = stop(proc, signal.SIGINT)          # Ctrl-C
    finally:
        local.stop()
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, err
    assert "capture set written to" in out
    manifest = tomllib.loads((tmp_path / "remote" / "manifest.toml").read_text())
    points = {p["name"]: p for p in manifest["points"]}
    assert set(points) == {"switch-br_e", "switch-br_lvs", "director-eth7", "rs1-eth12"}
    for p in points.values():
        # one kernel, one clock: the measured offset is within its bound of zero
        assert abs(p["clock_offset_ns"]) <= p["clock_bound_ns"], p
        assert p["ssh"] == lab.alias(p["host"]) and p["snaplen"] == 262144
    assert set(manifest["snapshots"]) == {"switch", "director", "rs1"}
    director = json.loads((tmp_path / "remote" / "snapshots" / "director.json").read_text())
    assert director["role"] == "director" and director["ssh"] == lab.alias("director")
    assert any(a["ifname"] == "eth7" for a in director["addr"])

    # the same frames as the local capture of the same bridges
    for bridge in ("br_e", "br_lvs"):
        remote_frames = tcp_frames(tmp_path / "remote" / f"switch-{bridge}.pcap")
        local_frames = tcp_frames(tmp_path / "local" / f"{bridge}.pcap")
        assert len(remote_frames) >= 6 * 5
        assert sorted(remote_frames) == sorted(local_frames)

    remote_report, local_report = verify_paths([tmp_path / "remote"]), verify_paths([tmp_path / "local"])
    assert remote_report.verdict == local_report.verdict == "pass"
    assert {r.id: r.status for r in remote_report.rules} == {r.id: r.status for r in local_report.rules}
    assert remote_report.flows == local_report.flows == 6
    assert not [e for e in remote_report.errors if e.startswith("clock of")]
    assert set(remote_report.stats["clock_measured_ns"]) == set(points)
    assert "clock_measured_ns" not in local_report.stats

    # a host whose measured clock disagrees with the traffic beyond the bound gets a note
    text = (tmp_path / "remote" / "manifest.toml").read_text()
    offset = points["rs1-eth12"]["clock_offset_ns"]
    (tmp_path / "remote" / "manifest.toml").write_text(
        text.replace(f"clock_offset_ns = {offset}\n", f"clock_offset_ns = {offset + 50_000_000}\n"))
    notes = [e for e in verify_paths([tmp_path / "remote"]).errors if e.startswith("clock of")]
    assert len(notes) == 1 and notes[0].startswith("clock of rs1-eth12: measured over ssh +")
    measured = float(re.search(r"measured over ssh \+([0-9.]+) ms", notes[0]).group(1))
    # 50 ms plus rs1's offset less the switch's (the reference), each within its bound of zero
    bounds = points["rs1-eth12"]["clock_bound_ns"] + points["switch-br_e"]["clock_bound_ns"]
    assert abs(measured - 50) <= bounds / 1e6 + 0.001


def _host_args(lab, *specs: str) -> list[str]:
    """--host/--iface for HOST:IFACE specs, with the lab's ssh config."""
    args = ["--ssh-config", str(lab.config), "--filter", FILTER, "-q"]
    for host in dict.fromkeys(s.split(":")[0] for s in specs):
        args += ["--host", f"{host}={lab.alias(host)}"]
    for spec in specs:
        args += ["--iface", spec]
    return args


def test_sigterm_while_streaming_stops_every_host(farm, tmp_path):
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "rs1:eth12", "rs1:eth14", "switch:br_e"),
               "--no-snapshot", "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["rs1", "switch"], proc)
    traffic(state, requests=2)
    rc, out, err = stop(proc, signal.SIGTERM)
    assert rc == 0, err
    assert len(tcp_frames(tmp_path / "set" / "rs1-eth12.pcap")) >= 2 * 5
    assert "dropped by kernel 0" in out


def test_interrupt_before_tcpdump_starts(farm, tmp_path):
    """One host does not answer (a ProxyCommand that hangs): dr-inspect is still probing the
    hosts when it is stopped; no tcpdump ever ran, no folder was made, no ssh is left."""
    state, lab = farm
    hang = "sleep 317"
    inventory = write_inventory(tmp_path / "farm.toml", lab, {"rs1": ["eth12"], "client": ["eth0"]})
    inventory.write_text(inventory.read_text().replace(
        '[hosts.client]', f'[hosts.client]\noptions = ["ProxyCommand={hang}"]'))
    proc = cli("capture", "--inventory", str(inventory), "--out", str(tmp_path / "set"), "-q")
    deadline = time.monotonic() + 60
    while not subprocess.run(["pgrep", "-f", hang], capture_output=True).stdout:   # probing client
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    assert agent_pids(lab, "rs1") == []
    rc, _out, err = stop(proc, signal.SIGTERM)
    assert rc == 130 and "interrupted" in err
    assert not (tmp_path / "set").exists()
    assert not subprocess.run(["pgrep", "-f", hang], capture_output=True).stdout


def test_interrupt_while_snapshotting_removes_the_set(farm, tmp_path):
    """Stopped after every tcpdump started, while the hosts' state is read: the agents are
    stopped and the half-made set is removed, as when local capture fails to start."""
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "rs1:eth12", "director:eth7"), "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["rs1", "director"], proc)      # snapshots over ssh take seconds more
    rc, _out, err = stop(proc, signal.SIGTERM)
    assert rc == 130 and "interrupted" in err             # (once capturing, SIGTERM exits 0)
    assert not (tmp_path / "set").exists()


def test_one_host_failing_stops_the_others(farm, tmp_path):
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "switch:br_e", "rs1:eth12"), "--no-snapshot",
               "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["switch", "rs1"], proc)
    os.kill(agent_pids(lab, "rs1")[0], signal.SIGKILL)     # rs1's tcpdump dies
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "tcpdump died on rs1-eth12" in err
    manifest = tomllib.loads((tmp_path / "set" / "manifest.toml").read_text())
    assert {p["name"] for p in manifest["points"]} == {"switch-br_e", "rs1-eth12"}


def test_killed_ssh_ends_its_remote_tcpdump(farm, tmp_path):
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "switch:br_lvs", "rs1:eth12"), "--no-snapshot",
               "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["switch", "rs1"], proc)
    ssh = [pid for pid in children(proc.pid, "ssh")
           if lab.alias("switch") in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    assert len(ssh) == 1
    os.kill(ssh[0], signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "switch-br_lvs" in err


def test_lost_connection_ends_both_sides(farm, tmp_path):
    """The management link to rs1 goes down mid-capture: ssh here notices (ServerAlive), sshd
    there too (ClientAlive), and each side ends its part."""
    state, lab = farm
    index = list(lab.addresses).index("rs1")
    link = f"{PREFIX}-s{index}"
    proc = cli("capture", *_host_args(lab, "rs1:eth12", "switch:br_e"), "--no-snapshot",
               "--ssh-option", "ServerAliveInterval=1", "--ssh-option", "ServerAliveCountMax=2",
               "--out", str(tmp_path / "set"))
    try:
        wait_capturing(lab, ["rs1", "switch"], proc)
        subprocess.run(["ip", "link", "set", link, "down"], check=True)
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 2 and "rs1-eth12" in err, err
    finally:
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
        if proc.poll() is None:
            proc.kill()


def test_killed_collector_ends_every_remote_tcpdump(farm, tmp_path):
    """dr-inspect itself SIGKILLed (no clean-up runs): its ssh clients die with it, and the
    closed connections end the remote side."""
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "rs1:eth12", "director:eth8"), "--no-snapshot",
               "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["rs1", "director"], proc)
    proc.kill()
    proc.communicate(timeout=30)


def test_size_bound_ends_each_point(farm, tmp_path):
    state, lab = farm
    proc = cli("capture", *_host_args(lab, "rs1:eth12", "switch:br_lvs"), "--no-snapshot",
               "--max-mb", "1", "--out", str(tmp_path / "set"))
    wait_capturing(lab, ["rs1", "switch"], proc)
    traffic(state, requests=4, payload=400_000)          # ~1.6 MB towards the real server
    out, err = proc.communicate(timeout=60)               # every point reached its bound
    assert proc.returncode == 0, err
    assert out.count("stopped at the size bound") == 2
    for name in ("rs1-eth12", "switch-br_lvs"):
        path = tmp_path / "set" / f"{name}.pcap"
        # the bound, less the partial record cut off at the end (at most one snaplen's worth)
        assert 1_000_000 - 262_160 <= path.stat().st_size < 3_000_000
        assert complete_length(path) == path.stat().st_size     # whole records only
        assert len(tcp_frames(path)) > 10


def test_a_pty_would_corrupt_the_stream(farm):
    """Why the agent runs without a pty (ssh -T) under the EOF wrapper instead of ssh -tt (whose
    hangup would also end tcpdump): a pty turns \\n into \\r\\n and mixes stderr into stdout."""
    state, lab = farm
    argv = ["ssh", "-F", str(lab.config), "-o", "BatchMode=yes", "-tt", lab.alias("rs1"),
            "printf 'a\\nb'; echo E >&2"]
    out = subprocess.run(argv, capture_output=True, timeout=60).stdout
    assert out.startswith(b"a\r\nb") and b"E" in out
