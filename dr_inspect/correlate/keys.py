"""Packet identity keys and small vectorised helpers shared by topology and correlator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.decode.schema import ACK, RST, SYN

# The same packet at two points: everything IPVS DR does not change (DESIGN.md, Correlator).
STRICT_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "seq", "ack", "tcp_flags", "ip_id",
              "payload_len"]
# Looser: enough to find the forwarded copy even when the director changed something it must
# not (DR002 then names the field).
LOOSE_KEY = ["src_ip", "src_port", "seq", "ack", "tcp_flags"]
CONN_KEY = ["src_ip", "src_port", "dst_ip", "dst_port"]

TCP = 6


def hash_key(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row identifying the values of `columns` (categoricals hash by value)."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_pandas_object(df[columns], index=False).to_numpy(dtype=np.uint64)


def strict_key(df: pd.DataFrame) -> np.ndarray:
    """hash_key(df, STRICT_KEY), taken from the `strict_key` column tcp_view adds when present
    (clock estimation, hops and topology learning all need it: hashed once)."""
    if "strict_key" in df.columns:
        return df["strict_key"].to_numpy(dtype=np.uint64)
    return hash_key(df, STRICT_KEY)


def flags(df: pd.DataFrame) -> np.ndarray:
    return df["tcp_flags"].fillna(0).to_numpy(dtype=np.int64)


def is_tcp(df: pd.DataFrame) -> np.ndarray:
    return (df["proto"] == TCP).fillna(False).to_numpy(dtype=bool)


def syn_only(df: pd.DataFrame) -> np.ndarray:
    f = flags(df)
    return (f & (SYN | ACK)) == SYN


def syn_ack(df: pd.DataFrame) -> np.ndarray:
    f = flags(df)
    return (f & (SYN | ACK)) == (SYN | ACK)


def rst(df: pd.DataFrame) -> np.ndarray:
    return (flags(df) & RST) != 0


def text(s: pd.Series) -> pd.Series:
    """Addresses as plain Python strings (object dtype), '' where missing (derived tables never
    hold NA). Object, not pandas' arrow str: the tables are iterated and compared column-wise."""
    values = s.to_numpy(dtype=object, na_value="")
    return pd.Series(values, index=s.index, dtype=object)


def obj(values, index=None) -> pd.Series:
    """A str column as an object Series (pandas 3 would infer its arrow-backed str dtype)."""
    return pd.Series(np.asarray(values, dtype=object), index=index, dtype=object)


def ints(s: pd.Series, missing: int = -1) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object:
        return s.astype("Float64").fillna(missing).to_numpy(dtype=np.int64)
    # nullable integers straight to int64 (no float round trip, no intermediate Series)
    return s.to_numpy(dtype=np.int64, na_value=missing)


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
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(codes > np.concatenate(([-1], seen[:-1])))
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


def shared_text_codes(columns: list[pd.Series]) -> list[pd.Categorical]:
    """Text columns of one kind (MACs, IPs) as categoricals over one sorted category list that
    holds '' for missing: they compare across columns, sort like str, never hold NA, and
    hashing, grouping and isin work on the few categories instead of every row's string."""
    cats = [np.asarray(c.cat.categories if isinstance(c.dtype, pd.CategoricalDtype)
                       else pd.unique(c.dropna()), dtype=object) for c in columns]
    union = pd.Index(np.unique(np.concatenate(cats + [np.array([""], dtype=object)])
                               .astype(str)).astype(object), dtype=object)
    dtype = pd.CategoricalDtype(union)
    out = []
    empty = union.get_loc("")
    for c in columns:
        if isinstance(c.dtype, pd.CategoricalDtype):
            codes = c.cat.codes.to_numpy()
            # code -1 (missing) picks the appended '' (a column may have no categories at all:
            # a capture without MACs)
            remap = np.append(union.get_indexer(np.asarray(c.cat.categories, dtype=object)),
                              empty)
            codes = remap[codes]
        else:
            codes = union.get_indexer(c.to_numpy(dtype=object, na_value=""))
        out.append(pd.Categorical.from_codes(codes, dtype=dtype))
    return out


def tcp_view(pk: pd.DataFrame) -> pd.DataFrame:
    """TCP rows with plain columns (numbers as numpy integers, -1 when missing; addresses as
    categoricals with '' for missing, shared categories per kind: see shared_text_codes).

    Ports, payload length (int32), flags and TTL (int16) are narrow: the view is most of the
    memory of a run. They never hold a negative value other than -1 for a missing TTL, so keys
    hashed from them equal keys hashed from int64 copies (pandas hashes integers by value once
    widened to 64 bits). seq, ack and IP ID stay int64 (arithmetic modulo 2**32; -1 for a
    missing IPv6 IP ID feeds the strict key). Derived tables are built from this view and turn
    addresses into str and integers into int64 (tables._finish), so rule expressions never
    meet NA, categories or narrow integers.
    """
    t = pk[is_tcp(pk)]
    src_mac, dst_mac = shared_text_codes([t["src_mac"], t["dst_mac"]])
    src_ip, dst_ip = shared_text_codes([t["src_ip"], t["dst_ip"]])
    view = pd.DataFrame({
        "point": obj(t["point"].astype(object).to_numpy()),
        "frame": t["frame"].to_numpy(dtype=np.int64),
        "ts_ns": t["ts_ns"].to_numpy(dtype=np.int64),
        "ts": t["ts"].to_numpy(dtype=np.int64) if "ts" in t else t["ts_ns"].to_numpy(dtype=np.int64),
        "row": t["row"].to_numpy(dtype=np.int64),
        "src_mac": src_mac,
        "dst_mac": dst_mac,
        "src_ip": src_ip,
        "dst_ip": dst_ip,
        "src_port": ints(t["src_port"]).astype(np.int32),
        "dst_port": ints(t["dst_port"]).astype(np.int32),
        "seq": ints(t["seq"]),
        "ack": ints(t["ack"]),
        "tcp_flags": ints(t["tcp_flags"], 0).astype(np.int16),
        "ip_id": ints(t["ip_id"]),
        "payload_len": ints(t["payload_len"], 0).astype(np.int32),
        "ttl": ints(t["ttl"]).astype(np.int16),
    }, copy=False)  # the arrays are new already: no second, consolidated copy
    view["strict_key"] = hash_key(view, STRICT_KEY)
    return view


def is_group_mac(macs) -> np.ndarray:
    """Broadcast/multicast MACs (I/G bit of the first octet set); '' counts as not a group MAC."""
    # judged once per distinct MAC (a handful), not per frame
    codes, distinct = pd.factorize(pd.Series(np.asarray(macs, dtype=object), dtype=object))
    first = pd.Series(np.asarray(distinct, dtype=object), dtype=object).str.slice(0, 2)
    digits = first.str.slice(1, 2).fillna("0")
    # the I/G bit is the low bit of the first octet = the low bit of its second hex digit
    group = np.append(digits.isin(list("13579bdfBDF")).to_numpy(dtype=bool), False)
    return group[codes]           # code -1 (missing) takes the appended False
