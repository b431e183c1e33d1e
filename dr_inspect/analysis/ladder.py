"""Ladder: one connection across the capture points, in the seed's narrative order
(client send, director receive, director send, server receive, server send, client receive).
A view over an analysis result (dr_inspect.analysis.result.Analysis)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dr_inspect.errors import InputError
from dr_inspect.analysis.result import Analysis
from dr_inspect.model import Ladder, LadderStep


def _breaks_by_frame(report, fid: int) -> dict[tuple[str, int], list[str]]:
    """(point, frame) -> the rule ids whose evidence of this flow names that frame."""
    out: dict[tuple[str, int], list[str]] = {}
    for rule in report.rules:
        for e in rule.evidence:
            if e.extra.get("flow_id") != fid:
                continue
            for frame in e.frames:
                ids = out.setdefault((str(e.point), int(frame)), [])
                if rule.id not in ids:
                    ids.append(rule.id)
    return out


def build_ladder(analysis: Analysis, *, flow: int | None = None, client: str | None = None) -> Ladder:
    """One connection across the points, in the seed's narrative order."""
    row = _pick_flow(analysis.tables["flows"], flow, client, analysis.report.filter)
    fid = int(row["flow_id"])
    topo = analysis.correlation.topology if analysis.correlation else None
    legs = _legs(analysis.tables, fid, topo.rs_name_by_mac() if topo else {})
    ts_adj, ttls = _times_and_ttls(analysis.packets, legs)
    order = sorted(range(len(legs)), key=lambda i: (
        ts_adj[i] if not np.isnan(ts_adj[i]) else legs[i][0]["ts_ns"],
        legs[i][0]["point"], legs[i][0]["frame"]))
    steps = _steps([legs[i] for i in order], [ttls[i] for i in order],
                   _breaks_by_frame(analysis.report, fid))
    hosts = ["client", "director"] + [rs.name for rs in (topo.real_servers if topo else [])]
    for s in steps:
        for h in (s.src_host, s.dst_host):
            if h not in hosts:
                hosts.append(h)
    violations = sorted({r.id for r in analysis.report.rules for e in r.evidence
                         if e.extra.get("flow_id") == fid})
    rs_name = row["real_server"] or None
    return Ladder(flow_id=fid, five_tuple=row["five_tuple"], real_server=rs_name, hosts=hosts,
                  points=list(dict.fromkeys(s.point for s in steps)), steps=steps,
                  violations=violations)


def _pick_flow(flows: pd.DataFrame, flow: int | None, client: str | None,
               selection: dict | None = None) -> pd.Series:
    """The flows row of flow id `flow`, or the first from client "IP[:PORT]", or the first.
    selection: the report's filter (its flows keep their unfiltered ids)."""
    if len(flows) == 0:
        raise InputError("no connection to a VIP in these captures: nothing to draw")
    if flow is not None:
        pick = flows[flows["flow_id"] == flow]
        if len(pick) == 0 and selection:
            ids = [str(i) for i in flows["flow_id"].head(10)]
            raise InputError(f"flow {flow} is not one {selection['filter']} selects (flows "
                             f"{', '.join(ids)}{', ...' if len(flows) > 10 else ''})")
        if len(pick) == 0:
            raise InputError(f"no flow {flow} (flows 1..{int(flows['flow_id'].max())})")
    elif client is not None:
        ip, _, port = client.rpartition(":") if client.count(":") == 1 or client.startswith("[") \
            else (client, "", "")
        ip = ip.strip("[]") or client
        pick = flows[flows["client_ip"] == ip]
        if port:
            pick = pick[pick["client_port"] == int(port)]
        if len(pick) == 0:
            raise InputError(f"no connection from client {client}")
    else:
        pick = flows
    return pick.iloc[0]


Leg = tuple[dict, str, str, str, str]     # (row, label, from host, to host, note)


def _legs(tables: dict[str, pd.DataFrame], fid: int, rs_names: dict[str, str]) -> list[Leg]:
    """The flow's frames toward the VIP and its replies, each with what it is in the story."""
    legs: list[Leg] = []
    tv_ = tables["to_vip"]
    for r in tv_[tv_["flow_id"] == fid].to_dict("records"):
        if r["leg"] == "ingress":
            label, src, dst, note = "client send", "client", "director", ""
        elif r["leg"] == "forwarded":
            rs = rs_names.get(r["dst_mac"], r["dst_mac"])
            label, src, dst, note = "director send", "director", rs, f"dst MAC rewritten to {rs}"
        else:
            rs = rs_names.get(r["dst_mac"], r["dst_mac"])
            label, src, dst, note = "client send", "client", rs, "addressed straight to a real server"
        legs.append((r, label, src, dst, note))
    rp = tables["replies"]
    for r in rp[rp["flow_id"] == fid].to_dict("records"):
        if r["from_director"]:
            label, src, dst, note = "director send", "director", "client", "reply through the director"
        elif r["to_director"]:
            label, src, dst = "server send", rs_names.get(r["src_mac"], r["src_mac"]), "director"
            note = "reply sent to the director"
        else:
            label, src, dst = "server send", rs_names.get(r["src_mac"], r["src_mac"]), "client"
            note = "reply bypasses the director"
        if not r["from_vip"]:
            note += f"; source {r['src_ip']} is not the VIP"
        legs.append((r, label, src, dst, note))
    return legs


def _times_and_ttls(pk: pd.DataFrame, legs: list[Leg]) -> tuple[np.ndarray, np.ndarray]:
    """Clock-adjusted time and TTL of each leg's frame (NaN when not found), in one merge."""
    keys = pd.DataFrame({"point": [r["point"] for r, *_ in legs],
                         "frame": [int(r["frame"]) for r, *_ in legs]})
    if not len(keys):
        return np.zeros(0), np.zeros(0)
    sub = pk[pk["frame"].isin(keys["frame"]).to_numpy()]
    sub = pd.DataFrame({"point": sub["point"].astype(object).to_numpy(),
                        "frame": sub["frame"].to_numpy(), "ts": sub["ts"].to_numpy(),
                        "ttl": sub["ttl"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)})
    looked = keys.merge(sub, on=["point", "frame"], how="left")
    return looked["ts"].to_numpy(dtype=float), looked["ttl"].to_numpy(dtype=float)


def _steps(legs: list[Leg], ttls: list[float], breaks: dict[tuple[str, int], list[str]]
           ) -> list[LadderStep]:
    """The ladder's steps from the legs in time order: a frame seen again (same packet, same
    MACs) at a later point is its receive; breaks: see _breaks_by_frame."""
    receive = {"client send": "director receive", "director send": "server receive",
               "server send": "client receive"}
    # one packet's sightings: a sending of it (instance) is seen once per (point, MACs); the
    # same packet at a point where this sending was already seen with the same MACs is a
    # retransmission, a sending of its own, whose sightings are matched among themselves
    instances: dict[tuple, tuple[int, set, set]] = {}
    steps = []
    for (r, label, src, dst, note), ttl_value in zip(legs, ttls):
        key = (r["src_ip"], r["dst_ip"], r["src_port"], r["dst_port"], r["seq"], r["ack"],
               r["tcp_flags"], r["payload_len"])
        where = (r["point"], r["src_mac"], r["dst_mac"])
        state = instances.get(key)
        if state is None or where in state[1]:
            state = (0 if state is None else state[0] + 1, set(), set())
            instances[key] = state
        state[1].add(where)
        ident = (label, r["src_mac"], r["dst_mac"])
        if ident in state[2]:
            label = receive[label]
        state[2].add(ident)
        if state[0]:
            note = "; ".join(x for x in (note, f"retransmission {state[0]}") if x)
        ttl = None if np.isnan(ttl_value) else int(ttl_value)
        steps.append(LadderStep(label=label, point=r["point"], frame=int(r["frame"]),
                                ts_ns=int(r["ts_ns"]), src_mac=r["src_mac"], dst_mac=r["dst_mac"],
                                src_ip=r["src_ip"], dst_ip=r["dst_ip"],
                                src_port=int(r["src_port"]), dst_port=int(r["dst_port"]), ttl=ttl,
                                tcp_flags=int(r["tcp_flags"]),
                                seq=int(r["seq"]) if r["seq"] >= 0 else None,
                                ack=int(r["ack"]) if r["ack"] >= 0 else None,
                                payload_len=int(r["payload_len"]),
                                src_host=src, dst_host=dst, note=note, instance=state[0],
                                breaks=breaks.get((str(r["point"]), int(r["frame"])), [])))
    return steps
