"""Craft small captures for tests: scapy builds the packets, these helpers write the containers.

Other tests may import this module (`from tests.capturegen import ...` or via sys.path).
Classic pcap goes through scapy's writer; pcapng through a small writer here because tests need
control over several interfaces, link types, if_tsresol and the section byte order.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

from scapy.all import (  # type: ignore[import-untyped]
    ARP,
    ICMP,
    IP,
    TCP,
    UDP,
    CookedLinux,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPOption,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Packet,
    Raw,
    wrpcap,
)

try:
    from scapy.all import CookedLinuxV2  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older scapy
    CookedLinuxV2 = None

CLIENT_MAC = "52:54:00:00:00:02"
DIRECTOR_MAC = "52:54:00:00:00:0a"
RS_MAC = "52:54:00:00:01:01"
CLIENT_IP = "192.168.7.2"
VIP = "192.168.7.33"
RIP = "192.168.8.11"
VIP6 = "2001:db8:7::33"
CLIENT6 = "2001:db8:7::2"
T0 = 1_764_489_600  # a whole second, so timestamps are exact in every resolution


def lab_ethernet_packets() -> list[Packet]:
    """Lab-like Ethernet frames: TCP to a VIP (handshake, data), VLAN, QinQ, IPv4 options, UDP,
    ICMP, ARP, IPv6 with extension headers, ND solicitation/advertisement."""
    tcp = Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IP(src=CLIENT_IP, dst=VIP, id=4242, ttl=64)
    pkts: list[Packet] = [
        tcp / TCP(sport=51000, dport=8000, seq=1000, flags="S"),
        Ether(src=RS_MAC, dst=CLIENT_MAC) / IP(src=VIP, dst=CLIENT_IP, id=7, ttl=64)
        / TCP(sport=8000, dport=51000, seq=4_000_000_000, ack=1001, flags="SA"),
        tcp / TCP(sport=51000, dport=8000, seq=1001, ack=4_000_000_001, flags="PA")
        / Raw(b"GET / HTTP/1.0\r\n\r\n"),
        Ether(src=DIRECTOR_MAC, dst=RS_MAC) / IP(src=CLIENT_IP, dst=VIP, id=4242, ttl=63)
        / TCP(sport=51000, dport=8000, seq=1001, ack=4_000_000_001, flags="PA")
        / Raw(b"GET / HTTP/1.0\r\n\r\n"),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / Dot1Q(vlan=100)
        / IP(src=CLIENT_IP, dst=VIP, id=9) / TCP(sport=51001, dport=8000, flags="S", seq=5),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / Dot1AD(vlan=300) / Dot1Q(vlan=20)
        / IP(src=CLIENT_IP, dst=VIP, id=10) / UDP(sport=5353, dport=53) / Raw(b"q" * 12),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC)
        / IP(src=CLIENT_IP, dst=VIP, id=11, options=[IPOption(b"\x94\x04\x00\x00")])
        / TCP(sport=51002, dport=8000, flags="A", seq=77, ack=88) / Raw(b"z" * 5),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IP(src=CLIENT_IP, dst=VIP, id=12)
        / ICMP(type=8, code=0) / Raw(b"ping" * 4),
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP, hwdst="00:00:00:00:00:00", pdst=VIP),
        Ether(src=DIRECTOR_MAC, dst=CLIENT_MAC)
        / ARP(op=2, hwsrc=DIRECTOR_MAC, psrc=VIP, hwdst=CLIENT_MAC, pdst=CLIENT_IP),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IPv6(src=CLIENT6, dst=VIP6, hlim=61)
        / TCP(sport=52000, dport=8000, seq=3, flags="S"),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IPv6(src=CLIENT6, dst=VIP6)
        / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=[VIP6])
        / TCP(sport=52001, dport=8000, seq=9, ack=10, flags="PA") / Raw(b"abcdef"),
        Ether(src=CLIENT_MAC, dst=DIRECTOR_MAC) / IPv6(src=CLIENT6, dst=VIP6)
        / IPv6ExtHdrFragment(offset=0, m=0, id=5) / UDP(sport=1, dport=2) / Raw(b"u" * 3),
        Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:33")
        / IPv6(src=CLIENT6, dst="ff02::1:ff00:33") / ICMPv6ND_NS(tgt=VIP6)
        / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC),
        Ether(src=DIRECTOR_MAC, dst=CLIENT_MAC) / IPv6(src=VIP6, dst=CLIENT6)
        / ICMPv6ND_NA(tgt=VIP6, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=DIRECTOR_MAC),
    ]
    return pkts


def write_pcap(path: Path, packets: list[Packet] | list[bytes], *, linktype: int | None = None,
               nano: bool = False, big_endian: bool = False, snaplen: int = 262144,
               compress: bool = False, t0: int = T0, step_ns: int = 1_000_123) -> Path:
    """Classic pcap via scapy. Frame k gets timestamp t0 + k * step_ns (exact in nsec files)."""
    pkts = []
    for k, p in enumerate(packets):
        pkt = p if isinstance(p, Packet) else Raw(p)
        ns = t0 * 1_000_000_000 + k * step_ns
        if not nano:
            ns -= ns % 1000
        from decimal import Decimal
        pkt.time = Decimal(ns) / Decimal(1_000_000_000)
        pkts.append(pkt)
    kwargs: dict = {"nano": nano, "endianness": ">" if big_endian else "<", "snaplen": snaplen}
    if linktype is not None:
        kwargs["linktype"] = linktype
    target = path.with_suffix(path.suffix + ".tmp") if compress else path
    wrpcap(str(target), pkts, **kwargs)
    if compress:
        path.write_bytes(gzip.compress(target.read_bytes()))
        target.unlink()
    return path


def frame_ts_ns(k: int, *, nano: bool = False, t0: int = T0, step_ns: int = 1_000_123) -> int:
    ns = t0 * 1_000_000_000 + k * step_ns
    return ns if nano else ns - ns % 1000


@dataclass
class NgInterface:
    linktype: int
    name: str = ""
    tsresol: int | None = None     # if_tsresol byte; None = default (microseconds)
    snaplen: int = 262144
    tsoffset: int = 0


@dataclass
class NgPacket:
    interface: int
    data: bytes
    ticks: int                    # timestamp in the interface's units
    orig_len: int | None = None


@dataclass
class NgSection:
    interfaces: list[NgInterface]
    packets: list[NgPacket] = field(default_factory=list)
    big_endian: bool = False
    extra_blocks: list[tuple[int, bytes]] = field(default_factory=list)  # unknown blocks to skip


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    btl = 12 + len(body)
    return struct.pack(e + "II", btype, btl) + body + struct.pack(e + "I", btl)


def _opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def pcapng_bytes(sections: list[NgSection]) -> bytes:
    out = b""
    for sec in sections:
        e = ">" if sec.big_endian else "<"
        out += _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        for btype, body in sec.extra_blocks:
            out += _block(e, btype, body)
        for itf in sec.interfaces:
            opts = b""
            if itf.name:
                opts += _opt(e, 2, itf.name.encode())
            if itf.tsresol is not None:
                opts += _opt(e, 9, bytes([itf.tsresol]))
            if itf.tsoffset:
                opts += _opt(e, 14, struct.pack(e + "q", itf.tsoffset))
            if opts:
                opts += struct.pack(e + "HH", 0, 0)
            out += _block(e, 1, struct.pack(e + "HHI", itf.linktype, 0, itf.snaplen) + opts)
        for p in sec.packets:
            orig = p.orig_len if p.orig_len is not None else len(p.data)
            body = struct.pack(e + "IIIII", p.interface, p.ticks >> 32, p.ticks & 0xFFFFFFFF,
                               len(p.data), orig) + p.data
            out += _block(e, 6, body)
    return out


def write_pcapng(path: Path, sections: list[NgSection], *, compress: bool = False) -> Path:
    data = pcapng_bytes(sections)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def sll_packets() -> list[Packet]:
    """Linux cooked (v1) frames as `tcpdump -i any` writes them."""
    return [
        CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6,
                    src=bytes.fromhex("525400000002") + b"\0\0")
        / IP(src=CLIENT_IP, dst=VIP, id=1) / TCP(sport=40000, dport=8000, seq=1, flags="S"),
        CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                    src=bytes.fromhex("52540000000a") + b"\0\0")
        / ARP(op=2, hwsrc=DIRECTOR_MAC, psrc=VIP, hwdst=CLIENT_MAC, pdst=CLIENT_IP),
    ]


def sll2_packets() -> list[Packet]:
    if CookedLinuxV2 is None:  # pragma: no cover
        return []
    return [
        CookedLinuxV2(proto=0x0800, ifindex=3, lladdrtype=1, pkttype=0, lladdrlen=6,
                      src=bytes.fromhex("525400000101") + b"\0\0")
        / IP(src=VIP, dst=CLIENT_IP, id=2) / TCP(sport=8000, dport=40000, seq=2, ack=2, flags="SA"),
        CookedLinuxV2(proto=0x86DD, ifindex=3, lladdrtype=1, pkttype=4, lladdrlen=6,
                      src=bytes.fromhex("525400000002") + b"\0\0")
        / IPv6(src=CLIENT6, dst=VIP6) / UDP(sport=9, dport=10) / Raw(b"x"),
    ]


def raw_ip_packets() -> list[bytes]:
    return [bytes(IP(src=CLIENT_IP, dst=VIP, id=3) / TCP(sport=1, dport=2, seq=3, flags="S")),
            bytes(IPv6(src=CLIENT6, dst=VIP6) / TCP(sport=3, dport=4, seq=5, flags="R"))]


def loopback_packets() -> list[Packet]:
    """BSD loopback (link type 0 / 108) frames: a 4-byte address family before the IP packet."""
    from scapy.all import Loopback  # type: ignore[import-untyped]
    return [Loopback(type=2) / IP(src="127.0.0.1", dst="127.0.0.1", id=5)
            / TCP(sport=5, dport=6, seq=7, flags="S"),
            Loopback(type=24) / IPv6(src="::1", dst="::1") / UDP(sport=8, dport=9) / Raw(b"x")]


def synthetic_pcap_bytes(sizes: list[int], *, little: bool = True, nano: bool = False) -> bytes:
    """A classic pcap of frames of the given captured sizes (Ethernet/IPv4/UDP headers, zero
    payload), written with struct: fast enough for the many-frame walk tests."""
    e = "<" if little else ">"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)]
    for k, size in enumerate(sizes):
        out.append(struct.pack(e + "IIII", T0 + k // 1000, (k % 1000) * 1000, size, size))
        out.append(_udp_frame(k, size))
    return b"".join(out)


def _udp_frame(k: int, size: int) -> bytes:
    # Ethernet + IPv4 + UDP headers by struct (ids/ports vary with k); padded/cut to size.
    eth = bytes.fromhex("52540000000a525400000002") + b"\x08\x00"
    total = max(28, size - 14)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, k % 65536, 0, 64, 17, 0,
                     bytes([192, 168, 7, 2]), bytes([192, 168, 7, 33]))
    udp = struct.pack(">HHHH", 1000, k % 65536, total - 20, 0)
    frame = eth + ip + udp
    return (frame + b"\x00" * max(0, size - len(frame)))[:size]
