"""dr-inspect ladder: draw one connection across the capture points (text; optionally SVG and PNG)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from pathlib import Path

import click

from dr_inspect.cli.verify import analysis_options, verify_options, write_output
from dr_inspect.errors import InputError
from dr_inspect.options import VerifyOptions
from dr_inspect.report import render_ladder_svg, render_ladder_text
from dr_inspect.report.format import filter_line
from dr_inspect.cli.status import StatusLine


def names_port(text: str) -> bool:
    """Whether --client names one connection (IP:PORT, [IPv6]:PORT) rather than selecting
    clients (IP, IPv6, CIDR: checked by the filter). A malformed IP:PORT is bad input before
    the analysis, not a miss after it."""
    if "/" in text:
        return False
    found = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if found:
        ip, port = found.group(1), found.group(2)
    elif text.count(":") == 1:
        ip, _, port = text.partition(":")
    else:
        ip, port = text, None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InputError(f"--client {text!r}: {ip!r} is not an IP address (expected IP:PORT)") from None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise InputError(f"--client {text!r}: port {port!r} is not a number 1..65535")
    return port is not None


@click.command()
@analysis_options
@click.option("--flow", type=click.IntRange(min=1), metavar="N",
              help="Flow id, from 1 (as in reports and --list).")
@click.option("--list", "list_flows", is_flag=True,
              help="List every connection (flow id, client, real server, verdict, rules broken) "
                   "instead of drawing one; the filters narrow the list.")
@click.option("--svg", "svg_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write the ladder as an SVG picture.")
@click.option("--png", "png_file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write the ladder as a PNG picture (rendered by headless Chromium).")
def ladder(paths, topology_file, rule_files, window_ms, quiet, flow, list_flows,
           svg_file, png_file, **selection) -> None:
    """Show one connection the way the LVS-DR tutorial (the seed) narrates it: client send,
    director receive, director send, server receive, server send, client receive.

    --list shows every connection first: its real server, verdict and the rules it breaks.
    --client IP:PORT draws that client's connection; --client IP|CIDR, --rs, --vip, --since
    and --until select connections (--list lists them, else the first one is drawn).
    """
    pickers = [c for c in selection["clients"] if names_port(c)]
    if pickers and len(selection["clients"]) > 1:
        raise click.UsageError("--client IP:PORT names one connection: give --client once")
    if pickers:
        selection["clients"] = ()
    options = verify_options(selection, topology_file, rule_files, window_ms)
    if list_flows:
        if flow is not None or pickers or svg_file or png_file:
            raise click.UsageError("--list shows every connection the filters select: no "
                                   "--flow, --client IP:PORT, --svg, --png")
        _list_flows(paths, quiet, options)
        return
    if (flow is not None and pickers) or (flow is None and not pickers
                                          and options.flow_filter is None):
        raise click.UsageError("give exactly one of --flow N or --client IP:PORT "
                               "(--list shows the connections; a filter such as --rs NAME "
                               "draws the first it selects)")
    from dr_inspect.analysis.ladder import build_ladder
    from dr_inspect.analysis.paths import analyse_paths

    with StatusLine(quiet=quiet) as status:
        status.show(f"analysing {len(paths)} path(s) ...")
        analysis = analyse_paths(paths, options, progress=status.show)
        result = build_ladder(analysis, flow=flow, client=pickers[0] if pickers else None)
    click.echo(render_ladder_text(result), nl=False)
    svg = render_ladder_svg(result) if svg_file is not None or png_file is not None else None
    if svg_file is not None:
        write_output(svg, svg_file)
        click.echo(f"SVG written to {svg_file}")
    if png_file is not None:
        from dr_inspect.report.png import svg_to_png
        width, height = svg_to_png(svg, png_file)
        click.echo(f"PNG written to {png_file} ({width}x{height})")


LIST_HEADERS = {"flow": "flow", "client": "client", "vip": "vip", "real_server": "real server",
                "packets_in": "to director", "packets_out": "replies", "verdict": "verdict",
                "rules": "rules broken"}


def _list_flows(paths, quiet: bool, options: VerifyOptions) -> None:
    from tabulate import tabulate

    from dr_inspect.report.flow_list import LIST_EVIDENCE, flow_rows
    from dr_inspect.analysis.paths import analyse_paths

    options = replace(options, max_evidence=LIST_EVIDENCE)
    with StatusLine(quiet=quiet) as status:
        status.show(f"analysing {len(paths)} path(s) ...")
        analysis = analyse_paths(paths, options, progress=status.show)
    rows = flow_rows(analysis.report, analysis.flows)
    selected = filter_line(analysis.report)
    if selected:
        click.echo(selected)
    if not rows:
        click.echo("no connection to a VIP in these captures")
        return
    click.echo(tabulate([[r[k] for k in LIST_HEADERS] for r in rows],
                        headers=list(LIST_HEADERS.values())))
    failed = sum(r["verdict"] == "FAIL" for r in rows)
    click.echo(f"{len(rows)} connections, {failed} breaking a rule; draw one with --flow N")
