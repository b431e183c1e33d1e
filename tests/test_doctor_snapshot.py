"""take_snapshot: collection from a live namespace, the busybox fallbacks, and the text parsers."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import require_root_netns, require_tool
from dr_inspect.doctor import textparse
from dr_inspect.doctor.run import doctor_snapshots
from dr_inspect.doctor.snapshot import make_runner, read_snapshot, take_snapshot, write_snapshot
from dr_inspect.errors import DoctorError, InputError


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def rs_netns():
    """A namespace shaped like a DR real server: eth0 10.66.0.11/24, VIP 10.66.1.10/32 on lo,
    arp_ignore=1 on all, arp_announce=2 on eth0 only, a listener on the VIP port."""
    require_root_netns()
    ns = f"t6x-snap{os.getpid() % 10000}"
    peer = f"t6xs{os.getpid() % 10000}"
    listener = None
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ex = ["netns", "exec", ns]
        _ip(*ex, "ip", "link", "set", "lo", "up")
        _ip(*ex, "ip", "link", "set", "eth0", "up")
        _ip(*ex, "ip", "addr", "add", "10.66.0.11/24", "dev", "eth0")
        _ip(*ex, "ip", "addr", "add", "10.66.1.10/32", "dev", "lo")
        _ip(*ex, "ip", "route", "add", "default", "via", "10.66.0.1")
        _ip(*ex, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
        _ip(*ex, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-c",
             "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
             "s.bind(('10.66.1.10',8080))\ns.listen()\nprint('ok',flush=True)\ntime.sleep(60)"],
            stdout=subprocess.PIPE, text=True)
        assert listener.stdout.readline().strip() == "ok"
        yield ns
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", peer], capture_output=True)


def test_snapshot_of_namespace(rs_netns, tmp_path):
    snap = take_snapshot(rs_netns)
    assert snap["host"] == rs_netns and snap["netns"] == rs_netns
    lo = next(link for link in snap["addr"] if link["ifname"] == "lo")
    assert {"family": "inet", "local": "10.66.1.10", "prefixlen": 32} in [
        {k: a[k] for k in ("family", "local", "prefixlen")} for a in lo["addr_info"]]
    conf = snap["sysctl"]["net.ipv4.conf"]
    assert conf["all"]["arp_ignore"] == 1 and conf["eth0"]["arp_ignore"] == 0
    assert conf["eth0"]["arp_announce"] == 2 and conf["all"]["arp_announce"] == 0
    assert snap["sysctl"]["net.ipv4.ip_forward"] == 0
    assert any(r["dst"] == "default" and r.get("gateway") == "10.66.0.1" for r in snap["route4"])
    assert {"local": "10.66.1.10", "port": 8080} in snap["listeners"]
    # A tool that is missing or unusable is an error entry, never a fake value.
    for item in ("ipvsadm_ln", "iptables_save"):
        assert (snap[item] is None) == (item in snap["errors"])
    back = read_snapshot(write_snapshot(snap, tmp_path / "snapshots" / "rs1.json"))
    assert back == json.loads(json.dumps(snap))


def test_busybox_fallbacks_match_iproute2(rs_netns):
    """Without `ip -j`, ss and grep (busybox on the VM director) the snapshot has the same content."""
    require_tool("busybox", "busybox-static")
    inner = make_runner(rs_netns)

    def busybox_only(argv: list[str]) -> str:
        if argv[0] == "ip" and "-j" in argv:
            raise RuntimeError("ip: invalid option -- 'j'")
        if argv[0] in ("ss", "grep", "nft", "ipvsadm", "iptables-save"):
            raise RuntimeError(f"{argv[0]}: applet not found")
        return inner(["busybox", *argv])

    full = take_snapshot(rs_netns)
    small = take_snapshot(runner=busybox_only, host="rs1")
    assert small["host"] == "rs1"
    assert small["sources"]["addr"] == "ip addr" and small["sources"]["listeners"].startswith("cat")
    assert small["sysctl"] == full["sysctl"]

    def addrs(snap):
        return sorted((l["ifname"], a["local"], a["prefixlen"]) for l in snap["addr"] for a in l["addr_info"])

    assert addrs(small) == addrs(full)
    assert sorted((r["dst"], r.get("gateway")) for r in small["route4"]) == \
        sorted((r["dst"], r.get("gateway")) for r in full["route4"])
    assert sorted(map(str, small["listeners"])) == sorted(map(str, full["listeners"]))
    assert small["nft"] is None and "applet not found" in small["errors"]["nft"]


def test_missing_namespace_is_a_domain_error():
    with pytest.raises(DoctorError, match="does not exist"):
        take_snapshot("t6x-no-such-namespace")


def test_read_snapshot_rejects_garbage(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(DoctorError, match="x.json"):
        read_snapshot(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DoctorError, match="not a dr-inspect host snapshot"):
        read_snapshot(bad)
    # verify catches InputError for bad input files: a broken snapshot is both kinds
    for broken, item in ((dict(addr="eth0", sysctl={}), "addr"),
                         (dict(addr=[{"ifname": "lo", "addr_info": "x"}], sysctl={}), "addr"),
                         (dict(addr=[], sysctl={"net.ipv4.conf": {"all": {"arp_ignore": "1"}}}), "sysctl"),
                         (dict(addr=[], sysctl={}, nft=["table"]), "nft")):
        bad.write_text(json.dumps(broken))
        with pytest.raises(InputError, match=f"x.json: item '{item}'"):
            read_snapshot(bad)



BUNDLED_SNAPSHOTS = sorted(Path(__file__).resolve().parent.parent.glob("captures/*/snapshots/*.json"))


@pytest.mark.parametrize("path, value, item, message", [
    (("addr", 1, "ifname"), {"a": 1}, "addr", "'ifname' is text"),
    (("addr", 1, "addr_info", 0, "local"), [1], "addr_info", "'local' is text"),
    (("addr", 1, "addr_info", 0, "prefixlen"), -1, "addr", "prefix length 0..128"),
    (("addr", 1, "addr_info", 0, "prefixlen"), True, "addr_info", "'prefixlen' is an integer"),
    (("route4", 0, "dev"), [None], "route4", "'dev' is text"),
    (("listeners", 0, "local"), [], "listeners", "'local' is text"),
    (("listeners", 0, "port"), "8000", "listeners", "'port' is an integer"),
])
def test_read_snapshot_rejects_wrong_field_types(tmp_path, path, value, item, message):
    """A hand-edited snapshot with a wrong type deep inside is one error line, not a TypeError
    traceback from a check (found by mutating the bundled snapshots)."""
    assert BUNDLED_SNAPSHOTS
    snap = json.loads(next(p for p in BUNDLED_SNAPSHOTS if p.name == "rs1.json").read_text())
    target = snap
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    bad = tmp_path / "rs1.json"
    bad.write_text(json.dumps(snap))
    with pytest.raises(InputError, match=f"rs1.json: item '{item}' should be .*{re.escape(message)}"):
        read_snapshot(bad)


def test_bundled_snapshots_pass_validation():
    assert BUNDLED_SNAPSHOTS
    for path in BUNDLED_SNAPSHOTS:
        assert read_snapshot(path)["addr"], path


def test_parse_busybox_ip_text():
    text = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
    inet 10.0.0.100/32 scope global lo
7: eth1@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue qlen 1000
    link/ether 52:54:00:00:00:02 brd ff:ff:ff:ff:ff:ff
    inet 10.1.0.2/24 brd 10.1.0.255 scope global eth1
    inet6 fe80::1/64 scope link
"""
    links = textparse.parse_ip_addr(text)
    assert [l["ifname"] for l in links] == ["lo", "eth1"]
    assert links[1]["address"] == "52:54:00:00:00:02" and links[1]["mtu"] == 1500
    assert [(a["local"], a["prefixlen"]) for a in links[0]["addr_info"]] == [("127.0.0.1", 8), ("10.0.0.100", 32)]
    routes = textparse.parse_ip_route("default via 10.1.0.1 dev eth1 \n10.1.0.0/24 dev eth1 scope link  src 10.1.0.2 \n")
    assert routes[0] == {"dst": "default", "gateway": "10.1.0.1", "dev": "eth1", "flags": []}
    assert routes[1]["prefsrc"] == "10.1.0.2"
    neigh = textparse.parse_ip_neigh("10.1.0.1 dev eth1 lladdr 02:fc:00:00:00:05 ref 1 used 0/0/0 probes 4 REACHABLE\n")
    assert neigh == [{"dst": "10.1.0.1", "dev": "eth1", "lladdr": "02:fc:00:00:00:05", "state": ["REACHABLE"]}]


def test_parse_listeners():
    proc = ("  sl  local_address rem_address   st\n"
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n"
            "   1: 0100007F:1F91 0200007F:0050 01 00000000:00000000 00:00000000 00000000\n"
            "   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n")
    assert textparse.parse_proc_net_tcp(proc) == [{"local": "127.0.0.1", "port": 8080}, {"local": "::", "port": 80}]
    ss = "LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 4096 [::]:80 [::]:*\nLISTEN 0 5 *:8000 *:*\n"
    assert textparse.parse_ss_listeners(ss) == [{"local": "0.0.0.0", "port": 22}, {"local": "::", "port": 80},
                                                {"local": "::", "port": 8000}]


def test_no_permission_to_read_a_namespace_is_not_checked(rs_netns):
    """An unprivileged user cannot enter the namespace: every item is an error, every check
    not-checked with that reason, none passes."""
    setpriv = require_tool("setpriv", "util-linux")
    def as_nobody(argv):
        proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                               "ip", "netns", "exec", rs_netns, *argv], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())
        return proc.stdout

    snap = take_snapshot(runner=as_nobody, host="rs1")
    assert snap["addr"] is None and "Operation not permitted" in snap["errors"]["addr"]
    for role in ("realserver", "director", "client"):
        report = doctor_snapshots({"rs1": snap}, ipaddress.ip_address("10.66.1.10"), 8080, roles={"rs1": role})
        assert {c.status for c in report.checks} == {"not-checked"}, role
        assert all(c.reason for c in report.checks)
        assert any("Operation not permitted" in c.reason for c in report.checks)


def test_unreadable_interface_list_is_recorded():
    """No `ip addr` and no sysctl folder listing: all/default are still read, and why the
    per-interface sysctls are missing is in errors (it used to be a silent empty list)."""

    def runner(argv: list[str]) -> str:
        if argv[0] == "cat" and argv[1].startswith("/proc/sys/net/ipv4/"):
            return "1\n"
        raise RuntimeError(f"{argv[0]}: not here")

    snap = take_snapshot(runner=runner, host="h")
    assert snap["addr"] is None and "addr" in snap["errors"]
    assert snap["errors"]["interfaces"] == "ls: not here"
    assert sorted(snap["sysctl"]["net.ipv4.conf"]) == ["all", "default"]
