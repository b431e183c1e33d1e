"""Evaluate loaded rules over the correlator's tables; every result is pass, fail or
not-exercised (a rule that matched nothing never passes)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from dr_inspect.model import Evidence, RuleResult
from dr_inspect.rules.expr import evaluate, evaluate_scalar, names_in
from dr_inspect.rules.loader import NOTE_FACTS, Rule

MAX_GROUP_FRAMES = 20


class _Row(dict):
    """Template values: a missing key shows as '?' instead of raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def _fmt(template: str, row: dict[str, Any]) -> str:
    if not template:
        return ""
    try:
        return template.format_map(_Row(row))
    except (ValueError, IndexError, KeyError):
        return template


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _column(s: pd.Series, rows: np.ndarray | None = None) -> np.ndarray | pd.Categorical:
    """One column as the evaluator takes it: text stays a Categorical (compared on its codes),
    integers are widened to int64 (tables keep narrow ones; a rule's arithmetic must not wrap)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cat = s.array
        return cat if rows is None else cat.take(rows)
    values = s.to_numpy()
    if values.dtype.kind in "iu" and values.dtype != np.int64:
        values = values.astype(np.int64)
    return values if rows is None else values[rows]


def _columns(df: pd.DataFrame, names: set[str] | None = None,
             rows: np.ndarray | None = None) -> dict[str, np.ndarray | pd.Categorical]:
    """The columns an expression reads (of `rows` positions only, when given)."""
    return {c: _column(df[c], rows) for c in df.columns if names is None or c in names}


def _names(tree) -> set[str]:
    return names_in(tree) if tree is not None else set()


def _evidence(rule: Rule, row: dict[str, Any], frames: list[int] | None = None,
              ts: list[int] | None = None) -> Evidence:
    if frames is None:
        frames = [int(row[c]) for c in rule.frames if c in row and int(row[c]) >= 0]
    if ts is None:
        ts = [int(row[c]) for c in rule.ts if c in row and int(row[c]) >= 0]
    extra = {c: _plain(row.get(c)) for c in rule.evidence}
    if int(row.get("flow_id", -1) or -1) >= 0:
        extra["flow_id"] = int(row["flow_id"])
    seq = row.get("seq")
    return Evidence(point=str(row.get(rule.point, "")), frames=frames, ts_ns=ts,
                    five_tuple=str(row.get("five_tuple", "")), expected=_fmt(rule.expected, row),
                    actual=_fmt(rule.actual, row), display_filter=_fmt(rule.filter, row),
                    cause=_fmt(rule.cause, row),
                    seq=int(seq) if seq is not None and int(seq) >= 0 else None, extra=extra)


def _result(rule: Rule, status: str, **kw: Any) -> RuleResult:
    return RuleResult(id=rule.id, name=rule.name, title=rule.title, severity=rule.severity,  # type: ignore[arg-type]
                      status=status, explanation=rule.explanation, fix_hint=rule.fix, **kw)  # type: ignore[arg-type]


def evaluate_rule(rule: Rule, tables: dict[str, pd.DataFrame], variables: dict[str, Any],
                  max_evidence: int = 10) -> RuleResult:
    table = tables.get(rule.table)
    if rule.when is not None and not evaluate_scalar(rule.when, variables):
        return _result(rule, "not-exercised",
                       note=f"not checked: condition `{rule.source['when']}` does not hold "
                            f"({', '.join(f'{k}={variables.get(k)!r}' for k in sorted(variables))})")
    if table is None or len(table) == 0:
        return _result(rule, "not-exercised", note=_not_exercised(rule, variables, empty=True))
    cols = _columns(table, _names(rule.select))
    n = len(table)
    selected = evaluate(rule.select, cols, variables, n) if rule.select is not None else np.ones(n, bool)
    picked = np.flatnonzero(selected)
    if len(picked) == 0:
        return _result(rule, "not-exercised", note=_not_exercised(rule, variables, empty=False))
    if rule.kind in ("each", "none"):
        # only the columns the expression reads, of the selected rows; whole rows are gathered
        # for the violations alone
        rcols = _columns(table, _names(rule.expect) | _names(rule.match), picked)
        if rule.kind == "each":
            bad = ~evaluate(rule.expect, rcols, variables, len(picked))  # type: ignore[arg-type]
        else:
            bad = evaluate(rule.match, rcols, variables, len(picked))  # type: ignore[arg-type]
        violating = table.iloc[picked[bad]]
        checked = len(picked)
        records = [{**variables, **r} for r in violating.head(max_evidence).to_dict("records")]
        evidence = [_evidence(rule, r) for r in records]
        count = len(violating)
    elif rule.kind == "distinct-at-most":
        checked, count, evidence, violating = _distinct(rule, table, picked, variables,
                                                        max_evidence)
    else:
        rows = table.iloc[picked]
        if rows[rule.column].nunique() < rule.min_groups:
            return _result(rule, "not-exercised", checked=len(rows),
                           note=f"fewer than {rule.min_groups} distinct {rule.column} values in "
                                f"the selected {rule.table} rows: nothing to balance")
        checked, count, evidence, violating = _balanced(rule, rows, variables, max_evidence)
    if count == 0:
        return _result(rule, "pass", checked=checked)
    result = _result(rule, "fail", checked=checked, violations=count, evidence=evidence,
                     evidence_omitted=max(0, count - len(evidence)))
    if rule.warn_if is not None and len(violating):
        mild = evaluate(rule.warn_if, _columns(violating, _names(rule.warn_if)), variables,
                        len(violating))
        if mild.all():
            result.severity = "warning"
    return result


def _not_exercised(rule: Rule, variables: dict[str, Any], empty: bool) -> str:
    if rule.not_exercised:
        return _fmt(rule.not_exercised, dict(variables))
    if empty:
        return f"not exercised: the captures gave no {rule.table} rows"
    return (f"not exercised: no {rule.table} row matched `{rule.source.get('select', '')}`")


def _group_rows(rule: Rule, g: pd.DataFrame, variables: dict[str, Any], **fields: Any) -> Evidence:
    first = {**variables, **g.iloc[0].to_dict(), **fields}
    at_point = g[g[rule.point] == first[rule.point]] if rule.point in g else g
    fcol, tcol = rule.frames[0], rule.ts[0]
    frames = [int(v) for v in at_point[fcol].head(MAX_GROUP_FRAMES) if int(v) >= 0]
    ts = [int(v) for v in at_point[tcol].head(MAX_GROUP_FRAMES) if int(v) >= 0]
    if "{frames}" in rule.filter:
        first["frames"] = ", ".join(str(f) for f in frames)
    return _evidence(rule, first, frames, ts)


def _distinct(rule: Rule, table: pd.DataFrame, picked: np.ndarray, variables: dict[str, Any],
              cap: int):
    # grouped on the key and value columns alone; whole rows only for the violating groups
    slim = table[rule.key + [rule.column]].iloc[picked]
    nun = slim.groupby(rule.key, sort=False)[rule.column].nunique()
    bad_keys = nun[nun > rule.max]
    mask = slim.set_index(rule.key).index.isin(bad_keys.index)
    violating = table.iloc[picked[mask]]
    evidence = []
    if len(bad_keys):
        groups = violating.groupby(rule.key, sort=False)
        for key in bad_keys.index[:cap]:
            g = groups.get_group(key if isinstance(key, tuple) or len(rule.key) > 1 else (key,))
            values = sorted({str(v) for v in g[rule.column]})
            evidence.append(_group_rows(rule, g, variables, distinct=len(values),
                                        values=", ".join(values)))
    return len(nun), len(bad_keys), evidence, violating


def _balanced(rule: Rule, rows: pd.DataFrame, variables: dict[str, Any], cap: int):
    counts = rows.groupby(rule.column, sort=False).size()
    mean = counts.mean()
    allowed = max(1.0, rule.tolerance * mean)
    lo, hi = counts.min(), counts.max()
    if hi - lo <= allowed:
        return len(rows), 0, [], rows.iloc[:0]
    # the groups furthest from the mean are the evidence
    off = (counts - mean).abs().sort_values(ascending=False)
    bad = off[off > allowed / 2].index
    evidence = []
    for group in bad[:cap]:
        g = rows[rows[rule.column] == group]
        evidence.append(_group_rows(rule, g, variables, group=group, count=int(counts[group]),
                                    expected_count=round(float(mean), 1),
                                    groups=", ".join(f"{k}={v}" for k, v in counts.items())))
    return len(rows), len(bad), evidence, rows[rows[rule.column].isin(bad)]


def _add_notes(rule: Rule, result: RuleResult, variables: dict[str, Any],
               facts: dict[str, Any]) -> None:
    """The rule's [[rule.note]]s whose condition holds for this result, in order."""
    for note in rule.notes:
        values = {**variables, **facts, "status": result.status}
        if note.when is not None and not evaluate_scalar(note.when, values):
            continue
        text = _fmt(note.text, values)
        result.note = f"{result.note}; {text}" if note.append and result.note else text


def evaluate_rules(rules: list[Rule], tables: dict[str, pd.DataFrame], variables: dict[str, Any],
                   max_evidence: int = 10, facts: dict[str, Any] | None = None,
                   presolved: dict[str, RuleResult] | None = None) -> list[RuleResult]:
    """Every rule's result; facts: the NOTE_FACTS values the rules' notes may show.

    presolved: rule id -> its result, evaluated already elsewhere (the distributed engine
    evaluates the rules over the per-frame tables bucket by bucket); a copy of it stands for
    evaluate_rule's and gets the rule's notes like any other."""
    facts = {**dict.fromkeys(NOTE_FACTS, 0), "capture_health": "", "unserved": "",
             **(facts or {})}
    presolved = presolved or {}
    results = []
    for rule in rules:
        result = (copy.deepcopy(presolved[rule.id]) if rule.id in presolved
                  else evaluate_rule(rule, tables, variables, max_evidence))
        _add_notes(rule, result, variables, facts)
        results.append(result)
    return results
