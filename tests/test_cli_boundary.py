"""The CLI's error boundary: output that cannot be written (/dev/full, a closed pipe, a closed
stdout) and names that are not UTF-8 end in one `dr-inspect: error:` line and exit 2, never a
traceback (exit 1, which CI reads as a FAIL verdict)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capturegen as cg  # noqa: E402

from conftest import ROOT  # noqa: E402
from test_cli_verify import write_dr_set  # noqa: E402


@pytest.fixture(scope="module")
def dr_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("boundary") / "set")


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([sys.executable, "-m", "dr_inspect", *args], cwd=ROOT, timeout=120,
                          **kwargs)


def assert_one_line(stderr: bytes, fragment: str) -> None:
    text = stderr.decode(errors="replace")
    assert "Traceback" not in text and "Exception ignored" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("dr-inspect: error:")]
    assert len(errors) == 1 and fragment in errors[0], text


@pytest.mark.parametrize("args", [["verify", "-q", "{set}"],
                                  ["verify", "-q", "--format", "json", "{set}"],
                                  ["decode", "{set}/br_e.pcap"],
                                  ["doctor", "--list-checks"]])
def test_full_disk_on_stdout(dr_set, args):
    with open("/dev/full", "w") as full:
        result = cli(*[a.replace("{set}", str(dr_set)) for a in args], stdout=full,
                     stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert_one_line(result.stderr, "No space left on device")


def test_closed_stdout(dr_set):
    result = subprocess.run([sys.executable, "-m", "dr_inspect", "verify", "-q", str(dr_set)],
                            cwd=ROOT, timeout=120, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert_one_line(result.stderr, "standard output is closed")


def test_reader_that_goes_away(tmp_path):
    big = tmp_path / "big.pcap"
    big.write_bytes(cg.synthetic_pcap_bytes([60] * 40_000))
    proc = subprocess.Popen([sys.executable, "-m", "dr_inspect", "decode", "--format", "csv",
                             str(big)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()              # like `| head -c 100`
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    # Python may see the pipe close as a short write (exit 0, like `head` ending any filter) or
    # as EPIPE (one line, exit 2); never a traceback
    if code != 0:
        assert code == 2
        assert_one_line(err, "Broken pipe")
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_non_utf8_output_path_and_output_encoding(dr_set, tmp_path):
    out = os.fsencode(str(tmp_path)) + b"/\xff-report.json"
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    result = subprocess.run([sys.executable.encode(), b"-m", b"dr_inspect", b"verify", b"-q",
                             b"--format", b"json", b"-o", out, os.fsencode(str(dr_set))],
                            cwd=ROOT, timeout=120, capture_output=True, env=env)
    assert os.path.exists(out)
    if result.returncode != 0:       # the verdict line naming the file could not be encoded
        assert result.returncode == 2
        assert_one_line(result.stderr, "cannot encode")
    missing = cli("verify", "-q", os.fsdecode(b"/nonexistent-\xff"), env=env)
    assert missing.returncode == 2
    assert_one_line(missing.stderr, "no such file or directory")
