"""sshd in the lab's namespaces, so remote capture and doctor run over real ssh (tests, demos).

    lab = start_sshd(state, Path(tmp))         # client, director, real servers, the switch
    ssh -F lab.config rmt-rs1 ...               # or root@lab.address("rs1")
    stop_sshd(lab)                              # lab_down also ends them (pids in the namespaces)

Each namespace gets a management link to this (root) namespace: a veth pair with a /30 of
198.18.0.0/15 (RFC 2544's benchmark range, never routed), sshd listening on the namespace's end.
The lab's bridges never see ssh. Everything ssh needs is made fresh in `folder`: a host key per
namespace, a user key, authorized_keys, known_hosts and a client config file for `ssh -F` that
pins them (IdentitiesOnly, UserKnownHostsFile, StrictHostKeyChecking yes), so the user's own
~/.ssh is neither read nor written.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from dr_inspect.errors import LabError, MissingToolError
from dr_inspect.lab import sysrun
from dr_inspect.lab.build import _listening
from dr_inspect.lab.state import LabState, save_state

MGMT_IFNAME = "mgmt0"
SSH_PORT = 22
START_TIMEOUT_S = 20.0
# sshd notices a dead connection within ~3 s, and ends the session (and our remote capture)
_SSHD_CONFIG = """\
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
ClientAliveInterval 1
ClientAliveCountMax 3
PrintMotd no
LogLevel VERBOSE
"""


@dataclass
class SshLab:
    folder: Path
    config: Path                        # ssh -F this
    identity: Path
    known_hosts: Path
    prefix: str
    addresses: dict[str, str] = field(default_factory=dict)   # lab host -> its sshd address
    netns: dict[str, str] = field(default_factory=dict)       # lab host -> namespace
    pids: dict[str, int] = field(default_factory=dict)        # lab host -> sshd pid
    links: list[str] = field(default_factory=list)            # root-namespace veth ends

    def alias(self, host: str) -> str:
        """The ssh config alias of a lab host (`ssh -F config ALIAS`)."""
        return f"{self.prefix}-{host}"

    def target(self, host: str) -> str:
        return f"root@{self.addresses[host]}"


def mgmt_addresses(prefix: str, index: int) -> tuple[str, str]:
    """(this namespace's end, the lab host's end) of host `index`'s management /30."""
    third = zlib.crc32(prefix.encode()) % 256
    base = 4 * index
    if base + 2 > 255:
        raise LabError("sshd: at most 63 lab hosts get a management link")
    return f"198.18.{third}.{base + 1}", f"198.18.{third}.{base + 2}"


def _keygen(path: Path, comment: str) -> str:
    sysrun.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


def _hosts(state: LabState) -> dict[str, str]:
    hosts = {name: h.netns for name, h in state.hosts.items() if h.netns}
    hosts["switch"] = state.switch_netns
    return hosts


def start_sshd(state: LabState, folder: Path, hosts: list[str] | None = None) -> SshLab:
    """Start sshd in `hosts` (default: every namespace host and "switch"); stopped on failure."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise MissingToolError("sshd", "openssh-server", "the lab's ssh servers")
    sysrun.need_tool("ssh-keygen", "the lab's throwaway ssh keys")
    all_hosts = _hosts(state)
    unknown = sorted(set(hosts or ()) - set(all_hosts))
    if unknown:
        raise LabError(f"sshd: no namespace host {', '.join(unknown)} in lab {state.prefix!r} "
                       f"(hosts: {', '.join(all_hosts)})")
    chosen = {h: all_hosts[h] for h in (hosts or all_hosts)}
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)      # sshd's privilege separation folder
    lab = SshLab(folder, folder / "ssh_config", folder / "id_ed25519", folder / "known_hosts",
                 state.prefix)
    user_key = _keygen(lab.identity, "dr-inspect-lab-user")
    (folder / "authorized_keys").write_text(user_key + "\n")
    try:
        for index, (name, netns) in enumerate(chosen.items()):
            _start_one(lab, state, sshd, index, name, netns)
        _write_client_config(lab)
        for name in chosen:
            _wait_listening(lab, name)
    except BaseException:
        stop_sshd(lab)
        raise
    return lab


def _start_one(lab: SshLab, state: LabState, sshd: str, index: int, name: str, netns: str) -> None:
    here, there = mgmt_addresses(lab.prefix, index)
    link = f"{lab.prefix}-s{index}"
    sysrun.run(["ip", "link", "add", link, "type", "veth", "peer", "name", MGMT_IFNAME,
                "netns", netns])
    lab.links.append(link)
    sysrun.ip_batch(None, [f"addr add {here}/30 dev {link}", f"link set {link} up"])
    sysrun.ip_batch(netns, [f"addr add {there}/30 dev {MGMT_IFNAME}", f"link set {MGMT_IFNAME} up",
                            "link set lo up"])
    host_key = lab.folder / f"host_{name}"
    public = _keygen(host_key, f"{name}@{lab.prefix}")
    with open(lab.known_hosts, "a") as f:
        f.write(f"{there} {' '.join(public.split()[:2])}\n")
    conf = lab.folder / f"sshd_{name}.conf"
    conf.write_text(_SSHD_CONFIG.format(address=there, port=SSH_PORT, host_key=host_key,
                                        authorized_keys=lab.folder / "authorized_keys"))
    with open(lab.folder / f"sshd_{name}.log", "ab") as log:
        proc = subprocess.Popen(sysrun.netns_exec(netns, [sshd, "-D", "-e", "-f", str(conf)]),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    lab.addresses[name], lab.netns[name], lab.pids[name] = there, netns, proc.pid
    state.processes[f"{name}-sshd"] = proc.pid     # lab_down ends it too
    save_state(state)


def _write_client_config(lab: SshLab) -> None:
    lines = []
    for name, address in lab.addresses.items():
        lines += [f"Host {lab.alias(name)}", f"    HostName {address}", ""]
    lines += ["Host *", "    User root", f"    IdentityFile {lab.identity}", "    IdentitiesOnly yes",
              f"    UserKnownHostsFile {lab.known_hosts}", "    GlobalKnownHostsFile /dev/null",
              "    StrictHostKeyChecking yes", "    LogLevel ERROR", ""]
    lab.config.write_text("\n".join(lines))


def _wait_listening(lab: SshLab, name: str) -> None:
    pid = lab.pids[name]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(pid, SSH_PORT):
        if not sysrun.pid_alive(pid):
            log = (lab.folder / f"sshd_{name}.log").read_text(errors="replace").strip()
            raise LabError(f"sshd in {name} exited: {log.splitlines()[-1] if log else 'no output'}")
        if time.monotonic() > deadline:
            raise LabError(f"sshd in {name} not listening after {START_TIMEOUT_S:g} s")
        time.sleep(0.05)


def stop_sshd(lab: SshLab) -> None:
    """End every sshd (and its sessions) and remove the management links."""
    for name, pid in lab.pids.items():
        if sysrun.pid_alive(pid):
            sysrun.kill_pid(pid)
    for link in lab.links:
        sysrun.run(["ip", "link", "del", link], check=False)
