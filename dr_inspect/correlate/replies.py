"""The replies table: packets toward a VIP connection's client from the VIP's port, from the VIP
or from elsewhere, each with its connection (a reused 5-tuple: the one started by then)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.columnar.addresses import five_tuples
from dr_inspect.columnar.codes import own_shared_codes
from dr_inspect.columnar.ids import hash_key
from dr_inspect.columnar.pack import PORT, code_span, fits, pack
from dr_inspect.columnar.plain import int_column
from dr_inspect.columnar.text import categorical, codes_and_values, mapped, member, take, text_rank
from dr_inspect.correlate.columns import empty_table, finish_table
from dr_inspect.correlate.connections import by_connection
from dr_inspect.correlate.epochs import epoch_keys
from dr_inspect.correlate.hops import CLOCK_TOLERANCE_NS
from dr_inspect.topology.model import LearnedTopology


def replies_table(tv: pd.DataFrame, topo: LearnedTopology, conns: pd.DataFrame) -> pd.DataFrame:
    """Packets toward a VIP connection's client from the VIP's port (from the VIP or elsewhere)."""
    if len(conns) == 0 or len(tv) == 0:
        return empty_table("replies")
    # only frames that can match (from a VIP port to a client address) are keyed
    src_port = tv["src_port"].to_numpy()
    vip_ports = conns["vip_port"].unique()
    if len(vip_ports) <= 8:
        from_port = np.zeros(len(tv), dtype=bool)
        for port in vip_ports.tolist():          # a few VIP ports: one pass each
            from_port |= src_port == port
    else:
        from_port = np.isin(src_port, vip_ports)
    maybe = np.flatnonzero(from_port & member(
        tv["dst_ip"], set(np.asarray(conns["client_ip"], dtype=object))))
    del from_port
    lpos, cpos = _reply_connections(tv, maybe, conns)
    if len(lpos) == 0:
        return empty_table("replies")
    # from the VIP: the reply's source address equals its connection's VIP (compared as ids of
    # the distinct texts of both columns)
    src_codes, src_values = codes_and_values(tv["src_ip"])
    vip_codes, vip_values = codes_and_values(conns["vip_ip"])
    ids = pd.factorize(np.concatenate([src_values, vip_values]).astype(str))[0]
    from_vip = (ids[:len(src_values)][src_codes[maybe[lpos]]]
                == ids[len(src_values):][vip_codes[cpos]])
    if len(lpos) > 1 and (lpos[1:] == lpos[:-1]).any():
        # a client talking to two VIPs on one port from one port: keep the matching VIP; a
        # reused 5-tuple: the connection that had started by the reply's time (else the first
        # connection that matches)
        minor, major = epoch_keys(conns["first_ts"].to_numpy()[cpos],
                                  tv["ts"].to_numpy()[maybe[lpos]], CLOCK_TOLERANCE_NS)
        pick = np.lexsort((cpos, minor, major, ~from_vip, lpos))
        first = np.ones(len(pick), dtype=bool)
        first[1:] = lpos[pick][1:] != lpos[pick][:-1]
        pick = pick[first]
        lpos, cpos, from_vip = lpos[pick], cpos[pick], from_vip[pick]
    rows = maybe[lpos]
    # the table's order (time, point name, frame) is fixed before any column is gathered
    final = np.lexsort((tv["frame"].to_numpy()[rows], text_rank(tv["point"])[rows],
                        tv["ts"].to_numpy()[rows]))
    rows, cpos, from_vip = rows[final], cpos[final], from_vip[final]
    r: dict = {}
    for c in ("point", "frame", "ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "seq",
              "ack", "tcp_flags", "ttl", "ip_id", "payload_len", "src_mac", "dst_mac"):
        s = tv[c]
        r[c] = take(s, rows) if isinstance(s.dtype, (pd.CategoricalDtype, np.dtypes.ObjectDType)) \
            else int_column(s)[rows]
    r["flow_id"] = conns["flow_id"].to_numpy(dtype=np.int64)[cpos]
    r["from_vip"] = from_vip
    r["role"] = mapped(r["point"], topo.roles, "unknown")
    r["five_tuple"] = _reply_five_tuples(r, cpos, conns)
    r["vip"] = by_connection(conns["vip"], cpos)
    dmacs = topo.director_macs
    r["from_director"] = member(r["src_mac"], dmacs)
    r["to_director"] = member(r["dst_mac"], dmacs)
    r["real_server"] = mapped(r["src_mac"], topo.rs_name_by_mac(), "")
    return finish_table(pd.DataFrame(r, copy=False), "replies")


def _reply_connections(tv: pd.DataFrame, maybe: np.ndarray, conns: pd.DataFrame
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(positions in `maybe`, connection positions) of the view rows `maybe` sent to a
    connection's client ip:port from its VIP port, ascending in the first: one pair per
    connection the row matches."""
    coded = own_shared_codes([tv["dst_ip"], conns["client_ip"]])
    spans = [code_span(coded[1]), PORT, PORT] if coded is not None else []
    if coded is not None and fits(spans):
        # exact integers: the address code and ports packed
        (dst_ip, client_ip), _ = coded
        left = pack([dst_ip[maybe], tv["dst_port"].to_numpy()[maybe],
                     tv["src_port"].to_numpy()[maybe]], spans)
        right = pack([client_ip, conns["client_port"].to_numpy(), conns["vip_port"].to_numpy()],
                     spans)
    else:
        key = ["dst_ip", "dst_port", "src_port"]
        left = hash_key(tv[key].iloc[maybe], key)
        right = hash_key(pd.DataFrame({"dst_ip": conns["client_ip"],
                                       "dst_port": conns["client_port"],
                                       "src_port": conns["vip_port"]}), key)
    ends = pd.Index(right)
    if ends.is_unique:
        # (almost always) one connection per key: a lookup, no join
        at = ends.get_indexer(left)
        lpos = np.flatnonzero(at >= 0)
        return lpos, at[lpos].astype(np.int64)
    pairs = pd.merge(pd.DataFrame({"k": left, "lpos": np.arange(len(maybe), dtype=np.int64)}),
                     pd.DataFrame({"k": right, "cpos": np.arange(len(conns), dtype=np.int64)}),
                     on="k", how="inner").sort_values(["lpos", "cpos"], kind="stable")
    return pairs["lpos"].to_numpy(), pairs["cpos"].to_numpy()


def _reply_five_tuples(r: dict, cpos: np.ndarray, conns: pd.DataFrame) -> pd.Categorical:
    """'tcp src:port -> dst:port' of each reply. A reply from the VIP is its connection's
    5-tuple turned round (rendered once per connection); others once per distinct 5-tuple."""
    used = np.flatnonzero(np.bincount(cpos, minlength=len(conns)))
    client = conns["client"].to_numpy()[used]
    vip_codes, vips = codes_and_values(conns["vip"])
    head = np.array([f"tcp {v} -> " for v in vips], dtype=object)
    turned = head[vip_codes[used]] + client        # one str concatenation per connection
    slot = np.zeros(len(conns), dtype=np.int64)
    slot[used] = np.arange(len(used))
    codes = slot[cpos]
    texts = list(turned)
    other = np.flatnonzero(~r["from_vip"])
    if len(other):
        sub = {c: (r[c].take(other) if isinstance(r[c], pd.Categorical) else r[c][other])
               for c in ("src_ip", "src_port", "dst_ip", "dst_port")}
        key = hash_key(pd.DataFrame(sub), list(sub))
        ocodes, uniq = pd.factorize(key)
        first = np.full(len(uniq), len(ocodes), dtype=np.int64)
        np.minimum.at(first, ocodes, np.arange(len(ocodes), dtype=np.int64))
        texts += list(five_tuples(pd.Series(np.asarray(sub["src_ip"].take(first), dtype=object)),
                                  np.asarray(sub["src_port"])[first],
                                  pd.Series(np.asarray(sub["dst_ip"].take(first), dtype=object)),
                                  np.asarray(sub["dst_port"])[first]))
        codes[other] = len(turned) + ocodes
    # the turned 5-tuples of distinct 5-tuples differ (a reused one's connections share theirs);
    # another may equal one of them
    distinct = len(other) == 0 and len(conns["five_tuple"].cat.categories) == len(conns)
    return categorical(codes, np.asarray(texts, dtype=object), distinct=distinct)

