"""The lab with the real IPVS director (a qemu VM on kernels without IPVS, like this one's).

Root only; the VM needs qemu-system-x86 and fetches its Debian assets once (cached). Prefix t3i.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, require_root_netns, require_tool

from dr_inspect.lab import LabConfig, lab_down, lab_inventory, lab_status, lab_up, run_curl, run_traffic
from dr_inspect.lab import sysrun
from dr_inspect.lab.build import ipvs_in_kernel
from dr_inspect.lab.state import state_path

pytestmark = pytest.mark.lab
PREFIX = "t3i"


@pytest.fixture
def ipvs_lab(tmp_path):
    require_root_netns()
    require_tool("tcpdump", "tcpdump")
    if not ipvs_in_kernel():
        require_tool("qemu-system-x86_64", "qemu-system-x86")
    lab_down(PREFIX)

    def make(**kw):
        return lab_up(LabConfig(prefix=PREFIX, director="ipvs", **kw))

    yield make
    lab_down(PREFIX)


def _packets(out: Path):
    from scapy.all import rdpcap
    return {p: list(rdpcap(str(out / f"{p}.pcap"))) for p in ("br_e", "br_lvs")}


def test_ipvs_lab_round_robin_rewrite_and_down(ipvs_lab, tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from dr_inspect.lab.demo import capture_traffic
    state = ipvs_lab(real_servers=2)
    assert state.director_mode in ("ipvs-vm", "ipvs-netns")
    vm_pid = state.vm["pid"] if state.vm else None

    run = capture_traffic(state, tmp_path / "cap",
                          lambda s: [run_curl(s, 2), run_traffic(s, requests=6, concurrency=1, fresh_arp=False)],
                          snapshots=False)
    curl, gen = run.traffic
    assert curl.ok == 2 and curl.per_server == {"rs1": 1, "rs2": 1}          # rr alternates
    assert gen.ok == 6 and gen.per_server == {"rs1": 3, "rs2": 3}

    packets = _packets(tmp_path / "cap")
    d = state.hosts["director"].interfaces
    syn_e = {p[TCP].sport: p for p in packets["br_e"]
             if TCP in p and p[IP].dst == state.vip and p[TCP].flags == 0x02}
    syn_lvs = [p for p in packets["br_lvs"] if TCP in p and p[IP].dst == state.vip and p[TCP].flags == 0x02]
    assert len(syn_lvs) == 8
    rs_macs = {state.hosts[r].interfaces["eth12"]["mac"] for r in ("rs1", "rs2")}
    assert {p[Ether].src for p in syn_lvs} == {d["eth8"]["mac"]}
    assert {p[Ether].dst for p in syn_lvs} == rs_macs
    for p in syn_lvs:                              # IPVS-DR: same packet, TTL one lower
        before = syn_e[p[TCP].sport]
        assert before[Ether].dst == d["eth7"]["mac"]
        assert (p[IP].src, p[IP].id, p[TCP].seq, bytes(p[TCP].payload)) == \
            (before[IP].src, before[IP].id, before[TCP].seq, bytes(before[TCP].payload))
        assert p[IP].ttl == before[IP].ttl - 1

    # another process reaches the director (the VM's control channel) through the state file
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("from dr_inspect.lab import lab_status; s = lab_status('t3i'); "
            "print(s.run('director', ['ipvsadm', '-Ln']).stdout)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "192.168.88.20:8000" in out.stdout and "Route" in out.stdout, out.stderr

    status = lab_status(PREFIX)
    if vm_pid:
        assert set(lab_inventory(status)["taps"]) == {"t3i-vm-vip", "t3i-vm-dip"}
        assert sysrun.pid_alive(vm_pid)
    lab_down(PREFIX)
    assert not [ns for ns in sysrun.list_netns() if ns.startswith(f"{PREFIX}-")]
    assert not state_path(PREFIX).exists()
    if vm_pid:
        assert not sysrun.pid_alive(vm_pid)


def test_director_drops_invalid_forwards_syn_but_not_the_ack(ipvs_lab, tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from dr_inspect.lab.demo import capture_traffic
    state = ipvs_lab(real_servers=1, faults=("director-drops-invalid",))
    run = capture_traffic(state, tmp_path / "cap",
                          lambda s: [run_traffic(s, requests=1, concurrency=1, timeout=2.0)], snapshots=False)
    assert run.traffic[0].ok == 0
    packets = _packets(tmp_path / "cap")
    d = state.hosts["director"].interfaces
    to_director = [p for p in packets["br_e"] if TCP in p and p[IP].dst == state.vip and p[Ether].dst == d["eth7"]["mac"]]
    syn_ack = [p for p in packets["br_e"] if TCP in p and p[IP].src == state.vip and p[TCP].flags == 0x12]
    forwarded = [p for p in packets["br_lvs"] if TCP in p and p[IP].dst == state.vip]
    assert syn_ack, "the real server should answer the forwarded SYN"
    assert any(p[TCP].flags & 0x10 for p in to_director), "the client's ACK reaches the director"
    assert forwarded and all(p[TCP].flags == 0x02 for p in forwarded), "only SYNs may be forwarded"


def test_forwarding_loop_with_ipvs_decrements_twice_per_pass(ipvs_lab, tmp_path):
    from scapy.layers.inet import IP, TCP

    from dr_inspect.lab.demo import capture_traffic
    state = ipvs_lab(real_servers=1, faults=("forwarding-loop",))
    capture_traffic(state, tmp_path / "cap", lambda s: [run_traffic(s, requests=1, timeout=1.0)], snapshots=False)
    packets = _packets(tmp_path / "cap")
    syns = [p for p in packets["br_lvs"] if TCP in p and p[IP].dst == state.vip and p[TCP].flags == 0x02]
    first = (syns[0][TCP].sport, syns[0][TCP].seq)
    ttls = [p[IP].ttl for p in syns if (p[TCP].sport, p[TCP].seq) == first]
    assert ttls[0] == 63 and ttls[1] == 62 and len(set(ttls)) > 30 and min(ttls) <= 2
