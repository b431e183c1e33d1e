"""Classic pcap (and its patched Kuznetzov variant): the file header and the record walk.

`PcapReader` holds what the file header says and walks the records after it, with the compiled
kernel when there is one, else with numpy (walk.py: vectorised hops, resynchronised by `sync`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from dr_inspect.decode import native
from dr_inspect.decode import walk as w
from dr_inspect.decode.frames import HEAD_BYTES, MAX_RECORD, ContainerError, FrameIndex
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
MAX_PCAP_CAPLEN = 262144 * 4


def pcap_step(little: bool, hdrlen: int, max_caplen: int) -> w.StepFn:
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


def pcap_sync(little: bool, hdrlen: int, max_caplen: int, ts0: int, frac_max: int) -> w.SyncFn:
    step = pcap_step(little, hdrlen, max_caplen)

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


@dataclass
class PcapReader:
    """What a classic pcap file header says, and the walk of the records after it."""

    little: bool
    frac_ns: int          # ns per timestamp fraction unit (1000 = usec, 1 = nsec)
    hdrlen: int           # record header length
    snaplen: int
    linktype: int
    ts0: int = 0          # the first record's seconds (sync looks for timestamps near it)

    @staticmethod
    def from_header(buf: np.ndarray, base: int, final: bool) -> tuple["PcapReader | None", int]:
        """The reader of the pcap file header at buf[0] and its length, or (None, 0) when the
        header is incomplete (not final)."""
        n = len(buf)
        if n < 24:
            if final:
                raise ContainerError(base + n, f"truncated pcap file header ({n} of 24 bytes)")
            return None, 0
        little, frac_ns, hdrlen = PCAP_MAGICS[bytes(buf[:4])]
        e = "<" if little else ">"
        major, minor, _tz, _sig, snaplen, lt = struct.unpack(e + "HHiIII", bytes(buf[4:24]))
        if major != 2:
            raise ContainerError(base + 4, f"unsupported pcap version {major}.{minor}")
        # (the upper bits of the link type are FCS length flags)
        reader = PcapReader(little, frac_ns, hdrlen, snaplen, lt & 0xFFFF)
        if n >= 28:
            reader.ts0 = int(w.read_u32(buf, np.array([24]), little)[0])
        return reader, 24

    @property
    def interfaces(self) -> list[InterfaceInfo]:
        return [InterfaceInfo(0, "", self.linktype, self.frac_ns, self.snaplen)]

    @property
    def max_caplen(self) -> int:
        """A record's caplen above this is a corrupt header."""
        return max(MAX_PCAP_CAPLEN, self.snaplen if self.snaplen <= MAX_RECORD else 0)

    def records(self, buf: np.ndarray, pos: int, base: int, final: bool,
                parts: list[FrameIndex]) -> int:
        """Walk the records from pos: their frame indexes appended to parts, the bytes of buf
        consumed returned."""
        walk_records = self._walk_native if native.enabled() else self._walk_numpy
        return self.records_end(buf, walk_records(buf, pos, self.max_caplen, parts), base, final)

    def records_end(self, buf: np.ndarray, res: w.WalkResult, base: int, final: bool) -> int:
        """The bytes of buf consumed by a walk of its records; raises ContainerError where the
        walk broke (or, when final, stopped at a cut record)."""
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

    def record_start_near(self, buf: np.ndarray, at: int) -> int:
        """A likely start of a record at or after byte `at` (see ContainerParser's)."""
        sync = self._sync(self.max_caplen)
        return int(sync(buf, np.array([at], np.int64), len(buf))[0])

    def _sync(self, max_cap: int) -> w.SyncFn:
        return pcap_sync(self.little, self.hdrlen, max_cap, self.ts0,
                         1_000_000 if self.frac_ns == 1000 else 1_000_000_000)

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
        step = pcap_step(self.little, self.hdrlen, max_cap)
        if self.ts0 == 0 and pos + 4 <= len(buf):
            self.ts0 = int(w.read_u32(buf, np.array([pos]), self.little)[0])
        res = w.walk(buf, pos, len(buf), step, self._sync(max_cap))
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
