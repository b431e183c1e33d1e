"""Give freed heap memory back to the system between pipeline stages (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None               # not glibc (or no C library to open by name None)


def return_freed_heap() -> None:
    """Give heap memory freed so far back to the system (glibc's malloc_trim; nothing elsewhere).

    glibc keeps freed blocks below its mmap threshold (which grows to 32 MB as big arrays come
    and go) in the process heap, or in the arena of the thread that freed them. Between stages
    that is mostly the last stage's temporaries: returned, they no longer add to the peak
    resident memory of the stages after."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
