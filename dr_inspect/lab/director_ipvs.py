"""The ipvs director backend: real IPVS configured with ipvsadm.

In the director namespace when the running kernel has IPVS; otherwise in the qemu VM of
dr_inspect.lab.vm (its NICs are taps on br_e and br_lvs in the switch namespace).
"""

from __future__ import annotations

from typing import Any

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
# priority NAT_SRC-2), and conntrack sees only the client half of a DR connection.
DROP_INVALID_NFT = ("add table inet dr_fw",
                    "add chain inet dr_fw input { type filter hook input priority 0 ; policy accept ; }",
                    "add rule inet dr_fw input ct state invalid counter drop")


def director_extra_commands(fx: FaultEffects) -> list[str]:
    """Shell lines for the director after ipvsadm setup (VM spec.extra_commands)."""
    lines = []
    if fx.director_ip_forward:
        lines.append("echo 1 > /proc/sys/net/ipv4/ip_forward")
    if fx.director_drop_invalid:
        lines += [f"nft '{line}'" for line in DROP_INVALID_NFT]
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
        return
    _start_vm(plan, state, fx, rips)


def _start_vm(plan: LabPlan, state: LabState, fx: FaultEffects, rips: list[str]) -> None:
    try:
        from dr_inspect.lab.vm import IpvsVmSpec, start_ipvs_vm
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
    # record the VM before it exists so a crash during boot is still cleaned up
    state.vm = {"pid": None, "taps": [], "console_log": "", "starting": True}
    save_state(state)
    vm = start_ipvs_vm(spec, netns=plan.switch_netns, bridge_vip=BRIDGE_VIP, bridge_rs=BRIDGE_RS,
                       tap_prefix=state.prefix, workdir=state.workdir)
    state._vm_handle = vm
    state.vm = {"pid": vm.pid, "taps": list(vm.taps), "console_log": str(vm.console_log)}
    state.vm.update(_handle_record(vm))
    save_state(state)


def _handle_record(vm: Any) -> dict[str, Any]:
    """Whatever the VM handle offers to re-attach from another process."""
    for attr in ("to_record", "record", "to_json", "as_dict"):
        fn = getattr(vm, attr, None)
        if callable(fn):
            try:
                data = fn()
            except Exception:
                continue
            if isinstance(data, dict):
                return {"handle": data}
    return {}


def attach_vm(state: LabState) -> Any:
    """A VmHandle for the lab's running VM (from another process)."""
    from dr_inspect.lab import vm as vm_module
    for name in ("attach_vm", "attach", "VmHandle.from_record"):
        obj: Any = vm_module
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if callable(obj):
            record = (state.vm or {}).get("handle", state.vm)
            return obj(record)
    raise LabError("the IPVS VM module offers no way to re-attach to a running VM")


def stop_vm(state: LabState) -> list[str]:
    if state._vm_handle is not None:
        state._vm_handle.stop()
        return [f"vm pid {state.vm.get('pid') if state.vm else '?'} stopped"]
    return []
