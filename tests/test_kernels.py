"""The compiled kernels (dr_inspect/kernels.py): built where CI installs, and all turned off by
DR_INSPECT_NATIVE=0. What each computes is compared with its numpy code in the tests of its
module (test_decode_native.py, test_decode.py, test_correlate.py)."""

from __future__ import annotations

import pytest
from conftest import IN_CI

import dr_inspect.columnar.ids as keys
from dr_inspect import kernels
from dr_inspect.decode import native


def test_built_in_ci() -> None:
    """CI installs with a compiler: a silently missing extension would test only the fallback."""
    if IN_CI:
        assert native.available() and keys._hashids is not None
    assert kernels.allowed()


def test_turned_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernels.ENV, "0")
    assert not kernels.allowed() and not native.enabled()
    assert keys._kernel_ids(keys.np.zeros(3, dtype=keys.np.uint64), keys.np.int32) is None
    monkeypatch.setenv(kernels.ENV, "1")
    assert native.enabled() == native.available()
