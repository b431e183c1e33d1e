"""The connections of an analysis as rows for `dr-inspect ladder --list`: each flow with its real
server, its verdict and the rules its packets break, so a user can pick the --flow to draw."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dr_inspect.model import VerifyReport
from dr_inspect.report.community_id import community_id_of

# evidence kept per rule when listing flows: every violation must name its flow
LIST_EVIDENCE = 1_000_000


def _broken_rules(report: VerifyReport, flows: pd.DataFrame) -> pd.Series:
    """flow_id -> "DR009, DR012" for each flow some failing rule's evidence names, by the flow id
    the evidence carries or else by its five-tuple."""
    rows = [(r.id, ev.extra.get("flow_id"), ev.five_tuple)
            for r in report.rules if r.status == "fail" for ev in r.evidence]
    if not rows or not len(flows):
        return pd.Series(dtype=object)
    ev = pd.DataFrame(rows, columns=["rule", "flow_id", "five_tuple"])
    by_tuple = (flows[["five_tuple", "flow_id"]].astype({"five_tuple": object})
                .drop_duplicates("five_tuple").set_index("five_tuple")["flow_id"])
    ev["flow_id"] = ev["flow_id"].fillna(ev["five_tuple"].map(by_tuple))
    ev = ev.dropna(subset=["flow_id"]).astype({"flow_id": int}).drop_duplicates(["flow_id", "rule"])
    return ev.sort_values("rule").groupby("flow_id")["rule"].agg(", ".join)


def flow_rows(report: VerifyReport, flows: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per connection, in flow id order: flow, client, vip, real server, packets seen
    from the client and from the server, verdict (ok | FAIL) and the rules broken.

    report should keep all evidence (max_evidence=LIST_EVIDENCE), or some flows miss rules."""
    if not len(flows):
        return []
    broken = _broken_rules(report, flows)
    table = flows.sort_values("flow_id")
    ids = table["flow_id"].to_numpy()
    rules = broken.reindex(ids, fill_value="").to_numpy()
    servers = table["real_server"].astype(object).where(table["real_server"].notna(), "-")
    servers = servers.where(table["rs_count"].to_numpy() <= 1,
                            servers.astype(str) + " (+" + (table["rs_count"] - 1).astype(str) + ")")
    clients = table["client_ip"].astype(str) + ":" + table["client_port"].astype(str)
    return [{"flow": int(f), "client": c, "vip": str(v), "real_server": str(s),
             "packets_in": int(i), "packets_out": int(o), "verdict": "FAIL" if r else "ok",
             "rules": r}
            for f, c, v, s, i, o, r in zip(ids, clients, table["vip"].astype(str), servers,
                                           table["packets_in"], table["packets_out"], rules)]


def connection_rows(flows: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per connection for the JSON report: flow id, five-tuple, client, VIP, real server
    and its Community ID (one hash per connection, not per packet)."""
    if not len(flows):
        return []
    table = flows.sort_values("flow_id")
    servers = table["real_server"].astype(object).where(table["real_server"].notna(), None)
    clients = table["client_ip"].astype(str) + ":" + table["client_port"].astype(str)
    return [{"flow_id": int(f), "five_tuple": t, "client": c, "vip": str(v), "real_server": s,
             "community_id": community_id_of(t)}
            for f, t, c, v, s in zip(table["flow_id"], table["five_tuple"].astype(str), clients,
                                     table["vip"].astype(str), servers)]
