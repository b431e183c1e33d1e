"""Simulate a Scenario: every frame each segment carries, tagged with what it proves.

Real IPVS DR semantics (DESIGN.md "Correlator"): a client->VIP frame arrives at the director's
VIP-segment MAC; its forwarded copy leaves the director's real-server-segment MAC for the chosen
real server's MAC there, TTL - 1 (IPVS) or unchanged (nft), IPv4 checksum recomputed, nothing
else changed; the real server answers from the VIP straight to the client from its VIP-segment
MAC. Only the director answers ARP/ND for the VIP. Connections are processed in order of their
start, so ARP/neighbour state (who resolved what, which MAC a client uses for a VIP) evolves as
it would on the hosts.

Each record carries tags: (rule id, evidence key) for the evidence it is, and topology tags
(what it shows about a real server). The truth is read from the tags of the records that
survive the capture edges, so it states what the capture can show, not what was configured.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import frames as fr
from .frames import ACK, PSH, SYN
from .model import ARP_FAULTS, CLIENT_FAULTS, DEAD_MAC, Fault, Scenario
from .net import Net, endpoint

MSS = 1448
MS = 1_000_000
US = 1_000


@dataclass
class Rec:
    ts: int                      # true time, ns since the start of the scenario
    seg: str                     # "e" (VIP segment) | "lvs" (real-server segment)
    frame: bytes
    tags: tuple = ()


@dataclass(order=True)
class Conn:
    start: int
    idx: int
    client: int = field(compare=False)
    service: int = field(compare=False)
    cport: int = field(compare=False)
    zone: str = field(compare=False, default="main")    # main | edge (faults off at the edges)
    syn_retrans: bool = field(compare=False, default=False)
    synack_retrans: bool = field(compare=False, default=False)
    gro: str = field(compare=False, default="")          # "" | "copy" | "orig" (coalesced side)
    reuse: bool = field(compare=False, default=False)    # a later connection reuses its 4-tuple
    isn: int = field(compare=False, default=0)
    sisn: int = field(compare=False, default=0)
    end: int = field(compare=False, default=0)


class Sim:
    def __init__(self, sc: Scenario):
        self.sc = sc
        self.net = Net(sc)
        self.rng = random.Random(sc.seed)
        self.recs: list[Rec] = []
        self.fault_on = {f.rs: f for f in sc.faults if f.kind not in CLIENT_FAULTS}
        self.stale_clients = {f.rs % sc.clients for f in sc.faults if f.kind == "client-stale-arp"}
        self.ttl_drop = 1 if sc.director == "ipvs" else 0
        self.client_entry: dict[tuple[int, str], list[tuple[int, str]]] = {}
        self.rs_knows: set[tuple[int, int]] = set()
        self.dir_knows: set[int] = set()
        self.rr: dict[int, int] = {}
        self.first_pick: dict[int, list[int]] = {}
        self.followers = self._followers()
        self.conns: list[Conn] = []

    # -- setup ---------------------------------------------------------------------------------
    def _followers(self) -> set[int]:
        """Clients that keep a real server's claim of the VIP (ARP faults)."""
        out: set[int] = set()
        n = self.sc.clients
        for f in self.sc.faults:
            if f.kind not in ARP_FAULTS or f.variant == "none":
                continue
            if f.variant == "all":
                out |= set(range(n))
            else:
                out |= set(self.rng.sample(range(n), max(1, n // 2) if n > 1 else 1))
        return out

    def fault(self, k: int, conn: Conn) -> Fault | None:
        f = self.fault_on.get(k)
        return f if f is not None and conn.zone == "main" else None

    def key(self, c: Conn) -> tuple:
        vip, port = self.net.services[c.service]
        return (self.net.clients[c.client].ip_e, c.cport, endpoint(vip, port), c.isn)

    # -- output helpers ------------------------------------------------------------------------
    def emit(self, ts: int, seg: str, frame: bytes, *tags) -> None:
        self.recs.append(Rec(ts, seg, frame, tags))

    def arp_exchange(self, t: int, seg: str, asker_mac: str, asker_ip: str, target_ip: str,
                     answers: list[tuple[int, str, tuple]]) -> None:
        """asker resolves target_ip; answers: (delay ns, owner MAC, tags of that answer)."""
        if self.net.family == 4:
            self.emit(t, seg, fr.arp_frame(1, asker_mac, fr.BROADCAST, asker_ip, "00:00:00:00:00:00",
                                           target_ip))
            for delay, mac, tags in answers:
                self.emit(t + delay, seg, fr.arp_frame(2, mac, asker_mac, target_ip, asker_mac,
                                                       asker_ip), *tags)
        else:
            self.emit(t, seg, fr.neighbour_solicit(asker_mac, asker_ip, target_ip))
            for delay, mac, tags in answers:
                self.emit(t + delay, seg, fr.neighbour_advert(mac, asker_mac, target_ip, asker_ip,
                                                              target_ip), *tags)

    # -- the director and the real servers' neighbour state --------------------------------------
    def client_mac_for(self, conn: Conn, vip: str, t: int) -> str:
        if conn.client in self.stale_clients and conn.zone == "main":
            return DEAD_MAC
        entries = [e for e in self.client_entry.get((conn.client, vip), []) if e[0] <= t]
        return max(entries)[1] if entries else ""

    def client_resolves_vip(self, conn: Conn, vip: str, t: int) -> None:
        if (conn.client, vip) in self.client_entry:
            return
        client = self.net.clients[conn.client]
        d = self.net.director
        answers = [(60 * US, d.mac_e, ())]
        mac = d.mac_e
        for k, f in self.fault_on.items():
            if f.kind == "rs-answers-arp" and conn.zone == "main":
                rs = self.net.rs[k]
                # the namespace answers before the director (as in the lab's fault capture)
                answers.insert(0, (40 * US, rs.mac_e, (("DR005", rs.mac_e),)))
                if conn.client in self.followers:
                    mac = rs.mac_e
        self.arp_exchange(t - 200 * US, "e", client.mac_e, client.ip_e, vip, answers)
        self.client_entry[(conn.client, vip)] = [(t - 100 * US, mac)]

    def director_resolves(self, k: int, t: int) -> int:
        """Before its first copy to server k the director resolves the RIP (answered from the
        server's real-server-segment MAC). Returns the time the copy waits for it."""
        if k in self.dir_knows:
            return 0
        self.dir_knows.add(k)
        rs, d = self.net.rs[k], self.net.director
        self.arp_exchange(t, "lvs", d.mac_lvs, d.ip_lvs, rs.ip_lvs,
                          [(20 * US, rs.mac_lvs, (("rip", k), ("alive", k)))])
        return 30 * US

    def rs_resolves_client(self, k: int, conn: Conn, t: int) -> int:
        """Before its first frame to a client: the server asks for it (sender: its own address
        there; the VIP with the rs-arp-announce fault, which followers take as the VIP's MAC).
        Returns the time the frame waits for the answer."""
        if (k, conn.client) in self.rs_knows:
            return 0
        self.rs_knows.add((k, conn.client))
        rs, client = self.net.rs[k], self.net.clients[conn.client]
        vip = self.net.services[conn.service][0]
        f = self.fault(k, conn)
        announce = f is not None and f.kind == "rs-arp-announce"
        sender = vip if announce else rs.ip_e
        tags: tuple = (("DR006", rs.mac_e),) if announce else ((("rip", k),) if self.net.shared else ())
        if self.net.shared:
            tags += (("alive", k),)
        t0 = t
        if self.net.family == 4:
            self.emit(t0, "e", fr.arp_frame(1, rs.mac_e, fr.BROADCAST, sender, "00:00:00:00:00:00",
                                            client.ip_e), *tags)
            self.emit(t0 + 30 * US, "e", fr.arp_frame(2, client.mac_e, rs.mac_e, client.ip_e,
                                                      rs.mac_e, sender))
        else:
            self.emit(t0, "e", fr.neighbour_solicit(rs.mac_e, sender, client.ip_e), *tags)
            self.emit(t0 + 30 * US, "e", fr.neighbour_advert(client.mac_e, rs.mac_e, client.ip_e,
                                                             sender, client.ip_e))
        if announce and conn.client in self.followers:
            self.client_entry.setdefault((conn.client, vip), []).append((t0, rs.mac_e))
        return 50 * US

    def schedule(self, conn: Conn) -> int:
        """The real server the director picks: round robin per service (IPVS rr); the nft
        director hashes, but its first picks per service cover every server (so each server
        and service shows DR traffic)."""
        n = self.sc.real_servers
        if self.sc.director == "ipvs":
            i = self.rr.get(conn.service, 0)
            self.rr[conn.service] = i + 1
            return i % n
        firsts = self.first_pick.setdefault(conn.service, self.rng.sample(range(n), n))
        return firsts.pop() if firsts else self.rng.randrange(n)


class Flow:
    """One connection's frames: the client's (and the director's copies), the server's."""

    def __init__(self, sim: Sim, conn: Conn, k: int, direct: bool = False, dead: bool = False):
        """k: the real server; direct: the client sends straight to its MAC; dead: to a MAC
        nobody owns (a stale ARP entry for the VIP)."""
        self.sim, self.c, self.k, self.direct, self.dead = sim, conn, k, direct, dead
        net, rng = sim.net, sim.rng
        self.peer = net.clients[conn.client]
        self.vip, self.port = net.services[conn.service]
        self.rs = net.rs[k]
        self.key = sim.key(conn)
        self.ip_id_c = rng.randrange(65536)
        self.ip_id_s = rng.randrange(65536)
        d = net.director
        self.dst_in = DEAD_MAC if dead else self.rs.mac_e if direct else d.mac_e
        self.fwd_src, self.fwd_dst = d.mac_lvs, self.rs.mac_lvs
        self.copy_tags: tuple = (("rs_lvs", (k, self.key)), ("sig", conn.service))
        self.mangle = ""
        self.dropped = False              # the director drops (does not forward) client frames

    def delay(self) -> int:
        return self.sim.rng.randrange(5 * US, 40 * US)

    def think(self) -> int:
        return self.sim.rng.randrange(30 * US, 300 * US)

    def c2s(self, flags: int, seq_off: int) -> tuple:
        """The tag of a client->VIP frame (connection identity: its first SYN, else frame)."""
        return ("c2s", (self.key, bool(flags & SYN), (self.c.isn + seq_off) & 0xFFFF_FFFF))

    def _c_frame(self, src_mac: str, dst_mac: str, flags: int, seq_off: int, ack_off: int,
                 payload: bytes, ttl: int, ip_id: int) -> bytes:
        c = self.c
        ack = (c.sisn + ack_off) if flags & ACK else 0
        return fr.tcp_frame(src_mac, dst_mac, self.peer.ip_e, self.vip, c.cport, self.port,
                            c.isn + seq_off, ack, flags, payload, ttl, ip_id)

    def emit_c(self, t: int, seg: str, src_mac: str, dst_mac: str, flags: int, seq_off: int,
               ack_off: int, payload: bytes, ttl: int, ip_id: int, *tags) -> None:
        """Emit a client->VIP frame (an original or a copy) of this connection."""
        if src_mac == self.peer.mac_e:
            tags += (("ingress", None),)           # sent by the client itself
        self.sim.emit(t, seg, self._c_frame(src_mac, dst_mac, flags, seq_off, ack_off, payload, ttl,
                                            ip_id), self.c2s(flags, seq_off), *tags)

    def _copy(self, t: int, flags: int, seq_off: int, ack_off: int, payload: bytes, ip_id: int,
              ttl: int = 64, tags: tuple = ()) -> int:
        """The director's copy; returns its time (later when the director first resolves)."""
        if self.mangle and payload:
            if self.mangle == "strip":
                payload = b""
            elif self.mangle == "short":
                payload = payload[:-10]
            elif self.mangle == "rewrite":
                # the same length, one byte changed (a rewriting helper): only the digest tells
                payload = payload[:1] + bytes([payload[1] ^ 0x20]) + payload[2:] \
                    if len(payload) > 1 else bytes([payload[0] ^ 0x20])
            else:
                ip_id += 1
            tags += (("DR002", self.key),)
        t += self.sim.director_resolves(self.k, t)
        self.emit_c(t, "lvs", self.fwd_src, self.fwd_dst, flags, seq_off, ack_off, payload,
                    ttl - self.sim.ttl_drop, ip_id, ("copy", None), ("dir_lvs", None), *self.copy_tags, *tags)
        return t

    def client(self, t: int, flags: int, seq_off: int, ack_off: int, plen: int = 0, *,
               copy_tags: tuple = (), orig_tags: tuple = ()) -> int:
        """The client sends; the director forwards it (unless direct or dropped). Returns the
        time of the copy (or of the original)."""
        payload = fr.payload_bytes(seq_off - 1, plen) if plen else b""
        self.ip_id_c += 1
        tags = orig_tags + ((("DR012", self.key), ("direct", self.c.service)) if self.direct
                            else (("dir_in", None),))
        if self.dead or self.dropped and not flags & SYN:
            tags += (("DR007", self.key),)
        self.emit_c(t, "e", self.peer.mac_e, self.dst_in, flags, seq_off, ack_off, payload, 64,
                    self.ip_id_c, *tags)
        if self.direct or self.dead or (self.dropped and not flags & SYN):
            return t
        return self._copy(t + self.delay(), flags, seq_off, ack_off, payload, self.ip_id_c,
                          tags=copy_tags)

    def client_segments(self, t: int, sizes: list[int], ack_off: int) -> int:
        """A request of several MSS segments, coalesced at one point: "copy" = GRO on the
        director (separate segments on the VIP side, one copy), "orig" = the client's TSO (one
        big frame on the VIP side, segmented copies). Byte ranges cover each other exactly."""
        offs = [1 + sum(sizes[:i]) for i in range(len(sizes))]
        first_id = self.ip_id_c + 1
        self.ip_id_c += len(sizes)
        total = sum(sizes)
        tags = (("dir_in", None),)
        if self.c.gro == "copy":
            for i, (off, size) in enumerate(zip(offs, sizes)):
                flags = ACK | (PSH if i == len(sizes) - 1 else 0)
                self.emit_c(t + i * 2 * US, "e", self.peer.mac_e, self.dst_in, flags, off, ack_off,
                            fr.payload_bytes(off - 1, size), 64, first_id + i, *tags)
            return self._copy(t + len(sizes) * 2 * US + self.delay(), PSH | ACK, 1, ack_off,
                              fr.payload_bytes(0, total), first_id)
        self.emit_c(t, "e", self.peer.mac_e, self.dst_in, PSH | ACK, 1, ack_off,
                    fr.payload_bytes(0, total), 64, first_id, *tags)
        t_copy = t + self.delay()
        for i, (off, size) in enumerate(zip(offs, sizes)):
            flags = ACK | (PSH if i == len(sizes) - 1 else 0)
            t_copy = self._copy(t_copy, flags, off, ack_off, fr.payload_bytes(off - 1, size),
                                first_id + i) + 2 * US
        return t_copy

    def server(self, t: int, flags: int, seq_off: int, ack_off: int, plen: int = 0, *,
               src: str = "", via_director: bool = False, from_rs: int | None = None,
               seq_raw: int | None = None) -> None:
        """The real server (from_rs: another one) sends to the client."""
        k = self.k if from_rs is None else from_rs
        rs, c = self.sim.net.rs[k], self.c
        seq = c.sisn + seq_off if seq_raw is None else seq_raw
        ack = (c.isn + ack_off) if flags & ACK else 0
        payload = fr.payload_bytes(seq_off - 1, plen) if plen else b""
        self.ip_id_s += 1
        src = src or self.vip
        tags: tuple = ((("rs_e", (k, self.key)), ("answered", self.key)) if src == self.vip
                       else (("DR004", self.key),))
        if self.sim.net.shared:
            tags += (("alive", k),)
        if via_director:
            d = self.sim.net.director
            self.sim.emit(t, "lvs", fr.tcp_frame(rs.mac_lvs, d.mac_lvs, src, self.peer.ip_e,
                                                 self.port, c.cport, seq, ack, flags, payload, 64,
                                                 self.ip_id_s), ("DR003", self.key), ("alive", k))
            return
        t += self.sim.rs_resolves_client(k, c, t)
        self.sim.emit(t, "e", fr.tcp_frame(rs.mac_e, self.peer.mac_e, src, self.peer.ip_e,
                                           self.port, c.cport, seq, ack, flags, payload, 64,
                                           self.ip_id_s), *tags)
