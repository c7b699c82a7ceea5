"""What a mirror run asks of glibc's allocator and of Python's cyclic collector."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from morgan.allocator import MMAP_THRESHOLD, tune_allocator
from morgan.download import CHUNK_SIZE


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


def test_the_collector_skips_what_exists_at_start_and_runs_less_often() -> None:
    code = (
        "import gc, json; from morgan.allocator import tune_collector; tune_collector(); "
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    thresholds, frozen = json.loads(result.stdout)
    assert thresholds[0] >= 10_000  # young collections at least ten times rarer than Python's
    assert frozen > 1000  # the modules and objects of start-up


def test_download_chunks_stay_below_the_mapping_threshold() -> None:
    # A chunk's bytes object (its data and a small header) must come from the heap: at
    # or above the threshold, every chunk was mapped, faulted in page by page, unmapped.
    assert CHUNK_SIZE + 4096 <= MMAP_THRESHOLD
