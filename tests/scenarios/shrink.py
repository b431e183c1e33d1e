"""Shrink a failing scenario by hand-made steps (hypothesis shrinks the draw; this shrinks the
Scenario itself, keeping the seed), to pin the smallest one a class of failure shows on:

    python tests/scenarios/shrink.py "Scenario(seed=5, ..., faults=(Fault('...', 0),))"

A step is kept while the analysis still disagrees with the truth in the same way (the same
kinds of difference: verdict, failed rules, topology, connections, evidence)."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]
    __package__ = "scenarios"

from scenarios.build import write_scenario  # noqa: E402
from scenarios.check import differences, observe  # noqa: E402
from scenarios.model import TWO, Fault, Scenario  # noqa: E402


def signature(sc: Scenario) -> tuple[str, ...]:
    with tempfile.TemporaryDirectory() as tmp:
        truth = write_scenario(sc, Path(tmp))
        try:
            wrong = differences(truth, observe(Path(tmp)))
        except Exception as exc:          # an exit-2 error is a difference of its own
            return (f"error {type(exc).__name__}",)
    return tuple(sorted({line if line.startswith("failed rules") else line.split(" ")[0]
                         for line in wrong}))


def _steps(sc: Scenario) -> Iterator[Scenario]:
    defaults = Scenario(seed=sc.seed)
    for f in dataclasses.fields(Scenario):
        value, default = getattr(sc, f.name), getattr(defaults, f.name)
        if f.name in ("seed", "faults", "shape") or value == default:
            continue
        yield dataclasses.replace(sc, **{f.name: default})
        if isinstance(value, int) and value > 1 and f.name != "clock_offset_us":
            yield dataclasses.replace(sc, **{f.name: value - 1})
    for i in range(len(sc.faults)):
        yield dataclasses.replace(sc, faults=sc.faults[:i] + sc.faults[i + 1:])
    if sc.real_servers > 1:
        # drop the last server (faults on it move to the one before)
        n = sc.real_servers - 1
        faults = tuple(Fault(f.kind, min(f.rs, n - 1), f.variant) for f in sc.faults)
        if len({f.rs for f in faults}) == len(faults):
            yield dataclasses.replace(sc, real_servers=n, faults=faults)
    if sc.shape != TWO:
        yield dataclasses.replace(sc, shape=TWO)


def shrink(sc: Scenario) -> Scenario:
    want = signature(sc)
    if not want:
        raise SystemExit(f"no difference on {sc!r}")
    changed = True
    while changed:
        changed = False
        for smaller in _steps(sc):
            try:
                if signature(smaller) == want:
                    sc, changed = smaller, True
                    break
            except Exception:             # a combination the generator does not make
                continue
    return sc


if __name__ == "__main__":
    found = shrink(eval(sys.argv[1], {"Scenario": Scenario, "Fault": Fault}))
    print(repr(found))
    print(signature(found))
