"""A running lab as seen by the API (LabState, LabHost) and its state file in /run/dr-inspect/.

The state file records everything `lab up` created (namespaces, processes, VM, taps) so that
`lab down` can remove it from another process, also after a crash.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dr_inspect.errors import LabError
from dr_inspect.lab.plan import BRIDGE_RS, BRIDGE_VIP, LabConfig, check_prefix

STATE_DIR = Path(os.environ.get("DR_INSPECT_RUN_DIR", "/run/dr-inspect"))


def state_path(prefix: str) -> Path:
    return STATE_DIR / f"{check_prefix(prefix)}.json"


def workdir_for(prefix: str) -> Path:
    return STATE_DIR / check_prefix(prefix)


@dataclass
class LabHost:
    name: str                                   # client | director | rs1 ...
    role: str                                   # client | director | real-server
    netns: str | None                           # None for the director inside the IPVS VM
    interfaces: dict[str, dict[str, Any]]       # ifname -> {"ip", "prefix", "mac", "bridge", "peer"}
    loopback_vip: str | None = None             # real servers: "VIP/32" on lo (None: no VIP there)


@dataclass
class LabState:
    prefix: str
    config: LabConfig
    switch_netns: str
    hosts: dict[str, LabHost]
    bridges: list[str] = field(default_factory=lambda: [BRIDGE_VIP, BRIDGE_RS])
    namespaces: list[str] = field(default_factory=list)
    processes: dict[str, int] = field(default_factory=dict)     # what -> pid
    vm: dict[str, Any] | None = None                            # pid, taps, console_log, ...
    workdir: str = ""
    director_mode: str = ""                                     # nft | ipvs-netns | ipvs-vm
    leftovers: list[str] = field(default_factory=list)          # lab_status: found but unrecorded
    _vm_handle: Any = field(default=None, repr=False, compare=False)

    @property
    def vip(self) -> str:
        return self.config.vip

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def real_servers(self) -> list[LabHost]:
        return [h for h in self.hosts.values() if h.role == "real-server"]

    def host(self, name: str) -> LabHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise LabError(f"no host {name!r} in lab {self.prefix!r} (hosts: {', '.join(self.hosts)})") from None

    def run(self, host_name: str, argv: list[str], *, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv in that host: `ip netns exec`, or a shell line in the IPVS VM."""
        host = self.host(host_name)
        if host.netns is not None:
            return subprocess.run(["ip", "netns", "exec", host.netns, *argv], capture_output=True,
                                  text=True, timeout=timeout, input=input)
        vm = self.vm_handle()
        line = " ".join(shlex.quote(a) for a in argv)
        result = vm.execute(line, timeout=timeout)   # LabError if the VM is gone
        return subprocess.CompletedProcess(argv, result.returncode, result.output, "")

    def vm_handle(self) -> Any:
        if self._vm_handle is None:
            if not self.vm:
                raise LabError(f"lab {self.prefix!r}: host has no namespace and no VM is recorded")
            from dr_inspect.lab.vm import attach_vm
            self._vm_handle = attach_vm(self)
        return self._vm_handle

    # -- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("_vm_handle", "leftovers", "config", "hosts")}
        data["config"] = asdict(self.config) | {"faults": list(self.config.faults)}
        data["hosts"] = {name: asdict(h) for name, h in self.hosts.items()}
        return json.loads(json.dumps(data))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LabState":
        cfg = dict(data["config"])
        cfg["faults"] = tuple(cfg.get("faults", ()))
        hosts = {name: LabHost(**h) for name, h in data["hosts"].items()}
        return cls(prefix=data["prefix"], config=LabConfig(**cfg), switch_netns=data["switch_netns"],
                   hosts=hosts, bridges=list(data.get("bridges", [BRIDGE_VIP, BRIDGE_RS])),
                   namespaces=list(data.get("namespaces", [])),
                   processes={k: int(v) for k, v in data.get("processes", {}).items()},
                   vm=data.get("vm"), workdir=data.get("workdir", ""),
                   director_mode=data.get("director_mode", ""))


def save_state(state: LabState) -> Path:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = state_path(state.prefix)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2))
    tmp.replace(path)
    return path


def scheduler_for_netns(netns: str | None) -> str | None:
    """The scheduler of the lab whose switch namespace `netns` is (None: not a lab's, or no
    state), so a watch on a lab judges DR011 by what its director really does."""
    if not netns or not netns.endswith("-sw"):
        return None
    try:
        state = load_state(netns[:-3])
    except LabError:
        return None
    return state.config.effective_scheduler if state and state.switch_netns == netns else None


def load_state(prefix: str) -> LabState | None:
    path = state_path(prefix)
    if not path.is_file():
        return None
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{path}: unreadable lab state ({exc}); 'dr-inspect lab down --prefix {prefix}' "
                       "still removes leftovers by name") from None
