"""The forwarded copy of each client->VIP frame arriving at the director, where a real-server-side
point could see one: matched on the loose keys nearest in time, then by seq range (GRO/TSO)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dr_inspect.columnar.group import nearest_by_key
from dr_inspect.columnar.ids import hash_key
from dr_inspect.columnar.plain import int_column
from dr_inspect.columnar.tcp_view import packet_ids
from dr_inspect.columnar.text import codes_and_values, member, text_rank
from dr_inspect.correlate.coalesced import coalesced_copies, copy_counts, covered
from dr_inspect.correlate.connections import vip_rows
from dr_inspect.correlate.copy_keys import CopyKeys, copy_keys
from dr_inspect.correlate.spans import adjusted_ts, copy_observable, point_spans
from dr_inspect.topology.model import LearnedTopology

CLIENT_KEY = ["src_ip", "src_port"]


@dataclass
class ForwardCopies:
    """The forwarded copy of each ingress frame, in table order (time, point name, frame)."""
    rows: np.ndarray            # tovt rows
    ts: np.ndarray              # their clock-adjusted time
    copy_tv: np.ndarray         # tv row of the copy, -1 for none
    coalesced: np.ndarray       # matched by seq range to a GRO/TSO-coalesced copy
    copy_ttls: np.ndarray       # most distinct TTLs the copies of the packet show at one point
    copies: np.ndarray          # copies of the packet (loose key) at the real-server side
    empty_points: list[str] = field(default_factory=list)   # real-server-side, without frames


def _ingress_rows(tovt: pd.DataFrame, pk: pd.DataFrame, spans: dict[str, tuple[int, int]],
                  topo: LearnedTopology, rs_points: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tovt rows, clock-adjusted ts, whether a real-server-side point could see the copy) of
    the frames at the director's ingress."""
    ingress = ((tovt["leg"] == "ingress").to_numpy()
               & member(tovt["role"], ("vip-segment", "both")))
    ipos = np.flatnonzero(ingress)
    # tovt holds raw ts_ns; the clock-adjusted ts is ts_ns less its point's offset
    ts_adj = adjusted_ts(pk, tovt["point"].iloc[ipos],
                          tovt["ts_ns"].to_numpy(dtype=np.int64)[ipos])
    return ipos, ts_adj, copy_observable(ts_adj, spans, topo, rs_points)


def _judged(found: ForwardCopies, ipos: np.ndarray, observable: np.ndarray, n_rows: int
            ) -> ForwardCopies:
    """The frames to judge: those a real-server-side point could see the copy of, and every
    frame whose copy was found. Spans are known only to the clock estimate's error: a copy
    the estimate puts just before its original can be its point's last frame, leaving the
    original "after" the span, though its copy is right there (issue 12)."""
    seen = np.zeros(n_rows, dtype=bool)
    seen[ipos[observable]] = True
    keep = seen[found.rows] | (found.copy_tv >= 0)
    if keep.all():
        return found
    return ForwardCopies(rows=found.rows[keep], ts=found.ts[keep], copy_tv=found.copy_tv[keep],
                         coalesced=found.coalesced[keep], copy_ttls=found.copy_ttls[keep],
                         copies=found.copies[keep], empty_points=found.empty_points)


def _match_copies(ing: dict, cand: dict, window_ns: int, n_loose: int | None = None,
                  n_ident: int | None = None) -> np.ndarray:
    """Per ingress frame the cand row of its copy (-1 for none).

    Pass 1 keys on the IP ID too (ikey), so a retransmission is not taken for the copy of a
    dropped original; pass 2 (loose key lkey, copies not yet taken) finds copies whose IP ID was
    changed. Nearest in time: an uncorrected clock offset may put the copy "before" its original.
    Only keys, times and positions are matched. n_loose / n_ident: the keys are dense ids below
    these (see LooseKeys), else hashes."""
    copy = nearest_by_key(ing["ikey"], ing["ts"], cand["ikey"], cand["ts"], window_ns, n_ident)
    rest = np.flatnonzero(copy < 0)
    if len(rest):
        taken = np.zeros(len(cand["ts"]), dtype=bool)
        taken[copy[copy >= 0]] = True
        free = np.flatnonzero(~taken)
        found = nearest_by_key(ing["lkey"][rest], ing["ts"][rest], cand["lkey"][free],
                                cand["ts"][free], window_ns, n_loose)
        copy[rest] = np.append(free, -1)[found]   # found -1: the appended -1
    return copy


def _first_forward_first(cand: dict, ttl: np.ndarray, n_loose: int, window_ns: int) -> dict:
    """cand with the times it is matched on pushed beyond the window for every copy whose TTL
    is below the highest of its packet's copies: a packet forwarded again and again (a loop)
    is matched to its first forwarding, not to whichever repetition an uncorrected clock puts
    nearest."""
    if len(ttl) == 0:
        return cand
    ttl = ttl.astype(np.int64)
    top = np.full(n_loose, -1, dtype=np.int64)
    np.maximum.at(top, cand["lkey"], ttl)
    deficit = top[cand["lkey"]] - ttl
    if not deficit.any():
        return cand
    return {**cand, "ts": cand["ts"] + deficit * (2 * window_ns + 1)}


def _find_copies(tv: pd.DataFrame, tovt: pd.DataFrame, ipos: np.ndarray, ts: np.ndarray,
                 window_ns: int, found_keys: CopyKeys) -> ForwardCopies:
    """Match each ingress frame (tovt rows ipos) to its copy at the real-server side. Keys,
    candidates and merge inputs live only in here: what leaves is a few arrays per frame."""
    all_pos, keys = found_keys.rs_rows, found_keys.keys
    ing = {"ts": ts, "lkey": keys.loose_a[ipos], "ikey": keys.ident_a[ipos]}
    # candidates: the real-server-side rows with the loose key of an ingress frame (the loose
    # key holds the client endpoint: a copy whose VIP or port was rewritten is still found, and
    # DR002 names the change instead of DR007 calling it lost)
    wanted = np.zeros(keys.n_loose, dtype=bool)
    wanted[ing["lkey"]] = True
    picked = wanted[keys.loose_b]
    del wanted
    cpos = all_pos[picked]
    tv_ts = tv["ts"].to_numpy(dtype=np.int64)
    cand = {"ts": tv_ts[cpos], "lkey": keys.loose_b[picked], "ikey": keys.ident_b[picked]}
    n_loose, n_ident = keys.n_loose, keys.n_ident
    del keys, picked, found_keys

    copy = _match_copies(ing, _first_forward_first(cand, tv["ttl"].to_numpy()[cpos], n_loose,
                                                   window_ns), window_ns, n_loose, n_ident)
    copy_tv = np.append(cpos, -1)[copy]      # tv row of each copy (copy -1: the appended -1)
    del copy
    has = copy_tv >= 0
    payload_len = int_column(tovt["payload_len"])[ipos]
    copy_payload = np.where(has, tv["payload_len"].to_numpy()[np.maximum(copy_tv, 0)], -1)
    coalesced = has & (copy_payload != payload_len)
    del copy_payload

    if (~has).any() or coalesced.any():
        # GRO/TSO: the real-server-side frames of the ingress frames' connections (client
        # endpoint) are searched by seq range, and every copy of another length must tile
        # its original's range (or be tiled by them) exactly
        conn = hash_key(tovt[CLIENT_KEY].iloc[ipos], CLIENT_KEY)
        all_conn = hash_key(tv[CLIENT_KEY].iloc[all_pos], CLIENT_KEY)
        kept = pd.Series(all_conn).isin(conn).to_numpy()
        all_pos, all_conn = all_pos[kept], all_conn[kept]
        seq = int_column(tovt["seq"])[ipos]
        if len(all_pos) and (~has).any():
            mpos, cap = coalesced_copies(
                {"conn": conn, "ts": ts, "seq": seq, "payload_len": payload_len,
                 "has_copy": has},
                {"conn": all_conn, "ts": tv_ts[all_pos], "seq": tv["seq"].to_numpy()[all_pos],
                 "payload_len": tv["payload_len"].to_numpy()[all_pos]}, window_ns)
            copy_tv[mpos] = all_pos[cap]
            coalesced[mpos] = True
        if coalesced.any():
            coalesced &= covered(tv, copy_tv, coalesced, conn, seq, payload_len,
                                  all_pos, all_conn)
        del conn, all_conn, seq
    del all_pos, payload_len

    # repeated forwarding (loops): distinct TTLs of the copies of one packet at one point
    if len(cpos):
        copy_ttls, copies = copy_counts(
            cand["lkey"], codes_and_values(tv["point"].iloc[cpos])[0],
            tv["ttl"].to_numpy()[cpos].astype(np.int64), ing["lkey"], n_loose)
    else:
        copy_ttls = copies = np.zeros(len(ipos), dtype=np.int64)
    del cand, ing

    # the table's order (time, point name, frame) is fixed before any column is gathered
    final = np.lexsort((tovt["frame"].to_numpy()[ipos], text_rank(tovt["point"])[ipos], ts))
    return ForwardCopies(rows=ipos[final], ts=ts[final], copy_tv=copy_tv[final],
                   coalesced=coalesced[final], copy_ttls=copy_ttls[final].astype(np.int32),
                   copies=copies[final].astype(np.int32))


def forward_copies(tv: pd.DataFrame, tovt: pd.DataFrame, pk: pd.DataFrame, topo: LearnedTopology,
                   window_ns: int, keys: CopyKeys | None = None) -> ForwardCopies:
    """The client->VIP frames arriving at the director where a copy could be seen, each with its
    forwarded copy (or none): matched on the loose key, then by seq range (GRO/TSO).

    keys: copy_keys of tovt, when the caller made them (else made here, from packet ids
    computed again)."""
    rs_points = [p for p, r in topo.roles.items() if r in ("rs-segment", "both")]
    spans = point_spans(pk)
    empty_points = [p for p in rs_points if p not in spans]
    ipos, ts, observable = _ingress_rows(tovt, pk, spans, topo, rs_points)
    if not observable.any():
        none = np.zeros(0, dtype=np.int64)
        return ForwardCopies(rows=none, ts=none, copy_tv=none, coalesced=none.astype(bool),
                             copy_ttls=none, copies=none, empty_points=empty_points)
    if keys is None:
        keys = copy_keys(tv, topo, vip_rows(tv, topo.vips), packet_ids(tv))
    found = _judged(_find_copies(tv, tovt, ipos, ts, window_ns, keys), ipos, observable,
                    len(tovt))
    found.empty_points = empty_points
    return found

