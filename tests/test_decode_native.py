"""The compiled decoder kernels (decode/_native.c) against the numpy decoder they stand in for:
the same packets table, stats and errors, on the tcpdump corpus, on crafted frames of every
kind the kernel decodes or hands back, and on random frames and mutated files."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402
from conftest import require  # noqa: E402

from dr_inspect.decode import StreamDecoder, decode_file, native  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402


@pytest.fixture(autouse=True)
def _kernels() -> None:
    require(native.available(), "the decoder's C extension was not built (no C compiler at "
                                "install time): nothing to compare")


def _decode(path: Path, use_kernel: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(native.ENV, "1" if use_kernel else "0")
    try:
        return decode_file(path)
    except CaptureError as exc:
        return exc


def _same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding path with and without the kernels gives the same result."""
    ref = _decode(path, False, monkeypatch)
    got = _decode(path, True, monkeypatch)
    if isinstance(ref, CaptureError) or isinstance(got, CaptureError):
        assert str(got) == str(ref)
        return
    pd.testing.assert_frame_equal(got.packets, ref.packets)
    # Reasons are counted per batch of frames; their order is not part of the result.
    assert dict(got.stats.undecodable) == dict(ref.stats.undecodable)
    assert got.stats.frames_read == ref.stats.frames_read
    assert got.stats.frames_decoded == ref.stats.frames_decoded
    assert str(got.stats.error) == str(ref.stats.error)


@pytest.mark.corpus
def test_corpus_same_tables(corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(p for p in corpus_dir.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap"))
    assert len(files) > 500
    for path in files:
        _same(path, monkeypatch)


def test_bundled_captures_same_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parent.parent / "captures"
    files = sorted(root.glob("*/*.pcap*"))
    assert files
    for path in files:
        _same(path, monkeypatch)


def _eth(payload: bytes, ethertype: int, tags: list[int] = ()) -> bytes:
    head = bytes.fromhex("020000000001020000000002")
    for tpid in tags:
        head += struct.pack(">HH", tpid, 0x0123)
    return head + struct.pack(">H", ethertype) + payload


# (name, frame, caplen cut or None): every branch of the kernel, and the frames it hands back.
def _crafted() -> list[bytes]:
    from scapy.all import (  # type: ignore[import-untyped]
        ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest, IPOption, IPv6,
        IPv6ExtHdrFragment, Raw)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [
        e / IP(src="10.0.0.1", dst="10.0.0.2", id=7, ttl=9) / TCP(sport=1, dport=80, seq=5,
                                                                 ack=6, flags="PA") / Raw(b"x" * 9),
        e / IP(options=[IPOption(b"\x94\x04\x00\x00")]) / TCP(options=[("MSS", 1460)]),
        e / IP(flags="MF", frag=0) / UDP(sport=53, dport=53) / Raw(b"y" * 20),
        e / IP(frag=100, proto=6) / Raw(b"z" * 30),                      # not the first fragment
        e / IP(len=0) / TCP(),                                            # TSO: length 0
        e / IP(len=60000) / TCP(),                                        # bogus total length
        e / IP() / ICMP(type=3, code=1) / Raw(b"q" * 8),
        e / IP(proto=47) / Raw(b"gre!"),
        e / IPv6(src="fd00::1", dst="fd00::2", hlim=3) / TCP(sport=9, dport=8),
        e / IPv6() / UDP(),
        e / IPv6() / IPv6ExtHdrFragment() / TCP(),                        # extension header
        e / IPv6() / ICMPv6EchoRequest(),                                 # ICMPv6
        e / IPv6(nh=59),                                                  # no next header
        e / ARP(op=2, hwsrc="02:00:00:00:00:09", psrc="10.0.0.9", pdst="10.0.0.1"),
        e / Dot1Q(vlan=5) / IP() / TCP(),
        e / Dot1AD(vlan=6) / Dot1Q(vlan=7) / IP() / UDP(),
        e / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / Dot1Q(vlan=5) / IP(),
        Ether(type=0x0100) / Raw(b"llc frame here"),                      # 802.3 length
        Ether(type=0x88CC) / Raw(b"lldp"),
    ]
    out = [bytes(f) for f in frames]
    out.append(_eth(bytes.fromhex("0001080006040001") + b"\x00" * 3, 0x0806))   # cut ARP
    out.append(_eth(bytes.fromhex("0001080004060001") + b"\x00" * 20, 0x0806))  # not Ethernet/IP
    out.append(_eth(bytes([0x45, 0]) + b"\x00" * 30, 0x0800, tags=[0x8100]))
    out.append(_eth(bytes([0x65]) + b"\x00" * 40, 0x0800))                       # bad version
    out.append(_eth(bytes([0x43]) + b"\x00" * 40, 0x0800))                       # IHL 12
    out.append(_eth(b"", 0x0800))                                                # no IP byte
    return out


def test_crafted_frames_cut_at_every_length(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _crafted()
    records = []
    for frame in frames:
        for cut in range(0, len(frame) + 1):
            records.append((frame[:cut], len(frame)))
    path = tmp_path / "cuts.pcap"
    path.write_bytes(_pcap(records))
    _same(path, monkeypatch)
    monkeypatch.setenv(native.ENV, "1")
    table = decode_file(path).packets
    assert len(table) == len(records)
    assert table["seq"].notna().any() and table["arp_sender_ip"].notna().any()
    assert table["src_ip"].astype(str).str.contains(":").any()


def _pcap(records: list[tuple[bytes, int]], linktype: int = 1) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for k, (data, wirelen) in enumerate(records):
        out.append(struct.pack("<IIII", cg.T0 + k, k % 1_000_000, len(data), wirelen) + data)
    return b"".join(out)


@st.composite
def _frame(draw: st.DrawFn) -> tuple[bytes, int]:
    """A frame whose headers are mostly well-formed, with random field values and a random cut."""
    ethertype = draw(st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8, 0x0600, 0x05FF,
                                      0x1234]))
    tags = draw(st.lists(st.sampled_from([0x8100, 0x88A8, 0x9100]), max_size=5))
    if ethertype == 0x0800:
        ihl = draw(st.integers(0, 15))
        version = draw(st.sampled_from([4, 4, 4, 6, 0]))
        l3 = bytes([version << 4 | ihl, 0]) + draw(st.binary(min_size=2, max_size=2)) \
            + draw(st.binary(min_size=2, max_size=2)) + draw(st.sampled_from(
                [b"\x00\x00", b"\x40\x00", b"\x20\x00", b"\x00\x10"])) \
            + draw(st.binary(min_size=1, max_size=1)) \
            + bytes([draw(st.sampled_from([6, 17, 1, 58, 47]))]) \
            + draw(st.binary(min_size=10, max_size=10)) + b"\x00" * max(0, ihl * 4 - 20)
    elif ethertype == 0x86DD:
        version = draw(st.sampled_from([6, 6, 4]))
        l3 = bytes([version << 4, 0, 0, 0]) + draw(st.binary(min_size=2, max_size=2)) \
            + bytes([draw(st.sampled_from([6, 17, 58, 0, 43, 44, 60, 51, 59])),
                     draw(st.integers(0, 255))]) + draw(st.binary(min_size=32, max_size=32))
    elif ethertype == 0x0806:
        l3 = bytes.fromhex("0001") + draw(st.sampled_from([b"\x08\x00", b"\x86\xdd"])) \
            + draw(st.sampled_from([b"\x06\x04", b"\x06\x10", b"\x08\x04"])) \
            + draw(st.binary(min_size=22, max_size=22))
    else:
        l3 = b""
    l4 = bytes([0, 80, 0x1F, 0x90]) + draw(st.binary(min_size=8, max_size=8)) \
        + bytes([draw(st.integers(0, 255)), draw(st.integers(0, 255))]) \
        + draw(st.binary(min_size=6, max_size=30))
    frame = _eth(l3 + l4, ethertype, tags)
    cut = draw(st.integers(0, len(frame)))
    wirelen = draw(st.sampled_from([len(frame), len(frame) + 100, cut, max(0, cut - 3)]))
    return frame[:cut], wirelen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(_frame(), min_size=1, max_size=40),
       linktype=st.sampled_from([1, 1, 1, 113, 101]))
def test_random_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       frames: list[tuple[bytes, int]], linktype: int) -> None:
    path = tmp_path / "random.pcap"
    path.write_bytes(_pcap(frames, linktype))
    _same(path, monkeypatch)


@pytest.mark.parametrize("tail", [b"", b"\x01\x02\x03", struct.pack("<IIII", cg.T0, 0, 64, 64),
                                  struct.pack("<IIII", cg.T0, 0, 0x7FFFFFFF, 64) + b"x" * 80],
                         ids=["clean end", "cut header", "cut record", "absurd caplen"])
def test_walk_ends_and_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              tail: bytes) -> None:
    """A clean end, a cut record header, a cut record and an absurd caplen: same frames, same
    error at the same offset."""
    good = [(bytes(p), len(bytes(p))) for p in cg.lab_ethernet_packets()]
    path = tmp_path / "walk.pcap"
    path.write_bytes(_pcap(good) + tail)
    _same(path, monkeypatch)


@pytest.mark.parametrize("damage", ["none", "bad trailer", "bad length", "cut block",
                                    "cut header", "bad interface"])
def test_pcapng_walk_sections_and_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         damage: str) -> None:
    """pcapng: two sections (the second big-endian, nanosecond), unknown blocks to skip, then
    a break of each kind in the middle of the second section: same frames, same error."""
    eth = [bytes(p) for p in cg.lab_ethernet_packets()]
    first = cg.NgSection([cg.NgInterface(1, "br_e"), cg.NgInterface(1, "br_lvs", tsresol=9)],
                         [cg.NgPacket(k % 2, p, cg.T0 * 10**6 + k) for k, p in enumerate(eth)],
                         extra_blocks=[(0x0BAD, b"skip me!")])
    second = cg.NgSection([cg.NgInterface(1, "any", tsresol=9)],
                          [cg.NgPacket(0 if damage != "bad interface" or k != 3 else 7, p,
                                       cg.T0 * 10**9 + k) for k, p in enumerate(eth)],
                          big_endian=True)
    data = bytearray(cg.pcapng_bytes([first, second]))
    # the 4th packet block of the second section: its offset found by walking the blocks
    at, seen, section = 0, 0, 0
    while at < len(data):
        e = ">" if section == 2 else "<"
        btype, btl = struct.unpack(e + "II", data[at:at + 8])
        if btype == 0x0A0D0D0A:
            section += 1
            e = "<" if data[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btl = struct.unpack(e + "I", data[at + 4:at + 8])[0]
        elif section == 2 and btype == 6:
            seen += 1
            if seen == 4:
                break
        at += btl
    if damage == "bad trailer":
        data[at + btl - 1] ^= 0xFF
    elif damage == "bad length":
        data[at + 4:at + 8] = struct.pack(">I", 13)
    elif damage == "cut block":
        del data[at + btl - 6:]
    elif damage == "cut header":
        del data[at + 5:]
    path = tmp_path / "ng.pcapng"
    path.write_bytes(bytes(data))
    _same(path, monkeypatch)


def test_stream_feeds_match(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """StreamDecoder (live capture) uses the kernels too: byte-by-byte chunks, same rows."""
    data = _pcap([(bytes(p), len(bytes(p))) for p in cg.lab_ethernet_packets()])
    tables = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(native.ENV, flag)
        dec = StreamDecoder("s")
        parts = [dec.feed(data[i:i + 7]) for i in range(0, len(data), 7)] + [dec.finish()]
        tables[flag] = pd.concat([p for p in parts if len(p)], ignore_index=True)
    pd.testing.assert_frame_equal(tables["1"].astype(str), tables["0"].astype(str))
    assert np.array_equal(tables["1"]["frame"], np.arange(1, len(tables["1"]) + 1))


def test_kernels_on_random_bytes() -> None:
    """Arbitrary bytes, positions and lengths (in and out of the buffer, negative) never make the
    kernels fail or read outside the buffer (scripts/asan-kernels.sh runs this under
    AddressSanitizer)."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(0, 3000))
        buf = rng.integers(0, 256, n, dtype=np.uint8)
        for p in rng.integers(0, max(1, n - 40), 10 if n > 40 else 0):
            buf[p + 12:p + 15] = rng.choice([[8, 0, 0x45], [0x86, 0xDD, 0x60], [8, 6, 0],
                                             [0x81, 0, 0], [8, 0, 0x4F]])
        k = int(rng.integers(0, 40))
        cols, slow, ip6 = native.decode_frames(
            buf, rng.integers(-5, n + 5, k), rng.integers(-2, 200, k), rng.integers(-2, 300, k),
            rng.choice([1, 1, 113, -1], k).astype(np.int32))
        assert len(slow) == k and len(ip6) <= k
        start = int(rng.integers(0, max(1, n)))
        records = native.PcapRecords(max(0, n - start) // 16 + 1)
        end, status = records.walk(buf, start, n, 16, bool(rng.integers(0, 2)),
                                   int(rng.choice([64, 262144 * 4])), 1000, 1)
        (pos, caplen, _, _), _, _, _ = records.columns()
        assert status in (0, 1, 2) and start <= end <= n
        assert ((pos >= start) & (pos + caplen <= n)).all()
        pos, _, btl, end, status = native.pcapng_walk(buf, start, bool(rng.integers(0, 2)),
                                                      int(rng.choice([64, 1 << 24])))
        assert status in (0, 1, 2, 3) and start <= end <= n
        assert ((pos >= start) & (pos + btl <= n)).all()
