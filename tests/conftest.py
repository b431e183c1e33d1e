"""Shared test helpers.

In CI (CI=true) a missing prerequisite fails the test; elsewhere it skips with a one-line reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "tcpdump-tests"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (outside CI) or fail (in CI) when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


def require_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    require(path is not None, f"{tool} not installed (apt-get install {package})")
    return path  # type: ignore[return-value]


def require_root_netns() -> None:
    require(os.geteuid() == 0, "not root: the lab needs network namespaces")
    require(shutil.which("ip") is not None, "iproute2 missing")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    require(CORPUS.is_dir(), f"tcpdump test corpus not found at {CORPUS}")
    return CORPUS


@contextmanager
def running_lab(prefix: str, **config: Any) -> Iterator[Any]:
    """A lab (dr_inspect.lab.LabConfig(prefix=prefix, **config)) for a test module: leftovers of
    an earlier run with the same prefix removed first, everything torn down also when a test fails."""
    require_root_netns()
    require_tool("tcpdump", "tcpdump")
    require_tool("nft", "nftables")
    from dr_inspect.lab import LabConfig, lab_down, lab_up
    lab_down(prefix)
    state = lab_up(LabConfig(prefix=prefix, **config))
    try:
        yield state
    finally:
        lab_down(prefix)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen, what: str,
             timeout: float = 60, poll: float = 0.1) -> None:
    """Wait until ready() while proc runs; fail with proc's output if it exits first, or with
    `what` when the time is up."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(poll)


def reap(proc: subprocess.Popen) -> None:
    """Kill proc if it is still running (a failing test must not leave processes behind)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--matrix", choices=("quick", "full"), default="quick",
                     help="tests/test_lab_matrix.py: every fault once per director (quick, the "
                          "default) or faults x directors x 1-3 real servers (full)")
    parser.addoption("--scenario-draws", type=int, default=None,
                     help="scenarios drawn by tests/test_scenarios_properties.py (env SCENARIO_DRAWS)")


def pytest_configure(config: pytest.Config) -> None:
    draws = config.getoption("--scenario-draws", default=None)
    if draws is not None:
        os.environ["SCENARIO_DRAWS"] = str(draws)
