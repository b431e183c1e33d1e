"""The decoder's compiled kernels (`_native.c`), when they were built, as plain array functions.

The numpy decoder (walk.py, pcap.py, pcapng.py, layers.py) is the reference and the fallback: where no
C compiler was found at install time, or with DR_INSPECT_NATIVE=0 in the environment, it does all
the work. The kernels only speed up what they fully understand (classic pcap record walk; frames
of ordinary Ethernet/IP/TCP/UDP/ICMP/ARP) and hand every other frame back to layers.py, so both
paths give the same packets table (tests/test_decode_native.py checks that on the tcpdump corpus
and on random frames).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dr_inspect import kernels

try:
    from dr_inspect.decode import _native
except ImportError:          # built without a compiler: the numpy code does everything
    _native = None

ENV = kernels.ENV

# (group, name, dtype) of every column the field kernel fills, in its order.
FIELDS: tuple[tuple[str, str, str], ...] = tuple(_native.FIELDS) if _native is not None else ()


def available() -> bool:
    """The kernels were built (whatever the environment says)."""
    return _native is not None


def enabled() -> bool:
    """The decoder uses the kernels: built, and not turned off by DR_INSPECT_NATIVE=0."""
    return _native is not None and kernels.allowed()


def _columns(n: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Empty value and valid arrays for the kernel's columns, and the slow flags.

    The kernel stores one element into each of ~50 arrays per frame. Large arrays start on a
    page boundary, so element i of every byte-wide array would fall into the same cache set
    and the stores evict each other; each array is therefore started on a different cache line
    of its page."""
    arrays = [np.dtype(dtype) for _, _, dtype in FIELDS] + [np.dtype(bool)] * (len(FIELDS) + 1)
    out = []
    for k, dtype in enumerate(arrays):
        raw = np.empty(n * dtype.itemsize + 2 * 4096, np.uint8)
        start = -raw.ctypes.data % 4096 + (k * 5 % 64) * 64
        out.append(raw[start:start + n * dtype.itemsize].view(dtype))
    return out[:len(FIELDS)], out[len(FIELDS):-1], out[-1]


def _by_name(values: list[np.ndarray], valid: list[np.ndarray]
             ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """The kernel's columns keyed by (group, name), in FIELDS order."""
    return {(group, name): (v, ok) for (group, name, _), v, ok in zip(FIELDS, values, valid)}


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def pcap_walk(buf: np.ndarray, start: int, hdrlen: int, little: bool, max_caplen: int,
              frac_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The classic pcap records of buf from `start` (a record start), as walk.walk with
    pcap.pcap_step: (record positions, caplen, wirelen, ts_ns, end, status), status
    walk.OK / INCOMPLETE / INVALID at `end`."""
    room = max(0, len(buf) - start) // hdrlen + 1
    # Room for the most records the bytes could hold; pages never written are never mapped in.
    out = [np.empty(room, np.int64) for _ in range(4)]
    count, end, status = _native.pcap_walk(buf, start, hdrlen, little, max_caplen, frac_ns, *out)
    pos, caplen, wirelen, ts_ns = (a[:count].copy() for a in out)
    return pos, caplen, wirelen, ts_ns, int(end), int(status)


def pcapng_walk(buf: np.ndarray, start: int, little: bool, max_block: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The blocks of one pcapng section of buf from `start` (a block start), as walk.walk with
    pcapng.pcapng_step followed by its trailer check: (block positions, types, total
    lengths, end, status), status walk.OK / INCOMPLETE / INVALID / STOP (a section header
    block) at `end`."""
    out = [np.empty(max(0, len(buf) - start) // 12 + 1, np.int64) for _ in range(3)]
    count, end, status = _native.pcapng_walk(buf, start, little, max_block, *out)
    pos, btype, btl = (a[:count].copy() for a in out)
    return pos, btype, btl, int(end), int(status)


def decode_frames(buf: np.ndarray, data_pos: np.ndarray, caplen: np.ndarray,
                  wirelen: np.ndarray, linktype: np.ndarray,
                  release: Callable[[int], None] | None = None, window: int = 64 << 20
                  ) -> tuple[dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], np.ndarray,
                             np.ndarray]:
    """Fields of the frames the kernel decodes: ({(group, name): (values, valid)}, slow, ip6).
    slow: bool per frame the kernel left to layers.py (its columns are to be overwritten);
    ip6: (k, 32) uint8, source then destination address of each IPv6 frame it decoded, in frame
    order. release: called with a byte offset after each `window` bytes of frames (in file
    order), so the caller can drop the mapped pages before it."""
    n = len(data_pos)
    values, valid, slow = _columns(n)
    ip6 = np.empty((n, 32), np.uint8)       # only the IPv6 rows' pages are ever written
    pos, cap, wire = _i64(data_pos), _i64(caplen), _i64(wirelen)
    lt = np.ascontiguousarray(linktype, dtype=np.int32)
    bounds = [0, n]
    if release is not None and n:
        cuts = np.searchsorted(pos, np.arange(int(pos[0]), int(pos[-1]), window)[1:])
        bounds = sorted({0, n, *cuts.tolist()})
    k = 0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k += _native.decode_frames(buf, pos[lo:hi], cap[lo:hi], wire[lo:hi], lt[lo:hi],
                                   [v[lo:hi] for v in values], [ok[lo:hi] for ok in valid],
                                   slow[lo:hi], ip6[k:])
        if release is not None:
            release(int(pos[hi - 1]))
    return _by_name(values, valid), slow, ip6[:k].copy()


class PcapRecords:
    """The index and field columns of the records of one span of a classic pcap file, filled
    window by window by the fused walk-and-decode kernel into arrays allocated once, so a whole
    file ends as one set of columns (no per-window pieces to concatenate).

    Arrays are reserved for the most records the span could hold (`capacity`); pages never
    written are never mapped in, so what is resident is what was decoded. When a window could
    need more room than is left (a file of unusually small records), a new chunk of arrays is
    started and the chunks are concatenated at the end."""

    def __init__(self, capacity: int):
        self._chunks: list[tuple[int, int, list[np.ndarray], list[np.ndarray], list[np.ndarray],
                                 np.ndarray, np.ndarray]] = []
        self._new_chunk(capacity)

    def _new_chunk(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.n6 = 0
        self.index = [np.empty(capacity, np.int64) for _ in range(4)]
        self.values, self.valid, self.slow = _columns(capacity)
        self.ip6 = np.empty((capacity, 32), np.uint8)

    def _close_chunk(self) -> None:
        k, k6 = self.count, self.n6
        self._chunks.append((k, k6, [a[:k] for a in self.index], [a[:k] for a in self.values],
                             [a[:k] for a in self.valid], self.slow[:k], self.ip6[:k6]))

    def walk(self, buf: np.ndarray, start: int, limit: int, hdrlen: int, little: bool,
             max_caplen: int, frac_ns: int, linktype: int) -> tuple[int, int]:
        """Walk and decode the records of buf that start in [start, limit) (the last may end
        past limit, within buf). Returns (end, status) as pcap_walk."""
        room = max(0, limit - start) // hdrlen + 1
        if self.count + room > self.capacity:
            self._close_chunk()
            self._new_chunk(max(room, self.capacity))
        count, end, status, n6 = _native.pcap_decode(
            buf, start, limit, hdrlen, little, max_caplen, frac_ns, linktype, self.count,
            self.n6, *self.index, self.values, self.valid, self.slow, self.ip6)
        self.count += count
        self.n6 += n6
        return int(end), int(status)

    def columns(self) -> tuple[list[np.ndarray], dict[tuple[str, str], tuple[np.ndarray,
                                                                              np.ndarray]],
                               np.ndarray, np.ndarray]:
        """(data_pos, caplen, wirelen, ts_ns), the field columns as decode_frames gives them,
        slow and ip6, of every record walked so far."""
        self._close_chunk()
        chunks, self._chunks = self._chunks, []
        if len(chunks) == 1:
            _, _, index, values, valid, slow, ip6 = chunks[0]
        else:
            def cat(part: int) -> list[np.ndarray]:
                return [np.concatenate(arrays) for arrays in zip(*(c[part] for c in chunks))]
            index, values, valid = cat(2), cat(3), cat(4)
            slow = np.concatenate([c[5] for c in chunks])
            ip6 = np.concatenate([c[6] for c in chunks])
        return index, _by_name(values, valid), slow, ip6
