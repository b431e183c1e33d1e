"""Fuzz target (issue 18): random manifests, rule files, topology files and host snapshots fed to
verify and doctor through the CLI. Every run ends in a verdict, or in exactly one
`dr-inspect: error:` line with exit 2 (click's own usage errors: its `Error:` line); never a
traceback; within a memory limit (RLIMIT_AS in the child) and a time limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT  # noqa: E402
from dr_inspect.cli import main  # noqa: E402
from fuzzinputs import cases  # noqa: E402
from test_cli_verify import write_dr_set  # noqa: E402

MEMORY = 3 << 30          # address space of each child
TIMEOUT = 90              # seconds per command


@pytest.fixture(scope="module")
def base_set(tmp_path_factory) -> Path:
    return write_dr_set(tmp_path_factory.mktemp("fuzz") / "base")


def _write_case(base: Path, case: dict[str, bytes], folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for pcap in base.glob("*.pcap"):
        shutil.copy(pcap, folder / pcap.name)
    for name, data in case.items():
        (folder / name).write_bytes(data)
    return folder


def _argvs(folder: Path) -> list[list[str]]:
    return [["verify", "-q", str(folder), "--rules", str(folder / "rules.toml"),
             "--topology", str(folder / "topology.toml")],
            ["verify", "-q", "--format", "junit", str(folder)],
            ["doctor", str(folder), "--vip", "192.168.7.33:8000"]]


def check_outcome(argv: list[str], code: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, (argv, stderr)
    if code in (0, 1):
        if argv[0] == "verify" and "--format" not in argv:
            assert stdout.strip().splitlines()[-1].startswith(("PASS", "FAIL")), stdout
        elif argv[0] == "doctor":
            assert "\ndoctor " in "\n" + stdout and (": PASS" in stdout or ": FAIL" in stdout), stdout
        return
    assert code == 2, (argv, code, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith(("dr-inspect: error:", "Error:"))]
    assert len(errors) == 1, (argv, stderr)


FUZZ = {"deadline": None, "suppress_health_check": [
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]}


@given(case=cases())
@settings(max_examples=int(os.environ.get("DRI_FUZZ_EXAMPLES", "120")), **FUZZ)
def test_fuzzed_inputs_in_process(base_set, tmp_path, case):
    folder = _write_case(base_set, case, tmp_path / "case")
    for argv in _argvs(folder):
        result = CliRunner().invoke(main, argv)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            argv, result.exc_info)
        check_outcome(argv, result.exit_code, result.stdout, result.stderr)


def _limit() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@given(case=cases())
@settings(max_examples=int(os.environ.get("DRI_FUZZ_PROCESSES", "12")), **FUZZ)
def test_fuzzed_inputs_bounded_memory_and_time(base_set, tmp_path, case):
    folder = _write_case(base_set, case, tmp_path / "case")
    for argv in _argvs(folder):
        result = subprocess.run([sys.executable, "-m", "dr_inspect", *argv], cwd=ROOT,
                                capture_output=True, text=True, errors="replace",
                                timeout=TIMEOUT, preexec_fn=_limit)
        check_outcome(argv, result.returncode, result.stdout, result.stderr)
