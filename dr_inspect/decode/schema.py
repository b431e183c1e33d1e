"""The packets table: one row per frame, per capture point. Column names are a public contract.

Addresses are pandas Categoricals of their usual text form (few distinct values, so a 1-byte or
2-byte code per row instead of a Python string); numbers are nullable pandas integers, <NA> where
a frame has no such field.
"""

from __future__ import annotations

# The public columns, in this order (`dr-inspect decode` prints exactly these).
COLUMNS: list[str] = [
    "file", "frame", "ts_ns", "src_mac", "dst_mac", "vlan", "ethertype", "src_ip", "dst_ip",
    "ip_id", "ttl", "proto", "src_port", "dst_port", "seq", "ack", "tcp_flags", "payload_len",
    "arp_op", "arp_sender_mac", "arp_sender_ip", "arp_target_mac", "arp_target_ip",
]

# Further columns the later stages read; `decode --all-columns` shows them.
EXTRA_COLUMNS: list[str] = [
    "interface",    # pcapng interface id (0 for classic pcap)
    "linktype",     # DLT/LINKTYPE of the frame's interface
    "caplen",       # captured bytes of the frame
    "wirelen",      # original length on the wire
    "ip_version",   # 4, 6 or <NA>
    "icmp_type",    # ICMP / ICMPv6 type
    "icmp_code",
    "nd_target",    # IPv6 neighbour solicitation/advertisement target address
    "nd_lladdr",    # its source/target link-layer address option (MAC)
    "nd_flags",     # NA flags byte (R=0x80, S=0x40, O=0x20)
]

# Column dtypes (pandas). "category" columns hold text categories.
DTYPES: dict[str, str] = {
    "file": "category",
    "frame": "int64",
    "ts_ns": "int64",
    "src_mac": "category",
    "dst_mac": "category",
    "vlan": "UInt16",
    "ethertype": "UInt16",
    "src_ip": "category",
    "dst_ip": "category",
    "ip_id": "UInt32",
    "ttl": "UInt8",
    "proto": "UInt8",
    "src_port": "UInt16",
    "dst_port": "UInt16",
    "seq": "UInt32",
    "ack": "UInt32",
    "tcp_flags": "UInt16",
    "payload_len": "Int32",
    "arp_op": "UInt16",
    "arp_sender_mac": "category",
    "arp_sender_ip": "category",
    "arp_target_mac": "category",
    "arp_target_ip": "category",
    "interface": "int32",
    "linktype": "int32",
    "caplen": "int32",
    "wirelen": "int32",
    "ip_version": "UInt8",
    "icmp_type": "UInt8",
    "icmp_code": "UInt8",
    "nd_target": "category",
    "nd_lladdr": "category",
    "nd_flags": "UInt8",
}

# TCP flag bits, as in the flags byte.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
