"""How far a run has got: counters bumped by the walk and its workers, and a live line.

The counters are plain numbers behind a lock, so worker threads can add the
bytes they receive; only the CLI decides whether to show them, as one line
redrawn in place on a terminal (never in logs or pipes, which get the plain
lines only).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TextIO

#: Seconds between two redraws of the live line.
REDRAW_INTERVAL = 0.2


@dataclass(frozen=True)
class Snapshot:
    projects: int
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    #: Bytes per second received recently (not counting files already in the tree).
    rate: float


class Progress:
    """Counters of one run; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._projects = 0
        self._files_done = 0
        self._files_total = 0
        self._bytes_done = 0
        self._bytes_total = 0
        self._received = 0
        #: (time, bytes received) samples of the last few seconds, for the rate.
        self._samples: list[tuple[float, int]] = [(self._started, 0)]

    def project_resolved(self) -> None:
        with self._lock:
            self._projects += 1

    def file_queued(self, size: int | None) -> None:
        with self._lock:
            self._files_total += 1
            self._bytes_total += size or 0

    def file_done(self, size: int, expected: int | None) -> None:
        """A file is in the tree; ``expected`` is the size it was queued with."""
        with self._lock:
            self._files_done += 1
            self._bytes_total += size - (expected or 0)

    def file_failed(self, expected: int | None) -> None:
        with self._lock:
            self._files_total -= 1
            self._bytes_total -= expected or 0

    def bytes_received(self, count: int) -> None:
        with self._lock:
            self._received += count

    def bytes_in_tree(self, count: int) -> None:
        """Bytes of files found already in the tree (counted as done, not as received)."""
        with self._lock:
            self._bytes_done += count

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, self._received))
            while len(self._samples) > 2 and now - self._samples[0][0] > 5:
                self._samples.pop(0)
            then, before = self._samples[0]
            rate = (self._received - before) / (now - then) if now > then else 0.0
            return Snapshot(
                projects=self._projects,
                files_done=self._files_done,
                files_total=self._files_total,
                bytes_done=self._bytes_done + self._received,
                bytes_total=max(self._bytes_total, self._bytes_done + self._received),
                rate=rate,
            )


def format_size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def render(snapshot: Snapshot) -> str:
    """The live line: projects resolved, files done/total, bytes, rate and time left."""
    line = (
        f"{snapshot.projects} projects, {snapshot.files_done}/{snapshot.files_total} files, "
        f"{format_size(snapshot.bytes_done)}/{format_size(snapshot.bytes_total)}, "
        f"{format_size(snapshot.rate)}/s"
    )
    remaining = snapshot.bytes_total - snapshot.bytes_done
    if snapshot.rate > 0 and remaining > 0:
        line += f", {_duration(remaining / snapshot.rate)} left"
    return line


class LiveLine:
    """Draws the progress line in place on a terminal, and gets out of the way of log lines."""

    def __init__(self, progress: Progress, stream: TextIO) -> None:
        self.progress = progress
        self.stream = stream
        self._last_draw = 0.0
        self._shown = False
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Redraw, if the last drawing is old enough."""
        now = time.monotonic()
        if now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        text = render(self.progress.snapshot())
        with self._lock:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False

    def log_filter(self, record: logging.LogRecord) -> bool:
        """A logging filter that wipes the line before a log line is written under it."""
        self.clear()
        self._last_draw = 0.0
        return True
