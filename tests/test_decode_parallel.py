"""decode_files (dr_inspect/decode/parallel.py): decoding a set with a forked helper process (the
numpy decoder's parallelism) or with threads (the compiled kernels') gives exactly what
decode_file gives, file by file, whatever the split point, breaks and failures.

The size thresholds are lowered so that small crafted files take the parallel paths."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402
from conftest import require  # noqa: E402

import dr_inspect.decode.parallel as par  # noqa: E402
from dr_inspect.decode import decode_file, native  # noqa: E402
from dr_inspect.decode.containers import ContainerParser  # noqa: E402
from dr_inspect.errors import CaptureError  # noqa: E402

@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch):
    require(hasattr(os, "fork"), "no os.fork on this platform: decoding stays in one process")
    # the forked helper is used by the numpy decoder alone (tests of the threads say otherwise)
    monkeypatch.setenv(native.ENV, "0")
    monkeypatch.setattr(par, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(par, "MIN_SPLIT_FRAMES", 0)
    monkeypatch.setattr(par, "SAMPLE_BYTES", 65536)


def _sizes(n: int, seed: int = 1) -> list[int]:
    return np.random.default_rng(seed).integers(60, 1500, n).tolist()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _reference(path: Path, label: str):
    try:
        return decode_file(path, point=label)
    except CaptureError as exc:
        return exc


def _assert_same(got, want) -> None:
    if isinstance(want, CaptureError):
        assert isinstance(got, CaptureError) and str(got) == str(want)
        return
    assert not isinstance(got, CaptureError), str(got)
    assert repr(got.stats) == repr(want.stats)
    assert list(got.stats.undecodable.items()) == list(want.stats.undecodable.items())
    assert_frame_equal(got.packets, want.packets)


def _check(jobs: list[tuple[Path, str]]) -> None:
    got = list(par.decode_files(jobs))
    assert len(got) == len(jobs)
    for result, (path, label) in zip(got, jobs):
        _assert_same(result, _reference(path, label))
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_a_split_file_decodes_as_one(tmp_path, monkeypatch, share):
    monkeypatch.setattr(par, "CHILD_SHARE", share)
    path = _write(tmp_path / "a.pcap", cg.synthetic_pcap_bytes(_sizes(6000)))
    plan = par._plan([(path, "a")])
    assert plan[0].where == "split" and 24 < plan[0].split_at < path.stat().st_size
    _check([(path, "a")])


def test_a_wrong_split_guess_is_decoded_on_from_where_the_chain_ends(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.pcap", cg.synthetic_pcap_bytes(_sizes(6000)))
    real = ContainerParser.record_start_near
    monkeypatch.setattr(ContainerParser, "record_start_near",
                        lambda self, buf, at: real(self, buf, at) + 1)
    _check([(path, "a")])


@pytest.mark.parametrize("where", [0.2, 0.5, 0.8, 0.99])
def test_a_break_in_the_head_or_the_tail_is_reported_as_by_decode_file(tmp_path, where):
    data = bytearray(cg.synthetic_pcap_bytes(_sizes(6000)))
    idx, _ = ContainerParser("x").parse(np.frombuffer(bytes(data), np.uint8), 0, True)
    rec = int(idx.data_pos[int(len(idx) * where)]) - 16
    data[rec + 8:rec + 12] = (2**31 - 1).to_bytes(4, "little")        # absurd caplen
    broken = _write(tmp_path / "broken.pcap", bytes(data))
    cut = _write(tmp_path / "cut.pcap", bytes(data[: int(len(data) * where)]))
    _check([(broken, "b"), (cut, "c")])


def test_several_undecodable_reasons_keep_their_order(tmp_path):
    # truncated Ethernet headers early, truncated IPv4 headers late, and both in the middle:
    # the reasons' order depends on how frames are batched, so the split result is checked
    sizes = _sizes(9000)
    for k in range(100, 9000, 97):
        sizes[k] = 20
    for k in range(4000, 5000, 50):
        sizes[k] = 10
    path = _write(tmp_path / "r.pcap", cg.synthetic_pcap_bytes(sizes))
    want = decode_file(path, point="r")
    assert len(want.stats.undecodable) == 2
    _check([(path, "r")])


def test_whole_files_in_the_child_pcapng_gzip_and_unreadable(tmp_path):
    ng = cg.write_pcapng(tmp_path / "m.pcapng", [
        cg.NgSection([cg.NgInterface(1, "a", tsresol=9), cg.NgInterface(1, "b")],
                     [cg.NgPacket(k % 2, cg._udp_frame(k, 200), 10**9 * 1_700_000_000 + k)
                      for k in range(3000)])])
    plain = cg.synthetic_pcap_bytes(_sizes(2500, seed=2))
    gz = _write(tmp_path / "g.pcap.gz", gzip.compress(plain))
    small = _write(tmp_path / "s.pcap", plain)
    junk = _write(tmp_path / "junk.pcap", b"not a capture" * 100)
    jobs = [(ng, "ng"), (gz, "gz"), (junk, "junk"), (small, "s"), (tmp_path / "gone.pcap", "x")]
    assert {j.where for j in par._plan(jobs)} == {"here", "child"}
    _check(jobs)


def test_a_failing_child_leaves_the_work_to_this_process(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.pcap", cg.synthetic_pcap_bytes(_sizes(6000)))

    def fail(job):
        raise MemoryError("no memory in the child")
    monkeypatch.setattr(par, "_decode_tail", fail)
    _check([(path, "a")])


def test_a_child_that_dies_leaves_the_work_to_this_process(tmp_path, monkeypatch):
    files = [(_write(tmp_path / f"{i}.pcap", cg.synthetic_pcap_bytes(_sizes(3000, seed=i))),
              str(i)) for i in range(3)]
    assert [j.where for j in par._plan(files)].count("child") == 1
    parent = os.getpid()
    real = par._decode_here

    def die_in_child(path, label):
        if os.getpid() != parent:
            os._exit(3)
        return real(path, label)
    monkeypatch.setattr(par, "_decode_here", die_in_child)
    _check(files)


def test_closing_early_stops_the_child(tmp_path):
    files = [(_write(tmp_path / f"{i}.pcap", cg.synthetic_pcap_bytes(_sizes(3000, seed=i))),
              str(i)) for i in range(3)]
    results = par.decode_files(files)
    first = next(results)
    assert not isinstance(first, CaptureError)
    results.close()
    assert multiprocessing.active_children() == []


def test_threads_decode_as_decode_file(tmp_path, monkeypatch):
    """With the compiled kernels, files are decoded by threads side by side, broken ones too."""
    require(native.available(), "the decoder's C extension was not built")
    monkeypatch.setenv(native.ENV, "1")
    files = [(_write(tmp_path / f"{i}.pcap", cg.synthetic_pcap_bytes(_sizes(2000, seed=i))),
              str(i)) for i in range(3)]
    files.append((_write(tmp_path / "cut.pcap", files[0][0].read_bytes()[:-9]), "cut"))
    files.append((_write(tmp_path / "junk.pcap", b"not a capture" * 9), "junk"))
    _check(files)


@pytest.mark.parametrize("kernels", ["0", "1"])
def test_decode_set_gives_the_same_with_the_helper_process(tmp_path, monkeypatch, kernels):
    """decode_set with 1 and 2 workers (the thresholds lowered: the helper process or
    the second thread decodes its share): tables, summaries, errors and progress messages are
    the same."""
    if kernels == "1":
        require(native.available(), "the decoder's C extension was not built")
    monkeypatch.setenv(native.ENV, kernels)
    from dr_inspect.captureset import load_capture_set
    import dr_inspect.decode.pointset as pointset
    from rulecaps import DrCapture

    folder = DrCapture().healthy().write(tmp_path / "set", manifest=False, rotated=2)
    data = (folder / "br_lvs.pcap1").read_bytes()
    (folder / "br_lvs.pcap1").write_bytes(data[:-20])        # broken mid-way
    (folder / "junk.pcap").write_bytes(b"this is not a capture file at all" * 4)
    (folder / "copy.pcap0").write_bytes((folder / "br_e.pcap0").read_bytes())
    (folder / "copy.pcap1").write_bytes((folder / "br_e.pcap1").read_bytes())
    cs = load_capture_set([folder])
    results = {}
    for workers in (1, 2):
        monkeypatch.setattr(pointset, "DECODE_THREADS", workers)
        stages: list[str] = []
        results[workers] = (pointset.decode_set(cs, stages.append), stages)
    (one, one_stages), (two, two_stages) = results[1], results[2]
    assert two_stages == one_stages == ["decoding br_e", "decoding br_lvs", "decoding junk"]
    assert list(two[0]) == list(one[0])
    for name in one[0]:
        assert_frame_equal(two[0][name], one[0][name])
    assert [repr(s) for s in two[1]] == [repr(s) for s in one[1]]
    assert two[2] == one[2] and any("duplicate" in e for e in one[2])
    assert any("junk.pcap" in e for e in one[2])
