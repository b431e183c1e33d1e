"""Capture inputs that must not hang, exhaust memory or end in a traceback: FIFOs and devices,
gzip bombs, pcapng timestamps past int64, files with thousands of interfaces; and standard input
(`-`), decoded as it arrives."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402

from conftest import ROOT  # noqa: E402
from dr_inspect.cli import main  # noqa: E402
from dr_inspect.decode import decode_file, iter_decode  # noqa: E402
from dr_inspect.decode import source  # noqa: E402
from test_cli_verify import write_dr_set  # noqa: E402

ONE_GIB = 1 << 30


def run_cli(*args: str, stdin: bytes | None = None, mem_bytes: int = 3 * ONE_GIB,
            env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m dr_inspect ARGS` with its address space capped (bounded memory) and a timeout
    (bounded time)."""
    def limit() -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    return subprocess.run([sys.executable, "-m", "dr_inspect", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=timeout, preexec_fn=limit,
                          env={**os.environ, **(env or {})})


def assert_one_error_line(result: subprocess.CompletedProcess, fragment: str) -> None:
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("dr-inspect: error:")]
    assert len(errors) == 1 and fragment in errors[0], err


@pytest.fixture(scope="module")
def dr_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("dr") / "set")


# -- not regular files ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["decode", "verify"])
def test_fifo_and_device_are_refused_not_read(tmp_path, command):
    fifo = tmp_path / "x.pcap"
    os.mkfifo(fifo)
    assert_one_error_line(run_cli(command, str(fifo), timeout=60), "FIFO")
    assert_one_error_line(run_cli(command, "/dev/zero", timeout=60), "device")


def test_fifo_in_a_manifest_is_refused(tmp_path, dr_set):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.toml").write_text((dr_set / "manifest.toml").read_text())
    for f in dr_set.glob("*.pcap"):
        os.mkfifo(folder / f.name)
    assert_one_error_line(run_cli("verify", str(folder), timeout=60), "FIFO")


# -- gzip ------------------------------------------------------------------------------------------

def test_gzip_bomb_is_refused_within_bounded_memory(tmp_path):
    # 1 MiB of gzip holding a pcap header and then a gigabyte of zeros
    bomb = tmp_path / "bomb.pcap.gz"
    header = cg.synthetic_pcap_bytes([])
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(header)
        zeros = bytes(16 << 20)
        for _ in range(64):
            fh.write(zeros)
    assert bomb.stat().st_size < 2 << 20
    for command in ("decode", "verify"):
        result = run_cli(command, str(bomb), mem_bytes=2 * ONE_GIB, env={"TMPDIR": str(tmp_path)})
        assert_one_error_line(result, "gzip data expands more than")
    result = run_cli("decode", "-", stdin=bomb.read_bytes(), mem_bytes=2 * ONE_GIB)
    assert_one_error_line(result, "gzip data expands more than")
    assert list(tmp_path.glob("dr-inspect-gunzip-*")) == []     # the spool file is gone


def test_gzip_capture_decodes_as_the_plain_one(tmp_path, dr_set):
    plain = dr_set / "br_e.pcap"
    packed = tmp_path / "br_e.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = decode_file(plain), decode_file(packed)
    assert b.stats.gzip and a.stats.frames_read == b.stats.frames_read > 0
    assert a.packets.drop(columns="file").equals(b.packets.drop(columns="file"))


def test_gzip_blocks_are_bounded(tmp_path):
    packed = tmp_path / "z.gz"
    packed.write_bytes(gzip.compress(bytes(20 << 20)))
    with open(packed, "rb") as fh:
        sizes = [len(b) for b, err in source.gunzip_blocks(str(packed), fh) if err is None]
    assert sum(sizes) == 20 << 20 and max(sizes) <= source.INFLATE_CHUNK


# -- pcapng timestamps ---------------------------------------------------------------------------

PKT = bytes(cg.lab_ethernet_packets()[0])


@pytest.mark.parametrize("iface, ticks, fragment", [
    (cg.NgInterface(1, tsoffset=2**62), 1000, "if_tsoffset"),
    (cg.NgInterface(1, tsoffset=-2**62), 1000, "if_tsoffset"),
    (cg.NgInterface(1, tsresol=0), 2**64 - 1, "timestamp out of range"),
    (cg.NgInterface(1, tsresol=9), 2**64 - 1, "timestamp out of range"),
    (cg.NgInterface(1, tsresol=0x80 | 1), 2**64 - 1, "timestamp out of range"),
    (cg.NgInterface(1, tsresol=6, tsoffset=9 * 10**9), 10**15, "timestamp out of range"),
])
def test_pcapng_timestamps_past_int64_are_one_line(tmp_path, iface, ticks, fragment):
    path = cg.write_pcapng(tmp_path / "t.pcapng", [cg.NgSection(
        [iface], [cg.NgPacket(0, PKT, 1000), cg.NgPacket(0, PKT, ticks)])])
    got = decode_file(path)      # the frames before the bad block are kept
    assert got.stats.frames_read == (0 if fragment == "if_tsoffset" else 1)
    assert fragment in str(got.stats.error)
    result = CliRunner().invoke(main, ["decode", str(path)])
    assert result.exit_code == 2 and fragment in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_thousands_of_interfaces_decode_each_frame_to_its_own(tmp_path):
    n = 3000
    # every interface its own link type and resolution, frames in a shuffled interface order
    ifaces = [cg.NgInterface(1, f"if{i}", tsresol=6 if i % 2 else 9) for i in range(n)]
    order = np.random.default_rng(1).permutation(n)
    packets = [cg.NgPacket(int(i), PKT, 10**6 * (k + 1) * (1000 if i % 2 == 0 else 1))
               for k, i in enumerate(order)]
    path = cg.write_pcapng(tmp_path / "many.pcapng", [cg.NgSection(ifaces, packets)])
    got = decode_file(path)
    assert got.stats.frames_read == n and len(got.stats.interfaces) == n
    df = got.packets
    assert df["interface"].tolist() == order.tolist()
    assert (df["ts_ns"].to_numpy() == np.arange(1, n + 1) * 10**9).all()
    # verify refuses that many points in one line, before the per-pair clock estimates
    result = CliRunner().invoke(main, ["verify", "-q", str(path)])
    assert result.exit_code == 2 and "capture points; at most" in result.output


# -- standard input ------------------------------------------------------------------------------

def test_decode_stdin_equals_the_file(dr_set):
    plain = (dr_set / "br_e.pcap").read_bytes()
    a = run_cli("decode", "--format", "csv", str(dr_set / "br_e.pcap"))
    for data in (plain, gzip.compress(plain)):
        b = run_cli("decode", "--format", "csv", "-", stdin=data)
        assert b.returncode == 0, b.stderr
        rows_a = [r.split(",", 1)[1] for r in a.stdout.decode().splitlines()[1:]]
        rows_b = [r.split(",", 1)[1] for r in b.stdout.decode().splitlines()[1:]]
        assert rows_a == rows_b and len(rows_a) > 0
        assert b.stdout.decode().splitlines()[1].startswith("stdin,")


def test_verify_reads_one_point_from_stdin(dr_set):
    files = run_cli("verify", "-q", "--format", "json", str(dr_set / "br_e.pcap"),
                    str(dr_set / "br_lvs.pcap"))
    piped = run_cli("verify", "-q", "--format", "json", str(dr_set / "br_e.pcap"), "-",
                    stdin=(dr_set / "br_lvs.pcap").read_bytes())
    assert files.returncode == piped.returncode == 0, piped.stderr
    assert '"verdict": "pass"' in piped.stdout.decode() and '"stdin"' in piped.stdout.decode()
    twice = run_cli("verify", "-", "-", stdin=b"")
    assert_one_error_line(twice, "standard input (-) can be read once only")


def test_stdin_is_decoded_as_it_arrives(dr_set, monkeypatch):
    """The first frames come out while the writer still holds the rest back: not buffered."""
    data = (dr_set / "br_e.pcap").read_bytes()
    half = len(data) // 2
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    os.close(read_end)
    release = threading.Event()

    def writer() -> None:
        os.write(write_end, data[:half])
        release.wait(30)
        os.write(write_end, data[half:])
        os.close(write_end)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        pieces = iter_decode("-", chunk_frames=1)
        first = next(pieces)            # before the second half was written
        assert not release.is_set() and len(first.packets) == 1
        release.set()
        rest = list(pieces)
    finally:
        release.set()
        thread.join()
        os.dup2(saved, 0)
        os.close(saved)
    assert 1 + sum(len(p.packets) for p in rest) == decode_file(dr_set / "br_e.pcap").stats.frames_read


def test_timestamp_error_names_the_absolute_offset_in_a_stream(tmp_path):
    from dr_inspect.decode import StreamDecoder
    packets = [cg.NgPacket(0, PKT, 1000 + k) for k in range(50)] + [cg.NgPacket(0, PKT, 2**64 - 1)]
    data = cg.pcapng_bytes([cg.NgSection([cg.NgInterface(1, tsresol=0)], packets)])
    block = len(cg.pcapng_bytes([cg.NgSection([cg.NgInterface(1, tsresol=0)], packets[:-1])]))
    dec = StreamDecoder("s")
    rows = sum(len(dec.feed(data[i:i + 700])) for i in range(0, len(data), 700))
    rows += len(dec.finish())
    assert rows == 50 and dec.stats.error is not None
    assert dec.stats.error.offset == block and "timestamp out of range" in dec.stats.error.reason
