"""Correlation stage: learn the topology, find hops (the same packet at two points) and build
the rule tables from the combined packets table. This module orchestrates the stage (which work
runs on the second core, when memory is returned); the relational work is in dr_inspect.correlate
and dr_inspect.topology."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dr_inspect.columnar.codes import category_codes
from dr_inspect.columnar.tcp_view import tcp_view
from dr_inspect.correlate.combine import combine_points
from dr_inspect.correlate.hops import estimate_offsets, find_hops
from dr_inspect.correlate.arp import arp_table
from dr_inspect.correlate.connections import flow_endpoints, vip_rows
from dr_inspect.correlate.copies import forward_copies
from dr_inspect.correlate.copy_keys import copy_keys
from dr_inspect.correlate.flows import flows_table
from dr_inspect.correlate.forwards import forwards_table
from dr_inspect.correlate.replies import replies_table
from dr_inspect.correlate.to_vip import to_vip_table
from dr_inspect.heap import return_freed_heap
from dr_inspect.topology.learn import learn_topology, learn_vips
from dr_inspect.topology.model import LearnedTopology, LearnedVips
from dr_inspect.topology.pins import TopologyPins

__all__ = ["Correlation", "SetWide", "correlate", "forward_counts", "prepare"]

ClockOffsets = tuple[dict[str, int], dict[str, int]]     # (estimated, applied) ns per point


@dataclass(frozen=True)
class SetWide:
    """What was computed over a whole capture set, for a correlation of part of it (the
    distributed engine correlates the set bucket by bucket): used as given instead of being
    learned or estimated from the part.

    vips, topology: learn_vips / learn_topology of the whole set (topology None: learned from
    the part with these VIPs); offsets: estimate_offsets of the whole set."""

    vips: LearnedVips
    topology: LearnedTopology | None
    offsets: ClockOffsets


@dataclass
class Correlation:
    packets: pd.DataFrame                      # combined packets table (+ point, ts)
    topology: LearnedTopology
    offsets_estimated: dict[str, int]
    offsets_applied: dict[str, int]
    hops: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


def forward_counts(fw: pd.DataFrame) -> dict[str, int]:
    """The report's counts of the forwards table: coalesced, forwarded, not forwarded."""
    return {"coalesced": int(fw["coalesced"].sum()) if len(fw) else 0,
            "forwarded": int(fw["has_copy"].sum()) if len(fw) else 0,
            "not_forwarded": int((~fw["has_copy"]).sum()) if len(fw) else 0}


def prepare(packets: dict[str, pd.DataFrame], hosts: dict[str, str] | None = None,
            combined: pd.DataFrame | None = None, offsets: ClockOffsets | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """Combine the points, estimate clock offsets, add the adjusted timestamp column `ts`.

    combined: combine_points(packets) made by the caller (who could then free the per-point
    tables); packets then only gives the point names, in order.
    offsets: (estimated, applied) to use instead of estimating them here (SetWide)."""
    pk = combined if combined is not None else combine_points(packets)
    points = list(packets)
    # until a clock is corrected ts is ts_ns: one array, shared copy-on-write (tcp_view shares
    # it too)
    pk["ts"] = (pk["ts_ns"] if pk["ts_ns"].dtype == np.int64
                else pk["ts_ns"].to_numpy(dtype=np.int64))
    tv = tcp_view(pk)
    if offsets is None:
        est, applied = estimate_offsets(tv, points, hosts)
    else:
        est, applied = dict(offsets[0]), dict(offsets[1])
    if any(applied.values()):
        codes, names = category_codes(pk["point"])
        # one shift per point name; the appended 0 is for a row without a point (code -1)
        per_point = np.array([applied.get(n, 0) for n in names] + [0], dtype=np.int64)
        pk["ts"] = pk["ts_ns"].to_numpy(dtype=np.int64) - per_point[codes]
        # same rows in the same order: only the adjusted ts changes
        tv["ts"] = pk["ts"].to_numpy(dtype=np.int64)[tv["row"].to_numpy()]
    return pk, tv, est, applied


def _learned_vips(pk: pd.DataFrame, tv: pd.DataFrame, pins: TopologyPins | None,
                  set_wide: SetWide | None) -> LearnedVips:
    return set_wide.vips if set_wide is not None else learn_vips(pk, tv, pins)


def _learned_topology(pk: pd.DataFrame, tv: pd.DataFrame, points: list[str],
                      pins: TopologyPins | None, vips_job: Future,
                      set_wide: SetWide | None) -> LearnedTopology:
    if set_wide is not None and set_wide.topology is not None:
        return set_wide.topology
    return learn_topology(pk, tv, points, pins, vips_job.result())


def _connections(tv: pd.DataFrame, vips: list[tuple[str, int]]
                 ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """(view rows to a VIP, their connections, each row's connection): see flow_endpoints."""
    rows = vip_rows(tv, vips)
    conns, row_conn = flow_endpoints(tv, rows)
    return rows, conns, row_conn


def correlate(packets: dict[str, pd.DataFrame], *, pins: TopologyPins | None = None,
              window_ms: float = 500.0, hosts: dict[str, str] | None = None,
              combined: pd.DataFrame | None = None,
              capture_span: tuple[int, int] | None = None,
              set_wide: SetWide | None = None) -> Correlation:
    """Learn the topology and build hops, flows and the rule tables. TopologyError if no VIP.

    hosts: point -> capturing host (manifest); points of one host share a clock.
    combined: see prepare.
    capture_span: (started, stopped) ns in which every point was capturing (manifest), if known:
    packets too close to its edges are not judged for a counterpart at another point.
    set_wide: the VIPs, topology and clock offsets of the whole set these packets are part of
    (then neither learned nor estimated here)."""
    pk, tv, est, applied = prepare(packets, hosts, combined,
                                   set_wide.offsets if set_wide is not None else None)
    window_ns = int(window_ms * 1_000_000)
    span_note = ""
    if capture_span is not None and len(pk):
        ts = pk["ts"].to_numpy()
        if ts.max() < capture_span[0] or ts.min() > capture_span[1]:
            # the times are not those of these frames (another clock, or a generated set)
            span_note = ("the manifest's started/stopped do not overlap the captured frames' "
                         "times: not used")
            capture_span = None
    # each stage's temporaries are returned before the next stage allocates its own
    return_freed_heap()
    # The topology is learned on a second core (the VIPs first) while the hops (they need only
    # the view's packet ids, points, MACs and times) and then the connections (only the VIPs)
    # are found on this one: numpy/pandas work that only reads the view. What learning
    # allocates there is all temporary, so that core's heap is returned whole afterwards.
    points = list(packets)
    with ThreadPoolExecutor(1) as side:
        vips_job = side.submit(_learned_vips, pk, tv, pins, set_wide)
        # the one worker runs the jobs in turn: the VIPs are there when this one starts
        topo_job = side.submit(_learned_topology, pk, tv, points, pins, vips_job, set_wide)
        hops = find_hops(tv, window_ns)
        rows, conns, row_conn = _connections(tv, vips_job.result().vips)
        topo = topo_job.result()
    # the packet keys served clock estimation, topology and hops; of the tables only the
    # forwarded copies' search reads the packet ids (its keys are parts of the strict key)
    packet = tv["packet"].to_numpy()
    tv = tv.drop(columns=["strict_key", "packet"])
    return_freed_heap()
    # The replies need only the view and the connections: built on the second core while this
    # one builds the to_vip table and the keys its forwarded copies are matched on; done before
    # the copies are searched (that search and the forwards table's columns are the run's
    # memory peak: the replies' temporaries must not add to it).
    with ThreadPoolExecutor(1) as side:
        replies_job = side.submit(replies_table, tv, topo, conns)
        tovt = to_vip_table(tv, rows, topo, conns, row_conn)
        del row_conn
        keys = copy_keys(tv, topo, rows, packet)
        del rows, packet
        rp = replies_job.result()
    return_freed_heap()
    found = forward_copies(tv, tovt, pk, topo, window_ns, keys)
    del keys
    fw = forwards_table(tv, tovt, pk, topo, window_ns, capture_span, found=found)
    del found
    # nothing reads the TCP view after this: free it before the arp and flows tables are built
    del tv
    return_freed_heap()
    # the ARP/ND table reads the packets table only: built beside the flows
    with ThreadPoolExecutor(1) as side:
        arp_job = side.submit(arp_table, pk, topo)
        flows = flows_table(conns, tovt, fw, rp, applied)
        arp = arp_job.result()
    stats = forward_counts(fw)
    if span_note:
        stats["capture_span"] = span_note
    return Correlation(packets=pk, topology=topo, offsets_estimated=est, offsets_applied=applied,
                       hops=hops, tables={"to_vip": tovt, "forwards": fw, "replies": rp,
                                          "arp": arp, "flows": flows},
                       stats=stats)
