"""The benchmark generators (bench/gen.py) write valid captures: checked at tiny sizes with scapy
(an independent reader), tshark, the capture-set reader and, once they exist, our decoder and
verifier (the two-point set must be a healthy DR capture)."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import ROOT, require, require_tool

if str(ROOT) not in sys.path:      # bench/ is a top-level folder of the repo, not installed
    sys.path.insert(0, str(ROOT))

from bench import gen  # noqa: E402

import scapy.all as scapy_all  # noqa: E402  (a test dependency: missing, it fails)
ARP, IP, TCP, Ether = scapy_all.ARP, scapy_all.IP, scapy_all.TCP, scapy_all.Ether

LAB = gen.SyntheticLab()


def _read(path: Path) -> list:
    with scapy_all.PcapReader(str(path)) as reader:
        return list(reader)


def _ip_checksum_ok(pkt) -> bool:
    ip = pkt[IP]
    again = IP(bytes(ip))
    del again.chksum
    return IP(bytes(again)).chksum == ip.chksum


def _tcp_seq_continuity(pkts: list) -> int:
    """Assert each direction's seq advances by payload + SYN + FIN; return connections seen."""
    next_seq: dict[tuple, int] = {}
    for p in pkts:
        if TCP not in p:
            continue
        ip, tcp = p[IP], p[TCP]
        key = (ip.src, tcp.sport, ip.dst, tcp.dport)
        payload = ip.len - 4 * ip.ihl - 4 * tcp.dataofs
        if key in next_seq:
            assert tcp.seq == next_seq[key], f"seq gap in {key}"
        else:
            assert tcp.flags.S, f"{key} does not start with SYN (single point may be cut only at the end)"
        next_seq[key] = (tcp.seq + payload + bool(tcp.flags.S) + bool(tcp.flags.F)) & 0xFFFFFFFF
    return len(next_seq)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("single")
    paths = {"pcap": out / "s.pcap", "pcapng": out / "s.pcapng"}
    for fmt, path in paths.items():
        gen.write_single_capture(path, 1500, fmt=fmt, seed=7)
    return paths


@pytest.fixture(scope="module")
def drset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("drset") / "set"
    gen.write_dr_set(out, 1500, seed=3, lab=gen.SyntheticLab(real_servers=3))
    return out


def test_single_point_capture_is_valid(single):
    pkts = _read(single["pcap"])
    assert len(pkts) == 1500
    assert all(_ip_checksum_ok(p) for p in pkts if IP in p)
    arp = [p for p in pkts if ARP in p]
    assert 2 <= len(arp) <= 60                       # about 1 %
    assert {p[ARP].op for p in arp} == {1, 2}
    vip_claims = {p[ARP].hwsrc for p in arp if p[ARP].psrc == LAB.vip}    # replies and GARPs
    assert vip_claims == {LAB.director_vip_mac}
    to_vip = [p for p in pkts if IP in p and p[IP].dst == LAB.vip]
    from_vip = [p for p in pkts if IP in p and p[IP].src == LAB.vip]
    assert to_vip and from_vip and len(to_vip) + len(from_vip) + len(arp) == 1500
    assert {p[Ether].dst for p in to_vip} == {LAB.director_vip_mac}
    assert {p[TCP].dport for p in to_vip} == {LAB.port}
    assert _tcp_seq_continuity(pkts) > 20
    times = [p.time for p in pkts]
    assert times == sorted(times)
    # SYNs carry MSS/SACK/TS/WS options, other segments the timestamps option (data offset 8)
    syn = next(p for p in to_vip if p[TCP].flags == "S")
    assert [o[0] for o in syn[TCP].options] == ["MSS", "SAckOK", "Timestamp", "NOP", "WScale"]
    assert {p[TCP].dataofs for p in pkts if TCP in p and not p[TCP].flags.S} == {8}


def test_pcapng_holds_the_same_frames_with_nanoseconds(single):
    classic, ng = _read(single["pcap"]), _read(single["pcapng"])
    assert len(classic) == len(ng) == 1500
    assert [bytes(a) for a in classic] == [bytes(b) for b in ng]
    # pcap keeps microseconds, pcapng (if_tsresol 9) nanoseconds of the same instant
    assert all(int(a.time * 10**6) == int(b.time * 10**9) // 1000 for a, b in zip(classic, ng))
    assert any(int(b.time * 10**9) % 1000 for b in ng)


def test_tshark_reads_both_formats_without_complaint(single):
    tshark = require_tool("tshark", "tshark")
    for path in single.values():
        out = subprocess.run(
            [tshark, "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-T", "fields",
             "-e", "frame.number", "-e", "ip.checksum.status", "-e", "_ws.expert.severity",
             "-e", "_ws.malformed"],
            capture_output=True, text=True, check=True).stdout.splitlines()
        assert len(out) == 1500
        rows = [line.split("\t") for line in out]
        assert not [r for r in rows if r[3]], "malformed frames"
        # ip.checksum.status: 1 = good (checked), 0 = bad; ARP frames have none
        assert {r[1] for r in rows} == {"1", ""}


def test_dr_set_forwarded_copies_are_exact_dr_rewrites(drset):
    from dr_inspect.captureset import load_capture_set

    cs = load_capture_set([drset])
    assert {p.name: p.role for p in cs.points} == {"br_e": "vip-segment", "br_lvs": "rs-segment"}
    br_e, br_lvs = _read(drset / "br_e.pcap"), _read(drset / "br_lvs.pcap")
    assert {p.name: p.received for p in cs.points} == {"br_e": len(br_e), "br_lvs": len(br_lvs)}
    assert all(_ip_checksum_ok(p) for p in br_e + br_lvs if IP in p)
    key = lambda p: (p[IP].src, p[TCP].sport, p[TCP].seq, p[TCP].ack, int(p[TCP].flags), p[IP].id)  # noqa: E731
    received = {key(p): p for p in br_e if IP in p and p[IP].dst == LAB.vip}
    forwarded = [p for p in br_lvs if IP in p]
    assert len(forwarded) == len(received)
    server_of_conn: dict[tuple, str] = {}
    for fwd in forwarded:
        orig = received[key(fwd)]
        assert fwd[Ether].src == LAB.director_rs_mac
        assert fwd[IP].ttl == orig[IP].ttl - 1
        assert 2e-6 <= float(fwd.time - orig.time) <= 16e-6
        a, b = bytes(orig[IP]), bytes(fwd[IP])
        assert a[:8] == b[:8] and a[9:10] == b[9:10] and a[12:] == b[12:]  # only TTL and checksum differ
        conn = (fwd[IP].src, fwd[TCP].sport)
        assert server_of_conn.setdefault(conn, fwd[Ether].dst) == fwd[Ether].dst   # affinity
    # round-robin: connections spread evenly over the three real servers' br_lvs MACs
    per_server = defaultdict(int)
    for mac in server_of_conn.values():
        per_server[mac] += 1
    assert set(per_server) == {LAB.rs_rs_mac(k) for k in range(3)}
    assert max(per_server.values()) - min(per_server.values()) <= 1
    # replies leave the chosen server's br_e MAC from the VIP, never the director
    rs_index = {LAB.rs_rs_mac(k): k for k in range(3)}
    for p in br_e:
        if IP in p and p[IP].src == LAB.vip:
            mac = server_of_conn[(p[IP].dst, p[TCP].dport)]
            assert p[Ether].src == LAB.rs_vip_mac(rs_index[mac])
    # every connection is complete at both points (healthy set: nothing cut at the edges)
    conns = _tcp_seq_continuity(br_e)
    assert conns == 2 * len(server_of_conn)
    fins = sum(1 for p in br_e if TCP in p and p[TCP].flags.F)
    assert fins == conns
    # ARP on br_lvs: the director resolves the RIPs, the servers answer with their br_lvs MACs
    arp = [p[ARP] for p in br_lvs if ARP in p]
    assert arp and {a.hwsrc for a in arp if a.op == 2} <= {LAB.rs_rs_mac(k) for k in range(3)}


def test_generated_columns_match_our_decoder(single):
    require(importlib.util.find_spec("dr_inspect.decode") is not None
            and hasattr(importlib.import_module("dr_inspect.decode"), "decode_file"),
            "dr_inspect.decode.decode_file not available yet")
    from dr_inspect.decode import decode_file

    frames = gen.single_point_frames(1500, seed=7)
    for fmt, path in single.items():
        table = decode_file(path).packets
        assert len(table) == 1500
        tcp = ~frames.arp
        assert (table["seq"].to_numpy()[tcp].astype("int64") == frames.seq[tcp]).all()
        assert (table["ack"].to_numpy()[tcp].astype("int64") == frames.ack[tcp]).all()
        assert (table["ttl"].to_numpy()[tcp].astype("int64") == frames.ttl[tcp]).all()
        assert (table["payload_len"].to_numpy()[tcp].astype("int64") == frames.payload[tcp]).all()
        ts = frames.ts_ns if fmt == "pcapng" else frames.ts_ns // 1000 * 1000
        assert (table["ts_ns"].to_numpy() == ts).all()
        assert (table["arp_op"].to_numpy()[frames.arp].astype("int64") == frames.arp_op[frames.arp]).all()


def test_dr_set_passes_the_verifier(drset):
    from dr_inspect import verify

    report = verify([drset])
    failed = [(r.id, r.note, [e.actual for e in r.evidence[:2]]) for r in report.rules
              if r.status == "fail"]
    assert report.verdict == "pass", failed
    assert not failed
    # the set exercises the whole catalogue (ARP, gratuitous ARP, handshakes, replies, balance)
    statuses = {r.id: r.status for r in report.rules}
    assert {f"DR{i:03d}" for i in range(1, 14)} <= set(statuses)
    assert set(statuses.values()) == {"pass"}, statuses
    assert len(report.topology.real_servers) == 3


def test_cli_writes_a_pcapng_set(tmp_path, capsys):
    from dr_inspect.captureset import load_capture_set

    assert gen.main(["drset", str(tmp_path / "ng"), "--frames", "300", "--format", "pcapng",
                     "--real-servers", "2"]) == 0
    cs = load_capture_set([tmp_path / "ng"])
    assert [p.file.name for p in cs.points] == ["br_e.pcapng", "br_lvs.pcapng"]
    for point in cs.points:
        pkts = _read(point.file)
        assert len(pkts) == point.received > 0
        assert all(_ip_checksum_ok(p) for p in pkts if IP in p)
    fwd_macs = {p[Ether].dst for p in _read(tmp_path / "ng" / "br_lvs.pcapng") if IP in p}
    assert fwd_macs == {LAB.rs_rs_mac(0), LAB.rs_rs_mac(1)}
    assert "br_e" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gen.main(["single", str(tmp_path / "x.pcap"), "--frames", "many"])
