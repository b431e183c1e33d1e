"""The payload digest: a polynomial hash of a frame's captured TCP payload bytes that can be
concatenated, so a GRO/TSO-coalesced copy can be checked against its pieces.

Two lanes, each H = sum(b[j] * B**(L-1-j)) mod P over the L bytes, with the prime
P = 2**29 - 3 and a fixed base per lane (primitive roots of P); the digest packs them as
lane 1 << 32 | lane 2 in a uint64 (two strings that differ collide with odds of about 2**-58).
Two 29-bit lanes instead of one 61-bit one: every product fits in 64 bits, so numpy computes
the same values as the C kernel, and the kernel sums both lanes' terms of eight bytes in one
uint64 (_native.c: it must use the same P and bases; tests/test_decode_digest.py checks both
paths against a plain reference).

Concatenation: H(a || b) = H(a) * B**len(b) + H(b) (mod P, per lane), see combine.
"""

from __future__ import annotations

import numpy as np

P = (1 << 29) - 3
BASES = (278270624, 500476775)       # 2**1000003 and 2**2000003 mod P: primitive roots
_P = np.uint64(P)
_LANE = np.uint64(0xFFFF_FFFF)
_CHUNK_BYTES = 1 << 22               # payload bytes hashed per numpy step (temporaries ~100 MB)
_LONG = 1 << 20                      # longest string summed in one step

_powers: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _mod(x: np.ndarray) -> np.ndarray:
    return x % _P


def powers(lane: int, upto: int) -> np.ndarray:
    """B**e mod P of one lane for e in 0..upto-1 (a cached table, grown by doubling)."""
    table = _powers[lane]
    while len(table) < upto:
        k = len(table)
        step = pow(BASES[lane], k, P)
        table = np.concatenate([table, _mod(table * np.uint64(step))])
    _powers[lane] = table
    return table[:upto]


def pow_mod(lane: int, exponent: np.ndarray) -> np.ndarray:
    """B**exponent mod P of one lane, per element (exponents of any size: square and multiply)."""
    e = np.asarray(exponent, dtype=np.int64).copy()
    out = np.ones(len(e), np.uint64)
    square = np.full(len(e), BASES[lane], np.uint64)
    while (e > 0).any():
        odd = (e & 1) == 1
        out[odd] = _mod(out[odd] * square[odd])
        square = _mod(square * square)
        e >>= 1
    return out


def lanes(digest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(digest, dtype=np.uint64)
    return d >> np.uint64(32), d & _LANE


def pack(lane1: np.ndarray, lane2: np.ndarray) -> np.ndarray:
    return (np.asarray(lane1, np.uint64) << np.uint64(32)) | np.asarray(lane2, np.uint64)


def shifted(digest: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The digest of each byte string followed by `length` more bytes of its own, minus those
    bytes' digest: H * B**length per lane (the left part of combine)."""
    h1, h2 = lanes(digest)
    return pack(_mod(h1 * pow_mod(0, length)), _mod(h2 * pow_mod(1, length)))


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Lane-wise sum mod P of two digests."""
    a1, a2 = lanes(a)
    b1, b2 = lanes(b)
    return pack(_mod(a1 + b1), _mod(a2 + b2))


def combine(left: np.ndarray, right: np.ndarray, right_len: np.ndarray) -> np.ndarray:
    """H(left || right) from the two parts' digests and the right part's length."""
    return add(shifted(left, right_len), right)


def digests(buf: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The digest of buf[start[i]:start[i] + count[i]] for every i (count >= 0), vectorised:
    every byte times its lane's power, summed per string (a term is below 2**37: sums of up to
    _LONG bytes fit in 64 bits; longer strings, rare, are hashed in parts and combined)."""
    start = np.asarray(start, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    out = np.zeros(len(count), np.uint64)
    for r in np.flatnonzero(count > _LONG):
        whole = np.zeros(1, np.uint64)
        for at in range(0, int(count[r]), _LONG):
            n = min(_LONG, int(count[r]) - at)
            part = _digests_of(buf, start[r:r + 1] + at, np.array([n]))
            whole = combine(whole, part, np.array([n]))
        out[r] = whole[0]
    rows = np.flatnonzero((count > 0) & (count <= _LONG))
    if len(rows) == 0:
        return out
    ends = np.cumsum(count[rows])
    lo = 0
    while lo < len(rows):
        # rows [lo, hi): at least one, else as many as fit in one chunk of bytes
        base = ends[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + _CHUNK_BYTES, side="right")))
        out[rows[lo:hi]] = _digests_of(buf, start[rows[lo:hi]], count[rows[lo:hi]])
        lo = hi
    return out


def _digests_of(buf: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """digests of strings that are all non-empty."""
    total = int(count.sum())
    first = np.cumsum(count) - count                    # each string's first flat position
    within = np.arange(total, dtype=np.int64) - np.repeat(first, count)
    data = buf[np.repeat(start, count) + within].astype(np.uint64)
    exponent = np.repeat(count, count) - 1 - within
    del within
    lanes_out = []
    for lane in (0, 1):
        terms = data * powers(lane, int(count.max()))[exponent]
        lanes_out.append(_mod(np.add.reduceat(terms, first)))
    return pack(*lanes_out)


def reference(data: bytes) -> int:
    """The digest of one byte string, byte by byte (the definition; for tests)."""
    h = [0, 0]
    for b in data:
        h = [(h[k] * BASES[k] + b) % P for k in (0, 1)]
    return h[0] << 32 | h[1]
