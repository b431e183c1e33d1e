"""Read a capture file's bytes: memory-mapped when plain, decompressed when gzip (by magic)."""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dr_inspect.errors import CaptureError

GZIP_MAGIC = b"\x1f\x8b"
READ_BLOCK = 16 * 1024 * 1024


@dataclass
class Loaded:
    buf: np.ndarray               # uint8 view of the (decompressed) capture bytes
    gzip: bool
    gzip_error: CaptureError | None = None
    mapping: mmap.mmap | None = None   # the file mapping (plain files), to release pages early

    def release(self, upto: int) -> None:
        """Drop the mapped pages before byte `upto` from this process (they stay in the page
        cache): decoding a large file then never holds the whole file in resident memory."""
        if self.mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        end = upto - upto % mmap.PAGESIZE
        if end > 0:
            try:
                self.mapping.madvise(mmap.MADV_DONTNEED, 0, end)
            except (OSError, ValueError):
                pass


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    p = Path(path)
    try:
        return open(p, "rb")
    except IsADirectoryError:
        raise CaptureError(str(path), None, "is a directory, not a capture file") from None
    except FileNotFoundError:
        raise CaptureError(str(path), None, "no such file") from None
    except OSError as exc:
        raise CaptureError(str(path), None, f"cannot open: {exc.strerror}") from None


def is_gzip(path: str | os.PathLike[str]) -> bool:
    with _open(path) as fh:
        return fh.read(2) == GZIP_MAGIC


def load(path: str | os.PathLike[str]) -> Loaded:
    """The whole capture as a uint8 array (mmap for plain files: no copy, no heap)."""
    with _open(path) as fh:
        if fh.read(2) == GZIP_MAGIC:
            fh.seek(0)
            parts: list[bytes] = []
            err = None
            for block, error in gunzip_blocks(str(path), fh):
                parts.append(block)
                err = error or err
            data = b"".join(parts)
            return Loaded(np.frombuffer(data, dtype=np.uint8), True, err)
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return Loaded(np.zeros(0, np.uint8), False)
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return Loaded(np.frombuffer(mm, dtype=np.uint8), False, mapping=mm)


def gunzip_blocks(name: str, fh: BinaryIO) -> Iterator[tuple[bytes, CaptureError | None]]:
    """Decompressed blocks of a (possibly multi-member) gzip file. A corrupt or truncated stream
    ends with (b"", error naming the compressed offset)."""
    dec = zlib.decompressobj(wbits=31)
    offset = 0
    started = False
    while True:
        raw = fh.read(READ_BLOCK)
        if not raw:
            break
        while raw:
            try:
                out = dec.decompress(raw)
            except zlib.error as exc:
                yield b"", CaptureError(name, offset, f"corrupt gzip stream: {exc}")
                return
            started = True
            if out:
                yield out, None
            if dec.eof:
                used = len(raw) - len(dec.unused_data)
                offset += used
                raw = dec.unused_data
                if raw.strip(b"\x00") == b"":
                    raw = b""
                    break
                dec = zlib.decompressobj(wbits=31)
                started = False
            else:
                offset += len(raw)
                raw = b""
    tail = dec.flush()
    if tail:
        yield tail, None
    if started and not dec.eof:
        yield b"", CaptureError(name, offset, "truncated gzip stream (no end-of-stream marker)")


def plain_blocks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        raw = fh.read(READ_BLOCK)
        if not raw:
            return
        yield raw
