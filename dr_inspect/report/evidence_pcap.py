"""The evidence pcap: `verify --evidence-pcap OUT.pcapng` writes the frames behind each violation,
each with a pcapng comment (opt_comment) naming the rule, so Wireshark shows why a frame is there.

One interface description per capture point (named after it, nanosecond timestamps), the frames
in time order across points. Frames are copied byte for byte from the capture files (gzip too);
a frame that several rules name carries one comment per rule.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dr_inspect.captureset import load_capture_set
from dr_inspect.decode import source
from dr_inspect.decode.containers import ContainerParser
from dr_inspect.decode.frames import ContainerError, FrameIndex
from dr_inspect.errors import InputError
from dr_inspect.model import VerifyReport

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
OPT_END, OPT_COMMENT, IF_NAME, IF_TSRESOL = 0, 1, 2, 9
BYTE_ORDER_MAGIC = 0x1A2B3C4D


@dataclass
class EvidencePcap:
    path: Path
    frames: int = 0                                          # frames written
    rules: list[str] = field(default_factory=list)           # rule ids with frames in it
    missing: list[str] = field(default_factory=list)         # "point #frame: why"


def evidence_comments(report: VerifyReport) -> dict[tuple[str, int], list[str]]:
    """(point, frame number) -> the comments for that frame: one per rule and evidence naming it."""
    comments: dict[tuple[str, int], list[str]] = defaultdict(list)
    for rule in report.rules:
        if rule.status != "fail":
            continue
        for ev in rule.evidence:
            text = f"{rule.id} {rule.name}: {ev.actual} (expected {ev.expected})"
            if ev.cause:
                text += f"; likely cause: {ev.cause}"
            for frame in ev.frames:
                if frame >= 1 and text not in comments[(ev.point, int(frame))]:
                    comments[(ev.point, int(frame))].append(text)
    return dict(comments)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def pcapng_header() -> bytes:
    return _block(SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
                  + _option(OPT_END, b""))


def pcapng_interface(linktype: int, name: str) -> bytes:
    options = _option(IF_NAME, name.encode()) + _option(IF_TSRESOL, b"\x09") + _option(OPT_END, b"")
    return _block(IDB, struct.pack("<HHI", linktype, 0, 0) + options)


def pcapng_packet(interface: int, ts_ns: int, data: bytes, wirelen: int,
                  comments: Sequence[str]) -> bytes:
    options = b"".join(_option(OPT_COMMENT, c.encode()) for c in comments)
    if options:
        options += _option(OPT_END, b"")
    body = struct.pack("<IIIII", interface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data), wirelen)
    return _block(EPB, body + data + b"\0" * (-len(data) % 4) + options)


def _index(path: Path) -> tuple[source.Loaded, FrameIndex]:
    """Every frame's position in the (decompressed) file; what precedes a damaged record."""
    loaded = source.load(path)
    try:
        index, _ = ContainerParser(file=str(path)).parse(loaded.buf, 0, True)
    except ContainerError as exc:
        index = getattr(exc, "index", FrameIndex.empty())
    return loaded, index


def _point_files(paths: Sequence[str | Path]) -> dict[str, list[Path]]:
    """point name -> its files in frame-number order, also under the names verify gives each
    interface of a multi-interface pcapng (file name:interface)."""
    cs = load_capture_set(list(paths))
    return {p.name: list(p.files) for p in cs.points} | {
        f.name: [f] for p in cs.points for f in p.files}


def write_evidence_pcap(report: VerifyReport, paths: Sequence[str | Path],
                        out: str | Path) -> EvidencePcap:
    """Write the frames every failing rule's evidence names (as kept by max_evidence) to `out`."""
    out = Path(out)
    comments = evidence_comments(report)
    files = _point_files(paths)
    result = EvidencePcap(out, rules=sorted({c.split(" ", 1)[0] for cs in comments.values()
                                             for c in cs}))
    by_point: dict[str, list[int]] = defaultdict(list)
    for point, frame in comments:
        by_point[point].append(frame)
    packets: list[tuple[int, int, bytes, int, list[str]]] = []   # ts, interface, data, wirelen
    interfaces: dict[tuple[str, int], int] = {}
    blocks = [pcapng_header()]
    for point, frames in sorted(by_point.items()):
        point_files = files.get(point) or files.get(point.rsplit(":", 1)[0])
        if point_files is None:
            result.missing += [f"{point} #{n}: no capture file of that point" for n in frames]
            continue
        wanted = np.array(sorted(frames), dtype=np.int64)
        first = 1                                  # frame number of the file's first frame
        for path in point_files:
            loaded, index = _index(path)
            mine = wanted[(wanted >= first) & (wanted < first + len(index))]
            for number in mine.tolist():
                k = number - first
                pos, caplen = int(index.data_pos[k]), int(index.caplen[k])
                key = (point, int(index.linktype[k]))
                if key not in interfaces:
                    interfaces[key] = len(interfaces)
                    blocks.append(pcapng_interface(key[1], point))
                packets.append((int(index.ts_ns[k]), interfaces[key],
                                loaded.buf[pos:pos + caplen].tobytes(), int(index.wirelen[k]),
                                comments[(point, number)]))
            first += len(index)
        result.missing += [f"{point} #{n}: not in its files ({first - 1} frames)"
                           for n in wanted[wanted >= first].tolist()]
    packets.sort(key=lambda p: (p[0], p[1]))
    blocks += [pcapng_packet(i, ts, data, wirelen, c) for ts, i, data, wirelen, c in packets]
    try:
        out.write_bytes(b"".join(blocks))
    except OSError as exc:
        raise InputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    result.frames = len(packets)
    return result
