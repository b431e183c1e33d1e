"""Endpoints and 5-tuples as text, rendered once per distinct value (a capture has far fewer
connections than frames, and the strings are shared objects); which rows go to an endpoint;
which MACs are group addresses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.ids import first_rows
from dr_inspect.columnar.pack import PORT, dense_span, pack, unpack
from dr_inspect.columnar.plain import text
from dr_inspect.columnar.text import as_text, categorical, codes_and_values


def endpoint_in(ips: pd.Series, ports: pd.Series, endpoints: list[tuple[str, int]]) -> np.ndarray:
    """Rows whose (ip, port) is one of `endpoints` (a handful of VIPs: one pass each)."""
    mask = np.zeros(len(ips), dtype=bool)
    for ip, port in endpoints:
        mask |= ((ips == ip) & (ports == port)).fillna(False).to_numpy(dtype=bool)
    return mask


def fmt_endpoint(ip: str, port: int | None) -> str:
    if port is None or port < 0:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def per_distinct(columns: list, render) -> np.ndarray:
    """render(*columns) computed once per distinct row of `columns` and spread back to every row:
    a capture has far fewer connections than frames, and the strings are shared objects."""
    n = len(columns[0])
    if n == 0:
        return np.zeros(0, dtype=object)
    key = pd.util.hash_pandas_object(
        pd.DataFrame({i: (c.reset_index(drop=True) if isinstance(c, pd.Series) else c)
                      for i, c in enumerate(columns)}), index=False).to_numpy(dtype=np.uint64)
    # ids in order of first appearance (a hash table, no sort); each id's first row renders it
    codes = pd.factorize(key)[0]
    first = first_rows(codes)
    picked = [(c.iloc[first] if isinstance(c, pd.Series) else np.asarray(c)[first])
              for c in columns]
    return np.asarray(render(*picked), dtype=object)[codes]


def five_tuples(src_ip: pd.Series, src_port: np.ndarray, dst_ip: pd.Series,
                dst_port: np.ndarray, proto: str = "tcp") -> np.ndarray:
    """'tcp 192.168.7.2:51000 -> 192.168.7.33:8000' per row (IPv6 in brackets)."""
    def render(src_ip, src_port, dst_ip, dst_port) -> np.ndarray:
        def side(ip: pd.Series, port: np.ndarray) -> pd.Series:
            ip = text(pd.Series(ip)).astype(str).reset_index(drop=True)
            v6 = ip.str.contains(":", regex=False)
            host = ip.where(~v6, "[" + ip + "]")
            return host + ":" + pd.Series(np.asarray(port), index=ip.index).astype(str)
        out = proto + " " + side(src_ip, src_port) + " -> " + side(dst_ip, dst_port)
        return out.to_numpy(dtype=object)
    if len(src_ip) == 0:
        return np.zeros(0, dtype=object)
    return per_distinct([src_ip, src_port, dst_ip, dst_port], render)


def endpoints_text(ips: pd.Series, ports) -> np.ndarray:
    """'ip:port' per row ('[ip]:port' for IPv6), vectorised."""
    def render(ips, ports) -> np.ndarray:
        ip = pd.Series(np.asarray(ips, dtype=object)).astype(str)
        port = pd.Series(np.asarray(ports)).astype(str)
        v6 = ip.str.contains(":", regex=False)
        return (ip.where(~v6, "[" + ip + "]") + ":" + port).to_numpy(dtype=object)
    if len(ips) == 0:
        return render(ips, ports)
    return per_distinct([ips, ports], render)


def is_group_mac(macs) -> np.ndarray:
    """Broadcast/multicast MACs (I/G bit of the first octet set); '' counts as not a group MAC."""
    # judged once per distinct MAC (a handful), not per frame
    codes, distinct = pd.factorize(pd.Series(np.asarray(macs, dtype=object), dtype=object))
    first = pd.Series(np.asarray(distinct, dtype=object), dtype=object).str.slice(0, 2)
    digits = first.str.slice(1, 2).fillna("0")
    # the I/G bit is the low bit of the first octet = the low bit of its second hex digit
    group = np.append(digits.isin(list("13579bdfBDF")).to_numpy(dtype=bool), False)
    return group[codes]           # code -1 (missing) takes the appended False


def endpoint_category(ips: pd.Series | pd.Categorical, ports: np.ndarray) -> pd.Categorical:
    """'ip:port' per row ('[ip]:port' for IPv6) as a Categorical, rendered once per distinct
    pair."""
    ip_codes, ip_values = codes_and_values(ips)
    spans = [dense_span(len(ip_values)), PORT]
    codes, uniq = pd.factorize(pack([ip_codes, ports], spans))
    if len(uniq) == 0:
        return as_text(np.zeros(0, dtype=object))
    ip_at, port = unpack(np.asarray(uniq), spans)
    return categorical(codes, endpoints_text(pd.Series(ip_values[ip_at], dtype=object), port))


def endpoint_strings(ips: pd.Series | pd.Categorical, ports: np.ndarray) -> np.ndarray:
    """'ip:port' ('[ip]:port' for IPv6) per row of a small table (one per connection): each
    address and each port is rendered once, each row joined once."""
    codes, values = codes_and_values(ips)
    hosts = np.array([f"[{v}]:" if ":" in v else v + ":" for v in values.astype(str)],
                     dtype=object)
    slot = np.asarray(ports, dtype=np.int64) - PORT.lo
    seen = np.bincount(slot, minlength=PORT.size)
    used = np.flatnonzero(seen)
    port_text = np.empty(len(seen), dtype=object)
    port_text[used] = [str(p + PORT.lo) for p in used.tolist()]
    # object arrays add element by element: one str concatenation per row
    return hosts[codes] + port_text[slot]
