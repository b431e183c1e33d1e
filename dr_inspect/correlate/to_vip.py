"""The to_vip table: every client->VIP frame at every point with its connection, its leg
(ingress at the director, forwarded by it, other) and the roles of its MACs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.plain import int_column
from dr_inspect.columnar.text import mapped, member, take
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.correlate.connections import by_connection
from dr_inspect.topology.model import LearnedTopology

LEGS = pd.CategoricalDtype(pd.Index(["ingress", "forwarded", "other"], dtype=object))


def _same_text(a: pd.Categorical, b: pd.Categorical) -> np.ndarray:
    """Per row: whether two text columns hold the same value (on the codes when both share
    their categories, as the view's MAC columns do)."""
    if a.categories.equals(b.categories):
        return a.codes == b.codes
    return np.asarray(a, dtype=object) == np.asarray(b, dtype=object)


def to_vip_table(tv: pd.DataFrame, rows: np.ndarray, topo: LearnedTopology, conns: pd.DataFrame,
                 row_conn: np.ndarray) -> pd.DataFrame:
    """The view's client->VIP `rows` with their connection (row_conn: position in conns, from
    flow_endpoints), leg and MAC roles. Columns are gathered from the view at the rows."""
    if len(rows) == 0:
        return empty_table("to_vip")
    src_mac, dst_mac = take(tv["src_mac"], rows), take(tv["dst_mac"], rows)
    dmacs, rs_names = topo.director_macs, topo.rs_name_by_mac()
    src_is_director = member(src_mac, dmacs)
    dst_is_director = member(dst_mac, dmacs)
    ingress = member(dst_mac, topo.director_in) & ~member(src_mac,
                                                          topo.director_out - topo.director_in)
    # a client's frame to a MAC that never sends (a stale ARP entry for the VIP) was meant for
    # the director: it is judged as arriving there, and DR007 names it lost
    ingress |= member(dst_mac, topo.silent_macs) & ~src_is_director
    # the director sending to its own MAC (a copy it did not re-address, on a shared LAN) is
    # no arrival, nor is a real server sending a forwarded packet back (a loop)
    ingress &= ~(src_is_director & _same_text(src_mac, dst_mac)) & ~member(src_mac, rs_names)
    forwarded = src_is_director & ~dst_is_director
    leg = np.full(len(rows), 2, dtype=np.int8)
    leg[forwarded] = 1
    leg[ingress] = 0
    point = take(tv["point"], rows)
    t = pd.DataFrame({
        "point": point,
        "role": mapped(point, topo.roles, "unknown"),
        "frame": tv["frame"].to_numpy(dtype=np.int64)[rows],
        "ts_ns": tv["ts_ns"].to_numpy(dtype=np.int64)[rows],
        "flow_id": conns["flow_id"].to_numpy(dtype=np.int64)[row_conn],
        "five_tuple": by_connection(conns["five_tuple"], row_conn),
        "src_ip": take(tv["src_ip"], rows), "dst_ip": take(tv["dst_ip"], rows),
        **{c: int_column(tv[c])[rows] for c in ("src_port", "dst_port", "seq", "ack", "tcp_flags",
                                           "ip_id", "payload_len", "ttl")},
        "src_mac": src_mac, "dst_mac": dst_mac,
        "leg": pd.Categorical.from_codes(leg, dtype=LEGS),
        "dst_is_rs": member(dst_mac, rs_names),
        "src_is_director": src_is_director, "dst_is_director": dst_is_director,
        "real_server": mapped(dst_mac, rs_names, ""),
    }, copy=False)
    return finish_table(t, "to_vip")


