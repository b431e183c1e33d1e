"""What a scenario is (the drawn description) and what it must give (the ground truth).

A Scenario is small and printable: hypothesis shrinks it, a regression test writes it out as a
literal. The deployment's addresses follow from it (Net); the details of the traffic (times,
ISNs, sizes, ports) come from its `seed`, so one Scenario always gives the same capture set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TWO, SHARED = "two-segment", "shared-segment"

# The fault catalogue. Each fault sits on one real server (its index in the deployment) and
# names the DR rules it makes fail when its evidence is captured (the generator derives the
# exact set from what it emitted: a fault whose connections never happened fails nothing).
FAULT_RULES: dict[str, tuple[str, ...]] = {
    # arp_ignore=0: the server answers ARP/ND for the VIP; clients that keep its answer talk
    # straight to it (DR012), the others still go through the director
    "rs-answers-arp": ("DR005", "DR012"),
    # arp_announce=0: its own ARP requests (resolving a client) carry the VIP as sender; clients
    # that take that as news send their later connections straight to it
    "rs-arp-announce": ("DR006", "DR012"),
    # forwarded SYNs are dropped (no VIP on lo / strict rp_filter) or refused (RST from the VIP,
    # the service listens on another port): no SYN-ACK from the VIP
    "rs-no-vip": ("DR009",),
    # VIP on lo with /24: the client subnet is local to the server, its SYN-ACKs never leave
    "rs-vip-wide-mask": ("DR009",),
    "rs-rp-filter": ("DR009",),
    "port-mismatch": ("DR009",),
    # the server's default route is the director: its replies go to the director's MAC (on the
    # real-server segment, or on the shared LAN) and die there as martians. A SYN-ACK from the
    # VIP exists, on the wrong path, so DR009 holds (as captures/fault-reply-via-director says)
    "reply-via-director": ("DR003",),
    # the server answers from its RIP (SNAT / service bound to the RIP): DR004, and no SYN-ACK
    # from the VIP ever comes (DR009, by that rule's own definition)
    "reply-from-rip": ("DR004", "DR009"),
    # the director forwards the copies for this server still addressed to its own VIP-segment
    # MAC (two-segment only): DR001 (issue 12); nobody answers: DR009
    "director-not-rewriting": ("DR001", "DR009"),
    # the director's neighbour entry for this server's RIP is stale: copies go to a MAC nobody
    # owns (DR001, not a new real server: issue 12); nobody answers: DR009
    "stale-neighbour": ("DR001", "DR009"),
    # conntrack-invalid drops: the client's ACK and request of connections to this server are
    # not forwarded (as captures/fault-director-drops-invalid): DR007; the SYN-ACK exists
    "director-drops": ("DR007",),
    # the server has no VIP but forwards, routing the VIP back to the director: copies with a
    # falling TTL (DR010), never answered (DR009)
    "forwarding-loop": ("DR009", "DR010"),
    # after the handshake the director sends the rest of the connection to the next server,
    # which resets it: DR008
    "flow-split": ("DR008",),
    # the director changes the copies of data packets to this server: payload stripped to 0
    # bytes or shortened by 10, a byte of it rewritten (same length), or another IP ID
    # (issue 18): DR002
    "copy-mangled": ("DR002",),
    # a client (index `rs` modulo the clients) holds a permanent ARP/ND entry for the VIP with
    # the MAC of a former director nobody owns: its frames never reach the director (DR007, as
    # captures/fault-stale-arp); that MAC is no director
    "client-stale-arp": ("DR007",),
}
# Faults that sit on a client, not on a real server.
CLIENT_FAULTS = ("client-stale-arp",)
DEAD_MAC = "02:00:de:ad:be:ef"

# Faults that decide what clients do with an ARP/ND claim of the VIP by a real server.
ARP_FAULTS = ("rs-answers-arp", "rs-arp-announce")
# Faults that leave a server without any forwarded traffic to it (no DR signature of its own).
UNREACHED_FAULTS = ("director-not-rewriting", "stale-neighbour")


@dataclass(frozen=True)
class Fault:
    kind: str
    rs: int = 0                  # index of the real server it sits on
    # ARP faults: which clients keep the server's claim ("none", "some", "all"; "all" means
    # no client->VIP traffic reaches the director). copy-mangled: "strip", "short", "rewrite",
    # "ipid".
    variant: str = ""


@dataclass(frozen=True)
class Scenario:
    seed: int
    shape: str = TWO
    family: int = 4
    director: str = "ipvs"            # ipvs (TTL - 1, round robin) | nft (TTL kept, flow hash)
    real_servers: int = 2
    vips: int = 1
    ports_per_vip: int = 1
    clients: int = 2
    rounds: int = 1                    # connections per service: rounds * real_servers
    port_reuse: int = 0                # connections that reuse a closed connection's 4-tuple
    syn_retransmits: int = 0           # connections whose first SYN the server drops
    synack_retransmits: int = 0        # connections whose first ACK the server misses
    gro: int = 0                       # requests coalesced by GRO: one copy for MSS segments
    tso: int = 0                       # requests sent as one TSO frame: MSS-sized copies
    clock_offset_us: int = 0           # br_lvs's clock against br_e's
    late_start: str = ""               # point that starts capturing late (two-segment)
    early_stop: str = ""               # point that stops capturing early (two-segment)
    background: bool = False           # other hosts' TCP/UDP/ARP on the segments
    manifest_names: bool = False       # manifest.toml names the real servers by RIP (as the lab)
    seq_wrap: int = 0                  # connections whose sequence numbers wrap past 2**32
    kernel_drops: str = ""             # point whose tcpdump reports kernel drops (DR013 fails)
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True)
class RealServerTruth:
    rip: str | None                    # None: the traffic never shows it
    macs: frozenset[tuple[str, str]]   # (segment role, MAC)


@dataclass
class Truth:
    verdict: str
    failed: frozenset[str]                         # error-severity rules that fail
    vips: frozenset[str]                           # "ip:port" / "[ip6]:port"
    director_macs: dict[str, frozenset[str]]       # segment role -> MACs
    real_servers: frozenset[RealServerTruth]
    # rule -> the connections carrying its evidence, (client ip, client port, "vip:port", ISN);
    # for DR005/DR006 the claimer MACs, for DR013 the capture points
    evidence: dict[str, frozenset] = field(default_factory=dict)
    # every connection whose SYN was captured on its way to the director (or straight to a
    # real server): (client ip, client port, "vip:port", ISN)
    connections: frozenset = frozenset()
    # (client ip, client port, "vip:port") of connections captured only in part
    partial: frozenset = frozenset()
    names: dict[str, str] = field(default_factory=dict)   # RIP -> name the manifest gives it
    # warning-severity rules that must not fail (DR011 under a flow-hash scheduler)
    quiet_warnings: frozenset[str] = frozenset()

    def summary(self) -> str:
        return (f"verdict {self.verdict}, failed {sorted(self.failed)}, vips {sorted(self.vips)}, "
                f"{len(self.real_servers)} real servers")
