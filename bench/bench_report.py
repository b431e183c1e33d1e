"""HTML report benchmark: render time and size against the number of flows.

    python bench/bench_report.py                    # 20k, 100k, 400k frames per point
    python bench/bench_report.py --sizes 20000

For each healthy synthetic two-point set (bench.gen) it analyses once (not timed here; see
bench_verify.py) and then times `render_html` alone, printing seconds per 10k flows and the file
size. Target from the issue: under a second per 10k flows, under 2 MB for the bundled sets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

if __package__ in (None, ""):   # run as `python bench/<script>.py`: make the bench package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen  # noqa: E402
from bench.bench_decode import parse_sizes  # noqa: E402
from bench.measure import progress  # noqa: E402

TARGET_SECONDS_PER_10K_FLOWS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[20_000, 100_000, 400_000],
                        help="frames per point, comma separated")
    args = parser.parse_args(argv)
    from dr_inspect.report.html import render_html
    from dr_inspect.analysis.paths import analyse_paths

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in args.sizes:
            directory = Path(tmp) / f"drset-{frames}"
            progress(f"generating {directory.name}")
            gen.write_dr_set(directory, frames, seed=1)
            progress(f"analysing {directory.name}")
            analysis = analyse_paths([directory])
            flows = analysis.report.flows
            start = time.perf_counter()
            html = render_html(analysis.report, analysis)
            seconds = time.perf_counter() - start
            per_10k = seconds / max(flows, 1) * 10_000
            rows.append([frames, flows, f"{seconds:.3f}", f"{per_10k:.3f}",
                         f"{len(html.encode()) / 1e6:.2f}",
                         "yes" if per_10k < TARGET_SECONDS_PER_10K_FLOWS else "NO"])
    print(tabulate(rows, headers=["frames/point", "flows", "render s", "s per 10k flows", "MB",
                                  f"< {TARGET_SECONDS_PER_10K_FLOWS} s/10k"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
