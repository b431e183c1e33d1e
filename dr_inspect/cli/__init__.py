"""The dr-inspect command line: thin click commands, one module per command.

Each command parses its options, makes one library call and renders the result. Domain errors
become a one-line message on stderr and exit code 2; no traceback reaches the user for bad input.
"""

from __future__ import annotations

import importlib
import sys

import click

from dr_inspect import __version__
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
]


class DomainErrorGroup(click.Group):
    """A click group that turns DrInspectError into 'dr-inspect: message' and exit code 2."""

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
    """Capture, correlate and verify LVS Direct Routing traffic."""


def _register() -> None:
    for module_name, attr in COMMANDS:
        try:
            module = importlib.import_module(f"dr_inspect.cli.{module_name}")
        except ModuleNotFoundError as exc:
            # A command whose module is not written yet is simply absent from the CLI.
            if exc.name == f"dr_inspect.cli.{module_name}":
                continue
            raise
        main.add_command(getattr(module, attr))


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
