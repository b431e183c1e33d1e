"""`dr-inspect doctor`: check a host's (or namespace's) configuration against what LVS-DR needs,
or every host snapshot of a capture set."""

from __future__ import annotations

from pathlib import Path

import click

from dr_inspect.cli.options import ssh_host_options
from dr_inspect.doctor.render import FORMATS, render, render_catalogue
from dr_inspect.doctor.run import doctor_capture_set, doctor_live, doctor_remote
from dr_inspect.remote.inventory import build_inventory
from dr_inspect.errors import InputError


@click.command("doctor")
@click.argument("capture_set", required=False, type=click.Path())
@click.option("--role", type=click.Choice(["director", "realserver", "client"]),
              help="Role of the live host (required without CAPTURE_SET).")
@click.option("--vip", "vip", metavar="IP[:PORT]", help="The virtual service (required for a live host).")
@click.option("--netns", metavar="NS", help="Check this network namespace instead of the host.")
@click.option("--client", "clients", multiple=True, metavar="IP[/LEN]",
              help="Client address or network (repeatable): where replies must be routable.")
@click.option("--director-ip", "director_ips", multiple=True, metavar="IP",
              help="The director's address as real servers see it (repeatable): replies must not use it as gateway.")
@click.option("--director-mac", "director_macs", multiple=True, metavar="MAC",
              help="The director's MAC (repeatable): a client's ARP entry for the VIP must be it.")
@ssh_host_options
@click.option("--list-checks", is_flag=True, help="List the host checks (HC ids) and exit.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to a file.")
def doctor(capture_set: str | None, role: str | None, vip: str | None, netns: str | None,
           clients: tuple[str, ...], director_ips: tuple[str, ...], director_macs: tuple[str, ...],
           hosts: tuple[str, ...], inventory: Path | None, ssh_config: Path | None,
           ssh_options: tuple[str, ...], list_checks: bool, fmt: str, output: str | None) -> None:
    """Find the host misconfiguration behind a DR symptom (host checks HC000-HC020: --list-checks).

    \b
    Live:    dr-inspect doctor --role realserver --vip 192.168.7.33:8000 [--netns NS]
    Offline: dr-inspect doctor CAPTURE_SET   (every host snapshot in its manifest)
    Remote:  dr-inspect doctor --vip IP:PORT --host NAME=[USER@]HOST ...  (over ssh, read-only)
    Exit 0 all checks pass, 1 a check failed, 2 bad input.
    """
    if list_checks:
        click.echo(render_catalogue(fmt), nl=False)
        return
    hints = {"clients": clients, "director_ips": director_ips, "director_macs": director_macs}
    if hosts or inventory:
        if capture_set is not None or role or netns:
            raise InputError("--host/--inventory check remote hosts: no CAPTURE_SET, --role "
                             "(roles come from the inventory or are guessed) or --netns with them")
        if not vip:
            raise InputError("a remote check needs --vip IP[:PORT]")
        inv = build_inventory(inventory, hosts, (), {}, ssh_config=ssh_config, ssh_options=ssh_options)
        report = doctor_remote(list(inv.hosts.values()), vip, **hints)
    elif capture_set is not None:
        if role or netns:
            raise InputError("--role and --netns apply to a live host, not to a capture set "
                             "(roles come from the snapshots)")
        from dr_inspect.analysis.paths import vip_from_traffic
        report = doctor_capture_set(capture_set, vip, traffic_vip=vip_from_traffic, **hints)
    else:
        if not role or not vip:
            raise InputError("a live check needs --role director|realserver|client and --vip IP[:PORT] "
                             "(or give a CAPTURE_SET)")
        if role == "director" and netns:
            from dr_inspect.lab.hostexec import vm_director_hint
            hint = vm_director_hint(netns)
            if hint:
                raise InputError(hint)
        report = doctor_live(role, vip, netns, **hints)
    text = render(report, fmt)
    if output:
        try:
            with open(output, "w") as fh:
                fh.write(text)
        except OSError as exc:
            raise InputError(f"{output}: cannot write: {exc.strerror}") from None
    else:
        click.echo(text, nl=False)
    raise SystemExit(report.exit_code)
