"""glibc's allocator, told how a mirror run uses memory.

A run reads pages of megabytes on 32 pool threads, parses them, and keeps a small
part. glibc's defaults then hold on to what was freed: each thread that allocates
under contention gets an arena of its own (up to eight per core), and after the
first large block is freed the threshold above which blocks are mapped (and
unmapped when freed) rises to 32 MiB, so later large blocks come from the heap
and leave holes it cannot give back. The process's peak grows with its threads
and its history, not with what it uses. Two arenas and a fixed mapping threshold
keep it to what is used: on real page shapes peak RSS went from 107-130 MiB to 65-75
MiB (56 projects) and from 145-152 to 123 MiB (300 projects), for a few per cent of
time. The threshold is 512 KiB, above the downloads' 256 KiB chunks: at 256 KiB each
chunk was mapped and unmapped, and the kernel zeroed a fresh page for every byte
downloaded (about half a second of system time per GiB; the benchmark's peak RSS
stayed at 77-81 MiB either way).

Python's cyclic collector is told too: a run creates hundreds of thousands of small
objects (file records, candidates, requirements) that mostly live until its end, and
the default thresholds walk them again every few hundred allocations.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc's malloc.h).
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
ARENAS = 2
MMAP_THRESHOLD = 512 * 1024


def tune_allocator() -> bool:
    """Set the arena limit and the mapping threshold; True if glibc agreed to both.

    Call it before the threads start. Elsewhere (macOS, Windows, musl) nothing is
    done: their allocators do not keep memory this way.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    agreed = bool(mallopt(_M_ARENA_MAX, ARENAS)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
    log.debug("malloc: %d arenas, blocks over %d bytes mapped: %s", ARENAS, MMAP_THRESHOLD, agreed)
    return agreed


#: Allocations between young collections (Python's default is 700), then the rounds
#: before each older generation is walked.
COLLECTOR_THRESHOLDS = (1_000_000, 20, 100)


def tune_collector() -> None:
    """Collect cycles rarely, and never walk what exists at start-up (modules, config).

    Reference counting frees nearly everything at once: a run makes few cycles. What a
    young collection walks is mostly records that live to the end, in containers of
    thousands of entries, each walked whole. With Python's thresholds the collector took
    a twentieth of a cold run's CPU on the benchmark's 300 projects; with 50,000
    allocations between young collections, four or five collections still took 0.13 to
    0.2 s with the GIL held, and freed 17,000 objects (of the 138,000 in cycles at the
    end). With a million, the benchmark's run collects none, for the same peak RSS; a
    run many times larger collects a few times, so cycles made by the thousand (failed
    downloads' tracebacks, say) are still freed.
    """
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def leave_to_the_system() -> None:
    """Let the interpreter end without walking what the command left behind.

    Once a run is over, what it built (pages, states, plans, resolutions) is garbage,
    most of it held in reference cycles (futures and their callbacks, resolver
    structures), and the collector's last pass at exit walked and freed it one object
    at a time: 120,000 objects and 0.1 to 0.2 s on the benchmark, cold or warm. Frozen,
    it is left to the operating system, which takes the whole process back at once.
    Call it only when the process is about to exit: frozen objects are never
    finalized (every file and process the commands open is closed before they return).
    """
    gc.freeze()
