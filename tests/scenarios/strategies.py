"""Hypothesis strategies over Scenarios, driven by feature switches.

A switch names a feature of the traffic or a fault; `scenarios(switches)` draws only scenarios
whose features are all in `switches`. KNOWN_GAPS (in this package's gaps.py) lists the switches
the analysis still gets wrong; the main properties draw over ALL_SWITCHES - KNOWN_GAPS.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from .gaps import known_gap
from .model import ARP_FAULTS, CLIENT_FAULTS, FAULT_RULES, SHARED, TWO, Fault, Scenario

FEATURES = frozenset({
    "shared_segment", "ipv6", "nft", "multi_vip", "port_reuse", "syn_retransmit",
    "synack_retransmit", "gro", "tso", "clock_offset", "late_start", "early_stop", "background",
    "manifest_names", "kernel_drops", "seq_wrap",
})
# ARP faults whose clients keep the real server's claim are switches of their own: they
# make clients bypass the director, which the plain fault (claims only) does not
FOLLOW_SWITCHES = frozenset({"rs-answers-arp:follow", "rs-arp-announce:follow",
                             "rs-answers-arp:all"})
# copy-mangled's variants that change the payload (not only the IP ID)
VARIANT_SWITCHES = FOLLOW_SWITCHES | {"copy-mangled:payload"}
ALL_SWITCHES = FEATURES | frozenset(FAULT_RULES) | VARIANT_SWITCHES


def switches_of(sc: Scenario) -> frozenset[str]:
    """The switches a scenario uses (a pinned scenario is drawn only where all are allowed)."""
    out = set()
    flags = {"shared_segment": sc.shape == SHARED, "ipv6": sc.family == 6,
             "nft": sc.director == "nft", "multi_vip": sc.vips > 1 or sc.ports_per_vip > 1,
             "port_reuse": sc.port_reuse > 0, "syn_retransmit": sc.syn_retransmits > 0,
             "synack_retransmit": sc.synack_retransmits > 0, "gro": sc.gro > 0, "tso": sc.tso > 0,
             "clock_offset": sc.clock_offset_us != 0, "late_start": bool(sc.late_start),
             "early_stop": bool(sc.early_stop), "background": sc.background,
             "manifest_names": sc.manifest_names, "kernel_drops": bool(sc.kernel_drops),
             "seq_wrap": sc.seq_wrap > 0}
    out |= {name for name, on in flags.items() if on}
    for f in sc.faults:
        out.add(f.kind)
        if f.kind in ARP_FAULTS and f.variant in ("some", "all"):
            out.add(f"{f.kind}:follow")
        if f.variant == "all":
            out.add("rs-answers-arp:all")
        if f.kind == "copy-mangled" and f.variant in ("strip", "short", "rewrite"):
            out.add("copy-mangled:payload")
    return frozenset(out)


def _fault_kinds(allowed: frozenset[str], sc: Scenario) -> list[str]:
    """The fault kinds a scenario may get: allowed, and not completing a known-gap combination."""
    shape, base = sc.shape, switches_of(sc)
    kinds = [k for k in sorted(FAULT_RULES) if k in allowed and known_gap(base | {k}) is None]
    if shape == SHARED:
        # on one LAN the director's only MAC is both the one clients address and the copy's
        # source: a copy "not rewritten" to it is no distinct case from a copy to itself
        kinds = [k for k in kinds if k != "director-not-rewriting"]
    return kinds


@st.composite
def _faults(draw, allowed: frozenset[str], sc: Scenario, max_faults: int) -> tuple[Fault, ...]:
    kinds = _fault_kinds(allowed, sc)
    if not kinds or max_faults == 0:
        return ()
    # sampled_from leans towards the first element: start the list at a random place
    turn = draw(st.integers(0, 10**6)) % len(kinds)
    kinds = kinds[turn:] + kinds[:turn]
    n = draw(st.integers(1 if max_faults > 0 else 0, min(max_faults, 2, sc.real_servers)))
    servers = draw(st.permutations(range(sc.real_servers)))[:n]
    out: list[Fault] = []
    for k in servers:
        kind = draw(st.sampled_from(kinds))
        variant = ""
        if kind in CLIENT_FAULTS:
            # one client keeps a dead MAC for the VIP; another must still reach the director
            assume(sc.clients > 1 and not any(f.kind in CLIENT_FAULTS for f in out))
            out.append(Fault(kind, draw(st.integers(0, sc.clients - 1))))
            continue
        if kind in ARP_FAULTS:
            variants = ["none"]
            if f"{kind}:follow" in allowed and (kind == "rs-arp-announce" or sc.clients > 1):
                variants.append("some")
            # every client keeps the claim: no traffic reaches the director, only on one LAN
            # (in two-segment shape the real-server segment would carry nothing of DR at all)
            if "rs-answers-arp:all" in allowed and kind == "rs-answers-arp" and sc.shape == SHARED \
                    and n == 1:
                variants.append("all")
            variant = draw(st.sampled_from(variants[::-1]))    # the bias to the first: "all"
        elif kind == "copy-mangled":
            variants = (["strip", "short", "rewrite"] if "copy-mangled:payload" in allowed
                        else []) \
                + (["ipid"] if sc.family == 4 else [])
            assume(variants)
            variant = draw(st.sampled_from(variants))
        out.append(Fault(kind, k, variant))
    kinds_on = {f.kind for f in out}
    faulty = {f.rs for f in out if f.kind not in CLIENT_FAULTS}
    for f in out:
        # flow-split hands the connection to the next server, which must answer (with a RST)
        assume(not (f.kind == "flow-split"
                    and (sc.real_servers < 2 or (f.rs + 1) % sc.real_servers in faulty)))
        # a server the director never reaches shows no DR pattern: another one must
        assume(not (f.kind == "director-not-rewriting"
                    and (sc.real_servers < 2 or kinds_on == {"director-not-rewriting"} and len(out) > 1)))
    return tuple(out)


@st.composite
def scenarios(draw, allowed: frozenset[str] = ALL_SWITCHES, max_faults: int = 2) -> Scenario:
    """Random scenarios using only the switches in `allowed` (max_faults=0: healthy only)."""
    chosen: set[str] = set()

    def on(name: str) -> bool:
        # a switch that would complete a known-gap combination is not drawn
        if name not in allowed or known_gap(frozenset(chosen | {name})) is not None:
            return False
        if draw(st.booleans()):
            chosen.add(name)
            return True
        return False

    def count(name: str) -> int:
        return draw(st.integers(1, 2)) if on(name) else 0

    shape = SHARED if on("shared_segment") else TWO
    multi = "multi_vip" in allowed
    real_servers = draw(st.one_of(st.integers(1, 3), st.integers(1, 8)))
    base = dict(
        seed=draw(st.integers(0, 2**32 - 1)), shape=shape, family=6 if on("ipv6") else 4,
        director="nft" if on("nft") else "ipvs", real_servers=real_servers,
        vips=draw(st.integers(1, 3)) if multi else 1,
        ports_per_vip=draw(st.integers(1, 2)) if multi else 1,
        clients=draw(st.integers(1, 4)), rounds=draw(st.integers(1, 2)),
        port_reuse=count("port_reuse"), syn_retransmits=count("syn_retransmit"),
        synack_retransmits=count("synack_retransmit"), gro=count("gro"), tso=count("tso"),
        seq_wrap=count("seq_wrap"),
        background=on("background"), manifest_names=on("manifest_names"))
    if shape == TWO:
        if on("clock_offset"):
            base["clock_offset_us"] = draw(st.integers(10_000, 80_000)) * draw(st.sampled_from([-1, 1]))
        if on("late_start"):
            base["late_start"] = draw(st.sampled_from(["br_e", "br_lvs"]))
        if on("early_stop"):
            base["early_stop"] = draw(st.sampled_from(["br_e", "br_lvs"]))
    if max_faults and on("kernel_drops"):       # a capture fault: only in faulted draws
        base["kernel_drops"] = "lan" if shape == SHARED else draw(st.sampled_from(["br_e", "br_lvs"]))
    sc = Scenario(**base)
    faults = draw(_faults(allowed, sc, max_faults))
    sc = Scenario(**{**base, "faults": faults})
    # combinations listed as known gaps are not drawn (single switches are not even allowed)
    assume(known_gap(switches_of(sc)) is None)
    return sc
