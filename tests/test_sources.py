"""Where dependencies are read from (PEP 658 metadata for large wheels, archives otherwise),
and in which order the pool is asked for what."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest
from builders import build_wheel
from packaging.utils import NormalizedName
from upstream import FixtureIndex

from morgan.errors import UpstreamError
from morgan.index import IndexClient
from morgan.metadata import parse_core_metadata
from morgan.models import DistributionFile, ReleaseFile
from morgan.pool import LanePool
from morgan.sources import (
    LONG_DOWNLOAD_SIZE,
    METADATA_FIRST_SIZE,
    Fetched,
    FetchOptions,
    Memo,
    TreeSource,
    UpstreamSource,
)


def release_file(filename: str, size: int | None, metadata: bool) -> ReleaseFile:
    file = DistributionFile(
        filename=filename,
        url=f"https://index.example/files/{filename}",
        hashes={"sha256": "0" * 64},
        metadata_hashes={"sha256": "1" * 64} if metadata else None,
        size=size,
    )
    found = ReleaseFile.from_file(file, "demo")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("filename", "size", "metadata", "expected"),
    [
        ("demo-1.0-py3-none-any.whl", METADATA_FIRST_SIZE, True, True),  # a large wheel
        ("demo-1.0-py3-none-any.whl", METADATA_FIRST_SIZE - 1, True, False),  # small: download
        # an sdist's build requirements are only in the archive, whatever its size
        ("demo-1.0.tar.gz", 50 * METADATA_FIRST_SIZE, True, False),
    ],
)
def test_which_dependencies_come_from_pep658_metadata(
    tmp_path: Path, filename: str, size: int, metadata: bool, expected: bool
) -> None:
    client = IndexClient("https://index.example/simple/")
    with ThreadPoolExecutor(1) as pool:
        source = UpstreamSource(
            client, pool, FetchOptions(index_path=tmp_path, package_type_regex="(whl|tar\\.gz)")
        )
        file = release_file(filename, size, metadata)
        assert source._uses_metadata_file(file.file.filename.split("-")[0], file) is expected  # type: ignore[arg-type]
    client.close()


class _RecordingClient:
    """Answers page requests with nothing, noting the order they were asked in."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_project_page(self, name: str, cached: object, keeps: object) -> None:
        self.asked.append(name)


def busy_pool() -> tuple[LanePool, threading.Event]:
    """A one-worker pool, busy until the event is set: what is queued meanwhile waits."""
    pool = LanePool(1)
    release = threading.Event()
    started = threading.Event()
    pool.submit(lambda: (started.set(), release.wait(10)))
    assert started.wait(10)
    return pool, release


def test_a_page_someone_waits_for_goes_before_pages_asked_for_ahead(tmp_path: Path) -> None:
    pool, release = busy_pool()
    client = _RecordingClient()
    source = UpstreamSource(
        client,  # type: ignore[arg-type]
        pool,
        FetchOptions(index_path=tmp_path, package_type_regex="(whl|tar\\.gz)"),
    )
    for name in ("ahead-1", "ahead-2", "needed"):
        source.prefetch(NormalizedName(name))  # all guesses, queued behind the busy worker
    waited = source.page(NormalizedName("needed"))  # now someone waits for this one
    release.set()
    waited.result(10)
    pool.shutdown(wait=True)
    assert client.asked[0] == "needed"
    assert sorted(client.asked) == ["ahead-1", "ahead-2", "needed"]  # each asked once


class _RecordingTransfers:
    """Notes the order files are transferred in, and fails each (only the order counts)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def transfer(self, file: DistributionFile, *args: object, **kwargs: object) -> None:
        self.asked.append(file.filename)
        raise UpstreamError(file.url, "not served here")

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def transfer_order(
    tmp_path: Path, queue: Callable[[UpstreamSource], list[Future[Fetched]]]
) -> list[str]:
    """The order in which the files ``queue`` fetches are transferred, all of them
    queued while the pool's one worker is busy."""
    pool, release = busy_pool()
    transfers = _RecordingTransfers()
    source = UpstreamSource(
        IndexClient("https://index.example/simple/"),
        pool,
        FetchOptions(index_path=tmp_path, package_type_regex="(whl|tar\\.gz)"),
        transfers=transfers,  # type: ignore[arg-type]
    )
    fetches = queue(source)
    release.set()
    wait(fetches, timeout=10)
    pool.shutdown(wait=True)
    return transfers.asked


DEMO = NormalizedName("demo")


def test_a_chosen_file_a_resolution_asks_for_ahead_goes_before_other_chosen_files(
    tmp_path: Path,
) -> None:
    # Files chosen go to the background lane; a build resolution about to read an sdist
    # among them asks for it ahead, and it must not wait for the hundreds queued before.
    chosen = [release_file(f"demo-{n}.0.tar.gz", 100, False) for n in (1, 2, 3)]

    def queue(source: UpstreamSource) -> list[Future[Fetched]]:
        fetches = [source.fetch(DEMO, file, background=True) for file in chosen]
        source.fetch(DEMO, chosen[2], ahead=True)
        return fetches

    assert transfer_order(tmp_path, queue) == [
        "demo-3.0.tar.gz",
        "demo-1.0.tar.gz",
        "demo-2.0.tar.gz",
    ]


def test_a_large_chosen_file_goes_before_the_small_ones_chosen_before_it(
    tmp_path: Path,
) -> None:
    # Queued behind hundreds of small files, a large wheel would start last and end the
    # run alone; it still waits for what a resolution asks for ahead.
    small = [release_file(f"demo-{n}.0.tar.gz", 100, False) for n in (1, 2)]
    large = release_file("demo-3.0.tar.gz", LONG_DOWNLOAD_SIZE, False)
    unknown = release_file("demo-4.0.tar.gz", None, False)  # no size given: not known large
    needed = release_file("demo-5.0.tar.gz", 100, False)

    def queue(source: UpstreamSource) -> list[Future[Fetched]]:
        chosen = (*small, large, unknown)
        fetches = [source.fetch(DEMO, file, background=True) for file in chosen]
        return [*fetches, source.fetch(DEMO, needed, ahead=True)]

    assert transfer_order(tmp_path, queue) == [
        "demo-5.0.tar.gz",
        "demo-3.0.tar.gz",
        "demo-1.0.tar.gz",
        "demo-2.0.tar.gz",
        "demo-4.0.tar.gz",
    ]


def test_large_chosen_files_take_at_most_half_the_workers_before_the_small_ones(
    tmp_path: Path,
) -> None:
    # Each holds its worker for the whole download: beyond half the pool's workers (here
    # the one worker's half, rounded up to one), a large file waits in turn with the rest.
    small = [release_file(f"demo-{n}.0.tar.gz", 100, False) for n in (1, 2)]
    large = [release_file(f"demo-{n}.0.tar.gz", LONG_DOWNLOAD_SIZE, False) for n in (3, 4)]

    def queue(source: UpstreamSource) -> list[Future[Fetched]]:
        chosen = (small[0], large[0], small[1], large[1])
        return [source.fetch(DEMO, file, background=True) for file in chosen]

    assert transfer_order(tmp_path, queue) == [
        "demo-3.0.tar.gz",
        "demo-1.0.tar.gz",
        "demo-2.0.tar.gz",
        "demo-4.0.tar.gz",
    ]


@contextlib.contextmanager
def source_of(
    wheel: Path, index_path: Path, *, workers: int
) -> Iterator[tuple[UpstreamSource, LanePool, ReleaseFile]]:
    """An UpstreamSource over a fixture index that serves one wheel, and the wheel's file."""
    with FixtureIndex("json") as index:
        index.add(wheel)
        client = IndexClient(index.url, retries=0)
        pool = LanePool(workers)
        source = UpstreamSource(
            client, pool, FetchOptions(index_path=index_path, package_type_regex="whl")
        )
        try:
            (file,) = source.files(NormalizedName("demo"))
            yield source, pool, file
        finally:
            pool.shutdown()
            client.close()


def test_a_wheels_dependencies_are_read_before_its_download_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resolution waiting for a small wheel's dependencies gets them once its bytes are
    # verified; syncing and renaming it into place goes on without holding it up.
    wheel = build_wheel(tmp_path / "up", "demo", "1.0", requires=["dep>=1"])
    landed = tmp_path / "index" / "demo" / wheel.name
    hold = threading.Event()
    real_replace = os.replace

    def held_replace(source: Any, target: Any) -> None:
        if Path(target) == landed:
            assert hold.wait(10)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", held_replace)
    with source_of(wheel, tmp_path / "index", workers=4) as (source, _, file):
        try:
            dependencies = source.dependencies(NormalizedName("demo"), file)
            assert [str(r) for r in dependencies.requires] == ["dep>=1"]
            assert not landed.exists()  # still held
            hold.set()
            fetched = source.fetch(NormalizedName("demo"), file).result(10)
        finally:
            hold.set()
    assert fetched.dependencies == dependencies
    assert landed.read_bytes() == wheel.read_bytes()
    assert Path(f"{landed}.metadata").is_file()


def test_memo_makes_each_key_once_however_many_threads_ask() -> None:
    memo: Memo[str, int] = Memo()
    made: list[str] = []
    gate = threading.Barrier(8, timeout=10)

    def start() -> Future[int]:
        made.append("page")
        future: Future[int] = Future()
        future.set_result(len(made))
        return future

    def ask() -> Future[int]:
        gate.wait()
        return memo.get("page", start)

    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda _: ask(), range(8)))
    assert made == ["page"]
    assert all(answer is answers[0] for answer in answers)


class HeldMaker:
    """A ``start`` for ``Memo.get`` that says it began, then waits to be released."""

    def __init__(self) -> None:
        self.making = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Future[int]:
        self.making.set()
        self.release.wait(10)
        return Future()


def test_memo_does_not_hold_other_keys_up_while_one_is_being_made() -> None:
    # Making a key may read a file or start a thread; it runs outside the memo's lock.
    memo: Memo[str, int] = Memo()
    slow = HeldMaker()

    def quick() -> Future[int]:
        return Future()

    with ThreadPoolExecutor(1) as threads:
        slow_one = threads.submit(memo.get, "slow", slow)
        assert slow.making.wait(10)
        assert not memo.get("quick", quick).done()  # answered while "slow" is being made
        slow.release.set()
        slow_one.result(10)


def test_a_key_being_made_is_in_the_memo() -> None:
    # Whoever checks ``in`` to choose how to read a file must see a read that is starting.
    memo: Memo[str, int] = Memo()
    slow = HeldMaker()
    with ThreadPoolExecutor(1) as threads:
        made = threads.submit(memo.get, "wheel", slow)
        assert slow.making.wait(10)
        assert "wheel" in memo and "other" not in memo
        slow.release.set()
        assert memo.get("wheel", slow) is made.result(10)
    assert "wheel" in memo


@pytest.mark.parametrize("failure", [OSError("cannot read the state"), KeyboardInterrupt()])
def test_memo_tries_again_when_making_a_key_failed(failure: BaseException) -> None:
    # Also when interrupted: a key left "being made" would make every later caller wait.
    memo: Memo[str, int] = Memo()
    attempts: list[int] = []

    def start() -> Future[int]:
        attempts.append(1)
        if len(attempts) == 1:
            raise failure
        return Future()

    with pytest.raises(type(failure)):
        memo.get("page", start)
    with ThreadPoolExecutor(1) as threads:  # another thread: it must not wait for ever
        assert not threads.submit(memo.get, "page", start).result(10).done()
    assert len(attempts) == 2


def test_a_wheel_whose_download_was_dropped_at_shutdown_does_not_hang_its_reader(
    tmp_path: Path,
) -> None:
    # Interrupted: the pool drops a queued look-ahead download; a resolution that then
    # asks for the wheel's dependencies gets an error, not a wait that never ends.
    wheel = build_wheel(tmp_path / "up", "demo", "1.0", requires=["dep>=1"])
    with source_of(wheel, tmp_path / "index", workers=1) as (source, pool, file):
        release = threading.Event()
        started = threading.Event()
        pool.submit(lambda: (started.set(), release.wait(10)))
        assert started.wait(10)
        source.prefetch_dependencies(NormalizedName("demo"), file)  # queued, ahead
        threading.Timer(0.2, release.set).start()
        pool.shutdown(wait=True, cancel_futures=True)
        with ThreadPoolExecutor(1) as reader:
            asked = reader.submit(source.dependencies, NormalizedName("demo"), file)
            with pytest.raises(CancelledError):
                asked.result(10)


def test_the_tree_source_parses_only_metadata_the_run_has_not_read(tmp_path: Path) -> None:
    # The proof reads each wheel's .metadata from the tree. Bytes the run read already
    # (by their sha256) are not parsed again; any other bytes are, whatever the run read.
    folder = tmp_path / "demo"
    folder.mkdir()
    said = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: dep>=1\n"
    read = parse_core_metadata(said, "demo-1.0-py3-none-any.whl")
    known = {hashlib.sha256(said).hexdigest(): read}
    wheel = release_file("demo-1.0-py3-none-any.whl", 1, metadata=True)
    sidecar = folder / "demo-1.0-py3-none-any.whl.metadata"

    sidecar.write_bytes(said)
    tree = TreeSource(tmp_path, "whl", known_metadata=known)
    assert tree.dependencies(NormalizedName("demo"), wheel) is read

    sidecar.write_bytes(said.replace(b"dep>=1", b"other<2"))  # not what the run read
    tree = TreeSource(tmp_path, "whl", known_metadata=known)
    found = tree.dependencies(NormalizedName("demo"), wheel)
    assert [str(r) for r in found.requires] == ["other<2"]


def test_a_small_wheel_looked_ahead_at_while_backtracking_is_read_from_its_metadata(
    tmp_path: Path,
) -> None:
    # unlikely=True: its PEP 658 metadata, not the wheel; a wheel already fetched is
    # read from what is in, with no request at all.
    dists = tmp_path / "up"
    with FixtureIndex("json") as index:
        index.add(build_wheel(dists, "demo", "1.0", requires=["dep>=1"]))
        index.add(build_wheel(dists, "demo", "0.9", requires=["dep>=0.5"]))
        client = IndexClient(index.url, retries=0)
        pool = LanePool(4)
        source = UpstreamSource(
            client, pool, FetchOptions(index_path=tmp_path / "index", package_type_regex="whl")
        )
        try:
            newer, older = source.files(NormalizedName("demo"))
            name = NormalizedName("demo")
            source.prefetch_dependencies(name, older, unlikely=True)
            found = source.dependencies(name, older)
            assert [str(r) for r in found.requires] == ["dep>=0.5"]
            asked = [path.rsplit("/", 1)[-1] for path in index.requests]
            assert f"{older.file.filename}.metadata" in asked
            assert older.file.filename not in asked
            assert not (tmp_path / "index" / "demo" / older.file.filename).exists()

            source.fetch(name, newer).result(10)
            index.requests.clear()
            source.prefetch_dependencies(name, newer, unlikely=True)
            assert [str(r) for r in source.dependencies(name, newer).requires] == ["dep>=1"]
            assert index.requests == []
        finally:
            pool.shutdown()
            client.close()
