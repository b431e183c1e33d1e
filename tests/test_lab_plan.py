"""Pure parts of the lab: address plan, MACs, nft ruleset, ipvsadm commands, faults, state file."""

from __future__ import annotations

import pytest

from dr_inspect.errors import LabError
from dr_inspect.lab.director_ipvs import director_extra_commands, ipvsadm_commands
from dr_inspect.lab.director_nft import nft_director_ruleset
from dr_inspect.lab.faults import FAULTS, STALE_DIRECTOR_MAC, check_faults, fault_effects
from dr_inspect.lab.plan import LabConfig, mac_for, plan_lab
from dr_inspect.lab.state import LabHost, LabState


def test_default_plan_is_the_seed_topology():
    plan = plan_lab(LabConfig())
    assert plan.switch_netns == "dri-sw"
    client, director, rs1 = plan.hosts
    assert (client.netns, client.iface("eth0").ip, client.iface("eth0").bridge) == ("dri-client", "192.168.7.2", "br_e")
    assert (director.iface("eth7").ip, director.iface("eth7").prefix, director.iface("eth7").bridge) == \
        ("192.168.7.33", 24, "br_e")
    assert (director.iface("eth8").ip, director.iface("eth8").bridge) == ("192.168.88.10", "br_lvs")
    assert rs1.netns == "dri-rs1"
    assert (rs1.iface("eth14").ip, rs1.iface("eth14").bridge) == ("192.168.7.99", "br_e")
    assert (rs1.iface("eth12").ip, rs1.iface("eth12").bridge) == ("192.168.88.20", "br_lvs")


def test_more_real_servers_take_the_next_addresses_and_macs_are_deterministic():
    plan = plan_lab(LabConfig(prefix="t3", real_servers=3))
    rs = plan.real_servers
    assert [r.name for r in rs] == ["rs1", "rs2", "rs3"]
    assert [r.iface("eth14").ip for r in rs] == ["192.168.7.99", "192.168.7.100", "192.168.7.101"]
    assert [r.iface("eth12").ip for r in rs] == ["192.168.88.20", "192.168.88.21", "192.168.88.22"]
    assert mac_for("192.168.7.33") == "02:00:c0:a8:07:21"
    macs = [i.mac for h in plan.hosts for i in h.interfaces]
    assert len(set(macs)) == len(macs)
    assert plan_lab(LabConfig(prefix="t3", real_servers=3)).hosts[2].iface("eth12").mac == rs[0].iface("eth12").mac
    assert all(len(i.peer) <= 15 for h in plan.hosts for i in h.interfaces)


def test_vm_director_has_no_namespace():
    plan = plan_lab(LabConfig(director="ipvs"), director_in_vm=True)
    assert plan.director.netns is None


@pytest.mark.parametrize("cfg, message", [
    (LabConfig(prefix="Bad-Prefix"), "prefix"),
    (LabConfig(director="haproxy"), "director"),
    (LabConfig(real_servers=0), "real servers"),
    (LabConfig(vip="192.168.88.33"), "overlaps"),
    (LabConfig(vip="192.168.7.2"), "collides"),
    (LabConfig(vip="nope"), "IPv4"),
    (LabConfig(port=70000), "port"),
])
def test_bad_configs_are_refused(cfg, message):
    with pytest.raises(LabError, match=message):
        cfg.validate()


def test_nft_ruleset_rewrites_macs_and_hashes_flows():
    text = nft_director_ruleset(vip="192.168.7.33", port=8000, vip_ifname="eth7", vip_mac="02:00:c0:a8:07:21",
                                dip_ifname="eth8", dip_mac="02:00:c0:a8:58:0a",
                                rs_macs=["02:00:c0:a8:58:14", "02:00:c0:a8:58:15"])
    assert 'hook ingress device "eth7"' in text
    assert "ether daddr 02:00:c0:a8:07:21 ip daddr 192.168.7.33 tcp dport 8000" in text
    assert "ether saddr set 02:00:c0:a8:58:0a" in text
    assert "jhash ip saddr . tcp sport mod 2 seed 0xd1 map { 0 : 02:00:c0:a8:58:14, 1 : 02:00:c0:a8:58:15 }" in text
    assert 'fwd to "eth8"' in text
    assert "eth8\" priority" not in text
    looped = nft_director_ruleset(vip="192.168.7.33", port=8000, vip_ifname="eth7", vip_mac="02:00:c0:a8:07:21",
                                  dip_ifname="eth8", dip_mac="02:00:c0:a8:58:0a", rs_macs=["02:00:c0:a8:58:14"],
                                  dispatch_on_dip=True)
    assert 'hook ingress device "eth8"' in looped


def test_ipvsadm_commands_are_the_seeds():
    cmds = ipvsadm_commands(vip="192.168.7.33", port=8000, rips=["192.168.88.20", "192.168.88.21"])
    assert cmds[0] == ["ipvsadm", "-A", "-t", "192.168.7.33:8000", "-s", "rr"]
    assert cmds[1] == ["ipvsadm", "-a", "-t", "192.168.7.33:8000", "-r", "192.168.88.20:8000", "-g"]
    assert len(cmds) == 3


def test_every_fault_is_documented_with_rules():
    for fault in FAULTS.values():
        assert fault.misconfiguration and fault.symptom
        assert fault.rules and all(r.startswith("DR") for r in fault.rules)
    assert set(FAULTS) == {"rs-answers-arp", "rs-arp-announce", "rs-no-vip", "rs-vip-wide-mask",
                           "reply-via-director", "rs-rp-filter", "port-mismatch", "stale-arp",
                           "director-drops-invalid", "forwarding-loop"}


def test_fault_checks_and_effects():
    with pytest.raises(LabError, match="unknown fault"):
        check_faults(["no-such-fault"], "nft")
    with pytest.raises(LabError, match="ipvs"):
        check_faults(["director-drops-invalid"], "nft")
    check_faults(["director-drops-invalid", "rs-answers-arp"], "ipvs")
    args = dict(client_ip="192.168.7.2", vip="192.168.7.33", dip="192.168.88.10")
    fx = fault_effects(["rs-answers-arp", "port-mismatch"], **args)
    assert fx.rs_sysctl["net.ipv4.conf.all.arp_ignore"] == 0 and fx.rs_port_offset == 1
    assert fault_effects(["rs-vip-wide-mask"], **args).rs_vip_prefix == 24
    assert fault_effects(["rs-no-vip"], **args).rs_vip_prefix is None
    loop = fault_effects(["forwarding-loop"], **args)
    assert loop.rs_vip_prefix is None and loop.rs_sysctl["net.ipv4.ip_forward"] == 1
    assert loop.rs_routes == ["route replace 192.168.7.33/32 via 192.168.88.10 dev eth12"]
    assert fault_effects(["stale-arp"], **args).client_static_vip_mac == STALE_DIRECTOR_MAC
    via = fault_effects(["reply-via-director"], **args)
    assert via.director_ip_forward and via.rs_routes == ["route replace 192.168.7.2/32 via 192.168.88.10 dev eth12"]
    invalid = fault_effects(["director-drops-invalid"], **args)
    assert any("ct state invalid" in line and "drop" in line for line in director_extra_commands(invalid))


def test_state_round_trips_through_json():
    state = LabState(prefix="t3", config=LabConfig(prefix="t3", director="nft", faults=("rs-no-vip",)),
                     switch_netns="t3-sw",
                     hosts={"client": LabHost("client", "client", "t3-client",
                                              {"eth0": {"ip": "192.168.7.2", "prefix": 24, "mac": "02:00:c0:a8:07:02",
                                                        "bridge": "br_e", "peer": "c-eth0"}})},
                     namespaces=["t3-sw", "t3-client"], processes={"rs1-http": 123}, workdir="/run/x",
                     director_mode="nft")
    back = LabState.from_json(state.to_json())
    assert back.config == state.config
    assert back.hosts == state.hosts
    assert back.processes == {"rs1-http": 123} and back.namespaces == ["t3-sw", "t3-client"]
