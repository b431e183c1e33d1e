"""The connections to a VIP (client ip:port -> VIP ip:port, a reused 5-tuple split by its SYNs):
one row each with its flow id, 5-tuple and VIP texts, and each view row's connection. The rule
tables take their rows' connection columns from it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import endpoint_category, endpoint_in, endpoint_strings
from dr_inspect.columnar.codes import own_shared_codes
from dr_inspect.columnar.ids import first_rows, hash_key
from dr_inspect.columnar.pack import PORT, code_span, fits, pack
from dr_inspect.columnar.plain import obj
from dr_inspect.columnar.tcp_view import CONN_KEY
from dr_inspect.columnar.text import categorical, take
from dr_inspect.correlate.epochs import split_epochs
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.decode.schema import ACK, SYN


def vip_rows(tv: pd.DataFrame, vips: list[tuple[str, int]]) -> np.ndarray:
    """Positions in the TCP view of the frames to a VIP ip:port (client->VIP, either leg)."""
    return np.flatnonzero(endpoint_in(tv["dst_ip"], tv["dst_port"], vips))


def _view_at(s: pd.Series, rows: np.ndarray):
    """Rows of one view column: a text column as a Categorical, numbers as a numpy array."""
    return take(s, rows) if isinstance(s.dtype, pd.CategoricalDtype) else s.to_numpy()[rows]


def _conn_ids(tv: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """One id per distinct CONN_KEY of the view's `rows`, numbered in order of first appearance:
    the address codes and ports packed into one exact integer where they fit, else hashed."""
    coded = own_shared_codes([tv["src_ip"], tv["dst_ip"]])
    spans = [code_span(coded[1]), PORT, code_span(coded[1]), PORT] if coded is not None else []
    if coded is None or not fits(spans):
        return pd.factorize(hash_key(tv[CONN_KEY].iloc[rows], CONN_KEY))[0]
    (src_ip, dst_ip), _ = coded
    key = pack([src_ip[rows], tv["src_port"].to_numpy()[rows], dst_ip[rows],
                tv["dst_port"].to_numpy()[rows]], spans)
    return pd.factorize(key)[0]


def flow_endpoints(tv: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per connection (client ip:port -> VIP ip:port) of the view's `rows` (vip_rows),
    flow ids by first appearance, with its 5-tuple and VIP texts; and each row's position in it.
    client_ip and vip_ip keep the view's address dtype."""
    if len(rows) == 0:
        return pd.DataFrame({"client_ip": [], "client_port": [], "vip_ip": [], "vip_port": [],
                             "flow_id": [], "first_ts": [], "client": [], "five_tuple": [],
                             "vip": []}), \
            np.zeros(0, dtype=np.int64)
    # integer ids in order of first appearance; each connection's first row gives its endpoints
    # (a 5-tuple reused by a new SYN is a new connection)
    flags = tv["tcp_flags"].to_numpy()[rows]
    five_tuple_ids = _conn_ids(tv, rows)
    codes = split_epochs(five_tuple_ids, (flags & (SYN | ACK)) == SYN,
                         tv["seq"].to_numpy()[rows], tv["ts"].to_numpy()[rows],
                         CLOCK_TOLERANCE_NS)
    reused = codes is not five_tuple_ids
    del flags, five_tuple_ids
    first = first_rows(codes)
    first_ts = np.full(len(first), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_ts, codes, tv["ts"].to_numpy(dtype=np.int64)[rows])
    at = rows[first]
    client_port = tv["src_port"].to_numpy()[at]
    order = np.lexsort((client_port, first_ts))          # by first time, then client port
    at = at[order]
    f = pd.DataFrame({
        "client_ip": _view_at(tv["src_ip"], at),
        "client_port": client_port[order].astype(np.int64),
        "vip_ip": _view_at(tv["dst_ip"], at),
        "vip_port": tv["dst_port"].to_numpy()[at].astype(np.int64),
        "first_ts": first_ts[order]})
    f["flow_id"] = np.arange(1, len(f) + 1, dtype=np.int64)
    client = endpoint_strings(f["client_ip"], f["client_port"].to_numpy())
    # text columns as Categoricals the tables take their rows' texts from by connection
    # position (one category per connection for the 5-tuple; the few VIPs for vip)
    vip = endpoint_category(f["vip_ip"], f["vip_port"].to_numpy())
    f["client"] = obj(client)
    # distinct 5-tuples render distinct texts (the connections of a reused one share its text)
    f["five_tuple"] = categorical(np.arange(len(f)), [
        f"tcp {c} -> {v}" for c, v in zip(client, np.asarray(vip, dtype=object))],
        distinct=not reused)
    f["vip"] = vip
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))                 # connection code -> position in f
    return f, place[codes]


def by_connection(column: pd.Series, conn: np.ndarray) -> pd.Categorical:
    """A text column of the connections table (a Categorical) at each row's connection."""
    return pd.Categorical.from_codes(column.cat.codes.to_numpy()[conn], dtype=column.dtype)

