"""Fewer malloc arenas for a run with many threads.

glibc gives each thread that allocates under contention an arena of its own (up to
eight per core) and keeps what is freed in it for that arena's next use. A mirror
run reads pages of megabytes on 32 pool threads; what one page's parse frees stays
in that thread's arena, and the process's peak memory grows with the threads, not
with what is in use. Two arenas keep it to what is used (measured on real page
shapes: peak RSS 86 MiB instead of 110 to 130), for a few percent of time.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

#: glibc's ``M_ARENA_MAX`` parameter of ``mallopt`` (malloc.h).
_M_ARENA_MAX = -8
ARENAS = 2


def limit_malloc_arenas(count: int = ARENAS) -> bool:
    """Ask glibc for at most ``count`` arenas; True if it agreed (call before threads start).

    Elsewhere (macOS, Windows, musl) nothing is done: their allocators do not keep
    per-thread arenas the same way.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    agreed = bool(mallopt(_M_ARENA_MAX, count))
    log.debug("malloc arenas limited to %d: %s", count, agreed)
    return agreed
