"""dr-inspect lab up|down|status|traffic|demo|faults: the LVS-DR lab in network namespaces."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tabulate import tabulate

from dr_inspect.errors import LabError
from dr_inspect.lab import FAULTS, LabConfig, lab_down, lab_inventory, lab_status, lab_up, run_curl, run_traffic
from dr_inspect.lab.build import loaded_state
from dr_inspect.lab.hostexec import exec_in_host, lab_files
from dr_inspect.lab.plan import DIRECTORS
from dr_inspect.live.signals import terminate_as_interrupt


def _complete_fault(ctx, param, incomplete: str) -> list[str]:
    return [name for name in sorted(FAULTS) if name.startswith(incomplete)]


prefix_option = click.option("--prefix", default="dri", show_default=True,
                             help="Name prefix of the lab's namespaces (two labs coexist with different ones).")


def lab_options(func):
    for decorator in reversed([
        prefix_option,
        click.option("--director", type=click.Choice(DIRECTORS), default="ipvs", show_default=True,
                     help="ipvs: real IPVS (in a qemu VM when this kernel has none); nft: nftables MAC rewrite."),
        click.option("--real-servers", type=click.IntRange(1, 40), default=1, show_default=True,
                     help="Number of real servers (rs1, rs2, ...), each with the VIP on lo."),
        click.option("--vip", default="192.168.7.33", show_default=True, metavar="IP",
                     help="The virtual IP the director serves (IPv4; the lab's subnet is its /24)."),
        click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
                     help="TCP port of the virtual service and of each real server's HTTP server."),
        click.option("--fault", "faults", multiple=True, metavar="NAME[@rsN]",
                     shell_complete=_complete_fault,
                     help="Apply a real misconfiguration (repeatable; see 'dr-inspect lab faults'), "
                          "on rs1 or on the real server after @. Faults that would hide each "
                          "other are refused."),
    ]):
        func = decorator(func)
    return func


def _config(prefix, director, real_servers, vip, port, faults) -> LabConfig:
    return LabConfig(prefix=prefix, director=director, real_servers=real_servers, vip=vip, port=port,
                     faults=tuple(faults))


def _hosts_table(state) -> str:
    rows = []
    for host in state.hosts.values():
        for ifname, i in host.interfaces.items():
            rows.append([host.name, host.role, host.netns or "(VM)", ifname, f"{i['ip']}/{i['prefix']}",
                         i["mac"], i["bridge"]])
        if host.role == "real-server":
            rows.append([host.name, "", host.netns, "lo", f"{host.loopback_vip} (VIP)" if host.loopback_vip
                         else "(no VIP)", "", ""])
    return tabulate(rows, headers=["host", "role", "netns", "if", "address", "mac", "bridge"])


@click.group()
def lab() -> None:
    """The seed's LVS-DR lab in network namespaces, in seconds.

    The seed is the classic LVS-DR tutorial setup: a client, a director and real servers on two
    bridges, br_e (client and VIP side) and br_lvs (director to real servers), each real server
    with the VIP on lo and arp_ignore=1 / arp_announce=2. Needs root.
    """


@lab.command()
@lab_options
def up(prefix, director, real_servers, vip, port, faults) -> None:
    """Bring the lab up."""
    progress = (lambda msg: click.echo(f"... {msg}", err=True)) if sys.stderr.isatty() else None
    with terminate_as_interrupt():   # SIGTERM during the build also tears down what was built
        state = lab_up(_config(prefix, director, real_servers, vip, port, faults), progress=progress)
    click.echo(f"lab {state.prefix} up: {state.director_mode} director, service {state.vip}:{state.port}, "
               f"bridges {', '.join(state.bridges)} in netns {state.switch_netns}")
    if state.config.faults:
        click.echo(f"faults: {', '.join(state.config.faults)}")
    click.echo(_hosts_table(state))


@lab.command()
@prefix_option
def down(prefix) -> None:
    """Remove everything the lab started (also leftovers of a crashed run)."""
    removed = lab_down(prefix)
    if not removed:
        click.echo(f"lab {prefix}: nothing to remove")
    for item in removed:
        click.echo(f"removed {item}")


@lab.command()
@prefix_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(prefix, as_json) -> None:
    """List every namespace, bridge, veth, tap, VM and process of the lab.

    Exit 0 when the lab is up, 3 when it is not (as `systemctl status`)."""
    state = lab_status(prefix)
    if state is None:
        if as_json:
            click.echo(json.dumps({"prefix": prefix, "up": False}))
        else:
            click.echo(f"lab {prefix}: not up")
        sys.exit(3)
    inventory = lab_inventory(state)
    if as_json:
        click.echo(json.dumps({"prefix": prefix, "up": True, "state": state.to_json(),
                               "scheduler": state.config.effective_scheduler,
                               "inventory": inventory, "files": lab_files(state),
                               "leftovers": state.leftovers}, indent=2))
        return
    click.echo(f"lab {prefix}: {state.director_mode or '?'} director, scheduler "
               f"{state.config.effective_scheduler}, faults: "
               f"{', '.join(state.config.faults) or 'none'}")
    for what, items in inventory.items():
        click.echo(f"{what}: {', '.join(items) or '-'}")
    for what, path in lab_files(state).items():
        click.echo(f"{what}: {path}")
    if state.hosts:
        click.echo(_hosts_table(state))
    for item in state.leftovers:
        click.echo(f"leftover: {item}")


@lab.command()
@prefix_option
@click.option("--requests", type=click.IntRange(min=0), default=10, show_default=True,
              help="Connections of the load generator.")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Connections open at once.")
@click.option("--payload", default="0", show_default=True, metavar="N[,N...]",
              help="Request body sizes in bytes (0: GET), used in turn.")
@click.option("--reply-size", type=click.IntRange(min=0), default=0, help="Reply body size in bytes.")
@click.option("--curl", "curl_count", type=click.IntRange(min=0), default=0,
              help="Also run this many sequential curl requests first (as the tutorial's client does).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds per request.")
def traffic(prefix, requests, concurrency, payload, reply_size, curl_count, timeout) -> None:
    """Run real clients in the client namespace; print who answered."""
    try:
        payloads = [int(x) for x in payload.split(",") if x.strip()]
    except ValueError:
        raise LabError(f"--payload {payload!r}: expected sizes like 0,1000,20000") from None
    state = loaded_state(prefix)
    results = []
    if curl_count:
        results.append(run_curl(state, curl_count, timeout=timeout))
    if requests:
        results.append(run_traffic(state, requests=requests, concurrency=concurrency, payload=payloads or [0],
                                   reply_size=reply_size, timeout=timeout, fresh_arp=not curl_count))
    for r in results:
        servers = ", ".join(f"{k}: {v}" for k, v in r.per_server.items()) or "none"
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items())
        click.echo(f"{r.tool}: {r.ok}/{r.requests} ok; answered by {servers}" + (f"; failures {errors}" if errors else ""))
    if any(r.failed for r in results):
        sys.exit(1)


@lab.command()
@lab_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="New folder for the capture set (default: a new ./lab-demo-DATE-TIME per run).")
@click.option("--requests", type=click.IntRange(min=0), default=6, show_default=True,
              help="Connections of the load generator while capturing.")
@click.option("--concurrency", type=click.IntRange(min=1), default=2, show_default=True,
              help="Connections open at once.")
@click.option("--no-verify", is_flag=True, help="Only capture; do not verify.")
def demo(prefix, director, real_servers, vip, port, faults, out_dir, requests, concurrency, no_verify) -> None:
    """Up, capture on br_e and br_lvs, traffic, stop, verify, down (also on Ctrl-C)."""
    from dr_inspect.lab.demo import run_demo
    quiet = not sys.stderr.isatty()
    progress = None if quiet else (lambda msg: click.echo(f"... {msg}", err=True))
    with terminate_as_interrupt():
        result = run_demo(_config(prefix, director, real_servers, vip, port, faults), out_dir,
                          requests=requests, concurrency=concurrency, verify=not no_verify, progress=progress)
    for r in result.capture.traffic:
        servers = ", ".join(f"{k}: {v}" for k, v in r.per_server.items()) or "none"
        click.echo(f"{r.tool}: {r.ok}/{r.requests} ok; answered by {servers}")
    packets = ", ".join(f"{k} {v} packets" for k, v in result.capture.points.items())
    click.echo(f"capture set: {result.capture.out_dir} ({packets})")
    for warning in result.capture.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.report is not None:
        from dr_inspect.report import render_table
        click.echo(render_table(result.report, colour=sys.stdout.isatty()), nl=False)
        sys.exit(result.report.exit_code)
    elif not no_verify:
        click.echo(f"verify it with: dr-inspect verify {result.capture.out_dir}")


@lab.command(name="faults")
def list_faults() -> None:
    """List the faults: the misconfiguration and the symptom a user sees.

    Real-server faults act on rs1; NAME@rsN puts them on another real server."""
    for fault in FAULTS.values():
        only = "" if len(fault.backends) > 1 else f" (only with --director {fault.backends[0]})"
        click.echo(f"{fault.name}{only}  [{', '.join(fault.rules)}]\n  misconfiguration: {fault.misconfiguration}"
                   f"\n  symptom: {fault.symptom}")


@lab.command(name="exec", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@prefix_option
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              metavar="S", help="Seconds the command may run.")
@click.argument("host")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="CMD [ARGS]...")
def exec_(prefix, timeout, host, argv) -> None:
    """Run CMD in one host of the lab (client, director, rs1, ...), the director VM included;
    print its output and exit with its status. Options of the lab go before HOST."""
    result = exec_in_host(loaded_state(prefix), host, list(argv), timeout=timeout)
    click.echo(result.stdout, nl=False)
    if result.stderr:
        click.echo(result.stderr, nl=False, err=True)
    sys.exit(result.returncode)
