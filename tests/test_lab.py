"""The lab with the nft director: up, traffic through the VIP, MAC rewrite on br_lvs, down; failure paths.

Root only (network namespaces); in CI they run, elsewhere they skip. Prefixes t3, t3b, t3c.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, reap, require_root_netns, require_tool, wait_for

from dr_inspect.errors import LabError, MissingToolError
from dr_inspect.lab import LabConfig, lab_down, lab_inventory, lab_status, lab_up, run_curl, run_traffic
from dr_inspect.lab import sysrun
from dr_inspect.lab.state import state_path

pytestmark = pytest.mark.lab


def _nothing_left(prefix: str, pids: list[int]) -> None:
    assert not [ns for ns in sysrun.list_netns() if ns.startswith(f"{prefix}-")]
    assert not state_path(prefix).exists()
    assert not [p for p in pids if sysrun.pid_alive(p)]


@pytest.fixture
def lab():
    require_root_netns()
    require_tool("nft", "nftables")
    require_tool("tcpdump", "tcpdump")
    prefixes: list[str] = []

    def make(**kw) -> object:
        cfg = LabConfig(**kw)
        lab_down(cfg.prefix)          # leftovers of an earlier crashed run
        prefixes.append(cfg.prefix)
        return lab_up(cfg)

    yield make
    for prefix in prefixes:
        lab_down(prefix)


def capture(state, out: Path, traffic):
    """Capture on br_e and br_lvs while traffic(state) runs; scapy packets per bridge."""
    from scapy.all import rdpcap

    from dr_inspect.lab.demo import capture_traffic
    run = capture_traffic(state, out, traffic, snapshots=False)
    return run, {p: list(rdpcap(str(out / f"{p}.pcap"))) for p in ("br_e", "br_lvs")}


def test_nft_lab_up_traffic_rewrite_and_down(lab, tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    state = lab(prefix="t3", director="nft", real_servers=2)
    assert state.director_mode == "nft"
    assert set(state.hosts) == {"client", "director", "rs1", "rs2"}
    pids = list(state.processes.values())

    run, packets = capture(state, tmp_path / "cap",
                           lambda s: [run_curl(s, 2), run_traffic(s, requests=30, concurrency=5, payload=[0, 3000],
                                                                  fresh_arp=False)])
    curl, gen = run.traffic
    assert curl.ok == 2 and curl.failed == 0
    assert gen.ok == 30 and gen.failed == 0
    assert set(gen.per_server) == {"rs1", "rs2"}       # 30 flows hashed over 2 servers

    vip, port = state.vip, state.port
    director = state.hosts["director"].interfaces
    rs_macs = {state.hosts[r].interfaces["eth12"]["mac"] for r in ("rs1", "rs2")}
    to_vip_e = [p for p in packets["br_e"] if TCP in p and p[IP].dst == vip and p[TCP].dport == port]
    fwd = [p for p in packets["br_lvs"] if TCP in p and p[IP].dst == vip and p[TCP].dport == port]
    assert to_vip_e and all(p[Ether].dst == director["eth7"]["mac"] for p in to_vip_e)
    assert fwd, "no forwarded frames on br_lvs"
    assert {p[Ether].src for p in fwd} == {director["eth8"]["mac"]}
    assert {p[Ether].dst for p in fwd} == rs_macs
    # the same segment crosses both bridges with the IP packet unchanged (nft keeps the TTL)
    key = lambda p: (p[IP].src, p[TCP].sport, p[TCP].seq, p[TCP].ack, p[TCP].flags, p[IP].id, p[IP].ttl)
    assert {key(p) for p in fwd} <= {key(p) for p in to_vip_e}
    # replies leave the real servers straight to the client, from the VIP, never on br_lvs
    replies = [p for p in packets["br_e"] if TCP in p and p[IP].src == vip and p[TCP].sport == port]
    rs_e_macs = {state.hosts[r].interfaces["eth14"]["mac"] for r in ("rs1", "rs2")}
    assert replies and {p[Ether].src for p in replies} == rs_e_macs
    assert not [p for p in packets["br_lvs"] if TCP in p and p[IP].src == vip]

    status = lab_status("t3")
    assert status is not None and not status.leftovers
    inventory = lab_inventory(status)
    assert {"br_e", "br_lvs", "c-eth0", "d-eth7", "rs2-eth12"} <= set(inventory["switch devices"])
    assert len(inventory["namespaces"]) == 5

    removed = lab_down("t3")
    assert any("netns t3-sw" in r for r in removed)
    _nothing_left("t3", pids)
    assert lab_status("t3") is None


def test_second_up_with_same_prefix_refuses(lab):
    lab(prefix="t3b", director="nft")
    with pytest.raises(LabError, match="already up"):
        lab_up(LabConfig(prefix="t3b", director="nft"))


def test_two_labs_coexist_with_the_seeds_bridge_names(lab):
    a = lab(prefix="t3", director="nft")
    b = lab(prefix="t3b", director="nft", port=8080)
    assert run_traffic(a, requests=2).ok == 2
    assert run_traffic(b, requests=2).ok == 2


def test_down_after_a_crash_finds_leftovers_by_name(lab):
    state = lab(prefix="t3c", director="nft")
    pids = list(state.processes.values())
    state_path("t3c").unlink()                       # as if the state file were lost
    status = lab_status("t3c")
    assert status is not None and any("crashed" in x for x in status.leftovers)
    removed = lab_down("t3c")
    assert any("process pid" in r for r in removed)   # the http servers, found by netns
    _nothing_left("t3c", pids)


def test_missing_tool_names_the_debian_package(monkeypatch):
    real_which = sysrun.shutil.which
    monkeypatch.setattr(sysrun.shutil, "which", lambda t: None if t == "nft" else real_which(t))
    with pytest.raises(MissingToolError, match="apt-get install nftables"):
        lab_up(LabConfig(prefix="t3d", director="nft"))


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "dr_inspect", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, **kw)


def test_cli_up_status_traffic_down(lab):
    require_root_netns()
    lab_down("t3")
    try:
        up = _cli("lab", "up", "--prefix", "t3", "--director", "nft", "--real-servers", "2")
        assert up.returncode == 0, up.stderr
        assert "192.168.88.21/24" in up.stdout and "02:00:c0:a8:07:21" in up.stdout
        again = _cli("lab", "up", "--prefix", "t3", "--director", "nft")
        assert again.returncode == 2
        assert again.stderr.startswith("dr-inspect: error:") and "already up" in again.stderr
        assert "Traceback" not in again.stderr
        status = _cli("lab", "status", "--prefix", "t3")
        assert status.returncode == 0 and "rs2-http pid" in status.stdout and "t3-sw" in status.stdout
        traffic = _cli("lab", "traffic", "--prefix", "t3", "--requests", "6", "--curl", "1")
        assert traffic.returncode == 0, traffic.stdout + traffic.stderr
        assert "loadgen: 6/6 ok" in traffic.stdout and "curl: 1/1 ok" in traffic.stdout
    finally:
        down = _cli("lab", "down", "--prefix", "t3")
    assert down.returncode == 0 and "removed netns t3-sw" in down.stdout
    gone = _cli("lab", "status", "--prefix", "t3")
    assert gone.returncode == 3 and "not up" in gone.stdout


def test_fault_refused_with_the_wrong_backend():
    require_root_netns()
    out = _cli("lab", "up", "--prefix", "t3", "--director", "nft", "--fault", "director-drops-invalid")
    assert out.returncode == 2 and "needs the ipvs director backend" in out.stderr
    assert not [ns for ns in sysrun.list_netns() if ns.startswith("t3-")]


def test_demo_writes_a_capture_set_and_tears_down(tmp_path):
    require_root_netns()
    require_tool("nft", "nftables")
    require_tool("tcpdump", "tcpdump")
    lab_down("t3")
    out = tmp_path / "demo"
    proc = _cli("lab", "demo", "--prefix", "t3", "--director", "nft", "--real-servers", "2", "--out", str(out),
                "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert f"capture set: {out}" in proc.stdout
    from dr_inspect.captureset import load_capture_set
    cs = load_capture_set([out])
    assert {p.name: p.role for p in cs.points} == {"br_e": "vip-segment", "br_lvs": "rs-segment"}
    # real servers named by RIP (the lab's plan: rs1, rs2 on 192.168.88.20, .21), so reports use
    # the lab's names
    assert cs.capture["director"] == "nft"
    assert cs.capture["real_servers"] == [{"name": "rs1", "rip": "192.168.88.20"},
                                          {"name": "rs2", "rip": "192.168.88.21"}]
    assert all(p.file.stat().st_size > 1000 for p in cs.points)
    assert set(cs.snapshots) == {"client", "director", "rs1", "rs2"}
    _nothing_left("t3", [])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_during_demo_tears_down(tmp_path, signum):
    require_root_netns()
    require_tool("nft", "nftables")
    require_tool("tcpdump", "tcpdump")
    lab_down("t3")
    out = tmp_path / "demo"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # many slow requests keep the demo in its traffic phase long enough to interrupt it there
    proc = subprocess.Popen([sys.executable, "-m", "dr_inspect", "lab", "demo", "--prefix", "t3", "--director",
                             "nft", "--out", str(out), "--requests", "400", "--concurrency", "1", "--no-verify"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / "br_lvs.pcap").exists() and state_path("t3").exists(), proc,
                 "demo did not start capturing")
        recorded = lab_status("t3")
        pids = list(recorded.processes.values()) if recorded else []
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        reap(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    _nothing_left("t3", pids)
    assert not subprocess.run(["pgrep", "-f", f"tcpdump.*{out}"], capture_output=True).stdout
