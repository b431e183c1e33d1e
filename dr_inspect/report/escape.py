"""Text from captures and files (point names, file names, errors, evidence) made safe for each
output: one line each (a newline in a point name must not forge a `PASS` line in the text
table), valid XML characters (JUnit), no raw markup (Markdown, HTML).

clean_report() escapes every string of a report once; the renderers then add only their own
format's escaping (XML by ElementTree, HTML entities by html.escape, Markdown cells here).
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import TypeVar

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (which some viewers break
# lines at); the XML-invalid noncharacters and lone surrogates come out escaped too
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

T = TypeVar("T")


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def one_line(text: str) -> str:
    """`text` with every control character (newlines included) shown as an escape."""
    return _UNSAFE.sub(_escape, text)


def clean(value: T) -> T:
    """A copy of a report value (dataclasses, lists, tuples, dicts, strings) with every string
    one_line()d; other values as they are."""
    if isinstance(value, str):
        return one_line(value)  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: clean(getattr(value, f.name)) for f in dataclasses.fields(value)
                   if f.init}
        return dataclasses.replace(value, **changes)  # type: ignore[return-value]
    if isinstance(value, list):
        return [clean(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(clean(v) for v in value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


clean_report = clean


def md_text(text: object) -> str:
    """Markdown prose: one line, no raw HTML (< and entity-like & escaped), no links, images or
    emphasis made by the text itself. What renders the same either way is left as written
    (br_e, ->, code spans: a code span shows its content literally)."""
    out = one_line(str(text))
    out = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", out).replace("<", "&lt;")
    out = re.sub(r"([\[\]*])", r"\\\1", out)
    # an underscore emphasises only at a word boundary
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", out)


def md_cell(text: object) -> str:
    """A Markdown table cell: md_text with backslashes and pipes escaped."""
    return md_text(str(text).replace("\\", "\\\\")).replace("|", "\\|")


def md_code(text: object) -> str:
    """Inline code (a display filter): one line, in a fence longer than any backtick run inside
    (a code span shows its content literally: no markup inside can take effect)."""
    body = one_line(str(text))
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest or body.startswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_block(lines: list[str]) -> list[str]:
    """A fenced code block of these lines, its fence longer than any backtick run inside."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *(one_line(line) for line in lines), fence]
