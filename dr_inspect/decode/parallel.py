"""Decode the files of a capture set on two cores: this process and one forked helper process.

Decoding is thousands of small numpy steps that hold the GIL (walking the record chain, field
batches), so two threads take about as long as one. A forked child has its own interpreter:
it decodes its share while this process decodes the rest, then sends its results through a pipe
(pickle protocol 5, the arrays out of band: one copy, into arrays of this process).

The share is balanced by the estimated number of frames. When one plain classic pcap file holds
more than the child's share, the child decodes its tail: from a guessed record start `g` to the
end, while this process decodes [0, g). The record chain of the head must end exactly at g
(checked), so the frames are those of one sequential decode; otherwise this process goes on from
where the chain really ended and the child's tail is dropped. The result is always that of
decode_file: same table, stats, errors (the one thing that depends on how frames are batched,
the order of several undecodable reasons, is checked too; then the file is decoded again here).
"""

from __future__ import annotations

import copy
import copyreg
from concurrent.futures import ThreadPoolExecutor
import io
import mmap
import multiprocessing
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import Any

import numpy as np

from dr_inspect.decode import native, source
from dr_inspect.decode.api import Span, decode_file, decode_span, finish_decode
from dr_inspect.decode.containers import ContainerParser, detect_format
from dr_inspect.decode.stats import DecodedCapture
from dr_inspect.errors import CaptureError

# Below this many bytes in all, the fork and the transfer cost more than the second core saves
# (bench/bench_decode.py shows where).
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
# Part of the estimated frames the child decodes: the two processes then finish their decoding
# at about the same time (bench/bench_verify.py); this one merges and builds the split file's
# table after.
CHILD_SHARE = 0.47
SAMPLE_BYTES = 1 << 20       # the head of a plain pcap file walked to estimate its frame count
MIN_SPLIT_FRAMES = 50_000    # a smaller tail is not worth splitting a file for
ASSUMED_FRAME_BYTES = 300    # frame estimate of files not sampled (pcapng, gzip: x4)

Result = DecodedCapture | CaptureError


@dataclass
class _Job:
    path: Path
    label: str
    frames: float                  # estimated
    where: str = "here"            # "here" | "child" (whole file) | "split" (child: the tail)
    split_at: int = 0              # split: the guessed record start where the child begins
    parser: ContainerParser | None = None   # split: state after the file header


def decode_files(jobs: list[tuple[Path, str]], workers: int = 2) -> Iterator[Result]:
    """decode_file(path, point=label) of each job, or the CaptureError it raised, in job order.

    With workers >= 2 (and fork available, and enough bytes) a forked child decodes part of the
    work meanwhile. Results are produced lazily: this process decodes a job when its result is
    asked for. Closing the iterator early stops the child."""
    if native.enabled():
        yield from _decode_in_threads(jobs, workers)
        return
    plan = _plan(jobs) if workers >= 2 and hasattr(os, "fork") else []
    if not any(j.where != "here" for j in plan):
        for path, label in jobs:
            yield _decode_here(path, label)
        return
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=True)    # a socket pair: can pass descriptors
    child = ctx.Process(target=_child_main, args=(sender, [j for j in plan if j.where != "here"]),
                        daemon=True)
    child.start()
    sender.close()
    alive = True

    def receive(copy: bool = True) -> Any:
        nonlocal alive
        if alive:
            try:
                (kind, value), added = _recv(receiver, copy)
                if kind == "ok":
                    if isinstance(value, Span):
                        value.fields = [f for batches in added for f in batches]
                    return value
            except (EOFError, OSError):
                alive = False        # the child died (killed?): the rest is decoded here
        return None

    done: dict[int, Result] = {}

    def work_ahead(i: int) -> None:
        # Before waiting for the child, this process decodes its own later files (their results
        # are kept until asked for): the two processes then both work until the end.
        for k in range(i + 1, len(plan)):
            if plan[k].where == "here" and k not in done:
                done[k] = _decode_here(plan[k].path, plan[k].label)

    try:
        for i, job in enumerate(plan):
            if i in done:
                yield done.pop(i)
            elif job.where == "here":
                yield _decode_here(job.path, job.label)
            elif job.where == "child":
                work_ahead(i)
                got = receive()
                yield got if got is not None else _decode_here(job.path, job.label)
            else:
                yield _decode_split(job, receive, lambda: work_ahead(i))
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _decode_in_threads(jobs: list[tuple[Path, str]], workers: int) -> Iterator[Result]:
    """With the compiled kernels, which release the GIL while they walk and decode, threads
    decode files side by side (faster than a forked process: nothing to send back)."""
    if workers < 2 or len(jobs) < 2 or sum(_size(p) for p, _ in jobs) < PARALLEL_MIN_BYTES:
        for path, label in jobs:
            yield _decode_here(path, label)
        return
    pool = ThreadPoolExecutor(workers)
    futures = [pool.submit(_decode_here, path, label) for path, label in jobs]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)


def _decode_here(path: Path, label: str) -> Result:
    try:
        return decode_file(path, point=label)
    except CaptureError as exc:
        return exc


# -- planning ----------------------------------------------------------------------------------

def _plan(jobs: list[tuple[Path, str]]) -> list[_Job]:
    plan = [_estimate(path, label) for path, label in jobs]
    sizes = [_size(j.path) for j in plan]
    if len(plan) == 0 or sum(sizes) < PARALLEL_MIN_BYTES:
        return plan
    total = sum(j.frames for j in plan)
    target = total * CHILD_SHARE
    big = max(range(len(plan)), key=lambda i: plan[i].frames)
    job = plan[big]
    if job.frames > target and job.parser is not None:
        # One file is more than the child's share: the child takes its tail.
        if target < MIN_SPLIT_FRAMES:
            return plan
        size = sizes[big]
        at = 24 + int((size - 24) * (1.0 - target / job.frames))
        loaded = source.load(job.path)
        job.split_at = job.parser.record_start_near(loaded.buf, at)
        job.where = "split"
        return plan
    # Whole files: the largest first, each to whichever side has less so far.
    load = {"here": 0.0, "child": 0.0}
    for i in sorted(range(len(plan)), key=lambda i: -plan[i].frames):
        side = "child" if load["child"] + plan[i].frames <= target or \
            load["child"] < load["here"] else "here"
        plan[i].where = side
        load[side] += plan[i].frames
    return plan


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _estimate(path: Path, label: str) -> _Job:
    """The job with its estimated frame count; a plain classic pcap file is sampled (its head
    walked) and can then be split."""
    size = _size(path)
    job = _Job(path, label, size / ASSUMED_FRAME_BYTES)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return job
    if magic[:2] == source.GZIP_MAGIC:
        job.frames *= 4
        return job
    if detect_format(magic) != "pcap" or size <= SAMPLE_BYTES:
        return job
    try:
        buf = source.load(path).buf
        parser = ContainerParser(str(path))
        idx, consumed = parser.parse(buf[:SAMPLE_BYTES], 0, final=False)
    except Exception:     # a broken head: decoded as a whole, not estimated
        return job
    if len(idx) < 16 or parser.format != "pcap":
        return job
    job.frames = len(idx) * (size - 24) / max(1, consumed - 24)
    job.parser = copy.deepcopy(parser)
    return job


# -- a file split between this process (head) and the child (tail) -----------------------------

def _decode_split(job: _Job, receive: Any, work_ahead: Any) -> Result:
    name = str(job.path)
    try:
        loaded = source.load(job.path)
    except CaptureError as exc:
        work_ahead()
        receive()
        return exc
    parser = ContainerParser(name)
    head = decode_span(loaded, parser, name, 0, job.split_at, final=False)
    work_ahead()
    tail = receive(copy=False)   # always taken: the child's results come in job order
    n = len(loaded.buf)
    if head.error is not None:
        spans = [head]
    elif not head.metas:
        # (never with a sane split point) the tail's read-only arrays would become the table's
        del tail
        return _decode_here(job.path, job.label)
    elif head.end == job.split_at and tail is not None:
        spans = [head, tail]
    else:
        # The guess was not a record start of the chain (or the child failed): go on here.
        del tail
        spans = [head, decode_span(loaded, parser, name, head.end, n, final=True)]
    reasons = {r for s in spans for f in s.fields for r in f.reasons}
    if len(spans) > 1 and len(reasons) > 1:
        # Several undecodable reasons are listed in the order a sequential decode's batches
        # meet them; the split batches differently, so decode the file as one instead.
        del spans
        return _decode_here(job.path, job.label)
    return finish_decode(loaded, parser, name, job.label, spans)


# -- the child process ---------------------------------------------------------------------------

def _child_main(conn: Connection, jobs: list[_Job]) -> None:
    """Decode the child's jobs in order and send each result as it is done."""
    try:
        for job in jobs:
            out = _MemoryFile()
            try:
                if job.where == "child":
                    result: Any = _decode_here(job.path, job.label)
                else:
                    result = _decode_tail(job, out)
                _send(conn, ("ok", result), out)
                del result
            except Exception as exc:        # decoded here instead (the parent's fallback)
                _send(conn, ("failed", repr(exc)), None)
            finally:
                out.close()
    except BaseException:       # ^C or a closed pipe: this process just ends
        pass
    finally:
        conn.close()


def _decode_tail(job: _Job, out: _MemoryFile) -> Span:
    """The tail of a split file. Its field batches go to `out` window by window as they are
    decoded (sent with the Span, not in it): this process never holds more than a window's."""
    name = str(job.path)
    loaded = source.load(job.path)
    assert job.parser is not None
    span = decode_span(loaded, job.parser, name, job.split_at, len(loaded.buf), final=True,
                       sink=out.add)
    loaded.release(len(loaded.buf))
    return span


# -- transfer --------------------------------------------------------------------------------

def _rebuild_capture_error(file: str, offset: int | None, reason: str) -> CaptureError:
    return CaptureError(file, offset, reason)


def _reduce_capture_error(exc: CaptureError) -> tuple[Any, tuple[Any, ...]]:
    # The default exception pickling calls CaptureError(message): rebuilt from its parts instead.
    return _rebuild_capture_error, (exc.file, exc.offset, exc.reason)


class _MemoryFile:
    """Objects' arrays written into a memory file (memfd) as they come, their pickles (protocol
    5, arrays out of band) kept with where each array's bytes are: sent to the parent as one
    descriptor, so the arrays cross with one copy here and none in the pipe."""

    def __init__(self) -> None:
        self.fd = -1
        self.size = 0
        self.added: list[tuple[bytes, list[int], list[int]]] = []

    def put(self, obj: Any) -> tuple[bytes, list[int], list[int]]:
        """obj's pickle, its arrays' sizes and offsets in the file (written now)."""
        buffers: list[pickle.PickleBuffer] = []
        out = io.BytesIO()
        pickler = pickle.Pickler(out, protocol=5, buffer_callback=buffers.append)
        pickler.dispatch_table = copyreg.dispatch_table.copy()
        pickler.dispatch_table[CaptureError] = _reduce_capture_error
        pickler.dump(obj)
        sizes, offsets = [], []
        for b in buffers:
            raw = b.raw()
            sizes.append(raw.nbytes)
            offsets.append(self.size)
            if raw.nbytes:
                if self.fd < 0:
                    self.fd = os.memfd_create("dr-inspect-decode")
                # write(), not a mapping: the file's pages are allocated without a fault each
                view, at = memoryview(raw).cast("B"), self.size
                while len(view):
                    done = os.pwrite(self.fd, view, at)
                    view, at = view[done:], at + done
            self.size += _aligned(raw.nbytes)
        return out.getvalue(), sizes, offsets

    def add(self, obj: Any) -> None:
        """Sent along with the next _send (the parent gets them as a list, in order)."""
        self.added.append(self.put(obj))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _send(conn: Connection, obj: Any, out: _MemoryFile | None) -> None:
    """(obj, [the objects added to out]) to the parent."""
    out = out if out is not None else _MemoryFile()
    main = out.put(obj)
    conn.send((main, out.added, out.size))
    if out.size:
        os.ftruncate(out.fd, out.size)      # the last array's alignment padding too
        send_handle(conn, out.fd, os.getppid())
        conn.recv()       # the parent has mapped it (the descriptor can go)


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def _aligned(n: int) -> int:
    return (n + 63) // 64 * 64


def _recv(conn: Connection, copy: bool) -> tuple[Any, list[Any]]:
    """What _send sent: (obj, the objects added). copy=False: the arrays stay read-only views of
    the shared mapping (which lives as long as they do: for data merged into new arrays at once)."""
    main, added, size = conn.recv()
    whole = np.empty(0, np.uint8)
    mm = None
    if size:
        fd = recv_handle(conn)
        try:
            if copy:
                mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            else:
                # mapped in one go: no fault per page
                mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
            conn.send(None)
        whole = np.frombuffer(mm, np.uint8)

    def load(desc: tuple[bytes, list[int], list[int]]) -> Any:
        meta, sizes, offsets = desc
        parts = [whole[at:at + n] for at, n in zip(offsets, sizes)]
        if copy:
            # the results' own (anonymous) memory, as a decode here would give
            parts = [p.copy() for p in parts]
        return pickle.loads(meta, buffers=parts)

    objs = [load(d) for d in [main] + added]
    del whole
    if copy and mm is not None:
        mm.close()
    return objs[0], objs[1:]
