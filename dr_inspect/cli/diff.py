"""dr-inspect diff: what changed between two verify JSON reports; exit 1 on a regression."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dr_inspect.diff import diff_reports, load_report, render_diff_text


@click.command("diff")
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False), metavar="OLD.json")
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False), metavar="NEW.json")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format (json: schema dr-inspect.diff/1).")
@click.option("--max-latency-increase", "max_latency_increase", metavar="PCT",
              type=click.FloatRange(min=0), default=None,
              help="Also a regression: a real server's p50 or p95 latency grew by more than PCT "
                   "percent (default: latency changes are shown, never a regression).")
def diff(old: Path, new: Path, fmt: str, max_latency_increase: float | None) -> None:
    """Compare two `verify --format json` reports: rules that started or stopped failing, real
    servers that appeared or vanished, each server's share of connections and latency.

    Exit status: 0 no regression, 1 a regression (an error rule started failing, the verdict
    went from pass to fail, a real server vanished), 2 bad input.
    """
    result = diff_reports(load_report(old), load_report(new),
                          max_latency_increase_pct=max_latency_increase)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_diff_text(result), nl=False)
    sys.exit(result.exit_code)
