"""Packet identity keys and small vectorised helpers shared by topology and correlator."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.core.dtypes.cast import coerce_indexer_dtype

from dr_inspect import kernels
from dr_inspect.decode.schema import ACK, RST, SYN

try:
    from dr_inspect.correlate import _hashids
except ImportError:          # built without a compiler: numpy and pandas number the keys
    _hashids = None

# The same packet at two points: everything IPVS DR does not change (DESIGN.md, Correlator).
STRICT_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "seq", "ack", "tcp_flags", "ip_id",
              "payload_len"]
# Looser: enough to find the forwarded copy even when the director changed something it must
# not (DR002 then names the field).
LOOSE_KEY = ["src_ip", "src_port", "seq", "ack", "tcp_flags"]
CONN_KEY = ["src_ip", "src_port", "dst_ip", "dst_port"]

TCP = 6


# Rows hashed at a time: each column's hash and their combination pass over the data several
# times, which is about twice as fast when a piece's arrays stay in the CPU caches.
HASH_ROWS = 1 << 18


def hash_key(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row identifying the values of `columns` (categoricals hash by value)."""
    if len(df) == 0:
        return np.zeros(0, dtype=np.uint64)
    part = df[columns]
    if len(part) <= HASH_ROWS:
        return pd.util.hash_pandas_object(part, index=False).to_numpy(dtype=np.uint64)
    # a row's hash depends on that row's values alone: pieces give the same hashes
    out = np.empty(len(part), dtype=np.uint64)
    for start in range(0, len(part), HASH_ROWS):
        piece = part.iloc[start:start + HASH_ROWS]
        out[start:start + len(piece)] = pd.util.hash_pandas_object(
            piece, index=False).to_numpy(dtype=np.uint64)
    return out


def strict_key(df: pd.DataFrame) -> np.ndarray:
    """hash_key(df, STRICT_KEY), taken from the `strict_key` column tcp_view adds when present
    (clock estimation, hops and topology learning all need it: hashed once)."""
    if "strict_key" in df.columns:
        return df["strict_key"].to_numpy(dtype=np.uint64)
    return hash_key(df, STRICT_KEY)


def packet_ids(df: pd.DataFrame) -> np.ndarray:
    """One dense int32 id per distinct strict key (the same packet at any point), numbered in
    order of first appearance: the `packet` column tcp_view adds when present (factorized once
    for clock estimation and hops), else computed."""
    if "packet" in df.columns:
        return df["packet"].to_numpy(dtype=np.int32)
    return first_appearance_ids(strict_key(df))


def _kernel_ids(keys: np.ndarray, dtype: type) -> tuple[np.ndarray, int] | None:
    """First-appearance ids by the compiled kernel (_hashids.c), None where it is not built or
    is turned off (dr_inspect.kernels)."""
    if _hashids is None or not kernels.allowed():
        return None
    ids = np.empty(len(keys), dtype=dtype)
    n = _hashids.first_appearance_ids(np.ascontiguousarray(keys, dtype=np.uint64), ids)
    return ids, n


def first_appearance_ids(keys: np.ndarray) -> np.ndarray:
    """pd.factorize(keys)[0] as int32, for uint64 hashes: 0, 1, ... in order of first appearance.

    The compiled kernel does it in one pass where it was built. Otherwise: a hash table of a
    million keys is mostly cache misses; the keys are first split into 64 parts by their top
    bits (one stable radix pass), each part factorized in a table that fits the caches, and the
    parts' ids put back in order of first appearance over all rows."""
    done = _kernel_ids(keys, np.int32)
    if done is not None:
        return done[0]
    n = len(keys)
    if n < HASH_ROWS:
        return pd.factorize(keys)[0].astype(np.int32)
    part = (keys >> np.uint64(58)).astype(np.uint8)
    order = np.argsort(part, kind="stable")          # rows of a part stay in row order
    sizes = np.bincount(part, minlength=64)
    del part
    in_parts = keys[order]
    ids = np.empty(n, dtype=np.int64)                # per sorted row: id in part order
    firsts = []                                      # per id: its first sorted row
    n_ids = start = 0
    for size in sizes.tolist():
        if size == 0:
            continue
        local = pd.factorize(in_parts[start:start + size])[0]
        ids[start:start + size] = local + n_ids
        # an id's first row is where it exceeds every id before it
        seen = np.maximum.accumulate(local)
        new = np.ones(size, dtype=bool)
        new[1:] = local[1:] > seen[:-1]
        firsts.append(np.flatnonzero(new) + start)
        n_ids += int(seen[-1]) + 1
        start += size
    del in_parts
    # ids in order of their first row over all rows: mark each first row with its id
    first_rows = order[np.concatenate(firsts)]
    mark = np.full(n, -1, dtype=np.int64)
    mark[first_rows] = np.arange(n_ids)
    rank = np.empty(n_ids, dtype=np.int32)
    rank[mark[mark >= 0]] = np.arange(n_ids, dtype=np.int32)
    out = np.empty(n, dtype=np.int32)
    out[order] = rank[ids]
    return out


def dense_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """(ids, n): ids 0..n-1 per uint64 hash, equal exactly where the keys are equal, in no
    particular order (for matching, not numbering: see first_appearance_ids for that).

    As in first_appearance_ids, the keys are split into 256 parts by their top bits and each
    part is factorized in a hash table that fits the caches (perf1m's 0.7M loose keys: ~23 ms
    against ~50 ms for one table). The compiled kernel, where built, numbers them in order of
    first appearance instead."""
    done = _kernel_ids(keys, np.int64)
    if done is not None:
        return done
    if len(keys) < HASH_ROWS:
        ids, distinct = pd.factorize(keys)
        return ids, len(distinct)
    part = (keys >> np.uint64(56)).astype(np.uint8)
    order = np.argsort(part, kind="stable")          # one radix pass
    sizes = np.bincount(part, minlength=256)
    del part
    in_parts = keys[order]
    ids = np.empty(len(keys), dtype=np.int64)        # per sorted row
    n = start = 0
    for size in sizes.tolist():
        if size:
            local, distinct = pd.factorize(in_parts[start:start + size])
            ids[start:start + size] = local
            ids[start:start + size] += n
            n += len(distinct)
            start += size
    del in_parts
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = ids
    return out, n


def point_codes(points: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, names) of a point column: a categorical's own codes (the view's), else a
    factorize; names[codes] are the points (as str objects)."""
    if isinstance(points.dtype, pd.CategoricalDtype):
        return points.cat.codes.to_numpy(), np.asarray(points.cat.categories, dtype=object)
    codes, names = pd.factorize(points.to_numpy(dtype=object))
    return codes, np.asarray(names, dtype=object)


def argsort_hashes(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for uint64 hashes: one stable radix pass on the top 8
    bits, then each part (in the caches) sorted on its own; the parts are in key order already."""
    if len(keys) < HASH_ROWS // 4:
        return np.argsort(keys, kind="stable")
    top = (keys >> np.uint64(56)).astype(np.uint8)
    order = np.argsort(top, kind="stable")
    sizes = np.bincount(top, minlength=256)
    del top
    in_parts = keys[order]
    start = 0
    for size in sizes.tolist():
        if size > 1:
            part = slice(start, start + size)
            order[part] = order[part][np.argsort(in_parts[part], kind="stable")]
        start += size
    return order


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
    # the codes' own type (int8 for up to 127 categories): remapped straight into it
    code_type = coerce_indexer_dtype(np.zeros(0, dtype=np.int64), union).dtype
    out = []
    empty = union.get_loc("")
    for c in columns:
        if isinstance(c.dtype, pd.CategoricalDtype):
            codes = c.cat.codes.to_numpy()
            # code -1 (missing) picks the appended '' (a column may have no categories at all:
            # a capture without MACs)
            remap = np.append(union.get_indexer(np.asarray(c.cat.categories, dtype=object)),
                              empty).astype(code_type)
            codes = remap[codes]
        else:
            codes = union.get_indexer(c.to_numpy(dtype=object, na_value="")).astype(code_type)
        out.append(pd.Categorical.from_codes(codes, dtype=dtype, validate=False))
    return out


def _ints_at(s: pd.Series, pos: np.ndarray, missing: int, dtype) -> np.ndarray:
    """ints(s) at positions `pos`, as `dtype`: a nullable column's values and mask are gathered
    first, so only the selected rows are converted."""
    arr = s.array
    if isinstance(arr, pd.api.extensions.ExtensionArray) and hasattr(arr, "_mask"):
        return arr.take(pos).to_numpy(dtype=dtype, na_value=missing)
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
        return s.to_numpy()[pos].astype(dtype)
    return ints(s.iloc[pos], missing).astype(dtype)


def _categorical_at(s: pd.Series, pos: np.ndarray) -> pd.Series:
    """A categorical column at positions `pos`, with all its categories (as a boolean filter
    keeps them); other columns are taken as they are."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return pd.Series(pd.Categorical.from_codes(s.cat.codes.to_numpy()[pos], dtype=s.dtype,
                                                   validate=False), copy=False)
    return s.iloc[pos].reset_index(drop=True)


def _point_names_at(points: pd.Series, pos: np.ndarray) -> pd.Categorical:
    """The point of each row at `pos` as a Categorical over the point names in sorted order (int8
    codes for up to 127 points): sorting or grouping on it orders as on the names themselves."""
    if isinstance(points.dtype, pd.CategoricalDtype):
        codes = points.cat.codes.to_numpy()[pos]
        names = np.asarray(points.cat.categories, dtype=object)
    else:
        codes, names = pd.factorize(points.to_numpy(dtype=object)[pos])
        names = np.asarray(names, dtype=object)
    order = np.argsort(names.astype(str), kind="stable")
    sorted_names = pd.Index(names[order], dtype=object)
    dtype = pd.CategoricalDtype(sorted_names)
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[order] = np.arange(len(names))
    rank[-1] = -1                          # code -1 (no point) stays missing
    return pd.Categorical.from_codes(rank[codes], dtype=dtype, validate=False)


def same_data(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are views of the same memory, element for element."""
    return (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def tcp_view(pk: pd.DataFrame) -> pd.DataFrame:
    """TCP rows with plain columns (numbers as numpy integers, -1 when missing; addresses as
    categoricals with '' for missing, shared categories per kind: see shared_text_codes; `point`
    as a categorical of the point names, sorted).

    `strict_key` (hash of STRICT_KEY) and `packet` (packet_ids) are added once here.
    Ports, payload length (int32), flags and TTL (int16) are narrow: the view is most of the
    memory of a run. They never hold a negative value other than -1 for a missing TTL, so keys
    hashed from them equal keys hashed from int64 copies (pandas hashes integers by value once
    widened to 64 bits). seq, ack and IP ID stay int64 (arithmetic modulo 2**32; -1 for a
    missing IPv6 IP ID feeds the strict key). Derived tables are built from this view and turn
    addresses into str and integers into int64 (tables._finish), so rule expressions never
    meet NA, categories or narrow integers.
    """
    # each column is gathered at the TCP rows alone (a filter of the whole table would copy
    # every column of every frame first)
    pos = np.flatnonzero(is_tcp(pk))
    src_mac, dst_mac = shared_text_codes([_categorical_at(pk["src_mac"], pos),
                                          _categorical_at(pk["dst_mac"], pos)])
    src_ip, dst_ip = shared_text_codes([_categorical_at(pk["src_ip"], pos),
                                        _categorical_at(pk["dst_ip"], pos)])
    view = pd.DataFrame({
        "point": _point_names_at(pk["point"], pos),
        "frame": pk["frame"].to_numpy(dtype=np.int64)[pos],
        "ts_ns": pk["ts_ns"].to_numpy(dtype=np.int64)[pos],
        # the packets table's row of each view row (int32 while that can hold it)
        "row": pos.astype(np.int32) if len(pk) < 2**31 else pos,
        "src_mac": src_mac,
        "dst_mac": dst_mac,
        "src_ip": src_ip,
        "dst_ip": dst_ip,
        "src_port": _ints_at(pk["src_port"], pos, -1, np.int32),
        "dst_port": _ints_at(pk["dst_port"], pos, -1, np.int32),
        "seq": _ints_at(pk["seq"], pos, -1, np.int64),
        "ack": _ints_at(pk["ack"], pos, -1, np.int64),
        "tcp_flags": _ints_at(pk["tcp_flags"], pos, 0, np.int16),
        "ip_id": _ints_at(pk["ip_id"], pos, -1, np.int64),
        "payload_len": _ints_at(pk["payload_len"], pos, 0, np.int32),
        "ttl": _ints_at(pk["ttl"], pos, -1, np.int16),
    }, copy=False)  # the arrays are new already: no second, consolidated copy
    ts_ns = pk["ts_ns"].to_numpy(dtype=np.int64)
    ts = pk["ts"].to_numpy(dtype=np.int64) if "ts" in pk else ts_ns
    if same_data(ts, ts_ns):
        # no clock correction (yet): one array shared copy-on-write, as prepare shares pk's
        view.insert(3, "ts", view["ts_ns"])
    else:
        view.insert(3, "ts", ts[pos])
    view["strict_key"] = hash_key(view, STRICT_KEY)
    view["packet"] = packet_ids(view)
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
