"""The TCP view of the packets table: its TCP rows as plain, narrow columns (see tcp_view), the
packet keys (the same packet at two points) and the packet ids topology learning, hops and the
rule tables share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.codes import shared_text_codes
from dr_inspect.columnar.ids import first_appearance_ids, hash_key
from dr_inspect.columnar.plain import categorical_at, ints_at, same_data

# The same packet at two points: everything IPVS DR does not change.
STRICT_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "seq", "ack", "tcp_flags", "ip_id",
              "payload_len"]
# Looser: enough to find the forwarded copy even when the director changed something it must
# not (DR002 then names the field).
LOOSE_KEY = ["src_ip", "src_port", "seq", "ack", "tcp_flags"]
CONN_KEY = ["src_ip", "src_port", "dst_ip", "dst_port"]

TCP = 6
MOD32 = 1 << 32                 # sequence and acknowledgement numbers wrap here


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


def flags(df: pd.DataFrame) -> np.ndarray:
    return df["tcp_flags"].fillna(0).to_numpy(dtype=np.int64)


def is_tcp(df: pd.DataFrame) -> np.ndarray:
    return (df["proto"] == TCP).fillna(False).to_numpy(dtype=bool)


def point_names_at(points: pd.Series, pos: np.ndarray) -> pd.Categorical:
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
    addresses into str and integers into int64 (correlate.columns.finish_table), so rule
    expressions never meet NA, categories or narrow integers.
    """
    # each column is gathered at the TCP rows alone (a filter of the whole table would copy
    # every column of every frame first)
    pos = np.flatnonzero(is_tcp(pk))
    src_mac, dst_mac = shared_text_codes([categorical_at(pk["src_mac"], pos),
                                          categorical_at(pk["dst_mac"], pos)])
    src_ip, dst_ip = shared_text_codes([categorical_at(pk["src_ip"], pos),
                                        categorical_at(pk["dst_ip"], pos)])
    view = pd.DataFrame({
        "point": point_names_at(pk["point"], pos),
        "frame": pk["frame"].to_numpy(dtype=np.int64)[pos],
        "ts_ns": pk["ts_ns"].to_numpy(dtype=np.int64)[pos],
        # the packets table's row of each view row (int32 while that can hold it)
        "row": pos.astype(np.int32) if len(pk) < 2**31 else pos,
        "src_mac": src_mac,
        "dst_mac": dst_mac,
        "src_ip": src_ip,
        "dst_ip": dst_ip,
        "src_port": ints_at(pk["src_port"], pos, -1, np.int32),
        "dst_port": ints_at(pk["dst_port"], pos, -1, np.int32),
        "seq": ints_at(pk["seq"], pos, -1, np.int64),
        "ack": ints_at(pk["ack"], pos, -1, np.int64),
        "tcp_flags": ints_at(pk["tcp_flags"], pos, 0, np.int16),
        "ip_id": ints_at(pk["ip_id"], pos, -1, np.int64),
        "payload_len": ints_at(pk["payload_len"], pos, 0, np.int32),
        "ttl": ints_at(pk["ttl"], pos, -1, np.int16),
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
