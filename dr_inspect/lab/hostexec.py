"""Run a command in one host of a running lab (`dr-inspect lab exec HOST CMD...`), and where the
lab keeps its files (`lab status`).

Hosts in a network namespace run it with `ip netns exec`; the IPVS director inside the qemu VM
runs it through the VM's control channel (LabState.run, which uses lab/vm.py's VmHandle)."""

from __future__ import annotations

import subprocess

from dr_inspect.errors import LabError
from dr_inspect.lab.state import LabState


def exec_in_host(state: LabState, host: str, argv: list[str], *,
                 timeout: float = 60.0) -> subprocess.CompletedProcess:
    """argv run in `host` of the lab (client, director, rs1 ...); its output and exit status.

    The VM has no separate stderr: its output comes back as stdout."""
    if not argv:
        raise LabError("give the command to run, e.g. `dr-inspect lab exec director ipvsadm -Ln`")
    state.host(host)                      # LabError naming the lab's hosts when unknown
    try:
        return state.run(host, list(argv), timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: command not found in {host}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: still running in {host} after {timeout:g} s "
                       "(--timeout)") from None


def lab_files(state: LabState) -> dict[str, str]:
    """The lab's work folder and, with the IPVS VM, the VM's console log (what to read when the
    director misbehaves)."""
    files = {}
    if state.workdir:
        files["work folder"] = state.workdir
    console = (state.vm or {}).get("console_log")
    if console:
        files["director console log"] = str(console)
    return files


def vm_director_hint(netns: str) -> str | None:
    """When `netns` names the director of a running lab whose director is the IPVS VM (it has
    no namespace), how to reach that director instead; None otherwise."""
    from dr_inspect.lab.state import STATE_DIR, load_state

    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state = load_state(path.stem)
        except (LabError, OSError):
            continue
        director = state.hosts.get("director") if state is not None else None
        if director is None or director.netns is not None:
            continue
        if netns.startswith(f"{state.prefix}-") and netns not in state.namespaces:
            prefix = "" if state.prefix == "dri" else f"--prefix {state.prefix} "
            return (f"--netns {netns}: the director of lab {state.prefix!r} runs IPVS in a qemu VM, "
                    "not in a namespace, so doctor cannot look at it from here; run commands in it "
                    f"with `dr-inspect lab exec {prefix}director ipvsadm -Ln --stats` (or `... ip "
                    "addr`, `sysctl -a`), or check a capture set's director snapshot with "
                    "`dr-inspect doctor SET`")
    return None
