"""Decode the fields of all frames: the compiled kernel for the ordinary frames (native.py) and
the numpy decoder (layers.py) for the rest, or the numpy decoder alone in batches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dr_inspect.decode import native
from dr_inspect.decode.fields import Col, Fields
from dr_inspect.decode.frames import FrameIndex
from dr_inspect.decode.layers import decode_batch
from dr_inspect.decode.schema import SCHEMA


# IPv6 address columns the kernel never fills (ND targets, ICMPv6-quoted addresses: ICMPv6
# frames are all the numpy decoder's)
NUMPY_ONLY_IP6 = [c.name for c in SCHEMA if "ip6" in c.held and c.name not in ("src_ip", "dst_ip")]
BATCH = 65536   # frames decoded together: temporaries stay small, cache-resident and reused


def decode_fields(buf: np.ndarray, idx: FrameIndex) -> Fields:
    """Fields of every frame of idx; works through the frames in batches of BATCH."""
    return merge_fields(decode_field_batches(buf, idx))


def decode_field_batches(buf: np.ndarray, idx: FrameIndex,
                         release: Callable[[int], None] | None = None) -> list[Fields]:
    """Fields of consecutive batches of frames (merge once, at the very end): one batch when the
    compiled kernel does the common frames, else batches of at most BATCH frames. release: see
    native.decode_frames (the kernel's path only)."""
    if native.enabled() and len(idx):
        return [_decode_with_kernel(buf, idx, release)]
    return _numpy_batches(buf, idx)


def _numpy_batches(buf: np.ndarray, idx: FrameIndex) -> list[Fields]:
    n = len(idx)
    if n <= BATCH:
        return [decode_batch(buf, idx)]
    return [decode_batch(buf, _slice(idx, s, min(n, s + BATCH))) for s in range(0, n, BATCH)]


def merge_fields(parts: list[Fields]) -> Fields:
    """Fields of consecutive frame batches as one."""
    if len(parts) == 1:
        return parts[0]
    out = Fields(sum(p.n for p in parts))
    for group in ("ints", "macs", "ip4", "ip6"):
        target = getattr(out, group)
        for name in list(getattr(parts[0], group)):
            # Popped column by column: the batches' copies are freed as the merged ones appear.
            cols = [getattr(p, group).pop(name) for p in parts]
            target[name] = Col(np.concatenate([c.values for c in cols]),
                               np.concatenate([c.valid for c in cols]))
            del cols
    out.undecodable = np.concatenate([p.undecodable for p in parts])  # type: ignore[misc]
    for p in parts:
        out.reasons.update(p.reasons)
    return out


def _decode_with_kernel(buf: np.ndarray, idx: FrameIndex,
                        release: Callable[[int], None] | None = None) -> Fields:
    """The compiled kernel decodes the ordinary frames; the frames it leaves (odd link types,
    anything truncated or malformed, IPv6 extension headers, ICMPv6) are decoded by the numpy
    code below and written over their rows."""
    linktype = idx.linktype
    if idx.bad_interface is not None and idx.bad_interface.any():
        linktype = np.where(idx.bad_interface, -1, linktype)   # never a kernel frame
    cols, slow, ip6 = native.decode_frames(buf, idx.data_pos, idx.caplen, idx.wirelen, linktype,
                                           release)
    return kernel_fields(buf, idx, cols, slow, ip6)


def kernel_fields(buf: np.ndarray, idx: FrameIndex,
                  cols: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], slow: np.ndarray,
                  ip6: np.ndarray) -> Fields:
    """Fields from the compiled kernel's columns (native.decode_frames or PcapRecords), with
    the frames it left (`slow`) decoded here and written over their rows."""
    n = len(idx)
    f = Fields(n)
    for (group, name), (values, valid) in cols.items():
        getattr(f, group)[name] = Col(values, valid)
    v6 = ~slow & f.ints["ip_version"].valid & (f.ints["ip_version"].values == 6)
    f.undecodable = np.zeros(n, bool)
    rows = np.flatnonzero(slow)
    if len(rows) == 0:
        f.ip6["src_ip"] = Col(ip6[:, :16], v6)
        f.ip6["dst_ip"] = Col(ip6[:, 16:], v6)
        for name in NUMPY_ONLY_IP6:
            f.ip6[name] = Col(np.zeros((0, 16), np.uint8), np.zeros(n, bool))
        return f
    rest = merge_fields(_numpy_batches(buf, _take(idx, rows)))
    for group in ("ints", "macs", "ip4"):
        for name, col in getattr(rest, group).items():
            target = getattr(f, group)[name]
            target.values[rows] = col.values
            target.valid[rows] = col.valid
    for name, fast, fast_valid in (("src_ip", ip6[:, :16], v6), ("dst_ip", ip6[:, 16:], v6),
                                   *((name, ip6[:0, :16], np.zeros(n, bool))
                                     for name in NUMPY_ONLY_IP6)):
        f.ip6[name] = _ip6_rows(fast, fast_valid, rest.ip6[name], rows)
    f.undecodable[rows] = rest.undecodable
    f.reasons = rest.reasons
    return f


def _ip6_rows(fast: np.ndarray, fast_valid: np.ndarray, rest: Col, rows: np.ndarray) -> Col:
    """An IPv6 column (values of the valid rows only, in frame order) from the kernel's rows
    and the numpy-decoded `rows`."""
    valid = fast_valid.copy()
    valid[rows] = rest.valid
    rank = np.cumsum(valid) - 1
    values = np.empty((int(valid.sum()), 16), np.uint8)
    values[rank[fast_valid]] = fast
    values[rank[rows[rest.valid]]] = rest.values
    return Col(values, valid)


def _take(idx: FrameIndex, rows: np.ndarray) -> FrameIndex:
    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]
    return FrameIndex(idx.data_pos[rows], idx.caplen[rows], idx.wirelen[rows], idx.ts_ns[rows],
                      idx.interface[rows], idx.linktype[rows],
                      bad_interface=pick(idx.bad_interface), head=pick(idx.head))


def _slice(idx: FrameIndex, start: int, stop: int) -> FrameIndex:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[start:stop]
    return FrameIndex(idx.data_pos[start:stop], idx.caplen[start:stop], idx.wirelen[start:stop],
                      idx.ts_ns[start:stop], idx.interface[start:stop], idx.linktype[start:stop],
                      bad_interface=cut(idx.bad_interface), head=cut(idx.head))
