"""dr-inspect verify / ladder / report through click's CliRunner, on small capture sets made by
scapy in the fixtures: a healthy two-segment DR set and one whose replies go through the
director (DR003 must fail)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr_inspect.cli import main

VIP, PORT, CLIENT = "192.168.7.33", 8000, "192.168.7.2"
CLIENT_MAC, DIR_E_MAC, DIR_L_MAC = "02:00:00:00:07:02", "02:00:00:00:07:10", "02:00:00:00:88:10"
SERVERS = [("02:00:00:00:07:21", "02:00:00:00:88:21"), ("02:00:00:00:07:22", "02:00:00:00:88:22")]
T0 = 1_700_000_000.0


def write_dr_set(directory: Path, connections: int = 6, *, reply_via_director: bool = False) -> Path:
    """br_e (VIP segment) and br_lvs (real-server segment) captures of short HTTP-like
    connections through a DR director, as one tcpdump per bridge would see them."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    br_e, br_lvs = [], []

    def at(pkt, when):
        pkt.time = when
        return pkt

    br_e.append(at(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                   / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT, pdst=VIP), T0))
    br_e.append(at(Ether(src=DIR_E_MAC, dst=CLIENT_MAC)
                   / ARP(op=2, hwsrc=DIR_E_MAC, psrc=VIP, hwdst=CLIENT_MAC, pdst=CLIENT), T0 + 1e-4))
    for k in range(connections):
        t = T0 + 0.01 * (k + 1)
        rs_e, rs_l = SERVERS[k % len(SERVERS)]
        cport, cseq, sseq = 40000 + k, 1000 * (k + 1), 500000 * (k + 1)
        ip_ids = iter(range(100 * k + 1, 100 * k + 50))

        def to_vip(flags, seq, ack, dt, payload=b""):
            pkt = IP(src=CLIENT, dst=VIP, ttl=64, id=next(ip_ids)) / TCP(
                sport=cport, dport=PORT, flags=flags, seq=seq, ack=ack) / payload
            br_e.append(at(Ether(src=CLIENT_MAC, dst=DIR_E_MAC) / pkt, t + dt))
            copy = pkt.copy()
            copy[IP].ttl = 63          # what IPVS DR does: MACs rewritten, TTL - 1
            br_lvs.append(at(Ether(src=DIR_L_MAC, dst=rs_l) / copy, t + dt + 2e-5))

        def reply(flags, seq, ack, dt, payload=b""):
            src_mac = DIR_E_MAC if reply_via_director else rs_e
            pkt = IP(src=VIP, dst=CLIENT, ttl=64) / TCP(sport=PORT, dport=cport, flags=flags,
                                                        seq=seq, ack=ack) / payload
            br_e.append(at(Ether(src=src_mac, dst=CLIENT_MAC) / pkt, t + dt))

        to_vip("S", cseq, 0, 0.0)
        reply("SA", sseq, cseq + 1, 2e-4)
        to_vip("A", cseq + 1, sseq + 1, 3e-4)
        to_vip("PA", cseq + 1, sseq + 1, 4e-4, b"GET / HTTP/1.0\r\n\r\n")
        reply("PA", sseq + 1, cseq + 19, 9e-4, b"HTTP/1.0 200 OK\r\n\r\nhello")
        to_vip("FA", cseq + 19, sseq + 25, 12e-4)
        reply("FA", sseq + 25, cseq + 20, 14e-4)
        to_vip("A", cseq + 20, sseq + 26, 16e-4)
    directory.mkdir(parents=True, exist_ok=True)
    wrpcap(str(directory / "br_e.pcap"), br_e)
    wrpcap(str(directory / "br_lvs.pcap"), br_lvs)
    (directory / "manifest.toml").write_text(
        '[[points]]\nname = "br_e"\nfile = "br_e.pcap"\nrole = "vip-segment"\n\n'
        '[[points]]\nname = "br_lvs"\nfile = "br_lvs.pcap"\nrole = "rs-segment"\n')
    return directory


@pytest.fixture(scope="module")
def healthy_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("healthy") / "set")


@pytest.fixture(scope="module")
def broken_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("broken") / "set", reply_via_director=True)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_verify_healthy_set_exits_0_with_table(healthy_set):
    result = run("verify", healthy_set)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith("PASS:")
    assert "DR003" in result.output and "reply-bypasses-director" in result.output
    assert "\x1b[" not in result.output            # not a TTY: no colour, no progress


def test_verify_broken_set_exits_1_and_names_the_rule(broken_set):
    result = run("verify", broken_set, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["verdict"] == "fail"
    dr003 = next(r for r in doc["rules"] if r["id"] == "DR003")
    assert dr003["status"] == "fail" and dr003["violations"] == 18
    assert dr003["evidence"][0]["point"] == "br_e"


def test_verify_max_evidence_caps_the_list(broken_set):
    doc = json.loads(run("verify", broken_set, "--format", "json", "--max-evidence", "3").output)
    dr003 = next(r for r in doc["rules"] if r["id"] == "DR003")
    assert len(dr003["evidence"]) == 3 and dr003["evidence_omitted"] == 15


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown", "html"])
def test_verify_output_writes_the_file(broken_set, tmp_path, fmt):
    out = tmp_path / f"report.{fmt}"
    result = run("verify", broken_set, "--format", fmt, "--output", out)
    assert result.exit_code == 1
    assert result.output.startswith(f"{out}: FAIL:")   # only the verdict line on stdout
    text = out.read_text()
    assert "DR003" in text
    if fmt == "json":
        assert json.loads(text)["verdict"] == "fail"
    elif fmt == "junit":
        root = ET.fromstring(text)
        assert root.find("testsuite").get("failures") == "1"
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and "Verdict: FAIL" in text


@pytest.mark.parametrize("args, message", [
    (["verify", "/nonexistent/capture-set"], "no such file or directory"),
    (["verify", "{set}", "--vip", "not-an-address"], "not-an-address"),
    (["verify", "{set}", "--rules", "/nonexistent/rules.toml"], "rules.toml"),
    (["ladder", "{set}", "--flow", "999"], "no flow 999"),
    (["ladder", "{set}", "--client", "10.9.9.9:1"], "no connection from client 10.9.9.9:1"),
    (["report", "/nonexistent/capture-set", "--html", "/tmp/never-written.html"],
     "no such file or directory"),
])
def test_bad_input_exits_2_with_one_line(healthy_set, args, message):
    argv = [a.replace("{set}", str(healthy_set)) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dr-inspect: error:"), result.output
    assert message in lines[0]


@pytest.mark.parametrize("args, message", [
    (["verify", "{set}", "--window", "0"], "not a positive, finite duration"),
    (["verify", "{set}", "--format", "pdf"], "'pdf' is not one of"),
    (["verify", "{set}", "--max-evidence", "-1"], "--max-evidence"),
    (["ladder", "{set}"], "exactly one of --flow N or --client IP:PORT"),
    (["ladder", "{set}", "--flow", "1", "--client", "1.2.3.4:5"], "exactly one of"),
    (["report", "{set}"], "Missing option '--html'"),
])
def test_usage_errors_exit_2(healthy_set, args, message):
    argv = [a.replace("{set}", str(healthy_set)) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unwritable_output_exits_2(healthy_set, tmp_path):
    result = CliRunner().invoke(main, ["verify", str(healthy_set), "--output",
                                       str(tmp_path / "missing-dir" / "r.json")])
    assert result.exit_code == 2
    assert "cannot write" in result.output and "Traceback" not in result.output


def test_verify_garbage_capture_exits_2(tmp_path):
    bad = tmp_path / "junk.pcap"
    bad.write_bytes(b"this is not a capture file at all" * 4)
    result = CliRunner().invoke(main, ["verify", str(bad)])
    assert result.exit_code == 2
    assert "junk.pcap" in result.output and "Traceback" not in result.output


def test_ladder_by_flow_and_svg(broken_set, tmp_path):
    svg = tmp_path / "flow1.svg"
    result = run("ladder", broken_set, "--flow", "1", "--svg", svg)
    assert result.exit_code == 0, result.output
    assert "flow 1: tcp 192.168.7.2:40000 -> 192.168.7.33:8000" in result.output
    assert "client send / director receive" in result.output
    assert "director send / server receive" in result.output
    assert "violates: DR003" in result.output
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_ladder_by_client_shows_the_direct_reply(healthy_set):
    result = run("ladder", healthy_set, "--client", f"{CLIENT}:40001")
    assert result.exit_code == 0, result.output
    assert "tcp 192.168.7.2:40001 -> 192.168.7.33:8000" in result.output
    assert "server send / client receive" in result.output
    assert "<====" in result.output and "bypasses the director" in result.output
    assert f"dst MAC {DIR_E_MAC} -> {SERVERS[1][1]}" in result.output


def test_report_writes_html_and_exits_like_verify(broken_set, healthy_set, tmp_path):
    out = tmp_path / "r.html"
    result = run("report", broken_set, "--html", out)
    assert result.exit_code == 1
    html = out.read_text()
    assert "Verdict: FAIL" in html and "One offending connection (flow 1)" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert run("report", healthy_set, "--html", out, "--quiet").exit_code == 0
    assert "Verdict: PASS" in out.read_text()

