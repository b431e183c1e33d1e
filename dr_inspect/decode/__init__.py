"""Fast capture decoder: pcap / pcapng (optionally gzip) -> packets table (see schema.py).

    decode_file(path, point=None) -> DecodedCapture(packets, stats)
    iter_decode(path, chunk_frames=1_000_000) -> Iterator[DecodedCapture]   # bounded memory
    StreamDecoder(name).feed(data) -> DataFrame                            # live capture
    concat_packets(tables) -> DataFrame          # join pieces/points, address columns stay categorical
"""

from __future__ import annotations

from dr_inspect.decode.api import StreamDecoder, decode_file, iter_decode
from dr_inspect.decode.stats import DecodedCapture, DecodeStats, InterfaceInfo
from dr_inspect.decode.table import concat_packets

__all__ = ["decode_file", "iter_decode", "StreamDecoder", "DecodedCapture", "DecodeStats",
           "InterfaceInfo", "concat_packets"]
