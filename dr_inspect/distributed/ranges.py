"""A big classic pcap file decoded in parallel, by byte range.

The ranges start at guessed record starts (ContainerParser.record_start_near, as decode's
two-process split does); each is decoded on its own, and the file's result is the ranges' joined
only when each range's record chain ended exactly where the next one starts (and no range
stopped at a broken record) and the ranges met at most one kind of undecodable frame (a sequential
decode lists several in the order its batches meet them). Otherwise the file is decoded whole,
as a file of its own (decode_to_shards): the result is always decode_file's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dr_inspect.decode import source
from dr_inspect.decode.api import decode_span, finish_decode
from dr_inspect.decode.containers import ContainerParser, detect_format
from dr_inspect.decode.frames import ContainerError
from dr_inspect.distributed.shards import (DecodedFile, add_interface, learning_extract,
                                          write_pieces)
from dr_inspect.errors import CaptureError

SPLIT_BYTES = 512 << 20        # a plain pcap file over this is decoded in ranges of about it
SAMPLE_BYTES = 1 << 20         # the head walked to learn the record format


@dataclass
class Range:
    start: int
    stop: int
    parser: ContainerParser | None      # the format's state (None: the first range, from 0)


@dataclass
class RangeResult:
    aligned: bool
    decoded: DecodedFile | None = None
    reasons: set[str] = field(default_factory=set)


def plan_ranges(path: Path) -> list[Range] | None:
    """The byte ranges to decode a plain classic pcap file over SPLIT_BYTES in; None for any
    other file (decoded whole)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return None
    if size <= SPLIT_BYTES or detect_format(magic) != "pcap":
        return None
    loaded = source.load(path)
    parser = ContainerParser(str(path))
    try:
        parser.parse(loaded.buf[:SAMPLE_BYTES], 0, final=False)
    except ContainerError:
        return None
    if parser.format != "pcap":
        return None
    n = -(-size // SPLIT_BYTES)
    cuts = sorted({parser.record_start_near(loaded.buf, 24 + (size - 24) * k // n)
                   for k in range(1, n)})
    edges = [0] + [c for c in cuts if 24 < c < size] + [size]
    if len(edges) < 3:
        return None
    return [Range(a, b, copy.deepcopy(parser) if a else None)
            for a, b in zip(edges[:-1], edges[1:])]


def decode_range(path: str, label: str, out_dir: str, file_no: int, part: int, rng: Range
                 ) -> RangeResult:
    """One range decoded into shards (frame numbers from 1 in the range)."""
    name = str(path)
    try:
        loaded = source.load(Path(path))
        parser = rng.parser or ContainerParser(name)
        final = rng.stop == len(loaded.buf)
        span = decode_span(loaded, parser, name, rng.start, rng.stop, final=final)
    except CaptureError:
        return RangeResult(aligned=False)
    if not final and (span.end != rng.stop or span.error is not None):
        return RangeResult(aligned=False)
    reasons = {r for f in span.fields for r in f.reasons}
    decoded = write_pieces(iter([finish_decode(loaded, parser, name, label, [span])]), out_dir,
                           f"f{file_no:05d}r{part:04d}")
    return RangeResult(aligned=decoded.error is None, decoded=decoded, reasons=reasons)


def join_ranges(results: list[RangeResult]) -> DecodedFile | None:
    """The file's DecodedFile from its ranges', None when they cannot stand for a sequential
    decode (see the module doc)."""
    if not all(r.aligned for r in results) or len(set().union(*(r.reasons for r in results))) > 1:
        return None
    parts = [r.decoded for r in results]
    out = DecodedFile(stats=copy.deepcopy(parts[0].stats))
    extracts = []
    offset = 0
    for i, d in enumerate(parts):
        if i:
            out.stats.frames_read += d.stats.frames_read
            out.stats.frames_decoded += d.stats.frames_decoded
            out.stats.add_undecodable(d.stats.undecodable)
        out.stats.error = d.stats.error          # only the last range can have stopped at one
        out.shards += d.shards
        out.shard_offsets += [offset + o for o in d.shard_offsets]
        for iid, info in d.interfaces.items():
            add_interface(out, iid, info)
        if d.extract is not None and len(d.extract):
            ex = d.extract.copy()
            ex["frame"] = ex["frame"].to_numpy(dtype=np.int64) + offset
            extracts.append(ex)
        out.src_macs |= d.src_macs
        offset += d.stats.frames_read
    out.extract = learning_extract(extracts) if extracts else None
    return out


def discard(results: list[RangeResult]) -> None:
    for r in results:
        for shard in (r.decoded.shards if r.decoded else []):
            Path(shard).unlink(missing_ok=True)
