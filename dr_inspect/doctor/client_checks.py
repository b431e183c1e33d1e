"""Client check HC020: the client's neighbour entry for the VIP points at the director.

A static (PERMANENT) ARP entry left from a former director sends every SYN to a MAC nobody owns;
a dynamic one learned from a real server that answered ARP bypasses the director. Pure.
"""

from __future__ import annotations

from typing import Any

from dr_inspect.doctor.checkbase import Maker, Target, fix_cmd, missing
from dr_inspect.doctor.result import HostCheck


def check_client_vip_neighbour(snap: dict[str, Any], target: Target, mk: Maker) -> list[HostCheck]:
    if snap.get("neigh") is None:
        return [mk("HC020", "not-checked", "VIP", reason=missing(snap, "neigh"))]
    entries = [n for n in snap["neigh"] if n.get("dst") == str(target.vip)]
    needed = "no entry, or the director's MAC"
    if not entries:
        return [mk("HC020", "pass", "VIP", found=f"no cached neighbour entry for {target.vip} (ARP resolves it)",
                   needed=needed)]
    director_macs = {m.lower() for m in target.director_macs}
    results = []
    for e in entries:
        mac = str(e.get("lladdr") or "").lower()
        state = "/".join(e.get("state", [])) or "?"
        dev = str(e.get("dev") or "")
        found = f"{target.vip} -> {mac or 'no MAC'} ({state}) on {dev}"
        if not mac:
            results.append(mk("HC020", "not-checked", dev or "VIP", found=found,
                              reason="ARP for the VIP is unresolved: see the director's HC010"))
        elif not director_macs:
            results.append(mk("HC020", "not-checked", dev or "VIP", found=found,
                              reason="the director's MAC is unknown: give --director-mac (or doctor a capture "
                                     "set with the director's snapshot)"))
        elif mac in director_macs:
            results.append(mk("HC020", "pass", dev or "VIP", found=f"{found}: the director", needed=needed))
        else:
            static = "PERMANENT" in e.get("state", [])
            results.append(mk("HC020", "fail", dev or "VIP", needed=needed,
                              found=f"{found}: not a director MAC ({', '.join(sorted(director_macs))})",
                              fix=fix_cmd(snap, ["ip", "neigh", "del", str(target.vip), "dev", dev]),
                              reason="a static entry never expires" if static else
                                     "learned from a host that is not the director (a real server answering ARP?)"))
    return results


CLIENT_CHECKS = (check_client_vip_neighbour,)
