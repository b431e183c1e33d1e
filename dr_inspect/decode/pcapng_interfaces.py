"""The pcapng interface table: interface description blocks, and each frame's link type and
timestamp from its interface (if_tsresol, if_tsoffset).

Interface ids are global over the sections of a file: a section's interface 0 follows the
previous sections' interfaces.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from dr_inspect.decode.frames import ContainerError
from dr_inspect.decode.stats import InterfaceInfo


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



@dataclass
class InterfaceTable:
    """The interfaces defined so far (all sections), with their clocks."""

    interfaces: list[InterfaceInfo] = field(default_factory=list)
    _ifaces: list[_Iface] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.interfaces)

    def linktypes(self, gid: np.ndarray, n: int) -> np.ndarray:
        """The link type of each frame's interface (global ids gid); -1 with no interfaces."""
        if not self._ifaces:
            return np.full(n, -1, np.int32)
        return np.array([i.info.linktype for i in self._ifaces], np.int32)[gid]

    def timestamps(self, ticks: np.ndarray, gid: np.ndarray, bad: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Each frame's timestamp in ns and which ones do not fit int64 (see _ticks_to_ns)."""
        return _ticks_to_ns(ticks, gid, bad, self._ifaces)

    def add_idb(self, buf: np.ndarray, pos: int, btl: int, base: int, little: bool) -> None:
        """Add the interface of the interface description block at pos."""
        e = "<" if little else ">"
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
