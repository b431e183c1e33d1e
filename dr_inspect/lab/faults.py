"""Fault catalogue: each fault is a real misconfiguration the lab applies, not a faked symptom.

`fault_effects` turns a list of fault names into the concrete changes (pure data); `build`
applies them. Real-server faults act on one real server, rs1 unless a fault names another
(`rs-answers-arp@rs2`), so that with two or more real servers the healthy ones show the contrast.
Faults that would hide each other's symptom on that server are refused (MASKS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dr_inspect.errors import LabError


@dataclass(frozen=True)
class Fault:
    name: str
    misconfiguration: str        # what the lab sets up
    symptom: str                 # what a user sees
    rules: tuple[str, ...]       # DR rule ids it makes fail (rules/dr.toml)
    backends: tuple[str, ...] = ("ipvs", "nft")


FAULTS: dict[str, Fault] = {f.name: f for f in [
    Fault("rs-answers-arp",
          "rs1 has arp_ignore=0 (all and eth14), so it answers ARP requests for the VIP it holds on lo",
          "two MACs answer 'who-has VIP' on br_e; clients that keep rs1's answer bypass the director "
          "and all their connections land on rs1",
          ("DR005",)),
    Fault("rs-arp-announce",
          "rs1 has arp_announce=0 (all and eth14); its neighbour cache is emptied before traffic, so "
          "replying to a client makes it ARP with the VIP as sender address",
          "ARP requests 'tell VIP' from rs1's MAC on br_e: clients and switches may re-learn the VIP "
          "at rs1 and bypass the director",
          ("DR006",)),
    Fault("rs-no-vip",
          "rs1 has no VIP on lo",
          "connections scheduled to rs1 hang: rs1 drops frames for an address it does not own "
          "(SYN retransmits, no SYN-ACK)",
          ("DR009",)),
    Fault("rs-vip-wide-mask",
          "rs1 has the VIP on lo with a /24 mask instead of /32",
          "the whole VIP subnet becomes local to rs1: its SYN-ACKs to clients are delivered to itself "
          "and never leave, so connections to rs1 hang",
          ("DR009",)),
    Fault("reply-via-director",
          "rs1 routes clients via the director's DIP (ip route CLIENT/32 via DIP dev eth12), as when "
          "the director is made the real servers' gateway; the director forwards (ip_forward=1)",
          "connections to rs1 hang: its SYN-ACKs go to the director's eth8 MAC on br_lvs, and the "
          "director drops them as martians (their source, the VIP, is its own address)",
          ("DR003",)),
    Fault("rs-rp-filter",
          "rs1 has strict reverse-path filtering (rp_filter=1 on all and eth12)",
          "connections scheduled to rs1 hang: forwarded SYNs from clients arrive on eth12 while the "
          "route back to the client is via eth14, so rs1 drops them silently",
          ("DR009",)),
    Fault("port-mismatch",
          "rs1's HTTP server listens on PORT+1 instead of the service port",
          "connections scheduled to rs1 are refused: rs1 answers the SYN with a RST from the VIP",
          ("DR009",)),
    Fault("stale-arp",
          "the client holds a permanent ARP entry for the VIP with the MAC of a former director "
          "(02:00:de:ad:be:ef) that is no longer on the segment",
          "every connection to the VIP times out: SYNs on br_e are addressed to a MAC no host owns, "
          "the director never sees them and nothing is forwarded",
          ("DR007",)),
    Fault("director-drops-invalid",
          "the director's firewall drops conntrack state invalid (nft input hook, priority 0, before "
          "IPVS) with the hardening nf_conntrack_tcp_loose=0; with DR the director sees only the "
          "client half of each connection and IPVS takes the SYN before its conntrack entry is "
          "confirmed, so the client's ACK after the SYN-ACK is 'invalid' and dropped",
          "SYNs are forwarded and the real server answers SYN-ACK, but the client's ACK and request "
          "never leave the director: the client thinks it is connected, the real server keeps "
          "resending SYN-ACK, requests time out",
          ("DR007",), backends=("ipvs",)),
    Fault("forwarding-loop",
          "rs1 has no VIP, ip_forward=1 and a route VIP via the director's DIP; the director "
          "schedules VIP packets arriving on eth8 too (IPVS does that by nature; the nft backend "
          "adds the same dispatch on eth8)",
          "packets to rs1 bounce between rs1 and the director until the TTL runs out (rs1 "
          "decrements it each pass, IPVS too); rs1 finally sends ICMP time exceeded to the client",
          ("DR009", "DR010")),
]}

STALE_DIRECTOR_MAC = "02:00:de:ad:be:ef"
FAULTY_RS = "rs1"
# faults set up on the faulty real server (the others act on the client or the director)
RS_FAULTS = frozenset({"rs-answers-arp", "rs-arp-announce", "rs-no-vip", "rs-vip-wide-mask",
                       "reply-via-director", "rs-rp-filter", "port-mismatch", "forwarding-loop"})
# fault -> the faults whose symptom it hides (on the same real server), and why
MASKS: dict[str, tuple[frozenset[str], str]] = {
    "stale-arp": (frozenset(FAULTS) - {"stale-arp"},
                  "the client sends everything to a MAC nobody owns, so no other fault is reached"),
    "rs-no-vip": (frozenset({"rs-vip-wide-mask", "port-mismatch", "reply-via-director",
                             "rs-arp-announce", "rs-answers-arp", "forwarding-loop"}),
                  "without the VIP the server drops every forwarded packet and never claims the VIP"),
    "forwarding-loop": (frozenset({"rs-vip-wide-mask", "port-mismatch", "reply-via-director",
                                   "rs-arp-announce", "rs-answers-arp"}),
                        "the loop removes the server's VIP, so it never answers"),
    "rs-rp-filter": (frozenset({"rs-vip-wide-mask", "port-mismatch", "reply-via-director",
                                "rs-arp-announce"}),
                     "the server drops forwarded SYNs, so it never replies"),
    "rs-vip-wide-mask": (frozenset({"reply-via-director", "rs-arp-announce", "port-mismatch"}),
                         "the server's replies are delivered to itself and never leave"),
    "director-drops-invalid": (frozenset({"port-mismatch"}),
                               "requests never pass the director, and a refused SYN looks alike"),
}


def split_fault(text: str) -> tuple[str, str | None]:
    """"rs-answers-arp@rs2" -> ("rs-answers-arp", "rs2"); no @: (name, None)."""
    name, sep, target = text.partition("@")
    return name, (target if sep else None)


def fault_names(faults: tuple[str, ...] | list[str]) -> list[str]:
    return [split_fault(f)[0] for f in faults]


def fault_target(faults: tuple[str, ...] | list[str]) -> str:
    """The real server the faults act on: the one they name, else rs1."""
    targets = {t for _, t in map(split_fault, faults) if t}
    return next(iter(targets)) if len(targets) == 1 else FAULTY_RS


@dataclass
class FaultEffects:
    rs_sysctl: dict[str, int] = field(default_factory=dict)     # extra sysctls on rs1
    rs_vip_prefix: int | None = 32                              # None: no VIP on rs1's lo
    rs_routes: list[str] = field(default_factory=list)          # `ip route` batch lines on rs1
    rs_port_offset: int = 0
    rs_flush_neigh: bool = False                                # before each traffic run
    client_static_vip_mac: str | None = None
    director_ip_forward: bool = False
    director_drop_invalid: bool = False
    director_dispatch_on_dip: bool = False                      # nft backend: also hook eth8
    rs: str = FAULTY_RS                                         # the real server they act on


def check_faults(faults: tuple[str, ...] | list[str], director: str,
                 real_servers: int | None = None) -> None:
    """LabError for an unknown fault, one the director backend cannot do, a target that is not a
    real server of the lab (NAME@rsN), faults on different servers, or faults that mask each other."""
    targets = set()
    for text in faults:
        name, target = split_fault(text)
        fault = FAULTS.get(name)
        if fault is None:
            raise LabError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        if director not in fault.backends:
            raise LabError(f"fault {name!r} needs the {' or '.join(fault.backends)} director backend, "
                           f"not {director!r}: {fault.misconfiguration}")
        if target is None:
            continue
        if name not in RS_FAULTS:
            raise LabError(f"fault {text!r}: {name} acts on the client or the director, not on a "
                           "real server: give it without @")
        number = target[2:] if target.startswith("rs") else ""
        if not number.isdigit() or int(number) < 1 or (real_servers is not None
                                                       and int(number) > real_servers):
            known = f"rs1..rs{real_servers}" if real_servers else "rs1, rs2, ..."
            raise LabError(f"fault {text!r}: {target!r} is not a real server of the lab ({known})")
        targets.add(target)
    if len(targets) > 1:
        raise LabError(f"faults name several real servers ({', '.join(sorted(targets))}): the "
                       "lab's real-server faults act on one of them")
    names = set(fault_names(faults))
    for name in sorted(names):
        hidden, why = MASKS.get(name, (frozenset(), ""))
        masked = sorted(hidden & names)
        if masked:
            raise LabError(f"faults {name} and {', '.join(masked)} mask each other: {why}; "
                           "apply them in separate runs")


def fault_effects(faults: tuple[str, ...] | list[str], *, client_ip: str, vip: str,
                  dip: str) -> FaultEffects:
    """The concrete changes for these faults (several may combine), on fx.rs."""
    fx = FaultEffects(rs=fault_target(faults))
    for name in fault_names(faults):
        if name == "rs-answers-arp":
            fx.rs_sysctl.update({"net.ipv4.conf.all.arp_ignore": 0, "net.ipv4.conf.eth14.arp_ignore": 0})
        elif name == "rs-arp-announce":
            fx.rs_sysctl.update({"net.ipv4.conf.all.arp_announce": 0, "net.ipv4.conf.eth14.arp_announce": 0})
            fx.rs_flush_neigh = True
        elif name == "rs-no-vip":
            fx.rs_vip_prefix = None
        elif name == "rs-vip-wide-mask":
            if fx.rs_vip_prefix is not None:
                fx.rs_vip_prefix = 24
        elif name == "reply-via-director":
            fx.rs_routes.append(f"route replace {client_ip}/32 via {dip} dev eth12")
            fx.director_ip_forward = True
        elif name == "rs-rp-filter":
            fx.rs_sysctl.update({"net.ipv4.conf.all.rp_filter": 1, "net.ipv4.conf.eth12.rp_filter": 1})
        elif name == "port-mismatch":
            fx.rs_port_offset = 1
        elif name == "stale-arp":
            fx.client_static_vip_mac = STALE_DIRECTOR_MAC
        elif name == "director-drops-invalid":
            fx.director_drop_invalid = True
        elif name == "forwarding-loop":
            fx.rs_vip_prefix = None
            fx.rs_sysctl.update({"net.ipv4.ip_forward": 1})
            fx.rs_routes.append(f"route replace {vip}/32 via {dip} dev eth12")
            fx.director_dispatch_on_dip = True
        else:  # check_faults ran first
            raise LabError(f"unknown fault {name!r}")
    return fx


def describe_faults(faults: tuple[str, ...] | list[str]) -> str:
    """The faults' misconfiguration and symptom; text about rs1 names the faults' real server."""
    target = fault_target(faults)
    return " ".join(f"{n}: {FAULTS[n].misconfiguration}; symptom: {FAULTS[n].symptom}."
                    .replace(FAULTY_RS, target) for n in fault_names(faults))
