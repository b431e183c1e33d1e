"""Report renderers: pure functions from result objects (dr_inspect.model) to text.

render_table, render_json, render_junit and render_markdown take a VerifyReport;
render_ladder_text and render_ladder_svg take a Ladder; render_html takes a VerifyReport and,
for ladders, the Analysis it came from.
"""

from __future__ import annotations

from dr_inspect.report.html import render_html
from dr_inspect.report.json_report import render_json
from dr_inspect.report.junit import render_junit
from dr_inspect.report.ladder_svg import render_ladder_svg
from dr_inspect.report.ladder_text import render_ladder_text
from dr_inspect.report.markdown import render_markdown
from dr_inspect.report.table import render_table

FORMATS = ("table", "json", "junit", "markdown", "html")

__all__ = ["FORMATS", "render_html", "render_json", "render_junit", "render_ladder_svg",
           "render_ladder_text", "render_markdown", "render_table"]
