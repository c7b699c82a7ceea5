"""The pool's lanes (morgan/pool.py): what a resolution waits for goes first, then what
it will probably want, then the downloads nobody waits for (the long ones first)."""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait

import pytest

from morgan.pool import AHEAD, BACKGROUND, LanePool


def blocked_pool() -> tuple[LanePool, threading.Event, Future[None]]:
    """A one-worker pool whose worker is busy until the event is set."""
    pool = LanePool(1)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    busy = pool.submit(hold)
    assert started.wait(10)
    return pool, release, busy


def test_urgent_work_goes_before_background_work_queued_earlier() -> None:
    pool, release, _ = blocked_pool()
    order: list[str] = []
    for name in ("a", "b"):
        pool.submit_background(order.append, name)
    pool.submit(order.append, "urgent")
    release.set()
    pool.shutdown(wait=True)
    assert order == ["urgent", "a", "b"]


def test_work_ahead_of_need_goes_between_urgent_and_background_work() -> None:
    pool, release, _ = blocked_pool()
    order: list[str] = []
    pool.submit_background(order.append, "download")
    pool.submit_ahead(order.append, "guess")
    pool.submit(order.append, "urgent")
    release.set()
    pool.shutdown(wait=True)
    assert order == ["urgent", "guess", "download"]


def test_long_background_work_goes_after_work_ahead_and_before_other_background_work() -> None:
    pool, release, _ = blocked_pool()
    order: list[str] = []
    pool.submit_background(order.append, "small-1")
    pool.submit_long(order.append, "large-1")
    pool.submit_background(order.append, "small-2")
    pool.submit_long(order.append, "large-2")
    pool.submit_ahead(order.append, "guess")
    pool.submit(order.append, "urgent")
    release.set()
    pool.shutdown(wait=True)
    assert order == ["urgent", "guess", "large-1", "large-2", "small-1", "small-2"]


@pytest.mark.parametrize("lane", ["ahead", "long", "background"])
def test_hurried_work_runs_next_and_only_once(lane: str) -> None:
    pool, release, _ = blocked_pool()
    submit = {
        "ahead": pool.submit_ahead,
        "long": pool.submit_long,
        "background": pool.submit_background,
    }[lane]
    order: list[str] = []
    futures = {name: submit(order.append, name) for name in ("a", "b", "c")}
    pool.hurry(futures["c"])
    pool.hurry(futures["c"])  # twice: still once
    release.set()
    pool.shutdown(wait=True)
    assert order == ["c", "a", "b"]
    assert all(future.done() for future in futures.values())


def test_background_work_asked_for_ahead_moves_up_a_lane_and_can_still_be_hurried() -> None:
    pool, release, _ = blocked_pool()
    order: list[str] = []
    background = {name: pool.submit_background(order.append, name) for name in ("a", "b", "c")}
    ahead = pool.submit_ahead(order.append, "guess")
    long = pool.submit_long(order.append, "large")
    pool.hurry(background["c"], AHEAD)  # after the work queued ahead before it
    pool.hurry(background["c"], AHEAD)  # twice: still once
    pool.hurry(background["b"], AHEAD)
    pool.hurry(background["b"])  # then someone waits for it: next
    pool.hurry(ahead, BACKGROUND)  # never down a lane
    pool.hurry(long, BACKGROUND)
    urgent = pool.submit(order.append, "urgent")
    pool.hurry(urgent, AHEAD)  # nor out of the urgent one
    release.set()
    pool.shutdown(wait=True)
    assert order == ["b", "urgent", "guess", "c", "large", "a"]


def test_results_and_errors_reach_the_future() -> None:
    pool = LanePool(2)
    assert pool.submit(lambda x: x * 2, 21).result(10) == 42
    failing = pool.submit_background(int, "not a number")
    with pytest.raises(ValueError):
        failing.result(10)
    pool.shutdown()


def test_shutdown_with_cancel_drops_queued_work_and_finishes_running_work() -> None:
    pool, release, busy = blocked_pool()
    queued = [pool.submit_background(print, "never"), pool.submit(print, "never")]
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert busy.done() and busy.exception() is None
    for future in queued:
        with pytest.raises(CancelledError):
            future.result(0)
    with pytest.raises(RuntimeError):
        pool.submit(print, "after")


def test_no_more_threads_than_asked() -> None:
    pool = LanePool(3)
    names: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def record() -> None:
        names.add(threading.current_thread().name)
        barrier.wait()

    futures = [pool.submit(record) for _ in range(3)]
    for future in futures:
        future.result(10)
    for _ in range(20):
        pool.submit_background(lambda: names.add(threading.current_thread().name)).result(10)
    pool.shutdown()
    assert len(names) == 3


def test_callbacks_of_work_dropped_at_shutdown_may_use_the_pool() -> None:
    # A dropped look-ahead's callback asks for a page, which hurries or queues work:
    # shutting down must not hold the pool's lock while it runs (it deadlocked).
    pool, release, _ = blocked_pool()
    other = pool.submit_ahead(lambda: None)
    heard: list[str] = []

    def ask_again(_: Future[None]) -> None:
        pool.hurry(other)
        try:
            pool.submit(lambda: None)
        except RuntimeError:
            heard.append("refused")

    pool.submit_ahead(lambda: None).add_done_callback(ask_again)
    stopping = threading.Thread(
        target=pool.shutdown, kwargs={"wait": False, "cancel_futures": True}
    )
    stopping.start()
    stopping.join(10)
    assert not stopping.is_alive()
    assert heard == ["refused"]
    release.set()
    pool.shutdown(wait=True)


def test_many_threads_submitting_and_hurrying_at_once_get_every_job_run_once() -> None:
    # No lock guards the lanes: submitters, hurriers and workers race on them.
    pool = LanePool(8)
    runs: list[int] = []
    futures: list[Future[None]] = []
    lock = threading.Lock()
    start = threading.Barrier(6, timeout=10)

    def submitter(offset: int) -> None:
        start.wait()
        for number in range(offset, offset + 500):
            submit = (pool.submit, pool.submit_ahead, pool.submit_background)[number % 3]
            future = submit(runs.append, number)
            with lock:
                futures.append(future)
            if number % 7 == 0:
                pool.hurry(future)

    threads = [threading.Thread(target=submitter, args=(n * 1000,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for future in futures:
        future.result(30)
    pool.shutdown(wait=True)
    assert sorted(runs) == sorted(n * 1000 + i for n in range(6) for i in range(500))


def _submit_until_refused(pool: LanePool, futures: list[Future[None]]) -> None:
    while True:
        try:
            futures.append(pool.submit_ahead(lambda: None))
        except RuntimeError:
            return


def test_work_submitted_while_the_pool_shuts_down_never_stays_pending() -> None:
    # Each submission either runs, is cancelled, or is refused: none waits forever
    # for workers that are gone.
    for _ in range(20):
        pool = LanePool(4)
        futures: list[Future[None]] = []
        thread = threading.Thread(target=_submit_until_refused, args=(pool, futures))
        thread.start()
        pool.shutdown(wait=True, cancel_futures=True)
        thread.join(10)
        assert not thread.is_alive()
        for future in futures:
            assert future.done(), "a job left queued with no worker"
            if not future.cancelled():
                future.result(10)


def test_work_dropped_at_shutdown_is_done_for_concurrent_futures_wait() -> None:
    # Future.cancel() alone leaves a future that wait() never counts as done: a
    # resolution waiting for a dropped download with another future hung at Ctrl-C.
    pool, release, _ = blocked_pool()
    dropped = pool.submit_ahead(print, "never")
    never: Future[None] = Future()
    threading.Timer(0.2, release.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    finished = wait([dropped, never], timeout=5, return_when=FIRST_COMPLETED)
    assert finished.done == {dropped}
    assert dropped.cancelled()
