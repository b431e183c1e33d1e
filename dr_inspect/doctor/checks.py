"""The host checks: pure functions of a snapshot (and what DR expects) -> HostCheck results.

Every check that cannot read what it needs says "not-checked" with the reason; none passes on
missing data. Fix commands run where the snapshot was taken (`ip netns exec NS ...` for a
namespace).
"""

from __future__ import annotations

from typing import Any

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.checkbase import (ROLES, Maker, Target, parse_networks, parse_vip,
                                         vip_addresses)
from dr_inspect.doctor.client_checks import CLIENT_CHECKS
from dr_inspect.doctor.director_checks import DIRECTOR_CHECKS
from dr_inspect.doctor.result import HostCheck
from dr_inspect.doctor.rs_checks import RS_CHECKS
from dr_inspect.errors import InputError

__all__ = ["ROLES", "Target", "parse_vip", "parse_networks", "run_checks", "guess_role",
           "RS_CHECKS", "DIRECTOR_CHECKS", "CLIENT_CHECKS"]


def run_checks(snap: dict[str, Any], role: str, target: Target) -> list[HostCheck]:
    """Every check of `role` on one snapshot, in id order."""
    if role not in ROLES:
        raise InputError(f"role {role!r}: expected director, realserver or client")
    mk = Maker(snap, role)
    checks = {"realserver": RS_CHECKS, "director": DIRECTOR_CHECKS, "client": CLIENT_CHECKS}[role]
    results = [r for check in checks for r in check(snap, target, mk)]
    return sorted(results, key=lambda r: r.id)


def guess_role(snap: dict[str, Any], vip: hs.IPAddress | None) -> str | None:
    """director: it has IPVS services (or an nft DR forwarding rule), or the VIP on an ARP
    interface; realserver: the VIP on lo / a NOARP interface. None when nothing tells."""
    services = hs.ipvs_services(snap) or []
    if vip is not None:
        if any(s.ip == str(vip) for s in services) or hs.nft_dr_forwards(snap.get("nft") or "", str(vip)):
            return "director"
        for a in vip_addresses(snap, vip):
            lnk = hs.link(snap, a.ifname) or {}
            return "director" if hs.is_arp_interface(lnk) else "realserver"
    elif services:
        return "director"
    return None
