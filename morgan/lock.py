"""One writer per index: locks that the operating system releases when a run ends.

A run holds an advisory lock on ``INDEX/.morgan.lock`` (``flock`` on POSIX,
``msvcrt.locking`` on Windows), so a run that is killed, even with SIGKILL,
leaves no stale lock behind. The file itself stays and is never written to,
so a re-run that finds nothing new still writes nothing.

On POSIX a run also locks the index folder itself: the lock ``server.py`` holds
while an import runs and while an upload lands. A run writes each project's pages
from the folder it scanned, so an upload landing meanwhile could be left off its
page; with the lock, the upload is told to come back (503) and an import refuses,
and a run that starts while an upload lands waits the moment that takes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import TracebackType

from morgan.errors import IndexLockedError

LOCK_FILE = ".morgan.lock"
#: How long a run waits for the lock before it says another writer holds it.
WAIT_SECONDS = 2.0
POLL_SECONDS = 0.05


class IndexLock:
    """Held for the whole of ``morgan mirror``; a second run refuses instead of interleaving."""

    def __init__(self, index_path: Path) -> None:
        self.path = index_path / LOCK_FILE
        self._fds: list[int] = []

    def acquire(self) -> None:
        """Take the locks, waiting up to ``WAIT_SECONDS`` for them (an upload holds the
        folder's for a moment); IndexLockedError if another writer keeps them."""
        fds: list[int] = []
        try:
            fds.append(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644))
            locks = [(fds[0], _lock)]
            folder = _open_folder(self.path.parent)
            if folder is not None:
                fds.append(folder)
                locks.append((folder, _lock_folder))
            deadline = time.monotonic() + WAIT_SECONDS
            for fd, lock in locks:
                while not lock(fd):
                    if time.monotonic() >= deadline:
                        raise IndexLockedError(str(self.path))
                    time.sleep(POLL_SECONDS)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        self._fds = fds

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the descriptor drops its lock
        self._fds = []

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

    def _lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _open_folder(folder: Path) -> int | None:
        return None  # a folder cannot be opened, nor locked; server.py locks none here

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # held (any other error is said as it is)
        return True

    def _open_folder(folder: Path) -> int | None:
        try:
            return os.open(folder, os.O_RDONLY)
        except PermissionError:  # a folder one may write but not list: not locked
            return None

    def _lock_folder(fd: int) -> bool:
        try:
            return _lock(fd)
        except OSError:
            return True  # a file system without locks, as server.py takes it
