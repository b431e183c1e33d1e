"""Rule files that load must evaluate: expressions are type-checked against the column kinds
when the file is loaded (text vs number comparisons, abs() or arithmetic on text fail then, not
in the middle of a verify), and evidence templates hold plain {column} fields only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dr_inspect.correlate.columns import TABLE_COLUMNS
from dr_inspect.errors import RuleFileError
from dr_inspect.rules import evaluate_rule, load_rule_file
from test_rules_engine import BASE, forwards, rule_from

COLUMNS = TABLE_COLUMNS["forwards"]
VARIABLES = {"window_ms": 500.0, "scheduler": "rr", "shape": "two-segment", "points": 2}


@pytest.mark.parametrize("expr, message", [
    ("src_ip > 5", "compares text with a number"),
    ("src_ip == 5", "compares text with a number"),
    ("ttl == 'x'", "compares a number with text"),
    ("abs(src_ip) > 1", "is text, not a number"),
    ("point + 1 > 0", "is text, not a number"),
    ("-point == 'x'", "is text, not a number"),
    ("src_ip % 2 == 0", "is text, not a number"),
    ("dst_port in ('a', 'b')", "'in' compares a number with a tuple of text"),
    ("src_ip in (1, 2)", "'in' compares text with a tuple of numbers"),
    ("src_ip in ('a', 1)", "mixes text and numbers"),
    ("point", "is text, not a condition"),
    ("not src_ip", "is text, not a condition"),
    ("has_copy and dst_mac", "is text, not a condition"),
    ("scheduler > 1", "compares text with a number"),
])
def test_ill_typed_expressions_are_refused_at_load(tmp_path, expr, message):
    with pytest.raises(RuleFileError, match=message):
        rule_from(tmp_path, f'expect = "{expr}"\n')


@pytest.mark.parametrize("expr", [
    "src_ip == dst_ip and ttl_drop <= 1", "abs(delay_us) < window_ms * 1000",
    "point in ('br_e', 'br_lvs')", "not has_copy or copies > 1", "syn == True",
    "ttl - copy_ttl in (0, 1)", "scheduler == 'rr' or points > 2",
])
def test_well_typed_expressions_load(tmp_path, expr):
    rule = rule_from(tmp_path, f'expect = "{expr}"\n')
    assert evaluate_rule(rule, {"forwards": forwards(3, [True] * 3)}, VARIABLES).status in (
        "pass", "fail")


@pytest.mark.parametrize("template, message", [
    ("{point.__class__}", "only plain"), ("{frame:>1500000000}", "only plain"),
    ("{frame!r}", "only plain"), ("{point[0]}", "only plain"), ("{}", "only plain"),
    ("{0}", "only plain"), ("{nope}", "unknown column"),
])
def test_templates_hold_plain_fields_only(tmp_path, template, message):
    with pytest.raises(RuleFileError, match=message):
        rule_from(tmp_path, f'expect = "has_copy"\nactual = "{template}"\n')


def test_literal_braces_stay_allowed(tmp_path):
    rule = rule_from(tmp_path, 'expect = "has_copy"\nfilter = "frame.number in {{{frame}}}"\n')
    assert rule.filter == "frame.number in {{{frame}}}"


# -- property: whatever loads, evaluates --------------------------------------------------------

NAMES = sorted(COLUMNS) + sorted(VARIABLES)
atoms = st.one_of(st.sampled_from(NAMES), st.integers(-3, 70000).map(str),
                  st.sampled_from(["'br_e'", "''", "'rr'", "0.5", "True", "False"]))


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", ">=",
                                                   "and", "or"]), children)
    return st.one_of(
        binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda c: f"abs({c})"), children.map(lambda c: f"(not {c})"),
        children.map(lambda c: f"(-{c})"),
        st.tuples(children, st.sampled_from(["in", "not in"]),
                  st.sampled_from(["(1, 2)", "('br_e', 'x')", "(0.5,)"])).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"))


expressions = st.recursive(atoms, _combine, max_leaves=6)


def _table() -> pd.DataFrame:
    df = forwards(4, [True, True, False, True])
    for col, kind in COLUMNS.items():
        if kind == "str":
            df[col] = pd.Categorical(["br_e", "x", "", "br_e"])
        elif kind == "int":
            df[col] = [0, 1, 70000, -1]
        elif kind == "float":
            df[col] = [0.0, 0.5, 1e9, -3.0]
    return df


TABLE = _table()


@given(expressions)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_expression_that_loads_evaluates(tmp_path, expr):
    path = tmp_path / "r.toml"
    path.write_text(BASE + f'expect = "{expr}"\n')
    try:
        rule = load_rule_file(path)[0]
    except RuleFileError:
        return
    # numpy may warn (division by zero); it must not raise
    with np.errstate(all="ignore"):
        result = evaluate_rule(rule, {"forwards": TABLE}, VARIABLES)
    assert result.status in ("pass", "fail", "not-exercised")
