"""Pinned scenarios of tests/scenarios: the smallest draw of each class the analysis got wrong
(issue 12; issue 18's first bullet), and of each class issue 12 fixed.

A class still open is marked xfail(strict=True) with its KNOWN_GAPS entry (tests/scenarios/
gaps.py): when the analysis gets it right the test XPASSes and fails, so the mark and the entry
go together. Each comment says what the analysis does today and what it should do.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from scenarios.build import write_scenario
from scenarios.check import differences, observe
from scenarios.gaps import KNOWN_GAPS, known_gap
from scenarios.model import SHARED, Fault, Scenario
from scenarios.strategies import switches_of


def agrees(sc: Scenario) -> None:
    with tempfile.TemporaryDirectory(prefix="scenario-") as tmp:
        truth = write_scenario(sc, Path(tmp))
        wrong = differences(truth, observe(Path(tmp)))
    assert not wrong, f"{sc!r}\ntruth: {truth.summary()}\n" + "\n".join(wrong)


def gap(entry: str, sc: Scenario):
    """A pinned scenario of an open class: xfail while `entry` is a known gap."""
    assert known_gap(switches_of(sc)) == entry or entry not in KNOWN_GAPS, (entry, sc)
    # raises=AssertionError: an exception in the generator or the analysis is a failure
    return pytest.param(sc, marks=pytest.mark.xfail(
        entry in KNOWN_GAPS, strict=True, raises=AssertionError, reason=f"issue 12: {entry}"),
        id=entry)


OPEN = [
    # A request GRO-coalesced at the director (3 MSS segments on br_e, one copy on br_lvs):
    # Linux ORs the last segment's PSH into the merged header, so the copy's flags are PSH|ACK
    # where the first segment's are ACK. Today: DR002 fails (flags compared as for a plain
    # copy). Should: pass (a coalesced copy covering its segments' range exactly).
    gap("gro", Scenario(seed=0, real_servers=1, clients=1, gro=1)),
    # A request sent as one TSO frame (br_e) and forwarded as MSS-sized segments (br_lvs), IP
    # IDs counting up from the big frame's. Today: DR007 fails on the big frame ("no copy").
    # Should: pass (its copies cover its sequence range exactly).
    gap("tso", Scenario(seed=0, real_servers=1, clients=1, tso=1)),
    # One client reuses both its 4-tuples; round robin sends the second epochs to the other
    # server, so rs2 (192.168.88.21) only ever serves reused 4-tuples. Today: connections and
    # rules are right, but rs2 is split in two: {rs-segment 02:a0:00:88:00:02, RIP .88.21} and
    # {vip-segment 02:a0:00:07:00:02, RIP unknown}: the reply MAC is linked to the
    # forwarded-to MAC per 4-tuple (its first epoch), not per connection. Should: one server
    # with both MACs and RIP 192.168.88.21.
    gap("port_reuse", Scenario(seed=1, real_servers=2, clients=1, port_reuse=2)),
    # nft director (TTL not decremented) and br_lvs's clock 20 ms ahead of br_e's, healthy.
    # Today: FAIL, DR007; the real server's rs-segment MAC is learned as a director VIP-segment
    # MAC, no rs-segment director MAC, the server only by its VIP-segment MAC (RIP unknown).
    # Should: pass, the true topology (the clock offset is estimated, and a copy
    # is the leg at the real-server-side point, not the later one in raw time).
    gap("nft+clock_offset", Scenario(seed=0, director="nft", real_servers=1, clients=1,
                                     clock_offset_us=20_000)),
    # One LAN, the only real server has no VIP and routes it back to the director (ip_forward):
    # the SYN bounces server <-> director with a falling TTL. Today: DR007 only, the server's
    # MAC is a director MAC and there is no real server (with more servers: DR001 and DR002 fail
    # too, and the looping server is missing). Should: DR009 + DR010, the server a real server.
    # The forwarding loop of captures/fault-forwarding-loop (two segments, IPVS) with br_lvs's
    # clock 20 ms ahead. Today: DR001 and DR002 fail besides DR009 + DR010: the frame the
    # looping server sends back to the director (02:a0:00:88:00:01 -> 02:d0:00:88:00:0a, TTL 62)
    # is taken for the director's copy of the client's SYN. Should: DR009 + DR010 only, as
    # without the offset.
    gap("forwarding-loop+clock_offset",
        Scenario(seed=0, real_servers=1, clients=1, clock_offset_us=20_000,
                 faults=(Fault("forwarding-loop", 0),))),
    # One LAN; client 192.168.7.2 holds a permanent ARP entry for the VIP with a dead MAC
    # (02:00:de:ad:be:ef, as captures/fault-stale-arp), the other client works. Today: DR001
    # ("copy from 02:c0:00:07:00:02 to 02:00:de:ad:be:ef": the client's own SYN taken for a
    # director's copy) and DR009 fail. Should: DR007 for that client's connection (lost before
    # the director), as in two-segment shape.
    gap("shared_segment+client-stale-arp",
        Scenario(seed=1480450, shape=SHARED, real_servers=2, clients=2,
                 faults=(Fault("client-stale-arp", 0),))),
    gap("shared_segment+forwarding-loop",
        Scenario(seed=0, shape=SHARED, real_servers=1, clients=1,
                 faults=(Fault("forwarding-loop", 0),))),
]

FIXED = [
    # issue 12 classes the analysis gets right now (kept so they stay right)
    # (issue 18) the director strips the payload of data copies or cuts 10 bytes off: DR002
    pytest.param(Scenario(seed=0, real_servers=1, clients=1,
                          faults=(Fault("copy-mangled", 0, "strip"),)), id="copy-payload-stripped"),
    pytest.param(Scenario(seed=0, real_servers=1, clients=1,
                          faults=(Fault("copy-mangled", 0, "short"),)), id="copy-payload-shortened"),
    # (issue 18) ... or rewrites a byte of it, the length kept: only the payload digest tells
    pytest.param(Scenario(seed=0, real_servers=1, clients=1,
                          faults=(Fault("copy-mangled", 0, "rewrite"),)), id="copy-payload-rewritten"),
    pytest.param(Scenario(seed=4, family=6, real_servers=2, clients=2,
                          faults=(Fault("copy-mangled", 1, "rewrite"),)), id="copy-payload-rewritten-v6"),
    pytest.param(Scenario(seed=5, real_servers=2, clients=1, port_reuse=2), id="reused-5-tuples"),
    pytest.param(Scenario(seed=3, shape=SHARED, real_servers=2, clients=2,
                          faults=(Fault("rs-answers-arp", 0, "all"),)), id="single-lan-rs-answers-arp"),
    pytest.param(Scenario(seed=3, real_servers=2, faults=(Fault("director-not-rewriting", 1),)),
                 id="director-not-rewriting-is-DR001"),
    pytest.param(Scenario(seed=3, real_servers=2, faults=(Fault("stale-neighbour", 1),)),
                 id="stale-neighbour-is-no-real-server"),
    pytest.param(Scenario(seed=3, real_servers=2, faults=(Fault("forwarding-loop", 0),)),
                 id="forwarding-loop-rip-is-no-client"),
    pytest.param(Scenario(seed=3, real_servers=2, syn_retransmits=2, synack_retransmits=1),
                 id="retransmissions"),
]


@pytest.mark.parametrize("sc", OPEN)
def test_open_class(sc: Scenario) -> None:
    agrees(sc)


@pytest.mark.parametrize("sc", FIXED)
def test_fixed_class(sc: Scenario) -> None:
    agrees(sc)
