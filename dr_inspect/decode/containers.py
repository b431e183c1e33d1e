"""Capture containers (classic pcap, pcapng): the format by its magic, then its reader.

`ContainerParser` is incremental: it is given a buffer holding the not-yet-consumed bytes of the
capture and says which frames it found and how many bytes it consumed, so the same code serves
whole files (one call with final=True), bounded-memory windows and live streams fed in chunks.
Frame metadata comes out as arrays (FrameIndex, frames.py); packet bytes are decoded later by
layers.py. The formats' readers: pcap.py, pcapng.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dr_inspect.decode.frames import ContainerError, FrameIndex, concat_index
from dr_inspect.decode.pcap import PCAP_MAGICS, PcapReader
from dr_inspect.decode.pcapng import PCAPNG_MAGIC, PcapngReader
from dr_inspect.decode.stats import InterfaceInfo


def detect_format(head: bytes) -> str | None:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    return None


@dataclass
class ContainerParser:
    """Incremental container parser. Feed buffers of unconsumed bytes; keep the state between."""

    file: str
    format: str | None = None
    pcap: PcapReader | None = None        # classic pcap: what its file header says
    pcapng: PcapngReader | None = None    # pcapng: the walk's state (sections, interfaces)

    @property
    def interfaces(self) -> list[InterfaceInfo]:
        reader = self.pcap or self.pcapng
        return reader.interfaces if reader is not None else []

    def parse(self, buf: np.ndarray, base: int, final: bool) -> tuple[FrameIndex, int]:
        """Frames completely inside buf, and the number of bytes consumed. base = absolute file
        offset of buf[0] (for messages). Raises ContainerError at the first unreadable byte; frames
        found before it are attached as .index and .consumed."""
        parts: list[FrameIndex] = []
        pos = 0
        try:
            if self.format is None:
                got = self._file_header(buf, base, final)
                if got == 0:
                    return FrameIndex.empty(), 0
                pos = got
            if self.pcap is not None:
                pos = self.pcap.records(buf, pos, base, final, parts)
            else:
                assert self.pcapng is not None
                pos = self.pcapng.blocks(buf, pos, base, final, parts)
        except ContainerError as exc:
            exc.index = concat_index(parts)  # type: ignore[attr-defined]
            raise
        return concat_index(parts), pos

    def record_start_near(self, buf: np.ndarray, at: int) -> int:
        """A likely start of a record at or after byte `at` of a classic pcap file (the file
        header parsed); `at` itself when none is found. A guess: whoever uses it must check
        that the record chain really reaches it."""
        if self.pcap is None or not 0 <= at < len(buf):
            return at
        return self.pcap.record_start_near(buf, at)

    def _file_header(self, buf: np.ndarray, base: int, final: bool) -> int:
        n = len(buf)
        if n < 4:
            if final:
                raise ContainerError(base, "empty file" if n == 0 and base == 0 else
                                     f"truncated file header ({n} bytes)")
            return 0
        head = bytes(buf[:4])
        fmt = detect_format(head)
        if fmt is None:
            raise ContainerError(base, f"not a pcap or pcapng file (magic {head.hex()})")
        if fmt == "pcap":
            self.pcap, got = PcapReader.from_header(buf, base, final)
        else:
            reader = PcapngReader()
            got = reader.shb(buf, 0, base, final)
            if got:
                self.pcapng = reader
        if got:
            self.format = fmt
        return got
