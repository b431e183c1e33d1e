"""The rule engine: strict loading of rule files, and each rule kind evaluated over tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import require
from dr_inspect.errors import RuleFileError
from dr_inspect.rules import evaluate_rule, evaluate_rules, load_rule_file, load_rules
from dr_inspect.rules.loader import _catalogue_texts

BASE = '''
[[rule]]
id = "X001"
name = "copy-present"
title = "t"
severity = "error"
table = "forwards"
kind = "each"
explanation = "e"
fix = "f"
'''


def write(tmp_path, body: str, name: str = "r.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def rule_from(tmp_path, extra: str, base: str = BASE):
    return load_rule_file(write(tmp_path, base + extra))[0]


def forwards(n: int, has_copy: list[bool] | None = None, **cols) -> pd.DataFrame:
    from dr_inspect.correlate.columns import TABLE_COLUMNS
    data = {}
    for c, kind in TABLE_COLUMNS["forwards"].items():
        data[c] = {"str": [""] * n, "int": [0] * n, "float": [0.0] * n, "bool": [False] * n}[kind]
    data["frame"] = list(range(1, n + 1))
    data["copy_frame"] = list(range(101, 101 + n))
    data["point"] = ["br_e"] * n
    data["copy_point"] = ["br_lvs"] * n
    data["flow_id"] = [1] * n
    data["five_tuple"] = ["tcp 1.1.1.1:1 -> 2.2.2.2:80"] * n
    if has_copy is not None:
        data["has_copy"] = has_copy
    data.update(cols)
    return pd.DataFrame(data)


# -- loading -------------------------------------------------------------------------------

def test_catalogue_has_the_public_ids_and_names():
    rules = load_rules()
    assert [(r.id, r.name) for r in rules] == [
        ("DR001", "forward-mac-rewrite"), ("DR002", "forward-ip-preserved"),
        ("DR003", "reply-bypasses-director"), ("DR004", "reply-source-is-vip"),
        ("DR005", "vip-arp-single-owner"), ("DR006", "rs-arp-announce"),
        ("DR007", "director-forwards-all"), ("DR008", "flow-affinity"),
        ("DR009", "handshake-completes"), ("DR010", "no-forwarding-loop"),
        ("DR011", "scheduler-balance"), ("DR012", "no-client-to-rs-mac"),
        ("DR013", "capture-health")]
    sev = {r.id: r.severity for r in rules}
    assert sev["DR011"] == "warning" and sev["DR005"] == "error"
    assert {r.id for r in rules if r.core} == {"DR001", "DR002", "DR007"}
    assert all(r.explanation and r.fix and r.cause and r.filter for r in rules)
    assert _catalogue_texts(), "catalogue found from the source tree or the package"


def test_a_source_tree_reads_its_own_catalogue():
    # an editable install of another checkout must not serve its rules/ to this one
    from pathlib import Path

    import dr_inspect
    root = Path(dr_inspect.__file__).resolve().parent.parent
    require((root / "pyproject.toml").is_file(), "dr_inspect is installed, not run from a source tree")
    names = [Path(name) for name, _ in _catalogue_texts()]
    assert names and all(n.parent == root / "rules" for n in names)
    assert dict(_catalogue_texts())[str(root / "rules" / "dr.toml")] == (root / "rules" / "dr.toml").read_text()


@pytest.mark.parametrize("extra,message", [
    ('expect = "has_copy"\nbogus = 1\n', "unknown key(s) bogus"),
    ('expect = "has_copy"\n', None),
    ('expect = "no_such_column"\n', "unknown column or variable 'no_such_column'"),
    ('expect = "has_copy and __import__"\n', "unknown column or variable '__import__'"),
    ('expect = "copy_ttl.real"\n', "Attribute not allowed"),
    ('expect = "has_copy ==="\n', "syntax error"),
    ('expect = "open(has_copy)"\n', "may be called"),
    ('expect = "has_copy"\nwhen = "has_copy"\n', "unknown column or variable 'has_copy'"),
    ('expect = "has_copy"\ncause = "{nope}"\n', "unknown column or variable nope"),
    ('expect = "has_copy"\nframes = ["frame", "nope"]\n', "unknown column(s) nope"),
    ('expect = "has_copy"\nmax = 2\n', "max is only for kind distinct-at-most"),
    ('', "kind each needs expect"),
    ('expect = "ttl_drop in (0, 1)"\n', None),
    ('expect = "ttl_drop in ttl"\n', "needs a literal tuple"),
    ('expect = "has_copy"\n[rule.note]\ntext = "{coalesced} merged"\nwhen = "coalesced > 0"\n', None),
    ('expect = "has_copy"\n[rule.note]\ntext = "x"\nbogus = 1\n', "note: unknown key(s) bogus"),
    ('expect = "has_copy"\n[rule.note]\nwhen = "status == \'fail\'"\n', "note: text must be"),
    ('expect = "has_copy"\n[rule.note]\ntext = "{has_copy}"\n', "unknown name(s) has_copy"),
    ('expect = "has_copy"\n[rule.note]\ntext = "x"\nwhen = "has_copy"\n', "unknown column or variable 'has_copy'"),
    ('expect = "has_copy"\n[rule.note]\ntext = "x"\nappend = 1\n', "append must be true or false"),
    ('expect = "has_copy"\nnote = "x"\n', "note must be a table"),
])
def test_loader_rejects_what_it_cannot_check(tmp_path, extra, message):
    if message is None:
        rule_from(tmp_path, extra)
        return
    with pytest.raises(RuleFileError) as exc:
        rule_from(tmp_path, extra)
    text = str(exc.value)
    assert message in text and "r.toml" in text and "X001" in text


@pytest.mark.parametrize("body,message", [
    (BASE.replace('kind = "each"', 'kind = "sometimes"') + 'expect = "x"\n', "unknown kind 'sometimes'"),
    (BASE.replace('table = "forwards"', 'table = "nope"') + 'expect = "x"\n', "unknown table 'nope'"),
    (BASE.replace('severity = "error"', 'severity = "fatal"') + 'expect = "has_copy"\n', "severity"),
    (BASE.replace('fix = "f"\n', '') + 'expect = "has_copy"\n', "missing key(s) fix"),
    ('[rules]\nx = 1\n', "unknown top-level key(s) rules"),
    ('', "no [[rule]]"),
    ('[[rule]\n', "invalid TOML"),
    (BASE + 'expect = "has_copy"\n' + BASE + 'expect = "has_copy"\n', "duplicate rule id"),
])
def test_loader_rejects_bad_files(tmp_path, body, message):
    with pytest.raises(RuleFileError) as exc:
        load_rule_file(write(tmp_path, body))
    assert message in str(exc.value) and "r.toml" in str(exc.value)


def test_user_rules_add_to_the_catalogue_but_cannot_redefine_an_id(tmp_path):
    path = write(tmp_path, BASE + 'expect = "has_copy"\n')
    assert [r.id for r in load_rules([path])][-1] == "X001"
    clash = write(tmp_path, BASE.replace("X001", "DR001") + 'expect = "has_copy"\n', "c.toml")
    with pytest.raises(RuleFileError, match="c.toml: rule DR001: rule id already defined"):
        load_rules([clash])
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules([tmp_path / "missing.toml"])


# -- evaluation ----------------------------------------------------------------------------

def test_each_passes_fails_and_is_never_vacuous(tmp_path):
    rule = rule_from(tmp_path, 'select = "payload_len > 0"\nexpect = "has_copy"\n'
                               'actual = "frame {frame} len {payload_len}"\n'
                               'filter = "frame.number == {frame}"\nevidence = ["payload_len"]\n'
                               'not_exercised = "nothing with payload"\n')
    ok = forwards(3, [True, True, True], payload_len=[10, 10, 10])
    r = evaluate_rule(rule, {"forwards": ok}, {})
    assert (r.status, r.checked, r.violations) == ("pass", 3, 0)
    bad = forwards(3, [True, False, False], payload_len=[10, 10, 0])
    r = evaluate_rule(rule, {"forwards": bad}, {})
    assert (r.status, r.checked, r.violations) == ("fail", 2, 1)
    ev = r.evidence[0]
    assert ev.frames == [2] and ev.actual == "frame 2 len 10" and ev.display_filter == "frame.number == 2"
    assert ev.extra == {"payload_len": 10, "flow_id": 1} and ev.point == "br_e"
    r = evaluate_rule(rule, {"forwards": forwards(2, [False, False])}, {})
    assert r.status == "not-exercised" and r.note == "nothing with payload"
    r = evaluate_rule(rule, {"forwards": forwards(0)}, {})
    assert r.status == "not-exercised"


def test_evidence_is_capped_with_the_rest_counted(tmp_path):
    rule = rule_from(tmp_path, 'expect = "has_copy"\n')
    r = evaluate_rule(rule, {"forwards": forwards(25, [False] * 25)}, {}, max_evidence=10)
    assert r.violations == 25 and len(r.evidence) == 10 and r.evidence_omitted == 15


def test_none_kind_and_variables(tmp_path):
    base = BASE.replace('kind = "each"', 'kind = "none"')
    rule = rule_from(tmp_path, 'match = "delay_us > window_ms * 1000"\n', base)
    table = forwards(3, [True] * 3, delay_us=[10.0, 20.0, 9000.0])
    assert evaluate_rule(rule, {"forwards": table}, {"window_ms": 1.0}).violations == 1
    assert evaluate_rule(rule, {"forwards": table}, {"window_ms": 100.0}).status == "pass"


def test_distinct_at_most_groups(tmp_path):
    base = BASE.replace('kind = "each"', 'kind = "distinct-at-most"')
    rule = rule_from(tmp_path, 'key = ["flow_id"]\ncolumn = "real_server"\nmax = 1\n'
                               'actual = "{distinct}: {values}"\n', base)
    table = forwards(4, [True] * 4, flow_id=[1, 1, 2, 2], real_server=["rs1", "rs1", "rs1", "rs2"])
    r = evaluate_rule(rule, {"forwards": table}, {})
    assert (r.status, r.checked, r.violations) == ("fail", 2, 1)
    assert r.evidence[0].actual == "2: rs1, rs2" and r.evidence[0].frames == [3, 4]
    assert r.evidence[0].extra["flow_id"] == 2


def test_a_note_shows_when_its_condition_holds_and_replaces_or_appends(tmp_path):
    note = '[rule.note]\nwhen = "status == \'fail\' and coalesced > 0"\ntext = "{coalesced} merged at {window_ms} ms"\n'
    rule = rule_from(tmp_path, 'expect = "has_copy"\n' + note)
    table = {"forwards": forwards(3, [True, False, True])}
    [result] = evaluate_rules([rule], table, {"window_ms": 500.0}, facts={"coalesced": 4})
    assert result.status == "fail" and result.note == "4 merged at 500.0 ms"
    [result] = evaluate_rules([rule], table, {"window_ms": 500.0}, facts={"coalesced": 0})
    assert result.note == ""
    appended = rule_from(tmp_path, 'expect = "has_copy"\nnot_exercised = "none"\n'
                         + note.replace("status == 'fail' and ", "") + "append = true\n")
    [result] = evaluate_rules([appended], {"forwards": forwards(0)}, {"window_ms": 1.0},
                              facts={"coalesced": 2})
    assert result.status == "not-exercised" and result.note == "none; 2 merged at 1.0 ms"
    replaced = rule_from(tmp_path, 'expect = "has_copy"\nnot_exercised = "none"\n'
                         + note.replace("status == 'fail' and ", ""))
    [result] = evaluate_rules([replaced], {"forwards": forwards(0)}, {"window_ms": 1.0},
                              facts={"coalesced": 2})
    assert result.note == "2 merged at 1.0 ms"


def test_a_presolved_result_stands_for_the_evaluation_and_gets_the_notes(tmp_path):
    note = '[rule.note]\nwhen = "status == \'fail\'"\ntext = "{coalesced} merged"\n'
    rule = rule_from(tmp_path, 'expect = "has_copy"\n' + note)
    table = {"forwards": forwards(3, [True, True, True])}       # would pass here
    elsewhere = evaluate_rule(rule, {"forwards": forwards(2, [True, False])}, {})
    assert elsewhere.status == "fail"
    [result] = evaluate_rules([rule], table, {}, facts={"coalesced": 1},
                              presolved={rule.id: elsewhere})
    assert result.status == "fail" and result.checked == 2 and result.note == "1 merged"
    assert elsewhere.note == ""                                  # the given result is not changed
    [result] = evaluate_rules([rule], table, {}, presolved={"OTHER": elsewhere})
    assert result.status == "pass" and result.checked == 3


def test_balanced_and_when(tmp_path):
    base = BASE.replace('kind = "each"', 'kind = "balanced"').replace('table = "forwards"', 'table = "flows"')
    rule = rule_from(tmp_path, 'column = "real_server"\ntolerance = 0.2\nwhen = "scheduler == \'rr\'"\n'
                               'actual = "{group} got {count} of {groups}"\n', base)
    flows = pd.DataFrame({"real_server": ["rs1"] * 6 + ["rs2"] * 2, "point": "br_e",
                          "frame": np.arange(1, 9), "ts_ns": np.arange(8), "flow_id": np.arange(1, 9),
                          "five_tuple": "", "seq": 1})
    r = evaluate_rule(rule, {"flows": flows}, {"scheduler": "rr"})
    assert r.status == "fail" and r.violations == 2
    assert r.evidence[0].actual.startswith("rs") and "rs1=6" in r.evidence[0].actual
    even = flows.assign(real_server=["rs1", "rs2"] * 4)
    assert evaluate_rule(rule, {"flows": even}, {"scheduler": "rr"}).status == "pass"
    assert evaluate_rule(rule, {"flows": flows}, {"scheduler": "sh"}).status == "not-exercised"
    one = flows.assign(real_server="rs1")
    assert evaluate_rule(rule, {"flows": one}, {"scheduler": "rr"}).status == "not-exercised"


def test_warn_if_downgrades_only_when_every_violation_is_mild(tmp_path):
    rule = rule_from(tmp_path, 'expect = "has_copy"\nwarn_if = "coalesced"\n')
    mild = forwards(2, [True, False], coalesced=[False, True])
    assert evaluate_rule(rule, {"forwards": mild}, {}).severity == "warning"
    harsh = forwards(2, [False, False], coalesced=[False, True])
    assert evaluate_rule(rule, {"forwards": harsh}, {}).severity == "error"


def test_string_comparisons_and_membership(tmp_path):
    rule = rule_from(tmp_path, 'expect = "copy_point in (\'br_lvs\', \'lan\') and real_server != \'\'"\n')
    table = forwards(2, [True, True], real_server=["rs1", ""])
    r = evaluate_rule(rule, {"forwards": table}, {})
    assert r.violations == 1 and r.evidence[0].frames == [2]


# -- the expression evaluator agrees with Python, row by row --------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dr_inspect.rules.expr import evaluate, parse  # noqa: E402

_EXPRESSIONS = [
    "a < b", "a == b or c", "not c and a >= 3", "a + b > 4", "a in (0, 1, 7)", "a not in (2, 3)",
    "abs(a - b) <= 1", "0 <= a <= b", "s == 'x' and not c", "s in ('x', 'y') or a % 2 == 0",
    "-a < b * 2", "(a - b) / 2 > 0.5",
]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-5, 9), st.integers(-5, 9), st.booleans(),
                               st.sampled_from(["x", "y", "z", ""])), min_size=1, max_size=20),
       expr=st.sampled_from(_EXPRESSIONS))
def test_expressions_evaluate_like_python(rows, expr):
    cols = {"a": np.array([r[0] for r in rows], dtype=np.int64),
            "b": np.array([r[1] for r in rows], dtype=np.int64),
            "c": np.array([r[2] for r in rows], dtype=bool),
            "s": np.array([r[3] for r in rows], dtype=object)}
    tree = parse(expr, set(cols), "test")
    got = evaluate(tree, cols, {}, len(rows))
    want = [bool(eval(expr, {"abs": abs}, {"a": a, "b": b, "c": c, "s": s}))  # noqa: S307
            for a, b, c, s in rows]
    assert got.tolist() == want


# -- text columns held as Categoricals and narrow integers evaluate the same ---------------

_TEXT_EXPRESSIONS = [
    "s == t", "s != t", "s == 'x'", "s != 'q'", "s == ''", "s in ('x', '')", "s not in ('y',)",
    "t == s and a > 0", "s or c", "not s", "s == t == 'x'", "a * 100000 > b * 100000",
]


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-5, 9), st.integers(-5, 9), st.booleans(),
                               st.sampled_from(["x", "y", "z", ""]),
                               st.sampled_from(["x", "y", "w", ""])), min_size=1, max_size=20),
       expr=st.sampled_from(_TEXT_EXPRESSIONS), shared=st.booleans())
def test_categorical_text_and_narrow_ints_evaluate_like_python(rows, expr, shared):
    """The rule tables hold text as Categoricals (compared on codes when both sides share the
    categories, by value otherwise) and some integers as int16/int32, widened before use."""
    from dr_inspect.rules.engine import _columns

    s_values = [r[3] for r in rows]
    t_values = [r[4] for r in rows]
    cats = sorted(set(s_values) | set(t_values)) if shared else None
    table = pd.DataFrame({
        "a": np.array([r[0] for r in rows], dtype=np.int16),
        "b": np.array([r[1] for r in rows], dtype=np.int32),
        "c": np.array([r[2] for r in rows], dtype=bool),
        "s": pd.Categorical(s_values, categories=cats),
        "t": pd.Categorical(t_values, categories=cats)})
    cols = _columns(table)
    assert isinstance(cols["s"], pd.Categorical) and cols["a"].dtype == np.int64
    tree = parse(expr, set(cols), "test")
    got = evaluate(tree, cols, {}, len(rows))
    want = [bool(eval(expr, {}, {"a": a, "b": b, "c": c, "s": s, "t": t}))  # noqa: S307
            for a, b, c, s, t in rows]
    assert got.tolist() == want


def test_text_columns_over_the_same_categories_in_another_order_compare_by_text():
    cols = {"s": pd.Categorical(["x", "y", "y"], categories=["x", "y"]),
            "t": pd.Categorical(["x", "x", "y"], categories=["y", "x"])}
    assert cols["s"].dtype == cols["t"].dtype          # pandas: equal dtypes, other codes
    tree = parse("s == t", set(cols), "test")
    assert evaluate(tree, cols, {}, 3).tolist() == [True, False, True]


def test_notes_apply_in_order(tmp_path):
    notes = ('[[rule.note]]\nwhen = "coalesced > 0"\ntext = "{coalesced} merged"\n'
             '[[rule.note]]\nwhen = "unserved != \'\'"\ntext = "lost: {unserved}"\nappend = true\n')
    rule = rule_from(tmp_path, 'expect = "has_copy"\n' + notes)
    table = {"forwards": forwards(2, [True, False])}
    [both] = evaluate_rules([rule], table, {}, facts={"coalesced": 3, "unserved": "2 to 10.0.0.1:80"})
    assert both.note == "3 merged; lost: 2 to 10.0.0.1:80"
    [second] = evaluate_rules([rule], table, {}, facts={"unserved": "1 to 10.0.0.1:80"})
    assert second.note == "lost: 1 to 10.0.0.1:80"
