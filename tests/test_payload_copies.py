"""DR002 compares the payload bytes of a forwarded copy with its original's (correlate/payload.py)
where both captures hold them whole: a same-length rewrite fails, in plain copies, in GRO/TSO
coalesced ones and in one of several retransmitted copies; a capture cut by its snaplen is never
judged on bytes (a healthy one stays PASS, a rewritten one is not failed on a guess)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecaps import CLIENT_MAC, DrCapture
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from dr_inspect.analysis.paths import verify_paths
from dr_inspect.correlate.payload import combined
from dr_inspect.decode import digest

CPORT = 44000


def _data_copies(cap: DrCapture, cport: int = CPORT) -> list:
    """The forwarded copies with payload of one connection, in time order."""
    return [p for p in cap.frames[cap.rs_point] if Raw in p and p[TCP].sport == cport]


def _flip(pkt, at: int = 3) -> None:
    """The same payload length, one byte changed (as a rewriting helper would)."""
    data = bytearray(pkt[Raw].load)
    data[at] ^= 0x20
    pkt[Raw].load = bytes(data)


def _dr002(cap: DrCapture, folder: Path, snaplen: int | None = None,
           points: tuple[str, ...] = ("br_e", "br_lvs")) -> tuple[str, list]:
    """DR002's status and evidence on the set (with another, healthy connection), its points
    cut to a snaplen if given."""
    cap.connection(CPORT + 1, rs=1)
    report = verify_paths([_written(cap, folder, snaplen, points)])
    rule = next(r for r in report.rules if r.id == "DR002")
    return rule.status, rule.evidence


def _written(cap: DrCapture, folder: Path, snaplen: int | None = None,
             points: tuple[str, ...] = ("br_e", "br_lvs")) -> Path:
    path = cap.write(folder)
    if snaplen is not None:
        for point in points:
            _cut(path / f"{point}.pcap", snaplen)
    return path


def _cut(pcap: Path, snaplen: int) -> None:
    """Rewrite a classic pcap as tcpdump -s snaplen would have captured it."""
    data = pcap.read_bytes()
    out, at = [data[:16] + struct.pack("<I", snaplen) + data[20:24]], 24
    while at < len(data):
        sec, frac, cap, wire = struct.unpack("<IIII", data[at:at + 16])
        keep = min(cap, snaplen)
        out.append(struct.pack("<IIII", sec, frac, keep, wire) + data[at + 16:at + 16 + keep])
        at += 16 + cap
    pcap.write_bytes(b"".join(out))


def _connection(**kwargs) -> DrCapture:
    cap = DrCapture().healthy()
    cap.connection(CPORT, **kwargs)
    return cap


def test_faithful_copies_pass(tmp_path):
    for name, kwargs in {"plain": {}, "gro": {"gro": True}, "tso": {"tso": True}}.items():
        status, _ = _dr002(_connection(**kwargs), tmp_path / name)
        assert status == "pass", name


def test_same_length_rewrite_of_a_plain_copy_fails(tmp_path):
    cap = _connection()
    _flip(_data_copies(cap)[0])
    status, evidence = _dr002(cap, tmp_path / "set")
    assert status == "fail"
    assert [e for e in evidence if e.extra.get("payload_changed") is True]


def test_rewrite_inside_a_coalesced_copy_fails(tmp_path):
    for shape in ("two-segment", "shared-segment"):
        cap = DrCapture(shape).healthy()
        cap.connection(CPORT, gro=True)
        (copy,) = [p for p in _data_copies(cap) if p.src == cap.dir_out]
        _flip(copy, at=20)                  # in the second of the three segments it carries
        assert _dr002(cap, tmp_path / shape)[0] == "fail", shape


def test_rewrite_of_one_tso_piece_fails(tmp_path):
    for shape in ("two-segment", "shared-segment"):     # on one LAN the original is beside them
        cap = DrCapture(shape).healthy()
        cap.connection(CPORT, tso=True)
        pieces = [p for p in _data_copies(cap) if p.src == cap.dir_out]
        _flip(pieces[2], at=1)              # the last piece, not the one matched to the original
        assert _dr002(cap, tmp_path / shape)[0] == "fail", shape


def _retransmitted(cap: DrCapture, rewrite: int | None) -> None:
    """The request sent twice more (new IP IDs), each forwarded; copy `rewrite` changed."""
    original = next(p for p in cap.frames[cap.vip_point]
                    if Raw in p and p[TCP].sport == CPORT and p.dst != CLIENT_MAC)
    (copy,) = _data_copies(cap)
    for k in (1, 2):
        again, forwarded = original.copy(), copy.copy()
        for p in (again, forwarded):
            p[IP].id += 50 * k
            del p[IP].chksum
        cap.emit(cap.vip_point, again, float(original.time) + 0.2 * k)
        cap.emit(cap.rs_point, forwarded, float(copy.time) + 0.2 * k)
    if rewrite is not None:
        _flip(_data_copies(cap)[rewrite])


def test_rewrite_of_one_retransmitted_copy_fails(tmp_path):
    cap = _connection()
    _retransmitted(cap, rewrite=None)
    assert _dr002(cap, tmp_path / "healthy")[0] == "pass"
    cap = _connection()
    _retransmitted(cap, rewrite=2)
    status, evidence = _dr002(cap, tmp_path / "rewritten")
    assert status == "fail" and len(evidence) == 1


def test_snaplen_cut_captures_are_not_judged_on_bytes(tmp_path):
    # 54 bytes: Ethernet, IPv4 and TCP headers only; 70: a part of each payload. Cut at both
    # points or only at the real-server side (the copies' digests then cover fewer bytes than
    # their originals'): healthy traffic passes
    for snaplen in (54, 70):
        for points in (("br_e", "br_lvs"), ("br_lvs",)):
            for name, kwargs in {"plain": {}, "gro": {"gro": True}, "tso": {"tso": True}}.items():
                folder = tmp_path / f"{name}{snaplen}{len(points)}"
                report = verify_paths([_written(_connection(**kwargs), folder, snaplen, points)])
                assert report.verdict == "pass", (name, snaplen, points)
    # a byte the cut copy does not hold is changed: nothing can be said, nothing is failed
    cap = _connection()
    _flip(_data_copies(cap)[0], at=30)
    assert _dr002(cap, tmp_path / "rewritten", 70, ("br_lvs",))[0] == "pass"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_combined_digest_of_pieces(data):
    """Pieces that tile a range give the digest of its bytes; a changed piece another one;
    a piece whose payload is not held whole, or a gap, leaves it unknown."""
    whole = data.draw(st.binary(min_size=1, max_size=400))
    base = data.draw(st.integers(0, 2**32 - 1))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(whole) - 1), max_size=5))) \
        if len(whole) > 1 else []
    edges = [0, *cuts, len(whole)]
    pieces = [whole[a:b] for a, b in zip(edges[:-1], edges[1:])]
    order = data.draw(st.permutations(range(len(pieces))))      # capture order is any order
    held = np.ones(len(pieces), dtype=bool)
    fault = data.draw(st.sampled_from(["none", "change", "cut", "gap"]))
    texts = list(pieces)
    if fault == "change":
        k = data.draw(st.integers(0, len(pieces) - 1))
        texts[k] = bytes([texts[k][0] ^ 1]) + texts[k][1:]
    elif fault == "cut":
        held[data.draw(st.integers(0, len(pieces) - 1))] = False
    keep = [i for i in order if not (fault == "gap" and len(pieces) > 1 and i == order[0])]
    seq = np.array([(base + edges[i]) % 2**32 for i in keep])
    got, known = combined(np.zeros(len(keep), dtype=np.int64), seq,
                          np.array([len(pieces[i]) for i in keep]),
                          np.array([digest.reference(texts[i]) for i in keep], dtype=np.uint64),
                          held[keep], np.array([0]), np.array([base]), np.array([len(whole)]))
    if fault in ("cut", "gap") and (fault == "cut" or len(pieces) > 1):
        assert not known[0]
    else:
        assert known[0]
        assert (int(got[0]) == digest.reference(whole)) == (fault != "change")
