"""Library entry points behind `dr-inspect verify --format html|json` and `dr-inspect report`:
analyse the capture set once, verify it, render one document (HTML, or JSON with the
connections and their Community IDs)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from dr_inspect.model import VerifyReport
from dr_inspect.options import VerifyOptions
from dr_inspect.report.html import render_html


def html_report(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                title: str | None = None, progress: Callable[[str], None] | None = None
                ) -> tuple[VerifyReport, str]:
    """(report, html) for a capture set, verified with options."""
    from dr_inspect.analysis.paths import analyse_paths

    analysis = analyse_paths(paths, options, progress=progress)   # decodes and verifies once
    report = analysis.report
    name = title or "dr-inspect report: " + ", ".join(str(p) for p in paths)
    return report, render_html(report, analysis, title=name)


def json_report(paths: Sequence[str | Path], options: VerifyOptions = VerifyOptions(), *,
                progress: Callable[[str], None] | None = None) -> tuple[VerifyReport, str]:
    """(report, JSON text with a "connections" list) for a capture set, verified with options."""
    from dr_inspect.analysis.paths import analyse_paths
    from dr_inspect.report.flow_list import connection_rows
    from dr_inspect.report.json_report import render_json

    analysis = analyse_paths(paths, options, progress=progress)
    return analysis.report, render_json(analysis.report, connection_rows(analysis.flows))
