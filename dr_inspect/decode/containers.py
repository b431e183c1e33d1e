"""Capture containers (classic pcap, pcapng): file headers, record walk, per-frame metadata.

`ContainerParser` is incremental: it is given a buffer holding the not-yet-consumed bytes of the
capture and says which frames it found and how many bytes it consumed, so the same code serves
whole files (one call with final=True), bounded-memory windows and live streams fed in chunks.
Frame metadata comes out as arrays (FrameIndex); packet bytes are decoded later by layers.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from dr_inspect.decode import native
from dr_inspect.decode import walk as w
from dr_inspect.decode.gather import gather
from dr_inspect.decode.stats import InterfaceInfo

PCAP_MAGICS: dict[bytes, tuple[bool, int, int]] = {
    # magic bytes as stored -> (little endian, timestamp fraction in ns per unit, record header len)
    b"\xd4\xc3\xb2\xa1": (True, 1000, 16),
    b"\xa1\xb2\xc3\xd4": (False, 1000, 16),
    b"\x4d\x3c\xb2\xa1": (True, 1, 16),
    b"\xa1\xb2\x3c\x4d": (False, 1, 16),
    # Alexey Kuznetzov's patched format: 8 more bytes per record header (ifindex, proto, type).
    b"\x34\xcd\xb2\xa1": (True, 1000, 24),
    b"\xa1\xb2\xcd\x34": (False, 1000, 24),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
BOM = 0x1A2B3C4D
EPB, SPB, OPB, IDB = 6, 3, 2, 1
# No real frame is bigger than this; a larger length is a corrupt header, not an allocation request.
MAX_RECORD = 16 * 1024 * 1024
MAX_PCAP_CAPLEN = 262144 * 4
HEAD_BYTES = 96      # leading frame bytes decoded by layers.py (see K_FRAME there)


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


def detect_format(head: bytes) -> str | None:
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    return None


# ---------------------------------------------------------------- classic pcap

def _pcap_step(little: bool, hdrlen: int, max_caplen: int) -> w.StepFn:
    def step(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(buf)
        if len(pos) and int(pos.max()) + hdrlen <= n:
            # Common case: every header is inside the buffer.
            caplen = w.read_u32(buf, pos + 8, little)
            nxt = pos + hdrlen + caplen
            bad = (caplen > max_caplen) | (nxt > n)
            if not bad.any():
                return nxt, np.zeros(len(pos), np.int8)
        status = np.full(len(pos), w.OK, dtype=np.int8)
        have = pos + hdrlen <= n
        caplen = np.zeros(len(pos), dtype=np.int64)
        if have.any():
            caplen[have] = w.read_u32(buf, pos[have] + 8, little)
        nxt = pos + hdrlen + caplen
        status[~have] = w.INCOMPLETE
        status[have & (caplen > max_caplen)] = w.INVALID
        status[(status == w.OK) & (nxt > n)] = w.INCOMPLETE
        return nxt, status
    return step


def _pcap_sync(little: bool, hdrlen: int, max_caplen: int, ts0: int, frac_max: int) -> w.SyncFn:
    step = _pcap_step(little, hdrlen, max_caplen)

    year = 86400 * 366
    sec_lo = np.uint32((ts0 - year) % 2**32)

    def plausible_u32(sec, frac, cap, wire, use_ts=True):  # type: ignore[no-untyped-def]
        # uint32 arithmetic throughout (wrapping subtraction for the time window).
        # (a frame of length 0 is implausible: runs of zero bytes must not look like headers)
        ok = (frac < frac_max) & (cap <= max_caplen) & (cap <= wire) & (wire <= MAX_RECORD) \
            & (wire > 0)
        if use_ts:
            ok &= (sec.astype(np.uint32, copy=False) - sec_lo) < np.uint32(2 * year)
        return ok

    def plausible(buf: np.ndarray, pos: np.ndarray, use_ts: bool) -> np.ndarray:
        ok = pos + hdrlen <= len(buf)
        out = np.zeros(len(pos), bool)
        p = pos[ok]
        if len(p):
            out[ok] = plausible_u32(w.read_u32(buf, p, little), w.read_u32(buf, p + 4, little),
                                    w.read_u32(buf, p + 8, little), w.read_u32(buf, p + 12, little),
                                    use_ts)
        return out

    def sync(buf: np.ndarray, chunks: np.ndarray, limit: int) -> np.ndarray:
        # Every byte offset of a window after each chunk start is a candidate, all chunks at once;
        # a candidate must look like a record header and be followed by two more. Misses only cost
        # speed (walk.py verifies every guess).
        window = 2048
        n = len(buf)
        m = np.ascontiguousarray(gather(buf, chunks, window + 16))
        # v[i, j] = the uint32 at byte j of row i: an unaligned, overlapping view (no copy).
        v = np.ndarray(shape=(len(chunks), window + 13), dtype="<u4" if little else ">u4",
                       buffer=m, strides=(window + 16, 1))
        inside = (chunks[:, None] + np.arange(window)) < min(limit, n)
        guesses = chunks.copy()
        rows = np.arange(len(chunks))
        # First with timestamps near the first record's; where that finds nothing (captures with
        # erratic clocks), without the timestamp test.
        for use_ts in (True, False):
            if len(rows) == 0:
                break
            sub = v if len(rows) == len(chunks) else v[rows]
            cand = plausible_u32(sub[:, 0:window], sub[:, 4:window + 4], sub[:, 8:window + 8],
                                 sub[:, 12:window + 12], use_ts) & inside[rows]
            left = np.arange(len(rows))       # index into cand / rows
            for _ in range(16):
                left = left[cand[left].any(axis=1)]
                if len(left) == 0:
                    break
                first = cand[left].argmax(axis=1)
                pos = chunks[rows[left]] + first
                good = np.ones(len(left), bool)
                p = pos
                for _hop in range(2):
                    nxt, st = step(buf, p)
                    good &= st == w.OK
                    p = np.where(good, nxt, p)
                    good &= plausible(buf, p, use_ts) | (p >= n)
                guesses[rows[left[good]]] = pos[good]
                cand[left[~good], first[~good]] = False
                left = left[~good]
            unresolved = guesses[rows] == chunks[rows]
            rows = rows[unresolved]
        return guesses
    return sync


# ---------------------------------------------------------------- pcapng

def _pcapng_step(little: bool) -> w.StepFn:
    # Block trailers are not checked here (one more read per step); _pcapng_blocks checks them all
    # at once after the walk, and sync checks them for its guesses.
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


def _type_length(buf: np.ndarray, pos: np.ndarray, little: bool) -> tuple[np.ndarray, np.ndarray]:
    """Block type and total length at each position, in one read."""
    both = w.read_u64(buf, pos, little)
    lo = (both & np.uint64(0xFFFFFFFF)).astype(np.int64)
    hi = (both >> np.uint64(32)).astype(np.int64)
    return (lo, hi) if little else (hi, lo)


def _trailers_ok(buf: np.ndarray, pos: np.ndarray, little: bool,
                 btl: np.ndarray | None = None) -> np.ndarray:
    if btl is None:
        btl = w.read_u32(buf, pos + 4, little)
    return w.read_u32(buf, pos + btl - 4, little) == btl


def _pcapng_sync(little: bool, align_base: int) -> w.SyncFn:
    step = _pcapng_step(little)

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
                good[good] = _trailers_ok(buf, pos[good], little)
            guesses[rows[good]] = pos[good]
            cand[rows[~good], first[~good]] = False
            rows = rows[~good]
        return guesses
    return sync


@dataclass
class _Iface:
    info: InterfaceInfo
    ts_div: int = 1         # ticks -> ns: ticks * mul // div (exact for powers of ten)
    ts_mul: int = 1000
    ts_shift: int = -1      # binary resolution 2^-shift, or -1
    ts_offset_s: int = 0


def _tsresol(code: int) -> tuple[int, int, int, int]:
    """if_tsresol byte -> (mul, div, shift, resolution in ns rounded)."""
    if code & 0x80:
        shift = code & 0x7F
        return 1, 1, shift, max(1, int(round(1e9 / (1 << shift)))) if shift < 64 else 1
    exp = code
    if exp <= 9:
        return 10 ** (9 - exp), 1, -1, 10 ** (9 - exp)
    return 1, 10 ** min(exp - 9, 18), -1, 1


# Timestamps are int64 ns: from 1677-09-21 to 2262-04-11. A little margin for the float test.
_NS_LIMIT = 9.2e18


def _ticks_to_ns(ticks: np.ndarray, gid: np.ndarray, bad: np.ndarray, ifaces: list[_Iface]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's timestamp in ns from its interface's ticks, resolution and offset, and
    which frames' timestamps do not fit int64 (then ts there is 0). Frames of undefined
    interfaces (bad) get 0."""
    shift = np.array([i.ts_shift for i in ifaces], np.int64)[gid]
    div = np.array([i.ts_div for i in ifaces], np.uint64)[gid]
    mul = np.array([i.ts_mul for i in ifaces], np.int64)[gid]
    offset_s = np.array([i.ts_offset_s for i in ifaces], np.int64)[gid]
    binary = (shift >= 0) & ~bad
    # float estimate of every result first: a value past int64 must not wrap around silently
    scale = np.where(binary, 1e9 / np.exp2(np.maximum(shift, 0)),
                     np.where(div > 1, 1.0 / div.astype(np.float64), mul.astype(np.float64)))
    estimate = ticks.astype(np.float64) * scale + offset_s.astype(np.float64) * 1e9
    over = ~bad & ~(np.abs(estimate) < _NS_LIMIT)
    ok = ~bad & ~over
    t = np.where(ok, ticks, np.uint64(0))
    ns = np.zeros(len(t), np.int64)
    b = ok & binary
    if b.any():
        sh = shift[b].astype(np.uint64)
        sec = (t[b] >> sh).astype(np.int64)
        rem = (t[b] & ((np.uint64(1) << sh) - np.uint64(1))).astype(np.float64)
        ns[b] = sec * 1_000_000_000 + np.round(rem * 1e9 / np.exp2(shift[b])).astype(np.int64)
    d = ok & ~binary & (div > 1)
    if d.any():
        ns[d] = (t[d] // div[d]).astype(np.int64)
    m = ok & ~binary & (div <= 1)
    if m.any():
        ns[m] = t[m].astype(np.int64) * mul[m]
    ns[ok] += offset_s[ok] * 1_000_000_000
    return ns, over


# ---------------------------------------------------------------- the parser

@dataclass
class ContainerParser:
    """Incremental container parser. Feed buffers of unconsumed bytes; keep the state between."""

    file: str
    format: str | None = None
    little: bool = True
    frac_ns: int = 1000
    hdrlen: int = 16
    snaplen: int = 0
    linktype: int = 0
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    _ifaces: list[_Iface] = field(default_factory=list)
    _section_base: int = 0          # global interface id of the current section's interface 0
    _in_section: bool = False       # pcapng: a section header has been read
    _ts0: int = 0

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
            if self.format == "pcap":
                pos = self._pcap_records(buf, pos, base, final, parts)
            else:
                pos = self._pcapng_blocks(buf, pos, base, final, parts)
        except ContainerError as exc:
            exc.index = concat_index(parts)  # type: ignore[attr-defined]
            raise
        return concat_index(parts), pos

    def record_start_near(self, buf: np.ndarray, at: int) -> int:
        """A likely start of a record at or after byte `at` of a classic pcap file (the file
        header parsed); `at` itself when none is found. A guess: whoever uses it must check
        that the record chain really reaches it."""
        if self.format != "pcap" or not 0 <= at < len(buf):
            return at
        sync = _pcap_sync(self.little, self.hdrlen, self.max_caplen, self._ts0,
                          1_000_000 if self.frac_ns == 1000 else 1_000_000_000)
        return int(sync(buf, np.array([at], np.int64), len(buf))[0])

    # -- headers

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
            if n < 24:
                if final:
                    raise ContainerError(base + n, f"truncated pcap file header ({n} of 24 bytes)")
                return 0
            self.little, self.frac_ns, self.hdrlen = PCAP_MAGICS[head]
            e = "<" if self.little else ">"
            major, minor, _tz, _sig, snaplen, lt = struct.unpack(e + "HHiIII", bytes(buf[4:24]))
            if major != 2:
                raise ContainerError(base + 4, f"unsupported pcap version {major}.{minor}")
            self.format = "pcap"
            self.snaplen = snaplen
            self.linktype = lt & 0xFFFF   # upper bits: FCS length flags
            res = self.frac_ns
            self.interfaces = [InterfaceInfo(0, "", self.linktype, res, snaplen)]
            if n >= 28:
                self._ts0 = int(w.read_u32(buf, np.array([24]), self.little)[0])
            return 24
        got = self._shb(buf, 0, base, final)
        if got:
            self.format = "pcapng"
        return got

    def _shb(self, buf: np.ndarray, pos: int, base: int, final: bool) -> int:
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
        self._section_base = len(self.interfaces)
        self._in_section = True
        return pos + btl

    # -- classic pcap records

    def _pcap_records(self, buf: np.ndarray, pos: int, base: int, final: bool,
                      parts: list[FrameIndex]) -> int:
        walk_records = self._walk_native if native.enabled() else self._walk_numpy
        return self.records_end(buf, walk_records(buf, pos, self.max_caplen, parts), base, final)

    @property
    def max_caplen(self) -> int:
        """Classic pcap: a record's caplen above this is a corrupt header."""
        return max(MAX_PCAP_CAPLEN, self.snaplen if self.snaplen <= MAX_RECORD else 0)

    def records_end(self, buf: np.ndarray, res: w.WalkResult, base: int, final: bool) -> int:
        """Classic pcap: the bytes of buf consumed by a walk of its records; raises
        ContainerError where the walk broke (or, when final, stopped at a cut record)."""
        if res.status == w.INVALID:
            cap = int(w.read_u32(buf, np.array([res.end + 8]), self.little)[0])
            raise ContainerError(base + res.end, f"absurd record length: caplen {cap} "
                                 f"(snaplen {self.snaplen})")
        if res.status == w.INCOMPLETE:
            if final:
                left = len(buf) - res.end
                reason = (f"truncated record ({left} bytes left, the record header says more)"
                          if left >= self.hdrlen else
                          f"truncated record header ({left} of {self.hdrlen} bytes)")
                raise ContainerError(base + res.end, reason)
            return res.end
        return len(buf) if res.status == w.OK else res.end

    def _walk_native(self, buf: np.ndarray, pos: int, max_cap: int,
                     parts: list[FrameIndex]) -> w.WalkResult:
        # The compiled walk: one sequential pass that reads the record headers on the way.
        p, cap, wire, ts, end, status = native.pcap_walk(buf, pos, self.hdrlen, self.little,
                                                         max_cap, self.frac_ns)
        if len(p):
            parts.append(FrameIndex(data_pos=p + self.hdrlen, caplen=cap, wirelen=wire, ts_ns=ts,
                                    interface=np.zeros(len(p), np.int32),
                                    linktype=np.full(len(p), self.linktype, np.int32)))
        return w.WalkResult(p, end, status)

    def _walk_numpy(self, buf: np.ndarray, pos: int, max_cap: int,
                    parts: list[FrameIndex]) -> w.WalkResult:
        step = _pcap_step(self.little, self.hdrlen, max_cap)
        if self._ts0 == 0 and pos + 4 <= len(buf):
            self._ts0 = int(w.read_u32(buf, np.array([pos]), self.little)[0])
        sync = _pcap_sync(self.little, self.hdrlen, max_cap, self._ts0,
                          1_000_000 if self.frac_ns == 1000 else 1_000_000_000)
        res = w.walk(buf, pos, len(buf), step, sync)
        p = res.positions
        if len(p):
            rec = gather(buf, p, self.hdrlen + HEAD_BYTES)
            hdr = rec[:, :16].view("<u4" if self.little else ">u4")
            sec, frac, cap, wire = (hdr[:, i].astype(np.int64) for i in range(4))
            parts.append(FrameIndex(
                data_pos=p + self.hdrlen, caplen=cap, wirelen=wire,
                ts_ns=sec * 1_000_000_000 + frac * self.frac_ns,
                interface=np.zeros(len(p), np.int32),
                linktype=np.full(len(p), self.linktype, np.int32),
                head=rec[:, self.hdrlen:]))
        return res

    # -- pcapng blocks

    def _pcapng_blocks(self, buf: np.ndarray, pos: int, base: int, final: bool,
                       parts: list[FrameIndex]) -> int:
        while True:
            if not self._in_section:
                # The stream stopped at a new section header last time.
                got = self._shb(buf, pos, base, final)
                if got == 0:
                    return pos
                pos = got
            if native.enabled():
                # the compiled walk checks the trailers on the way
                p, btype, btl, end, status = native.pcapng_walk(buf, pos, self.little,
                                                                MAX_RECORD)
                res = w.WalkResult(p, end, status)
            else:
                res = w.walk(buf, pos, len(buf), _pcapng_step(self.little),
                             _pcapng_sync(self.little, pos))
                btype, btl = _type_length(buf, res.positions, self.little)
                bad = np.flatnonzero(~_trailers_ok(buf, res.positions, self.little, btl))
                if len(bad):
                    # A block whose trailing length disagrees ends the readable part there.
                    res = w.WalkResult(res.positions[: bad[0]], int(res.positions[bad[0]]),
                                       w.INVALID)
                    btype, btl = btype[: bad[0]], btl[: bad[0]]
            if len(res.positions):
                self._blocks(buf, res.positions, btype, btl, base, parts)
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

    def _blocks(self, buf: np.ndarray, pos: np.ndarray, btype: np.ndarray, btl: np.ndarray,
                base: int,
                parts: list[FrameIndex]) -> None:
        little = self.little
        # Rare blocks (interface descriptions, statistics, name resolution, custom): Python loop.
        rare = np.flatnonzero(~np.isin(btype, (EPB, SPB, OPB)))
        for i in rare:
            if btype[i] == IDB:
                self._idb(buf, int(pos[i]), int(btl[i]), base)
        n_if = len(self.interfaces) - self._section_base
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
        ifaces = self._ifaces
        lt = np.array([i.info.linktype for i in ifaces], np.int32)[gid] if ifaces else \
            np.full(len(data), -1, np.int32)
        lt[bad] = -1
        ts = np.zeros(len(data), np.int64)
        if ticks is not None and ifaces and (~bad).any():
            ts, over = _ticks_to_ns(ticks, gid, bad, ifaces)
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

    def _idb(self, buf: np.ndarray, pos: int, btl: int, base: int) -> None:
        e = "<" if self.little else ">"
        raw = bytes(buf[pos:pos + btl])
        if btl < 20:
            raise ContainerError(base + pos, f"pcapng interface block too short ({btl} bytes)")
        lt, _res, snaplen = struct.unpack(e + "HHI", raw[8:16])
        name = ""
        mul, div, shift, res_ns = 1000, 1, -1, 1000
        offset_s = 0
        o = 16
        while o + 4 <= btl - 4:
            code, length = struct.unpack(e + "HH", raw[o:o + 4])
            val = raw[o + 4:o + 4 + length]
            if code == 0:
                break
            if code == 2:
                name = val.decode("utf-8", "replace").rstrip("\x00")
            elif code == 9 and length >= 1:
                mul, div, shift, res_ns = _tsresol(val[0])
            elif code == 14 and length >= 8:
                (offset_s,) = struct.unpack(e + "q", val[:8])
                if abs(offset_s) * 1e9 >= _NS_LIMIT:
                    raise ContainerError(base + pos + o, f"pcapng interface block: if_tsoffset "
                                         f"{offset_s} s is out of range (int64 nanoseconds)")
            o += 4 + ((length + 3) & ~3)
        if shift >= 63:
            shift = 62
        gid = len(self.interfaces)
        info = InterfaceInfo(gid, name, lt, res_ns, snaplen)
        self.interfaces.append(info)
        self._ifaces.append(_Iface(info, ts_div=div, ts_mul=mul, ts_shift=shift,
                                   ts_offset_s=offset_s))
