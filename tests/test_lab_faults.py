"""Each lab fault, brought up for real, produces its packet-level symptom on br_e / br_lvs.

nft director (no VM); director-drops-invalid needs IPVS and is in test_lab_ipvs.py. Faults that
make connections hang run with one real server so every connection meets the fault. Prefix t3f.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require_root_netns, require_tool

from dr_inspect.lab import LabConfig, lab_down, lab_up, run_traffic
from dr_inspect.lab.faults import STALE_DIRECTOR_MAC

pytestmark = pytest.mark.lab
PREFIX = "t3f"


@pytest.fixture
def faulty_lab(tmp_path):
    require_root_netns()
    require_tool("nft", "nftables")
    require_tool("tcpdump", "tcpdump")
    lab_down(PREFIX)

    def make(fault: str, real_servers: int = 2, requests: int = 4, timeout: float = 1.5):
        from scapy.all import rdpcap

        from dr_inspect.lab.demo import capture_traffic
        state = lab_up(LabConfig(prefix=PREFIX, director="nft", real_servers=real_servers, faults=(fault,)))
        out = tmp_path / fault
        run = capture_traffic(state, out, lambda s: [run_traffic(s, requests=requests, concurrency=2,
                                                                 timeout=timeout)], snapshots=False)
        packets = {p: list(rdpcap(str(Path(out) / f"{p}.pcap"))) for p in ("br_e", "br_lvs")}
        return state, run.traffic[0], packets

    yield make
    lab_down(PREFIX)


def _mac(state, host: str, ifname: str) -> str:
    return state.hosts[host].interfaces[ifname]["mac"]


def _tcp(packets, **match):
    from scapy.layers.inet import IP, TCP
    out = []
    for p in packets:
        if TCP not in p:
            continue
        fields = {"src": p[IP].src, "dst": p[IP].dst, "sport": p[TCP].sport, "dport": p[TCP].dport}
        if all(fields[k] == v for k, v in match.items()):
            out.append(p)
    return out


def _syn_acks(packets, vip, port):
    return [p for p in _tcp(packets, src=vip, sport=port) if (p["TCP"].flags & 0x12) == 0x12]


def test_rs_answers_arp_two_macs_claim_the_vip(faulty_lab):
    from scapy.layers.l2 import ARP
    state, _, packets = faulty_lab("rs-answers-arp")
    owners = {p[ARP].hwsrc for p in packets["br_e"] if ARP in p and p[ARP].op == 2 and p[ARP].psrc == state.vip}
    assert owners == {_mac(state, "director", "eth7"), _mac(state, "rs1", "eth14")}


def test_rs_arp_announce_real_server_asks_with_the_vip(faulty_lab):
    from scapy.layers.l2 import ARP
    state, traffic, packets = faulty_lab("rs-arp-announce", real_servers=1)
    askers = {p[ARP].hwsrc for p in packets["br_e"] if ARP in p and p[ARP].op == 1 and p[ARP].psrc == state.vip}
    assert askers == {_mac(state, "rs1", "eth14")}


def _assert_forwarded_but_unanswered(state, traffic, packets):
    assert traffic.ok == 0 and traffic.failed > 0
    syns = [p for p in _tcp(packets["br_lvs"], dst=state.vip, dport=state.port) if p["TCP"].flags == 0x02]
    assert syns and {p["Ether"].dst for p in syns} == {_mac(state, "rs1", "eth12")}
    assert len(syns) > len({p["TCP"].sport for p in syns})            # retransmitted SYNs
    assert not _syn_acks(packets["br_e"], state.vip, state.port)


def test_rs_no_vip_syns_are_never_answered(faulty_lab):
    _assert_forwarded_but_unanswered(*faulty_lab("rs-no-vip", real_servers=1, requests=2))


def test_rs_rp_filter_syns_are_never_answered(faulty_lab):
    _assert_forwarded_but_unanswered(*faulty_lab("rs-rp-filter", real_servers=1, requests=2))


def test_rs_vip_wide_mask_syn_acks_never_leave(faulty_lab):
    _assert_forwarded_but_unanswered(*faulty_lab("rs-vip-wide-mask", real_servers=1, requests=2))


def test_reply_via_director_replies_cross_br_lvs_to_the_director(faulty_lab):
    state, traffic, packets = faulty_lab("reply-via-director", real_servers=1, requests=2)
    replies = _tcp(packets["br_lvs"], src=state.vip, sport=state.port)
    assert replies
    assert {p["Ether"].dst for p in replies} == {_mac(state, "director", "eth8")}
    assert {p["Ether"].src for p in replies} == {_mac(state, "rs1", "eth12")}
    assert not _syn_acks(packets["br_e"], state.vip, state.port)     # dropped as martians
    assert traffic.ok == 0


def test_port_mismatch_real_server_resets(faulty_lab):
    state, traffic, packets = faulty_lab("port-mismatch", real_servers=1, requests=2)
    resets = [p for p in _tcp(packets["br_e"], src=state.vip, sport=state.port) if p["TCP"].flags & 0x04]
    assert resets and {p["Ether"].src for p in resets} == {_mac(state, "rs1", "eth14")}
    assert traffic.errors.get("refused") == 2


def test_stale_arp_client_sends_to_the_old_director_mac(faulty_lab):
    state, traffic, packets = faulty_lab("stale-arp", requests=2)
    to_vip = _tcp(packets["br_e"], dst=state.vip, dport=state.port)
    assert to_vip and {p["Ether"].dst for p in to_vip} == {STALE_DIRECTOR_MAC}
    assert not _tcp(packets["br_lvs"])
    assert traffic.ok == 0


def test_forwarding_loop_ends_with_the_ttl(faulty_lab):
    from scapy.layers.inet import ICMP, IP
    state, traffic, packets = faulty_lab("forwarding-loop", real_servers=1, requests=1, timeout=1.0)
    syns = [p for p in _tcp(packets["br_lvs"], dst=state.vip, dport=state.port) if p["TCP"].flags == 0x02]
    first = syns[0]
    same = [p for p in syns if (p["TCP"].sport, p["TCP"].seq) == (first["TCP"].sport, first["TCP"].seq)]
    ttls = [p[IP].ttl for p in same]
    loop = ttls[:1]                     # the first SYN's bounces, until a retransmit restarts at 64
    for ttl in ttls[1:]:
        if ttl > loop[-1]:
            break
        loop.append(ttl)
    # each pass through rs1 costs one TTL (the nft director keeps it): 64 down to the end
    assert loop[0] == 64 and loop[-1] <= 2 and len(set(loop)) > 60
    exceeded = [p for p in packets["br_e"] if ICMP in p and p[ICMP].type == 11]
    assert exceeded and exceeded[0][IP].src == state.hosts["rs1"].interfaces["eth14"]["ip"]
    assert traffic.ok == 0
