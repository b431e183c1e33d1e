"""`lab up`: turn a LabPlan into namespaces, bridges, veths, addresses, sysctls, servers, director.

Every object is recorded in the state file as soon as it exists, and a failure half-way tears
down what was built, so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dr_inspect
from dr_inspect.errors import LabError
from dr_inspect.lab import sysrun
from dr_inspect.lab.director_nft import nft_director_ruleset
from dr_inspect.lab.faults import FaultEffects, check_faults, fault_effects
from dr_inspect.lab.plan import BRIDGE_RS, BRIDGE_VIP, LabConfig, LabPlan, PlannedHost, plan_lab
from dr_inspect.lab.state import LabHost, LabState, load_state, save_state, state_path, workdir_for
from dr_inspect.lab.teardown import prefix_namespaces

BRIDGE_MACS = {BRIDGE_VIP: "02:00:00:00:0e:01", BRIDGE_RS: "02:00:00:00:0e:02"}

# Every lab host starts from these (new namespaces inherit IPv4 'all'/'default' from the root
# namespace, so nothing is left to chance). IPv6 off keeps captures to the seed's traffic.
BASE_SYSCTL = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
    "net.ipv4.ip_forward": 0,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
    "net.ipv4.conf.all.arp_ignore": 0,
    "net.ipv4.conf.default.arp_ignore": 0,
    "net.ipv4.conf.all.arp_announce": 0,
    "net.ipv4.conf.default.arp_announce": 0,
}
RS_SYSCTL = {
    "net.ipv4.conf.all.arp_ignore": 1,
    "net.ipv4.conf.all.arp_announce": 2,
    "net.ipv4.conf.eth14.arp_ignore": 1,
    "net.ipv4.conf.eth14.arp_announce": 2,
    "net.ipv4.conf.eth12.arp_ignore": 1,
    "net.ipv4.conf.eth12.arp_announce": 2,
    "net.ipv4.conf.eth14.rp_filter": 0,
    "net.ipv4.conf.eth12.rp_filter": 0,
}


def python_env() -> dict[str, str]:
    """Environment for `python -m dr_inspect...` inside a namespace: the package importable."""
    env = dict(os.environ)
    root = str(Path(dr_inspect.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def ipvs_in_kernel() -> bool:
    """True when the running kernel can do IPVS in a namespace (module loaded or loadable)."""
    if Path("/proc/net/ip_vs").exists():
        return True
    modprobe = shutil.which("modprobe")
    if modprobe:
        subprocess.run([modprobe, "-q", "ip_vs"], capture_output=True)
    return Path("/proc/net/ip_vs").exists()


def _check_prefix_free(prefix: str) -> None:
    """LabError when a lab of this prefix is up or left over (lab down removes it), or when
    namespaces named `<prefix>-*` exist that no lab made (lab down leaves those alone, so it
    cannot be the advice)."""
    own, foreign = prefix_namespaces(prefix)
    if state_path(prefix).exists() or own:
        raise LabError(f"lab {prefix!r} is already up or left over "
                       f"({', '.join(own) or state_path(prefix)}): run 'dr-inspect lab down "
                       f"--prefix {prefix}' first, or use another --prefix")
    if foreign:
        raise LabError(f"--prefix {prefix}: network namespace(s) {', '.join(foreign)} exist but "
                       f"no lab made them (no state file or marker of lab {prefix!r} names them); "
                       "the lab never touches a namespace it did not make, and lab down leaves "
                       f"them alone: use another --prefix, or, if they are yours and unused, "
                       f"remove them with 'ip netns delete {foreign[0]}'")


def lab_up(cfg: LabConfig, progress: Callable[[str], None] | None = None) -> LabState:
    """Bring the lab up; LabError if the prefix is in use, MissingToolError names the package.

    progress(message) is told about the slow steps (booting the IPVS VM).
    """
    cfg.validate()
    check_faults(cfg.faults, cfg.director, cfg.real_servers)
    sysrun.need_tool("ip", "network namespaces")
    sysrun.need_tool("sysctl", "namespace settings")
    if cfg.director == "nft":
        sysrun.need_tool("nft", "the nft director backend")
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, bridges, nftables)")
    _check_prefix_free(cfg.prefix)
    mode = "nft"
    if cfg.director == "ipvs":
        if ipvs_in_kernel():
            sysrun.need_tool("ipvsadm", "the ipvs director backend")
            mode = "ipvs-netns"
        else:
            sysrun.need_tool("qemu-system-x86_64", "the IPVS director VM (this kernel has no IPVS)")
            mode = "ipvs-vm"
    plan = plan_lab(cfg, director_in_vm=(mode == "ipvs-vm"))
    workdir = workdir_for(cfg.prefix)
    workdir.mkdir(parents=True, exist_ok=True)
    state = LabState(prefix=cfg.prefix, config=cfg, switch_netns=plan.switch_netns,
                     hosts={h.name: LabHost(h.name, h.role, h.netns,
                                            {i.ifname: i.as_dict() for i in h.interfaces})
                            for h in plan.hosts},
                     workdir=str(workdir), director_mode=mode)
    save_state(state)
    try:
        _build(plan, state, progress or (lambda _msg: None))
    except BaseException:
        from dr_inspect.lab.teardown import lab_down
        lab_down(cfg.prefix)
        raise
    save_state(state)
    return state


def _build(plan: LabPlan, state: LabState, progress: Callable[[str], None]) -> None:
    cfg = plan.config
    client_ip = plan.client.iface("eth0").ip
    dip = plan.director.iface("eth8").ip
    fx = fault_effects(cfg.faults, client_ip=client_ip, vip=cfg.vip, dip=dip)
    hosts_ns = [h for h in plan.hosts if h.netns]
    # namespaces first, recorded before anything goes in them
    for ns in [plan.switch_netns] + [h.netns for h in hosts_ns]:
        sysrun.run(["ip", "netns", "add", ns])
        state.namespaces.append(ns)
        save_state(state)
    for ns in [plan.switch_netns] + [h.netns for h in hosts_ns]:
        sysrun.sysctl(ns, BASE_SYSCTL)
    _build_switch(plan)
    for host in hosts_ns:
        _build_host(plan, state, host, fx)
    for host in plan.real_servers:
        sysrun.sysctl(host.netns, _rs_sysctl(host, fx))
    if fx.client_static_vip_mac:
        sysrun.ip_batch(plan.client.netns, [f"neigh replace {cfg.vip} lladdr {fx.client_static_vip_mac} "
                                            "dev eth0 nud permanent"])
    _start_web_servers(plan, state, fx)
    if state.director_mode == "nft":
        _nft_director(plan, fx)
    else:
        from dr_inspect.lab.director_ipvs import start_ipvs_director
        if state.director_mode == "ipvs-vm":
            progress("booting the IPVS director VM (this kernel has no IPVS)")
        start_ipvs_director(plan, state, fx)
    _wait_listening(plan, state, fx)


def _build_switch(plan: LabPlan) -> None:
    lines = []
    for bridge, mac in BRIDGE_MACS.items():
        lines += [f"link add {bridge} address {mac} type bridge stp_state 0 mcast_snooping 0",
                  f"link set {bridge} up"]
    for host in plan.hosts:
        if host.netns is None:
            continue  # the VM's taps are made by the VM module
        for i in host.interfaces:
            lines += [f"link add {i.peer} type veth peer name {i.ifname} address {i.mac} netns {host.netns}",
                      f"link set {i.peer} master {i.bridge} up"]
    lines.append("link set lo up")
    sysrun.ip_batch(plan.switch_netns, lines)


def _build_host(plan: LabPlan, state: LabState, host: PlannedHost, fx: FaultEffects) -> None:
    cfg = plan.config
    lines = ["link set lo up"]
    for i in host.interfaces:
        lines += [f"addr add {i.ip}/{i.prefix} dev {i.ifname}", f"link set {i.ifname} up"]
    if host.role == "real-server":
        vip_prefix = fx.rs_vip_prefix if host.name == fx.rs else 32
        if vip_prefix is not None:
            lines.append(f"addr add {cfg.vip}/{vip_prefix} dev lo")
            state.hosts[host.name].loopback_vip = f"{cfg.vip}/{vip_prefix}"
        if host.name == fx.rs:
            lines += fx.rs_routes
    sysrun.ip_batch(host.netns, lines)
    if host.role == "director" and fx.director_ip_forward:
        sysrun.sysctl(host.netns, {"net.ipv4.ip_forward": 1})


def _rs_sysctl(host: PlannedHost, fx: FaultEffects) -> dict[str, int]:
    settings = dict(RS_SYSCTL)
    if host.name == fx.rs:
        settings.update(fx.rs_sysctl)
    return settings


def rs_port(plan_or_cfg: LabConfig, host_name: str, fx: FaultEffects) -> int:
    return plan_or_cfg.port + (fx.rs_port_offset if host_name == fx.rs else 0)


def _start_web_servers(plan: LabPlan, state: LabState, fx: FaultEffects) -> None:
    env = python_env()
    for host in plan.real_servers:
        port = rs_port(plan.config, host.name, fx)
        label = f"{host.name} {host.iface('eth12').ip}"
        log = open(Path(state.workdir) / f"{host.name}-http.log", "ab")
        try:
            proc = subprocess.Popen(
                sysrun.netns_exec(host.netns, [sys.executable, "-m", "dr_inspect.lab.webserver",
                                               "--name", host.name, "--label", label,
                                               "--port", str(port)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        finally:
            log.close()
        state.processes[f"{host.name}-http"] = proc.pid
        save_state(state)


def _listening(pid: int, port: int) -> bool:
    """Is a TCP socket listening on `port` in the namespace of process `pid`?"""
    try:
        text = Path(f"/proc/{pid}/net/tcp").read_text()
    except OSError:
        return False
    want = f":{port:04X} "
    return any(want in line and line.split()[3] == "0A" for line in text.splitlines()[1:])


def _wait_listening(plan: LabPlan, state: LabState, fx: FaultEffects, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for host in plan.real_servers:
        pid = state.processes[f"{host.name}-http"]
        port = rs_port(plan.config, host.name, fx)
        while not _listening(pid, port):
            if not sysrun.pid_alive(pid):
                log = Path(state.workdir) / f"{host.name}-http.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                raise LabError(f"HTTP server of {host.name} exited: {' '.join(tail) or 'no output'}")
            if time.monotonic() > deadline:
                raise LabError(f"HTTP server of {host.name} not listening on port {port} after {timeout:g}s")
            time.sleep(0.05)


def _nft_director(plan: LabPlan, fx: FaultEffects) -> None:
    d = plan.director
    ruleset = nft_director_ruleset(vip=plan.config.vip, port=plan.config.port, vip_ifname="eth7",
                                   vip_mac=d.iface("eth7").mac, dip_ifname="eth8", dip_mac=d.iface("eth8").mac,
                                   rs_macs=[rs.iface("eth12").mac for rs in plan.real_servers],
                                   dispatch_on_dip=fx.director_dispatch_on_dip)
    sysrun.run(sysrun.netns_exec(d.netns, ["nft", "-f", "-"]), input=ruleset)


def loaded_state(prefix: str) -> LabState:
    state = load_state(prefix)
    if state is None:
        raise LabError(f"lab {prefix!r} is not up (no {state_path(prefix)}): run 'dr-inspect lab up --prefix {prefix}'")
    return state
