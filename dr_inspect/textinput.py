"""Reading the small text inputs users give (manifests, rule files, topology files, snapshots,
expected.toml): regular files only, size-capped, UTF-8, not nested beyond reason.

A FIFO or /dev/zero given as a rule file would otherwise read forever or until the OOM killer;
a deeply nested TOML or JSON document would raise RecursionError (a traceback) in the parser.
Every problem is the caller's error class with one line naming the file.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Callable

from dr_inspect.errors import DrInspectError, InputError

# No manifest, rule file, topology file or host snapshot comes near this.
MAX_TEXT_BYTES = 8 * 1024 * 1024
# Nesting deeper than this is no document any of them describes.
MAX_DEPTH = 32


def open_regular(path: str | os.PathLike[str], what: str,
                 error: type[DrInspectError] = InputError) -> int:
    """A read-only descriptor of `path`, refused unless it is a regular file (a FIFO, a device or
    a socket would block or never end). Opened non-blocking so a FIFO cannot hang the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: cannot read the {what}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot open the {what}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise error(f"{path}: is {kind}, not a {what} (only regular files are read)")
    os.set_blocking(fd, True)
    return fd


def read_text(path: str | os.PathLike[str], what: str, *,
              error: type[DrInspectError] = InputError, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes."""
    fd = open_regular(path, what, error)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: larger than {limit // (1024 * 1024)} MiB; not a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); not a {what}") from None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when lists/dicts nest deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def _parse(load: Callable[[str], Any], syntax_error: type[Exception], text: str, where: str,
           error: type[DrInspectError], problem: str, nest: str) -> Any:
    """load(text) with its syntax errors, a recursion on absurd nesting and nesting deeper than
    MAX_DEPTH as one-line `error`s starting with `where: problem`."""
    try:
        data = load(text)
    except syntax_error as exc:
        raise error(f"{where}: {problem}: {exc}") from None
    except (RecursionError, MemoryError):
        raise error(f"{where}: {problem}: nested too deeply") from None
    if too_deep(data):
        raise error(f"{where}: {nest} nested more than {MAX_DEPTH} deep")
    return data


def parse_toml(text: str, where: str, error: type[DrInspectError] = InputError) -> dict[str, Any]:
    return _parse(tomllib.loads, tomllib.TOMLDecodeError, text, where, error, "invalid TOML",
                  "tables or arrays")


def parse_json(text: str, where: str, error: type[DrInspectError] = InputError,
               what: str = "document") -> Any:
    return _parse(json.loads, json.JSONDecodeError, text, where, error, f"not a JSON {what}",
                  "objects or arrays")


def read_toml(path: Path | str, what: str, error: type[DrInspectError] = InputError
              ) -> dict[str, Any]:
    return parse_toml(read_text(path, what, error=error), str(path), error)
