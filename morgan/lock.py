"""One writer per index: a lock file that the operating system releases when a run ends.

The lock is an advisory lock on ``INDEX/.morgan.lock`` (``flock`` on POSIX,
``msvcrt.locking`` on Windows), so a run that is killed, even with SIGKILL,
leaves no stale lock behind. The file itself stays and is never written to,
so a re-run that finds nothing new still writes nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from morgan.errors import IndexLockedError

LOCK_FILE = ".morgan.lock"


class IndexLock:
    """Held for the whole of ``morgan mirror``; a second run refuses instead of interleaving."""

    def __init__(self, index_path: Path) -> None:
        self.path = index_path / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise IndexLockedError(str(self.path)) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> IndexLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
