"""The ground truth of a simulated scenario, read from the tags of the frames captured."""

from __future__ import annotations

from .model import RealServerTruth, Truth
from .net import endpoint
from .sim import Rec, Sim

RULES = tuple(f"DR{i:03d}" for i in range(1, 14))


def truth_of(sim: Sim, kept: list[Rec]) -> Truth:
    net, shared = sim.net, sim.net.shared
    tags = {t for r in kept for t in r.tags}
    evidence: dict[str, set] = {}
    for name, value in tags:
        if name in RULES:
            evidence.setdefault(name, set()).add(value)
    # a VIP shows as one when its SYNs are forwarded to another MAC, or (no forwarding at all)
    # when two hosts claim it and clients open connections to one of them
    claimed = "DR005" in evidence
    vips = {endpoint(*net.services[s]) for name, s in tags if name == "sig"}
    vips |= {endpoint(*net.services[s]) for name, s in tags if name == "direct" and claimed}
    dmacs: dict[str, set[str]] = {}
    e_role, lvs_role = ("both", "both") if shared else ("vip-segment", "rs-segment")
    if ("dir_in", None) in tags or ("dir_claim", None) in tags:
        dmacs.setdefault(e_role, set()).add(net.director.mac_e)
    if ("dir_lvs", None) in tags:
        dmacs.setdefault(lvs_role, set()).add(net.director.mac_lvs)
    # a MAC the director forwards to is a real server when it shows itself alive: it sends a
    # frame, or a connection forwarded to it is answered from the VIP (issue 12); forwards to
    # one that never does are DR001 failures (a stale neighbour entry, as far as anyone can tell)
    forwarded: dict[int, set] = {}
    for name, value in tags:
        if name == "rs_lvs":
            forwarded.setdefault(value[0], set()).add(value[1])
    answered = {value for name, value in tags if name == "answered"}
    replied: dict[int, set] = {}
    for name, value in tags:
        if name == "rs_e":
            replied.setdefault(value[0], set()).add(value[1])
    servers = set()
    for k, rs in enumerate(net.rs):
        rip = rs.ip_lvs if ("rip", k) in tags else None
        lvs = k in forwarded and (("alive", k) in tags or bool(forwarded[k] & answered))
        judged = forwarded.get(k, set()) & {sim.key(c) for c in sim.conns if c.zone == "main"}
        if judged and not lvs:
            # copies near a capture edge (their answer may be outside it) are not judged
            evidence.setdefault("DR001", set()).update(judged)
        if shared:
            if lvs or k in replied:
                servers.add(RealServerTruth(rip, frozenset({(e_role, rs.mac_e)})))
            continue
        # its two MACs are one server when one connection shows both: forwarded to the one,
        # answered from the other; else the traffic shows two (the VIP-side one without RIP)
        linked = lvs and k in replied and bool(forwarded[k] & replied[k])
        if lvs:
            macs = {(lvs_role, rs.mac_lvs)} | ({(e_role, rs.mac_e)} if linked else set())
            servers.add(RealServerTruth(rip, frozenset(macs)))
        if k in replied and not linked:
            servers.add(RealServerTruth(None, frozenset({(e_role, rs.mac_e)})))
    core = ("copy", None) in tags
    failed = frozenset(evidence)
    # connection identity: a connection whose SYN reached the director's side of a captured
    # point is known by its ISN; one captured only partly (capture edges) is left out of the
    # comparison by its 4-tuple (which frame the analysis then names it by is its own choice)
    syn_seen: set[tuple] = set()
    partial: set[tuple] = set()
    for r in kept:
        for name, value in r.tags:
            if name == "c2s":
                key, is_syn, _ = value
                ingress = ("ingress", None) in r.tags
                (syn_seen if is_syn and ingress else partial).add(key)
    return Truth(verdict="fail" if failed or not core else "pass", failed=failed,
                 vips=frozenset(vips), director_macs={k: frozenset(v) for k, v in dmacs.items()},
                 real_servers=frozenset(servers),
                 evidence={k: frozenset(v) for k, v in evidence.items()},
                 connections=frozenset(syn_seen),
                 partial=frozenset(key[:3] for key in partial - syn_seen))
