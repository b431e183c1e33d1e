"""The dr-inspect command line: thin click commands, one module per command.

Each command parses its options, makes one library call and renders the result. Domain errors
become a one-line message on stderr and exit code 2; no traceback reaches the user for bad input.
"""

from __future__ import annotations

import importlib
import sys

import click

from dr_inspect import __version__
from dr_inspect.cli.examples import attach_examples
from dr_inspect.errors import DrInspectError

# (module under dr_inspect.cli, attribute): each attribute is a click command or group.
COMMANDS: list[tuple[str, str]] = [
    ("decode", "decode"),
    ("verify", "verify"),
    ("ladder", "ladder"),
    ("report", "report"),
    ("lab", "lab"),
    ("capture", "capture"),
    ("watch", "watch"),
    ("doctor", "doctor"),
    ("diff", "diff"),
]


class DomainErrorGroup(click.Group):
    """A click group that imports each command's module only when that command runs (the
    commands pull in pandas, ...), and turns DrInspectError into a one-line message and
    exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({name for name, _ in COMMANDS} | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        attr = dict(COMMANDS).get(cmd_name)
        if attr is None:
            return None
        module = importlib.import_module(f"dr_inspect.cli.{cmd_name}")
        command = attach_examples(getattr(module, attr), cmd_name)
        self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DrInspectError as exc:
            click.echo(f"dr-inspect: error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("dr-inspect: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=DomainErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dr-inspect")
def main() -> None:
    """Capture, correlate and verify LVS Direct Routing traffic.

    Every command has examples in its --help (dr-inspect verify --help). "The seed" is the classic
    LVS-DR tutorial setup this tool grew from: a client, a director and real servers on two
    bridges, br_e (client and VIP side) and br_lvs (director to real servers); `dr-inspect lab`
    builds it in network namespaces.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
