"""Pure host checks on hand-made snapshots shaped like the seed's lab (no system access)."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from dr_inspect.doctor import hoststate as hs
from dr_inspect.doctor.catalogue import BY_ID, CATALOGUE
from dr_inspect.doctor.checks import Target, guess_role, parse_vip, run_checks
from dr_inspect.doctor.run import doctor_snapshots
from dr_inspect.errors import InputError

VIP = ipaddress.ip_address("192.168.7.33")
DIP = "192.168.88.10"


def _link(ifindex, name, mac, addrs, flags=("BROADCAST", "MULTICAST", "UP", "LOWER_UP"), link_type="ether"):
    return {"ifindex": ifindex, "ifname": name, "flags": list(flags), "link_type": link_type, "address": mac,
            "addr_info": [{"family": "inet6" if ":" in a else "inet", "local": a.split("/")[0],
                           "prefixlen": int(a.split("/")[1])} for a in addrs]}


def rs_snapshot() -> dict:
    """rs1 of the seed: eth14 192.168.7.99/24 on br_e, eth12 192.168.88.20/24 on br_lvs, VIP/32 on lo."""
    conf = {name: {"arp_ignore": 1, "arp_announce": 2, "rp_filter": 0} for name in ("all", "eth14", "eth12")}
    conf["default"] = {"arp_ignore": 0, "arp_announce": 0, "rp_filter": 0}
    conf["lo"] = {"arp_ignore": 0, "arp_announce": 0, "rp_filter": 0}
    return {
        "schema": 1, "host": "rs1", "netns": "t6-rs1", "taken_at": "2026-11-30T07:00:00Z", "role": None,
        "addr": [_link(1, "lo", "00:00:00:00:00:00", ["127.0.0.1/8", "192.168.7.33/32"],
                       flags=("LOOPBACK", "UP", "LOWER_UP"), link_type="loopback"),
                 _link(2, "eth14", "02:00:c0:a8:07:63", ["192.168.7.99/24"]),
                 _link(3, "eth12", "02:00:c0:a8:58:14", ["192.168.88.20/24"])],
        "route4": [{"dst": "192.168.7.0/24", "dev": "eth14", "protocol": "kernel", "scope": "link",
                    "prefsrc": "192.168.7.99", "flags": []},
                   {"dst": "192.168.88.0/24", "dev": "eth12", "protocol": "kernel", "scope": "link",
                    "prefsrc": "192.168.88.20", "flags": []}],
        "route6": [], "neigh": [{"dst": DIP, "dev": "eth12", "lladdr": "02:00:c0:a8:58:0a", "state": ["STALE"]}],
        "sysctl": {"net.ipv4.ip_forward": 0, "net.ipv4.conf": conf},
        "ipvsadm_ln": None, "ipvsadm_sn": None, "nft": "", "iptables_save": None,
        "listeners": [{"local": "0.0.0.0", "port": 8000}],
        "errors": {"ipvsadm_ln": "ipvsadm: not found", "ipvsadm_sn": "ipvsadm: not found",
                   "iptables_save": "iptables-save: not found"},
    }


IPVS_SAVE = "-A -t 192.168.7.33:8000 -s rr\n-a -t 192.168.7.33:8000 -r 192.168.88.20:8000 -g -w 1\n"
NFT_INVALID = """table inet filter { # handle 3
\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tct state invalid counter packets 3 bytes 120 drop # handle 4
\t\ttcp dport 22 accept # handle 5
\t}
}
"""


def director_snapshot() -> dict:
    conf = {n: {"arp_ignore": 0, "arp_announce": 0, "rp_filter": 0} for n in ("all", "default", "eth7", "eth8")}
    return {
        "schema": 1, "host": "director", "netns": None, "taken_at": "2026-11-30T07:00:00Z", "role": None,
        "addr": [_link(1, "lo", "00:00:00:00:00:00", ["127.0.0.1/8"], flags=("LOOPBACK", "UP"), link_type="loopback"),
                 _link(2, "eth7", "02:00:c0:a8:07:21", ["192.168.7.33/24"]),
                 _link(3, "eth8", "02:00:c0:a8:58:0a", ["192.168.88.10/24"])],
        "route4": [{"dst": "192.168.7.0/24", "dev": "eth7", "flags": []},
                   {"dst": "192.168.88.0/24", "dev": "eth8", "flags": []}],
        "route6": [], "neigh": [{"dst": "192.168.88.20", "dev": "eth8", "lladdr": "02:00:c0:a8:58:14",
                                 "state": ["REACHABLE"]}],
        "sysctl": {"net.ipv4.ip_forward": 0, "net.ipv4.conf": conf},
        "ipvsadm_ln": None, "ipvsadm_sn": IPVS_SAVE, "nft": "", "iptables_save": None,
        "listeners": [], "errors": {"iptables_save": "iptables-save: not found"},
    }


def rs_target(**kw) -> Target:
    return Target(VIP, 8000, director_ips=kw.pop("director_ips", (DIP,)), **kw)


def by_id(results, check_id):
    return [r for r in results if r.id == check_id]


def failed(results):
    return sorted({r.id for r in results if r.status == "fail"})


def set_conf(snap, iface, key, value):
    snap["sysctl"]["net.ipv4.conf"][iface][key] = value


def test_catalogue_ids_are_unique_and_explain_dr_rules():
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert all(rule.startswith("DR") for c in CATALOGUE for rule in c.explains)


def test_healthy_real_server_passes_every_check():
    results = run_checks(rs_snapshot(), "realserver", rs_target())
    assert {r.id for r in results} == {"HC001", "HC002", "HC003", "HC004", "HC005", "HC006",
                                       "HC007"}
    assert [r.line for r in results if r.status != "pass"] == []
    # one result per ARP interface for the per-interface sysctls
    assert {r.subject for r in by_id(results, "HC002")} == {"eth14", "eth12"}


def test_arp_ignore_zero_on_eth14_is_found_with_fix():
    snap = rs_snapshot()
    set_conf(snap, "all", "arp_ignore", 0)
    set_conf(snap, "eth14", "arp_ignore", 0)
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC002"]
    bad = [r for r in by_id(results, "HC002") if r.status == "fail"]
    assert [r.subject for r in bad] == ["eth14"]          # eth12 keeps 1: max(all=0, eth12=1)
    assert bad[0].found.startswith("arp_ignore=0")
    assert bad[0].fix == "ip netns exec t6-rs1 sysctl -w net.ipv4.conf.eth14.arp_ignore=1"


def test_effective_value_is_max_of_all_and_interface_and_names_its_source():
    snap = rs_snapshot()
    set_conf(snap, "eth14", "arp_ignore", 0)             # all=1 still wins
    results = run_checks(snap, "realserver", rs_target())
    eth14 = next(r for r in by_id(results, "HC002") if r.subject == "eth14")
    assert eth14.status == "pass" and "set by all" in eth14.found
    snap = rs_snapshot()
    set_conf(snap, "all", "arp_announce", 0)
    set_conf(snap, "eth12", "arp_announce", 0)
    results = run_checks(snap, "realserver", rs_target())
    eth14 = next(r for r in by_id(results, "HC003") if r.subject == "eth14")
    assert eth14.status == "pass" and "set by eth14" in eth14.found
    eff = hs.effective(snap, "eth14", "arp_announce")
    assert (eff.value, eff.set_by) == (2, "eth14")


def test_arp_announce_zero_fails_hc003():
    snap = rs_snapshot()
    set_conf(snap, "all", "arp_announce", 0)
    set_conf(snap, "eth14", "arp_announce", 0)
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC003"]
    bad = next(r for r in results if r.status == "fail")
    assert bad.fix.endswith("sysctl -w net.ipv4.conf.eth14.arp_announce=2")


def test_missing_vip_and_wide_mask_fail_hc001():
    snap = rs_snapshot()
    snap["addr"][0]["addr_info"].pop()                   # no VIP
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC001"]
    assert by_id(results, "HC001")[0].fix == "ip netns exec t6-rs1 ip addr add 192.168.7.33/32 dev lo"
    snap = rs_snapshot()
    snap["addr"][0]["addr_info"][1]["prefixlen"] = 24    # VIP/24 on lo
    results = run_checks(snap, "realserver", rs_target())
    # the /24 on lo also makes the clients' subnet local: the reply route check sees it too
    assert failed(results) == ["HC001", "HC005"]
    hc1 = by_id(results, "HC001")[0]
    assert "192.168.7.33/24 on lo" in hc1.found
    assert "ip addr del 192.168.7.33/24 dev lo" in hc1.fix and "ip addr add 192.168.7.33/32 dev lo" in hc1.fix


def test_vip_on_a_down_loopback_fails():
    snap = rs_snapshot()
    snap["addr"][0]["flags"] = ["LOOPBACK"]
    hc1 = by_id(run_checks(snap, "realserver", rs_target()), "HC001")[0]
    assert hc1.status == "fail" and "DOWN" in hc1.found
    assert hc1.fix == "ip netns exec t6-rs1 ip link set lo up"


def test_vip_on_an_arp_interface_fails_but_a_noarp_dummy_is_fine():
    snap = rs_snapshot()
    snap["addr"][0]["addr_info"].pop()
    snap["addr"].append(_link(4, "dummy0", "aa:aa:aa:aa:aa:aa", ["192.168.7.33/32"],
                              flags=("BROADCAST", "NOARP", "UP", "LOWER_UP")))
    assert by_id(run_checks(snap, "realserver", rs_target()), "HC001")[0].status == "pass"
    snap["addr"][-1]["flags"] = ["BROADCAST", "MULTICAST", "UP"]
    hc1 = by_id(run_checks(snap, "realserver", rs_target()), "HC001")[0]
    assert hc1.status == "fail" and "answers ARP" in hc1.reason


def test_reply_route_via_director():
    snap = rs_snapshot()
    snap["route4"].append({"dst": "192.168.7.2", "gateway": DIP, "dev": "eth12", "flags": []})
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC005"]
    hc5 = by_id(results, "HC005")[0]
    assert "through the director 192.168.88.10" in hc5.found
    assert hc5.fix == "ip netns exec t6-rs1 ip route del 192.168.7.2 via 192.168.88.10"
    # Not knowing the director, the gateway cannot be judged: not-checked, never a pass.
    results = run_checks(snap, "realserver", Target(VIP, 8000))
    assert by_id(results, "HC005")[0].status == "not-checked"
    # Knowing only the director's MAC (from a verify topology) is enough via the neighbour table.
    results = run_checks(snap, "realserver", Target(VIP, 8000, director_macs=("02:00:c0:a8:58:0a",)))
    assert by_id(results, "HC005")[0].status == "fail"


def test_reply_route_with_client_hints_and_no_route():
    snap = rs_snapshot()
    target = rs_target(clients=(ipaddress.ip_network("10.20.0.0/16"),))
    hc5 = by_id(run_checks(snap, "realserver", target), "HC005")
    assert [r.status for r in hc5] == ["fail"] and "no route to 10.20.0.0/16" in hc5[0].found
    snap["route4"].append({"dst": "default", "gateway": "192.168.7.1", "dev": "eth14", "flags": []})
    hc5 = by_id(run_checks(snap, "realserver", target), "HC005")
    assert [r.status for r in hc5] == ["pass"] and "via 192.168.7.1" in hc5[0].found
    snap["route4"][-1]["gateway"] = DIP
    hc5 = by_id(run_checks(snap, "realserver", target), "HC005")
    assert [r.status for r in hc5] == ["fail"]


def test_strict_rp_filter_where_forwarded_packets_arrive():
    snap = rs_snapshot()
    set_conf(snap, "all", "rp_filter", 1)
    set_conf(snap, "eth12", "rp_filter", 1)
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC004"]
    hc4 = [r for r in by_id(results, "HC004") if r.status == "fail"]
    assert [r.subject for r in hc4] == ["eth12"]
    assert "replies to clients leave by eth14" in hc4[0].found
    # all=1 keeps eth12 strict whatever eth12 says: the fix lowers both
    assert "net.ipv4.conf.all.rp_filter=2" in hc4[0].fix and "net.ipv4.conf.eth12.rp_filter=2" in hc4[0].fix
    # Strict on a one-interface host (replies leave where packets arrive) is harmless.
    single = rs_snapshot()
    single["addr"].pop()                                 # no eth12
    single["route4"].pop()
    set_conf(single, "all", "rp_filter", 1)
    hc4 = by_id(run_checks(single, "realserver", Target(VIP, 8000)), "HC004")
    assert [r.status for r in hc4] == ["pass"]


def test_listener_port_mismatch_and_wildcards():
    snap = rs_snapshot()
    snap["listeners"] = [{"local": "0.0.0.0", "port": 8001}]
    results = run_checks(snap, "realserver", rs_target())
    assert failed(results) == ["HC006"]
    assert "0.0.0.0:8001" in by_id(results, "HC006")[0].found
    for local in ("192.168.7.33", "::"):
        snap["listeners"] = [{"local": local, "port": 8000}]
        assert by_id(run_checks(snap, "realserver", rs_target()), "HC006")[0].status == "pass"
    snap["listeners"] = [{"local": "192.168.7.99", "port": 8000}]   # bound to the RIP only
    assert by_id(run_checks(snap, "realserver", rs_target()), "HC006")[0].status == "fail"
    no_port = run_checks(rs_snapshot(), "realserver", Target(VIP, None, director_ips=(DIP,)))
    assert by_id(no_port, "HC006")[0].status == "not-checked"


def test_missing_data_is_not_checked_never_pass():
    snap = rs_snapshot()
    snap["listeners"] = None
    snap["errors"]["listeners"] = "ss: not found; cat: /proc/net/tcp: Permission denied"
    snap["sysctl"] = {"net.ipv4.conf": {}}
    snap["errors"]["sysctl"] = "net.ipv4.conf.all.* unreadable"
    results = run_checks(snap, "realserver", rs_target())
    for check_id in ("HC002", "HC003", "HC004", "HC006"):
        got = by_id(results, check_id)
        assert [r.status for r in got] == ["not-checked"], check_id
        assert "unreadable" in got[0].reason
    snap["addr"] = None
    results = run_checks(snap, "realserver", rs_target())
    assert "pass" not in {r.status for r in results if r.id != "HC005"}


def test_healthy_director_passes():
    results = run_checks(director_snapshot(), "director", Target(VIP, 8000))
    assert [r.line for r in results if r.status != "pass"] == []
    assert {r.id for r in results} == {"HC010", "HC011", "HC012", "HC013", "HC014"}


def test_director_without_ipvsadm_is_not_checked():
    snap = director_snapshot()
    snap["ipvsadm_sn"] = None
    snap["errors"]["ipvsadm_sn"] = "Can't initialize ipvs: Protocol not available"
    results = run_checks(snap, "director", Target(VIP, 8000))
    for check_id in ("HC011", "HC012", "HC013"):
        assert [r.status for r in by_id(results, check_id)] == ["not-checked"]
        assert "Protocol not available" in by_id(results, check_id)[0].reason


def test_director_service_missing_masq_mode_and_unreachable_rip():
    snap = director_snapshot()
    snap["ipvsadm_sn"] = "-A -t 192.168.7.33:80 -s rr\n"
    results = run_checks(snap, "director", Target(VIP, 8000))
    hc11 = by_id(results, "HC011")[0]
    assert hc11.status == "fail" and "TCP 192.168.7.33:80" in hc11.found
    assert hc11.fix == "ipvsadm -A -t 192.168.7.33:8000 -s rr"
    snap["ipvsadm_sn"] = ("-A -t 192.168.7.33:8000 -s rr\n"
                          "-a -t 192.168.7.33:8000 -r 192.168.88.20:8000 -m -w 1\n"
                          "-a -t 192.168.7.33:8000 -r 10.9.9.9:8000 -g -w 1\n")
    snap["neigh"][0]["state"] = ["FAILED"]
    results = run_checks(snap, "director", Target(VIP, 8000))
    hc12 = {r.subject: r for r in by_id(results, "HC012")}
    assert hc12["TCP 192.168.7.33:8000 -> 192.168.88.20:8000"].status == "fail"
    assert hc12["TCP 192.168.7.33:8000 -> 192.168.88.20:8000"].fix == \
        "ipvsadm -e -t 192.168.7.33:8000 -r 192.168.88.20:8000 -g"
    assert hc12["TCP 192.168.7.33:8000 -> 10.9.9.9:8000"].status == "pass"
    hc13 = {r.subject: r for r in by_id(results, "HC013")}
    assert hc13["192.168.88.20"].status == "fail" and "FAILED" in hc13["192.168.88.20"].found
    assert hc13["10.9.9.9"].status == "fail" and "not on a connected segment" in hc13["10.9.9.9"].found


def test_director_drops_invalid_nft_and_iptables():
    snap = director_snapshot()
    snap["nft"] = NFT_INVALID
    snap["iptables_save"] = ("*filter\n:INPUT ACCEPT [0:0]\n"
                             "-A INPUT -m conntrack --ctstate INVALID -j DROP\n"
                             "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n")
    hc14 = by_id(run_checks(snap, "director", Target(VIP, 8000)), "HC014")
    assert [r.status for r in hc14] == ["fail", "fail"]
    assert hc14[0].fix == "nft delete rule inet filter input handle 4"
    assert hc14[1].fix == "iptables -t filter -D INPUT -m conntrack --ctstate INVALID -j DROP"
    snap["nft"] = NFT_INVALID.replace("ct state invalid counter packets 3 bytes 120 drop",
                                      "ct state { established, invalid } accept")
    snap["iptables_save"] = None
    assert [r.status for r in by_id(run_checks(snap, "director", Target(VIP, 8000)), "HC014")] == ["pass"]


def test_director_vip_missing_suggests_client_interface():
    snap = director_snapshot()
    snap["addr"][1]["addr_info"] = [{"family": "inet", "local": "192.168.7.1", "prefixlen": 24}]
    hc10 = by_id(run_checks(snap, "director", Target(VIP, 8000)), "HC010")[0]
    assert hc10.status == "fail" and hc10.fix == "ip addr add 192.168.7.33/32 dev eth7"


def test_ipvsadm_list_and_save_parse_alike():
    listing = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.7.33:8000 rr
  -> 192.168.88.20:8000           Route   1      0          0
  -> 192.168.88.21:8000           Masq    2      0          0
TCP  [2001:db8::1]:80 wlc
  -> [2001:db8:1::2]:80           Route   1      0          0
"""
    services = hs.parse_ipvsadm_list(listing)
    assert [(s.label, s.scheduler) for s in services] == [("TCP 192.168.7.33:8000", "rr"), ("TCP [2001:db8::1]:80", "wlc")]
    assert [(r.ip, r.port, r.method, r.weight) for r in services[0].reals] == [
        ("192.168.88.20", 8000, "Route", 1), ("192.168.88.21", 8000, "Masq", 2)]
    saved = hs.parse_ipvsadm_save(IPVS_SAVE)
    assert [(r.ip, r.port, r.method) for r in saved[0].reals] == [("192.168.88.20", 8000, "Route")]


def test_roles_are_guessed_and_real_servers_learn_the_director():
    rs = rs_snapshot()
    rs["route4"].append({"dst": "192.168.7.2", "gateway": DIP, "dev": "eth12", "flags": []})
    assert guess_role(rs, VIP) == "realserver" and guess_role(director_snapshot(), VIP) == "director"
    report = doctor_snapshots({"rs1": rs, "director": director_snapshot()}, VIP, 8000)
    roles = {h.host: (h.role, h.role_source) for h in report.hosts}
    assert roles["rs1"][0] == "realserver" and roles["director"][0] == "director"
    # the reply route is judged with the director's addresses taken from its snapshot
    assert failed(report.checks) == ["HC005"] and report.exit_code == 1
    no_vip = copy.deepcopy(rs)
    no_vip["addr"][0]["addr_info"].pop()
    report = doctor_snapshots({"rs1": no_vip, "mystery": {**no_vip, "host": "mystery"}}, VIP, 8000)
    by_host = {h.host: h for h in report.hosts}
    assert by_host["rs1"].role_source == "guessed from host name"
    assert [c.id for c in by_host["mystery"].checks] == ["HC000"]
    assert by_host["mystery"].checks[0].status == "not-checked"


@pytest.mark.parametrize("text,expected", [
    ("192.168.7.33", ("192.168.7.33", None)), ("192.168.7.33:8000", ("192.168.7.33", 8000)),
    ("2001:db8::1", ("2001:db8::1", None)), ("[2001:db8::1]:443", ("2001:db8::1", 443))])
def test_parse_vip(text, expected):
    ip, port = parse_vip(text)
    assert (str(ip), port) == expected


@pytest.mark.parametrize("bad", ["vip", "1.2.3.4:http", "1.2.3.4:70000", "[::1]x"])
def test_parse_vip_rejects(bad):
    with pytest.raises(InputError, match="--vip"):
        parse_vip(bad)


def test_every_check_id_is_in_the_catalogue():
    results = run_checks(rs_snapshot(), "realserver", rs_target()) + \
        run_checks(director_snapshot(), "director", Target(VIP, 8000))
    assert all(r.id in BY_ID and r.name == BY_ID[r.id].name for r in results)


def client_snapshot(neigh: list) -> dict:
    return {"schema": 1, "host": "client", "netns": "t6-client", "role": None,
            "addr": [_link(2, "eth0", "02:00:c0:a8:07:02", ["192.168.7.2/24"])],
            "route4": [{"dst": "192.168.7.0/24", "dev": "eth0", "flags": []}], "route6": [],
            "neigh": neigh, "sysctl": {"net.ipv4.conf": {}}, "listeners": [], "errors": {}}


def test_client_static_arp_entry_for_the_vip():
    stale = [{"dst": "192.168.7.33", "dev": "eth0", "lladdr": "02:00:de:ad:be:ef", "state": ["PERMANENT"]}]
    report = doctor_snapshots({"client": client_snapshot(stale), "director": director_snapshot()}, VIP, 8000)
    by_host = {h.host: h for h in report.hosts}
    assert by_host["client"].role == "client"
    (hc20,) = by_host["client"].checks
    assert hc20.id == "HC020" and hc20.status == "fail" and "never expires" in hc20.reason
    assert hc20.fix == "ip netns exec t6-client ip neigh del 192.168.7.33 dev eth0"
    good = [{"dst": "192.168.7.33", "dev": "eth0", "lladdr": "02:00:c0:a8:07:21", "state": ["REACHABLE"]}]
    report = doctor_snapshots({"client": client_snapshot(good), "director": director_snapshot()}, VIP, 8000)
    assert report.exit_code == 0
    # alone, the client cannot tell whose MAC it holds: not checked, unless the MAC is given
    alone = doctor_snapshots({"client": client_snapshot(stale)}, VIP, 8000)
    assert [c.status for c in alone.checks] == ["not-checked"]
    hinted = doctor_snapshots({"client": client_snapshot(stale)}, VIP, 8000, director_macs=("02:00:c0:a8:07:21",))
    assert [c.status for c in hinted.checks] == ["fail"]
    assert [c.status for c in doctor_snapshots({"client": client_snapshot([])}, VIP, 8000).checks] == ["pass"]


def test_ipv6_real_server():
    vip6 = ipaddress.ip_address("2001:db8:7::33")
    snap = rs_snapshot()
    snap["addr"][0]["addr_info"].append({"family": "inet6", "local": "2001:db8:7::33", "prefixlen": 64})
    snap["addr"][1]["addr_info"].append({"family": "inet6", "local": "2001:db8:7::99", "prefixlen": 64})
    snap["route6"] = [{"dst": "2001:db8:7::/64", "dev": "eth14", "flags": []}]
    snap["listeners"] = [{"local": "::", "port": 443}]
    results = run_checks(snap, "realserver", Target(vip6, 443))
    status = {r.id: r.status for r in results}
    assert status["HC001"] == "fail" and "2001:db8:7::33/128" in by_id(results, "HC001")[0].fix
    assert "IPv6" in by_id(results, "HC002")[0].reason and status["HC002"] == "not-checked"
    assert status["HC006"] == "pass"
    # /64 on lo also makes the client prefix local
    assert status["HC005"] == "fail"
    snap["addr"][0]["addr_info"][-1]["prefixlen"] = 128
    results = run_checks(snap, "realserver", Target(vip6, 443))
    assert failed(results) == []


NFT_TWO_TABLES = """table inet filter { # handle 3
\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tct state invalid counter packets 3 bytes 120 drop # handle 4
\t\tct state { established, invalid } accept # handle 5
\t}
}
table netdev dr { # handle 7
\tchain ingress { # handle 1
\t\ttype filter hook ingress device "eth7" priority filter; policy accept;
\t\tip daddr 192.168.7.33 tcp dport 8000 ether daddr set 02:00:00:00:88:21 fwd to "eth8" # handle 2
\t}
\tchain other { # handle 3
\t\tip daddr 192.168.7.34 fwd to "eth8" # handle 4
\t}
}
table netdev plain { # handle 8
\tchain ingress { # handle 1
\t\tfwd to "eth9" # handle 2
\t}
}
"""


def test_nft_parsers_follow_tables_and_chains():
    drops = hs.nft_invalid_drops(NFT_TWO_TABLES)
    assert [(r.family, r.table, r.chain, r.rule, r.handle) for r in drops] == [
        ("inet", "filter", "input", "ct state invalid counter packets 3 bytes 120 drop", 4)]
    # only the netdev chain that mentions the VIP (not .34's chain, not a chain without the VIP)
    assert hs.nft_dr_forwards(NFT_TWO_TABLES, "192.168.7.33") == [
        'netdev dr ingress: ip daddr 192.168.7.33 tcp dport 8000 ether daddr set '
        '02:00:00:00:88:21 fwd to "eth8"']
    assert hs.nft_dr_forwards(NFT_TWO_TABLES, "192.168.7.3") == []


def test_a_forwarding_real_server_without_the_vip_fails_hc007():
    """ip_forward=1 is harmless while the VIP is local; without it, VIP packets loop (DR010)."""
    snap = rs_snapshot()
    snap["sysctl"]["net.ipv4.ip_forward"] = 1
    assert by_id(run_checks(snap, "realserver", rs_target()), "HC007")[0].status == "pass"
    snap["addr"] = [lnk for lnk in snap["addr"] if lnk["ifname"] != "lo"]
    check = by_id(run_checks(snap, "realserver", rs_target()), "HC007")[0]
    assert check.status == "fail" and "ip_forward=0" in check.fix
    snap["sysctl"]["net.ipv4.ip_forward"] = 0
    assert by_id(run_checks(snap, "realserver", rs_target()), "HC007")[0].status == "pass"
