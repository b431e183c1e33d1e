"""Rules over the per-frame tables (to_vip, forwards, replies) evaluated bucket by bucket, then
reduced: the set's result without its per-frame tables in one process.

A rule is evaluated per bucket when every row it judges together lies in one bucket: kind
`each` / `none` (row by row) and `distinct-at-most` keyed by flow_id (a connection is one
bucket's). Each bucket runs the local rule engine on its tables, with the flow ids already
renumbered to the set's, and with one hidden evidence column: the row's place in the bucket
table, turned into its order key in the set's table (merge.py's orders). The reduce sums checked
and violations, keeps the first max_evidence evidence items by order key (each bucket gives its
first max_evidence, so these are the set's first), and makes a failure a warning only when every
bucket's failure is one (warn_if holds for all violating rows).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.distributed.adapter import CLOCK_TOLERANCE_NS, evaluate_rule
from dr_inspect.distributed.merge import ROW_TABLES, order_keys
from dr_inspect.distributed.shards import object_categories, read_table
from dr_inspect.model import RuleResult

ORDER = "_dr_order"


def bucket_local(rule) -> bool:
    """Whether the rule can be evaluated bucket by bucket (see the module doc)."""
    return rule.table in ROW_TABLES and (
        rule.kind in ("each", "none") or (rule.kind == "distinct-at-most"
                                          and "flow_id" in rule.key))


@dataclass
class Partial:
    """One rule's result in one bucket; evidence keyed by their rows' order in the set."""

    result: RuleResult
    table_rows: int
    keys: list[tuple] = field(default_factory=list)


@dataclass
class BucketRules:
    partials: dict[str, Partial]
    report_rows: pd.DataFrame         # see report_rows


def load_tables(paths: dict[str, str], new_ids: np.ndarray) -> dict[str, pd.DataFrame]:
    """A bucket's per-frame tables with the set's flow ids."""
    out = {}
    for name, path in paths.items():
        t = read_table(path, packets=False)
        if len(t):
            t["flow_id"] = new_ids[t["flow_id"].to_numpy(dtype=np.int64) - 1]
        out[name] = t
    return out


def evaluate_bucket(paths: dict[str, str], new_ids: np.ndarray, rules: list, variables: dict,
                    max_evidence: int, names: list[str], applied: dict[str, int],
                    rs_names: list[str]) -> BucketRules:
    """The bucket-local rules over one bucket's tables (files written by correlate_bucket)."""
    tables = load_tables(paths, new_ids)
    keys = {n: order_keys(n, t, names, applied) for n, t in tables.items()}
    partials = {}
    for rule in rules:
        table = tables[rule.table]
        table[ORDER] = np.arange(len(table), dtype=np.int64)
        hidden = dataclasses.replace(rule, evidence=list(rule.evidence) + [ORDER])
        result = evaluate_rule(hidden, tables, variables, max_evidence)
        at = [ev.extra.pop(ORDER) for ev in result.evidence]
        partials[rule.id] = Partial(result, len(table), [tuple(keys[rule.table][i]) for i in at])
        del table[ORDER]
    return BucketRules(partials, report_rows(tables["forwards"], keys["forwards"], rs_names))


def report_rows(fw: pd.DataFrame, keys: np.ndarray, rs_names: list[str]) -> pd.DataFrame:
    """The forwards rows the report reads besides the rules (with their order keys): those
    naming a real server with a forwarding delay (delay samples), and copies seen more than
    the clock tolerance before their original (DR013's early copies)."""
    columns = ["real_server", "delay_us", "has_copy", "copy_point"]
    if not len(fw):
        return pd.DataFrame({c: [] for c in ["k0", "k1", "k2"] + columns})
    delay = fw["delay_us"].to_numpy(dtype=float)
    early = fw["has_copy"].to_numpy(dtype=bool) & (delay * 1000 < -CLOCK_TOLERANCE_NS)
    rows = np.flatnonzero((fw["real_server"].isin(rs_names).to_numpy() & ~np.isnan(delay))
                          | early)
    out = pd.DataFrame({f"k{i}": keys[rows, i] for i in range(3)})
    for c in columns:
        values = fw[c].to_numpy()
        # text (a few names) as codes: one row per forwarded copy comes to the client
        out[c] = values[rows] if values.dtype != object else \
            object_categories(np.asarray(values, dtype=object)[rows])
    return out


def reduce_rule(rule, parts: list[Partial], max_evidence: int) -> RuleResult:
    """The set's result of one rule from its buckets' (see the module doc)."""
    exercised = [p for p in parts if p.result.status != "not-exercised"]
    if not exercised:
        # the condition's note is the same everywhere; an empty table's note only if all are
        rows = [p for p in parts if p.table_rows]
        return (rows or parts)[0].result
    checked = sum(p.result.checked for p in exercised)
    violations = sum(p.result.violations for p in exercised)
    template = dataclasses.replace(exercised[0].result, checked=checked, note="",
                                   severity=rule.severity)
    if not violations:
        return dataclasses.replace(template, status="pass", violations=0, evidence=[],
                                   evidence_omitted=0)
    failing = [p.result for p in exercised if p.result.status == "fail"]
    items = sorted((k, i, j) for i, p in enumerate(exercised) for j, k in enumerate(p.keys))
    evidence = [exercised[i].result.evidence[j] for _, i, j in items[:max_evidence]]
    mild = all(r.severity == "warning" for r in failing)
    return dataclasses.replace(template, status="fail", violations=violations, evidence=evidence,
                               evidence_omitted=max(0, violations - len(evidence)),
                               severity="warning" if mild else rule.severity)


def table_files(root: str, bucket: int) -> dict[str, str]:
    return {n: str(Path(root) / f"bucket-{bucket:05d}-{n}.arrow") for n in ROW_TABLES}
