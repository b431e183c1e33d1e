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

from dr_inspect.decode.gather import gather

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
    every 8-byte word's value times its lane's power, reduced, summed per string (a term is
    below 2**29: sums of up to _LONG / 8 words fit in 64 bits; longer strings, rare, are hashed
    in parts and combined)."""
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
    """digests of strings that are all non-empty, eight bytes at a time: each string is cut in
    8-byte words from its end (zero bytes before its start fill the first word: leading zeros
    add nothing to a polynomial), a word's value is sum(b[k] * B**(7-k)), and the word w places
    from the end weighs B**(8*w)."""
    words = (count + 7) // 8
    first = np.cumsum(words) - words                    # each string's first word
    from_end = np.repeat(words - 1 + first, words) - np.arange(int(words.sum()))
    at = np.repeat(start + count, words) - 8 * (from_end + 1)
    data = gather(buf, np.maximum(at, 0), 8)
    for i in np.flatnonzero(at < 0):                    # a string in the first bytes of buf
        data[i, :-at[i]] = 0
        data[i, -at[i]:] = buf[:8 + at[i]]
    lead = start - at[first]                            # bytes of a first word before its string
    data[first] = np.where(np.arange(8) < lead[:, None], 0, data[first])
    del at
    # both lanes' word values at once: byte k's terms from a table, each lane's sum < 2**32
    value = _byte_terms()[0][data[:, 0]]
    for k in range(1, 8):
        value += _byte_terms()[k][data[:, k]]
    del data
    lanes_out = []
    for lane, word in ((0, value >> np.uint64(32)), (1, value & _LANE)):
        table = powers(lane, 8 * int(words.max()))
        terms = _mod(_mod(word) * table[8 * from_end])
        lanes_out.append(_mod(np.add.reduceat(terms, first)))
    return pack(*lanes_out)


_TERMS: list[np.ndarray] = []


def _byte_terms() -> np.ndarray:
    """(8, 256): b * B**(7-k) mod P of byte value b at position k of a word, lane 1 in the
    high half, lane 2 in the low (the C kernel's digest_table)."""
    if not _TERMS:
        b = np.arange(256, dtype=np.uint64)
        rows = [pack(_mod(b * powers(0, 8)[7 - k]), _mod(b * powers(1, 8)[7 - k]))
                for k in range(8)]
        _TERMS.append(np.stack(rows))
    return _TERMS[0]


def reference(data: bytes) -> int:
    """The digest of one byte string, byte by byte (the definition; for tests)."""
    h = [0, 0]
    for b in data:
        h = [(h[k] * BASES[k] + b) % P for k in (0, 1)]
    return h[0] << 32 | h[1]
