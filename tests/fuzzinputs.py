"""Hypothesis strategies for the text inputs of verify and doctor: manifests, rule files,
topology files and host snapshots, each either plausible (known keys, values of the right or
a wrong type) or broken text (random edits, deep nesting, non-UTF-8 bytes).

A case is a dict file name -> bytes, written into a copy of a small capture set.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from dr_inspect.live.manifest import toml_value

from test_doctor_checks import rs_snapshot
from test_rules_types import expressions

PLAUSIBLE = ["br_e", "br_lvs", "br_e.pcap", "br_lvs.pcap", "vip-segment", "rs-segment", "both",
             "unknown", "192.168.7.33:8000", "192.168.7.33", "[fd00::1]:80", "0.0.0.0:0", "rr",
             "two-segment", "02:00:00:00:07:10", "rs1", "DR001", "has_copy", "{frame}",
             "{point.__class__}", "{frame:>999999999}", "../../etc/passwd", "/dev/zero",
             "snapshots/rs1.json", "rs1.json", "", " ", "\n", "x" * 300]


def toml_doc(data: dict[str, Any], table_arrays: tuple[str, ...]) -> str:
    lines = []
    for key, value in data.items():
        if key in table_arrays and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            continue
        if isinstance(value, dict) and key not in table_arrays:
            lines.append(f"[{toml_value(key)}]")
            lines += [f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()]
            continue
        lines.insert(0, f"{toml_value(key)} = {toml_value(value)}")
    for key in table_arrays:
        value = data.get(key)
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for table in value:
                lines.append(f"[[{key}]]")
                lines += [f"{toml_value(str(k))} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# text without lone surrogates (those cannot be written as UTF-8 at all)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
leaves = st.one_of(st.sampled_from(PLAUSIBLE), texts, st.booleans(),
                   st.integers(-(2**70), 2**70), st.integers(-3, 70000),
                   st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(leaves, lambda c: st.one_of(st.lists(c, max_size=4),
                                                  st.dictionaries(texts, c, max_size=3)),
                      max_leaves=8)


def _table(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of these keys with their plausible values, others with any value, plus a stray
    key now and then."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(s, values) for k, s in keys.items()}
                                 ).flatmap(lambda d: st.dictionaries(st.sampled_from(["extra", "name "]),
                                                                     values, max_size=1).map(
                                     lambda extra: {**d, **extra}))


POINT = {"name": st.sampled_from(["br_e", "br_lvs", "x", "br_e\nPASS"]),
         "file": st.sampled_from(["br_e.pcap", "br_lvs.pcap", "nope.pcap", "../br_e.pcap", "/dev/zero"]),
         "role": st.sampled_from(["vip-segment", "rs-segment", "both", "unknown", "other"]),
         "received": st.integers(-1, 10**6), "dropped": st.integers(-1, 10**6),
         "files": st.lists(st.sampled_from(["br_e.pcap", "br_lvs.pcap"]), max_size=3)}
CAPTURE = {"vip": st.sampled_from(PLAUSIBLE), "port": st.integers(-1, 70000),
           "scheduler": st.sampled_from(["rr", "wrr", ""]),
           "real_servers": st.lists(st.fixed_dictionaries(
               {"name": st.sampled_from(["rs1", "rs2"]),
                "rip": st.sampled_from(["192.168.88.20", "192.168.88.21", "x"])}), max_size=3),
           "started": st.sampled_from(["2026-11-30T06:50:00Z", "yesterday"])}


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    points = draw(st.lists(_table(POINT), max_size=3))
    data = {"capture": draw(_table(CAPTURE)), "points": points,
            "snapshots": draw(st.sampled_from([{}, {"rs1": "rs1.json"}, {"rs1": "/dev/zero"},
                                               {"rs1": "../rs1.json"}]))}
    return toml_doc(data, ("points",)).encode()


RULE = {"id": st.sampled_from(["X001", "DR001", "x"]), "name": st.just("n"), "title": st.just("t"),
        "severity": st.sampled_from(["error", "warning", "fatal"]),
        "table": st.sampled_from(["forwards", "to_vip", "replies", "arp", "flows", "nope"]),
        "kind": st.sampled_from(["each", "none", "distinct-at-most", "balanced"]),
        "explanation": st.just("e"), "fix": st.just("f"), "select": expressions,
        "expect": expressions, "match": expressions, "when": expressions, "warn_if": expressions,
        "key": st.lists(st.sampled_from(["flow_id", "point", "nope"]), max_size=2),
        "column": st.sampled_from(["real_server", "point", "frame"]), "max": st.integers(-1, 3),
        "tolerance": st.floats(allow_nan=True), "min_groups": st.integers(0, 4),
        "expected": st.sampled_from(PLAUSIBLE), "actual": texts,
        "cause": st.sampled_from(["{point}", "{frame}", "{{x}}", "{"]),
        "evidence": st.lists(st.sampled_from(["ttl", "frame", "zzz"]), max_size=2)}


@st.composite
def rule_files(draw: st.DrawFn) -> bytes:
    rules = draw(st.lists(_table(RULE), min_size=1, max_size=2))
    return toml_doc({"rule": rules}, ("rule",)).encode()


TOPOLOGY = {"vips": st.lists(st.sampled_from(PLAUSIBLE), max_size=3),
            "scheduler": st.sampled_from(["rr", ""]),
            "shape": st.sampled_from(["two-segment", "shared-segment", "single-point", "ring"]),
            "director_macs": st.dictionaries(st.sampled_from(["vip-segment", "rs-segment", "x"]),
                                             st.lists(st.sampled_from(PLAUSIBLE), max_size=2),
                                             max_size=2),
            "roles": st.dictionaries(st.sampled_from(["br_e", "br_lvs"]),
                                     st.sampled_from(["vip-segment", "rs-segment", "bad"]), max_size=2),
            "real_servers": st.lists(st.fixed_dictionaries(
                {"name": st.sampled_from(["rs1", "rs2"])},
                optional={"rip": st.sampled_from(["192.168.88.20", "nope"]),
                          "macs": st.dictionaries(st.sampled_from(["vip-segment", "rs-segment"]),
                                                  st.sampled_from(PLAUSIBLE), max_size=2)}),
                max_size=3)}


@st.composite
def topology_files(draw: st.DrawFn) -> bytes:
    return toml_doc(draw(_table(TOPOLOGY)), ("real_servers",)).encode()


@st.composite
def snapshots(draw: st.DrawFn) -> bytes:
    snap = rs_snapshot()
    for key in draw(st.lists(st.sampled_from(sorted(snap)), max_size=3, unique=True)):
        snap[key] = draw(values)
    return json.dumps(snap).encode()


@st.composite
def broken(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """The base document, or it with random byte edits, deep nesting or non-UTF-8 bytes."""
    data = draw(base)
    how = draw(st.sampled_from(["as-is", "as-is", "edit", "nest", "latin1", "truncate"]))
    if how == "edit":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(max_size=4)) + data[at + draw(st.integers(0, 3)):]
    elif how == "nest":
        depth = draw(st.sampled_from([50, 3000, 100_000]))
        data += b"\nzz = " + b"[" * depth + b"]" * depth + b"\n"
    elif how == "latin1":
        data += b"\n# caf\xe9\n"
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    return data


# valid companions: each case breaks one input and keeps the others usable, so the broken one
# is the one the commands meet
VALID = {"rules.toml": b'[[rule]]\nid = "X001"\nname = "n"\ntitle = "t"\nseverity = "warning"\n'
                       b'table = "forwards"\nkind = "each"\nexplanation = "e"\nfix = "f"\n'
                       b'expect = "ttl_drop <= 1"\n',
         "topology.toml": b"",
         "manifest.toml": b'[[points]]\nname = "br_e"\nfile = "br_e.pcap"\nrole = "vip-segment"\n\n'
                          b'[[points]]\nname = "br_lvs"\nfile = "br_lvs.pcap"\nrole = "rs-segment"\n\n'
                          b'[snapshots]\nrs1 = "rs1.json"\n',
         "rs1.json": json.dumps(rs_snapshot()).encode()}
TARGETS = {"manifest.toml": manifests(), "rules.toml": rule_files(),
           "topology.toml": topology_files(), "rs1.json": snapshots()}


@st.composite
def cases(draw: st.DrawFn) -> dict[str, bytes]:
    """File name -> content: one input fuzzed, the others valid."""
    target = draw(st.sampled_from(sorted(TARGETS)))
    case = dict(VALID)
    case[target] = draw(broken(TARGETS[target]))
    return case
