"""What each connection does: the healthy script, and one per fault that changes it."""

from __future__ import annotations

import random

from . import frames as fr
from .frames import ACK, FIN, PSH, RST, SYN
from .model import DEAD_MAC
from .sim import MS, MSS, US, Conn, Flow, Sim


def _response_sizes(rng: random.Random) -> list[int]:
    n = rng.choice([1, 1, 2, 3])
    return [MSS] * (n - 1) + [rng.randrange(1, MSS + 1)]


def serve(f: Flow, t: int) -> int:
    """A connection that works: handshake, request, response, FIN exchange. Returns its end."""
    c, rng = f.c, f.sim.rng
    if c.syn_retrans:
        f.client(t, SYN, 0, 0)            # forwarded; the server drops it (backlog full)
        t += 1000 * MS
    t_sa = f.client(t, SYN, 0, 0) + f.think()
    f.server(t_sa, SYN | ACK, 0, 1)
    t = t_sa + f.think()
    f.client(t, ACK, 1, 1)
    if c.synack_retrans:                  # the server missed that ACK: SYN-ACK again
        t_sa += 1000 * MS
        f.server(t_sa, SYN | ACK, 0, 1)
        t = t_sa + f.think()
        f.client(t, ACK, 1, 1)
    t += f.think()
    if c.gro:
        sizes = [MSS] * rng.randrange(1, 4) + [rng.randrange(1, MSS + 1)]
        t = f.client_segments(t, sizes, 1)
        req = sum(sizes)
    else:
        req = rng.randrange(60, 700)
        t = f.client(t, PSH | ACK, 1, 1, req)
    t += f.think()
    off = 1
    sizes = _response_sizes(rng)
    t_ack = t                             # the client's frames leave in the order of its IP IDs
    for i, size in enumerate(sizes):
        last = i == len(sizes) - 1
        f.server(t, ACK | (PSH if last else 0), off, 1 + req, size)
        off += size
        if i % 2 == 1 or last:
            t_ack = max(t_ack, t + f.think()) + US
            f.client(t_ack, ACK, 1 + req, off)
        t += 8 * US
    t = max(t, t_ack) + 2 * f.think()
    t = f.client(t, FIN | ACK, 1 + req, off) + f.think()
    f.server(t, FIN | ACK, off, 2 + req)
    t += f.think()
    f.client(t, ACK, 2 + req, off + 1)
    return t


def unanswered(f: Flow, t: int, answer=None, dr009: bool = True) -> int:
    """The client's SYN and its retransmits at +1 s and +3 s, each forwarded; answer(t) is what
    the server does with each (nothing by default). dr009: no SYN-ACK from the VIP comes."""
    for delay in (0, 1000 * MS, 3000 * MS):
        t_copy = f.client(t + delay, SYN, 0, 0, copy_tags=(("DR009", f.key),) if dr009 else ())
        if answer is not None:
            answer(t_copy + f.think())
    return t + 3000 * MS


def lost(f: Flow, t: int) -> int:
    """The client's SYN and its retransmits go to a MAC nobody owns: nothing else happens."""
    for delay in (0, 1000 * MS, 3000 * MS):
        f.client(t + delay, SYN, 0, 0)
    return t + 3000 * MS


def director_drops(f: Flow, t: int) -> int:
    """Conntrack-invalid drops: SYN forwarded and answered; the client's ACK and request (and
    their retransmits) never leave the director."""
    t_sa = f.client(t, SYN, 0, 0) + f.think()
    f.server(t_sa, SYN | ACK, 0, 1)
    f.dropped = True
    t = t_sa + f.think()
    f.client(t, ACK, 1, 1)
    req = f.sim.rng.randrange(60, 700)
    f.client(t + 50 * US, PSH | ACK, 1, 1, req)
    f.client(t + 200 * MS, PSH | ACK, 1, 1, req)
    f.server(t_sa + 1000 * MS, SYN | ACK, 0, 1)
    f.client(t_sa + 1000 * MS + f.think(), ACK, 1 + req, 1)
    return t_sa + 1001 * MS


def forwarding_loop(f: Flow, t: int) -> int:
    """The server has no VIP but forwards: it routes the copy back to the director, which
    forwards it again, until the TTL runs out; then ICMP time exceeded to the client."""
    sim, c = f.sim, f.c
    d = sim.net.director
    for start in (t, t + 1000 * MS):
        f.ip_id_c += 1
        ip_id = f.ip_id_c
        f.emit_c(start, "e", f.peer.mac_e, f.dst_in, SYN, 0, 0, b"", 64, ip_id, ("dir_in", None))
        ttl, now, first = 64 - sim.ttl_drop, start + f.delay(), True
        now += sim.director_resolves(f.k, now)
        while True:
            tags = (("DR010", f.key),) + ((("DR009", f.key),) if first else ())
            f.emit_c(now, "lvs", d.mac_lvs, f.rs.mac_lvs, SYN, 0, 0, b"", ttl, ip_id,
                     ("copy", None), ("dir_lvs", None), ("sig", c.service), ("rs_lvs", (f.k, f.key)), *tags)
            first = False
            now += f.delay()
            if ttl <= 1:
                break
            ttl -= 1                     # the server routes it back
            f.emit_c(now, "lvs", f.rs.mac_lvs, d.mac_lvs, SYN, 0, 0, b"", ttl, ip_id, ("alive", f.k))
            now += f.delay()
            ttl -= sim.ttl_drop
            if ttl <= 0:
                break
        now += sim.rs_resolves_client(f.k, c, now)
        original = f._c_frame(f.rs.mac_lvs, d.mac_lvs, SYN, 0, 0, b"", 1, ip_id)[14:]
        sim.emit(now + 10 * US, "e", fr.time_exceeded(f.rs.mac_e, f.peer.mac_e, f.rs.ip_e,
                                                      f.peer.ip_e, original))
    return t + 1001 * MS


def flow_split(f: Flow, t: int, other: int) -> int:
    """Handshake with this server, then the request goes to `other`, which resets it."""
    t_sa = f.client(t, SYN, 0, 0) + f.think()
    f.server(t_sa, SYN | ACK, 0, 1)
    t = t_sa + f.think()
    f.client(t, ACK, 1, 1)
    keep = f.fwd_dst, f.copy_tags, f.k
    f.fwd_dst, f.k = f.sim.net.rs[other].mac_lvs, other
    f.copy_tags = (("rs_lvs", (other, f.key)), ("sig", f.c.service))
    t = f.client(t + f.think(), PSH | ACK, 1, 1, f.sim.rng.randrange(60, 700),
                 copy_tags=(("DR008", f.key),)) + f.think()
    f.server(t, RST, 0, 0, from_rs=other, seq_raw=f.c.sisn + 1)
    f.fwd_dst, f.copy_tags, f.k = keep
    return t


def run_connection(sim: Sim, conn: Conn) -> int:
    """Simulate one connection from its start; returns its end (true ns)."""
    net = sim.net
    vip = net.services[conn.service][0]
    t = conn.start
    if sim.client_mac_for(conn, vip, t) == DEAD_MAC:      # a permanent entry: no ARP/ND
        return lost(Flow(sim, conn, 0, dead=True), t)
    sim.client_resolves_vip(conn, vip, t)
    mac = sim.client_mac_for(conn, vip, t)
    if mac != net.director.mac_e:
        k = next(i for i, rs in enumerate(net.rs) if rs.mac_e == mac)
        return serve(Flow(sim, conn, k, direct=True), t)
    k = sim.schedule(conn)
    f = Flow(sim, conn, k)
    fault = sim.fault(k, conn)
    kind = fault.kind if fault else ""
    if kind in ("rs-no-vip", "rs-rp-filter", "rs-vip-wide-mask"):
        return unanswered(f, t)
    if kind == "stale-neighbour":
        f.fwd_dst = net.stale_mac(k)
        f.copy_tags = (("sig", conn.service), ("DR001", f.key))
        sim.dir_knows.add(k)                  # a stale entry: no ARP for the RIP
        return unanswered(f, t)
    if kind == "director-not-rewriting":
        f.fwd_dst = net.director.mac_e
        f.copy_tags = (("DR001", f.key),)
        sim.dir_knows.add(k)
        return unanswered(f, t)
    if kind == "port-mismatch":
        return unanswered(f, t, lambda ts: f.server(ts, RST | ACK, 0, 1, seq_raw=0))
    if kind == "reply-via-director":
        return unanswered(f, t, lambda ts: f.server(ts, SYN | ACK, 0, 1, via_director=True),
                          dr009=False)
    if kind == "reply-from-rip":
        return unanswered(f, t, lambda ts: f.server(ts, SYN | ACK, 0, 1, src=f.rs.ip_lvs))
    if kind == "director-drops":
        return director_drops(f, t)
    if kind == "forwarding-loop":
        return forwarding_loop(f, t)
    if kind == "flow-split":
        return flow_split(f, t, (k + 1) % sim.sc.real_servers)
    if kind == "copy-mangled":
        f.mangle = fault.variant
        conn.gro = ""                         # a mangled copy is not also a coalesced one
    return serve(f, t)
