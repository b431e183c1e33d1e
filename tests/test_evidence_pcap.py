"""verify --evidence-pcap: the frames behind each violation, byte for byte, each with a pcapng
comment naming the rule (read back by tshark); Community ID v1 on every connection of the JSON
report (the spec's test vector, and tshark's own communityid for the bundled captures)."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest
from click.testing import CliRunner

from conftest import ROOT, require_tool
from dr_inspect.cli import main
from dr_inspect.report.community_id import community_id, community_id_of
from dr_inspect.report.evidence_pcap import evidence_comments, write_evidence_pcap
from dr_inspect.analysis.paths import verify_paths

ARP_SET = ROOT / "captures" / "fault-rs-answers-arp"


def tshark_fields(path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    tshark = require_tool("tshark", "tshark")
    argv = [tshark, "-r", str(path), *extra, "-T", "fields", "-E", "separator=|"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def raw_frames(path) -> list[bytes]:
    from scapy.utils import RawPcapReader, RawPcapNgReader
    reader = RawPcapNgReader if open(path, "rb").read(4) == b"\x0a\x0d\x0d\x0a" else RawPcapReader
    with reader(str(path)) as r:
        return [data for data, _ in r]


def test_spec_test_vector_and_direction():
    # the Community ID spec's TCP example, seeds 0 and 1
    assert community_id("tcp", "128.232.110.120", 34855, "66.35.250.204", 80) == \
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id(6, "128.232.110.120", 34855, "66.35.250.204", 80, seed=1) == \
        "1:3V71V58M3Ksw/yuFALMcW0LAHvc="
    assert community_id("tcp", "66.35.250.204", 80, "128.232.110.120", 34855) == \
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id_of("tcp 128.232.110.120:34855 -> 66.35.250.204:80") == \
        "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert community_id_of("arp 192.168.7.33 -> 192.168.7.2") is None


def test_evidence_pcap_frames_and_comments(tmp_path):
    out = tmp_path / "why.pcapng"
    result = CliRunner().invoke(main, ["verify", str(ARP_SET), "-q", "--evidence-pcap", str(out)])
    assert result.exit_code == 1, result.output
    report = verify_paths([ARP_SET])
    wanted = evidence_comments(report)
    assert {c.split()[0] for cs in wanted.values() for c in cs} == {"DR005", "DR012"}
    rows = tshark_fields(out, "frame.interface_name", "frame.comment")
    assert len(rows) == len(wanted) == 11
    for iface, comment in rows:
        assert iface == "br_e"
        assert comment.startswith(("DR005 vip-arp-single-owner:", "DR012 no-client-to-rs-mac:"))
    # the frames are the original ones, byte for byte, in time order
    original = raw_frames(ARP_SET / "br_e.pcap")
    assert raw_frames(out) == [original[frame - 1] for _, frame in sorted(wanted)]
    assert f"{out}: 11 evidence frames of DR005, DR012" in result.stderr


def test_frames_of_gzip_files_and_several_rules(tmp_path):
    # the forwarding-loop set with gzip files: a frame can be named by two rules
    src = ROOT / "captures" / "fault-forwarding-loop"
    files = []
    for name in ("br_e.pcap", "br_lvs.pcap"):
        files.append(tmp_path / f"{name}.gz")
        files[-1].write_bytes(gzip.compress((src / name).read_bytes()))
    manifest = (src / "manifest.toml").read_text()
    (tmp_path / "manifest.toml").write_text(manifest.replace('.pcap"', '.pcap.gz"'))
    report = verify_paths([tmp_path])
    written = write_evidence_pcap(report, [tmp_path], tmp_path / "out.pcapng")
    assert written.missing == [] and written.frames == len(evidence_comments(report)) > 0
    comments = [row[0] for row in tshark_fields(written.path, "frame.comment")]
    assert all(c.startswith(tuple(written.rules)) for c in comments)
    assert set(written.rules) == {r.id for r in report.rules if r.status == "fail" and r.evidence
                                  and any(f >= 1 for e in r.evidence for f in e.frames)}


def test_passing_set_writes_an_empty_but_valid_pcapng(tmp_path):
    written = write_evidence_pcap(verify_paths([ROOT / "captures/seed-ipvs"]),
                                  [ROOT / "captures/seed-ipvs"], tmp_path / "none.pcapng")
    assert written.frames == 0 and written.rules == []
    assert tshark_fields(written.path, "frame.number") == []


def test_json_connections_carry_tshark_community_ids():
    result = CliRunner().invoke(main, ["verify", str(ROOT / "captures/seed-ipvs"), "-q",
                                       "--format", "json"])
    doc = json.loads(result.output)
    assert doc["schema"] == "dr-inspect.verify/1"
    connections = doc["connections"]
    assert len(connections) == doc["summary"]["flows"] == 6
    rows = tshark_fields(ROOT / "captures/seed-ipvs/br_e.pcap", "tcp.srcport", "communityid",
                         extra=("--enable-protocol", "communityid", "-Y", "tcp"))
    by_port = {int(port): cid for port, cid in rows}
    for c in connections:
        port = int(c["client"].rsplit(":", 1)[1])
        assert c["community_id"] == by_port[port], c
        assert c["real_server"] in ("rs1", "rs2")


def test_json_evidence_has_community_id():
    result = CliRunner().invoke(main, ["verify", str(ROOT / "captures/fault-port-mismatch"), "-q",
                                       "--format", "json"])
    doc = json.loads(result.output)
    dr009 = next(r for r in doc["rules"] if r["id"] == "DR009")
    for ev in dr009["evidence"]:
        assert ev["community_id"] == community_id_of(ev["five_tuple"]) != None
    by_tuple = {c["five_tuple"]: c["community_id"] for c in doc["connections"]}
    assert all(by_tuple[ev["five_tuple"]] == ev["community_id"] for ev in dr009["evidence"])
