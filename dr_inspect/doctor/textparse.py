"""Parsers for the text forms of host state (busybox `ip`, /proc/net/tcp, `grep -H` of sysctls).

Pure functions: text in, the same JSON shapes iproute2's `ip -j` prints out, so the checks read
one shape whatever tool produced it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

_LINK_RE = re.compile(r"^(\d+):\s+([^:\s]+):\s+<([^>]*)>(.*)$")


def _ifname(raw: str) -> str:
    # veth peers print as "eth0@if12"; the interface name is the part before '@'.
    return raw.split("@", 1)[0]


def parse_ip_addr(text: str) -> list[dict[str, Any]]:
    """Parse `ip addr` text (iproute2 or busybox) into `ip -j addr` shaped dicts."""
    links: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _LINK_RE.match(line)
        if m:
            rest = m.group(4).split()
            current = {"ifindex": int(m.group(1)), "ifname": _ifname(m.group(2)),
                       "flags": [f for f in m.group(3).split(",") if f], "addr_info": []}
            if "mtu" in rest:
                current["mtu"] = int(rest[rest.index("mtu") + 1])
            links.append(current)
            continue
        if current is None:
            continue
        words = line.split()
        if not words:
            continue
        if words[0].startswith("link/"):
            current["link_type"] = words[0][len("link/"):]
            if len(words) > 1 and ":" in words[1]:
                current["address"] = words[1]
        elif words[0] in ("inet", "inet6") and len(words) > 1:
            local, _, prefix = words[1].partition("/")
            info: dict[str, Any] = {"family": words[0], "local": local,
                                    "prefixlen": int(prefix) if prefix else (32 if words[0] == "inet" else 128)}
            if "scope" in words:
                info["scope"] = words[words.index("scope") + 1]
            current["addr_info"].append(info)
    return links


def parse_ip_route(text: str) -> list[dict[str, Any]]:
    """Parse `ip route` text into `ip -j route` shaped dicts."""
    keys = {"via": "gateway", "dev": "dev", "proto": "protocol", "scope": "scope", "src": "prefsrc",
            "metric": "metric", "table": "table", "type": "type"}
    routes: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        route: dict[str, Any] = {}
        if words[0] in ("unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit",
                        "multicast", "anycast", "throw"):
            route["type"] = words.pop(0)
        if not words:
            continue
        route["dst"] = words[0]
        i = 1
        while i < len(words):
            key = words[i]
            if key in keys and i + 1 < len(words):
                value: Any = words[i + 1]
                if key == "metric" and value.isdigit():
                    value = int(value)
                route[keys[key]] = value
                i += 2
            else:
                i += 1
        route.setdefault("flags", [])
        routes.append(route)
    return routes


_NEIGH_STATES = {"PERMANENT", "NOARP", "REACHABLE", "STALE", "NONE", "INCOMPLETE", "DELAY",
                 "PROBE", "FAILED"}


def parse_ip_neigh(text: str) -> list[dict[str, Any]]:
    """Parse `ip neigh` text into `ip -j neigh` shaped dicts."""
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        entry: dict[str, Any] = {"dst": words[0]}
        if "dev" in words:
            entry["dev"] = words[words.index("dev") + 1]
        if "lladdr" in words:
            entry["lladdr"] = words[words.index("lladdr") + 1]
        entry["state"] = [w for w in words if w in _NEIGH_STATES]
        entries.append(entry)
    return entries


def _hex_addr(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def parse_proc_net_tcp(text: str) -> list[dict[str, Any]]:
    """Listening sockets from /proc/net/tcp and /proc/net/tcp6 text (state 0A = LISTEN)."""
    listeners: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or ":" not in words[1] or words[3] != "0A":
            continue
        hex_ip, _, hex_port = words[1].partition(":")
        try:
            listeners.append({"local": _hex_addr(hex_ip), "port": int(hex_port, 16)})
        except ValueError:
            continue
    return listeners


def parse_ss_listeners(text: str) -> list[dict[str, Any]]:
    """Listening sockets from `ss -Hltn` text: "LISTEN 0 128 0.0.0.0:80 0.0.0.0:*"."""
    listeners: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4:
            continue
        local = words[3]
        host, _, port = local.rpartition(":")
        if not port.isdigit():
            continue
        host = host.strip("[]")
        host = host.split("%", 1)[0]          # "0.0.0.0%lo" / "[::]%eth0": bound to a device
        if host == "*":
            host = "::"
        listeners.append({"local": host, "port": int(port)})
    return listeners


def parse_grep_h(text: str) -> dict[str, str]:
    """`grep -H . FILE...` output ("path:value" per line) into {path: value}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep:
            values[path] = value.strip()
    return values
