"""Community ID v1: the flow hash Zeek, Suricata, Arkime and Wireshark share, so a connection in
a dr-inspect report can be found in their logs (https://github.com/corelight/community-id-spec).

hash = SHA-1(seed (2 bytes) + lower address + higher address + protocol + 0 + lower port +
higher port), base64, prefixed with the version "1:". The endpoint with the lower address (and at
equal addresses the lower port) goes first, so both directions of a connection hash alike.
Implemented here for the port-based protocols (TCP, UDP, SCTP), which is what connections are.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import struct

PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
# "tcp 192.168.7.2:51000 -> 192.168.7.33:8000", IPv6 as [addr]:port
_FIVE_TUPLE = re.compile(r"(?P<proto>\w+) \[?(?P<src>[0-9a-fA-F.:]+?)\]?:(?P<sport>\d+) -> "
                         r"\[?(?P<dst>[0-9a-fA-F.:]+?)\]?:(?P<dport>\d+)")


def community_id(proto: int | str, src_ip: str, src_port: int, dst_ip: str, dst_port: int,
                 seed: int = 0) -> str:
    """The v1 Community ID of one connection (either direction gives the same value)."""
    number = PROTOCOLS[proto] if isinstance(proto, str) else int(proto)
    src = ipaddress.ip_address(src_ip).packed
    dst = ipaddress.ip_address(dst_ip).packed
    if (src, src_port) > (dst, dst_port):
        src, dst, src_port, dst_port = dst, src, dst_port, src_port
    data = (struct.pack("!H", seed) + src + dst + struct.pack("!BBHH", number, 0, src_port,
                                                              dst_port))
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def community_id_of(five_tuple: str, seed: int = 0) -> str | None:
    """The Community ID of a report's five-tuple text ("tcp A:p -> B:q"); None for what has no
    ports (ARP, ICMP) or does not parse."""
    found = _FIVE_TUPLE.fullmatch(five_tuple.strip())
    if found is None or found["proto"].lower() not in PROTOCOLS:
        return None
    try:
        return community_id(found["proto"].lower(), found["src"], int(found["sport"]),
                            found["dst"], int(found["dport"]), seed)
    except ValueError:
        return None
