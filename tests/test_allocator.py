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
    assert thresholds[0] >= 100_000  # young collections over a hundred times rarer than Python's
    assert frozen > 1000  # the modules and objects of start-up


def test_download_chunks_stay_below_the_mapping_threshold() -> None:
    # A chunk's bytes object (its data and a small header) must come from the heap: at
    # or above the threshold, every chunk was mapped, faulted in page by page, unmapped.
    assert CHUNK_SIZE + 4096 <= MMAP_THRESHOLD


# A command's leftovers in a reference cycle, with a finalizer that says when it runs,
# then the console script's exit (``morgan version``). The collector is off, as a
# mirror run's rarely comes by (see tune_collector): only the exit could walk them.
_LEFTOVERS_THEN_EXIT = """
import gc, sys
from morgan.cli import entry_point
gc.disable()
class Leftover:
    def __del__(self):
        print("walked at exit", flush=True)
leftover = Leftover()
leftover.cycle = leftover
del leftover
sys.argv = ["morgan", "version"]
entry_point()
"""


def test_the_console_script_leaves_what_a_command_built_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LEFTOVERS_THEN_EXIT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("morgan ")  # the command's output is all there
    assert "walked at exit" not in result.stdout  # nothing walked the garbage at the end


def test_without_it_python_walks_the_garbage_at_exit() -> None:
    # the test above can fail: the same leftovers, with a plain exit, are finalized
    code = _LEFTOVERS_THEN_EXIT.replace("entry_point()", "sys.exit(0)")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "walked at exit" in result.stdout
