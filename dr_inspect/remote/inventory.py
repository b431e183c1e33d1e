"""The inventory file (TOML): the hosts of a farm, how ssh reaches them, where to capture.

    [ssh]                                  # optional, for every host
    config = "~/.ssh/config"               # ssh -F FILE
    options = ["ServerAliveInterval=2"]    # ssh -o, added to dr-inspect's own

    [capture]                              # optional; command-line options win
    filter = "tcp port 80 or arp"
    snaplen = 512
    max_mb = 200                           # per point

    [hosts.director]
    ssh = "root@10.0.0.5"                  # [user@]host[:port], or an ssh config alias
    role = "director"                      # optional: director | realserver | client
    interfaces = ["eth0", "eth1"]          # capture points director-eth0, director-eth1
    point_roles = { eth0 = "vip-segment", eth1 = "rs-segment" }
    options = ["Port=2222"]                # optional, this host only
    config = "/etc/ssh/farm_config"        # optional, this host only

    [hosts.rs1]
    ssh = "rs1.example.net"
    interfaces = ["eth0"]

Relative config paths are relative to the inventory file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.captureset import ROLES
from dr_inspect.errors import InputError
from dr_inspect.remote.ssh import SshHost, check_host_name, check_options, parse_target
from dr_inspect.textinput import read_toml

HOST_ROLES = ("director", "realserver", "client")
_TOP = {"ssh", "capture", "hosts"}
_HOST_KEYS = {"ssh", "role", "interfaces", "point_roles", "options", "config"}
_CAPTURE_KEYS = {"filter", "snaplen", "max_mb"}


@dataclass
class RemoteInterface:
    host: str               # SshHost name
    interface: str
    role: str | None = None

    @property
    def point(self) -> str:
        """The capture point's name: HOST-IFACE."""
        return f"{self.host}-{self.interface}"


@dataclass
class Inventory:
    hosts: dict[str, SshHost]
    interfaces: list[RemoteInterface] = field(default_factory=list)
    bpf: str | None = None
    snaplen: int | None = None
    max_mb: int | None = None


def _keys(table: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise InputError(f"{where}: must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    return table


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: must be an array of strings")
    return list(value)


def _path(value: Any, base: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: must be a file path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _positive(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{where}: must be a positive integer")
    return value


def parse_inventory(data: dict[str, Any], where: str, base: Path) -> Inventory:
    """An inventory from parsed TOML (pure but for expanding ~ in paths)."""
    _keys(data, _TOP, where)
    ssh = _keys(data.get("ssh", {}), {"config", "options"}, f"{where} [ssh]")
    default_config = _path(ssh["config"], base, f"{where} [ssh] config") if "config" in ssh else None
    default_options = check_options(_strings(ssh.get("options", []), f"{where} [ssh] options"),
                                    f"{where} [ssh]")
    capture = _keys(data.get("capture", {}), _CAPTURE_KEYS, f"{where} [capture]")
    bpf = capture.get("filter")
    if bpf is not None and not isinstance(bpf, str):
        raise InputError(f"{where} [capture] filter: must be a string")
    hosts_table = _keys(data.get("hosts", {}), set(data.get("hosts", {}) or {}), f"{where} [hosts]")
    if not hosts_table:
        raise InputError(f"{where}: no [hosts.NAME] table")
    inv = Inventory(hosts={}, bpf=bpf, snaplen=_positive(capture.get("snaplen"), f"{where} snaplen"),
                    max_mb=_positive(capture.get("max_mb"), f"{where} max_mb"))
    for name, raw in hosts_table.items():
        at = f"{where} [hosts.{name}]"
        check_host_name(name, at)
        raw = _keys(raw, _HOST_KEYS, at)
        if not isinstance(raw.get("ssh"), str):
            raise InputError(f"{at}: ssh = \"[user@]host[:port]\" is required")
        user, host, port = parse_target(raw["ssh"], f"{at} ssh")
        role = raw.get("role")
        if role is not None and role not in HOST_ROLES:
            raise InputError(f"{at}: role {role!r} is not one of {', '.join(HOST_ROLES)}")
        config = _path(raw["config"], base, f"{at} config") if "config" in raw else default_config
        options = default_options + check_options(_strings(raw.get("options", []), f"{at} options"), at)
        inv.hosts[name] = SshHost(name, host, user, port, config, options, role)
        point_roles = raw.get("point_roles", {})
        if not isinstance(point_roles, dict):
            raise InputError(f"{at}: point_roles must be a table (interface = role)")
        interfaces = _strings(raw.get("interfaces", []), f"{at} interfaces")
        for iface, prole in point_roles.items():
            if iface not in interfaces or prole not in ROLES:
                raise InputError(f"{at}: point_roles {iface} = {prole!r}: the interface must be "
                                 f"listed and the role one of {', '.join(ROLES)}")
        inv.interfaces += [RemoteInterface(name, i, point_roles.get(i)) for i in interfaces]
    return inv


def load_inventory(path: Path | str) -> Inventory:
    path = Path(path)
    return parse_inventory(read_toml(path, "inventory"), str(path), path.parent)


def merge_command_line(inv: Inventory | None, hosts: list[SshHost],
                       interfaces: list[str], roles: dict[str, str]) -> Inventory:
    """The inventory (if any) plus the --host and --iface HOST:IFACE options of the command line.

    roles: point name (HOST-IFACE) -> role, from --role."""
    inv = inv or Inventory(hosts={})
    for host in hosts:
        if host.name in inv.hosts:
            raise InputError(f"--host {host.name}: given twice (or also in the inventory)")
        inv.hosts[host.name] = host
    for spec in interfaces:
        name, sep, iface = spec.partition(":")
        if not sep or not name or not iface:
            raise InputError(f"--iface {spec!r}: expected HOST:INTERFACE")
        if name not in inv.hosts:
            raise InputError(f"--iface {spec}: no host {name!r} (give --host {name}=[user@]host)")
        inv.interfaces.append(RemoteInterface(name, iface))
    for i in inv.interfaces:
        if i.point in roles:
            i.role = roles[i.point]
    unknown = sorted(set(roles) - {i.point for i in inv.interfaces})
    if unknown:
        raise InputError(f"--role names {', '.join(unknown)}, which is no HOST-IFACE point")
    return inv


def build_inventory(inventory: Path | str | None, host_specs: tuple[str, ...] | list[str],
                    interfaces: tuple[str, ...] | list[str], roles: dict[str, str], *,
                    ssh_config: Path | str | None = None,
                    ssh_options: tuple[str, ...] | list[str] = ()) -> Inventory:
    """The command line's remote hosts: --inventory FILE plus --host NAME=[user@]host[:port]
    (with --ssh-config / --ssh-option) and --iface HOST:IFACE."""
    from dr_inspect.remote.ssh import parse_host_spec

    config = Path(ssh_config).expanduser() if ssh_config else None
    hosts = [parse_host_spec(spec, config=config, options=tuple(ssh_options)) for spec in host_specs]
    inv = load_inventory(inventory) if inventory else None
    return merge_command_line(inv, hosts, list(interfaces), roles)
