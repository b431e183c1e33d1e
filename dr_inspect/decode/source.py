"""Read a capture file's bytes: memory-mapped when plain, decompressed when gzip (by magic)."""

from __future__ import annotations

import io
import mmap
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
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


# A gzip capture may expand this many times, plus GZIP_SLACK bytes: real captures compress a
# few times (10x at most for repetitive traffic); a file that expands far more is a
# decompression bomb (1 MB of zeros becomes 1 GB), refused before it fills memory or disk.
GZIP_MAX_RATIO = 64
GZIP_SLACK = 64 * 1024 * 1024
INFLATE_CHUNK = 4 * 1024 * 1024     # decompressed bytes produced per step
STDIN_NAMES = ("-", "/dev/stdin")


def is_stdin(path: str | os.PathLike[str]) -> bool:
    """`-` (and /dev/stdin) names standard input."""
    return os.fspath(path) in STDIN_NAMES


def is_stream(path: str | os.PathLike[str]) -> bool:
    """Standard input that is not a regular file (a pipe): read once, in order, as it comes."""
    if not is_stdin(path):
        return False
    try:
        return not stat.S_ISREG(os.fstat(0).st_mode)
    except OSError:
        return False


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    """The capture file opened for reading. Only regular files (and standard input, `-`): a
    FIFO or a device such as /dev/zero would block or never end."""
    if is_stdin(path):
        try:
            return os.fdopen(os.dup(0), "rb")
        except OSError as exc:
            raise CaptureError("<stdin>", None, f"cannot read standard input: {exc.strerror}") from None
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise CaptureError(str(path), None, "is a directory, not a capture file") from None
    except FileNotFoundError:
        raise CaptureError(str(path), None, "no such file") from None
    except OSError as exc:
        raise CaptureError(str(path), None, f"cannot open: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise CaptureError(str(path), None, f"is {what}, not a capture file (only regular files, "
                           "or - for standard input)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _head(fh: BinaryIO, n: int = 2) -> bytes:
    """The first n bytes (fewer only at end of input), read, not peeked: a pipe cannot seek."""
    out = b""
    while len(out) < n:
        got = fh.read(n - len(out))
        if not got:
            break
        out += got
    return out


def open_blocks(path: str | os.PathLike[str]) -> tuple[bool, Iterator[tuple[bytes, CaptureError | None]]]:
    """(gzip?, blocks of the capture's bytes in order, decompressed when gzip) of a file or of
    standard input, read in bounded blocks. A corrupt gzip stream ends with (b"", error)."""
    fh = _open(path)
    head = _head(fh)
    name = "<stdin>" if is_stdin(path) else str(path)
    gz = head == GZIP_MAGIC

    def blocks() -> Iterator[tuple[bytes, CaptureError | None]]:
        with fh:
            if gz:
                yield from gunzip_blocks(name, fh, prefix=head)
                return
            first = head + _read_some(fh, READ_BLOCK - len(head))
            if first:
                yield first, None
            for block in plain_blocks(fh):
                yield block, None
    return gz, blocks()


def is_gzip(path: str | os.PathLike[str]) -> bool:
    with _open(path) as fh:
        return fh.read(2) == GZIP_MAGIC


def load(path: str | os.PathLike[str]) -> Loaded:
    """The whole capture as a uint8 array: a plain file memory-mapped (no copy, no heap); a gzip
    file decompressed into an unnamed temporary file, memory-mapped too (resident memory stays
    bounded: the pages are file-backed)."""
    with _open(path) as fh:
        if fh.read(2) == GZIP_MAGIC:
            fh.seek(0)
            return _gunzip_to_mapping(str(path), fh)
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return Loaded(np.zeros(0, np.uint8), False)
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return Loaded(np.frombuffer(mm, dtype=np.uint8), False, mapping=mm)


def _gunzip_to_mapping(name: str, fh: BinaryIO) -> Loaded:
    err = None
    with tempfile.TemporaryFile(prefix="dr-inspect-gunzip-") as spool:
        try:
            for block, error in gunzip_blocks(name, fh):
                spool.write(block)
                err = error or err
            spool.flush()
        except OSError as exc:
            raise CaptureError(name, None, f"cannot decompress into {tempfile.gettempdir()}: "
                               f"{exc.strerror} (set TMPDIR to a roomier folder)") from None
        size = spool.tell()
        if size == 0:
            return Loaded(np.zeros(0, np.uint8), True, err)
        mm = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)
    return Loaded(np.frombuffer(mm, dtype=np.uint8), True, err, mapping=mm)


def _gzip_limit(fh: BinaryIO) -> int | None:
    """Decompressed bytes allowed for this compressed input (None: unknown size, a pipe)."""
    try:
        st = os.fstat(fh.fileno())
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return GZIP_MAX_RATIO * st.st_size + GZIP_SLACK


def gunzip_blocks(name: str, fh: BinaryIO, prefix: bytes = b""
                  ) -> Iterator[tuple[bytes, CaptureError | None]]:
    """Decompressed blocks (at most INFLATE_CHUNK bytes each) of a (possibly multi-member) gzip
    file; prefix: its first bytes, already read from fh. A corrupt or truncated stream ends with
    (b"", error naming the compressed offset); one that expands more than GZIP_MAX_RATIO times
    the file (a pipe: what was read so far), plus GZIP_SLACK, raises CaptureError."""
    limit = _gzip_limit(fh)
    dec = zlib.decompressobj(wbits=31)
    offset = 0           # compressed bytes consumed
    read = 0             # compressed bytes read
    produced = 0
    started = False
    pending = prefix
    while True:
        raw = pending + _read_some(fh)
        pending = b""
        if not raw:
            break
        read += len(raw)
        while raw:
            try:
                out = dec.decompress(raw, INFLATE_CHUNK)
            except zlib.error as exc:
                yield b"", CaptureError(name, offset, f"corrupt gzip stream: {exc}")
                return
            started = True
            consumed = len(raw) - len(dec.unconsumed_tail)
            raw = dec.unconsumed_tail
            produced += len(out)
            cap = limit if limit is not None else GZIP_MAX_RATIO * read + GZIP_SLACK
            if produced > cap:
                # not a capture: nothing of it is decoded
                raise CaptureError(name, offset, f"gzip data expands more than {GZIP_MAX_RATIO} "
                                   f"times ({produced >> 20} MiB from {read >> 10} KiB so far): "
                                   "not a capture (a decompression bomb?); decompress it "
                                   "yourself if it really is one")
            if out:
                yield out, None
            if dec.eof:
                used = consumed - len(dec.unused_data)
                offset += used
                raw = dec.unused_data
                if raw.strip(b"\x00") == b"":
                    raw = b""
                    break
                dec = zlib.decompressobj(wbits=31)
                started = False
            else:
                offset += consumed
    tail = dec.flush()
    if tail:
        yield tail, None
    if started and not dec.eof:
        yield b"", CaptureError(name, offset, "truncated gzip stream (no end-of-stream marker)")


def plain_blocks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        raw = _read_some(fh)
        if not raw:
            return
        yield raw


def _read_some(fh: BinaryIO, n: int = READ_BLOCK) -> bytes:
    """Up to n bytes: a full block of a regular file, what a pipe has now (not waiting for a
    whole block: a live `tcpdump -w -` is decoded as it comes)."""
    if fh.seekable() or not hasattr(fh, "read1"):
        return fh.read(n)
    return fh.read1(n)
