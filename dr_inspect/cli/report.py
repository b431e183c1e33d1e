"""dr-inspect report: one self-contained HTML file for a capture set."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dr_inspect.cli.verify import analysis_options, verify_options, write_output
from dr_inspect.report.format import verdict_line
from dr_inspect.cli.status import StatusLine


@click.command()
@analysis_options
@click.option("--html", "html_file", type=click.Path(path_type=Path), required=True,
              metavar="OUT.html", help="Where to write the HTML report.")
@click.option("--max-evidence", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="Evidence items kept per rule.")
def report(paths, topology_file, rule_files, window_ms, quiet, html_file,
           max_evidence, **selection) -> None:
    """Write an HTML report: verdict, rules, learned topology, evidence with ladders of
    offending connections, sample ladders, per-server share and latency charts.

    This is the documented way to an HTML report; `verify --format html -o FILE` does the same.
    --client, --rs, --vip, --since and --until report only the connections they select.

    Exit status as for verify: 0 pass, 1 an error-severity rule failed, 2 bad input.
    """
    from dr_inspect.report.build import html_report

    options = verify_options(selection, topology_file, rule_files, window_ms, max_evidence)
    with StatusLine(quiet=quiet) as status:
        status.show(f"analysing {len(paths)} path(s) ...")
        result, html = html_report(paths, options, progress=status.show)
    write_output(html, html_file)
    click.echo(f"{html_file}: {verdict_line(result)}")
    sys.exit(result.exit_code)
