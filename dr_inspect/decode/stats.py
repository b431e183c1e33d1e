"""Decode results: the packets table plus what the decoder read, skipped and failed on."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dr_inspect.errors import CaptureError


@dataclass
class InterfaceInfo:
    id: int                  # 0 for classic pcap; pcapng interface id (global over sections)
    name: str                # pcapng if_name, "" when absent
    linktype: int            # LINKTYPE_* value
    ts_resolution_ns: int    # timestamp unit in ns (1000 = usec, 1 = nsec), rounded, >= 1
    snaplen: int


@dataclass
class DecodeStats:
    file: str
    format: str = ""                     # "pcap" | "pcapng"
    gzip: bool = False
    frames_read: int = 0                 # records read from the file
    frames_decoded: int = 0              # frames_read minus the undecodable ones
    undecodable: dict[str, int] = field(default_factory=dict)   # reason -> frame count
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    snaplen: int = 0                     # largest snaplen of the interfaces
    error: CaptureError | None = None    # set when the file broke mid-way

    def add_undecodable(self, reasons: dict[str, int]) -> None:
        for reason, count in reasons.items():
            self.undecodable[reason] = self.undecodable.get(reason, 0) + count


@dataclass
class DecodedCapture:
    packets: pd.DataFrame
    stats: DecodeStats
