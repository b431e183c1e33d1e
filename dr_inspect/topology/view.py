"""The TCP view as topology learning reads it: addresses as integer codes over one value list per
kind (so src and dst compare), rows as positions, and the few questions every step asks of it
(which rows are SYNs, which go to an endpoint, which connection a row belongs to)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import fmt_endpoint
from dr_inspect.columnar.codes import category_codes, codes_with_na, shared_codes
from dr_inspect.columnar.pack import (PORT, dense_span, distinct_rows, fits, pack, pack_exact,
                                      unpack)
from dr_inspect.columnar.tcp_view import flags
from dr_inspect.decode.schema import ACK, SYN


@dataclass(frozen=True)
class CodedView:
    """The TCP-view columns learning reads, as numpy arrays over all its rows (no copy of the
    view): MACs and IPs as integer codes over one value list per kind, so src and dst compare."""
    src_mac: np.ndarray
    dst_mac: np.ndarray
    macs: np.ndarray                  # MAC code -> value (NaN for a missing one)
    src_ip: np.ndarray
    dst_ip: np.ndarray
    ips: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray


def coded_view(tv: pd.DataFrame) -> CodedView:
    """The view's address and port columns as a CodedView (views of its arrays where it can)."""
    (src_mac, dst_mac), macs = shared_codes([tv["src_mac"], tv["dst_mac"]])
    (src_ip, dst_ip), ips = shared_codes([tv["src_ip"], tv["dst_ip"]])
    return CodedView(src_mac=src_mac, dst_mac=dst_mac, macs=macs, src_ip=src_ip, dst_ip=dst_ip,
                     ips=ips, src_port=tv["src_port"].to_numpy(),
                     dst_port=tv["dst_port"].to_numpy())


def point_codes_at(pk: pd.DataFrame, tv: pd.DataFrame, *rows: np.ndarray
                   ) -> tuple[list[np.ndarray], np.ndarray]:
    """codes_with_na of the view's point column at each array of positions `rows` (one value
    list). A view with an object point column has the packets table's row number of each row
    (`row`, its position in pk): pk's categorical point codes are gathered through it (no
    hashing of a string per row)."""
    if isinstance(tv["point"].dtype, pd.CategoricalDtype):
        codes, values = codes_with_na(tv["point"])
        return [codes[at] for at in rows], values
    if ("row" in tv.columns and "point" in pk.columns
            and isinstance(pk["point"].dtype, pd.CategoricalDtype)):
        codes, values = codes_with_na(pk["point"])
        pk_row = tv["row"].to_numpy()
        return [codes[pk_row[at]] for at in rows], values
    codes, values = codes_with_na(pd.Series(
        tv["point"].to_numpy(dtype=object)[np.concatenate(rows)], dtype=object))
    return np.split(codes, np.cumsum([len(at) for at in rows])[:-1]), values


def syn_rows(tv: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the SYNs (ACK clear) and of the SYN-ACKs."""
    f = tv["tcp_flags"]
    # the view's flags are plain integers (0 when missing): no widened copy needed
    f = f.to_numpy() if f.dtype.kind in "iu" else flags(tv)
    # SYN bit set (few rows), then split on the ACK bit
    with_syn = np.flatnonzero((f & SYN) != 0)          # (nonzero is fastest on booleans)
    acked = (f[with_syn] & ACK) != 0
    return with_syn[~acked], with_syn[acked]


def distinct_endpoints(ip: np.ndarray, port: np.ndarray, ips: np.ndarray
                       ) -> set[tuple[Any, int]]:
    """Distinct (ip value, port) of the rows."""
    if len(ip) == 0:
        return set()
    spans = [dense_span(len(ips)), PORT]
    distinct = pd.unique(pack([ip, port], spans))   # a hash table: a few endpoints, many rows
    ip_code, port_number = unpack(distinct, spans)
    return {(ips[i], p) for i, p in zip(ip_code.tolist(), port_number.tolist())}


def endpoint_rows(ip: np.ndarray, port: np.ndarray, ips: np.ndarray,
                  endpoints: list[tuple[str, int]]) -> np.ndarray:
    """Rows whose (ip, port) is one of `endpoints` (addresses.endpoint_in on codes)."""
    mask = np.zeros(len(ip), dtype=bool)
    for ip_text, port_number in endpoints:
        is_ip = np.asarray(ips == ip_text, dtype=bool)
        if is_ip.any():
            mask |= is_ip[ip] & (port == port_number)
    return mask


def endpoint_texts(ip: np.ndarray, port: np.ndarray, ips: np.ndarray) -> list[str]:
    return [fmt_endpoint(str(ips[i]), int(p)) for i, p in zip(ip.tolist(), port.tolist())]


def conn_keys(*sides: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], n_ip: int
              ) -> list[np.ndarray]:
    """One int64 per row and side for (ip, port, ip, port), equal exactly for equal values."""
    spans = [dense_span(n_ip), PORT, dense_span(n_ip), PORT]
    if not fits(spans):
        # too many addresses to pack directly: packed over all sides at once
        n = [len(side[0]) for side in sides]
        key = pack_exact([np.concatenate([side[i] for side in sides]) for i in range(4)])
        return np.split(key, np.cumsum(n)[:-1])
    return [pack(list(side), spans) for side in sides]


def senders(pk: pd.DataFrame) -> set[str]:
    """The MACs that sent at least one frame (judged on the column's codes)."""
    codes, values = category_codes(pk["src_mac"])
    present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(values)))
    return {str(values[c]) for c in present if isinstance(values[c], str) and values[c]}


@dataclass(frozen=True)
class VipTraffic:
    """The view's rows to a VIP (tov) and from one (rep), as positions, with their MAC and point
    codes; and the distinct (point, src MAC, dst MAC) to a VIP and (point, src MAC) from one:
    the MAC sets and point roles are judged on these few combinations, not on every frame."""
    tov: np.ndarray
    rep: np.ndarray
    t_src: np.ndarray
    t_dst: np.ndarray
    r_src: np.ndarray
    t_point: np.ndarray
    r_point: np.ndarray
    point_values: np.ndarray
    tc_point: np.ndarray
    tc_src: np.ndarray
    tc_dst: np.ndarray
    rc_point: np.ndarray
    rc_src: np.ndarray


def vip_traffic(pk: pd.DataFrame, tv: pd.DataFrame, cv: CodedView, vips: list[tuple[str, int]]
                ) -> VipTraffic:
    """The VipTraffic of the view (its columns are gathered at the rows as needed)."""
    tov = np.flatnonzero(endpoint_rows(cv.dst_ip, cv.dst_port, cv.ips, vips))
    rep = np.flatnonzero(endpoint_rows(cv.src_ip, cv.src_port, cv.ips, vips))
    n_mac = len(cv.macs)
    t_src, t_dst, r_src = cv.src_mac[tov], cv.dst_mac[tov], cv.src_mac[rep]
    (t_point, r_point), point_values = point_codes_at(pk, tv, tov, rep)
    n_point = len(point_values)
    tc_point, tc_src, tc_dst = distinct_rows([t_point, t_src, t_dst], [n_point, n_mac, n_mac])
    rc_point, rc_src = distinct_rows([r_point, r_src], [n_point, n_mac])
    return VipTraffic(tov=tov, rep=rep, t_src=t_src, t_dst=t_dst, r_src=r_src, t_point=t_point,
                      r_point=r_point, point_values=point_values, tc_point=tc_point,
                      tc_src=tc_src, tc_dst=tc_dst, rc_point=rc_point, rc_src=rc_src)
