"""Differential test: our decoder against tshark, on lab-like scapy captures and on the corpus.

Every frame both decode must have equal values in every column both fill. tshark runs once per
capture (the corpus is batched into one merged pcapng with one interface per source file, so one
tshark start covers ~all corpus frames). Disagreements that are tshark's choice are listed in
KNOWN_CORPUS_DIFFERENCES with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402
from conftest import require_tool  # noqa: E402

from dr_inspect.decode import decode_file, digest  # noqa: E402
from dr_inspect.decode import source  # noqa: E402
from dr_inspect.decode.containers import ContainerParser  # noqa: E402
from dr_inspect.decode.frames import ContainerError  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402

FIELDS = [
    "frame.number", "frame.time_epoch", "frame.interface_id", "frame.cap_len", "frame.len",
    "eth.src", "sll.src.eth", "eth.dst", "vlan.id", "ieee8021ad.id", "eth.type", "vlan.etype",
    "sll.etype", "ip.version", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "ip.id", "ip.ttl", "ipv6.hlim", "ip.proto", "ipv6.nxt", "tcp.srcport", "tcp.dstport",
    "udp.srcport", "udp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "udp.length", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.hw_mac",
    "arp.dst.proto_ipv4", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
    "icmpv6.nd.ns.target_address", "icmpv6.nd.na.target_address", "icmpv6.opt.linkaddr",
    "icmpv6.nd.na.flag", "ip.flags.df", "tcp.options.mss_val", "tcp.payload", "icmp.mtu",
    "icmpv6.mtu", "tcp.seq",
]
IPV6_EXT = {0, 43, 44, 60, 51}


def run_tshark(tshark: str, path: Path) -> list[dict[str, list[str]]]:
    """One dict per frame: field -> all its occurrences, outermost first."""
    argv = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
            "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        argv += ["-e", f]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-500:]
    rows = []
    for line in proc.stdout.splitlines():
        cells = line.split("\t")
        cells += [""] * (len(FIELDS) - len(cells))
        rows.append({f: (c.split(",") if c else []) for f, c in zip(FIELDS, cells)})
    return rows


def _int(v: str) -> int:
    return int(v, 16) if v.startswith("0x") else int(v)


def _first(row: dict[str, list[str]], *names: str) -> str | None:
    for n in names:
        if row.get(n):
            return row[n][0]
    return None


def tshark_values(row: dict[str, list[str]], our_proto: object, our_vlan: bool
                  ) -> dict[str, object]:
    """tshark's value for each of our columns in one frame (a column is absent if tshark has
    none). Transport fields are read from the protocol our decoder found at the outer layer, so
    an inner (tunnelled, ICMP-quoted) header that tshark also shows is not mistaken for it."""
    out: dict[str, object] = {}
    sec, _, frac = row["frame.time_epoch"][0].partition(".")
    out["ts_ns"] = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    out["caplen"] = int(row["frame.cap_len"][0])
    out["wirelen"] = int(row["frame.len"][0])
    mac = _first(row, "eth.src", "sll.src.eth")
    if mac:
        out["src_mac"] = mac
    if row["eth.dst"]:
        out["dst_mac"] = row["eth.dst"][0]
    vlan = _first(row, "ieee8021ad.id", "vlan.id")
    if vlan is not None:
        out["vlan"] = int(vlan)
    # tshark has no field for the type after an 802.1ad tag that is not followed by 802.1Q.
    # (tunnelled frames can carry VLAN tags of their own: only look at tags when we saw one)
    et = (row["vlan.etype"][-1] if row["vlan.etype"] and our_vlan else
          None if row["ieee8021ad.id"] and our_vlan else _first(row, "eth.type", "sll.etype"))
    if et is not None:
        out["ethertype"] = _int(et)
    def put(col: str, name: str, conv: Callable[[str], object] = str, last: bool = False) -> None:
        if row[name]:
            out[col] = conv(row[name][-1 if last else 0])

    version = _first(row, "ip.version")
    if version == "4" and row["ip.src"]:
        out["ip_version"] = 4
        put("src_ip", "ip.src")
        put("dst_ip", "ip.dst")
        put("ip_id", "ip.id", _int)
        put("ttl", "ip.ttl", int)
        put("proto", "ip.proto", int)
        put("ip_df", "ip.flags.df", lambda v: v in ("1", "True"))
    elif version == "6" and row["ipv6.src"]:
        out["ip_version"] = 6
        put("src_ip", "ipv6.src")
        put("dst_ip", "ipv6.dst")
        put("ttl", "ipv6.hlim", int)
        if row["ipv6.nxt"] and int(row["ipv6.nxt"][0]) not in IPV6_EXT:
            out["proto"] = int(row["ipv6.nxt"][0])
    if our_proto == 6:
        put("src_port", "tcp.srcport", int)
        put("dst_port", "tcp.dstport", int)
        put("seq", "tcp.seq_raw", int)
        put("ack", "tcp.ack_raw", int)
        put("tcp_flags", "tcp.flags", _int)
        put("payload_len", "tcp.len", int)
        put("tcp_mss", "tcp.options.mss_val", int)
        put("payload_hash", "tcp.payload", lambda v: digest.reference(bytes.fromhex(v)))
    elif our_proto == 17:
        put("src_port", "udp.srcport", int)
        put("dst_port", "udp.dstport", int)
    put("arp_op", "arp.opcode", int)
    put("arp_sender_mac", "arp.src.hw_mac")
    put("arp_target_mac", "arp.dst.hw_mac")
    put("arp_sender_ip", "arp.src.proto_ipv4")
    put("arp_target_ip", "arp.dst.proto_ipv4")
    if our_proto == 1:
        put("icmp_type", "icmp.type", int)
        put("icmp_code", "icmp.code", int)
        put("icmp_mtu", "icmp.mtu", int)
        _quoted(row, out, "ip.src", "ip.dst", "ip.proto")
    if our_proto == 58:
        put("icmp_type", "icmpv6.type", int)
        put("icmp_code", "icmpv6.code", int)
        put("icmp_mtu", "icmpv6.mtu", int)
        _quoted(row, out, "ipv6.src", "ipv6.dst", "ipv6.nxt")
        target = _first(row, "icmpv6.nd.ns.target_address", "icmpv6.nd.na.target_address")
        if target:
            out["nd_target"] = target
        put("nd_lladdr", "icmpv6.opt.linkaddr")
        put("nd_flags", "icmpv6.nd.na.flag", lambda v: _int(v) >> 24)
    return out


def _quoted(row: dict[str, list[str]], out: dict[str, object], src: str, dst: str,
            proto: str) -> None:
    """The header an ICMP error quotes: tshark's second IP header, and the transport header
    after it (the frame's only TCP/UDP one)."""
    if len(row[src]) < 2:
        return
    out["inner_src_ip"], out["inner_dst_ip"] = row[src][1], row[dst][1]
    if len(row[proto]) >= 2:
        out["inner_proto"] = int(row[proto][1])
    kind = {6: "tcp", 17: "udp"}.get(out.get("inner_proto"))      # type: ignore[arg-type]
    if kind and row[f"{kind}.srcport"]:
        out["inner_src_port"] = int(row[f"{kind}.srcport"][0])
        out["inner_dst_port"] = int(row[f"{kind}.dstport"][0])
    # (in an ICMPv4 error tshark gives the quoted sequence number as tcp.seq only, unrelated
    # to any conversation: the raw value)
    seq = _first(row, "tcp.seq_raw", "tcp.seq")
    if kind == "tcp" and seq is not None:
        out["inner_seq"] = int(seq)


def compare(ours: pd.DataFrame, theirs: list[dict[str, list[str]]]
            ) -> tuple[list[tuple[int, str, object, object]], list[tuple[int, str, object]]]:
    """(value mismatches, fields tshark has and we left empty), per frame and column."""
    assert len(ours) == len(theirs), f"frame count: ours {len(ours)}, tshark {len(theirs)}"
    records = ours.to_dict("records")
    diffs, missing = [], []
    for rec, row in zip(records, theirs):
        proto = rec["proto"] if not pd.isna(rec["proto"]) else None
        for col, want in tshark_values(row, proto, not pd.isna(rec["vlan"])).items():
            got = rec[col]
            if got is None or got is pd.NA or (isinstance(got, float) and np.isnan(got)):
                missing.append((int(rec["frame"]), col, want))
            elif got != want:
                diffs.append((int(rec["frame"]), col, got, want))
    return diffs, missing


# ------------------------------------------------------------------ lab-like captures

def _lab_files(tmp: Path) -> list[Path]:
    eth = cg.lab_ethernet_packets()
    files = [
        cg.write_pcap(tmp / "eth.pcap", eth),
        cg.write_pcap(tmp / "eth-nsec-be.pcap", eth, nano=True, big_endian=True),
        cg.write_pcap(tmp / "sll.pcap", cg.sll_packets(), linktype=113),
        cg.write_pcap(tmp / "raw101.pcap", cg.raw_ip_packets(), linktype=101),
        cg.write_pcap(tmp / "raw228.pcap", cg.raw_ip_packets()[:1], linktype=228),
        cg.write_pcap(tmp / "raw229.pcap", cg.raw_ip_packets()[1:], linktype=229),
        cg.write_pcap(tmp / "eth-gz.pcap", eth, compress=True),
        cg.write_pcap(tmp / "loop.pcap", cg.loopback_packets(), linktype=0),
    ]
    if cg.sll2_packets():
        files.append(cg.write_pcap(tmp / "sll2.pcap", cg.sll2_packets(), linktype=276))
    secs = [
        cg.NgSection([cg.NgInterface(1, "br_e", tsresol=9), cg.NgInterface(113, "any"),
                      cg.NgInterface(101, "tun0", tsresol=3)],
                     [cg.NgPacket(0, bytes(eth[0]), cg.T0 * 10**9 + 5),
                      cg.NgPacket(1, bytes(cg.sll_packets()[0]), cg.T0 * 10**6 + 7),
                      cg.NgPacket(2, cg.raw_ip_packets()[1], cg.T0 * 10**3 + 9),
                      cg.NgPacket(0, bytes(eth[-1]), cg.T0 * 10**9 + 11)]),
        cg.NgSection([cg.NgInterface(1, "br_lvs", tsresol=6)],
                     [cg.NgPacket(0, bytes(eth[3]), cg.T0 * 10**6 + 13)], big_endian=True),
    ]
    files.append(cg.write_pcapng(tmp / "multi.pcapng", secs))
    files.append(cg.write_pcap(tmp / "options.pcap", _option_frames()))
    files.append(cg.write_pcap(tmp / "icmp-errors.pcap", icmp_error_frames()))
    return files


def icmp_error_frames() -> list[bytes]:
    """ICMP and ICMPv6 errors about TCP and UDP packets: fragmentation needed with its MTU
    (the path-MTU black hole of a tunnel), packet too big, unreachable and time exceeded, with
    quotes of 8 bytes past the header (RFC 792) or more, IP options in the quote, and a quote
    of a later fragment (no ports)."""
    from scapy.all import (ICMP, IP, TCP, UDP, Ether, ICMPv6DestUnreach,  # type: ignore
                           ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPOption, IPv6, IPerror,
                           IPerror6, Raw, TCPerror, UDPerror)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    quoted_tcp = bytes(IP(src="192.168.7.2", dst="192.168.7.33", flags="DF")
                       / TCP(sport=40000, dport=8000, seq=123456789, flags="PA") / Raw(b"x" * 40))
    frames = [
        e / IP(src="10.0.0.1", dst="192.168.7.2") / ICMP(type=3, code=4, nexthopmtu=1480)
        / Raw(quoted_tcp[:28]),
        e / IP(src="10.0.0.1", dst="192.168.7.2") / ICMP(type=3, code=4, nexthopmtu=1400)
        / Raw(quoted_tcp),
        e / IP() / ICMP(type=11, code=0) / IPerror(src="10.1.1.1", dst="10.2.2.2")
        / UDPerror(sport=5353, dport=53),
        e / IP() / ICMP(type=3, code=3) / IPerror(options=[IPOption(b"\x94\x04\x00\x00")])
        / TCPerror(sport=1, dport=2, seq=7),
        e / IP() / ICMP(type=3, code=1) / IPerror(frag=20, proto=6) / Raw(b"z" * 8),
        e / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6PacketTooBig(mtu=1280)
        / IPv6(src="fd00::2", dst="fd00::33") / TCP(sport=40001, dport=8000, seq=99) / Raw(b"y" * 30),
        e / IPv6() / ICMPv6DestUnreach(code=4) / IPerror6(src="fd00::5", dst="fd00::6")
        / UDPerror(sport=9, dport=10),
        e / IPv6() / ICMPv6TimeExceeded() / IPerror6(src="fd00::7", dst="fd00::8", nh=59),
    ]
    return [bytes(f) for f in frames]


def _option_frames() -> list[bytes]:
    """TCP options in every place the MSS walk meets them (first, after NOPs and other
    options, absent, a malformed length before it), DF set and clear, IPv6, and payloads."""
    from scapy.all import IP, TCP, Ether, IPv6, Raw  # type: ignore[import-untyped]
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    syn = dict(sport=40000, dport=80, flags="S", seq=1)
    frames = [
        e / IP(flags="DF") / TCP(options=[("MSS", 1460)], **syn),
        e / IP() / TCP(options=[("NOP", None), ("NOP", None), ("SAckOK", b""),
                                ("Timestamp", (1, 2)), ("WScale", 7), ("MSS", 1380)], **syn),
        e / IP(flags="DF") / TCP(options=[("Timestamp", (5, 6))], flags="PA") / Raw(b"q" * 77),
        e / IPv6() / TCP(options=[("WScale", 2), ("MSS", 1220)], **syn),
        e / IP(flags="DF+MF") / TCP(options=[("EOL", None), ("MSS", 999)], **syn),
        e / IP() / TCP(options=[("MSS", 536)], flags="SA") / Raw(b"with data"),
    ]
    out = [bytes(f) for f in frames]
    # an option of length 1 (malformed) before the MSS option: the walk stops there
    tcp = bytearray(bytes(TCP(options=[("NOP", None), ("NOP", None), ("NOP", None),
                                       ("NOP", None), ("MSS", 1400)], **syn)))
    tcp[20:22] = b"\x08\x01"
    out.append(bytes(e / IP(proto=6) / Raw(bytes(tcp))))
    return out


def test_lab_captures_match_tshark(tmp_path: Path) -> None:
    tshark = require_tool("tshark", "tshark")
    for path in _lab_files(tmp_path):
        ours = decode_file(path).packets
        theirs = run_tshark(tshark, path)
        diffs, missing = compare(ours, theirs)
        assert diffs == [], f"{path.name}: {diffs[:10]}"
        # On these captures we must fill every field tshark fills.
        assert missing == [], f"{path.name}: we left empty: {missing[:10]}"
        assert len(ours) > 0


# ------------------------------------------------------------------ corpus, batched

# (corpus file, column) -> why: disagreements that are tshark's choice, not a decoding error of
# ours. Anything else that differs fails the test.
KNOWN_CORPUS_DIFFERENCES: dict[tuple[str, str], str] = {
    ("arista_ether.pcap", "ethertype"):
        "tshark decodes Arista's vendor timestamp header (ethertype 0xd28b) and reports the "
        "ethertype after it; we report the frame's own ethertype",
    ("DTP.pcap", "dst_mac"):
        "Cisco ISL frames: tshark's first eth.dst is the ISL-encapsulated inner frame's; ours is "
        "the outer destination (01:00:0c:00:00:00, the ISL multicast)",
}
for _atm in ("atm-heapoverflow.pcap", "atm-oam-heapoverflow.pcap",
             "atm-oam-loopback-print-overrun.pcap"):
    for _col in ("caplen", "wirelen"):
        KNOWN_CORPUS_DIFFERENCES[(_atm, _col)] = (
            "SunATM (link type 123): Wireshark's reader moves the 4-byte ATM pseudo-header out of "
            "the frame and shortens both lengths; we report the record's lengths as stored")


def _merged_corpus(corpus: Path, out: Path) -> list[tuple[Path, int]]:
    """One pcapng holding every frame of every corpus file we read (link types we do not decode
    too: timestamps and lengths are still compared); one interface per (file, interface).
    Returns (file, frame count) in order."""
    ifaces: list[cg.NgInterface] = []
    packets: list[cg.NgPacket] = []
    taken: list[tuple[Path, int]] = []
    for path in sorted(corpus.iterdir()):
        try:
            loaded = source.load(path)
        except CaptureError:
            continue
        parser = ContainerParser(str(path))
        try:
            idx, _ = parser.parse(loaded.buf, 0, final=True)
        except ContainerError as exc:
            idx = exc.index  # type: ignore[attr-defined]
        if len(idx) == 0 or (idx.linktype < 0).any():
            continue
        base = len(ifaces)
        for itf in parser.interfaces:
            ifaces.append(cg.NgInterface(itf.linktype, f"{path.name}#{itf.id}", tsresol=9))
        for k in range(len(idx)):
            start = int(idx.data_pos[k])
            data = bytes(loaded.buf[start:start + int(idx.caplen[k])])
            packets.append(cg.NgPacket(base + int(idx.interface[k]), data,
                                       int(idx.ts_ns[k]) & (2**64 - 1), int(idx.wirelen[k])))
        taken.append((path, len(idx)))
    cg.write_pcapng(out, [cg.NgSection(ifaces, packets)])
    return taken


@pytest.mark.corpus
def test_corpus_matches_tshark(corpus_dir: Path, tmp_path: Path) -> None:
    tshark = require_tool("tshark", "tshark")
    merged = tmp_path / "corpus.pcapng"
    taken = _merged_corpus(corpus_dir, merged)
    theirs = run_tshark(tshark, merged)
    assert len(theirs) == sum(n for _, n in taken)
    diffs: list[tuple[str, int, str, object, object]] = []
    pos = 0
    for path, n in taken:
        ours = decode_file(path).packets.drop(columns=["interface"])
        d, _ = compare(ours, theirs[pos:pos + n])
        diffs += [(path.name, *x) for x in d if (path.name, x[1]) not in KNOWN_CORPUS_DIFFERENCES]
        pos += n
    by_col = Counter(c for _, _, c, _, _ in diffs)
    assert diffs == [], f"{len(diffs)} disagreements by column {dict(by_col)}; first: {diffs[:15]}"
