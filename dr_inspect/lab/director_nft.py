"""The nft director backend: an nftables netdev-ingress rule that does what IPVS-DR does to a frame.

On the director's VIP interface (eth7) every TCP frame to VIP:PORT gets src MAC = eth8's MAC and
dst MAC = the chosen real server's eth12 MAC, and is sent out of eth8 (`fwd to`). The real server
is chosen by a flow hash (jhash of saddr . sport mod N), so one connection always goes to one real
server. nftables cannot write `ttl - 1`, so unlike IPVS the TTL is left as it is (DR002 allows it).
"""

from __future__ import annotations

TABLE = "dr_lab"
# A fixed seed: without one nft picks a random seed per rule, and the eth7 and eth8 dispatch
# rules of forwarding-loop would disagree on the real server of a flow.
HASH_SEED = 0xD1


def nft_director_ruleset(*, vip: str, port: int, vip_ifname: str, vip_mac: str, dip_ifname: str,
                         dip_mac: str, rs_macs: list[str], dispatch_on_dip: bool = False) -> str:
    """The nft script (for `nft -f -`) of the director. Pure."""
    if not rs_macs:
        raise ValueError("at least one real server MAC is needed")
    choice = ", ".join(f"{i} : {mac}" for i, mac in enumerate(rs_macs))
    chains = [("vip_in", vip_ifname, vip_mac)]
    if dispatch_on_dip:
        # IPVS schedules packets for the VIP whatever interface they come in on; mirror that.
        chains.append(("dip_in", dip_ifname, dip_mac))
    lines = [f"table netdev {TABLE} {{"]
    for chain, dev, mac in chains:
        # The ingress hook runs before the stack drops frames for other hosts' MACs (a bridge
        # floods unknown unicast), so match our own MAC as IPVS, behind ip_rcv, effectively does.
        dispatch = (f"ether daddr {mac} ip daddr {vip} tcp dport {port} ether saddr set {dip_mac} "
                    f"ether daddr set jhash ip saddr . tcp sport mod {len(rs_macs)} seed 0x{HASH_SEED:x} map {{ {choice} }} "
                    f'fwd to "{dip_ifname}"')
        lines += [f"    chain {chain} {{",
                  f'        type filter hook ingress device "{dev}" priority 0; policy accept;',
                  f"        {dispatch}",
                  "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"
