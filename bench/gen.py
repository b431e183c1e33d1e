"""Fast synthetic captures of LVS-DR web traffic, for benchmarks (library + `python -m bench.gen`).

Frames are built column-wise with numpy byte templating (a header matrix per chunk of frames,
scattered into one buffer per chunk), never one scapy object per packet: scapy builds ~10 k
packets/s, this writes ~1 M frames in a few seconds.

Traffic model (the seed lab's addresses): clients 10.1.x.y behind a router (192.168.7.1) on the
VIP segment talk HTTP-like to the VIP 192.168.7.33:8000. Every connection has a real handshake
(SYN / SYN-ACK with MSS, SACK-permitted, timestamps and window-scale options), a request, a
response of 1..17 MSS-sized segments acknowledged every second segment, and a FIN exchange; all
non-SYN segments carry the timestamps option like Linux. About 1 % of frames are ARP (the
router resolving the VIP and the director answering; real servers resolving the router; a few gratuitous ARPs for the VIP from the director, as
keepalived sends; on the real-server segment the director resolving the RIPs).

* A single-point capture is what tcpdump sees on the VIP segment (br_e).
* A two-point DR capture set is br_e plus br_lvs, where br_lvs holds the director's forwarded copy
  of every client->VIP frame exactly as IPVS DR makes it: dst MAC = the chosen real server's
  br_lvs MAC, src MAC = the director's br_lvs MAC, TTL - 1, IPv4 header checksum recomputed,
  everything else identical, 2-15 us later. Real servers are chosen round-robin per connection;
  replies leave the real server from its br_e MAC with the VIP as source, straight to the router.
  This set is a healthy DR capture: the verifier must pass it.

IPv4 header checksums are correct. TCP checksums are left zero: captures on veth/bridges with
checksum offload show the same, and a TCP checksum is never a DR violation (no rule reads it).
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
MSS = 1448                      # 1500 MTU - 20 IP - 20 TCP - 12 timestamps option
SNAPLEN = 262144                # tcpdump's default
OPT_NONE, OPT_TS, OPT_SYN = 0, 1, 2
TCP_HEADER_LEN = np.array([20, 32, 40], dtype=np.int32)   # indexed by OPT_*
MAX_HEADER = 14 + 20 + 40       # Ethernet + IPv4 + TCP with SYN options; ARP is 14 + 28
ARP_FRACTION = 0.01
BROADCAST = 0xFFFF_FFFF_FFFF

# Response sizes in segments (the last one partial), weighted towards small web objects.
RESPONSE_SEGMENTS = np.array([1, 2, 3, 5, 9, 17])
RESPONSE_WEIGHTS = np.array([0.35, 0.20, 0.15, 0.12, 0.10, 0.08])

# Payload filler: HTTP-looking bytes (only headers are ever decoded; this keeps hexdumps sane).
_FILLER = np.frombuffer(
    b"HTTP/1.1 200 OK\r\nServer: rs\r\nContent-Type: text/plain\r\nContent-Length: 4096\r\n\r\n"
    + b"lvs-dr synthetic payload 0123456789 abcdefghijklmnopqrstuvwxyz\n" * 64, dtype=np.uint8)
if len(_FILLER) < MSS:  # a full segment's payload is a prefix of the filler
    raise RuntimeError("payload filler shorter than one MSS")


def ip4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def mac48(text: str) -> int:
    return int(text.replace(":", ""), 16)


def mac_text(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class SyntheticLab:
    """Addresses of the synthetic setup (the seed's two-bridge lab, with more clients and servers)."""

    vip: str = "192.168.7.33"
    port: int = 8000
    director_vip_mac: str = "02:d1:00:07:00:21"     # director on br_e (owns the VIP)
    director_rs_mac: str = "02:d1:00:88:00:0a"      # director on br_lvs
    dip: str = "192.168.88.10"
    router_ip: str = "192.168.7.1"
    router_mac: str = "02:e0:00:07:00:01"
    real_servers: int = 3
    clients: int = 1000
    client_net: str = "10.1.0.0"

    def __post_init__(self) -> None:
        if not 1 <= self.real_servers <= 150:
            raise ValueError("real_servers must be 1..150")
        if not 1 <= self.clients <= 65000:
            raise ValueError("clients must be 1..65000")

    def rs_vip_mac(self, k: int) -> str:
        return f"02:a5:00:07:00:{k + 1:02x}"

    def rs_rs_mac(self, k: int) -> str:
        return f"02:a5:00:88:00:{k + 1:02x}"

    def rs_vip_ip(self, k: int) -> str:          # the real server's own address on br_e
        return str(ipaddress.IPv4Address("192.168.7.99") + k)

    def rip(self, k: int) -> str:                # the real server's address on br_lvs
        return str(ipaddress.IPv4Address("192.168.88.20") + k)

    def client_ip(self, c: np.ndarray) -> np.ndarray:
        return (ip4(self.client_net) + 1 + c).astype(np.uint32)


# --------------------------------------------------------------------------------------------
# Frames: a columnar table of frames to write (one numpy array per field).

_FIELDS: dict[str, type] = {
    "ts_ns": np.int64, "arp": np.bool_, "src_mac": np.uint64, "dst_mac": np.uint64,
    "src_ip": np.uint32, "dst_ip": np.uint32,      # ARP: sender / target protocol address
    "ip_id": np.uint16, "ttl": np.uint8, "sport": np.uint16, "dport": np.uint16,
    "seq": np.uint32, "ack": np.uint32, "flags": np.uint8, "payload": np.int32, "opt": np.uint8,
    "tsval": np.uint32, "tsecr": np.uint32, "window": np.uint16,
    "arp_op": np.uint8, "arp_tha": np.uint64,
    "conn": np.int64,                              # connection index, -1 for ARP (not written)
    "c2s": np.bool_,                               # client -> VIP direction (not written)
}


@dataclass
class Frames:
    """Frames to write, column-wise: one numpy array per field of _FIELDS (cast on creation)."""

    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(v) for v in self.cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal length: {lengths}")
        missing = set(_FIELDS) - set(self.cols)
        if missing:
            raise ValueError(f"missing columns: {sorted(missing)}")
        for name, dtype in _FIELDS.items():
            self.cols[name] = np.asarray(self.cols[name], dtype=dtype)

    def __len__(self) -> int:
        return len(self.cols["ts_ns"])

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None

    def take(self, index: np.ndarray | slice) -> Frames:
        return Frames({k: v[index] for k, v in self.cols.items()})

    def with_columns(self, **changes: np.ndarray) -> Frames:
        cols = dict(self.cols)
        for k, v in changes.items():
            cols[k] = np.broadcast_to(np.asarray(v), (len(self),)).astype(_FIELDS[k])
        return Frames(cols)

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        return Frames({k: np.concatenate([p.cols[k] for p in parts]) for k in _FIELDS})

    def sorted_by_time(self) -> Frames:
        return self.take(np.argsort(self.ts_ns, kind="stable"))

    def frame_len(self) -> np.ndarray:
        tcp = 14 + 20 + TCP_HEADER_LEN[self.opt] + self.payload
        return np.where(self.arp, 14 + 28, tcp).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Connection templates: one per response size, expanded over all connections of that size.

_PAY_NONE, _PAY_REQUEST, _PAY_FULL, _PAY_LAST = 0, 1, 2, 3


@dataclass(frozen=True)
class _Template:
    c2s: np.ndarray        # bool per step
    flags: np.ndarray
    opt: np.ndarray
    payload_kind: np.ndarray
    dt_lo_us: np.ndarray   # gap to the previous step, uniform in [lo, hi] microseconds
    dt_hi_us: np.ndarray


def _template(segments: int) -> _Template:
    steps: list[tuple[bool, int, int, int]] = [
        (True, SYN, OPT_SYN, _PAY_NONE),
        (False, SYN | ACK, OPT_SYN, _PAY_NONE),
        (True, ACK, OPT_TS, _PAY_NONE),
        (True, PSH | ACK, OPT_TS, _PAY_REQUEST),
    ]
    for j in range(segments):
        last = j == segments - 1
        steps.append((False, (PSH | ACK) if last else ACK, OPT_TS, _PAY_LAST if last else _PAY_FULL))
        if j % 2 == 1 or last:          # delayed ACK: every second segment, and the last
            steps.append((True, ACK, OPT_TS, _PAY_NONE))
    steps += [(True, FIN | ACK, OPT_TS, _PAY_NONE), (False, FIN | ACK, OPT_TS, _PAY_NONE),
              (True, ACK, OPT_TS, _PAY_NONE)]
    lo, hi = [0.0], [0.0]
    for prev, cur in zip(steps, steps[1:]):
        if prev[0] and not cur[0]:      # server answers the client: after the director forwarded
            gap = (40.0, 1500.0) if prev[3] == _PAY_REQUEST else (30.0, 120.0)
        elif not prev[0] and cur[0]:    # client reacts to the server
            gap = (15.0, 80.0)
        elif not cur[0]:                # server burst
            gap = (2.0, 12.0)
        else:                           # client sends again
            gap = (10.0, 400.0) if cur[1] & FIN else (5.0, 60.0)
        lo.append(gap[0])
        hi.append(gap[1])
    c2s, flags, opt, kind = (np.array(col) for col in zip(*steps))
    return _Template(c2s.astype(bool), flags.astype(np.uint8), opt.astype(np.uint8),
                     kind.astype(np.int8), np.array(lo), np.array(hi))


_TEMPLATES = {int(s): _template(int(s)) for s in RESPONSE_SEGMENTS}


def frames_per_connection() -> tuple[float, float]:
    """Expected frames per connection: (on the VIP segment, client->VIP only)."""
    both = sum(w * len(_TEMPLATES[int(s)].c2s) for s, w in zip(RESPONSE_SEGMENTS, RESPONSE_WEIGHTS))
    c2s = sum(w * _TEMPLATES[int(s)].c2s.sum() for s, w in zip(RESPONSE_SEGMENTS, RESPONSE_WEIGHTS))
    return float(both), float(c2s)


def _flows(n_conn: int, lab: SyntheticLab, rng: np.random.Generator,
           start_ns: int, packets_per_s: float) -> tuple[Frames, np.ndarray]:
    """TCP frames of n_conn complete connections (addresses, no MACs yet) and each one's server."""
    ports = 28232                                     # Linux ephemeral range 32768-60999
    if n_conn > lab.clients * ports:
        raise ValueError(f"{n_conn} connections need more than {lab.clients} clients")
    per_conn, _ = frames_per_connection()
    gaps = rng.exponential(1e9 * per_conn / packets_per_s, n_conn)
    starts = start_ns + np.cumsum(gaps).astype(np.int64)
    idx = np.arange(n_conn, dtype=np.int64)
    client = idx % lab.clients
    # Unique (client, port) per connection: a reused 4-tuple would look like a flow-affinity
    # break once round-robin sends it to another server. 7919 is prime, coprime to 28232.
    cport = (32768 + ((idx // lab.clients) * 7919) % ports).astype(np.uint16)
    cip = lab.client_ip(client)
    client_ttl = np.array([64, 63, 128, 127], dtype=np.uint8)[client % 4]
    server = (idx % lab.real_servers).astype(np.int64)   # round-robin in arrival order
    segs = rng.choice(RESPONSE_SEGMENTS, n_conn, p=RESPONSE_WEIGHTS)
    isn = rng.integers(0, 2**32, (n_conn, 2), dtype=np.int64)
    id_base = rng.integers(0, 2**16, (n_conn, 2), dtype=np.int64)
    ts_base = rng.integers(0, 2**31, (n_conn, 2), dtype=np.int64)
    request = rng.integers(60, 700, n_conn)
    last_seg = rng.integers(1, MSS + 1, n_conn)
    vip = np.uint32(ip4(lab.vip))
    parts: list[Frames] = []
    for s, tpl in _TEMPLATES.items():
        ci = np.flatnonzero(segs == s)
        if len(ci) == 0:
            continue
        n, steps = len(ci), len(tpl.c2s)
        kind = np.broadcast_to(tpl.payload_kind, (n, steps))
        pay = np.select([kind == _PAY_REQUEST, kind == _PAY_FULL, kind == _PAY_LAST],
                        [request[ci, None], MSS, last_seg[ci, None]], 0).astype(np.int64)
        c2s = tpl.c2s[None, :]
        seqlen = pay + ((tpl.flags & (SYN | FIN)) != 0)
        # Sequence space consumed by each side before this step (exclusive cumulative sums).
        sent_c = np.cumsum(seqlen * c2s, axis=1) - seqlen * c2s
        sent_s = np.cumsum(seqlen * ~c2s, axis=1) - seqlen * ~c2s
        isn_c, isn_s = isn[ci, 0:1], isn[ci, 1:2]
        seq = np.where(c2s, isn_c + sent_c, isn_s + sent_s) & 0xFFFF_FFFF
        ack = np.where(c2s, isn_s + sent_s, isn_c + sent_c) & 0xFFFF_FFFF
        ack = np.where(tpl.flags == SYN, 0, ack)
        count_c = np.cumsum(np.broadcast_to(c2s, (n, steps)), axis=1) - c2s
        count_s = np.cumsum(np.broadcast_to(~c2s, (n, steps)), axis=1) - ~c2s
        ip_id = np.where(c2s, id_base[ci, 0:1] + count_c, id_base[ci, 1:2] + count_s) & 0xFFFF
        dt = rng.uniform(tpl.dt_lo_us, tpl.dt_hi_us, (n, steps)) * 1000.0
        ts = starts[ci, None] + np.cumsum(dt, axis=1).astype(np.int64)
        ms = ts // 1_000_000
        tsval = np.where(c2s, ts_base[ci, 0:1], ts_base[ci, 1:2]) + ms
        tsecr = np.where(c2s, ts_base[ci, 1:2], ts_base[ci, 0:1]) + ms
        tsecr = np.where(tpl.flags == SYN, 0, tsecr)
        window = np.broadcast_to(np.where(tpl.flags & SYN, np.where(c2s, 64240, 65160),
                                          np.where(c2s, 502, 509)), (n, steps))
        conn = np.broadcast_to(ci[:, None], (n, steps))
        c2s_full = np.broadcast_to(c2s, (n, steps))
        cl_ip, cl_port = cip[ci, None], cport[ci, None]
        parts.append(Frames({
            "ts_ns": ts.ravel(), "arp": np.zeros(n * steps, bool),
            "src_mac": np.zeros(n * steps), "dst_mac": np.zeros(n * steps),
            "src_ip": np.where(c2s, cl_ip, vip).ravel(), "dst_ip": np.where(c2s, vip, cl_ip).ravel(),
            "ip_id": ip_id.ravel(),
            "ttl": np.where(c2s, client_ttl[ci, None], 64).ravel(),
            "sport": np.where(c2s, cl_port, lab.port).ravel(),
            "dport": np.where(c2s, lab.port, cl_port).ravel(),
            "seq": seq.ravel(), "ack": ack.ravel(),
            "flags": np.broadcast_to(tpl.flags, (n, steps)).ravel(), "payload": pay.ravel(),
            "opt": np.broadcast_to(tpl.opt, (n, steps)).ravel(),
            "tsval": (tsval & 0xFFFF_FFFF).ravel(), "tsecr": (tsecr & 0xFFFF_FFFF).ravel(),
            "window": window.ravel(), "arp_op": np.zeros(n * steps), "arp_tha": np.zeros(n * steps),
            "conn": conn.ravel(), "c2s": c2s_full.ravel(),
        }))
    return Frames.concat(parts), server


def _arp_pairs(n_pairs: int, t_lo: int, t_hi: int, askers: list[tuple[int, int, int, int]],
               rng: np.random.Generator) -> Frames:
    """n_pairs ARP request/reply pairs at random times; askers: (asker MAC, asker IP, target IP,
    owner MAC of the target), one chosen at random per pair."""
    table = np.array(askers, dtype=np.uint64).reshape(-1, 4)
    pick = table[rng.integers(0, len(table), n_pairs)]
    asker_mac, asker_ip, target_ip, owner_mac = (pick[:, i] for i in range(4))
    t_req = rng.integers(t_lo, max(t_hi, t_lo + 1), n_pairs)
    t_rep = t_req + rng.integers(30_000, 200_000, n_pairs)
    zeros = np.zeros(2 * n_pairs)
    return Frames({
        "ts_ns": np.concatenate([t_req, t_rep]), "arp": np.ones(2 * n_pairs, bool),
        "src_mac": np.concatenate([asker_mac, owner_mac]),
        "dst_mac": np.concatenate([np.full(n_pairs, BROADCAST, np.uint64), asker_mac]),
        "src_ip": np.concatenate([asker_ip, target_ip]),
        "dst_ip": np.concatenate([target_ip, asker_ip]),
        "arp_op": np.concatenate([np.ones(n_pairs), np.full(n_pairs, 2)]),
        "arp_tha": np.concatenate([np.zeros(n_pairs), asker_mac]),
        "conn": np.full(2 * n_pairs, -1),
        **{k: zeros for k in ("ip_id", "ttl", "sport", "dport", "seq", "ack", "flags", "payload",
                              "opt", "tsval", "tsecr", "window", "c2s")},
    })


def _gratuitous_arps(count: int, t_lo: int, t_hi: int, owner_mac: int, ip: int,
                     rng: np.random.Generator) -> Frames:
    """Gratuitous ARP requests (sender IP = target IP = ip, broadcast), as keepalived sends them
    for the VIP from the director."""
    zeros = np.zeros(count)
    return Frames({
        "ts_ns": rng.integers(t_lo, max(t_hi, t_lo + 1), count), "arp": np.ones(count, bool),
        "src_mac": np.full(count, owner_mac, np.uint64), "dst_mac": np.full(count, BROADCAST, np.uint64),
        "src_ip": np.full(count, ip), "dst_ip": np.full(count, ip), "arp_op": np.ones(count),
        "arp_tha": zeros, "conn": np.full(count, -1),
        **{k: zeros for k in ("ip_id", "ttl", "sport", "dport", "seq", "ack", "flags", "payload",
                              "opt", "tsval", "tsecr", "window", "c2s")},
    })


def _arp_pair_count(tcp_frames: int) -> int:
    return max(1, round(ARP_FRACTION * tcp_frames / (1 - ARP_FRACTION) / 2))


def _vip_segment(flows: Frames, server: np.ndarray, lab: SyntheticLab,
                 rng: np.random.Generator) -> Frames:
    """What tcpdump on br_e sees: client->VIP to the director, replies from the servers' br_e MACs."""
    rs_mac = np.array([mac48(lab.rs_vip_mac(k)) for k in range(lab.real_servers)], np.uint64)
    router = np.uint64(mac48(lab.router_mac))
    tcp = flows.with_columns(
        src_mac=np.where(flows.c2s, router, rs_mac[server[flows.conn]]),
        dst_mac=np.where(flows.c2s, np.uint64(mac48(lab.director_vip_mac)), router))
    askers = [(mac48(lab.router_mac), ip4(lab.router_ip), ip4(lab.vip), mac48(lab.director_vip_mac))]
    askers += [(mac48(lab.rs_vip_mac(k)), ip4(lab.rs_vip_ip(k)), ip4(lab.router_ip),
                mac48(lab.router_mac)) for k in range(lab.real_servers)]
    pairs = _arp_pair_count(len(tcp))
    t_lo, t_hi = int(tcp.ts_ns.min()), int(tcp.ts_ns.max())
    arp = _arp_pairs(pairs, t_lo, t_hi, askers, rng)
    garp = _gratuitous_arps(max(1, pairs // 20), t_lo, t_hi, mac48(lab.director_vip_mac),
                            ip4(lab.vip), rng)
    return Frames.concat([tcp, arp, garp]).sorted_by_time()


def _rs_segment(flows: Frames, server: np.ndarray, lab: SyntheticLab,
                rng: np.random.Generator) -> Frames:
    """What tcpdump on br_lvs sees: the director's forwarded copy of every client->VIP frame."""
    fwd = flows.take(np.flatnonzero(flows.c2s))
    rs_mac = np.array([mac48(lab.rs_rs_mac(k)) for k in range(lab.real_servers)], np.uint64)
    fwd = fwd.with_columns(
        ts_ns=fwd.ts_ns + rng.integers(2_000, 15_000, len(fwd)),
        src_mac=np.uint64(mac48(lab.director_rs_mac)), dst_mac=rs_mac[server[fwd.conn]],
        ttl=fwd.ttl - 1)
    askers = [(mac48(lab.director_rs_mac), ip4(lab.dip), ip4(lab.rip(k)), mac48(lab.rs_rs_mac(k)))
              for k in range(lab.real_servers)]
    arp = _arp_pairs(_arp_pair_count(len(fwd)), int(fwd.ts_ns.min()), int(fwd.ts_ns.max()),
                     askers, rng)
    return Frames.concat([fwd, arp]).sorted_by_time()


START_NS = 1_796_030_000_000_000_000   # 2026-11-30 (any fixed instant; keeps files reproducible)
PACKET_RATE = 40_000.0                 # frames/s on the VIP segment: a busy web service


def single_point_frames(n_frames: int, *, lab: SyntheticLab = SyntheticLab(), seed: int = 1) -> Frames:
    """Exactly n_frames as seen on the VIP segment (the capture stops mid-traffic, like tcpdump -c)."""
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    per_conn, _ = frames_per_connection()
    n_conn = int(n_frames * (1 - ARP_FRACTION) / per_conn * 1.05) + 3
    while True:
        rng = np.random.default_rng(seed)
        flows, server = _flows(n_conn, lab, rng, START_NS, PACKET_RATE)
        frames = _vip_segment(flows, server, lab, rng)
        if len(frames) >= n_frames:
            return frames.take(slice(0, n_frames))
        n_conn = int(n_conn * 1.1) + 3


def dr_set_frames(frames_per_point: int, *, lab: SyntheticLab = SyntheticLab(),
                  seed: int = 1) -> dict[str, Frames]:
    """A healthy two-point DR capture: {"br_e": ..., "br_lvs": ...}, complete connections only.

    frames_per_point is the mean over the two points (total ~2x): br_e carries both directions,
    br_lvs only the forwarded client->VIP frames, so br_e is the larger (~1.4x vs ~0.6x)."""
    if frames_per_point < 1:
        raise ValueError("frames_per_point must be >= 1")
    per_conn, c2s = frames_per_connection()
    n_conn = max(lab.real_servers, round(2 * frames_per_point * (1 - ARP_FRACTION) / (per_conn + c2s)))
    rng = np.random.default_rng(seed)
    flows, server = _flows(n_conn, lab, rng, START_NS, PACKET_RATE)
    return {"br_e": _vip_segment(flows, server, lab, rng),
            "br_lvs": _rs_segment(flows, server, lab, rng)}


# --------------------------------------------------------------------------------------------
# Encoding: header matrix per chunk, scattered into a filler buffer.

def _be(values: np.ndarray | int, nbytes: int, rows: int) -> np.ndarray:
    """(rows, nbytes) big-endian bytes of values (6-byte MACs via an 8-byte view)."""
    width = 8 if nbytes == 6 else nbytes
    arr = np.broadcast_to(np.asarray(values).astype(f">u{width}"), (rows,))
    out = np.ascontiguousarray(arr).view(np.uint8).reshape(rows, width)
    return out[:, width - nbytes:]


def _le(values: np.ndarray, nbytes: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values).astype(f"<u{nbytes}")).view(np.uint8).reshape(-1, nbytes)


def ipv4_header_checksum(total_len: np.ndarray, ip_id: np.ndarray, ttl: np.ndarray, proto: int,
                         src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """RFC 791 checksum of a 20-byte header with version 4, IHL 5, TOS 0, DF, no fragment offset."""
    s = (0x4500 + total_len.astype(np.int64) + ip_id.astype(np.int64) + 0x4000
         + ((ttl.astype(np.int64) << 8) | proto)
         + (src.astype(np.int64) >> 16) + (src.astype(np.int64) & 0xFFFF)
         + (dst.astype(np.int64) >> 16) + (dst.astype(np.int64) & 0xFFFF))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).astype(np.uint16)


def frame_headers(f: Frames) -> tuple[np.ndarray, np.ndarray]:
    """(header length per frame, (n, MAX_HEADER) uint8 matrix of the header bytes)."""
    n = len(f)
    h = np.zeros((n, MAX_HEADER), np.uint8)
    h[:, 0:6] = _be(f.dst_mac, 6, n)
    h[:, 6:12] = _be(f.src_mac, 6, n)
    h[:, 12:14] = _be(np.where(f.arp, 0x0806, 0x0800), 2, n)
    tcp_len = TCP_HEADER_LEN[f.opt]
    total = 20 + tcp_len + f.payload
    h[:, 14] = 0x45
    h[:, 16:18] = _be(total, 2, n)
    h[:, 18:20] = _be(f.ip_id, 2, n)
    h[:, 20] = 0x40                                         # DF
    h[:, 22] = f.ttl
    h[:, 23] = 6
    h[:, 24:26] = _be(ipv4_header_checksum(total, f.ip_id, f.ttl, 6, f.src_ip, f.dst_ip), 2, n)
    h[:, 26:30] = _be(f.src_ip, 4, n)
    h[:, 30:34] = _be(f.dst_ip, 4, n)
    h[:, 34:36] = _be(f.sport, 2, n)
    h[:, 36:38] = _be(f.dport, 2, n)
    h[:, 38:42] = _be(f.seq, 4, n)
    h[:, 42:46] = _be(f.ack, 4, n)
    h[:, 46] = (tcp_len // 4) << 4
    h[:, 47] = f.flags
    h[:, 48:50] = _be(f.window, 2, n)
    # bytes 50:54: TCP checksum left zero (offload, see module docstring), urgent pointer zero
    ts_rows = np.flatnonzero(f.opt == OPT_TS)
    h[ts_rows, 54:58] = (1, 1, 8, 10)                       # NOP NOP TS
    h[ts_rows, 58:62] = _be(f.tsval[ts_rows], 4, len(ts_rows))
    h[ts_rows, 62:66] = _be(f.tsecr[ts_rows], 4, len(ts_rows))
    syn_rows = np.flatnonzero(f.opt == OPT_SYN)
    h[syn_rows, 54:60] = (2, 4, 0x05, 0xB4, 4, 2)        # MSS 1460, SACK permitted
    h[syn_rows, 60:62] = (8, 10)
    h[syn_rows, 62:66] = _be(f.tsval[syn_rows], 4, len(syn_rows))
    h[syn_rows, 66:70] = _be(f.tsecr[syn_rows], 4, len(syn_rows))
    h[syn_rows, 70:74] = (1, 3, 3, 7)                       # NOP, window scale 7
    arp_rows = np.flatnonzero(f.arp)
    if len(arp_rows):
        a = len(arp_rows)
        h[arp_rows, 14:] = 0
        h[arp_rows, 14:22] = (0, 1, 8, 0, 6, 4, 0, 0)       # Ethernet/IPv4, op set below
        h[arp_rows, 21] = f.arp_op[arp_rows]
        h[arp_rows, 22:28] = _be(f.src_mac[arp_rows], 6, a)
        h[arp_rows, 28:32] = _be(f.src_ip[arp_rows], 4, a)
        h[arp_rows, 32:38] = _be(f.arp_tha[arp_rows], 6, a)
        h[arp_rows, 38:42] = _be(f.dst_ip[arp_rows], 4, a)
    header_len = np.where(f.arp, 42, 34 + tcp_len).astype(np.int64)
    return header_len, h


def _encode_chunk(f: Frames, fmt: str, nsec: bool) -> np.ndarray:
    """The records of frames f as one byte buffer.

    Built as two streams interleaved by a byte mask: the "head" stream (record header + frame
    headers, and for pcapng the padding and trailing block length) and the payload stream, where
    every payload starts at the beginning of the filler. So a payload's bytes depend only on its
    length, never on where the record sits in the file: a forwarded copy is byte-identical."""
    m = len(f)
    header_len, h = frame_headers(f)
    pay = np.where(f.arp, 0, f.payload).astype(np.int64)
    flen = header_len + pay
    if fmt == "pcap":
        sec, sub = np.divmod(f.ts_ns, 1_000_000_000)
        if not nsec:
            sub = sub // 1000
        prefix = np.concatenate([_le(sec, 4), _le(sub, 4), _le(flen, 4), _le(flen, 4)], axis=1)
        tail_len = np.zeros(m, np.int64)
    else:
        pad = (-flen) % 4
        rec = 32 + flen + pad
        ts = f.ts_ns.astype(np.uint64)
        prefix = np.concatenate([_le(np.full(m, 6), 4), _le(rec, 4), _le(np.zeros(m), 4),
                                 _le(ts >> np.uint64(32), 4), _le(ts & np.uint64(0xFFFF_FFFF), 4),
                                 _le(flen, 4), _le(flen, 4)], axis=1)
        tail_len = pad + 4
    lead = prefix.shape[1] + header_len
    width = prefix.shape[1] + MAX_HEADER + 7
    rows = np.zeros((m, width), np.uint8)
    rows[:, :prefix.shape[1]] = prefix
    rows[:, prefix.shape[1]:prefix.shape[1] + MAX_HEADER] = h
    if fmt == "pcapng":
        # padding (zeros) then the repeated block length, right after the frame headers
        tail = np.zeros((m, 7), np.uint8)
        tail[np.arange(m)[:, None], pad[:, None] + np.arange(4)] = _le(rec, 4)
        rows[np.arange(m)[:, None], lead[:, None] + np.arange(7)] = tail
    head_stream = rows[np.arange(width) < (lead + tail_len)[:, None]]
    max_pay = int(pay.max(initial=0))
    payload_stream = np.broadcast_to(_FILLER[:max_pay], (m, max_pay))[np.arange(max_pay) < pay[:, None]]
    is_head = np.repeat(np.tile(np.array([True, False, True]), m),
                        np.stack([lead, pay, tail_len], axis=1).ravel())
    buf = np.empty(len(is_head), np.uint8)
    buf[is_head] = head_stream
    buf[~is_head] = payload_stream
    return buf


def _pcap_header(nsec: bool) -> bytes:
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, SNAPLEN, 1)


def _pcapng_option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _pcapng_header(if_name: str) -> bytes:
    shb_opts = _pcapng_option(4, b"dr-inspect bench.gen") + _pcapng_option(0, b"")
    shb_len = 28 + len(shb_opts)
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, shb_len, 0x1A2B3C4D, 1, 0, -1) + shb_opts
    shb += struct.pack("<I", shb_len)
    idb_opts = (_pcapng_option(2, if_name.encode()) + _pcapng_option(9, bytes([9]))   # ns tsresol
                + _pcapng_option(0, b""))
    idb_len = 20 + len(idb_opts)
    idb = struct.pack("<IIHHI", 1, idb_len, 1, 0, SNAPLEN) + idb_opts + struct.pack("<I", idb_len)
    return shb + idb


def write_frames(out: BinaryIO, frames: Frames, fmt: str, *, nsec: bool = False,
                 if_name: str = "eth0", chunk: int = 32768) -> int:
    """Write frames as classic pcap (usec, or nsec) or pcapng (one Ethernet interface, ns EPBs).
    Returns bytes written."""
    if fmt not in ("pcap", "pcapng"):
        raise ValueError(f"unknown format {fmt!r} (pcap or pcapng)")
    head = _pcap_header(nsec) if fmt == "pcap" else _pcapng_header(if_name)
    out.write(head)
    written = len(head)
    for start in range(0, len(frames), chunk):
        buf = _encode_chunk(frames.take(slice(start, start + chunk)), fmt, nsec)
        out.write(memoryview(buf))
        written += len(buf)
    return written


def format_for(path: Path) -> str:
    return "pcapng" if path.name.endswith(".pcapng") else "pcap"


def write_capture(path: Path, frames: Frames, *, fmt: str | None = None, nsec: bool = False,
                  if_name: str = "eth0") -> int:
    path = Path(path)
    with open(path, "wb") as out:
        return write_frames(out, frames, fmt or format_for(path), nsec=nsec, if_name=if_name)


def write_single_capture(path: Path, n_frames: int, *, fmt: str | None = None, seed: int = 1,
                         lab: SyntheticLab = SyntheticLab()) -> int:
    """A single-point (VIP segment) capture of exactly n_frames. Returns bytes written."""
    return write_capture(Path(path), single_point_frames(n_frames, lab=lab, seed=seed), fmt=fmt,
                         if_name="br_e")


ROLES = {"br_e": "vip-segment", "br_lvs": "rs-segment"}


def manifest_text(counts: dict[str, int], files: dict[str, str], description: str) -> str:
    """manifest.toml in the format of dr_inspect/captureset.py. No started/stopped: no tcpdump ran,
    so there is no capture span for verify to honour (the frames' own times are synthetic)."""
    lines = ["[capture]", 'tool = "dr-inspect bench.gen"', 'host = "synthetic"',
             f'description = "{description}"', ""]
    for name, count in counts.items():
        lines += ["[[points]]", f'name = "{name}"', f'file = "{files[name]}"',
                  f'role = "{ROLES[name]}"', f'interface = "{name}"', f"received = {count}",
                  "dropped = 0", f"snaplen = {SNAPLEN}", ""]
    return "\n".join(lines)


def write_dr_set(directory: Path, frames_per_point: int, *, fmt: str = "pcap", seed: int = 1,
                 lab: SyntheticLab = SyntheticLab()) -> dict[str, int]:
    """Write br_e.<fmt>, br_lvs.<fmt> and manifest.toml into directory. Returns frames per point."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    points = dr_set_frames(frames_per_point, lab=lab, seed=seed)
    files = {name: f"{name}.{fmt}" for name in points}
    for name, frames in points.items():
        write_capture(directory / files[name], frames, fmt=fmt, if_name=name)
    counts = {name: len(frames) for name, frames in points.items()}
    description = (f"synthetic healthy LVS-DR capture: VIP {lab.vip}:{lab.port}, "
                   f"{lab.real_servers} real servers round-robin, seed {seed}")
    (directory / "manifest.toml").write_text(manifest_text(counts, files, description))
    return counts


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gen", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("single", help="single-point (VIP segment) capture of exactly N frames")
    one.add_argument("output", type=Path, help="file.pcap or file.pcapng")
    two = sub.add_parser("drset", help="healthy two-point DR capture set (br_e + br_lvs + manifest)")
    two.add_argument("output", type=Path, help="directory")
    two.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    for p in (one, two):
        p.add_argument("--frames", type=_positive, default=100_000,
                       help="frames (drset: mean per point, total ~2x)")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--real-servers", type=_positive, default=3, help="1..150")
        p.add_argument("--clients", type=_positive, default=1000, help="1..65000")
    args = parser.parse_args(argv)
    try:
        lab = SyntheticLab(real_servers=args.real_servers, clients=args.clients)
    except ValueError as exc:
        parser.error(str(exc))
    t0 = time.perf_counter()
    if args.what == "single":
        size = write_single_capture(args.output, args.frames, seed=args.seed, lab=lab)
        print(f"{args.output}: {args.frames} frames, {size / 1e6:.1f} MB "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    else:
        counts = write_dr_set(args.output, args.frames, fmt=args.format, seed=args.seed, lab=lab)
        print(f"{args.output}: " + ", ".join(f"{k} {v} frames" for k, v in counts.items())
              + f" in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
