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
