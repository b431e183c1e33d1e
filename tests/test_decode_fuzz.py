"""Fuzz: mutated captures (bit flips, truncation, splices, header field changes) either decode or
raise CaptureError, in whole-file, chunked (iter_decode) and streaming mode. Nothing else."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402

from dr_inspect.decode import StreamDecoder, decode_file, iter_decode, schema  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402


def _seeds(tmp: Path) -> list[bytes]:
    eth = cg.lab_ethernet_packets()
    sec = cg.NgSection([cg.NgInterface(1, "br_e", tsresol=9), cg.NgInterface(113, "any")],
                       [cg.NgPacket(k % 2, bytes(p) if k % 2 == 0 else bytes(cg.sll_packets()[0]),
                                    cg.T0 * 10**9 + k) for k, p in enumerate(eth)])
    be = cg.NgSection([cg.NgInterface(276, "any", tsresol=6)],
                      [cg.NgPacket(0, bytes(p), cg.T0 * 10**6) for p in cg.sll2_packets()],
                      big_endian=True)
    return [
        cg.write_pcap(tmp / "a.pcap", eth).read_bytes(),
        cg.write_pcap(tmp / "b.pcap", eth, nano=True, big_endian=True).read_bytes(),
        cg.pcapng_bytes([sec, be]),
        cg.write_pcap(tmp / "c.pcap", cg.raw_ip_packets(), linktype=101).read_bytes(),
    ]




@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    seeds = _SEED_CACHE
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "field", "dup"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "splice":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "dup":
            end = draw(st.integers(pos, len(data)))
            data[pos:pos] = data[pos:end]
        else:
            value = draw(st.sampled_from([0, 1, 3, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                          0x0A0D0D0A, 65536]) | st.integers(0, 2**32 - 1))
            pos -= pos % 4
            data[pos:pos + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), value)
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        return gzip.compress(bytes(data))
    return bytes(data)


_SEED_CACHE: list[bytes] = []


@pytest.fixture(scope="module", autouse=True)
def _seed_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    _SEED_CACHE[:] = _seeds(tmp_path_factory.mktemp("seeds"))


def _check_table(df: pd.DataFrame) -> None:
    assert list(df.columns) == schema.COLUMNS + schema.EXTRA_COLUMNS


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=mutated(), chunk=st.integers(1, 200))
def test_mutated_captures(tmp_path_factory: pytest.TempPathFactory, data: bytes,
                          chunk: int) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.pcap"
    path.write_bytes(data)
    try:
        got = decode_file(path)
    except CaptureError as exc:
        assert exc.offset is not None
        whole = None
    else:
        _check_table(got.packets)
        assert len(got.packets) == got.stats.frames_read
        whole = got
    # Chunked and streaming decoding agree with the whole-file decode on the frames it found.
    try:
        pieces = list(iter_decode(path, chunk_frames=5))
    except CaptureError:
        assert whole is None
    else:
        assert whole is not None
        assert sum(len(p.packets) for p in pieces) == len(whole.packets)
        assert (pieces[-1].stats.error is None) == (whole.stats.error is None)
    if data[:2] == b"\x1f\x8b":
        return
    dec = StreamDecoder("fuzz")
    rows = 0
    chunk = max(chunk, len(data) // 40)      # at most ~40 feeds: keeps the test quick
    try:
        for i in range(0, len(data), chunk):
            rows += len(dec.feed(data[i:i + chunk]))
        rows += len(dec.finish())
    except CaptureError:
        assert whole is None       # feed() raises only for an unreadable file header
    else:
        if whole is None:          # e.g. a stream that ends inside the file header
            assert rows == 0 and dec.stats.error is not None and not dec.header_read
        else:
            assert rows == len(whole.packets)
            assert (dec.stats.error is None) == (whole.stats.error is None)
