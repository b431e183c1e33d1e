"""Public entry points: decode a whole file, a file in bounded-memory chunks, or a live stream."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from dr_inspect.decode import native, source, walk
from dr_inspect.decode.containers import ContainerParser, detect_format
from dr_inspect.decode.batches import (decode_field_batches, decode_fields, kernel_fields,
                                       merge_fields)
from dr_inspect.decode.fields import Fields
from dr_inspect.decode.frames import ContainerError, FrameIndex, concat_index
from dr_inspect.decode.stats import DecodedCapture, DecodeStats
from dr_inspect.decode.table import build_table, concat_packets
from dr_inspect.errors import CaptureError


def _decode_batch(buf: np.ndarray, idx: FrameIndex, name: str, first_frame: int,
                  stats: DecodeStats) -> pd.DataFrame:
    fields = decode_fields(buf, idx)
    stats.frames_read += len(idx)
    stats.add_undecodable(dict(fields.reasons))
    stats.frames_decoded = stats.frames_read - sum(stats.undecodable.values())
    return build_table(fields, idx, name, first_frame)


def _finish_stats(stats: DecodeStats, parser: ContainerParser) -> None:
    stats.format = parser.format or ""
    stats.interfaces = list(parser.interfaces)
    stats.snaplen = max((i.snaplen for i in parser.interfaces), default=0)


WINDOW = 64 * 1024 * 1024   # bytes of a plain file walked and decoded at a time
STREAM_PIECE_FRAMES = 1 << 40   # decode_file of a pipe: pieces as they come, joined at the end


@dataclass
class Span:
    """What decoding the records of one byte range of a capture gave (see decode_span)."""

    fields: list[Fields]          # per batch of frames, in file order
    metas: list[FrameIndex]       # per window, without data_pos and head
    end: int                      # where the record chain stopped (not meaningful when broken)
    error: CaptureError | None    # the break that stopped the decode, if any


def decode_span(loaded: source.Loaded, parser: ContainerParser, name: str, start: int,
                stop: int, final: bool, sink: Callable[[list[Fields]], None] | None = None
                ) -> Span:
    """Decode the records that start in [start, stop) of loaded.buf, continuing the chain at
    `start` (a record start, or 0 before the file header) with `parser`'s state.

    final: stop is the end of the capture (a record cut there is an error); otherwise the chain
    ends at the start of the first record not complete before stop (Span.end == stop when the
    last record ends exactly there). sink: given each window's field batches as they are
    decoded (then not kept in Span.fields). Raises CaptureError when the file header is
    unreadable."""
    if sink is None and native.enabled() and _classic_pcap(loaded, parser):
        return _decode_pcap_span(loaded, parser, name, start, stop, final)
    buf = loaded.buf
    fields: list[Fields] = []
    metas: list[FrameIndex] = []
    # With the compiled field kernel, the windows' frames are decoded together after the walk:
    # one set of columns, nothing to merge (the frame bytes are read where they are).
    whole = sink is None and native.enabled()
    pos = start
    window = WINDOW
    error: CaptureError | None = None
    while True:
        # The file is walked window by window (the container parser is incremental), so the
        # per-frame scratch data and the resident mapped pages stay bounded.
        end = min(stop, pos + window)
        last = end == stop
        view = buf[pos:end]
        try:
            idx, consumed = parser.parse(view, pos, final=final and last)
        except ContainerError as exc:
            idx = exc.index  # type: ignore[attr-defined]
            consumed = 0
            error = _capture_error(loaded, name, exc)
            if parser.format is None:
                raise error from None
        if len(idx) and whole:
            idx.data_pos = idx.data_pos + pos
            idx.head = None
            metas.append(idx)
        elif len(idx):
            batches = decode_field_batches(view, idx)
            if sink is not None:
                sink(batches)
            else:
                fields.extend(batches)
            del batches
            idx.head = None
            idx.data_pos = idx.data_pos[:0]
            metas.append(idx)
        if error is not None or last:
            pos += consumed
            break
        if consumed == 0:
            window *= 2          # a record larger than the window
            continue
        pos += consumed
        window = WINDOW
        loaded.release(pos)
    del view
    if whole and metas:
        idx = concat_index(metas)
        fields = decode_field_batches(buf, idx, release=loaded.release)
        idx.data_pos = idx.data_pos[:0]
        metas = [idx]
    return Span(fields, metas, pos, error)


def _capture_error(loaded: source.Loaded, name: str, exc: ContainerError) -> CaptureError:
    if loaded.gzip_error is not None and exc.offset >= len(loaded.buf) - 65536:
        # The container broke at the end because the gzip stream did: report the cause.
        return loaded.gzip_error
    return CaptureError(name, exc.offset, exc.reason + (" (offset in the decompressed data)"
                                                        if loaded.gzip else ""))


def _classic_pcap(loaded: source.Loaded, parser: ContainerParser) -> bool:
    if parser.format is not None:
        return parser.format == "pcap"
    return detect_format(bytes(loaded.buf[:4])) == "pcap"


def _decode_pcap_span(loaded: source.Loaded, parser: ContainerParser, name: str, start: int,
                      stop: int, final: bool) -> Span:
    """decode_span of a classic pcap file with the compiled kernel: records walked and decoded
    in one pass, window by window (the mapped pages of each window are dropped after it), into
    one set of columns for the whole span."""
    buf = loaded.buf[:stop]          # records must end by stop
    pos = start
    if parser.format is None:
        try:
            _, pos = parser.parse(buf[:24], 0, final=final and stop <= 24)   # the file header
        except ContainerError as exc:
            raise _capture_error(loaded, name, exc) from None
        if pos == 0:
            return Span([], [], 0, None)
    pcap = parser.pcap
    assert pcap is not None
    # Room for every record a typical capture could hold (none smaller than 64 bytes with its
    # header); a file of smaller records gets more room as it goes (PcapRecords).
    records = native.PcapRecords((stop - pos) // 64 + min(stop - pos, WINDOW) // pcap.hdrlen + 1)
    error: CaptureError | None = None
    while True:
        limit = min(stop, pos + WINDOW)
        end, status = records.walk(buf, pos, limit, pcap.hdrlen, pcap.little,
                                   pcap.max_caplen, pcap.frac_ns, pcap.linktype)
        if status != walk.OK:
            try:
                pos = pcap.records_end(buf, walk.WalkResult(buf[:0], end, status), 0, final)
            except ContainerError as exc:
                error = _capture_error(loaded, name, exc)
                pos = end
            break
        pos = end
        if pos >= stop:
            break
        loaded.release(pos)
    (data_pos, caplen, wirelen, ts_ns), cols, slow, ip6 = records.columns()
    del records
    idx = FrameIndex(data_pos, caplen, wirelen, ts_ns, np.zeros(len(caplen), np.int32),
                     np.full(len(caplen), pcap.linktype, np.int32))
    fields = kernel_fields(loaded.buf, idx, cols, slow, ip6)
    idx.data_pos = idx.data_pos[:0]
    return Span([fields] if len(idx) else [], [idx] if len(idx) else [], pos, error)


def finish_decode(loaded: source.Loaded, parser: ContainerParser, name: str, label: str,
                  spans: list[Span]) -> DecodedCapture:
    """The packets table and stats of a whole file from the spans that cover its record chain."""
    stats = DecodeStats(file=name, gzip=loaded.gzip)
    stats.error = next((s.error for s in spans if s.error is not None), None)
    if stats.error is None:
        stats.error = loaded.gzip_error
    loaded.release(len(loaded.buf))
    index = _concat_meta([m for s in spans for m in s.metas])
    fields = [f for s in spans for f in s.fields]
    for s in spans:
        s.fields, s.metas = [], []
    merged = merge_fields(fields) if fields else decode_fields(loaded.buf[:0], index)
    del fields
    stats.frames_read = len(index)
    stats.add_undecodable(dict(merged.reasons))
    stats.frames_decoded = stats.frames_read - sum(stats.undecodable.values())
    table = build_table(merged, index, label, 1)
    _finish_stats(stats, parser)
    return DecodedCapture(table, stats)


def decode_file(path: str | os.PathLike[str], *, point: str | None = None) -> DecodedCapture:
    """Decode a whole capture file (pcap, pcapng, either gzip-compressed) into the packets table.

    Raises CaptureError when the file cannot be read from the start; a file broken mid-way gives
    the frames before the break and stats.error."""
    if source.is_stream(path):
        # standard input from a pipe (`tcpdump -w - | dr-inspect verify -`): decoded as it
        # arrives, never held whole
        pieces = list(iter_decode(path, chunk_frames=STREAM_PIECE_FRAMES, point=point))
        return DecodedCapture(concat_packets([p.packets for p in pieces]), pieces[-1].stats)
    name = "<stdin>" if source.is_stdin(path) else str(path)
    label = point if point is not None else ("stdin" if source.is_stdin(path) else Path(path).name)
    loaded = source.load(path)
    parser = ContainerParser(name)
    span = decode_span(loaded, parser, name, 0, len(loaded.buf), final=True)
    return finish_decode(loaded, parser, name, label, [span])


def _concat_meta(parts: list[FrameIndex]) -> FrameIndex:
    if not parts:
        return FrameIndex.empty()
    if len(parts) == 1:
        return parts[0]
    cat = np.concatenate
    return FrameIndex(np.empty(0, np.int64), *(cat([getattr(p, f) for p in parts]) for f in
                      ("caplen", "wirelen", "ts_ns", "interface", "linktype")))


class StreamDecoder:
    """Decode a capture arriving in arbitrary chunks (e.g. `tcpdump -w -` output).

    feed() returns the rows of the frames completed so far (frame numbers continue across feeds);
    finish() reports a truncated last record. After a broken record, stats.error is set and later
    data is ignored. An unreadable file header raises CaptureError."""

    def __init__(self, name: str, *, label: str | None = None):
        self.name = name
        self.label = label if label is not None else name
        self.stats = DecodeStats(file=name)
        self._parser = ContainerParser(name)
        self._pending = b""
        self._base = 0
        self._frames = 0
        self._done = False

    def _run(self, data: bytes, final: bool) -> pd.DataFrame:
        if self._done:
            return self._empty()
        self._pending = self._pending + data if self._pending else bytes(data)
        buf = np.frombuffer(self._pending, dtype=np.uint8)
        try:
            idx, consumed = self._parser.parse(buf, self._base, final)
        except ContainerError as exc:
            err = CaptureError(self.name, exc.offset, exc.reason)
            if self._parser.format is None:
                self._done = True
                raise err from None
            idx = exc.index  # type: ignore[attr-defined]
            consumed = len(self._pending)
            self.stats.error = err
            self._done = True
        table = _decode_batch(buf, idx, self.label, self._frames + 1, self.stats)
        _finish_stats(self.stats, self._parser)
        self._frames += len(idx)
        del buf
        self._pending = self._pending[consumed:]
        self._base += consumed
        return table

    @property
    def header_read(self) -> bool:
        """True once the file header (pcap) or first section header (pcapng) was parsed."""
        return self._parser.format is not None

    def feed(self, data: bytes) -> pd.DataFrame:
        return self._run(data, final=False)

    def finish(self) -> pd.DataFrame:
        """End of stream: decode what is left. Never raises: an incomplete last record, or a
        stream that ended before its file header was complete, sets stats.error."""
        if not self._pending and self._parser.format is not None:
            self._done = True
            return self._empty()
        try:
            table = self._run(b"", final=True)
        except CaptureError as exc:
            self.stats.error = exc
            table = self._empty()
        self._done = True
        return table

    def _empty(self) -> pd.DataFrame:
        return _decode_batch(np.zeros(0, np.uint8), FrameIndex.empty(), self.label,
                             self._frames + 1, DecodeStats(file=self.name))


def iter_decode(path: str | os.PathLike[str], *, chunk_frames: int = 1_000_000,
                point: str | None = None) -> Iterator[DecodedCapture]:
    """Decode a file in pieces of at most chunk_frames rows, reading it in bounded blocks.

    Each piece's stats are cumulative (the last piece's stats cover the whole file). At least one
    piece is yielded."""
    if chunk_frames < 1:
        raise ValueError("chunk_frames must be >= 1")
    stdin = source.is_stdin(path)
    name = "<stdin>" if stdin else str(path)
    dec = StreamDecoder(name, label=point if point is not None else
                        ("stdin" if stdin else Path(path).name))
    gz, blocks = source.open_blocks(path)
    dec.stats.gzip = gz
    gz_error: CaptureError | None = None
    # One piece is held back so the last piece yielded carries the final stats.
    held: pd.DataFrame | None = None

    def pieces(table: pd.DataFrame) -> Iterator[pd.DataFrame]:
        for start in range(0, len(table), chunk_frames):
            yield table.iloc[start:start + chunk_frames].reset_index(drop=True)

    for block, error in blocks:
        if error is not None:
            gz_error = error
            break
        for piece in pieces(dec.feed(block)):
            if held is not None:
                yield DecodedCapture(held, _snapshot(dec.stats))
            held = piece
        if dec.stats.error is not None:
            break
    blocks.close()
    last = dec.finish()
    if gz_error is not None and (dec.stats.error is None or
                                 "truncated" in dec.stats.error.reason):
        dec.stats.error = gz_error
    if not dec.header_read and dec.stats.error is not None:
        raise dec.stats.error     # unreadable from the start, as decode_file
    for piece in pieces(last):
        if held is not None:
            yield DecodedCapture(held, _snapshot(dec.stats))
        held = piece
    yield DecodedCapture(held if held is not None else last, _snapshot(dec.stats))


def _snapshot(stats: DecodeStats) -> DecodeStats:
    return dataclasses.replace(stats, undecodable=dict(stats.undecodable),
                               interfaces=list(stats.interfaces))
