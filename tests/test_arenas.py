"""The malloc arena limit a mirror run asks glibc for."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from morgan.arenas import limit_malloc_arenas


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only: other allocators keep no per-thread arenas to limit",
)
def test_glibc_agrees_to_two_arenas() -> None:
    # in a fresh interpreter: the limit is meant for a process whose threads are yet to come
    code = "from morgan.arenas import limit_malloc_arenas; print(limit_malloc_arenas())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "True"


def test_elsewhere_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert limit_malloc_arenas() is False
