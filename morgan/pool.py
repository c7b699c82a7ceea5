"""One bounded pool of threads for all network work, with three lanes.

Resolution waits on pages, metadata and the small files it reads dependencies
from; it also asks, ahead of need, for what it will probably want next; and the
downloads of files already chosen wait on nobody. With one first-come queue, a
resolution's next question would queue behind its own guesses and a gigabyte of
downloads. So each worker takes *urgent* work (someone waits for it) first, then
work *ahead* of need, then *background* work; and queued work that someone turns
out to wait for can be hurried into the urgent lane.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

URGENT = 0
AHEAD = 1
BACKGROUND = 2
_STOP = 3


class _Job:
    """One call, run once however many times it is queued."""

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any):
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as error:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class LanePool(Executor):
    """``max_workers`` threads; ``submit`` is urgent, ``submit_ahead`` and
    ``submit_background`` are not (in that order)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "morgan") -> None:
        self._max_workers = max(max_workers, 1)
        self._prefix = thread_name_prefix
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._waiting: dict[Future[Any], _Job] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(URGENT, fn, args, kwargs)

    def submit_ahead(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(AHEAD, fn, args, kwargs)

    def submit_background(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(BACKGROUND, fn, args, kwargs)

    def hurry(self, future: Future[Any]) -> None:
        """Move queued work into the urgent lane: someone now waits for it."""
        if future not in self._waiting:  # started, done, urgent already, or not ours
            return
        with self._lock:
            job = self._waiting.pop(future, None)
            if job is not None and not self._closed:
                self._queue.put((URGENT, next(self._order), job))

    def _put(self, lane: int, fn: Callable[..., T], args: Any, kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        job = _Job(future, fn, args, kwargs)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            if lane != URGENT:
                self._waiting[future] = job
            self._queue.put((lane, next(self._order), job))
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._prefix}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            if not job.claim():
                continue
            with self._lock:
                self._waiting.pop(job.future, None)
            job.run()
            del job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        dropped: list[_Job] = []
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        _, _, job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None and job.claim():
                        dropped.append(job)
                self._waiting.clear()
            for _ in self._threads:
                self._queue.put((_STOP, next(self._order), None))
            threads = list(self._threads)
        # Outside the lock: cancelling runs the futures' callbacks, which may ask the pool
        # for more (refused now) or hurry other work.
        for job in dropped:
            job.future.cancel()
        if wait:
            for thread in threads:
                thread.join()
