"""Network namespace names given by users (--netns): a name under /run/netns, never a path."""

from __future__ import annotations

import re

from dr_inspect.errors import InputError

# what `ip netns add` accepts in practice, without '/' (a path such as ../../proc/1/ns would
# reach beyond /run/netns) and without a leading '-' (an option to ip)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,254}$")


def check_netns_name(name: str, option: str = "--netns") -> str:
    """`name` when it is a plain namespace name; InputError otherwise."""
    if not _NAME.match(name) or name in (".", ".."):
        raise InputError(f"{option} {name!r}: give a network namespace name as 'ip netns list' "
                         "shows it (letters, digits and . _ - @ + :), not a path")
    return name
