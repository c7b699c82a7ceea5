"""What a mirror run asks of glibc's allocator."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from morgan.allocator import tune_allocator


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only: other allocators keep memory otherwise",
)
def test_glibc_agrees() -> None:
    # in a fresh interpreter: the settings are meant for a process whose threads are yet to come
    code = "from morgan.allocator import tune_allocator; print(tune_allocator())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"


def test_elsewhere_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tune_allocator() is False
