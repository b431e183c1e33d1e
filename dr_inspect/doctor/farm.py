"""The farm as its hosts describe it, from host snapshots: which host is which real server,
which MAC holds which address, which virtual services the director has.

The director's IPVS table lists the real servers' RIPs; the snapshot of the host that holds a
RIP names that real server. Pure: snapshot dicts in, plain values out.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from dr_inspect.doctor import hoststate as hs


def real_servers(snapshots: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """[{name, rip}] of every RIP some snapshot's IPVS table lists and some other snapshot's
    host holds, sorted by RIP (the manifest's `real_servers`)."""
    rips: set[str] = set()
    for snap in snapshots.values():
        for service in hs.ipvs_services(snap) or []:
            rips |= {str(ipaddress.ip_address(r.ip)) for r in service.reals if _is_ip(r.ip)}
    out = []
    for name, snap in snapshots.items():
        held = {str(a.ip) for a in hs.addresses(snap)}
        for rip in sorted(rips & held):
            out.append({"name": str(snap.get("host") or name), "rip": rip})
    return sorted(out, key=lambda e: (ipaddress.ip_address(e["rip"]).version,
                                      ipaddress.ip_address(e["rip"])))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

