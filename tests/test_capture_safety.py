"""Running capture as root safely: the filter can never become a tcpdump option, files are only
ever created new (never written through a planted symlink), the output folder must be new or
empty, and tcpdump drops to a user who can still write the folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, require
from dr_inspect.errors import CaptureAgentError, InputError
from dr_inspect.live.capture import reserve_manifest, write_reserved
from dr_inspect.live.files import create_new, writer_for
from dr_inspect.live.preflight import prepare_out_dir
from dr_inspect.live.tcpdump import build_argv


@pytest.mark.parametrize("bpf", ["-z/tmp/x.sh", " -z /tmp/x.sh", "-Z nobody", "--version",
                                 "tcp\n-z x"])
def test_filter_that_is_an_option_is_refused(bpf):
    with pytest.raises(InputError, match="filter"):
        build_argv("tcpdump", "lo", "/out/x.pcap", bpf=bpf)


def test_filter_comes_after_double_dash():
    argv = build_argv("tcpdump", "lo", "/out/x.pcap", bpf="tcp and not port 22")
    assert argv[-2:] == ["--", "tcp and not port 22"]
    assert argv.count("--") == 1


def test_capture_cli_with_option_filter_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "x.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    out = tmp_path / "set"
    result = subprocess.run([sys.executable, "-m", "dr_inspect", "capture", "--bridge", "lo",
                             f"--filter=-z{script}", "--out", str(out), "--count", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dr-inspect: error:") and "filter" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists() and not out.exists()


def test_symlinked_out_folder_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CaptureAgentError, match="symlink"):
        prepare_out_dir(tmp_path / "link")


@pytest.mark.parametrize("plant", ["manifest-dangling", "pcap-symlink", "file"])
def test_non_empty_out_folder_is_refused(tmp_path, plant):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    if plant == "manifest-dangling":
        (out / "manifest.toml").symlink_to(tmp_path / "nowhere")
    elif plant == "pcap-symlink":
        victim.write_text("precious")
        (out / "br_e.pcap").symlink_to(victim)
    else:
        (out / "notes.txt").write_text("x")
    with pytest.raises(CaptureAgentError, match="already holds a capture set|not empty"):
        prepare_out_dir(out)
    assert not victim.exists() or victim.read_text() == "precious"


def test_new_or_empty_out_folder_is_accepted(tmp_path):
    assert prepare_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "empty").mkdir()
    assert prepare_out_dir(tmp_path / "empty") == tmp_path / "empty"


def test_world_writable_folder_without_sticky_bit_is_refused(tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o777)
    if out.stat().st_uid == os.geteuid():
        require(os.geteuid() == 0, "not root: cannot give the folder a foreign owner")
        os.chown(out, 65534, -1)
    with pytest.raises(CaptureAgentError, match="other users may write"):
        prepare_out_dir(out)


def test_files_are_created_new_never_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "manifest.toml").symlink_to(victim)
    with pytest.raises(FileExistsError):
        reserve_manifest(tmp_path)
    with pytest.raises(CaptureAgentError, match="cannot write the manifest"):
        write_reserved(tmp_path / "manifest.toml", "[capture]\n")
    with pytest.raises(FileExistsError):
        create_new(tmp_path / "manifest.toml")
    assert victim.read_text() == "precious"


def test_reserved_manifest_is_rewritten_in_place(tmp_path):
    reserve_manifest(tmp_path)
    write_reserved(tmp_path / "manifest.toml", "[capture]\n")
    assert (tmp_path / "manifest.toml").read_text() == "[capture]\n"


def test_tcpdump_drops_to_the_folders_owner(tmp_path):
    import pwd
    import shutil
    import tempfile
    out = tmp_path / "mine"
    out.mkdir()
    assert writer_for(out) is None or os.geteuid() != 0    # root's folder: tcpdump stays root
    if os.geteuid() == 0:
        os.chown(out, 65534, -1)          # nobody's folder under root's 0700 pytest folder:
        assert writer_for(out) is None    # nobody could not reach it, so tcpdump stays root
        base = Path(tempfile.mkdtemp(prefix="dri-z-", dir="/tmp"))
        try:
            os.chown(base, 65534, -1)     # reachable by anyone: tcpdump drops to nobody
            assert writer_for(base) == pwd.getpwuid(65534).pw_name
            base.chmod(0o555)             # ... unless nobody could not write it
            assert writer_for(base) is None
        finally:
            shutil.rmtree(base, ignore_errors=True)
    argv = build_argv("tcpdump", "lo", str(out / "x.pcap"), run_as="nobody")
    assert argv[argv.index("-Z") + 1] == "nobody"


def test_capture_as_root_drops_to_the_folders_owner(tmp_path):
    """A real capture on lo into a folder of user nobody: tcpdump writes as nobody."""
    from conftest import require, require_tool
    require(os.geteuid() == 0, "needs root to capture and to hand a folder to nobody")
    require_tool("tcpdump", "tcpdump")
    import shutil
    import socket
    import tempfile
    import time
    from dr_inspect.decode import decode_file
    from dr_inspect.live.capture import CapturePoint, start_capture
    base = Path(tempfile.mkdtemp(prefix="dri-z-", dir="/tmp"))    # /tmp: anyone may traverse
    try:
        os.chown(base, 65534, -1)
        assert writer_for(base) is not None
        session = start_capture([CapturePoint("lo", "lo")], base, bpf="udp port 9")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(3):
                    s.sendto(b"x", ("127.0.0.1", 9))
                    time.sleep(0.05)
            time.sleep(0.5)
        finally:
            session.stop()
        pcap = base / "lo.pcap"
        assert pcap.stat().st_uid == 65534          # created by tcpdump after dropping to nobody
        assert decode_file(pcap).stats.frames_read >= 3
    finally:
        shutil.rmtree(base, ignore_errors=True)
