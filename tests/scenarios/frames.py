"""Ethernet frames for the scenario generator, built with struct (scapy builds ~10 k packets/s;
a scenario has a few thousand frames and a run draws hundreds of scenarios).

Only what the decoder and the DR rules read is filled in properly: MACs, IPv4 (header checksum
correct, DF set) and IPv6 headers, TCP ports/seq/ack/flags/payload, UDP, ARP, ICMPv6 neighbour
solicitation/advertisement (checksum correct), ICMP time exceeded. TCP checksums are left zero
as on veth captures with checksum offload (never a DR violation, DESIGN.md). Payload bytes
depend only on the sequence offset within the connection's byte stream, so a GRO-coalesced
segment holds exactly the bytes of the segments it replaces.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ETH_IP4, ETH_IP6, ETH_ARP = 0x0800, 0x86DD, 0x0806
BROADCAST = "ff:ff:ff:ff:ff:ff"
SNAPLEN = 262144

_FILLER = (b"GET /object HTTP/1.1\r\nHost: vip\r\n\r\n"
           + b"lvs-dr scenario payload 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQ\n"
           * 256)
_PERIOD = 16384
_STREAM = (_FILLER * (2 * _PERIOD // len(_FILLER) + 2))[:2 * _PERIOD]


def payload_bytes(offset: int, length: int) -> bytes:
    """The bytes at stream offset `offset` (0 = first byte after the SYN) of any connection."""
    if length > _PERIOD:
        raise ValueError(f"payload of {length} bytes is longer than the filler period")
    start = offset % _PERIOD
    return _STREAM[start:start + length]


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def checksum(data: bytes) -> int:
    return ~_fold(_sum16(data)) & 0xFFFF


def ethernet(dst: str, src: str, ethertype: int, body: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + body


def ip_packet(src: str, dst: str, proto: int, ttl: int, ip_id: int, body: bytes) -> tuple[int, bytes]:
    """(ethertype, IPv4 or IPv6 packet) by the family of src."""
    if ":" in src:
        head = struct.pack("!IHBB", 0x6000_0000, len(body), proto, ttl) + ip_bytes(src) + ip_bytes(dst)
        return ETH_IP6, head + body
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ip_id & 0xFFFF, 0x4000, ttl, proto,
                       0, ip_bytes(src), ip_bytes(dst))
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return ETH_IP4, head + body


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    head = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFF_FFFF, ack & 0xFFFF_FFFF, 5 << 4,
                       flags, 64240, 0, 0)
    return head + payload


def tcp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int, seq: int,
              ack: int, flags: int, payload: bytes, ttl: int, ip_id: int) -> bytes:
    ethertype, packet = ip_packet(src, dst, 6, ttl, ip_id,
                                  tcp_segment(sport, dport, seq, ack, flags, payload))
    return ethernet(dst_mac, src_mac, ethertype, packet)


def udp_frame(src_mac: str, dst_mac: str, src: str, dst: str, sport: int, dport: int,
              payload: bytes, ttl: int = 64, ip_id: int = 0) -> bytes:
    body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ethertype, packet = ip_packet(src, dst, 17, ttl, ip_id, body)
    return ethernet(dst_mac, src_mac, ethertype, packet)


def arp_frame(op: int, src_mac: str, dst_mac: str, sender_ip: str, target_mac: str,
              target_ip: str) -> bytes:
    body = (struct.pack("!HHBBH", 1, ETH_IP4, 6, 4, op) + mac_bytes(src_mac) + ip_bytes(sender_ip)
            + mac_bytes(target_mac) + ip_bytes(target_ip))
    return ethernet(dst_mac, src_mac, ETH_ARP, body)


def _icmp6(src_mac: str, dst_mac: str, src: str, dst: str, body: bytes) -> bytes:
    pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!IxxxB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    ethertype, packet = ip_packet(src, dst, 58, 255, 0, body)
    return ethernet(dst_mac, src_mac, ethertype, packet)


def solicited_node(ip: str) -> tuple[str, str]:
    """(multicast address, its MAC) a neighbour solicitation for ip goes to."""
    low = ip_bytes(ip)[-3:]
    group = ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + low)
    return str(group), "33:33:ff:" + ":".join(f"{b:02x}" for b in low)


def neighbour_solicit(src_mac: str, src: str, target: str) -> bytes:
    group, group_mac = solicited_node(target)
    body = (struct.pack("!BBHI", 135, 0, 0, 0) + ip_bytes(target)
            + struct.pack("!BB", 1, 1) + mac_bytes(src_mac))
    return _icmp6(src_mac, group_mac, src, group, body)


def neighbour_advert(src_mac: str, dst_mac: str, src: str, dst: str, target: str,
                     solicited: bool = True) -> bytes:
    flags = 0x2000_0000 | (0x4000_0000 if solicited else 0)     # O, S
    body = (struct.pack("!BBHI", 136, 0, 0, flags) + ip_bytes(target)
            + struct.pack("!BB", 2, 1) + mac_bytes(src_mac))
    return _icmp6(src_mac, dst_mac, src, dst, body)


def time_exceeded(src_mac: str, dst_mac: str, src: str, dst: str, original: bytes) -> bytes:
    """ICMP(v6) time exceeded carrying the start of `original` (an IP packet)."""
    if ":" in src:
        body = struct.pack("!BBHI", 3, 0, 0, 0) + original[:1232]
        return _icmp6(src_mac, dst_mac, src, dst, body)
    body = struct.pack("!BBHI", 11, 0, 0, 0) + original[:28]
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    ethertype, packet = ip_packet(src, dst, 1, 64, 0, body)
    return ethernet(dst_mac, src_mac, ethertype, packet)


def write_pcap(path: Path, records: list[tuple[int, bytes]]) -> None:
    """Classic pcap, nanosecond timestamps, Ethernet; records (ts_ns, frame) in time order."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, SNAPLEN, 1)]
    for ts, frame in records:
        sec, nsec = divmod(ts, 1_000_000_000)
        out.append(struct.pack("<IIII", sec, nsec, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
