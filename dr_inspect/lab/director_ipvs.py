"""The ipvs director backend: real IPVS configured with ipvsadm.

In the director namespace when the running kernel has IPVS; otherwise in the qemu VM of
dr_inspect.lab.vm (its NICs are taps on br_e and br_lvs in the switch namespace).
"""

from __future__ import annotations

from pathlib import Path

from dr_inspect.errors import LabError
from dr_inspect.lab import sysrun
from dr_inspect.lab.faults import FaultEffects
from dr_inspect.lab.plan import BRIDGE_RS, BRIDGE_VIP, LabPlan
from dr_inspect.lab.state import LabState, save_state


def ipvsadm_commands(*, vip: str, port: int, rips: list[str], scheduler: str = "rr") -> list[list[str]]:
    """The ipvsadm argv lists of a DR service (the seed's `-A -t VIP:PORT -s rr`, `-a ... -g`)."""
    service = f"{vip}:{port}"
    cmds = [["ipvsadm", "-A", "-t", service, "-s", scheduler]]
    cmds += [["ipvsadm", "-a", "-t", service, "-r", f"{rip}:{port}", "-g"] for rip in rips]
    return cmds


# The firewall of director-drops-invalid: an input hook at priority 0 runs before IPVS (LOCAL_IN,
# priority NAT_SRC-2). With DR the director never confirms a conntrack entry for the SYN (IPVS
# takes it before nf_confirm), so the client's next ACK is "mid-stream": with the hardening
# nf_conntrack_tcp_loose=0 conntrack refuses to pick it up and it is invalid.
DROP_INVALID_NFT = ("add table inet dr_fw",
                    "add chain inet dr_fw input { type filter hook input priority 0 ; policy accept ; }",
                    "add rule inet dr_fw input ct state invalid counter drop")
TCP_LOOSE_SYSCTL = "net.netfilter.nf_conntrack_tcp_loose"


def director_extra_commands(fx: FaultEffects) -> list[str]:
    """Shell lines for the director after ipvsadm setup (VM spec.extra_commands)."""
    # IPv6 off as on every lab host: no MLD reports or router solicitations in the captures.
    lines = [f"echo 1 > /proc/sys/net/ipv6/conf/{conf}/disable_ipv6 2>/dev/null || true"
             for conf in ("all", "default")]
    if fx.director_ip_forward:
        lines.append("echo 1 > /proc/sys/net/ipv4/ip_forward")
    if fx.director_drop_invalid:
        lines += [f"nft '{line}'" for line in DROP_INVALID_NFT]
        # after nft loaded conntrack, so the sysctl exists
        lines.append(f"echo 0 > /proc/sys/{TCP_LOOSE_SYSCTL.replace('.', '/')}")
    return lines


def start_ipvs_director(plan: LabPlan, state: LabState, fx: FaultEffects) -> None:
    cfg = plan.config
    rips = [rs.iface("eth12").ip for rs in plan.real_servers]
    if state.director_mode == "ipvs-netns":
        ns = plan.director.netns
        for argv in ipvsadm_commands(vip=cfg.vip, port=cfg.port, rips=rips, scheduler=cfg.scheduler):
            sysrun.run(sysrun.netns_exec(ns, argv))
        if fx.director_drop_invalid:
            sysrun.run(sysrun.netns_exec(ns, ["nft", "-f", "-"]), input="\n".join(DROP_INVALID_NFT) + "\n")
            sysrun.sysctl(ns, {TCP_LOOSE_SYSCTL: 0})
        return
    _start_vm(plan, state, fx, rips)


def _start_vm(plan: LabPlan, state: LabState, fx: FaultEffects, rips: list[str]) -> None:
    try:
        from dr_inspect.lab.vm import IpvsVmSpec, start_ipvs_vm, tap_names
    except ImportError as exc:
        raise LabError(f"this kernel has no IPVS and the IPVS VM module is unavailable ({exc}); "
                       "use --director nft") from None
    cfg = plan.config
    d = plan.director
    spec = IpvsVmSpec(vip=cfg.vip, vip_prefix=cfg.vip_prefix, port=cfg.port,
                      dip=d.iface("eth8").ip, dip_prefix=d.iface("eth8").prefix, real_servers=rips,
                      scheduler=cfg.scheduler, vip_ifname="eth7", dip_ifname="eth8",
                      vip_mac=d.iface("eth7").mac, dip_mac=d.iface("eth8").mac,
                      extra_commands=director_extra_commands(fx))
    workdir = Path(state.workdir) / "vm"
    # Recorded before the boot: a crash during it still leaves lab down what to remove.
    state.vm = {"pid": None, "taps": list(tap_names(state.prefix)), "netns": plan.switch_netns,
                "workdir": str(workdir)}
    save_state(state)
    vm = start_ipvs_vm(spec, netns=plan.switch_netns, bridge_vip=BRIDGE_VIP, bridge_rs=BRIDGE_RS,
                       tap_prefix=state.prefix, workdir=workdir)
    state._vm_handle = vm
    # the director's switch-side ports are the VM's taps (VIP side first)
    for ifname, tap in zip(("eth7", "eth8"), vm.taps):
        state.hosts["director"].interfaces[ifname]["peer"] = tap
    state.vm.update({"pid": vm.pid, "taps": list(vm.taps), "console_log": str(vm.console_log),
                     "control_socket": str(vm.control_socket), "accel": vm.accel,
                     "boot_seconds": round(vm.boot_seconds, 2)})
    save_state(state)


def stop_vm(state: LabState) -> list[str]:
    """Stop the lab's VM (handle of this process, or by recorded pid) and remove its taps."""
    rec = state.vm or {}
    if state._vm_handle is not None:
        state._vm_handle.stop()
    else:
        from dr_inspect.lab.vm import stop_vm_by_pid
        if not rec.get("pid") or not sysrun.pid_alive(int(rec["pid"])):
            return []
        stop_vm_by_pid(int(rec["pid"]), rec.get("taps", []), rec.get("netns", state.switch_netns))
    return [f"director VM (pid {rec.get('pid')}, taps {', '.join(rec.get('taps', []))})"]
