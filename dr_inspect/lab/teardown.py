"""`lab down` and `lab status`: find everything a lab started, by its state file and markers.

Only what the lab recorded is touched: the namespaces its state file or its markers
(state.marker_dir, one file per namespace, kept apart from the state file) name, the processes
inside them, and the recorded pids (VM, servers) that still look like the lab's. A namespace that
merely starts with `<prefix>-` (a container runtime's `cni-...` under `--prefix cni`) is left
alone: `lab status` lists it as unrecorded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dr_inspect.errors import LabError
from dr_inspect.lab import sysrun
from dr_inspect.lab.plan import LabConfig, check_prefix
from dr_inspect.lab.state import LabState, load_state, marked_namespaces, state_path, workdir_for


def _prefixed_namespaces(prefix: str) -> list[str]:
    """Every existing namespace named `<prefix>-*`, the lab's or not."""
    return sorted(ns for ns in sysrun.list_netns() if ns.startswith(f"{prefix}-"))


def _lab_namespaces(prefix: str, state: LabState | None = None) -> list[str]:
    """The existing namespaces the lab recorded (state file or markers)."""
    recorded = set(marked_namespaces(prefix)) | set(state.namespaces if state is not None else ())
    return sorted(ns for ns in _prefixed_namespaces(prefix) if ns in recorded)


def prefix_namespaces(prefix: str) -> tuple[list[str], list[str]]:
    """(the existing `<prefix>-*` namespaces the lab recorded, those it never made)."""
    state = None
    try:
        state = load_state(prefix)
    except LabError:
        pass                        # an unreadable state file: the markers still tell
    own = _lab_namespaces(prefix, state)
    return own, sorted(set(_prefixed_namespaces(prefix)) - set(own))


def _recorded_pids(state: LabState | None) -> dict[str, int]:
    if state is None:
        return {}
    pids = dict(state.processes)
    if state.vm and state.vm.get("pid"):
        pids["vm"] = int(state.vm["pid"])
    return pids


def _is_lab_process(pid: int, netns_names: list[str], what: str) -> bool:
    """Guard against pid reuse: the pid must still look like what the lab started."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if what == "vm":
        return "qemu" in cmdline
    return "dr_inspect" in cmdline or any(ns in cmdline for ns in netns_names)


def lab_down(prefix: str) -> list[str]:
    """Remove every namespace, process, VM, bridge, veth and tap of lab `prefix`. What was removed."""
    check_prefix(prefix)
    removed: list[str] = []
    try:
        state = load_state(prefix)
    except LabError:
        state = None  # unreadable state: clean up by name
    namespaces = _lab_namespaces(prefix, state)
    if state is not None and state.vm is not None:
        try:
            from dr_inspect.lab.director_ipvs import stop_vm
            removed += stop_vm(state)
        except Exception as exc:  # keep going: the pid kill below still ends qemu
            removed.append(f"vm stop failed ({exc}); killing by pid")
    for what, pid in _recorded_pids(state).items():
        if sysrun.pid_alive(pid) and _is_lab_process(pid, namespaces, what) and sysrun.kill_pid(pid):
            removed.append(f"process {what} (pid {pid})")
    for ns in namespaces:
        for pid in sysrun.netns_pids(ns):
            if sysrun.kill_pid(pid):
                removed.append(f"process pid {pid} in netns {ns}")
    # the switch namespace last: deleting it removes the bridges, the veth peers and the taps
    for ns in sorted(namespaces, key=lambda n: n.endswith("-sw")):
        devices = _devices(ns) if ns.endswith("-sw") else []
        sysrun.run(["ip", "netns", "del", ns], check=False)
        removed.append(f"netns {ns}" + (f" (with {', '.join(devices)})" if devices else ""))
    path = state_path(prefix)
    if path.exists():
        path.unlink()
        removed.append(f"state file {path}")
    workdir = workdir_for(prefix)
    left = _lab_namespaces(prefix, state)
    if left:
        # keep the markers: a later lab down still knows these are the lab's
        raise LabError(f"could not delete network namespace(s) {', '.join(left)} of lab "
                       f"{prefix!r}; run 'dr-inspect lab down --prefix {prefix}' again")
    if workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        removed.append(f"workdir {workdir}")
    return removed


def _devices(netns: str) -> list[str]:
    proc = sysrun.run(["ip", "-n", netns, "-o", "link", "show"], check=False)
    names = []
    for line in proc.stdout.splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            name = parts[1].split("@")[0]
            if name != "lo":
                names.append(name)
    return names


def lab_status(prefix: str) -> LabState | None:
    """The running lab (with leftovers noted), or None when nothing of `prefix` exists."""
    check_prefix(prefix)
    try:
        state = load_state(prefix)
    except LabError as exc:
        state = LabState(prefix=prefix, config=LabConfig(prefix=prefix), switch_netns=f"{prefix}-sw",
                         hosts={}, leftovers=[str(exc)])
    namespaces = _lab_namespaces(prefix, state)
    foreign = sorted(set(_prefixed_namespaces(prefix)) - set(namespaces))
    if state is None:
        if not namespaces and not marked_namespaces(prefix):
            return None
        state = LabState(prefix=prefix, config=LabConfig(prefix=prefix), switch_netns=f"{prefix}-sw",
                         hosts={}, namespaces=[],
                         leftovers=[f"no state file {state_path(prefix)}: leftovers of a crashed lab"])
    for ns in namespaces:
        if ns not in state.namespaces:
            state.leftovers.append(f"netns {ns} (marked as the lab's; lab down removes it)")
            for pid in sysrun.netns_pids(ns):
                state.leftovers.append(f"process pid {pid} in netns {ns}")
    for ns in foreign:
        state.leftovers.append(f"netns {ns} shares the prefix but the lab never made it: "
                               "lab down leaves it alone")
    for ns in state.namespaces:
        if ns not in namespaces:
            state.leftovers.append(f"netns {ns} recorded but missing")
    for what, pid in _recorded_pids(state).items():
        if not sysrun.pid_alive(pid):
            state.leftovers.append(f"process {what} (pid {pid}) recorded but not running")
    return state


def lab_inventory(state: LabState) -> dict[str, list[str]]:
    """What exists now: namespaces, devices in the switch namespace, processes (pid, what)."""
    namespaces = _lab_namespaces(state.prefix, state)
    devices = _devices(state.switch_netns) if state.switch_netns in namespaces else []
    processes = [f"{what} pid {pid}" + ("" if sysrun.pid_alive(pid) else " (gone)")
                 for what, pid in _recorded_pids(state).items()]
    known = set(_recorded_pids(state).values())
    for ns in namespaces:
        for pid in sysrun.netns_pids(ns):
            if pid not in known:
                processes.append(f"pid {pid} in netns {ns}")
    taps = list(state.vm.get("taps", [])) if state.vm else []
    return {"namespaces": namespaces, "switch devices": devices, "taps": taps, "processes": processes}
