"""dr-inspect verify: check a capture set against the DR rules and report; exit 0/1/2."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from dr_inspect.cli.options import DURATION_HELP, DURATION_MS, TIME_BOUND, TIME_HELP
from dr_inspect.errors import InputError
from dr_inspect.options import FlowFilter, VerifyOptions
from dr_inspect.report import render_junit, render_markdown, render_table
from dr_inspect.report.format import verdict_line
from dr_inspect.cli.status import StatusLine

FORMATS = ("table", "json", "junit", "markdown", "html")


def analysis_options(func):
    """Capture paths and the options that shape the analysis (shared by verify, ladder, report)."""
    for decorator in reversed([
        click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path)),
        click.option("--vip", "vips", multiple=True, metavar="IP[:PORT]",
                     help="Judge only connections to this VIP (repeatable; a bare IP: every "
                          "port). A VIP the traffic does not show as one is pinned, as for a "
                          "capture holding only part of the traffic."),
        click.option("--client", "clients", multiple=True, metavar="IP|CIDR",
                     help="Judge only connections from this client address or network "
                          "(repeatable)."),
        click.option("--rs", "real_servers", multiple=True, metavar="NAME|RIP|MAC",
                     help="Judge only connections forwarded to this real server (repeatable; "
                          "names as in the unfiltered report)."),
        click.option("--since", type=TIME_BOUND, metavar="TIME",
                     help=f"Judge only connections starting at or after TIME: {TIME_HELP}."),
        click.option("--until", type=TIME_BOUND, metavar="TIME",
                     help=f"Judge only connections starting before TIME: {TIME_HELP}."),
        click.option("--topology", "topology_file", type=click.Path(path_type=Path),
                     metavar="FILE", help="topology.toml pinning VIPs, director and real servers."),
        click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path),
                     metavar="FILE", help="Extra rule file (repeatable), added to the catalogue."),
        click.option("--window", "window_ms", type=DURATION_MS, default="500ms",
                     show_default=True,
                     help="Time window for matching one packet across capture points "
                          f"({DURATION_HELP})."),
        click.option("--quiet", "-q", is_flag=True, help="No progress on the terminal."),
    ]):
        func = decorator(func)
    return func


def verify_options(selection: dict, topology_file, rule_files, window_ms,
                   max_evidence: int = 10) -> VerifyOptions:
    """The library's options from the shared command-line options (selection: the filter
    options, as analysis_options passes them)."""
    return VerifyOptions(topology_file=topology_file, rule_files=tuple(rule_files),
                         window_ms=window_ms, max_evidence=max_evidence,
                         flow_filter=flow_filter(**selection))


def flow_filter(vips=(), clients=(), real_servers=(), since=None, until=None
                ) -> FlowFilter | None:
    """The connection filter of --vip/--client/--rs/--since/--until (None: none given)."""
    flt = FlowFilter(clients=clients, real_servers=real_servers, vips=vips, since=since,
                     until=until)
    return flt if flt.active else None


def dask_options(options: VerifyOptions) -> VerifyOptions:
    """The dask engine judges every connection: --vip pins the VIP there (what --vip did before
    it was a filter); the other filters need the local engine (InputError)."""
    flt = options.flow_filter
    if flt.clients or flt.real_servers or flt.since or flt.until:
        raise InputError(f"{flt.describe()}: filters need the local engine (--engine local); "
                         "with --engine dask only --vip, which pins the VIP")
    return replace(options, vips=flt.vips, flow_filter=None)


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
              help="Report format. html is the same as `dr-inspect report --html FILE` (the "
                   "documented way), kept for scripts that use it.")
@click.option("--output", "-o", type=click.Path(path_type=Path), metavar="FILE",
              help="Write the report to FILE (the verdict line still goes to stdout).")
@click.option("--max-evidence", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="Evidence items kept per rule (the rest are counted).")
@click.option("--evidence-pcap", type=click.Path(path_type=Path, dir_okay=False),
              metavar="OUT.pcapng", help="Also write the frames behind each violation (the "
              "evidence kept, see --max-evidence), each with a comment naming the rule.")
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
def verify(paths, topology_file, rule_files, window_ms, quiet, fmt, output,
           max_evidence, evidence_pcap, engine, scheduler, workers, memory_limit,
           shard_dir, **selection) -> None:
    """Verify the LVS-DR invariants on a capture set (a directory or capture files).

    --client, --rs, --vip, --since and --until judge only the connections they select (the
    topology is still learned from the whole set); a filter that selects nothing is an error.

    Exit status: 0 when no error-severity rule failed, 1 when one did, 2 for bad input.
    """
    options = verify_options(selection, topology_file, rule_files, window_ms, max_evidence)
    if engine == "dask" and fmt == "html":
        raise InputError("--format html needs the local engine (--engine local)")
    if engine == "dask" and options.flow_filter is not None:
        options = dask_options(options)
    with StatusLine(quiet=quiet) as status:
        status.show(f"verifying {len(paths)} path(s) ...")
        if engine == "dask":
            report, text = _verify_on_dask(
                paths, options, fmt, output is None and sys.stdout.isatty(), status.show,
                dict(scheduler=scheduler, workers=workers, memory_limit=memory_limit,
                     shard_dir=shard_dir, on_start=None if quiet else lambda line: click.echo(
                         line, err=True)))
        elif fmt == "html":
            from dr_inspect.report.build import html_report
            report, text = html_report(paths, options, progress=status.show)
        elif fmt == "json":
            from dr_inspect.report.build import json_report
            report, text = json_report(paths, options, progress=status.show)
        else:
            from dr_inspect import verify as verify_capture_set
            report = verify_capture_set(paths, options, progress=status.show)
            if fmt == "table":
                text = render_table(report, colour=output is None and sys.stdout.isatty())
            else:
                text = {"junit": render_junit, "markdown": render_markdown}[fmt](report)
        if evidence_pcap is not None:
            from dr_inspect.report.evidence_pcap import write_evidence_pcap
            status.show("writing the evidence pcap")
            written = write_evidence_pcap(report, paths, evidence_pcap)
    write_output(text, output)
    if evidence_pcap is not None:
        click.echo(f"{evidence_pcap}: {written.frames} evidence frames of "
                   f"{', '.join(written.rules) or 'no failing rule'}", err=True)
        for problem in written.missing:
            click.echo(f"dr-inspect: warning: evidence frame {problem}", err=True)
    if output is not None:
        click.echo(f"{output}: {verdict_line(report)}")
    sys.exit(report.exit_code)


def _verify_on_dask(paths, options: VerifyOptions, fmt: str, colour: bool, progress,
                    dask: dict) -> tuple:
    """(report, text) as the local engine gives them, computed on Dask (dask: DaskOptions'
    fields)."""
    from dr_inspect.distributed import DaskOptions, analyse_on_dask
    from dr_inspect.report.flow_list import connection_rows
    from dr_inspect.report.json_report import render_json

    report, flows = analyse_on_dask(paths, options, progress=progress, dask=DaskOptions(**dask))
    if fmt == "json":
        return report, render_json(report, connection_rows(flows))
    if fmt == "table":
        return report, render_table(report, colour=colour)
    return report, {"junit": render_junit, "markdown": render_markdown}[fmt](report)
