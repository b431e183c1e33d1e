"""Load rule files (rules/*.toml and users' --rules files), validated strictly.

    [[rule]]
    id = "DR001"                      # unique over all loaded files
    name = "forward-mac-rewrite"
    title = "..."
    severity = "error"                # error | warning
    table = "forwards"                # a table of dr_inspect.correlate.TABLE_COLUMNS
    kind = "each"                     # each | none | distinct-at-most | balanced
    select = "has_copy"               # optional: rows the rule looks at
    expect = "..."                    # each: every selected row must satisfy it
    match = "..."                     # none: no selected row may satisfy it
    key = ["flow_id"]                 # distinct-at-most: groups ...
    column = "real_server"            # ... whose distinct values of column ...
    max = 1                           # ... are at most max; balanced: groups by column
    tolerance = 0.2                   # balanced: max-min <= max(1, tolerance * mean)
    min_groups = 2                    # balanced: fewer groups = not exercised
    when = "scheduler == 'rr'"        # optional, variables only: false = not exercised
    warn_if = "failover"              # optional: when every violating row satisfies it, the
                                      # result is a warning (e.g. a director failover)
    core = true                       # a core forwarding rule: the verdict needs it exercised
    explanation = "..."               # why the invariant matters
    fix = "..."                       # fix hint shown on failure
    not_exercised = "..."             # note when nothing matched
    expected = "template {column}"    # evidence text, formatted per violating row
    actual = "template {column}"
    cause = "template {column}"       # one line: likely cause and fix
    filter = "frame.number == {frame}"  # Wireshark display filter
    point = "point"                   # evidence columns: where it was seen ...
    frames = ["frame"]
    ts = ["ts_ns"]
    evidence = ["copy_ttl"]           # extra columns copied into Evidence.extra

    [[rule.note]]                     # optional, repeatable: a note beside the status
    when = "coalesced > 0"            # optional: over NOTE_NAMES; default: always
    text = "{coalesced} packets ..."  # template over NOTE_NAMES
    append = false                    # true: added after the note the result has ("; ");
                                      # false: replaces it (notes apply in file order)
"""

from __future__ import annotations

import ast
import importlib.resources
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr_inspect.correlate.columns import TABLE_COLUMNS
from dr_inspect.errors import InputError, RuleFileError
from dr_inspect.rules.expr import ExprError, check_types, parse
from dr_inspect.textinput import parse_toml, read_text

KINDS = ("each", "none", "distinct-at-most", "balanced")
SEVERITIES = ("error", "warning")
# Values verify passes to every rule (names usable in expressions and templates).
VARIABLES = ("window_ms", "scheduler", "shape", "points")
# Values a rule's [rule.note] may use: the variables, the result's status, and what the analysis
# counted beside the tables (dr_inspect.analysis.pipeline gives them).
NOTE_FACTS = ("coalesced", "syn_retransmits", "rsts_from_vip", "capture_health", "unserved")
NOTE_NAMES = (*VARIABLES, "status", *NOTE_FACTS)
_NOTE_KEYS = {"when", "text", "append"}
GROUP_FIELDS = {"distinct-at-most": ("distinct", "values", "frames"),
                "balanced": ("group", "count", "expected_count", "groups", "frames")}

_REQUIRED = ("id", "name", "title", "severity", "table", "kind", "explanation", "fix")
_TEXT = ("explanation", "fix", "not_exercised", "expected", "actual", "cause", "filter")
_KEYS = set(_REQUIRED) | set(_TEXT) | {
    "select", "expect", "match", "key", "column", "max", "tolerance", "min_groups", "when",
    "warn_if", "core", "point", "frames", "ts", "evidence", "note"}
_KIND_KEYS = {"each": {"expect"}, "none": {"match"}, "distinct-at-most": {"key", "column", "max"},
              "balanced": {"column"}}
_KIND_ONLY = {"expect": "each", "match": "none", "key": "distinct-at-most", "max": "distinct-at-most",
              "tolerance": "balanced", "min_groups": "balanced"}


@dataclass(frozen=True)
class RuleNote:
    """[rule.note]: text (a template over NOTE_NAMES) shown when `when` holds."""

    text: str
    when: ast.Expression | None = None
    append: bool = False


@dataclass
class Rule:
    id: str
    name: str
    title: str
    severity: str
    table: str
    kind: str
    explanation: str
    fix: str
    file: str
    select: ast.Expression | None = None
    expect: ast.Expression | None = None
    match: ast.Expression | None = None
    when: ast.Expression | None = None
    warn_if: ast.Expression | None = None
    key: list[str] = field(default_factory=list)
    column: str = ""
    max: int = 1
    tolerance: float = 0.2
    min_groups: int = 2
    core: bool = False
    not_exercised: str = ""
    expected: str = ""
    actual: str = ""
    cause: str = ""
    filter: str = ""
    point: str = "point"
    frames: list[str] = field(default_factory=lambda: ["frame"])
    ts: list[str] = field(default_factory=lambda: ["ts_ns"])
    evidence: list[str] = field(default_factory=list)
    notes: list[RuleNote] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)   # the expressions as written


# Kinds of the variables verify passes (see VARIABLES), for type-checking expressions.
VARIABLE_KINDS = {"window_ms": "float", "scheduler": "str", "shape": "str", "points": "int"}


def _template_fields(template: str) -> set[str]:
    """The column names a template uses. Only plain `{column}` fields: no attribute or index
    access (`{point.__class__}`), conversion or format spec (`{frame:>1500000000}` would build
    a 1.5 GB string)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ExprError(f"bad template {template!r}: {exc}") from None
    fields = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion is not None:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ExprError(f"template field {shown} in {template!r}: only plain {{column}} "
                            "fields are allowed")
        fields.add(name)
    return fields


def _expression(source: Any, names: set[str], kinds: dict[str, str], what: str) -> ast.Expression:
    """A rule expression parsed, its names checked and its types checked against the column
    kinds; it must be a condition (not text)."""
    if not isinstance(source, str):
        raise ExprError(f"{what} must be a string holding an expression")
    tree = parse(source, names, what)
    kind = check_types(tree, kinds, what, source)
    if kind == "str" or kind.startswith("tuple"):
        raise ExprError(f"{what}: {source!r} is text, not a condition")
    return tree


def _notes_from(raw: Any) -> list[RuleNote]:
    """[[rule.note]] (or one [rule.note] table) checked; ExprError says what is wrong."""
    items = raw if isinstance(raw, list) else [raw]
    return [_note_from(item) for item in items]


def _note_from(raw: Any) -> RuleNote:
    if not isinstance(raw, dict):
        raise ExprError("note must be a table ([[rule.note]] with text, when, append)")
    unknown = sorted(set(raw) - _NOTE_KEYS)
    if unknown:
        raise ExprError(f"note: unknown key(s) {', '.join(unknown)} "
                        f"(allowed: {', '.join(sorted(_NOTE_KEYS))})")
    text = raw.get("text")
    if not isinstance(text, str) or not text:
        raise ExprError("note: text must be a non-empty string")
    bad = sorted(_template_fields(text) - set(NOTE_NAMES))
    if bad:
        raise ExprError(f"note: unknown name(s) {', '.join(bad)} in the template "
                        f"(names: {', '.join(NOTE_NAMES)})")
    if not isinstance(raw.get("append", False), bool):
        raise ExprError("note: append must be true or false")
    when = parse(raw["when"], set(NOTE_NAMES), "note.when") if "when" in raw else None
    return RuleNote(text=text, when=when, append=raw.get("append", False))


def _rule_from(raw: dict[str, Any], file: str, index: int) -> Rule:
    rid = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        _check_keys(raw)
        rule = Rule(id=raw["id"], name=raw["name"], title=raw["title"], severity=raw["severity"],
                    table=raw["table"], kind=raw["kind"], explanation=raw["explanation"],
                    fix=raw["fix"], file=file)
        _set_expressions(rule, raw)
        _set_columns(rule, raw)
        _set_numbers(rule, raw)
    except ExprError as exc:     # every problem of one rule, named with its file and id
        raise RuleFileError(file, rid or f"#{index + 1}", str(exc)) from None
    return rule


def _check_keys(raw: dict[str, Any]) -> None:
    """The keys, their text types, the kind, severity and table."""
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ExprError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ExprError(f"missing key(s) {', '.join(missing)}")
    for k in ("id", "name", "title", "table", "kind", "severity", *_TEXT):
        if k in raw and not isinstance(raw[k], str):
            raise ExprError(f"{k} must be a string")
    if raw["kind"] not in KINDS:
        raise ExprError(f"unknown kind {raw['kind']!r} (kinds: {', '.join(KINDS)})")
    if raw["severity"] not in SEVERITIES:
        raise ExprError(f"severity {raw['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if raw["table"] not in TABLE_COLUMNS:
        raise ExprError(f"unknown table {raw['table']!r} (tables: {', '.join(TABLE_COLUMNS)})")
    kind = raw["kind"]
    need = sorted(_KIND_KEYS[kind] - set(raw))
    if need:
        raise ExprError(f"kind {kind} needs {', '.join(need)}")
    for k, only in _KIND_ONLY.items():
        if k in raw and kind != only:
            raise ExprError(f"{k} is only for kind {only}, not {kind}")
    if "column" in raw and kind not in ("distinct-at-most", "balanced"):
        raise ExprError(f"column is only for kinds distinct-at-most and balanced, not {kind}")


def _set_expressions(rule: Rule, raw: dict[str, Any]) -> None:
    """The expressions, templates and note, checked against the table's columns."""
    names = set(TABLE_COLUMNS[rule.table]) | set(VARIABLES)
    kinds = {**TABLE_COLUMNS[rule.table], **VARIABLE_KINDS}
    for k in ("select", "expect", "match", "warn_if"):
        if k in raw:
            setattr(rule, k, _expression(raw[k], names, kinds, k))
            rule.source[k] = raw[k]
    if "when" in raw:
        rule.when = _expression(raw["when"], set(VARIABLES), VARIABLE_KINDS,
                                "when (variables only)")
        rule.source["when"] = raw["when"]
    templ_names = names | set(GROUP_FIELDS.get(rule.kind, ()))
    for k in ("expected", "actual", "cause", "filter", "not_exercised"):
        if k in raw:
            bad = sorted(_template_fields(raw[k]) - templ_names)
            if bad:
                raise ExprError(f"{k}: unknown column or variable {', '.join(bad)} in the template")
            setattr(rule, k, raw[k])
    if "note" in raw:
        rule.notes = _notes_from(raw["note"])


def _set_columns(rule: Rule, raw: dict[str, Any]) -> None:
    """The keys that name columns of the rule's table."""
    columns = set(TABLE_COLUMNS[rule.table])
    for k in ("key", "frames", "ts", "evidence"):
        if k in raw:
            value = raw[k]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ExprError(f"{k} must be a list of column names")
            bad = sorted(set(value) - columns)
            if bad:
                raise ExprError(f"{k}: unknown column(s) {', '.join(bad)} of table {rule.table}")
            setattr(rule, k, list(value))
    for k in ("column", "point"):
        if k in raw:
            if raw[k] not in columns:
                raise ExprError(f"{k}: unknown column {raw[k]!r} of table {rule.table}")
            setattr(rule, k, raw[k])


def _set_numbers(rule: Rule, raw: dict[str, Any]) -> None:
    if "max" in raw:
        if not isinstance(raw["max"], int) or isinstance(raw["max"], bool) or raw["max"] < 0:
            raise ExprError("max must be a non-negative integer")
        rule.max = raw["max"]
    if "min_groups" in raw:
        if not isinstance(raw["min_groups"], int) or raw["min_groups"] < 2:
            raise ExprError("min_groups must be an integer >= 2")
        rule.min_groups = raw["min_groups"]
    if "tolerance" in raw:
        if not isinstance(raw["tolerance"], (int, float)) or raw["tolerance"] < 0:
            raise ExprError("tolerance must be a non-negative number")
        rule.tolerance = float(raw["tolerance"])
    if "core" in raw:
        if not isinstance(raw["core"], bool):
            raise ExprError("core must be true or false")
        rule.core = raw["core"]


def load_rule_file(path: Path | str, text: str | None = None) -> list[Rule]:
    """Parse one rule file; RuleFileError names the file (and the rule) on any problem."""
    file = str(path)
    try:
        data = parse_toml(text if text is not None else read_text(path, "rule file"), file)
    except InputError as exc:
        # the message starts with the file name, which RuleFileError puts first itself
        raise RuleFileError(file, None, str(exc).removeprefix(f"{file}: ")) from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise RuleFileError(file, None, f"unknown top-level key(s) {', '.join(unknown)} "
                                        "(rules go in [[rule]] tables)")
    raws = data.get("rule", [])
    if not isinstance(raws, list) or not all(isinstance(r, dict) for r in raws):
        raise RuleFileError(file, None, "rules must be [[rule]] tables")
    if not raws:
        raise RuleFileError(file, None, "no [[rule]] in the file")
    rules = [_rule_from(raw, file, i) for i, raw in enumerate(raws)]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RuleFileError(file, r.id, "duplicate rule id")
        seen.add(r.id)
    return rules


def _catalogue_texts() -> list[tuple[str, str]]:
    """(name, text) of the bundled catalogue: <repo>/rules when this package runs from a source
    tree, else the package data. The source tree comes first: an editable install of another
    checkout would otherwise serve its catalogue to this one (dr_inspect.catalogue is found
    through the installed finder, not next to this package)."""
    folder = Path(__file__).resolve().parent.parent.parent / "rules"
    if (folder.parent / "pyproject.toml").is_file() and any(folder.glob("*.toml")):
        return sorted((str(p), p.read_text()) for p in folder.glob("*.toml"))
    try:
        root = importlib.resources.files("dr_inspect.catalogue")
        items = [(f"dr_inspect.catalogue/{p.name}", p.read_text()) for p in root.iterdir()
                 if p.name.endswith(".toml")]
        if items:
            return sorted(items)
    except ModuleNotFoundError:
        pass
    return sorted((str(p), p.read_text()) for p in folder.glob("*.toml"))


def load_rules(extra_files: list[Path | str] | tuple = ()) -> list[Rule]:
    """The bundled DR catalogue plus users' files; ids must be unique over all of them."""
    rules: list[Rule] = []
    for name, text in _catalogue_texts():
        rules.extend(load_rule_file(name, text))
    if not rules:
        raise RuleFileError("rules/", None, "the rule catalogue is missing (no *.toml found)")
    by_id = {r.id: r for r in rules}
    for path in extra_files:
        for r in load_rule_file(path):
            if r.id in by_id:
                raise RuleFileError(str(path), r.id, f"rule id already defined in {by_id[r.id].file}")
            by_id[r.id] = r
            rules.append(r)
    return rules
