"""dr-inspect watch: capture and verify while traffic flows; rolling verdicts, then the report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dr_inspect.cli.capture import capture_options
from dr_inspect.errors import CaptureAgentError
from dr_inspect.options import VerifyOptions
from dr_inspect.live.options import points_from_bridges, snapshot_hosts
from dr_inspect.cli.status import StatusLine
from dr_inspect.live.metrics import serving_metrics
from dr_inspect.live.progress import progress_line
from dr_inspect.live.render import render_interval
from dr_inspect.live.signals import terminate_as_interrupt
from dr_inspect.live.watch import WATCH_SNAPLEN
from dr_inspect.live.watch import watch as run_watch
from dr_inspect.report import render_json, render_junit, render_markdown, render_table

FORMATS = ("table", "json", "junit", "markdown")


@click.command()
@capture_options
@click.option("--vip", "vips", multiple=True, metavar="IP:PORT",
              help="Pin a VIP (repeatable); default: learned from the traffic.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True, metavar="S", help="Seconds between rolling verdicts.")
@click.option("--window", "window_s", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Seconds of recent traffic each verdict looks at (default: 5 intervals, >= 10).")
@click.option("--topology", "topology_file", type=click.Path(path_type=Path), metavar="FILE",
              help="topology.toml pinning VIPs, director and real servers.")
@click.option("--rules", "rule_files", multiple=True, type=click.Path(path_type=Path),
              metavar="FILE", help="Extra rule file (repeatable).")
@click.option("--scheduler", metavar="NAME",
              help="Director scheduler for DR011 (rr, wrr, flow-hash ...); default: round robin.")
@click.option("--save", "save_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Also keep the capture set in DIR (pcap per point + manifest.toml).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Format of the final report.")
@click.option("--max-evidence", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="Evidence items kept per rule.")
@click.option("--metrics", "metrics_addr", metavar="HOST:PORT",
              help="Serve Prometheus metrics there while watching (per-rule status and "
                   "violations, per-real-server connections and latency, capture drops).")
def watch(bridges, netns, duration, count, bpf, snaplen, roles, quiet, vips, interval, window_s,
          topology_file, rule_files, scheduler, save_dir, fmt, max_evidence, metrics_addr) -> None:
    """Verify LVS-DR live: capture on each --bridge, print a verdict every --interval, and at the
    end the same report and exit status as `verify` (0 pass, 1 a rule failed, 2 bad input)."""
    points = points_from_bridges(bridges, netns, roles)
    progress = StatusLine(quiet=quiet)
    metrics = None       # the Prometheus exporter while --metrics serves

    def on_interval(verdict) -> None:
        if metrics is not None:
            metrics.update(verdict)
        progress.clear()
        # rolling verdicts go to stderr when stdout carries a machine-readable report
        click.echo(render_interval(verdict), err=fmt != "table")

    with terminate_as_interrupt(), serving_metrics(metrics_addr) as metrics:
        if metrics is not None:
            click.echo(f"metrics: http://{metrics_addr}/metrics", err=True)
        options = VerifyOptions(vips=tuple(vips), topology_file=topology_file,
                                rule_files=tuple(rule_files), scheduler=scheduler,
                                max_evidence=max_evidence)
        result = run_watch(points, interval=interval, window_s=window_s, options=options,
                           duration=duration, count=count,
                           snaplen=snaplen or WATCH_SNAPLEN, bpf=bpf, save_dir=save_dir,
                           snapshot_hosts=snapshot_hosts(netns, (), save_dir is not None),
                           on_interval=on_interval,
                           on_tick=lambda counts: progress.show(progress_line(counts, progress.elapsed)))
    progress.clear()
    report = result.report
    if fmt == "table":
        click.echo(render_table(report, colour=sys.stdout.isatty()), nl=False)
    else:
        click.echo({"json": render_json, "junit": render_junit, "markdown": render_markdown}[fmt](report), nl=False)
    lag = "-" if result.max_lag_ms is None else f"{result.max_lag_ms:.0f} ms"
    click.echo(f"watch: {result.intervals} intervals, worst lag {lag}, slowest verify "
               f"{result.max_eval_ms:.0f} ms", err=True)
    if result.saved is not None:
        click.echo(f"capture set saved to {result.saved.out_dir}", err=True)
    if result.crashed:
        name, message = next(iter(result.crashed.items()))
        raise CaptureAgentError(f"tcpdump died on {name}: {message}")
    sys.exit(report.exit_code)
