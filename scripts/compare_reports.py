#!/usr/bin/env python3
"""Compare verify reports of this checkout with those of a base revision, byte for byte.

    python scripts/compare_reports.py                      # against main, drset of 20k frames/point
    python scripts/compare_reports.py --base $(git merge-base main HEAD)   # the branch point
    python scripts/compare_reports.py --base HEAD~3 --frames 5000,50000

Inputs: the bench's synthetic healthy DR set (bench/gen.py drset, seed 1, pcap and pcapng, at each
size in --frames, generated once into a temporary folder and read by both revisions) and every
bundled set in captures/. The base revision is exported with `git archive` into a temporary
folder and its C kernels are built there. Both revisions run `python -P -m dr_inspect verify
--format json|table -q PATH` from the same working directory with the same arguments, so the
reports need no normalisation. Exit 1 when any report or exit code differs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gen  # noqa: E402

FORMATS = ("json", "table")


def export_revision(rev: str, into: Path) -> Path:
    """The tree of `rev` in into/, with its C kernels built in place."""
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev],
                   check=True)
    tree = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                   check=True, stdout=subprocess.DEVNULL)
    return tree


def report(tree: Path, fmt: str, path: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of verify in that tree."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run([sys.executable, "-P", "-m", "dr_inspect", "verify", "-q", "--format",
                           fmt, path], cwd=ROOT, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="main", help="git revision to compare with (main)")
    parser.add_argument("--frames", default="20000",
                        help="drset sizes, frames per point, comma separated (20000)")
    parser.add_argument("--no-bundled", action="store_true", help="skip captures/*")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.frames.split(",")]
    with tempfile.TemporaryDirectory(prefix="dr-compare-") as tmp:
        tmp_dir = Path(tmp)
        base = export_revision(args.base, tmp_dir)
        inputs = []
        for size in sizes:
            for fmt in ("pcap", "pcapng"):
                directory = tmp_dir / f"drset-{size}-{fmt}"
                gen.write_dr_set(directory, size, fmt=fmt, seed=1)
                inputs.append(str(directory))
        if not args.no_bundled:
            inputs += sorted(f"captures/{p.name}" for p in (ROOT / "captures").iterdir()
                             if (p / "manifest.toml").is_file())
        differ = 0
        for path in inputs:
            for fmt in FORMATS:
                before, after = report(base, fmt, path), report(ROOT, fmt, path)
                same = before[:2] == after[:2] and before[1] != ""
                differ += not same
                print(f"{'same  ' if same else 'DIFFER'} {fmt:5} exit {after[0]} {path}")
                for label, (_, _, err) in (("base", before), ("this", after)):
                    if not same and err.strip():
                        print(f"    {label}: {err.strip().splitlines()[-1]}")
    print(f"{differ} of {len(inputs) * len(FORMATS)} reports differ from {args.base}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
