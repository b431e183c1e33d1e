"""pcapng: section headers and the block walk; packet blocks (enhanced, simple, obsolete) become
frame indexes, interface description blocks go to the interface table (pcapng_interfaces.py).

The walk is vectorised (walk.py, resynchronised by `sync`) or the compiled kernel's; the rare
blocks (interfaces, statistics, name resolution, custom) take a Python loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from dr_inspect.decode import native
from dr_inspect.decode import walk as w
from dr_inspect.decode.frames import (HEAD_BYTES, MAX_RECORD, ContainerError, FrameIndex,
                                      concat_index)
from dr_inspect.decode.gather import gather
from dr_inspect.decode.pcapng_interfaces import InterfaceTable
from dr_inspect.decode.stats import InterfaceInfo

PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
BOM = 0x1A2B3C4D
EPB, SPB, OPB, IDB = 6, 3, 2, 1


def pcapng_step(little: bool) -> w.StepFn:
    # Block trailers are not checked here (one more read per step); PcapngReader.blocks checks
    # them all at once after the walk, and sync checks them for its guesses.
    def step(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(buf)
        status = np.full(len(pos), w.OK, dtype=np.int8)
        have = pos + 8 <= n
        btype = np.zeros(len(pos), dtype=np.int64)
        btl = np.zeros(len(pos), dtype=np.int64)
        if have.any():
            both = w.read_u64(buf, pos[have], little)
            lo = (both & np.uint64(0xFFFFFFFF)).astype(np.int64)
            hi = (both >> np.uint64(32)).astype(np.int64)
            btype[have], btl[have] = (lo, hi) if little else (hi, lo)
        status[~have] = w.INCOMPLETE
        status[have & (btype == PCAPNG_SHB)] = w.STOP
        bad = have & (btype != PCAPNG_SHB) & ((btl < 12) | (btl % 4 != 0) | (btl > MAX_RECORD))
        status[bad] = w.INVALID
        nxt = pos + btl
        status[(status == w.OK) & (nxt > n)] = w.INCOMPLETE
        return nxt, status
    return step


def type_length(buf: np.ndarray, pos: np.ndarray, little: bool) -> tuple[np.ndarray, np.ndarray]:
    """Block type and total length at each position, in one read."""
    both = w.read_u64(buf, pos, little)
    lo = (both & np.uint64(0xFFFFFFFF)).astype(np.int64)
    hi = (both >> np.uint64(32)).astype(np.int64)
    return (lo, hi) if little else (hi, lo)


def trailers_ok(buf: np.ndarray, pos: np.ndarray, little: bool,
                 btl: np.ndarray | None = None) -> np.ndarray:
    if btl is None:
        btl = w.read_u32(buf, pos + 4, little)
    return w.read_u32(buf, pos + btl - 4, little) == btl


def pcapng_sync(little: bool, align_base: int) -> w.SyncFn:
    step = pcapng_step(little)

    def sync(buf: np.ndarray, chunks: np.ndarray, limit: int) -> np.ndarray:
        # Blocks are 4-byte aligned: candidates are the aligned offsets of a window after each
        # chunk start whose block type is a packet block and whose length is sane; the first
        # one whose trailing length matches wins (walk.py verifies every guess).
        window = 2048
        n = len(buf)
        chunks = chunks + (-(chunks - align_base)) % 4
        # Rows start 4-byte aligned (relative to the section), so a plain uint32 view of the
        # gathered bytes holds every aligned candidate's type and length.
        v = gather(buf, chunks, window + 8).view("<u4" if little else ">u4")
        btype = v[:, : window // 4]
        btl = v[:, 1: window // 4 + 1]
        cand = (np.isin(btype, (EPB, SPB, OPB)) & (btl >= 12) & (btl % 4 == 0)
                & (btl <= MAX_RECORD))
        cand &= (chunks[:, None] + np.arange(0, window, 4)) + 8 <= min(limit, n)
        guesses = chunks.copy()
        rows = np.arange(len(chunks))
        for _ in range(16):
            has = cand[rows].any(axis=1)
            rows = rows[has]
            if len(rows) == 0:
                break
            first = cand[rows].argmax(axis=1)
            pos = chunks[rows] + 4 * first
            _, st = step(buf, pos)
            good = st == w.OK
            if good.any():
                good[good] = trailers_ok(buf, pos[good], little)
            guesses[rows[good]] = pos[good]
            cand[rows[~good], first[~good]] = False
            rows = rows[~good]
        return guesses
    return sync


@dataclass
class PcapngReader:
    """The state of a pcapng walk between buffers: the section's byte order, the interfaces."""

    little: bool = True
    table: InterfaceTable = field(default_factory=InterfaceTable)
    _section_base: int = 0          # global interface id of the current section's interface 0
    _in_section: bool = False       # a section header has been read

    @property
    def interfaces(self) -> list[InterfaceInfo]:
        return self.table.interfaces

    def shb(self, buf: np.ndarray, pos: int, base: int, final: bool) -> int:
        """Parse a section header block at pos; returns its end, or 0 if incomplete (not final)."""
        n = len(buf)
        if pos + 12 > n:
            if final:
                raise ContainerError(base + pos, "truncated pcapng section header")
            return 0
        bom = bytes(buf[pos + 8:pos + 12])
        if bom == BOM.to_bytes(4, "little"):
            little = True
        elif bom == BOM.to_bytes(4, "big"):
            little = False
        else:
            raise ContainerError(base + pos + 8, f"bad pcapng byte-order magic {bom.hex()}")
        e = "<" if little else ">"
        (btl,) = struct.unpack(e + "I", bytes(buf[pos + 4:pos + 8]))
        if btl < 28 or btl % 4 or btl > MAX_RECORD:
            raise ContainerError(base + pos + 4, f"bad pcapng section header length {btl}")
        if pos + btl > n:
            if final:
                raise ContainerError(base + pos, f"truncated pcapng section header "
                                     f"(block of {btl} bytes, {n - pos} left)")
            return 0
        major = struct.unpack(e + "H", bytes(buf[pos + 12:pos + 14]))[0]
        if major != 1:
            raise ContainerError(base + pos + 12, f"unsupported pcapng version {major}")
        self.little = little
        self._section_base = len(self.table)
        self._in_section = True
        return pos + btl

    def blocks(self, buf: np.ndarray, pos: int, base: int, final: bool,
               parts: list[FrameIndex]) -> int:
        """Walk the blocks from pos: frame indexes appended to parts, the bytes of buf consumed
        returned."""
        while True:
            if not self._in_section:
                # The stream stopped at a new section header last time.
                got = self.shb(buf, pos, base, final)
                if got == 0:
                    return pos
                pos = got
            if native.enabled():
                # the compiled walk checks the trailers on the way
                p, btype, btl, end, status = native.pcapng_walk(buf, pos, self.little,
                                                                MAX_RECORD)
                res = w.WalkResult(p, end, status)
            else:
                res = w.walk(buf, pos, len(buf), pcapng_step(self.little),
                             pcapng_sync(self.little, pos))
                btype, btl = type_length(buf, res.positions, self.little)
                bad = np.flatnonzero(~trailers_ok(buf, res.positions, self.little, btl))
                if len(bad):
                    # A block whose trailing length disagrees ends the readable part there.
                    res = w.WalkResult(res.positions[: bad[0]], int(res.positions[bad[0]]),
                                       w.INVALID)
                    btype, btl = btype[: bad[0]], btl[: bad[0]]
            if len(res.positions):
                self._packet_blocks(buf, res.positions, btype, btl, base, parts)
            if res.status == w.STOP:
                self._in_section = False
                pos = res.end
                continue
            if res.status == w.INVALID:
                e = "<" if self.little else ">"
                btype, btl = struct.unpack(e + "II", bytes(buf[res.end:res.end + 8]))
                raise ContainerError(base + res.end, f"bad pcapng block (type 0x{btype:x}, "
                                     f"length {btl})")
            if res.status == w.INCOMPLETE:
                if final:
                    left = len(buf) - res.end
                    raise ContainerError(base + res.end, f"truncated pcapng block ({left} bytes "
                                         "left)")
                return res.end
            return len(buf)

    def _packet_blocks(self, buf: np.ndarray, pos: np.ndarray, btype: np.ndarray,
                       btl: np.ndarray, base: int, parts: list[FrameIndex]) -> None:
        little = self.little
        # Rare blocks (interface descriptions, statistics, name resolution, custom): Python loop.
        rare = np.flatnonzero(~np.isin(btype, (EPB, SPB, OPB)))
        for i in rare:
            if btype[i] == IDB:
                self.table.add_idb(buf, int(pos[i]), int(btl[i]), base, little)
        n_if = len(self.table) - self._section_base
        # Enhanced packet blocks.
        for kind in (EPB, OPB, SPB):
            sel = np.flatnonzero(btype == kind)
            if len(sel) == 0:
                continue
            p = pos[sel]
            bl = btl[sel]
            if kind == SPB:
                local = np.zeros(len(p), np.int64)
                wire = w.read_u32(buf, p + 8, little)
                cap = np.minimum(wire, bl - 16)
                ticks = None
                head = None
                data = p + 12
            else:
                if kind == EPB:
                    local = w.read_u32(buf, p + 8, little)
                else:
                    raw = w.read_u32(buf, p + 8, little)
                    local = (raw & 0xFFFF) if little else (raw >> 16)
                # the frames' leading bytes come along for the numpy decoder (the compiled one
                # reads the frames where they are)
                rec = gather(buf, p, 28 if native.enabled() else 28 + HEAD_BYTES)
                hdr = rec[:, :28].view("<u4" if little else ">u4")
                hi, lo, cap, wire = (hdr[:, i].astype(np.int64) for i in (3, 4, 5, 6))
                head = None if native.enabled() else rec[:, 28:]
                ticks = (hi.astype(np.uint64) << np.uint64(32)) | lo.astype(np.uint64)
                data = p + 28
                over = cap > bl - 32
                if over.any():
                    first = int(p[np.flatnonzero(over)[0]])
                    keep = p < first
                    self._emit(parts, data[keep], cap[keep], wire[keep], ticks[keep],
                               local[keep], n_if, None if head is None else head[keep], base)
                    raise ContainerError(base + first, "pcapng packet block: captured length "
                                         "exceeds the block")
            self._emit(parts, data, cap, wire, ticks, local, n_if, head, base)
        if len(parts) > 1:
            # Several block kinds in one walk: restore file order.
            merged = concat_index(parts)
            order = np.argsort(merged.data_pos, kind="stable")
            for f in ("data_pos", "caplen", "wirelen", "ts_ns", "interface", "linktype",
                      "bad_interface"):
                setattr(merged, f, getattr(merged, f)[order])
            parts[:] = [merged]

    def _emit(self, parts: list[FrameIndex], data: np.ndarray, cap: np.ndarray, wire: np.ndarray,
              ticks: np.ndarray | None, local: np.ndarray, n_if: int,
              head: np.ndarray | None, base: int) -> None:
        bad = (local < 0) | (local >= n_if)
        gid = np.where(bad, 0, local + self._section_base).astype(np.int32)
        # Per-interface parameters looked up per frame: linear in frames and interfaces alike
        # (a file may define thousands of interfaces).
        lt = self.table.linktypes(gid, len(data))
        lt[bad] = -1
        ts = np.zeros(len(data), np.int64)
        if ticks is not None and len(self.table) and (~bad).any():
            ts, over = self.table.timestamps(ticks, gid, bad)
            if over.any():
                first = int(np.flatnonzero(over)[0])
                keep = slice(0, first)
                parts.append(FrameIndex(data[keep], cap[keep], wire[keep], ts[keep],
                                        np.where(bad, -1, gid).astype(np.int32)[keep], lt[keep],
                                        bad_interface=bad[keep],
                                        head=None if head is None else head[keep]))
                block = int(data[first]) - 28      # the enhanced packet block's start
                raise ContainerError(base + block, "pcapng packet block: timestamp "
                                     "out of range (before 1678 or after 2262 once if_tsresol "
                                     "and if_tsoffset are applied)")
        parts.append(FrameIndex(data, cap, wire, ts, np.where(bad, -1, gid).astype(np.int32), lt,
                                bad_interface=bad, head=head))
