"""The payload digest (decode/digest.py): its definition, its concatenation, and the columns
payload_hash / payload_whole both decoder paths give (the C kernel and numpy)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402
from conftest import require  # noqa: E402

from dr_inspect.decode import decode_file, digest, native  # noqa: E402


def test_kernel_uses_the_same_definition() -> None:
    require(native.available(), "the decoder's C extension was not built")
    from dr_inspect.decode import _native
    assert _native.DIGEST == (digest.P, *digest.BASES)


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_concatenation(a: bytes, b: bytes) -> None:
    ha = np.array([digest.reference(a)], np.uint64)
    hb = np.array([digest.reference(b)], np.uint64)
    assert int(digest.combine(ha, hb, np.array([len(b)]))[0]) == digest.reference(a + b)


def test_vectorised_digests_match_the_definition() -> None:
    rng = np.random.default_rng(3)
    buf = rng.integers(0, 256, 3_000_000, dtype=np.uint8)
    starts = np.array([0, 5, 100, 7, 0, 2_900_000])
    counts = np.array([0, 3, 1500, 0, 17, 99_999])
    got = digest.digests(buf, starts, counts)
    assert [int(g) for g in got] == [digest.reference(bytes(buf[s:s + c]))
                                     for s, c in zip(starts, counts)]
    # a string longer than one summing step is hashed in parts and combined
    long = digest.digests(buf, np.array([11]), np.array([2_500_000]))
    half = digest.digests(buf, np.array([11, 11 + 1_300_000]), np.array([1_300_000, 1_200_000]))
    assert long[0] == digest.combine(half[:1], half[1:], np.array([1_200_000]))[0]
    assert long[0] != half[0]


def test_changed_byte_changes_the_digest() -> None:
    data = bytearray(b"GET /index.html HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n" * 30)
    before = digest.reference(bytes(data))
    for at in (0, 7, len(data) // 2, len(data) - 1):
        changed = bytearray(data)
        changed[at] ^= 0x01
        assert digest.reference(bytes(changed)) != before


def _frames() -> list[tuple[bytes, bytes, int, int]]:
    """(frame, its TCP payload, where the payload starts, captured length) of TCP frames of
    every digest path: payloads of 0..1448 bytes (whole steps of eight and tails), a short
    frame padded to the Ethernet minimum (the padding is no payload), IPv6 and frames cut by a
    snaplen."""
    from scapy.all import IP, TCP, Ether, IPv6, Raw  # type: ignore[import-untyped]
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    rng = np.random.default_rng(5)
    out = []
    for n in (0, 1, 2, 7, 8, 9, 15, 16, 17, 100, 1448):
        payload = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for ip in (IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="fd00::1", dst="fd00::2")):
            frame = bytes(e / ip / TCP(sport=1000, dport=80, flags="PA") / Raw(payload))
            out.append((frame, payload, len(frame) - n, len(frame)))
    padded = bytes(e / IP() / TCP(flags="PA") / Raw(b"ab"))
    padded += b"\x00" * (60 - len(padded))
    out.append((padded, b"ab", 54, len(padded)))
    big = bytes(e / IP() / TCP(flags="PA") / Raw(b"x" * 1000))
    for snap in (54, 60, 96, 1053):                 # 54: headers only
        out.append((big, b"x" * 1000, 54, snap))
    return out


@pytest.mark.parametrize("kernel", ["1", "0"], ids=["C kernel", "numpy"])
def test_decoded_payload_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 kernel: str) -> None:
    if kernel == "1":
        require(native.available(), "the decoder's C extension was not built")
    monkeypatch.setenv(native.ENV, kernel)
    frames = _frames()
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for k, (frame, _, _, cap) in enumerate(frames):
        out.append(struct.pack("<IIII", cg.T0 + k, 0, cap, len(frame)) + frame[:cap])
    path = tmp_path / "payloads.pcap"
    path.write_bytes(b"".join(out))
    table = decode_file(path).packets
    for k, (_, payload, header, cap) in enumerate(frames):
        held = payload[:max(0, cap - header)]
        assert int(table["payload_hash"][k]) == digest.reference(held), k
        assert bool(table["payload_whole"][k]) == (held == payload), k
