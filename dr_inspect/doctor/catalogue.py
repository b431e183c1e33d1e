"""The host check catalogue: ids (a public contract, like DR ids), names, titles, and the DR
rules each check can explain when it fails (used by join.host_causes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckSpec:
    id: str
    name: str
    role: str                       # director | realserver | client | any
    title: str
    explains: tuple[str, ...]       # DR rule ids whose failure this check's failure explains


CATALOGUE: tuple[CheckSpec, ...] = (
    CheckSpec("HC000", "role-known", "any",
              "the host's role (director, real server or client) is given or can be guessed", ()),
    CheckSpec("HC001", "rs-vip-on-loopback", "realserver",
              "the VIP is on lo (or a NOARP dummy interface) with a /32 (IPv6 /128) mask",
              ("DR004", "DR005", "DR006", "DR009", "DR012")),
    CheckSpec("HC002", "rs-arp-ignore", "realserver",
              "effective arp_ignore = max(all, iface) >= 1 on every ARP interface",
              ("DR005", "DR012")),
    CheckSpec("HC003", "rs-arp-announce", "realserver",
              "effective arp_announce = max(all, iface) = 2 on every ARP interface",
              ("DR006",)),
    CheckSpec("HC004", "rs-rp-filter", "realserver",
              "effective rp_filter = max(all, iface) is not strict (1) where forwarded packets arrive "
              "while replies to clients leave by another interface",
              ("DR009",)),
    CheckSpec("HC005", "rs-reply-route", "realserver",
              "the route to the clients exists and does not go back through the director",
              ("DR003", "DR009")),
    CheckSpec("HC006", "rs-listener", "realserver",
              "a TCP service listens on VIP:PORT (or 0.0.0.0 / ::)",
              ("DR009",)),
    CheckSpec("HC007", "rs-no-forwarding", "realserver",
              "ip_forward is off, or the VIP is local (a real server forwarding VIP packets it "
              "does not own sends them on: a loop)",
              ("DR009", "DR010")),
    CheckSpec("HC010", "director-vip", "director",
              "the VIP is configured on an UP interface clients reach (not lo)",
              ("DR005", "DR007", "DR009")),
    CheckSpec("HC011", "director-virtual-service", "director",
              "an IPVS virtual service for VIP:PORT exists (or an nft netdev DR forwarding rule)",
              ("DR001", "DR007", "DR009")),
    CheckSpec("HC012", "director-route-mode", "director",
              "every real server of the service is in Route (-g, direct routing) mode",
              ("DR001", "DR002", "DR004", "DR009")),
    CheckSpec("HC013", "director-rs-on-segment", "director",
              "every real server RIP is on a segment the director is directly attached to, and answers ARP",
              ("DR001", "DR007", "DR009")),
    CheckSpec("HC014", "director-firewall-invalid", "director",
              "no firewall rule drops conntrack state invalid (DR directors see only half of each "
              "connection, so later packets look invalid)",
              ("DR007", "DR009")),
    CheckSpec("HC020", "client-vip-neighbour", "client",
              "the client's neighbour (ARP) entry for the VIP, if any, is a director MAC",
              ("DR007", "DR012")),
)

BY_ID: dict[str, CheckSpec] = {spec.id: spec for spec in CATALOGUE}
