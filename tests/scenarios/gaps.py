"""The classes of traffic the analysis still gets wrong (issue 12, and issue 18's first bullet),
as switches of strategies.py the main properties do not draw. An entry "a+b" is a combination:
a draw is left out when it uses all of its switches. Each entry has a pinned regression test
marked xfail(strict=True) in tests/test_scenarios_regressions.py; when a class is fixed, remove
its entry here and the xfail mark there, nothing else."""

KNOWN_GAPS: frozenset[str] = frozenset({
})


def known_gap(switches: frozenset[str]) -> str | None:
    """The KNOWN_GAPS entry a draw with these switches falls under, if any."""
    for gap in sorted(KNOWN_GAPS):
        if set(gap.split("+")) <= switches:
            return gap
    return None
