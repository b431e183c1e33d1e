"""dr-inspect capture: one tcpdump per bridge, writing a capture set that `verify` reads."""

from __future__ import annotations

from pathlib import Path

import click

from dr_inspect.cli.options import DURATION, DURATION_HELP, ssh_host_options
from dr_inspect.errors import CaptureAgentError, InputError
from dr_inspect.live.capture import CaptureSummary, capture_for
from dr_inspect.live.options import default_out_dir, parse_pairs, points_from_bridges, snapshot_hosts
from dr_inspect.remote.capture import remote_capture_for
from dr_inspect.remote.inventory import build_inventory
from dr_inspect.cli.status import StatusLine
from dr_inspect.live.progress import progress_line
from dr_inspect.live.signals import terminate_as_interrupt
from dr_inspect.live.tcpdump import DEFAULT_SNAPLEN


def capture_options(func):
    """Options shared by capture and watch."""
    for decorator in reversed([
        click.option("--bridge", "bridges", multiple=True, metavar="NAME",
                     help="Bridge or interface to capture on; repeat for each capture point."),
        click.option("--netns", metavar="NS", help="Network namespace the bridges live in."),
        click.option("--duration", type=DURATION,
                     help=f"Stop after this long ({DURATION_HELP}; default: until Ctrl-C or "
                          "SIGTERM)."),
        click.option("--count", type=click.IntRange(min=1), metavar="N",
                     help="Stop each point after N packets."),
        click.option("--filter", "bpf", metavar="BPF", help="tcpdump capture filter, e.g. 'tcp or arp'."),
        click.option("--snaplen", type=click.IntRange(min=1), metavar="N",
                     help="Bytes kept of each packet (capture: 262144; watch: 512, the headers "
                          "the rules read, which keeps tcpdump's ring from overflowing)."),
        click.option("--role", "roles", multiple=True, metavar="NAME=ROLE",
                     help="Role of a point: vip-segment, rs-segment or both."),
        click.option("--quiet", "-q", is_flag=True, help="No live progress."),
    ]):
        func = decorator(func)
    return func


def render_summary(summary: CaptureSummary) -> str:
    lines = [f"capture set written to {summary.out_dir} ({summary.started} .. {summary.stopped})"]
    for p in summary.points:
        files = ", ".join(f.name for f in p.files) or "(no file)"
        where = f"{p.interface}" + (f" in {p.netns}" if p.netns else "") + (f" on {p.host}" if p.host else "")
        recv = "?" if p.received is None else str(p.received)
        drop = "?" if p.dropped is None else str(p.dropped)
        lines.append(f"  {p.name:<12} {where:<24} {files}  received {recv}, dropped by kernel {drop}")
    for host, path in summary.snapshots.items():
        lines.append(f"  snapshot {host}: {path.relative_to(summary.out_dir)}")
    lines += [f"  warning: {w}" for w in summary.warnings]
    lines.append(f"verify it with: dr-inspect verify {summary.out_dir}")
    return "\n".join(lines)


@click.command()
@capture_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for the capture set (default: ./dr-capture-DATE-TIME).")
@click.option("--rotate-mb", type=click.IntRange(min=1), metavar="N",
              help="Start a new file every N MB (tcpdump -C), keeping a ring of --rotate-files.")
@click.option("--rotate-files", type=click.IntRange(min=2), metavar="N",
              help="Files per point kept with --rotate-mb (tcpdump -W; default 8).")
@click.option("--snapshot", "snapshots", multiple=True, metavar="HOST=NETNS",
              help="Also snapshot this host's state (NETNS '-' for this namespace); repeatable.")
@click.option("--no-snapshot", is_flag=True, help="Do not snapshot the capturing host's state.")
@ssh_host_options
@click.option("--iface", "ifaces", multiple=True, metavar="NAME:IFACE",
              help="Capture on IFACE of remote host NAME (the point NAME-IFACE); repeatable.")
@click.option("--max-mb", type=click.IntRange(min=1), metavar="N",
              help="Remote points: stop a point once its file holds N MB.")
def capture(bridges, netns, duration, count, bpf, snaplen, roles, quiet, out_dir, rotate_mb,
            rotate_files, snapshots, no_snapshot, hosts, inventory, ssh_config, ssh_options,
            ifaces, max_mb) -> None:
    """Capture on each --bridge with tcpdump until Ctrl-C, SIGTERM, --duration or --count.

    Writes DIR/<bridge>.pcap per point (rotated files: <bridge>.pcap0, <bridge>.pcap1, ...),
    DIR/manifest.toml and DIR/snapshots/<host>.json. On remote hosts over ssh (--host/--iface
    or --inventory) the points are HOST-IFACE, and each host's clock offset is recorded.
    """
    progress = StatusLine(quiet=quiet)
    on_tick = lambda session: progress.show(progress_line(session.progress(), progress.elapsed))  # noqa: E731
    if hosts or ifaces or inventory:
        if bridges or netns or rotate_mb or rotate_files or snapshots:
            raise InputError("--bridge, --netns, --rotate-* and --snapshot are for local capture; "
                             "remote points are --iface HOST:IFACE (or the inventory's)")
        inv = build_inventory(inventory, hosts, ifaces, parse_pairs(roles, "--role"),
                              ssh_config=ssh_config, ssh_options=ssh_options)
        with terminate_as_interrupt():
            summary = remote_capture_for(inv, out_dir or default_out_dir(), duration=duration,
                                         on_tick=on_tick, snaplen=snaplen, bpf=bpf, count=count,
                                         max_mb=max_mb, snapshots=not no_snapshot)
    else:
        if max_mb:
            raise InputError("--max-mb bounds remote points; locally use --rotate-mb/--rotate-files")
        points = points_from_bridges(bridges, netns, roles)
        with terminate_as_interrupt():
            summary = capture_for(
                points, out_dir or default_out_dir(), duration=duration, on_tick=on_tick,
                snaplen=snaplen or DEFAULT_SNAPLEN, bpf=bpf, count=count, rotate_mb=rotate_mb, rotate_files=rotate_files,
                snapshot_hosts=snapshot_hosts(netns, snapshots, not no_snapshot))
    progress.clear()
    click.echo(render_summary(summary))
    if summary.failed:
        names = ", ".join(p.name for p in summary.failed)
        raise CaptureAgentError(f"tcpdump died on {names}: {summary.failed[0].error}; "
                                f"the files written so far are kept in {summary.out_dir}")
