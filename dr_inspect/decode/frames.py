"""Per-frame metadata of a capture container (FrameIndex) and the container readers' error.

The container readers (pcap.py, pcapng.py, driven by containers.py) produce frame indexes; the
frames' bytes are decoded later by layers.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# No real frame is bigger than this; a larger length is a corrupt header, not an allocation request.
MAX_RECORD = 16 * 1024 * 1024
HEAD_BYTES = 96      # leading frame bytes decoded by layers.py (see K_FRAME in frame_batch.py)


class ContainerError(Exception):
    """Raised inside the parser; the caller turns it into CaptureError with the absolute offset."""

    def __init__(self, offset: int, reason: str):
        self.offset = offset
        self.reason = reason
        super().__init__(reason)


@dataclass
class FrameIndex:
    """Per-frame metadata, one entry per frame, in file order."""

    data_pos: np.ndarray   # int64 offset of the frame's first byte in the buffer given to parse()
    caplen: np.ndarray     # int64
    wirelen: np.ndarray    # int64
    ts_ns: np.ndarray      # int64
    interface: np.ndarray  # int32
    linktype: np.ndarray   # int32
    bad_interface: np.ndarray | None = None  # bool: pcapng interface id not defined
    # Optional (n, HEAD_BYTES) uint8: each frame's leading bytes, gathered together with the record
    # header (one gather instead of two). Bytes past caplen are not the frame's.
    head: np.ndarray | None = None

    @staticmethod
    def empty() -> "FrameIndex":
        z = np.empty(0, np.int64)
        return FrameIndex(z, z, z, z, np.empty(0, np.int32), np.empty(0, np.int32))

    def __len__(self) -> int:
        return len(self.caplen)


def concat_index(parts: list[FrameIndex]) -> FrameIndex:
    parts = [p for p in parts if len(p)]
    if not parts:
        return FrameIndex.empty()
    if len(parts) == 1:
        return parts[0]
    bad = [p.bad_interface if p.bad_interface is not None else np.zeros(len(p), bool)
           for p in parts]
    return FrameIndex(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("data_pos", "caplen", "wirelen", "ts_ns", "interface", "linktype")),
                      bad_interface=np.concatenate(bad))

