"""The director's MACs (where originals go, where copies leave from), checked against the pinned
ones, and the MACs around it: clients, and silent MACs clients still send VIP frames to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import is_group_mac
from dr_inspect.columnar.codes import present_values, value_in
from dr_inspect.topology.legs import LegVotes
from dr_inspect.topology.pins import TopologyPins
from dr_inspect.topology.view import CodedView, VipTraffic
from dr_inspect.topology.vips import vip_claimers


@dataclass
class Directors:
    """The director MACs and the MACs around them; is_*: the same sets per MAC code."""
    director_in: set[str]             # MACs client->VIP frames are addressed to
    director_out: set[str]            # MACs forwarded copies leave from
    client_macs: set[str]
    silent_macs: set[str]             # VIP frames go to them; they never send
    is_in: np.ndarray
    is_out: np.ndarray
    is_dir: np.ndarray


def _learned(pk: pd.DataFrame, cv: CodedView, traffic: VipTraffic, votes: LegVotes,
             vips: list[tuple[str, int]], senders: set[str]) -> tuple[set[str], set[str]]:
    """(director_in, director_out) as the traffic shows them."""
    macs = cv.macs
    named = ~pd.isna(macs) & (macs != "")
    rep_src = {macs[m] for m in np.unique(traffic.rc_src)}
    director_in = {macs[m] for m in np.flatnonzero((votes.in_votes > votes.rs_votes) & named)}
    if not director_in and len(traffic.tov):
        # One point only: the director is where clients send VIP frames and no reply comes
        # from; a MAC that never sends a frame is no host at all (a stale ARP entry's MAC)
        director_in = ({macs[m] for m in np.unique(traffic.tc_dst)} & senders) - rep_src - {""}
    if not director_in:
        # No forwarding seen (clients all bypass it): the director is the VIP's ARP/ND claimer
        # that is not a real server (real servers are where replies from the VIP come from).
        director_in = vip_claimers(pk, {ip for ip, _ in vips}) - rep_src - {""}
    # the first copy of a packet leaves the director; later ones may be a loop coming back
    director_out = present_values(votes.copy_src[~value_in(macs, director_in)[votes.copy_dst]],
                                  macs) - {""}
    return director_in, director_out


def _pinned(director_in: set[str], director_out: set[str], pins: TopologyPins,
            conflicts: list[str]) -> tuple[set[str], set[str]]:
    """The pinned director MACs where there are any (each disagreement a conflict)."""
    pinned_dir = pins.director_macs
    if not pinned_dir:
        return director_in, director_out
    p_in = set(pinned_dir.get("vip-segment", [])) | set(pinned_dir.get("both", []))
    p_out = set(pinned_dir.get("rs-segment", [])) | set(pinned_dir.get("both", []))
    for mac in sorted((p_in | p_out) - director_in - director_out):
        conflicts.append(f"pinned director MAC {mac}: the traffic shows no VIP frame to or "
                         f"forwarded copy from it (learned: "
                         f"{', '.join(sorted(director_in | director_out)) or 'none'})")
    for mac in sorted((director_in | director_out) - p_in - p_out):
        conflicts.append(f"MAC {mac} acts as a director in the traffic but is not pinned")
    return p_in or director_in, p_out or director_out


def find_directors(pk: pd.DataFrame, cv: CodedView, traffic: VipTraffic, votes: LegVotes,
                   vips: list[tuple[str, int]], pins: TopologyPins, senders: set[str],
                   conflicts: list[str]) -> Directors:
    """The director MACs (learned, or pinned), the clients and the silent MACs."""
    macs = cv.macs
    director_in, director_out = _pinned(*_learned(pk, cv, traffic, votes, vips, senders), pins,
                                        conflicts)
    dmacs = director_in | director_out
    is_in, is_out, is_dir = (value_in(macs, director_in), value_in(macs, director_out),
                             value_in(macs, dmacs))
    tc_src, tc_dst = traffic.tc_src, traffic.tc_dst
    client_macs = {macs[m] for m in tc_src[is_in[tc_dst]]} - dmacs - {""}
    # a MAC the director forwards to is a real server: when it routes VIP packets back to the
    # director (a loop) it sends to it too, but is no client
    client_macs -= {macs[m] for m in votes.copy_dst}
    # VIP frames from clients to a MAC that never sends anything: a stale ARP entry for the
    # VIP (a former director); they were meant for the director and are lost before it
    silent_macs = ({macs[m] for m in tc_dst[~is_dir[tc_src]]} - senders
                   - set(pins.host_addresses) - {""})
    silent_macs = {m for m in silent_macs if isinstance(m, str) and not is_group_mac([m])[0]}
    return Directors(director_in=director_in, director_out=director_out,
                     client_macs=client_macs, silent_macs=silent_macs, is_in=is_in,
                     is_out=is_out, is_dir=is_dir)
