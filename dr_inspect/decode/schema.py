"""The packets table: one row per frame, per capture point. Column names are a public contract.

Addresses are pandas Categoricals of their usual text form (few distinct values, so a 1-byte or
2-byte code per row instead of a Python string); numbers are nullable pandas integers, <NA> where
a frame has no such field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column of the packets table, declared once: everything else (the column lists, the
    dtypes, the decoder's numeric fields and their numpy types) is derived from these.

    held: how the decoders hold the value before the table is built: "ints" (a number), "macs"
    (a MAC as uint64), "ip4" (uint32) and/or "ip6" (16 bytes) for an address; () for what the
    frame index gives (file, frame number, time, lengths, interface)."""

    name: str
    dtype: str                      # pandas dtype; "category" = text categories
    held: tuple[str, ...] = ()
    public: bool = True             # in COLUMNS (`dr-inspect decode` prints these) or EXTRA
    doc: str = ""
    # read by a verify stage: verify's combined packets table carries only these (decoded but
    # unread columns would cost memory per frame for nothing)
    analysed: bool = True


_ADDR_MAC, _IP, _IP4 = ("macs",), ("ip4", "ip6"), ("ip4",)

# In this order: the public columns, then the further ones the later stages read.
SCHEMA: tuple[Column, ...] = (
    Column("file", "category"),
    Column("frame", "int64"),
    Column("ts_ns", "int64"),
    Column("src_mac", "category", _ADDR_MAC),
    Column("dst_mac", "category", _ADDR_MAC),
    Column("vlan", "UInt16", ("ints",)),
    Column("ethertype", "UInt16", ("ints",)),
    Column("src_ip", "category", _IP),
    Column("dst_ip", "category", _IP),
    Column("ip_id", "UInt32", ("ints",)),
    Column("ttl", "UInt8", ("ints",)),
    Column("proto", "UInt8", ("ints",)),
    Column("src_port", "UInt16", ("ints",)),
    Column("dst_port", "UInt16", ("ints",)),
    Column("seq", "UInt32", ("ints",)),
    Column("ack", "UInt32", ("ints",)),
    Column("tcp_flags", "UInt16", ("ints",)),
    Column("payload_len", "Int32", ("ints",)),
    Column("arp_op", "UInt16", ("ints",)),
    Column("arp_sender_mac", "category", _ADDR_MAC),
    Column("arp_sender_ip", "category", _IP4),
    Column("arp_target_mac", "category", _ADDR_MAC),
    Column("arp_target_ip", "category", _IP4),
    Column("interface", "int32", public=False, doc="pcapng interface id (0 for classic pcap)"),
    Column("linktype", "int32", public=False, doc="DLT/LINKTYPE of the frame's interface"),
    Column("caplen", "int32", public=False, doc="captured bytes of the frame"),
    Column("wirelen", "int32", public=False, doc="original length on the wire"),
    Column("ip_version", "UInt8", ("ints",), public=False, doc="4, 6 or <NA>"),
    Column("icmp_type", "UInt8", ("ints",), public=False, doc="ICMP / ICMPv6 type"),
    Column("icmp_code", "UInt8", ("ints",), public=False),
    Column("nd_target", "category", ("ip6",), public=False,
           doc="IPv6 neighbour solicitation/advertisement target address"),
    Column("nd_lladdr", "category", _ADDR_MAC, public=False,
           doc="its source/target link-layer address option (MAC)"),
    Column("nd_flags", "UInt8", ("ints",), public=False, doc="NA flags byte (R=0x80, S=0x40, O=0x20)"),
    Column("ip_df", "boolean", ("ints",), public=False, analysed=False,
           doc="IPv4 don't-fragment flag"),
    Column("tcp_mss", "UInt16", ("ints",), public=False, analysed=False,
           doc="TCP maximum segment size option (the first one, within the captured header)"),
    Column("icmp_mtu", "UInt32", ("ints",), public=False, analysed=False,
           doc="next-hop MTU of an ICMP fragmentation-needed (type 3 code 4) or ICMPv6 "
               "packet-too-big error"),
    Column("inner_src_ip", "category", _IP, public=False, analysed=False,
           doc="source address of the packet an ICMP/ICMPv6 error quotes"),
    Column("inner_dst_ip", "category", _IP, public=False, analysed=False,
           doc="its destination address"),
    Column("inner_proto", "UInt8", ("ints",), public=False, analysed=False,
           doc="its protocol (IPv6: the first next header)"),
    Column("inner_src_port", "UInt16", ("ints",), public=False, analysed=False,
           doc="its TCP/UDP source port"),
    Column("inner_dst_port", "UInt16", ("ints",), public=False, analysed=False,
           doc="its destination port"),
    Column("inner_seq", "UInt32", ("ints",), public=False, analysed=False,
           doc="its TCP sequence number"),
    Column("payload_hash", "UInt64", ("ints",), public=False,
           doc="digest of the captured TCP payload bytes (decode/digest.py: concatenable)"),
    Column("payload_whole", "boolean", ("ints",), public=False,
           doc="the whole TCP payload is within the captured bytes (payload_hash covers it)"),
)

# The public columns, in this order (`dr-inspect decode` prints exactly these).
COLUMNS: list[str] = [c.name for c in SCHEMA if c.public]
# Further columns the later stages read; `decode --all-columns` shows them.
EXTRA_COLUMNS: list[str] = [c.name for c in SCHEMA if not c.public]
# The columns verify's stages read, in schema order (its combined packets table holds these).
ANALYSED_COLUMNS: list[str] = [c.name for c in SCHEMA if c.analysed]
# Column dtypes (pandas). "category" columns hold text categories.
DTYPES: dict[str, str] = {c.name: c.dtype for c in SCHEMA}

# numpy type of a decoded number (by its column's pandas dtype) and of a held address
NUMPY_DTYPES: dict[str, str] = {"UInt8": "u1", "UInt16": "u2", "UInt32": "u4", "Int32": "i4",
                                "UInt64": "u8", "boolean": "b1", "int32": "i4", "int64": "i8",
                                "macs": "u8", "ip4": "u4"}


def _numpy_dtype(column: Column, group: str) -> str:
    if group == "ints":
        return NUMPY_DTYPES[column.dtype]
    return "16u1" if group == "ip6" else NUMPY_DTYPES[group]


# (group, name) -> numpy dtype of every field the decoders produce (IPv6 addresses, 16 bytes
# each, are kept for the rows that have one only: ("ip6", name) -> "16u1").
DECODED_FIELDS: dict[tuple[str, str], str] = {(group, c.name): _numpy_dtype(c, group)
                                              for c in SCHEMA for group in c.held}


# TCP flag bits, as in the flags byte.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
