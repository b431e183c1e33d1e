"""Collect the raw host state DR depends on into a JSON-able dict (the I/O edge of doctor).

A snapshot holds what the checks need and nothing they compute:

    {
      "schema": 1,
      "host": "rs1",                    # netns name, else the hostname
      "hostname": "...", "netns": "t6-rs1" | None, "taken_at": "2026-11-30T07:00:00Z",
      "role": None,                     # callers may set "director" / "realserver"
      "addr":   [...],                  # `ip -j addr` shape (parsed from text when -j is missing)
      "route4": [...], "route6": [...], # `ip -j route`, `ip -j -6 route` (main table)
      "neigh":  [...],                  # `ip -j neigh`
      "sysctl": {"net.ipv4.ip_forward": 1,
                 "net.ipv4.conf": {"all": {"arp_ignore": 0, "arp_announce": 0, "rp_filter": 0},
                                   "default": {...}, "eth0": {...}}},
      "ipvsadm_ln": "text" | None, "ipvsadm_sn": "text" | None,
      "ipvsadm_stats": "text" | None,   # ipvsadm -Ln --stats
      "keepalived": {"pids": [...], "conf": "text" | None,     # when keepalived runs;
                     "states": ["... Entering MASTER STATE", ...]} | None,   # from its journal
      "nft": "text" | None,            # `nft -a list ruleset` (with rule handles, for fixes)
      "iptables_save": "text" | None,
      "listeners": [{"local": "0.0.0.0", "port": 80}, ...] | None,
      "sources": {"addr": "ip -j addr", ...},   # which command produced each item
      "errors": {"ipvsadm_ln": "ipvsadm: not found", ...}   # why an item is None / missing
    }

`runner` is a callable(argv) -> stdout text that raises on failure (any exception; its message is
kept as the reason). The lab passes one that runs commands on its VM director's console, where
only busybox exists: everything here has a busybox-compatible fallback (`ip` without -j, sysctls
read from /proc/sys, listeners from /proc/net/tcp).
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from dr_inspect.doctor import textparse
from dr_inspect.errors import DoctorError, InputError
from dr_inspect.textinput import parse_json, read_text

Runner = Callable[[list[str]], str]

SCHEMA_VERSION = 1
CONF_KEYS = ("arp_ignore", "arp_announce", "rp_filter")
_TIMEOUT_S = 15


class SnapshotError(DoctorError, InputError):
    """A snapshot file is unusable. Both a DoctorError and an InputError (bad input file), so
    callers that catch either keep running."""


class CommandFailed(RuntimeError):
    """A command of the default runner exited non-zero or could not start."""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def make_runner(netns: str | None = None) -> Runner:
    """The default runner: subprocess with argv lists, inside `ip netns exec NS` when given."""
    prefix = ["ip", "netns", "exec", netns] if netns else []

    def run(argv: list[str]) -> str:
        try:
            proc = subprocess.run(prefix + list(argv), capture_output=True, text=True,
                                  timeout=_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise CommandFailed(f"{argv[0]}: not found") from None
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"{' '.join(argv)}: timed out after {_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            err = _first_line(proc.stderr) or _first_line(proc.stdout)
            if prefix and proc.returncode == 255 and "No such file" in err and "exec of" in err:
                err = f"{argv[0]}: not found"
            raise CommandFailed(err or f"{' '.join(argv)}: exit status {proc.returncode}")
        return proc.stdout

    return run


def runner_from(run: Callable[[list[str]], "subprocess.CompletedProcess[str]"]) -> Runner:
    """Adapt a function returning CompletedProcess (e.g. the lab's `lambda argv: state.run(host, argv)`)
    into a Runner that raises on a non-zero exit status."""

    def runner(argv: list[str]) -> str:
        proc = run(list(argv))
        if proc.returncode != 0:
            err = _first_line(proc.stderr or "") or _first_line(proc.stdout or "")
            raise CommandFailed(err or f"{' '.join(argv)}: exit status {proc.returncode}")
        return proc.stdout or ""

    return runner


def netns_exists(netns: str) -> bool:
    return Path("/run/netns", netns).exists()


_SHELL_PREFIX = re.compile(r"^\S+: line \d+: ")   # busybox sh running a script: "/tmp/x: line 1: "


def _reason(exc: BaseException) -> str:
    text = _first_line(str(exc)) or type(exc).__name__
    return _SHELL_PREFIX.sub("", text)[:300]


def _try(snap: dict[str, Any], item: str, func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - any failure of one item is recorded, never fatal
        snap["errors"][item] = _reason(exc)
        return None


def _ip_json_or_text(run: Runner, snap: dict[str, Any], item: str, args: list[str],
                     parse: Callable[[str], list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """`ip -j ARGS`, else `ip ARGS` text parsed into the same shape (busybox has no -j)."""
    try:
        out = run(["ip", "-j", *args])
        data = json.loads(out) if out.strip() else []
        snap["sources"][item] = "ip -j " + " ".join(args)
        return data
    except Exception as first:  # noqa: BLE001
        try:
            text = run(["ip", *args])
        except Exception as exc:  # noqa: BLE001
            snap["errors"][item] = f"{_reason(first)}; {_reason(exc)}"
            return None
        snap["sources"][item] = "ip " + " ".join(args)
        return parse(text)


def _interfaces(addr: list[dict[str, Any]] | None, run: Runner, snap: dict[str, Any]) -> list[str]:
    """Interfaces whose sysctls are read: from `ip addr`, else the sysctl folder. When neither
    can be read, only all/default are read and the reason is in snapshot["errors"]["interfaces"]
    (it was silently an empty list)."""
    if addr:
        return [link["ifname"] for link in addr if "ifname" in link]
    return (_try(snap, "interfaces", lambda: run(["ls", "/proc/sys/net/ipv4/conf"]).split())
            or [])


def _read_sysctls(run: Runner, snap: dict[str, Any], ifaces: list[str]) -> dict[str, Any]:
    names = ["all", "default"] + [i for i in ifaces if i not in ("all", "default")]
    paths = ["/proc/sys/net/ipv4/ip_forward"] + [
        f"/proc/sys/net/ipv4/conf/{name}/{key}" for name in names for key in CONF_KEYS]
    values: dict[str, str] = {}
    try:
        values = textparse.parse_grep_h(run(["grep", "-H", ".", *paths]))
        snap["sources"]["sysctl"] = "grep -H . /proc/sys/net/ipv4/..."
    except Exception:  # noqa: BLE001 - grep exits 2 when one file is missing: read them one by one
        for path in paths:
            try:
                values[path] = run(["cat", path]).strip()
            except Exception as exc:  # noqa: BLE001
                snap["errors"][f"sysctl:{path}"] = _reason(exc)
        snap["sources"]["sysctl"] = "cat /proc/sys/net/ipv4/..."

    def as_int(path: str) -> int | None:
        raw = values.get(path)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    conf: dict[str, dict[str, int]] = {}
    for name in names:
        entry = {key: as_int(f"/proc/sys/net/ipv4/conf/{name}/{key}") for key in CONF_KEYS}
        entry = {k: v for k, v in entry.items() if v is not None}
        if entry:
            conf[name] = entry
    result: dict[str, Any] = {"net.ipv4.conf": conf}
    forward = as_int("/proc/sys/net/ipv4/ip_forward")
    if forward is not None:
        result["net.ipv4.ip_forward"] = forward
    if "all" not in conf:
        snap["errors"]["sysctl"] = "net.ipv4.conf.all.* unreadable"
    return result


def _listeners(run: Runner, snap: dict[str, Any]) -> list[dict[str, Any]] | None:
    try:
        out = run(["ss", "-Hltn"])
        snap["sources"]["listeners"] = "ss -Hltn"
        return textparse.parse_ss_listeners(out)
    except Exception as first:  # noqa: BLE001 - busybox has no ss; /proc/net/tcp always exists
        text = ""
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                text += run(["cat", path])
            except Exception as exc:  # noqa: BLE001
                if path.endswith("tcp"):
                    snap["errors"]["listeners"] = f"{_reason(first)}; {_reason(exc)}"
                    return None
        snap["sources"]["listeners"] = "cat /proc/net/tcp /proc/net/tcp6"
        return textparse.parse_proc_net_tcp(text)


def _keepalived(run: Runner, snap: dict[str, Any]) -> dict[str, Any] | None:
    """keepalived's processes and configuration when it runs (None, no error, when it does not:
    most real servers have none)."""
    try:
        pids = run(["pidof", "keepalived"]).split()
    except Exception:  # noqa: BLE001 - pidof exits 1 when it is not running
        return None
    conf = _try(snap, "keepalived_conf", lambda: run(["cat", "/etc/keepalived/keepalived.conf"]))
    # its VRRP state changes ("Entering MASTER STATE"), read from the journal: asking keepalived
    # itself (SIGUSR1 dumps) would not be read-only
    log = _try(snap, "keepalived_log", lambda: run(["journalctl", "-u", "keepalived", "-n", "200",
                                                    "--no-pager", "-o", "short-iso"]))
    states = [line for line in (log or "").splitlines() if "STATE" in line][-10:]
    snap["sources"]["keepalived"] = ("pidof keepalived; cat /etc/keepalived/keepalived.conf; "
                                     "journalctl -u keepalived")
    return {"pids": pids, "conf": conf, "states": states}


def take_snapshot(netns: str | None = None, *, runner: Runner | None = None,
                  host: str | None = None, role: str | None = None) -> dict[str, Any]:
    """Collect the host (or namespace) state DR depends on. Never raises for one missing item:
    each item that cannot be read is None with its reason in snapshot["errors"].

    host names the snapshot (default: the namespace, else the hostname); role ("director" or
    "realserver") is recorded for the offline doctor when the caller knows it.
    Raises DoctorError only when the namespace does not exist (and no runner was given).
    """
    if runner is None:
        if netns and not netns_exists(netns):
            raise DoctorError(f"network namespace {netns!r} does not exist (see 'ip netns list')")
        runner = make_runner(netns)
    snap: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "host": host,
        "hostname": None,
        "netns": netns,
        "taken_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "role": role,
        "sources": {},
        "errors": {},
    }
    snap["hostname"] = _try(snap, "hostname", lambda: runner(["cat", "/proc/sys/kernel/hostname"]).strip())
    snap["host"] = host or netns or snap["hostname"] or "unknown"
    snap["addr"] = _ip_json_or_text(runner, snap, "addr", ["addr"], textparse.parse_ip_addr)
    snap["route4"] = _ip_json_or_text(runner, snap, "route4", ["-4", "route"], textparse.parse_ip_route)
    snap["route6"] = _ip_json_or_text(runner, snap, "route6", ["-6", "route"], textparse.parse_ip_route)
    snap["neigh"] = _ip_json_or_text(runner, snap, "neigh", ["neigh"], textparse.parse_ip_neigh)
    snap["sysctl"] = _read_sysctls(runner, snap, _interfaces(snap["addr"], runner, snap))
    snap["ipvsadm_ln"] = _try(snap, "ipvsadm_ln", lambda: runner(["ipvsadm", "-Ln"]))
    snap["ipvsadm_sn"] = _try(snap, "ipvsadm_sn", lambda: runner(["ipvsadm", "-Sn"]))
    snap["ipvsadm_stats"] = _try(snap, "ipvsadm_stats", lambda: runner(["ipvsadm", "-Ln", "--stats"]))
    snap["keepalived"] = _keepalived(runner, snap)
    snap["nft"] = _try(snap, "nft", lambda: runner(["nft", "-a", "list", "ruleset"]))
    snap["iptables_save"] = _try(snap, "iptables_save", lambda: runner(["iptables-save"]))
    snap["listeners"] = _listeners(runner, snap)
    return snap


def write_snapshot(snapshot: dict[str, Any], path: Path | str) -> Path:
    """Write a snapshot as JSON (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    return path


_LIST_ITEMS = ("addr", "route4", "route6", "neigh", "listeners")
_TEXT_ITEMS = ("ipvsadm_ln", "ipvsadm_sn", "ipvsadm_stats", "nft", "iptables_save")


_ROUTE_FIELDS = {"dst": str, "gateway": str, "dev": str, "prefsrc": str, "type": str, "metric": int}
_FIELD_TYPES: dict[str, dict[str, type]] = {
    "addr": {"ifname": str, "address": str, "link_type": str},
    "addr_info": {"local": str, "prefixlen": int, "family": str},
    "route4": _ROUTE_FIELDS,
    "route6": _ROUTE_FIELDS,
    "neigh": {"dst": str, "dev": str, "lladdr": str},
    "listeners": {"local": str, "port": int},
}
_KIND_NAMES = {str: "text", int: "an integer"}


def validate_snapshot(data: Any, where: str) -> dict[str, Any]:
    """Check the shape the checks rely on; SnapshotError names the file and the item."""
    if not isinstance(data, dict) or "addr" not in data or "sysctl" not in data:
        raise SnapshotError(f"{where}: not a dr-inspect host snapshot (no 'addr'/'sysctl' keys)")

    def bad(item: str, expected: str) -> SnapshotError:
        return SnapshotError(f"{where}: item {item!r} should be {expected}")

    for item in _LIST_ITEMS:
        value = data.get(item)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise bad(item, "a list of objects or null")
    for link in data.get("addr") or []:
        if not isinstance(link.get("addr_info", []), list) or not all(
                isinstance(a, dict) for a in link.get("addr_info", [])):
            raise bad("addr", "`ip -j addr` objects (addr_info: list of objects)")
        if not isinstance(link.get("flags", []), list):
            raise bad("addr", "`ip -j addr` objects (flags: list)")
    # fields the checks read, inside those objects: text (names, addresses) or integers; `ip -j`
    # leaves out what does not apply, so a missing field is fine
    for item, fields in _FIELD_TYPES.items():
        objects = data.get(item) or []
        if item == "addr_info":
            objects = [a for link in data.get("addr") or [] for a in link.get("addr_info", [])]
        for obj in objects:
            for name, kind in fields.items():
                value = obj.get(name)
                if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                    raise bad(item, f"objects whose {name!r} is {_KIND_NAMES[kind]} "
                                    f"(found {json.dumps(value)[:40]})")
            if item == "addr_info" and not 0 <= (obj.get("prefixlen") or 0) <= 128:
                raise bad("addr", f"addresses with a prefix length 0..128 (found {obj['prefixlen']})")
    for item in _TEXT_ITEMS:
        if data.get(item) is not None and not isinstance(data[item], str):
            raise bad(item, "text or null")
    sysctl = data.get("sysctl")
    if not isinstance(sysctl, dict):
        raise bad("sysctl", "an object")
    conf = sysctl.get("net.ipv4.conf", {})
    if not isinstance(conf, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, int) for x in v.values()) for v in conf.values()):
        raise bad("sysctl", "{'net.ipv4.conf': {iface: {key: integer}}}")
    if not isinstance(data.get("errors", {}), dict):
        raise bad("errors", "an object")
    return data


def read_snapshot(path: Path | str) -> dict[str, Any]:
    """Read a snapshot JSON file; SnapshotError names the file (and item) when it is unusable."""
    path = Path(path)
    data = parse_json(read_text(path, "snapshot", error=SnapshotError), str(path), SnapshotError,
                      "snapshot")
    validate_snapshot(data, str(path))
    data.setdefault("errors", {})
    data.setdefault("host", path.stem)
    return data
