"""Scapy builders of small LVS-DR captures for the topology, correlator, rule and verify tests.

A DrCapture holds the frames each capture point sees: the seed's two segments (`br_e`, the
client/VIP segment, and `br_lvs`, the director/real-server segment) or one shared LAN (`lan`).
`connection()` adds one TCP connection through the director (SYN, SYN-ACK, ACK, request,
response) with optional faults; ARP/ND helpers add VIP claims. `write()` makes a capture-set
folder (pcap per point + manifest.toml) that dr_inspect decodes like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

CLIENT_MAC = "02:00:00:00:00:02"
CLIENT2_MAC = "02:00:00:00:00:03"
DIR_E_MAC = "02:00:00:00:00:01"      # director, VIP segment
DIR_LVS_MAC = "02:00:00:00:01:01"    # director, real-server segment
DIR2_E_MAC = "02:00:00:00:00:04"     # a backup director (failover tests)
DIR2_LVS_MAC = "02:00:00:00:01:04"
CLIENT_IP, VIP, PORT = "192.168.7.2", "192.168.7.33", 8000
CLIENT_IP6, VIP6 = "fd00:7::2", "fd00:7::33"
BROADCAST = "ff:ff:ff:ff:ff:ff"
T0 = 1_700_000_000.0


@dataclass
class RealServerAddr:
    name: str
    mac_e: str       # on the VIP segment (br_e): replies leave from it
    mac_lvs: str     # on the real-server segment (br_lvs): forwarded copies arrive at it
    rip: str


RS = [RealServerAddr("rs1", "02:00:00:00:00:11", "02:00:00:00:01:11", "10.0.0.11"),
      RealServerAddr("rs2", "02:00:00:00:00:12", "02:00:00:00:01:12", "10.0.0.12")]


class DrCapture:
    def __init__(self, shape: str = "two-segment", v6: bool = False, director_ttl_drop: int = 1):
        self.shape = shape
        self.v6 = v6
        self.ttl_drop = director_ttl_drop
        self.vip = VIP6 if v6 else VIP
        self.client_ip = CLIENT_IP6 if v6 else CLIENT_IP
        if shape == "shared-segment":
            self.vip_point = self.rs_point = "lan"
            self.roles = {"lan": "both"}
        else:
            self.vip_point, self.rs_point = "br_e", "br_lvs"
            self.roles = {"br_e": "vip-segment", "br_lvs": "rs-segment"}
        self.frames: dict[str, list] = {p: [] for p in self.roles}
        self.t = T0
        self._ip_id = 100

    # -- addresses ----------------------------------------------------------------------------
    @property
    def dir_in(self) -> str:
        return DIR_E_MAC

    @property
    def dir_out(self) -> str:
        return DIR_E_MAC if self.shape == "shared-segment" else DIR_LVS_MAC

    def rs_in(self, rs: int) -> str:
        """MAC a forwarded copy goes to (one MAC per server on the shared LAN)."""
        return RS[rs].mac_e if self.shape == "shared-segment" else RS[rs].mac_lvs

    # -- frames -------------------------------------------------------------------------------
    def emit(self, point: str, pkt, t: float) -> None:
        pkt.time = t
        self.frames[point].append(pkt)

    def _ip(self, src: str, dst: str, ttl: int, ip_id: int | None):
        if self.v6:
            return IPv6(src=src, dst=dst, hlim=ttl)
        return IP(src=src, dst=dst, ttl=ttl, id=ip_id if ip_id is not None else 0, flags="DF")

    def tcp_frame(self, src_mac, dst_mac, src, dst, sport, dport, flags, seq, ack, ttl=64,
                  ip_id=None, payload=b""):
        pkt = Ether(src=src_mac, dst=dst_mac) / self._ip(src, dst, ttl, ip_id) / TCP(
            sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240)
        return pkt / Raw(payload) if payload else pkt

    def connection(self, cport: int, rs: int = 0, *, gap: float = 0.01, forward: bool = True,
                   drop: tuple[str, ...] = (), fwd_dst_mac: str | None = None,
                   copy_changes: dict | None = None, ttl_drop: int | None = None,
                   answer: str = "synack", reply_via_director: bool = False,
                   reply_src: str | None = None, client_to_rs: bool = False,
                   data_rs: int | None = None, loop: int = 0, gro: bool = False,
                   tso: bool = False, tso_pieces: tuple[int, ...] = (0, 1, 2),
                   syn_retransmit: bool = False, client_mac: str = CLIENT_MAC,
                   director: tuple[str, str] | None = None, port: int = PORT,
                   vip: str | None = None, isn: int | None = None) -> None:
        """One connection client:cport -> VIP:PORT served by RS[rs].

        drop: client packets ('syn', 'ack', 'req') the director does not forward.
        answer: 'synack' | 'rst' | 'none' (the real server's answer to the SYN).
        copy_changes: fields changed in the forwarded copies ({'ip_id': 7} / {'dst_port': 81};
        {'payload_cut': 10}: the copies carry 10 bytes less payload).
        loop: extra copies of each forwarded packet, TTL falling by 2 each time.
        gro: the request arrives as 3 segments and is forwarded as one coalesced segment.
        tso: the request arrives as one segment and is forwarded as 3 pieces (tso_pieces: which
        of the 3 pieces appear; all by default).
        director: (VIP-segment MAC, real-server-segment MAC) of another director (failover).
        isn: the client's initial sequence number (default: derived from cport; a reused
        5-tuple, a new connection on the same client port, needs another one).
        """
        dir_in, dir_out = director or (self.dir_in, self.dir_out)
        vip = vip or self.vip
        t = self.t
        self.t += gap
        sisn = 50000 + cport * 3 + (0 if isn is None else isn % 9973 * 101)
        isn = 1000 + cport * 7 if isn is None else isn
        ttl_drop = self.ttl_drop if ttl_drop is None else ttl_drop
        changes = copy_changes or {}
        dst_mac_in = RS[rs].mac_e if client_to_rs else dir_in
        req = b"GET / HTTP/1.0\r\n\r\n" + b"x" * 22

        def client_sends(name, flags, seq, ack, payload, when, server):
            self._ip_id += 1
            ip_id = self._ip_id
            self.emit(self.vip_point, self.tcp_frame(client_mac, dst_mac_in, self.client_ip, vip,
                                                     cport, port, flags, seq, ack, 64, ip_id,
                                                     payload), when)
            if client_to_rs or not forward or name in drop:
                return
            fields = dict(src=self.client_ip, dst=vip, sport=cport, dport=port, flags=flags,
                          seq=seq, ack=ack, ttl=64 - ttl_drop, ip_id=ip_id, payload=payload)
            if payload and "payload_cut" in changes:
                fields["payload"] = payload[:max(len(payload) - changes["payload_cut"], 0)]
            fields.update({"dst": changes.get("dst_ip", vip),
                           "dport": changes.get("dst_port", port),
                           "ip_id": changes.get("ip_id", ip_id),
                           "ttl": 64 - changes.get("ttl_drop", ttl_drop)})
            dst_mac = fwd_dst_mac or self.rs_in(server)
            self.emit(self.rs_point, self.tcp_frame(dir_out, dst_mac, **fields), when + 30e-6)
            for i in range(loop):
                fields["ttl"] -= 2
                self.emit(self.rs_point, self.tcp_frame(dir_out, dst_mac, **fields),
                          when + 30e-6 * (i + 2))

        def server_sends(flags, seq, ack, payload, when, server):
            src_ip = reply_src or vip
            if reply_via_director:
                self.emit(self.rs_point, self.tcp_frame(self.rs_in(server), dir_out, src_ip,
                                                        self.client_ip, port, cport, flags, seq,
                                                        ack, 64, 900, payload), when)
                self.emit(self.vip_point, self.tcp_frame(dir_in, client_mac, src_ip,
                                                         self.client_ip, port, cport, flags, seq,
                                                         ack, 63, 900, payload), when + 30e-6)
            else:
                self.emit(self.vip_point, self.tcp_frame(RS[server].mac_e, client_mac, src_ip,
                                                         self.client_ip, port, cport, flags, seq,
                                                         ack, 64, 900, payload), when)

        client_sends("syn", "S", isn, 0, b"", t, rs)
        if syn_retransmit:
            client_sends("syn", "S", isn, 0, b"", t + 1.0, rs)
        if answer == "rst":
            server_sends("RA", 0, isn + 1, b"", t + 200e-6, rs)
            return
        if answer == "none" or client_to_rs and answer != "synack":
            return
        server_sends("SA", sisn, isn + 1, b"", t + 200e-6, rs)
        later = rs if data_rs is None else data_rs
        client_sends("ack", "A", isn + 1, sisn + 1, b"", t + 400e-6, later)
        if gro:
            self._gro_request(cport, isn, sisn, req, t + 500e-6, later, ttl_drop)
        elif tso:
            self._tso_request(cport, isn, sisn, req, t + 500e-6, later, ttl_drop, tso_pieces)
        else:
            client_sends("req", "PA", isn + 1, sisn + 1, req, t + 500e-6, later)
        server_sends("PA", sisn + 1, isn + 1 + len(req), b"y" * 100, t + 900e-6, later)

    def _gro_request(self, cport, isn, sisn, req, when, server, ttl_drop):
        """The request as 14+14+12-byte segments at the director, one 40-byte coalesced copy after it."""
        for i in range(3):
            self._ip_id += 1
            part = req[i * 14:(i + 1) * 14]
            self.emit(self.vip_point, self.tcp_frame(CLIENT_MAC, self.dir_in, self.client_ip,
                                                     self.vip, cport, PORT, "PA",
                                                     isn + 1 + i * 14, sisn + 1, 64, self._ip_id,
                                                     part), when + i * 1e-6)
        self.emit(self.rs_point, self.tcp_frame(self.dir_out, self.rs_in(server), self.client_ip,
                                                self.vip, cport, PORT, "PA", isn + 1, sisn + 1,
                                                64 - ttl_drop, self._ip_id - 2, req), when + 40e-6)

    def _tso_request(self, cport, isn, sisn, req, when, server, ttl_drop, pieces):
        """The request as one 40-byte segment at the director, 14+14+12-byte pieces after it."""
        self._ip_id += 1
        self.emit(self.vip_point, self.tcp_frame(CLIENT_MAC, self.dir_in, self.client_ip,
                                                 self.vip, cport, PORT, "PA", isn + 1, sisn + 1,
                                                 64, self._ip_id, req), when)
        for i in pieces:
            self.emit(self.rs_point, self.tcp_frame(self.dir_out, self.rs_in(server),
                                                    self.client_ip, self.vip, cport, PORT, "PA",
                                                    isn + 1 + i * 14, sisn + 1, 64 - ttl_drop,
                                                    self._ip_id + i, req[i * 14:(i + 1) * 14]),
                      when + (40 + i) * 1e-6)

    # -- ARP / ND -----------------------------------------------------------------------------
    def arp_reply(self, mac: str, ip: str = VIP, point: str | None = None) -> None:
        self.t += 0.001
        pkt = Ether(src=mac, dst=CLIENT_MAC) / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=CLIENT_MAC,
                                                   pdst=CLIENT_IP)
        self.emit(point or self.vip_point, pkt, self.t)

    def gratuitous_arp(self, mac: str, ip: str = VIP) -> None:
        self.t += 0.001
        pkt = Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00",
                                                  pdst=ip)
        self.emit(self.vip_point, pkt, self.t)

    def arp_request(self, mac: str, sender_ip: str, target_ip: str, point: str | None = None) -> None:
        self.t += 0.001
        pkt = Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=sender_ip,
                                                  hwdst="00:00:00:00:00:00", pdst=target_ip)
        self.emit(point or self.vip_point, pkt, self.t)

    def neighbour_advert(self, mac: str, target: str = VIP6) -> None:
        self.t += 0.001
        pkt = (Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1", hlim=255)
               / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac))
        self.emit(self.vip_point, pkt, self.t)

    def neighbour_solicit(self, mac: str, src: str = VIP6, target: str = CLIENT_IP6) -> None:
        self.t += 0.001
        pkt = (Ether(src=mac, dst="33:33:ff:00:00:02") / IPv6(src=src, dst="ff02::1:ff00:2", hlim=255)
               / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=mac))
        self.emit(self.vip_point, pkt, self.t)

    def rs_announces_rip(self) -> None:
        """Each real server answers the director's ARP for its RIP on the real-server segment."""
        for rs in RS:
            mac = rs.mac_e if self.shape == "shared-segment" else rs.mac_lvs
            self.arp_reply(mac, rs.rip, point=self.rs_point)

    def shift(self, point: str, seconds: float) -> None:
        """Move one point's clock (clock offset / no-overlap tests)."""
        for pkt in self.frames[point]:
            pkt.time = float(pkt.time) + seconds

    # -- output -------------------------------------------------------------------------------
    def healthy(self, connections: int = 4, start_port: int = 40000, arp: bool = True) -> "DrCapture":
        """Round-robin connections over both real servers, plus the director's ARP reply and
        the real servers' own ARP traffic (arp=False: TCP only)."""
        if arp:
            self.arp_reply(self.dir_in, self.vip if not self.v6 else VIP)
            if self.v6:
                self.neighbour_advert(self.dir_in)
            self.rs_announces_rip()
        for rs in RS if arp else []:  # arp_announce=2: a real server asks for the client from its own address
            self.arp_request(rs.mac_e, rs.rip if not self.v6 else rs.rip, self.client_ip
                             if not self.v6 else CLIENT_IP)
        for i in range(connections):
            self.connection(start_port + i, rs=i % 2)
        return self

    def write(self, folder: Path, *, manifest: bool = True, roles: bool = True,
              extra_capture: str = "", rotated: int = 1) -> Path:
        """rotated > 1: each point's frames split into that many files, as tcpdump -C rotation
        names them (br_e.pcap0, br_e.pcap1, ...), listed in the manifest's `files`."""
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["[capture]", 'tool = "tests/rulecaps.py"', extra_capture, ""]
        for point, frames in self.frames.items():
            frames = sorted(frames, key=lambda p: float(p.time))
            if rotated > 1:
                names = [f"{point}.pcap{i}" for i in range(rotated)]
                per = -(-len(frames) // rotated)
                for i, name in enumerate(names):
                    wrpcap(str(folder / name), frames[i * per:(i + 1) * per], linktype=1)
                files = ", ".join(f'"{n}"' for n in names)
                lines += ["[[points]]", f'name = "{point}"', f'file = "{names[0]}"',
                          f"files = [{files}]"]
            else:
                wrpcap(str(folder / f"{point}.pcap"), frames, linktype=1)
                lines += ["[[points]]", f'name = "{point}"', f'file = "{point}.pcap"']
            lines += [f'role = "{self.roles[point] if roles else "unknown"}"', "dropped = 0", ""]
        if manifest:
            (folder / "manifest.toml").write_text("\n".join(lines))
        return folder

    def write_pcapng(self, path: Path) -> Path:
        """Every point's frames in one pcapng, one interface per point (named after it)."""
        from scapy.utils import wrpcapng
        frames = []
        for point, pkts in self.frames.items():
            for p in pkts:
                p.sniffed_on = point
                frames.append(p)
        wrpcapng(str(path), sorted(frames, key=lambda p: float(p.time)))
        return path

    def decoded(self, folder: Path) -> dict:
        """Write, then decode every point with the real decoder: point -> packets DataFrame."""
        from dr_inspect.decode import decode_file
        self.write(folder)
        return {p: decode_file(folder / f"{p}.pcap", point=p).packets for p in self.frames}


def unrelated_capture() -> DrCapture:
    """Plain client/server TCP on one LAN plus DNS: no director, no VIP."""
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import UDP

    c = DrCapture()
    server_mac, server_ip = "02:00:00:00:00:50", "192.168.7.50"
    for i in range(3):
        t = T0 + i * 0.01
        cport = 50000 + i
        c.emit("br_e", c.tcp_frame(CLIENT_MAC, server_mac, CLIENT_IP, server_ip, cport, 80, "S",
                                   10 + i, 0, 64, 1 + i), t)
        c.emit("br_e", c.tcp_frame(server_mac, CLIENT_MAC, server_ip, CLIENT_IP, 80, cport, "SA",
                                   900, 11 + i, 64, 7), t + 1e-4)
        c.emit("br_e", c.tcp_frame(CLIENT_MAC, server_mac, CLIENT_IP, server_ip, cport, 80, "A",
                                   11 + i, 901, 64, 2 + i), t + 2e-4)
    dns = (Ether(src=CLIENT_MAC, dst=server_mac) / IP(src=CLIENT_IP, dst=server_ip)
           / UDP(sport=5353, dport=53) / DNS(qd=DNSQR(qname="example.org")))
    c.emit("br_e", dns, T0 + 0.5)
    c.emit("br_lvs", Ether(src=DIR_LVS_MAC, dst=BROADCAST) / ARP(op=1, hwsrc=DIR_LVS_MAC,
                                                                  psrc="10.0.0.1", pdst="10.0.0.11"),
           T0 + 0.2)
    return c
