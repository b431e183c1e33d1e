"""Connection filters (verify/report/ladder --client, --rs, --vip, --since, --until): which of
the correlated connections are judged and reported.

The topology and the clock offsets are learned from the whole capture set before a filter
applies, so names and offsets are those of an unfiltered run. A filter keeps the rows of the
selected connections in the connection tables (to_vip, forwards, replies, flows: by flow id)
and the ARP/ND frames that concern them (see _arp_rows); the points table describes the capture
and is kept whole. Matching is done once per distinct value of a column, then spread over the
rows by its codes.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd

from dr_inspect.columnar.text import codes_and_values
from dr_inspect.errors import InputError
from dr_inspect.options import FlowFilter
from dr_inspect.topology.model import LearnedTopology
from dr_inspect.topology.pins import parse_vip, vip_text

CONNECTION_TABLES = ("to_vip", "forwards", "replies", "flows")
SHOWN = 8          # values listed in an error message before "... (N in all)"

Endpoint = tuple[str, "int | None"]


def filter_vips(flt: FlowFilter) -> list[Endpoint]:
    """The filter's VIPs as (ip, port or None); TopologyError naming --vip for a bad one."""
    return [parse_vip(v) for v in flt.vips]


def unlearned_vips(flt: FlowFilter, learned: list[tuple[str, int]]) -> list[Endpoint]:
    """The filter's VIPs that no learned VIP matches (the traffic does not show them)."""
    return [v for v in filter_vips(flt) if not any(_vip_matches(v, w) for w in learned)]


def _vip_matches(wanted: Endpoint, learned: tuple[str, int]) -> bool:
    return wanted[0] == learned[0] and wanted[1] in (None, learned[1])


def _rows_where(column: pd.Series, accept: Callable[[str], bool]) -> np.ndarray:
    """Rows whose text value accept() takes, judged once per distinct value."""
    codes, values = codes_and_values(column)
    return np.fromiter((accept(str(v)) for v in values), bool, len(values))[codes]


def _in_networks(networks: list) -> Callable[[str], bool]:
    def accept(text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return any(address.version == n.version and address in n for n in networks)
    return accept


def _vip_endpoints(wanted: list[Endpoint]) -> Callable[[str], bool]:
    """Whether a VIP text ('ip:port', '[ip6]:port') is one of `wanted` (a port of None: any)."""
    def accept(text: str) -> bool:
        ip = text.rpartition(":")[0].strip("[]")
        return any(text == vip_text(w_ip, port) or (port is None and ip == w_ip)
                   for w_ip, port in wanted)
    return accept


def resolve_real_servers(flt: FlowFilter, topology: LearnedTopology) -> set[str]:
    """The names of the real servers --rs names (by name, RIP or MAC); InputError listing the
    known ones for a value that is none of them."""
    names = set()
    for wanted in flt.real_servers:
        found = [rs.name for rs in topology.real_servers
                 if wanted == rs.name or _same_address(wanted, rs.rip)
                 or wanted.lower() in {m.lower() for m in rs.macs.values()}]
        if not found:
            known = "; ".join(
                f"{rs.name} ({', '.join([rs.rip or 'RIP unknown', *rs.macs.values()])})"
                for rs in topology.real_servers) or "none learned"
            raise InputError(f"--rs {wanted}: no real server has this name, RIP or MAC "
                             f"(known: {known})")
        names.update(found)
    return names


def _same_address(text: str, rip: str | None) -> bool:
    try:
        return rip is not None and ipaddress.ip_address(text) == ipaddress.ip_address(rip)
    except ValueError:
        return False


def _seen(column: pd.Series) -> list[str]:
    """The distinct non-empty values the rows hold (not every category of the column)."""
    codes, values = codes_and_values(column)
    return sorted(set(values[np.unique(codes)]) - {""})


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > SHOWN else "") or "none"


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="milliseconds")


def _time_bounds(flt: FlowFilter, capture_start_ns: int) -> tuple[int | None, int | None]:
    return (flt.since.at_ns(capture_start_ns) if flt.since else None,
            flt.until.at_ns(capture_start_ns) if flt.until else None)


def _in_window(ts: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    keep = np.ones(len(ts), bool)
    if lo is not None:
        keep &= ts >= lo
    if hi is not None:
        keep &= ts < hi
    return keep


def _flow_masks(flows: pd.DataFrame, flt: FlowFilter, rs_names: set[str],
                capture_start_ns: int) -> dict[str, tuple[np.ndarray, str]]:
    """Per given filter option: (the flows it keeps, what the flows show instead, for the
    message when it keeps none)."""
    masks: dict[str, tuple[np.ndarray, str]] = {}
    if flt.clients:
        networks = [ipaddress.ip_network(c, strict=False) for c in flt.clients]
        seen = _seen(flows["client_ip"])
        masks[" ".join(f"--client {c}" for c in flt.clients)] = (
            _rows_where(flows["client_ip"], _in_networks(networks)),
            f"clients seen: {_listed(seen)}")
    if flt.real_servers:
        seen = _seen(flows["real_server"])
        masks[" ".join(f"--rs {r}" for r in flt.real_servers)] = (
            _rows_where(flows["real_server"], rs_names.__contains__),
            f"real servers with connections: {_listed(seen)}")
    if flt.vips:
        wanted = filter_vips(flt)
        seen = _seen(flows["vip"])
        masks[" ".join(f"--vip {v}" for v in flt.vips)] = (
            _rows_where(flows["vip"], _vip_endpoints(wanted)),
            f"VIPs with connections: {_listed(seen)}")
    if flt.since or flt.until:
        lo, hi = _time_bounds(flt, capture_start_ns)
        ts = flows["ts_ns"].to_numpy(dtype=np.int64)
        first, last = (int(ts.min()), int(ts.max())) if len(ts) else (capture_start_ns,) * 2
        masks[flt.describe_times()] = (
            _in_window(ts, lo, hi),
            f"connections start {(first - capture_start_ns) / 1e9:.3f} s .. "
            f"{(last - capture_start_ns) / 1e9:.3f} s after the capture start, "
            f"{_utc(first)} .. {_utc(last)}")
    return masks


def select_flows(flows: pd.DataFrame, flt: FlowFilter, rs_names: set[str],
                 capture_start_ns: int) -> np.ndarray:
    """The flows rows the filter keeps (rs_names: resolve_real_servers' answer); InputError
    naming the filter when it keeps none."""
    masks = _flow_masks(flows, flt, rs_names, capture_start_ns)
    keep = np.ones(len(flows), bool)
    for mask, _ in masks.values():
        keep &= mask
    if keep.any():
        return keep
    if len(flows) == 0:
        raise InputError(f"no connection matches {flt.describe()}: these captures hold no "
                         "connection to a VIP")
    for option, (mask, seen) in masks.items():
        if not mask.any():
            raise InputError(f"no connection matches {option} ({seen})")
    raise InputError(f"no connection matches {flt.describe()} (each option alone matches some "
                     "connections, together none)")


def _arp_rows(arp: pd.DataFrame, flt: FlowFilter, rs_names: set[str],
              capture_start_ns: int) -> np.ndarray:
    """The ARP/ND frames a filter keeps: with --vip those about its addresses (claims,
    announcements and requests for them), with --rs the real server's and those of no real
    server (directors, clients), with --since/--until those in the window. ARP is not per
    client: --client keeps it all (every client of a VIP meets the same claims)."""
    keep = np.ones(len(arp), bool)
    if len(arp) == 0:
        return keep
    if flt.vips:
        ips = {ip for ip, _ in filter_vips(flt)}
        keep &= (_rows_where(arp["vip"], ips.__contains__)
                 | _rows_where(arp["target_ip"], ips.__contains__)
                 | _rows_where(arp["sender_ip"], ips.__contains__))
    if flt.real_servers:
        keep &= _rows_where(arp["real_server"], lambda name: name == "" or name in rs_names)
    if flt.since or flt.until:
        keep &= _in_window(arp["ts_ns"].to_numpy(dtype=np.int64),
                           *_time_bounds(flt, capture_start_ns))
    return keep


def apply_filter(tables: dict[str, pd.DataFrame], flt: FlowFilter, topology: LearnedTopology,
                 capture_start_ns: int) -> tuple[dict[str, pd.DataFrame], dict]:
    """(the tables with the selected connections' rows only, the selection for the report:
    the filter's text and how many connections and ARP frames it kept and left out).

    capture_start_ns: the first captured frame's time, the origin of --since/--until offsets.
    InputError when no connection matches."""
    flows = tables["flows"]
    rs_names = resolve_real_servers(flt, topology)
    keep_flows = select_flows(flows, flt, rs_names, capture_start_ns)
    ids = flows["flow_id"].to_numpy(dtype=np.int64)
    # flow ids index a lookup (one slot past the largest for rows of no flow, id -1)
    selected = np.zeros(int(ids.max(initial=0)) + 2, bool)
    selected[ids[keep_flows]] = True
    out = dict(tables)
    for name in CONNECTION_TABLES:
        table = tables[name]
        fid = table["flow_id"].to_numpy(dtype=np.int64)
        rows = selected[np.where((fid >= 0) & (fid < len(selected) - 1), fid, -1)]
        out[name] = table[rows].reset_index(drop=True)
    arp = tables["arp"]
    keep_arp = _arp_rows(arp, flt, rs_names, capture_start_ns)
    out["arp"] = arp[keep_arp].reset_index(drop=True)
    selection = {"filter": flt.describe(), "connections": int(keep_flows.sum()),
                 "connections_left_out": int((~keep_flows).sum()),
                 "arp_frames": int(keep_arp.sum()), "arp_left_out": int((~keep_arp).sum())}
    return out, selection


def capture_start_ns(packets: pd.DataFrame) -> int:
    """The first captured frame's time (the origin of --since/--until offsets)."""
    ts = packets["ts_ns"].to_numpy(dtype=np.int64)
    return int(ts.min()) if len(ts) else 0


__all__ = ["apply_filter", "capture_start_ns", "filter_vips", "resolve_real_servers",
           "select_flows", "unlearned_vips"]
