"""One bounded pool of threads for all network work, with four lanes.

Resolution waits on pages, metadata and the small files it reads dependencies
from; it also asks, ahead of need, for what it will probably want next; and the
downloads of files already chosen wait on nobody. With one first-come queue, a
resolution's next question would queue behind its own guesses and a gigabyte of
downloads. So each worker takes *urgent* work (someone waits for it) first, then
work *ahead* of need, then *background* work; and queued work that someone turns
out to wait for can be hurried into the urgent lane (or, from the background, into the
lane ahead, when a resolution says it will want it soon).

Background work that takes *long* (a large download) has a lane of its own, before
the short: queued behind hundreds of small files, the largest wheels started last
and ended the run alone, with the small ones long done.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, Literal, TypeVar

T = TypeVar("T")

URGENT = 0
AHEAD = 1
LONG = 2
BACKGROUND = 3
_STOP = 4


def cancel(future: Future[Any]) -> None:
    """Cancel a future nobody will run, so that ``concurrent.futures.wait`` sees it done.

    ``Future.cancel`` alone leaves it CANCELLED, which ``wait`` does not count as done
    until ``set_running_or_notify_cancel`` is called (an executor calls it when it
    dequeues the work): a thread waiting for it with others waited forever.
    """
    if future.cancel():
        future.set_running_or_notify_cancel()


class _Job:
    """One call, run once however many times it is queued."""

    def __init__(
        self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any, lane: int
    ):
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        #: The most urgent lane it is queued in (two threads hurrying it at once may
        #: queue it twice in one lane: it still runs once).
        self.lane = lane
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
    """``max_workers`` threads; ``submit`` is urgent, ``submit_ahead``,
    ``submit_long`` and ``submit_background`` are not (in that order).

    Thirty-odd threads share one GIL here, and a Python lock that a thread holds
    when the GIL moves on stalls every thread that wants it (a lock convoy: four
    resolving threads spent a third of their time queued on this pool's lock). So
    the lanes are deques, and workers sleep on a C queue that holds one token per
    queued entry: nothing on the way in or out takes a Python lock.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "morgan") -> None:
        self._max_workers = max(max_workers, 1)
        self._prefix = thread_name_prefix
        #: One deque per lane, then the stop lane (None entries, one per thread).
        self._lanes: tuple[collections.deque[_Job | None], ...] = tuple(
            collections.deque() for _ in range(_STOP + 1)
        )
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._waiting: dict[Future[Any], _Job] = {}
        self._lock = threading.Lock()  # starting threads, and shutting down
        self._closed = threading.Event()

    @property
    def max_workers(self) -> int:
        return self._max_workers

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(URGENT, fn, args, kwargs)

    def submit_ahead(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(AHEAD, fn, args, kwargs)

    def submit_long(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Background work that takes long: before the rest of the background."""
        return self._put(LONG, fn, args, kwargs)

    def submit_background(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(BACKGROUND, fn, args, kwargs)

    def hurry(self, future: Future[Any], lane: int = URGENT) -> None:
        """Move queued work into a more urgent lane: someone now waits for it (``URGENT``),
        or will soon (``AHEAD``, for work queued in the long or the background lane).

        The job also stays queued where it was, and runs once, from whichever entry
        a worker takes first (or is cancelled there by ``shutdown``).
        """
        job = self._waiting.get(future)  # None: started, done, urgent, or not ours
        if job is None or job.lane <= lane or self._closed.is_set():
            return
        job.lane = lane
        if lane == URGENT:
            self._waiting.pop(future, None)
        self._enqueue(lane, job)

    def _enqueue(self, lane: int, job: _Job | None) -> None:
        self._lanes[lane].append(job)
        self._tokens.put(None)

    def _put(self, lane: int, fn: Callable[..., T], args: Any, kwargs: Any) -> Future[T]:
        if self._closed.is_set():
            raise RuntimeError("cannot schedule new work after shutdown")
        future: Future[T] = Future()
        job = _Job(future, fn, args, kwargs, lane)
        if lane != URGENT:
            self._waiting[future] = job
        self._enqueue(lane, job)
        if self._closed.is_set() and job.claim():  # shut down meanwhile: its workers may be gone
            self._waiting.pop(future, None)
            raise RuntimeError("cannot schedule new work after shutdown")
        if len(self._threads) < self._max_workers:
            with self._lock:
                if len(self._threads) < self._max_workers and not self._closed.is_set():
                    thread = threading.Thread(
                        target=self._work,
                        name=f"{self._prefix}-{len(self._threads)}",
                        daemon=True,
                    )
                    self._threads.append(thread)
                    thread.start()
        return future

    def _take(self) -> _Job | Literal[False] | None:
        """The first entry of the most urgent lane that has one: a job, None to stop, or
        False if shutdown dropped the entry this worker's token was for."""
        while True:  # each token has an entry: another worker may only have taken it first
            for lane in self._lanes:
                try:
                    return lane.popleft()
                except IndexError:
                    continue
            if self._closed.is_set():
                return False

    def _work(self) -> None:
        while True:
            self._tokens.get()
            job = self._take()
            if job is None:
                return
            if job is False or not job.claim():
                continue
            self._waiting.pop(job.future, None)
            job.run()
            del job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        dropped: list[_Job] = []
        with self._lock:
            self._closed.set()
            if cancel_futures:
                for lane in self._lanes[:_STOP]:
                    while True:
                        try:
                            job = lane.popleft()
                        except IndexError:
                            break
                        # its token stays: a worker taking it finds a later entry, or a stop
                        if job is not None and job.claim():
                            dropped.append(job)
                self._waiting.clear()
            for _ in self._threads:
                self._enqueue(_STOP, None)
            threads = list(self._threads)
        # Outside the lock: cancelling runs the futures' callbacks, which may ask the pool
        # for more (refused now) or hurry other work.
        for job in dropped:
            cancel(job.future)
        if wait:
            for thread in threads:
                thread.join()
