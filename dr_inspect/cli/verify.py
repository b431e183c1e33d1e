"""dr-inspect verify: check a capture set against the DR rules and report; exit 0/1/2."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dr_inspect.errors import InputError
from dr_inspect.options import VerifyOptions
from dr_inspect.report import render_json, render_junit, render_markdown, render_table
from dr_inspect.report.format import verdict_line
from dr_inspect.cli.status import StatusLine

FORMATS = ("table", "json", "junit", "markdown", "html")


def analysis_options(func):
    """Capture paths and the options that shape the analysis (shared by verify, ladder, report)."""
    for decorator in reversed([
        click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path)),
        click.option("--vip", "vips", multiple=True, metavar="IP:PORT",
                     help="Pin a VIP (repeatable); default: learned from the traffic."),
        click.option("--topology", "topology_file", type=click.Path(path_type=Path),
                     metavar="FILE", help="topology.toml pinning VIPs, director and real servers."),
        click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path),
                     metavar="FILE", help="Extra rule file (repeatable), added to the catalogue."),
        click.option("--window", "window_ms", type=click.FloatRange(min=0, min_open=True),
                     default=500.0, show_default=True, metavar="MS",
                     help="Time window for matching one packet across capture points."),
        click.option("--quiet", "-q", is_flag=True, help="No progress on the terminal."),
    ]):
        func = decorator(func)
    return func


def verify_options(vips, topology_file, rule_files, window_ms, max_evidence: int = 10
                   ) -> VerifyOptions:
    """The library's options from the shared command-line options."""
    return VerifyOptions(vips=tuple(vips), topology_file=topology_file,
                         rule_files=tuple(rule_files), window_ms=window_ms,
                         max_evidence=max_evidence)


def write_output(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise InputError(f"{output}: cannot write: {exc.strerror or exc}") from None


@click.command()
@analysis_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Report format.")
@click.option("--output", "-o", type=click.Path(path_type=Path), metavar="FILE",
              help="Write the report to FILE (the verdict line still goes to stdout).")
@click.option("--max-evidence", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="Evidence items kept per rule (the rest are counted).")
@click.option("--engine", type=click.Choice(("local", "dask")), default="local",
              show_default=True, help="local: this process; dask: a Dask cluster (same report).")
@click.option("--scheduler", metavar="ADDR",
              help="dask: a running scheduler (tcp://host:8786); default: a LocalCluster.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              metavar="N", help="dask: LocalCluster workers (one thread each).")
@click.option("--memory-limit", metavar="SIZE",
              help="dask: memory per LocalCluster worker, e.g. 4GB (default: Dask's auto).")
@click.option("--shard-dir", type=click.Path(path_type=Path), metavar="DIR",
              help="dask: where the Parquet shards go (storage every worker sees at this path; "
                   "default: the temp folder).")
def verify(paths, vips, topology_file, rule_files, window_ms, quiet, fmt, output,
           max_evidence, engine, scheduler, workers, memory_limit, shard_dir) -> None:
    """Verify the LVS-DR invariants on a capture set (a directory or capture files).

    Exit status: 0 when no error-severity rule failed, 1 when one did, 2 for bad input.
    """
    options = verify_options(vips, topology_file, rule_files, window_ms, max_evidence)
    if engine == "dask" and fmt == "html":
        raise InputError("--format html needs the local engine (--engine local)")
    with StatusLine(quiet=quiet) as status:
        status.show(f"verifying {len(paths)} path(s) ...")
        if fmt == "html":
            from dr_inspect.report.build import html_report
            report, text = html_report(paths, options, progress=status.show)
        else:
            from dr_inspect import verify as verify_capture_set
            report = (verify_capture_set(paths, options, progress=status.show)
                      if engine == "local" else _verify_on_dask(
                          paths, options, status.show, scheduler, workers, memory_limit,
                          shard_dir, quiet))
            if fmt == "table":
                text = render_table(report, colour=output is None and sys.stdout.isatty())
            else:
                text = {"json": render_json, "junit": render_junit,
                        "markdown": render_markdown}[fmt](report)
    write_output(text, output)
    if output is not None:
        click.echo(f"{output}: {verdict_line(report)}")
    sys.exit(report.exit_code)


def _verify_on_dask(paths, options: VerifyOptions, progress, scheduler, workers, memory_limit,
                    shard_dir, quiet):
    """The same report computed on Dask (the dashboard address on stderr unless quiet)."""
    from dr_inspect.distributed import DaskOptions, verify_on_dask

    return verify_on_dask(paths, options, progress=progress, dask=DaskOptions(
        scheduler=scheduler, workers=workers, memory_limit=memory_limit, shard_dir=shard_dir,
        on_start=None if quiet else lambda line: click.echo(line, err=True)))
