"""A capture set: a directory with one capture file per point, plus an optional manifest.toml.

manifest.toml (written by `capture`, the lab and the bundled-capture script; read by verify and
doctor):

    [capture]                      # all keys optional
    tool = "dr-inspect 0.1.0"
    host = "lab-host"
    started = "2026-11-30T06:50:00Z"
    stopped = "2026-11-30T06:50:09Z"
    director = "ipvs"              # lab sets only
    scheduler = "rr"               # IPVS scheduler (DR011 checks balance for rr)
    faults = ["rs-answers-arp"]
    real_servers = [{name = "rs1", rip = "192.168.88.20"}]   # names reports use, by RIP
    description = "..."

    [[points]]
    name = "br_e"                  # required, unique
    file = "br_e.pcap"             # required, relative to the set
    files = ["br_e.pcap0", "br_e.pcap1"]   # rotated captures (tcpdump -C/-W), oldest first;
                                   # when present, `file` is the first of them
    role = "vip-segment"           # vip-segment | rs-segment | both | unknown
    interface = "br_e"
    netns = "dri-sw"
    host = "lab-host"
    received = 120                 # tcpdump: packets received by filter
    dropped = 0                    # tcpdump: packets dropped by kernel
    snaplen = 262144
    ssh = "root@10.0.0.5"          # remote capture: the ssh target of the point's host
    clock_offset_ns = -1200        # its clock minus the collector's, measured over ssh,
    clock_bound_ns = 400           # within this (half the shortest round trip)

    [snapshots]                    # host state snapshots (JSON), host name -> relative path
    director = "snapshots/director.json"

Bundled sets also carry expected.toml: `fail = ["DR005"]` (rule ids that must fail) and a
`description`.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.errors import InputError
from dr_inspect.textinput import read_text, read_toml

ROLES = ("vip-segment", "rs-segment", "both", "unknown")
# Capture points verified at once (files, manifest points, interfaces of a pcapng). Clock offsets
# are estimated between every pair of points: thousands would take hours, and no LVS-DR setup
# has more than a few dozen places to capture.
MAX_POINTS = 256
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")
# tcpdump -C/-W names rotated files by appending a number: br_e.pcap, br_e.pcap1 / br_e.pcap0 ...
_ROTATED = re.compile(r"^(?P<base>.+\.(?:pcap|pcapng|cap))(?P<n>\d+)$", re.IGNORECASE)

# The first line of the manifest `capture`, `watch --save` and `lab demo` reserve when capturing
# starts; it stays when they are killed (SIGKILL) before rewriting it.
PLACEHOLDER_HEAD = "# capture in progress (dr-inspect); rewritten when it stops"

_CAPTURE_KEYS = {"tool", "host", "started", "stopped", "director", "faults", "description",
                 "real_servers", "vip", "port", "scheduler"}
_POINT_KEYS = {"name", "file", "files", "role", "interface", "netns", "host", "received", "dropped",
               "snaplen", "started", "stopped", "ssh", "clock_offset_ns", "clock_bound_ns"}


@dataclass
class Point:
    name: str
    file: Path
    role: str = "unknown"
    interface: str = ""
    netns: str = ""
    host: str = ""
    received: int | None = None
    dropped: int | None = None
    snaplen: int | None = None
    files: list[Path] = field(default_factory=list)   # every file of the point, oldest first
    clock_offset_ns: int | None = None    # measured (remote capture): host clock - collector's
    clock_bound_ns: int | None = None

    def __post_init__(self) -> None:
        if not self.files:
            self.files = [self.file]


@dataclass
class CaptureSet:
    root: Path | None                     # the directory, or None for loose files
    points: list[Point]
    capture: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[str, Path] = field(default_factory=dict)
    expected_fail: list[str] | None = None


def is_capture_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (any(name.endswith(s) for s in CAPTURE_SUFFIXES)
                               or _ROTATED.match(path.name) is not None)


def _rotation_order(path: Path) -> tuple[float, int]:
    """Oldest first: by last write (a -W ring wraps around its numbers), then by number."""
    m = _ROTATED.match(path.name)
    return (path.stat().st_mtime, int(m.group("n")) + 1 if m else 0)


def point_name_for(path: Path) -> str:
    m = _ROTATED.match(path.name)
    name = m.group("base") if m else path.name
    for suffix in sorted(CAPTURE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def check_point_count(count: int, where: str) -> None:
    """Refuse more than MAX_POINTS capture points (one line, before the slow part)."""
    if count > MAX_POINTS:
        raise InputError(f"{where}: {count} capture points; at most {MAX_POINTS} are verified "
                         "together (split the capture set)")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


# Expected value types of the manifest's keys (a wrong type is an input error naming the key,
# not a crash later in verify).
_POINT_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "file": str, "files": list, "role": str, "interface": str, "netns": str,
    "host": str, "received": int, "dropped": int, "snaplen": int, "started": str, "stopped": str,
    "ssh": str, "clock_offset_ns": int, "clock_bound_ns": int,
}
_CAPTURE_TYPES: dict[str, type | tuple[type, ...]] = {
    "tool": str, "host": str, "started": str, "stopped": str, "director": str, "faults": list,
    "description": str, "real_servers": (list, int), "vip": str, "port": int, "scheduler": str,
}


def _check_types(table: dict[str, Any], types: dict[str, type | tuple[type, ...]], where: str) -> None:
    for key, value in table.items():
        expected = types.get(key)
        # bool is an int in Python, never a count or a port here
        if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise InputError(f"{where}: {key} must be {_TOML_NAMES.get(names, names)}, not {value!r}")


_TOML_NAMES = {"str": "a string", "int": "an integer", "list": "an array", "list or int": "an array or an integer"}


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"{where}: [{key}] must be a table")
    return value


def read_manifest(directory: Path) -> CaptureSet:
    path = directory / "manifest.toml"
    data = read_toml(path, "manifest")
    if not data and read_text(path, "manifest").startswith(PLACEHOLDER_HEAD):
        # the capture was killed before it wrote its manifest: its files are still readable
        return _scan_folder(directory, interrupted=True)
    _check_keys(data, {"capture", "points", "snapshots"}, str(path))
    capture = _table(data, "capture", str(path))
    _check_keys(capture, _CAPTURE_KEYS, f"{path} [capture]")
    _check_types(capture, _CAPTURE_TYPES, f"{path} [capture]")
    raw_points = data.get("points", [])
    if not isinstance(raw_points, list) or not all(isinstance(p, dict) for p in raw_points):
        raise InputError(f"{path}: points must be [[points]] tables")
    snapshot_table = _table(data, "snapshots", str(path))
    _check_types(snapshot_table, dict.fromkeys(snapshot_table, str), f"{path} [snapshots]")
    check_point_count(len(raw_points), str(path))
    points: list[Point] = []
    for i, raw in enumerate(raw_points):
        where = f"{path} points[{i}]"
        _check_keys(raw, _POINT_KEYS, where)
        _check_types(raw, _POINT_TYPES, where)
        if "name" not in raw or "file" not in raw:
            raise InputError(f"{where}: 'name' and 'file' are required")
        role = raw.get("role", "unknown")
        if role not in ROLES:
            raise InputError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        rel_files = raw.get("files") or [raw["file"]]
        if not isinstance(rel_files, list) or not all(isinstance(f, str) for f in rel_files):
            raise InputError(f"{where}: 'files' must be a list of file names")
        files = [directory / f for f in rel_files]
        for f in files:
            if not f.is_file():
                raise InputError(f"{where}: capture file {f} " + (
                    f"is {_kind(f)}, not a capture file" if f.exists() else "does not exist"))
        file = directory / raw["file"]
        points.append(Point(name=raw["name"], file=file, files=files, role=role,
                            interface=raw.get("interface", ""), netns=raw.get("netns", ""),
                            host=raw.get("host", ""), received=raw.get("received"),
                            dropped=raw.get("dropped"), snaplen=raw.get("snaplen"),
                            clock_offset_ns=raw.get("clock_offset_ns"),
                            clock_bound_ns=raw.get("clock_bound_ns")))
    names = [p.name for p in points]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: point names are not unique: {', '.join(names)}")
    snapshots = {host: directory / rel for host, rel in snapshot_table.items()}
    return CaptureSet(root=directory, points=points, capture=capture, snapshots=snapshots)


def read_expected(directory: Path) -> list[str] | None:
    path = directory / "expected.toml"
    if not path.exists():
        return None
    data = read_toml(path, "expected.toml")
    _check_keys(data, {"fail", "description"}, str(path))
    _check_types(data, {"fail": list, "description": str}, str(path))
    if not all(isinstance(rid, str) for rid in data.get("fail", [])):
        raise InputError(f"{path}: fail must be an array of rule ids (strings)")
    return list(data.get("fail", []))


STDIN = Path("/dev/stdin")


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def _scan_folder(directory: Path, interrupted: bool = False) -> CaptureSet:
    """Every capture file of a folder without a (usable) manifest, one point per file name
    (rotated files of one point stay one point); an interrupted capture's snapshots too."""
    files = sorted(p for p in directory.iterdir() if is_capture_file(p))
    if not files:
        why = (" (an interrupted capture: its manifest is the placeholder written at the start)"
               if interrupted else "")
        raise InputError(f"{directory}: no capture files (*.pcap, *.pcapng, *.gz) in it{why}")
    by_point: dict[str, list[Path]] = {}
    for f in files:
        by_point.setdefault(point_name_for(f), []).append(f)
    check_point_count(len(by_point), str(directory))
    points = []
    for name, group in by_point.items():
        group.sort(key=_rotation_order)
        points.append(Point(name, group[0], files=group))
    snapshots: dict[str, Path] = {}
    capture: dict[str, Any] = {}
    if interrupted:
        capture["description"] = ("interrupted capture: the manifest was never written, "
                                  "points are read from the capture files")
        folder = directory / "snapshots"
        if folder.is_dir():
            snapshots = {p.stem: p for p in sorted(folder.glob("*.json")) if p.is_file()}
    return CaptureSet(root=directory, points=points, capture=capture, snapshots=snapshots)


def load_capture_set(paths: list[Path | str]) -> CaptureSet:
    """Resolve command-line PATHs (one directory, or capture files) into a CaptureSet.

    A directory with manifest.toml uses it; a directory without one takes every capture file in it
    as a point named after the file. Loose files are points named after their file names.
    """
    if sum(1 for p in paths if str(p) == "-") > 1:
        raise InputError("standard input (-) can be read once only")
    # `-`: standard input (a pipe: `tcpdump -w - | dr-inspect verify -`), the point `stdin`
    resolved = [STDIN if str(p) == "-" else Path(p) for p in paths]
    if not resolved:
        raise InputError("no capture path given")
    missing = [str(p) for p in resolved if not p.exists()]
    if missing:
        raise InputError(f"no such file or directory: {', '.join(missing)}")
    odd = [f"{p} ({_kind(p)})" for p in resolved if p != STDIN and not p.is_dir() and not p.is_file()]
    if odd:
        raise InputError(f"not a capture file or folder: {', '.join(odd)}; only regular files are "
                         "read (- reads standard input)")
    dirs = [p for p in resolved if p.is_dir()]
    if dirs:
        if len(resolved) != 1:
            raise InputError("give either one capture-set directory or capture files, not both")
        directory = dirs[0]
        manifest = directory / "manifest.toml"
        if manifest.exists() or manifest.is_symlink():
            cs = read_manifest(directory)
        else:
            cs = _scan_folder(directory)
        cs.expected_fail = read_expected(directory)
        return cs
    check_point_count(len(resolved), "the capture files given")
    points = [Point("stdin" if f == STDIN else point_name_for(f), f) for f in resolved]
    seen: dict[str, int] = {}
    for p in points:  # two files with one name from different folders stay distinct points
        seen[p.name] = seen.get(p.name, 0) + 1
        if seen[p.name] > 1:
            p.name = f"{p.name}#{seen[p.name]}"
    return CaptureSet(root=None, points=points)
