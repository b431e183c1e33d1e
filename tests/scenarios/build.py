"""Scenario -> capture set on disk (pcap per point + manifest.toml) and its ground truth."""

from __future__ import annotations

import heapq
from datetime import datetime, timezone
from pathlib import Path

from . import frames as fr
from .frames import ACK, FIN, PSH, RST, SYN
from .model import Scenario, Truth
from .scripts import run_connection
from .sim import MS, US, Conn, Rec, Sim
from .truth import truth_of

T0_NS = 1_796_030_000_000_000_000      # 2026-11-30, a whole second
EDGE_ZONE_MS = (50, 450)               # lead-in connections when a point starts late


def _connections(sim: Sim) -> list[Conn]:
    sc, rng, net = sim.sc, sim.rng, sim.net
    edges = bool(sc.late_start or sc.early_stop)
    main0 = 600 * MS if edges else 50 * MS
    n_main = len(net.services) * sc.rounds * sc.real_servers
    span = 300 * MS + 10 * MS * n_main
    ports: set[tuple[int, int]] = set()

    def conn(start: int, service: int, zone: str, first: bool = False) -> Conn:
        # the first connection of each service comes from a client that reaches the director,
        # so every service shows DR (a client with a dead MAC for the VIP does not)
        pool = [c for c in range(sc.clients) if not first or c not in sim.stale_clients]
        client = rng.choice(pool)
        while True:
            port = rng.randrange(32768, 61000)
            if (client, port) not in ports:
                ports.add((client, port))
                break
        return Conn(start=start, idx=len(out), client=client, service=service, cport=port,
                    zone=zone, isn=rng.randrange(2**32), sisn=rng.randrange(2**32))

    out: list[Conn] = []
    for s in range(len(net.services)):
        for i in range(sc.rounds * sc.real_servers):
            out.append(conn(main0 + (0 if i == 0 else rng.randrange(span)), s, "main", i == 0))
    for attr, count, value in (("syn_retrans", sc.syn_retransmits, True),
                               ("synack_retrans", sc.synack_retransmits, True),
                               ("gro", sc.gro, "copy"), ("gro", sc.tso, "orig"),
                               ("reuse", sc.port_reuse, True)):
        for c in rng.sample(out, min(count, len(out))):
            setattr(c, attr, value)
    for c in rng.sample(out, min(sc.seq_wrap, len(out))):
        # both sides' data crosses 2**32 within the first few segments (and the IP IDs 65535)
        c.isn, c.sisn = 2**32 - rng.randrange(1, 1500), 2**32 - rng.randrange(1, 3000)
    if edges:
        tail0 = main0 + span + 7000 * MS
        for lo in (EDGE_ZONE_MS[0] * MS, tail0):
            for _ in range(max(2, sc.real_servers)):
                out.append(conn(lo + rng.randrange(400 * MS), rng.randrange(len(net.services)),
                                "edge"))
    return out


def _background(sim: Sim, t_end: int) -> None:
    """Other hosts on the VIP segment (ARP, TCP to port 22, DNS over UDP) and, on the real-server
    segment, the director's health checks of each RIP (TCP from the DIP, answered from the RIP)."""
    rng, net = sim.rng, sim.net
    a, b = net.bg
    for _ in range(3):
        t = rng.randrange(t_end)
        sim.arp_exchange(t, "e", a.mac_e, a.ip_e, b.ip_e, [(50 * US, b.mac_e, ())])
        port, isn, sisn = rng.randrange(32768, 61000), rng.randrange(2**32), rng.randrange(2**32)
        steps = [(a, b, SYN, isn, 0, 0), (b, a, SYN | ACK, sisn, isn + 1, 0),
                 (a, b, ACK, isn + 1, sisn + 1, 0), (a, b, PSH | ACK, isn + 1, sisn + 1, 40),
                 (b, a, PSH | ACK, sisn + 1, isn + 41, 300), (a, b, FIN | ACK, isn + 41, sisn + 301, 0),
                 (b, a, FIN | ACK, sisn + 301, isn + 42, 0), (a, b, ACK, isn + 42, sisn + 302, 0)]
        for i, (src, dst, flags, seq, ack, plen) in enumerate(steps):
            sport, dport = (port, 22) if src is a else (22, port)
            sim.emit(t + (i + 1) * 100 * US, "e", fr.tcp_frame(
                src.mac_e, dst.mac_e, src.ip_e, dst.ip_e, sport, dport, seq, ack, flags,
                fr.payload_bytes(0, plen), 64, rng.randrange(65536)))
        q = rng.randrange(1024, 65536)
        sim.emit(t + 2 * MS, "e", fr.udp_frame(a.mac_e, b.mac_e, a.ip_e, b.ip_e, q, 53, b"\x12" * 30))
        sim.emit(t + 2 * MS + 80 * US, "e", fr.udp_frame(b.mac_e, a.mac_e, b.ip_e, a.ip_e, 53, q,
                                                         b"\x34" * 60))
    d = net.director
    port = net.services[0][1]
    for k, rs in enumerate(net.rs):
        t = rng.randrange(t_end)
        sim.director_resolves(k, t)
        cport, isn, sisn = rng.randrange(32768, 61000), rng.randrange(2**32), rng.randrange(2**32)
        for i, (fwd, flags, seq, ack) in enumerate([(True, SYN, isn, 0), (False, SYN | ACK, sisn, isn + 1),
                                                    (True, ACK, isn + 1, sisn + 1),
                                                    (True, RST | ACK, isn + 1, sisn + 1)]):
            src, dst = (d, rs) if fwd else (rs, d)
            tags = () if fwd else (("rip", k), ("alive", k))
            sim.emit(t + i * 100 * US, "lvs", fr.tcp_frame(
                src.mac_lvs, dst.mac_lvs, src.ip_lvs, dst.ip_lvs, cport if fwd else port,
                port if fwd else cport, seq, ack, flags, b"", 64, rng.randrange(65536)), *tags)


def simulate(sc: Scenario) -> Sim:
    sim = Sim(sc)
    net = sim.net
    d = net.director
    for vip in net.vips:                      # keepalived's gratuitous ARP / unsolicited NA
        if net.family == 4:
            sim.emit(10 * MS, "e", fr.arp_frame(1, d.mac_e, fr.BROADCAST, vip, "00:00:00:00:00:00", vip),
                     ("dir_claim", None))
        else:
            sim.emit(10 * MS, "e", fr.neighbour_advert(d.mac_e, "33:33:00:00:00:01", vip, "ff02::1",
                                                       vip, solicited=False), ("dir_claim", None))
    queue = _connections(sim)
    heapq.heapify(queue)
    while queue:
        conn = heapq.heappop(queue)
        sim.conns.append(conn)
        conn.end = run_connection(sim, conn)
        if conn.reuse:
            gap = sim.rng.randrange(20 * MS, 300 * MS)
            heapq.heappush(queue, Conn(start=conn.end + gap, idx=10_000 + conn.idx, client=conn.client,
                                       service=conn.service, cport=conn.cport, zone=conn.zone,
                                       isn=sim.rng.randrange(2**32), sisn=sim.rng.randrange(2**32)))
    if sc.background:
        _background(sim, max(r.ts for r in sim.recs))
    return sim


def _iso(ns: int) -> str:
    when = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 1_000_000_000) // 1000:06d}Z"


def capture_spans(sim: Sim) -> dict[str, tuple[int, int]]:
    """Per point, the (true) time it captured: everything, less the scenario's missing edges."""
    first = min(r.ts for r in sim.recs)
    last = max(r.ts for r in sim.recs)
    spans = {p: (max(0, first - 50 * MS), last + 800 * MS) for p in sim.net.roles}
    sc, rng = sim.sc, sim.rng
    if sc.late_start:
        lo, hi = spans[sc.late_start]
        spans[sc.late_start] = (rng.randrange(150 * MS, 350 * MS), hi)
    if sc.early_stop:
        tail0 = max(c.start for c in sim.conns if c.zone == "edge")
        lo, _ = spans[sc.early_stop]
        edge_starts = sorted(c.start for c in sim.conns if c.zone == "edge" and c.start > 1000 * MS)
        spans[sc.early_stop] = (lo, edge_starts[0] + rng.randrange(0, tail0 - edge_starts[0] + 1))
    return spans


def write_scenario(sc: Scenario, folder: Path) -> Truth:
    """Simulate sc, write its capture set into folder and return the ground truth."""
    sim = simulate(sc)
    spans = capture_spans(sim)
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[Rec] = []
    lines = ["[capture]", 'tool = "tests/scenarios"', f'director = "{sc.director}"']
    if sc.director == "ipvs":
        lines.append('scheduler = "rr"')
    started = max(lo for lo, _ in spans.values())
    stopped = min(hi for _, hi in spans.values())
    lines += [f'started = "{_iso(T0_NS + started)}"', f'stopped = "{_iso(T0_NS + stopped)}"']
    names = manifest_names(sc, sim)
    if names:
        listed = ", ".join(f'{{name = "{name}", rip = "{rip}"}}' for rip, name in names.items())
        lines.append(f"real_servers = [{listed}]")
    lines.append("")
    offsets = {"br_lvs": sc.clock_offset_us * US}
    for point, role in sim.net.roles.items():
        lo, hi = spans[point]
        mine = [r for r in sim.recs if sim.net.point(r.seg) == point and lo <= r.ts <= hi]
        mine.sort(key=lambda r: r.ts)
        kept += mine
        shift = T0_NS + offsets.get(point, 0)
        fr.write_pcap(folder / f"{point}.pcap", [(r.ts + shift, r.frame) for r in mine])
        lines += ["[[points]]", f'name = "{point}"', f'file = "{point}.pcap"', f'role = "{role}"',
                  f'interface = "{point}"', f"received = {len(mine)}",
                  f"dropped = {17 if point == sc.kernel_drops else 0}", ""]
    (folder / "manifest.toml").write_text("\n".join(lines))
    truth = truth_of(sim, kept)
    if sc.kernel_drops:
        # tcpdump says the kernel dropped frames at that point: the capture is incomplete
        truth.evidence["DR013"] = frozenset({sc.kernel_drops})
        truth.failed |= {"DR013"}
        truth.verdict = "fail"
    known = {s.rip for s in truth.real_servers}
    truth.names = {rip: name for rip, name in names.items() if rip in known}
    if sc.director == "nft":
        # the nft director picks a server by a flow hash (the manifest says so): no balance
        # check applies, so DR011 never warns
        truth.quiet_warnings = frozenset({"DR011"})
    return truth


def manifest_names(sc: Scenario, sim: Sim) -> dict[str, str]:
    """RIP -> name, in reverse order of the RIPs (the manifest's names must win over any order
    the analysis would pick); the same for every capture of one deployment."""
    if not sc.manifest_names:
        return {}
    n = sc.real_servers
    return {sim.net.rs[k].ip_lvs: f"web{n - k}" for k in range(n)}
