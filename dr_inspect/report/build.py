"""Library entry points behind `dr-inspect verify --format html` and `dr-inspect report`:
analyse the capture set once, verify it, render one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dr_inspect.model import VerifyReport
from dr_inspect.report.html import render_html


def html_report(paths: Sequence[str | Path], *, title: str | None = None,
                **verify_options) -> tuple[VerifyReport, str]:
    """(report, html) for a capture set; verify_options as for dr_inspect.verify.verify_paths."""
    from dr_inspect.verify import analyse_paths

    analysis = analyse_paths(paths, **verify_options)   # decodes and verifies once
    report = analysis.report
    name = title or "dr-inspect report: " + ", ".join(str(p) for p in paths)
    return report, render_html(report, analysis, title=name)
