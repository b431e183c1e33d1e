"""`dr-inspect decode FILE...`: print or write the packets table of capture files."""

from __future__ import annotations

import sys

import click

from dr_inspect.decode.output import FORMATS, TERMINAL_ROWS, decode_paths, render_text, stats_line
from dr_inspect.decode.output import write_bytes, write_parquet
from dr_inspect.errors import InputError


@click.command("decode")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of stdout (required for parquet).")
@click.option("--all-columns", is_flag=True, help="Also show interface, linktype, caplen, ...")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help=f"At most N rows (0 = all). A table on a terminal shows {TERMINAL_ROWS} "
                   "by default; csv/json/parquet are complete unless limited.")
def decode(files: tuple[str, ...], fmt: str, output: str | None, all_columns: bool,
           limit: int | None) -> None:
    """Decode pcap/pcapng files (gzip too) into one row per frame."""
    if fmt == "parquet" and output is None:
        raise InputError("--format parquet needs --output PATH")
    run = decode_paths(list(files))
    for stats in run.stats:
        click.echo(stats_line(stats), err=True)
    for err in run.errors:
        click.echo(f"dr-inspect: error: {err}", err=True)
    if limit is None and fmt == "table" and output is None and sys.stdout.isatty():
        limit = TERMINAL_ROWS
    if fmt == "parquet":
        assert output is not None
        write_parquet(run.packets, output, all_columns=all_columns, limit=limit)
    else:
        text = render_text(run.packets, fmt, all_columns=all_columns, limit=limit)
        if output is None:
            click.echo(text, nl=False)
        else:
            write_bytes(output, text.encode("utf-8"))
    if run.errors:
        sys.exit(2)
