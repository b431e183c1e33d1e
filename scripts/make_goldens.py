#!/usr/bin/env python3
"""Regenerate the golden reports in tests/golden/ from the bundled capture sets in captures/.

    python scripts/make_goldens.py            # every set
    python scripts/make_goldens.py --check    # compare only; exit 1 on any difference

For every set captures/NAME this writes tests/golden/NAME.json and tests/golden/NAME.txt: the
stdout of `dr-inspect verify --format json|table -q captures/NAME`, run from the repository root
(no colour: not a terminal). tests/test_golden_reports.py holds the reports byte-identical to
these files, so a restructuring that changes a report fails there. Regenerate only for a
deliberate behaviour change of the analysis, and say so in the commit message.

Nothing is normalised: the report's only run-dependent field is each point's `file`, which is
the path as given on the command line; running from the repository root with relative paths
makes it stable. The reports carry no timings.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
GOLDEN = ROOT / "tests" / "golden"
FORMATS = {"json": "json", "table": "txt"}     # report format -> golden file suffix


def capture_sets() -> list[str]:
    return sorted(p.name for p in CAPTURES.iterdir() if (p / "manifest.toml").is_file())


@contextmanager
def _in_root() -> Iterator[None]:
    before = Path.cwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def render_reports(name: str) -> dict[str, str]:
    """{golden file name: report text} of one bundled set, as the CLI prints them."""
    from click.testing import CliRunner

    from dr_inspect.cli import main
    reports = {}
    with _in_root():
        for fmt, suffix in FORMATS.items():
            result = CliRunner().invoke(main, ["verify", "-q", "--format", fmt, f"captures/{name}"])
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise RuntimeError(f"verify {name} --format {fmt} crashed") from result.exception
            reports[f"{name}.{suffix}"] = result.stdout
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    differ = []
    for name in capture_sets():
        for filename, text in render_reports(name).items():
            path = GOLDEN / filename
            if args.check:
                if not path.is_file() or path.read_text() != text:
                    differ.append(filename)
            else:
                path.write_text(text)
    if differ:
        print("reports differ from tests/golden/: " + ", ".join(differ), file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'} {len(capture_sets()) * len(FORMATS)} "
          f"golden reports in {GOLDEN.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
