"""Unit tests of the decoder: formats, byte orders, link types, protocols, errors, streaming, CLI.

Captures are crafted with scapy (tests/capturegen.py) into tmp_path; expected values come from the
scapy packets themselves, not from our decoder. Every test runs twice: with the compiled kernels
(where they were built) and with the numpy decoder alone.
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402

from dr_inspect.cli import main  # noqa: E402
from dr_inspect.decode import (  # noqa: E402
    DecodedCapture,
    StreamDecoder,
    concat_packets,
    decode_file,
    iter_decode,
    schema,
)
from dr_inspect.decode import native  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402

ALL = schema.COLUMNS + schema.EXTRA_COLUMNS


@pytest.fixture(autouse=True, params=["kernels", "numpy"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "kernels":
        require(native.available(), "the decoder's C extension was not built")
    monkeypatch.setenv(native.ENV, "1" if request.param == "kernels" else "0")
    return request.param


def _row(df: pd.DataFrame, frame: int) -> dict:
    return df[df["frame"] == frame].iloc[0].to_dict()


def _na(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _check_schema(df: pd.DataFrame) -> None:
    assert list(df.columns) == ALL
    for col, dtype in schema.DTYPES.items():
        assert str(df[col].dtype) == dtype, (col, df[col].dtype)


# ------------------------------------------------------------------ formats and byte orders

@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("compress", [False, True])
def test_classic_pcap_variants(tmp_path: Path, nano: bool, big_endian: bool,
                               compress: bool) -> None:
    pkts = cg.lab_ethernet_packets()
    path = cg.write_pcap(tmp_path / "x.cap", pkts, nano=nano, big_endian=big_endian,
                         compress=compress)
    got = decode_file(path)
    df = got.packets
    _check_schema(df)
    assert len(df) == len(pkts)
    assert df["frame"].tolist() == list(range(1, len(pkts) + 1))
    assert df["ts_ns"].tolist() == [cg.frame_ts_ns(k, nano=nano) for k in range(len(pkts))]
    assert df["caplen"].tolist() == [len(bytes(p)) for p in pkts]
    assert got.stats.format == "pcap"
    assert got.stats.gzip is compress
    assert got.stats.frames_read == got.stats.frames_decoded == len(pkts)
    assert got.stats.error is None
    assert got.stats.interfaces[0].ts_resolution_ns == (1 if nano else 1000)
    assert set(df["file"]) == {"x.cap"}


def test_point_name_labels_rows(tmp_path: Path) -> None:
    path = cg.write_pcap(tmp_path / "a.pcap", cg.lab_ethernet_packets()[:2])
    assert set(decode_file(path, point="br_e").packets["file"]) == {"br_e"}


def test_pcapng_interfaces_resolutions_sections(tmp_path: Path) -> None:
    eth = cg.lab_ethernet_packets()
    t = cg.T0
    secs = [
        cg.NgSection([cg.NgInterface(1, "br_e", tsresol=9), cg.NgInterface(113, "any"),
                      cg.NgInterface(101, "tun0", tsresol=3),
                      cg.NgInterface(1, "bin", tsresol=0x80 | 10, tsoffset=100)],
                     [cg.NgPacket(0, bytes(eth[0]), t * 10**9 + 5),
                      cg.NgPacket(1, bytes(cg.sll_packets()[0]), t * 10**6 + 7),
                      cg.NgPacket(2, cg.raw_ip_packets()[0], t * 10**3 + 9),
                      cg.NgPacket(3, bytes(eth[1]), (t << 10) + 512),
                      cg.NgPacket(7, bytes(eth[2]), 0)],           # undefined interface
                     extra_blocks=[(0x0BAD, b"custom block, skipped"), (4, b"\0" * 8)]),
        cg.NgSection([cg.NgInterface(1, "br_lvs", tsresol=6)],
                     [cg.NgPacket(0, bytes(eth[3]), t * 10**6 + 13)], big_endian=True),
    ]
    path = cg.write_pcapng(tmp_path / "m.pcapng", secs)
    got = decode_file(path)
    df = got.packets
    _check_schema(df)
    assert got.stats.format == "pcapng"
    assert [i.name for i in got.stats.interfaces] == ["br_e", "any", "tun0", "bin", "br_lvs"]
    assert [i.linktype for i in got.stats.interfaces] == [1, 113, 101, 1, 1]
    assert [i.ts_resolution_ns for i in got.stats.interfaces] == [1, 1000, 1000000, 976562, 1000]
    assert df["ts_ns"].tolist()[:4] == [t * 10**9 + 5, t * 10**9 + 7000, t * 10**9 + 9_000_000,
                                        (t + 100) * 10**9 + 500_000_000]
    assert df["ts_ns"].iloc[5] == t * 10**9 + 13000
    assert df["interface"].tolist() == [0, 1, 2, 3, -1, 4]
    assert df["linktype"].tolist() == [1, 113, 101, 1, -1, 1]
    assert got.stats.undecodable == {"undefined pcapng interface": 1}
    assert got.stats.frames_decoded == 5
    assert df["src_mac"].iloc[1] == cg.CLIENT_MAC          # SLL address field
    assert df["src_ip"].iloc[2] == cg.CLIENT_IP             # raw IP
    assert df["dst_mac"].iloc[5] == cg.RS_MAC               # big-endian section


# ------------------------------------------------------------------ protocols

def test_lab_ethernet_fields(tmp_path: Path) -> None:
    from scapy.all import ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, ICMPv6ND_NA, IPv6, Raw

    pkts = cg.lab_ethernet_packets()
    df = decode_file(cg.write_pcap(tmp_path / "lab.pcap", pkts)).packets
    for k, p in enumerate(pkts):
        r = df.iloc[k]
        assert r["src_mac"] == p.src and r["dst_mac"] == p.dst
        tags = [lay for lay in (Dot1AD, Dot1Q) if p.haslayer(lay)]
        if tags:
            outer = p[Dot1AD] if p.haslayer(Dot1AD) else p[Dot1Q]
            assert r["vlan"] == outer.vlan
        else:
            assert _na(r["vlan"])
        if p.haslayer(IP):
            ip = p[IP]
            assert (r["ethertype"], r["ip_version"]) == (0x0800, 4)
            assert (r["src_ip"], r["dst_ip"], r["ip_id"], r["ttl"], r["proto"]) == \
                (ip.src, ip.dst, ip.id, ip.ttl, ip.proto)
        elif p.haslayer(IPv6):
            ip6 = p[IPv6]
            assert (r["ethertype"], r["ip_version"], r["ttl"]) == (0x86DD, 6, ip6.hlim)
            assert (r["src_ip"], r["dst_ip"]) == (ip6.src, ip6.dst)
            assert _na(r["ip_id"])
        if p.haslayer(TCP):
            tcp = p[TCP]
            assert (r["src_port"], r["dst_port"], r["seq"], r["ack"], r["tcp_flags"]) == \
                (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags))
            assert r["proto"] == 6
            assert r["payload_len"] == len(bytes(tcp.payload))
        elif p.haslayer(UDP):
            assert (r["src_port"], r["dst_port"]) == (p[UDP].sport, p[UDP].dport)
            assert r["payload_len"] == len(bytes(p[UDP].payload))
            assert _na(r["seq"]) and _na(r["tcp_flags"])
        else:
            assert _na(r["src_port"]) and _na(r["seq"])
        if p.haslayer(ICMP):
            assert (r["icmp_type"], r["icmp_code"]) == (8, 0)
            assert r["payload_len"] == len(bytes(p[ICMP].payload))
        if p.haslayer(ARP):
            a = p[ARP]
            assert r["ethertype"] == 0x0806 and _na(r["src_ip"])
            assert (r["arp_op"], r["arp_sender_mac"], r["arp_sender_ip"], r["arp_target_mac"],
                    r["arp_target_ip"]) == (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst)
        else:
            assert _na(r["arp_op"]) and _na(r["arp_sender_mac"])
        if p.haslayer(ICMPv6ND_NA):
            assert (r["icmp_type"], r["nd_target"], r["nd_lladdr"], r["nd_flags"]) == \
                (136, cg.VIP6, cg.DIRECTOR_MAC, 0x60)
    ns = df.iloc[13]
    assert (ns["icmp_type"], ns["nd_target"], ns["nd_lladdr"]) == (135, cg.VIP6, cg.CLIENT_MAC)
    assert _na(ns["nd_flags"])
    assert df["tcp_flags"].iloc[1] == 0x12 and df["seq"].iloc[1] == 4_000_000_000
    assert len(df) == len(pkts) and bytes(pkts[2][Raw]) == b"GET / HTTP/1.0\r\n\r\n"


def test_nd_lladdr_option_not_first_and_ipv6_fragments(tmp_path: Path) -> None:
    from scapy.all import (ICMPv6ND_NS, ICMPv6NDOptMTU, ICMPv6NDOptSrcLLAddr, IPv6,
                           IPv6ExtHdrFragment, TCP, Ether)
    pkts = [
        Ether() / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_NS(tgt="fe80::2")
        / ICMPv6NDOptMTU() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:99"),
        Ether() / IPv6(src="fe80::1", dst="fe80::2") / IPv6ExtHdrFragment(offset=100, m=0)
        / bytes(20),
    ]
    df = decode_file(cg.write_pcap(tmp_path / "nd.pcap", pkts)).packets
    assert df["nd_lladdr"].iloc[0] == "02:00:00:00:00:99"
    assert df["nd_target"].iloc[0] == "fe80::2"
    # A non-first fragment carries no transport header.
    assert _na(df["src_port"].iloc[1]) and _na(df["payload_len"].iloc[1])
    assert df["src_ip"].iloc[1] == "fe80::1"
    del TCP


def test_ipv4_fragment_and_unknown_protocol(tmp_path: Path) -> None:
    from scapy.all import GRE, IP, TCP, Ether
    pkts = [Ether() / IP(src="1.1.1.1", dst="2.2.2.2", frag=100, proto=6) / bytes(30),
            Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / GRE() / IP() / TCP()]
    df = decode_file(cg.write_pcap(tmp_path / "f.pcap", pkts)).packets
    assert df["proto"].tolist() == [6, 47]
    assert df["src_port"].isna().all() and df["payload_len"].isna().all()


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_linktypes(tmp_path: Path, linktype: int) -> None:
    df = decode_file(cg.write_pcap(tmp_path / "r.pcap", cg.raw_ip_packets(),
                                   linktype=linktype)).packets
    assert df["src_ip"].tolist() == [cg.CLIENT_IP, cg.CLIENT6]
    assert df["ip_version"].tolist() == [4, 6]
    assert df["tcp_flags"].tolist() == [0x02, 0x04]
    assert df["src_mac"].isna().all() and df["dst_mac"].isna().all()
    assert df["ethertype"].isna().all()


def test_bsd_loopback(tmp_path: Path) -> None:
    df = decode_file(cg.write_pcap(tmp_path / "lo.pcap", cg.loopback_packets(),
                                   linktype=0)).packets
    assert df["src_ip"].tolist() == ["127.0.0.1", "::1"]
    assert df["proto"].tolist() == [6, 17] and df["dst_port"].tolist() == [6, 9]
    assert df["src_mac"].isna().all() and df["ethertype"].isna().all()


def test_raw_ipv4_ipv6_linktypes(tmp_path: Path) -> None:
    v4, v6 = cg.raw_ip_packets()
    assert decode_file(cg.write_pcap(tmp_path / "4.pcap", [v4], linktype=228)
                       ).packets["dst_ip"].tolist() == [cg.VIP]
    assert decode_file(cg.write_pcap(tmp_path / "6.pcap", [v6], linktype=229)
                       ).packets["dst_ip"].tolist() == [cg.VIP6]


def test_sll_and_sll2(tmp_path: Path) -> None:
    df = decode_file(cg.write_pcap(tmp_path / "s.pcap", cg.sll_packets(), linktype=113)).packets
    assert df["src_mac"].tolist() == [cg.CLIENT_MAC, cg.DIRECTOR_MAC]
    assert df["dst_mac"].isna().all()
    assert df["ethertype"].tolist() == [0x0800, 0x0806]
    assert df["arp_sender_ip"].iloc[1] == cg.VIP
    require(bool(cg.sll2_packets()), "this scapy has no CookedLinuxV2 (pip install -U scapy)")
    df2 = decode_file(cg.write_pcap(tmp_path / "s2.pcap", cg.sll2_packets(),
                                    linktype=276)).packets
    assert df2["src_mac"].tolist() == [cg.RS_MAC, cg.CLIENT_MAC]
    assert df2["dst_mac"].isna().all()
    assert df2["ethertype"].tolist() == [0x0800, 0x86DD]
    assert df2["src_ip"].tolist() == [cg.VIP, cg.CLIENT6]


def test_unknown_linktype_is_counted_not_an_error(tmp_path: Path) -> None:
    got = decode_file(cg.write_pcap(tmp_path / "u.pcap", [b"\x01\x02\x03"] * 3, linktype=147))
    assert got.stats.error is None
    assert got.stats.undecodable == {"unsupported link type 147": 3}
    assert got.stats.frames_decoded == 0 and len(got.packets) == 3
    assert got.packets["src_mac"].isna().all()


def test_truncated_headers_keep_captured_fields(tmp_path: Path) -> None:
    pkts = cg.lab_ethernet_packets()
    # snaplen 40: Ethernet + IPv4 header + 6 bytes of TCP (ports, not seq/ack/flags)
    path = tmp_path / "t.pcap"
    cg.write_pcap(path, [bytes(pkts[0])[:40], bytes(pkts[8])[:24], bytes(pkts[0])[:10]])
    got = decode_file(path)
    df = got.packets
    r = df.iloc[0]
    assert (r["src_ip"], r["dst_ip"], r["src_port"], r["dst_port"]) == \
        (cg.CLIENT_IP, cg.VIP, 51000, 8000)
    assert _na(r["seq"]) and _na(r["tcp_flags"])
    assert df["arp_op"].iloc[1] == 1 and _na(df["arp_sender_ip"].iloc[1])
    assert df["dst_mac"].iloc[2] == cg.DIRECTOR_MAC and _na(df["src_mac"].iloc[2])
    assert got.stats.undecodable == {"truncated TCP header": 1, "truncated ARP header": 1,
                                     "truncated Ethernet header": 1}
    assert got.stats.frames_decoded == 0 and got.stats.frames_read == 3


# ------------------------------------------------------------------ bad files

def _pcap_header(little: bool = True) -> bytes:
    e = "<" if little else ">"
    return struct.pack(e + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def test_file_errors(tmp_path: Path) -> None:
    cases = {
        "empty": (b"", 0, "empty file"),
        "text": (b"hello world, not a capture\n", 0, "not a pcap or pcapng file"),
        "short": (_pcap_header()[:10], 10, "truncated pcap file header"),
        "ng-short": (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", 0, "truncated pcapng section header"),
        "ng-bom": (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x11\x22\x33\x44" + bytes(16), 8,
                   "bad pcapng byte-order magic"),
    }
    for name, (data, offset, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CaptureError) as exc:
            decode_file(path)
        assert exc.value.offset == offset, name
        assert reason in exc.value.reason, (name, exc.value.reason)
        assert str(path) in str(exc.value)
    with pytest.raises(CaptureError, match="no such file"):
        decode_file(tmp_path / "missing.pcap")


def test_broken_midway_keeps_earlier_frames(tmp_path: Path) -> None:
    pkts = cg.lab_ethernet_packets()
    good = cg.write_pcap(tmp_path / "g.pcap", pkts).read_bytes()
    sizes = [len(bytes(p)) for p in pkts]
    cut_at = 24 + sum(16 + s for s in sizes[:5])         # start of frame 6
    # truncated in the middle of frame 6's data
    (tmp_path / "trunc.pcap").write_bytes(good[:cut_at + 20])
    got = decode_file(tmp_path / "trunc.pcap")
    assert len(got.packets) == 5 and got.stats.frames_read == 5
    assert got.stats.error is not None and got.stats.error.offset == cut_at
    assert "truncated record" in got.stats.error.reason
    # absurd caplen in frame 6: no gigabyte allocation, error at that record
    bad = bytearray(good)
    bad[cut_at + 8:cut_at + 12] = struct.pack("<I", 0x7FFFFFF0)
    (tmp_path / "absurd.pcap").write_bytes(bytes(bad))
    got = decode_file(tmp_path / "absurd.pcap")
    assert len(got.packets) == 5
    assert got.stats.error.offset == cut_at and "absurd record length" in got.stats.error.reason
    # gzip cut short: frames before the cut, error names the gzip stream
    (tmp_path / "gz.pcap").write_bytes(gzip.compress(good)[:-30])
    got = decode_file(tmp_path / "gz.pcap")
    assert got.stats.gzip and got.stats.error is not None
    assert 0 < len(got.packets) < len(pkts) + 1


@pytest.mark.parametrize("window", [None, 50_000])
def test_many_frames_walk_with_odd_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         window: int | None) -> None:
    """Enough frames for many walk lanes, sizes from tiny to 64 KiB, both byte orders; with a
    small decode window too (records then straddle window ends, some are bigger than it)."""
    if window is not None:
        import dr_inspect.decode.api as api
        monkeypatch.setattr(api, "WINDOW", window)
    rng = np.random.default_rng(7)
    sizes = rng.choice([14, 42, 60, 1514, 9000, 65535], 3000, p=[.1, .3, .3, .2, .07, .03])
    for little in (True, False):
        path = tmp_path / f"w{little}.pcap"
        path.write_bytes(cg.synthetic_pcap_bytes(sizes.tolist(), little=little))
        got = decode_file(path)
        df = got.packets
        assert got.stats.error is None
        assert df["caplen"].tolist() == sizes.tolist()
        full = sizes >= 42
        assert (df["dst_port"][full].to_numpy() == np.arange(3000)[full]).all()
        # iter_decode and the stream decoder see exactly the same frames
        chunks = list(iter_decode(path, chunk_frames=700))
        assert [len(c.packets) for c in chunks][:4] == [700] * 4
        joined = concat_packets([c.packets for c in chunks])
        _check_schema(joined)
        assert joined["frame"].tolist() == df["frame"].tolist()
        assert joined["dst_port"].astype("Int64").equals(df["dst_port"].astype("Int64"))
        assert chunks[-1].stats.frames_read == 3000


@pytest.mark.parametrize("window", [None, 30_000])
def test_many_frames_pcapng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            window: int | None) -> None:
    if window is not None:
        import dr_inspect.decode.api as api
        monkeypatch.setattr(api, "WINDOW", window)
    rng = np.random.default_rng(3)
    sizes = rng.choice([42, 60, 1514, 9000], 2500, p=[.3, .3, .35, .05]).tolist()
    frames = [cg._udp_frame(k, size) for k, size in enumerate(sizes)]
    secs = [cg.NgSection([cg.NgInterface(1, "a", tsresol=9), cg.NgInterface(1, "b")],
                         [cg.NgPacket(k % 2, f, k) for k, f in enumerate(frames[:2000])],
                         extra_blocks=[(5, b"\0" * 20)]),
            cg.NgSection([cg.NgInterface(1, "c")],
                         [cg.NgPacket(0, f, k) for k, f in enumerate(frames[2000:])],
                         big_endian=True)]
    path = cg.write_pcapng(tmp_path / "many.pcapng", secs)
    got = decode_file(path)
    df = got.packets
    assert got.stats.error is None and len(df) == 2500
    assert df["caplen"].tolist() == sizes
    assert (df["dst_port"].to_numpy() == np.arange(2500) % 65536).all()
    assert df["interface"].tolist() == [k % 2 for k in range(2000)] + [2] * 500
    assert df["ts_ns"].tolist()[:4] == [0, 1000, 2, 3000]
    # A corrupted block trailer in the middle: frames before it are kept, error at that block.
    data = bytearray(path.read_bytes())
    blocks = _pcapng_block_offsets(bytes(data))
    victim = blocks[1500]
    (btl,) = struct.unpack("<I", data[victim + 4:victim + 8])
    data[victim + btl - 4:victim + btl] = struct.pack("<I", btl + 4)
    (tmp_path / "bad.pcapng").write_bytes(bytes(data))
    bad = decode_file(tmp_path / "bad.pcapng")
    assert bad.stats.error is not None and bad.stats.error.offset == victim
    assert len(bad.packets) == 1500 - 4       # SHB, 2 IDBs and the ISB precede the packets


def _pcapng_block_offsets(data: bytes) -> list[int]:
    """Block offsets of a little-endian first section (test helper, straightforward loop)."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        btype, btl = struct.unpack("<II", data[pos:pos + 8])
        if btype == 0x0A0D0D0A and pos:
            break
        out.append(pos)
        pos += btl
    return out


# ------------------------------------------------------------------ streaming

def test_stream_decoder_arbitrary_chunks(tmp_path: Path) -> None:
    pkts = cg.lab_ethernet_packets()
    for path in (cg.write_pcap(tmp_path / "s.pcap", pkts, nano=True),
                 cg.write_pcapng(tmp_path / "s.pcapng", [cg.NgSection(
                     [cg.NgInterface(1, "br_e", tsresol=9)],
                     [cg.NgPacket(0, bytes(p), cg.T0 * 10**9 + k) for k, p in enumerate(pkts)])])):
        data = path.read_bytes()
        whole = decode_file(path).packets
        for step in (1, 7, 100, len(data)):
            dec = StreamDecoder("live")
            parts = [dec.feed(data[i:i + step]) for i in range(0, len(data), step)]
            parts.append(dec.finish())
            got = concat_packets(parts)
            _check_schema(got)
            assert got["frame"].tolist() == list(range(1, len(pkts) + 1))
            for col in ("ts_ns", "seq", "src_ip", "dst_mac", "nd_target", "payload_len"):
                assert got[col].astype(object).where(got[col].notna(), None).tolist() == \
                    whole[col].astype(object).where(whole[col].notna(), None).tolist(), col
            assert dec.stats.frames_read == len(pkts) and dec.stats.error is None


def test_stream_decoder_truncated_end_and_bad_header() -> None:
    dec = StreamDecoder("live")
    dec.feed(_pcap_header() + struct.pack("<IIII", cg.T0, 0, 60, 60) + bytes(10))
    dec.finish()
    assert dec.stats.error is not None and dec.stats.error.offset == 24
    # A stream that ends before its header is complete: finish() reports, never raises.
    quiet = StreamDecoder("quiet")
    assert len(quiet.feed(_pcap_header()[:7])) == 0
    assert len(quiet.finish()) == 0 and not quiet.header_read
    assert "truncated pcap file header" in quiet.stats.error.reason
    with pytest.raises(CaptureError, match="not a pcap"):
        StreamDecoder("x").feed(b"GET / HTTP/1.1\r\n")


def test_iter_decode_yields_once_for_empty_capture(tmp_path: Path) -> None:
    path = tmp_path / "e.pcap"
    path.write_bytes(_pcap_header())
    chunks = list(iter_decode(path))
    assert len(chunks) == 1 and isinstance(chunks[0], DecodedCapture)
    assert len(chunks[0].packets) == 0 and chunks[0].stats.error is None
    _check_schema(chunks[0].packets)


# ------------------------------------------------------------------ CLI

def test_cli_formats(tmp_path: Path) -> None:
    pkts = cg.lab_ethernet_packets()
    path = cg.write_pcap(tmp_path / "c.pcap", pkts)
    runner = CliRunner()
    res = runner.invoke(main, ["decode", str(path), "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split(",") == schema.COLUMNS and len(lines) == len(pkts) + 1
    assert lines[9].split(",")[5] == ""          # ARP frame: empty vlan cell
    assert "15 frames read, 15 decoded" in res.stderr
    res = runner.invoke(main, ["decode", str(path), "--format", "json", "--all-columns"])
    rows = json.loads(res.stdout)
    assert len(rows) == len(pkts) and rows[13]["nd_target"] == cg.VIP6 and rows[0]["vlan"] is None
    res = runner.invoke(main, ["decode", str(path), "--limit", "3"])
    assert res.exit_code == 0 and "51000" in res.stdout
    assert len(res.stdout.strip().splitlines()) == 2 + 3 + 1     # header, rule, rows, "more"
    out = tmp_path / "o.parquet"
    res = runner.invoke(main, ["decode", str(path), "--format", "parquet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    back = pd.read_parquet(out)
    assert list(back.columns) == schema.COLUMNS and len(back) == len(pkts)


def test_cli_broken_file_exit_2_keeps_frames(tmp_path: Path) -> None:
    good = cg.write_pcap(tmp_path / "g.pcap", cg.lab_ethernet_packets()).read_bytes()
    (tmp_path / "b.pcap").write_bytes(good[:-5])
    (tmp_path / "n.pcap").write_bytes(b"nonsense")
    res = CliRunner().invoke(main, ["decode", str(tmp_path / "b.pcap"), str(tmp_path / "n.pcap"),
                                    "--format", "csv"])
    assert res.exit_code == 2
    assert len(res.stdout.splitlines()) == 1 + 14
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("dr-inspect: error:")]
    assert len(errors) == 2 and "truncated record" in errors[0] and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["decode", str(tmp_path / "g.pcap"), "--format", "parquet"])
    assert res.exit_code == 2 and "--output" in res.stderr
