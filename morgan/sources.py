"""Where the resolver reads projects from: the upstream index, or the mirrored tree.

Both answer the same two questions, which are all resolution needs: the files
of a project, and what one file's distribution depends on. The upstream source
answers from the network through one bounded pool; every answer is computed
once and shared (a memo of futures), so the resolution threads of all
environments ask freely and the pool is never asked twice. The tree source
answers from the pages and sidecars the mirror wrote, for the proof.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, InvalidStateError, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name

from morgan.download import DownloadResult, part_path, reuse
from morgan.environments import Environment
from morgan.errors import DistributionError, MorganError, ProjectNotFoundError, UpstreamError
from morgan.index import PageFetch, Upstream
from morgan.layout import (
    HASH_SUFFIX,
    METADATA_SUFFIX,
    PAGE_JSON,
    atomic_write,
    check_filename,
    is_upload,
    project_dir,
)
from morgan.lazy_wheel import TooMuchToRead, read_metadata_by_ranges
from morgan.metadata import (
    MAX_MEMBER_BYTES,
    Dependencies,
    parse_core_metadata,
    read_sdist_dependencies,
    read_wheel_metadata,
)
from morgan.models import PREFERRED_HASH, DistributionFile, ReleaseFile, wheel_filename_tags
from morgan.pool import AHEAD, BACKGROUND, LONG, URGENT, LanePool, cancel
from morgan.progress import Progress
from morgan.selection import release_files
from morgan.simple import parse_json_page
from morgan.state import KnownDependencies, ProjectState, VerifiedFile
from morgan.transfers import DownloadProcessError, LocalTransfers, Transfers

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

SIDECAR_SUFFIXES = (HASH_SUFFIX, METADATA_SUFFIX)
#: The digest of a page the index says does not exist.
NOT_FOUND = "not found"
#: Files at least this large (or of unknown size) have their PEP 658 metadata fetched
#: for their dependencies; smaller ones are downloaded instead, in about the same time.
METADATA_FIRST_SIZE = 1024 * 1024
#: Chosen files at least this large are downloaded before the smaller ones chosen: a
#: large wheel queued behind hundreds of small files started last and ended the run
#: alone (on the benchmark, 3 % of a cold run). At most half the pool's workers are
#: given to them at once (queued or running): each holds its worker for the whole
#: download, and resolution's urgent work must still find free ones.
LONG_DOWNLOAD_SIZE = 8 * 1024 * 1024


class ProjectSource(Protocol):
    """What a resolution asks of an index."""

    def files(self, name: NormalizedName) -> Sequence[ReleaseFile]:
        """The project's wheels and sdists, newest first; MorganError if unreadable."""

    def dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        """What the distribution in ``file`` depends on; MorganError if unreadable."""

    def prefetch(
        self,
        name: NormalizedName,
        then: Callable[[Sequence[ReleaseFile]], None] | None = None,
    ) -> None:
        """A hint: the project's page will probably be asked for soon; once it is in,
        ``then`` may be called with its files (on any thread) to look further ahead."""

    def prefetch_dependencies(
        self,
        name: NormalizedName,
        file: ReleaseFile,
        then: Callable[[], None] | None = None,
        *,
        unlikely: bool = False,
    ) -> None:
        """A hint: this file's dependencies will probably be asked for soon; once they
        can be read without waiting, ``then`` may be called (on any thread).

        ``unlikely``: the version is one a resolution may try but will probably not
        keep (backtracking): its metadata is worth more than the file.
        """


class Memo(Generic[K, V]):
    """One result per key, computed once however many threads ask for it."""

    def __init__(self) -> None:
        self._futures: dict[K, Future[V]] = {}
        self._making: dict[K, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: K, start: Callable[[], Future[V]]) -> Future[V]:
        """The future for ``key``; the first caller makes it with ``start``.

        Every thread asks all the time, so a future made already is returned without
        the lock, and ``start`` (which may read a file or start a thread) runs outside
        it: others asking for the same key wait for it, others asking for other keys
        do not. If ``start`` raises, the next caller tries again.
        """
        future = self._futures.get(key)
        if future is not None:
            return future
        mine: threading.Event | None = None
        try:
            while True:
                with self._lock:
                    future = self._futures.get(key)
                    if future is not None:
                        return future
                    making = self._making.get(key)
                    if making is None:
                        mine = threading.Event()
                        self._making[key] = mine
                        break
                making.wait()
            future = start()
            with self._lock:
                self._futures[key] = future
            return future
        finally:  # also when interrupted (Ctrl-C): nobody may wait for a maker that is gone
            if mine is not None:
                with self._lock:
                    if self._making.get(key) is mine:
                        del self._making[key]
                mine.set()

    def peek(self, key: K) -> Future[V] | None:
        """The future for ``key``, if it is made."""
        return self._futures.get(key)

    def items(self) -> list[tuple[K, Future[V]]]:
        with self._lock:
            return list(self._futures.items())

    def __contains__(self, key: object) -> bool:
        """Whether ``key``'s future is made, or being made (``get`` then waits for it): a
        read that is starting counts, or a second thread would read another way too."""
        with self._lock:
            return key in self._futures or key in self._making


@dataclass(frozen=True)
class Fetched:
    """A distribution put in the tree, verified, with its dependencies read."""

    result: DownloadResult
    dependencies: Dependencies
    file: DistributionFile
    #: The project, which is also the file's folder in the tree.
    project: NormalizedName


@dataclass(frozen=True)
class FetchOptions:
    index_path: Path
    package_type_regex: str
    #: Re-hash every file already in the tree instead of trusting unchanged ones.
    verify: bool = False
    #: A dry run: what must be downloaded to read its metadata lands here, and nothing
    #: is written to the tree (files already there are read in place).
    scratch: Path | None = None
    #: The client environments: a wheel none of them installs is set aside as soon as its
    #: page is read (none of them will ever consider it). None keeps every file.
    environments: tuple[Environment, ...] | None = None


class UpstreamSource:
    """The upstream index, read through one pool; downloads land in the tree."""

    def __init__(
        self,
        client: Upstream,
        pool: Executor,
        options: FetchOptions,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        transfers: Transfers | None = None,
    ) -> None:
        self.client = client
        #: Where files not yet in the tree are fetched: here, unless a download process is given.
        self.transfers = transfers or LocalTransfers(client)
        self.options = options
        self.progress = progress or Progress()
        self.cancel = cancel or threading.Event()
        self._pool = pool
        self._pages: Memo[NormalizedName, PageFetch] = Memo()
        self._files: dict[NormalizedName, list[ReleaseFile]] = {}
        self._file_locks: dict[NormalizedName, threading.Lock] = {}
        #: How many wheels of each project no environment installs (set aside, not kept).
        self._set_aside: dict[NormalizedName, int] = {}
        self._installs_anywhere: dict[frozenset[Tag], bool] = {}
        self._type_pattern = re.compile(rf"\.{options.package_type_regex}$")
        self._metadata: Memo[str, Dependencies] = Memo()
        self._downloads: Memo[str, Fetched] = Memo()
        #: The filenames fetched of each project (its pages are written as soon as its
        #: files are in, and only its own fetches are looked at then).
        self._fetched_of: dict[NormalizedName, list[str]] = {}
        self._states: dict[NormalizedName, ProjectState] = {}
        self._metadata_hosts = _HostAnswers()
        self._range_hosts = _HostAnswers()
        self._ranged: Memo[str, Dependencies] = Memo()
        #: sha256 of each ``.metadata`` read without the page announcing it, by wheel.
        self._unannounced_metadata: dict[str, str] = {}
        self._mismatched_metadata: set[str] = set()
        #: Downloads queued ahead or in the background and not yet hurried, by filename.
        self._queued_jobs: dict[str, Future[Fetched]] = {}
        #: Downloads in the pool's long lane, queued or running, and how many may be.
        self._long_downloads = 0
        self._long_limit = max(1, pool.max_workers // 2) if isinstance(pool, LanePool) else 0
        #: Wheels' dependencies read as soon as their bytes were verified, before the
        #: download is synced and renamed into place; and their METADATA, for the sidecar
        #: (with what it says: it is parsed once).
        self._verified_dependencies: Memo[str, Dependencies] = Memo()
        self._verified_metadata: dict[str, tuple[bytes, Dependencies]] = {}
        #: What each METADATA read from a download's verified bytes says, by their sha256.
        self._metadata_read: dict[str, Dependencies] = {}
        self._lock = threading.Lock()
        #: Parts of downloads that broke off, kept for the next run to resume.
        self.resumable: set[Path] = set()

    # -- pages ----------------------------------------------------------------

    def state(self, name: NormalizedName) -> ProjectState:
        state = self._states.get(name)  # asked all the time, by every thread: no lock once loaded
        if state is not None:
            return state
        loaded = ProjectState.load(self.options.index_path / name)
        with self._lock:
            return self._states.setdefault(name, loaded)

    @property
    def states(self) -> dict[NormalizedName, ProjectState]:
        with self._lock:
            return dict(self._states)

    def page(self, name: NormalizedName, *, ahead: bool = False) -> Future[PageFetch]:
        """The project's page, fetched once: ``ahead`` of need, or for someone who waits."""

        def start() -> Future[PageFetch]:
            project_dir(self.options.index_path, name)  # refuses a name that is a path
            state = self.state(name)
            future = self._submit(
                AHEAD if ahead else URGENT,
                self.client.get_project_page,
                name,
                state.page,
                self._keeps,
            )
            future.add_done_callback(lambda f: self._page_done(name, f))
            return future

        future = self._pages.get(name, start)
        if not ahead:
            self._hurry(future)
        return future

    def _submit(self, lane: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue work in a lane of the pool (an executor without lanes takes it in turn)."""
        if isinstance(self._pool, LanePool):
            if lane == AHEAD:
                return self._pool.submit_ahead(fn, *args)
            if lane == LONG:
                return self._pool.submit_long(fn, *args)
            if lane == BACKGROUND:
                return self._pool.submit_background(fn, *args)
        return self._pool.submit(fn, *args)

    def _hurry(self, future: Future[Any], lane: int = URGENT) -> None:
        """Someone waits for this work now (or will soon, ``AHEAD``): if it is still
        queued in a later lane, it moves up."""
        if isinstance(self._pool, LanePool):
            self._pool.hurry(future, lane)

    def _page_done(self, name: NormalizedName, future: Future[PageFetch]) -> None:
        with contextlib.suppress(Exception):
            self.state(name).page = future.result().cache

    def prefetch(
        self,
        name: NormalizedName,
        then: Callable[[Sequence[ReleaseFile]], None] | None = None,
    ) -> None:
        try:
            future = self.page(name, ahead=True)
        except MorganError:
            return
        if then is not None:
            future.add_done_callback(lambda _: self._look_ahead(name, then))

    def _look_ahead(
        self, name: NormalizedName, then: Callable[[Sequence[ReleaseFile]], None]
    ) -> None:
        try:
            then(self.files(name))
        except Exception:  # only a hint: whoever needs the page will meet the error
            log.debug("%s: looking ahead failed", name, exc_info=True)

    def files(self, name: NormalizedName) -> Sequence[ReleaseFile]:
        """The project's files that some environment may install (its page is read once,
        then released: only these are kept)."""
        found = self._files.get(name)  # asked all the time, by every thread: no lock once in
        if found is not None:
            return found
        with self._lock:
            lock = self._file_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                found = self._files.get(name)
            if found is not None:
                return found
            fetched = self.page(name).result()
            every = release_files(fetched.page, self.options.package_type_regex)
            found = [file for file in every if self._installs_somewhere(file)]
            with self._lock:
                self._files[name] = found
                self._set_aside[name] = len(every) - len(found)
            fetched.release_page()
        self.progress.project_resolved()
        return found

    def set_aside(self, name: NormalizedName) -> int:
        """How many wheels of the project no environment installs (for messages)."""
        with self._lock:
            return self._set_aside.get(name, 0)

    def _installs_somewhere(self, file: ReleaseFile) -> bool:
        return not file.is_wheel or self._tags_install_somewhere(file.tags)

    def _keeps(self, filename: str) -> bool:
        """Whether a page's file is worth parsing: a distribution of the mirrored types
        that is an sdist, or a wheel some environment installs."""
        if not self._type_pattern.search(filename):
            return False
        tags = wheel_filename_tags(filename) if filename.endswith(".whl") else None
        return tags is None or self._tags_install_somewhere(tags)

    def _tags_install_somewhere(self, tags: frozenset[Tag]) -> bool:
        environments = self.options.environments
        if environments is None:
            return True
        known = self._installs_anywhere.get(tags)  # a page repeats a few tag sets
        if known is None:
            known = any(env.wheel_rank(tags) is not None for env in environments)
            self._installs_anywhere[tags] = known
        return known

    def page_unchanged(self, name: NormalizedName) -> bool:
        """True when the index answered 304 for the project's page this run."""
        if name not in self._pages:
            return False
        future = self.page(name)
        return future.done() and future.exception() is None and future.result().not_modified

    def page_digests(self) -> dict[NormalizedName, str | None]:
        """Every page asked for this run: its digest, ``NOT_FOUND``, or None if it
        failed or is not in yet (then nothing read from it can be trusted later)."""
        digests: dict[NormalizedName, str | None] = {}
        for name, future in self._pages.items():
            if not future.done() or future.cancelled():
                digests[name] = None
            elif isinstance(future.exception(), ProjectNotFoundError):
                digests[name] = NOT_FOUND
            elif future.exception() is not None:
                digests[name] = None
            else:
                digests[name] = future.result().digest or None
        return digests

    def known_files(self, name: NormalizedName) -> dict[str, DistributionFile]:
        """What the index said this run of the project's files, for the pages (of the
        files some environment installs: others are in the tree only from an earlier
        configuration, and their page keeps what the index said of them then)."""
        if name not in self._pages:
            return {}
        future = self.page(name)
        if not future.done() or future.exception() is not None:
            return {}
        try:
            return {f.file.filename: f.file for f in self.files(name)}
        except MorganError as error:  # the kept copy of a 304 page, unreadable after all
            log.info("%s: %s", name, error)
            return {}

    # -- dependencies ---------------------------------------------------------

    def _uses_metadata_file(self, name: NormalizedName, file: ReleaseFile) -> bool | Future[bool]:
        """Whether to read dependencies from the PEP 658 file rather than the distribution.

        A file already in the tree is read instead (no request at all), and so is
        a small one, downloaded anyway in about the time the metadata would take.
        A wheel whose page does not offer its metadata has it asked for anyway
        where its host serves ``<file>.metadata`` (the default index does, behind
        proxies that strip the attribute): the first such wheel of a host finds
        out for the host, so a host without them costs one request. While that
        is not known, a Future of the answer.
        """
        if not self._worth_reading_apart(name, file):
            return False
        if file.file.metadata_hashes is not None or file.file.filename in self._metadata:
            return True
        host = urllib.parse.urlsplit(file.file.url).netloc
        return self._metadata_hosts.answer(host, lambda: self._metadata_future(name, file), _served)

    def _announced_metadata(self, name: NormalizedName, file: ReleaseFile) -> bool:
        """Whether a wheel's metadata is offered on its own (PEP 658), whatever its size.

        For a version backtracking looks at: most are never kept, and a small wheel
        downloaded only to be read would be written, synced and deleted again.
        """
        return (
            file.is_wheel
            and file.file.metadata_hashes is not None
            and file.file.filename not in self._downloads
            and not self.in_tree(name, file)
        )

    def _worth_reading_apart(self, name: NormalizedName, file: ReleaseFile) -> bool:
        """A wheel large enough that its METADATA alone is worth asking for (any wheel, in
        a dry run: it downloads only what cannot be read otherwise)."""
        small = (file.file.size or METADATA_FIRST_SIZE) < METADATA_FIRST_SIZE
        return (
            file.is_wheel  # an sdist's build requirements are only in the archive
            and (not small or self.options.scratch is not None)
            and file.file.filename not in self._downloads
            and not self.in_tree(name, file)
        )

    def _uses_ranges(self, name: NormalizedName, file: ReleaseFile) -> bool | Future[bool]:
        """Whether to read a wheel's METADATA by byte ranges (as pip's and uv's lazy wheels
        do): where neither the page nor the host offers it, and the host serves ranges.
        The first such wheel of a host finds out for the host; until then a Future."""
        if file.file.filename in self._ranged:
            return True
        if not self._worth_reading_apart(name, file) or file.file.metadata_hashes is not None:
            return False
        host = urllib.parse.urlsplit(file.file.url).netloc
        if self._metadata_hosts.known(host) is not False:
            return False
        return self._range_hosts.answer(
            host, lambda: self._ranged_future(name, file), _ranges_served
        )

    def _ranged_future(
        self, name: NormalizedName, file: ReleaseFile, *, ahead: bool = False
    ) -> Future[Dependencies]:
        return self._read_apart(self._ranged, self._read_by_ranges, name, file, ahead)

    def _read_by_ranges(self, name: NormalizedName, file: DistributionFile) -> Dependencies:
        data = read_metadata_by_ranges(self.client, file.url, file.size, file.filename, name)
        with self._lock:  # checked once the wheel is in, as unannounced .metadata are
            self._unannounced_metadata[file.filename] = hashlib.sha256(data).hexdigest()
        return parse_core_metadata(data, file.filename)

    def _metadata_future(
        self, name: NormalizedName, file: ReleaseFile, *, ahead: bool = False
    ) -> Future[Dependencies]:
        return self._read_apart(
            self._metadata,
            lambda _, distribution: self._fetch_metadata(distribution),
            name,
            file,
            ahead,
        )

    def _read_apart(
        self,
        memo: Memo[str, Dependencies],
        read: Callable[[NormalizedName, DistributionFile], Dependencies],
        name: NormalizedName,
        file: ReleaseFile,
        ahead: bool,
    ) -> Future[Dependencies]:
        """A wheel's dependencies read without the wheel, once; remembered when read."""

        def start() -> Future[Dependencies]:
            future = self._submit(AHEAD if ahead else URGENT, read, name, file.file)
            future.add_done_callback(lambda done: self._remember_fetched(name, file, done))
            return future

        future = memo.get(file.file.filename, start)
        if not ahead:
            self._hurry(future)
        return future

    def _fetch_metadata(self, file: DistributionFile) -> Dependencies:
        data = self.client.get_bytes(file.metadata_url, MAX_MEMBER_BYTES)
        digest = hashlib.sha256(data).hexdigest()
        if file.metadata_hashes is None:  # unannounced: checked once the wheel is in
            with self._lock:
                self._unannounced_metadata[file.filename] = digest
        elif digest != file.metadata_hashes.get(PREFERRED_HASH, digest):
            raise UpstreamError(file.metadata_url, "metadata file does not match its hash")
        return parse_core_metadata(data, file.filename + METADATA_SUFFIX)

    def prefetch_dependencies(
        self,
        name: NormalizedName,
        file: ReleaseFile,
        then: Callable[[], None] | None = None,
        *,
        unlikely: bool = False,
    ) -> None:
        if self._known_dependencies(name, file) is not None:
            future: Future[Any] | None = None
        else:
            try:
                route = self._uses_metadata_file(name, file) or (
                    unlikely and self._announced_metadata(name, file)
                )
                ranged = False if route is True else self._uses_ranges(name, file)
                for pending in (route, ranged):
                    if isinstance(pending, Future):  # again once the host's answer is in
                        pending.add_done_callback(
                            lambda _: self.prefetch_dependencies(
                                name, file, then, unlikely=unlikely
                            )
                        )
                        return
                if route:
                    future = self._metadata_future(name, file, ahead=True)
                elif ranged:
                    future = self._ranged_future(name, file, ahead=True)
                else:
                    future = self.fetch(name, file, ahead=True)
                    if file.is_wheel:  # set when its bytes verified, or once it is in
                        future = self._early_dependencies(file)
            except MorganError:
                return
        if then is None:
            return
        if future is None:
            _quietly(then)
        else:
            # only once it succeeded: reading the dependencies must not wait in a worker
            future.add_done_callback(lambda done: _quietly(then) if _succeeded(done) else None)

    def metadata_mismatches(self) -> list[str]:
        """Wheels whose unannounced ``.metadata`` turned out not to be their METADATA."""
        with self._lock:
            return sorted(self._mismatched_metadata)

    def dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        """From this run's work, else the state's record, else PEP 658, else the file.

        What is read is recorded in the project's state by the index's sha256 of
        the file: a re-run backtracking over the same versions reads nothing.
        """
        known = self._known_dependencies(name, file)
        if known is not None:
            return known.dependencies(file.file.filename)
        dependencies = self._read_dependencies(name, file)
        self._remember(name, file, dependencies)
        return dependencies

    def _remember_fetched(
        self, name: NormalizedName, file: ReleaseFile, done: Future[Dependencies]
    ) -> None:
        if _succeeded(done):
            self._remember(name, file, done.result())

    def _remember(
        self, name: NormalizedName, file: ReleaseFile, dependencies: Dependencies
    ) -> None:
        """Keep what was read, whoever read it (a look-ahead too): the file may not be kept."""
        sha256 = file.file.hashes.get(PREFERRED_HASH, "").lower()
        if sha256:
            self.state(name).dependencies[file.file.filename] = KnownDependencies.of(
                sha256, dependencies
            )

    def _known_dependencies(
        self, name: NormalizedName, file: ReleaseFile
    ) -> KnownDependencies | None:
        """The state's record of the file's dependencies, if it is of these very bytes."""
        sha256 = file.file.hashes.get(PREFERRED_HASH, "").lower()
        known = self.state(name).dependencies.get(file.file.filename)
        return known if known is not None and sha256 and known.sha256 == sha256 else None

    def _read_dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        route = self._uses_metadata_file(name, file)
        if isinstance(route, Future):
            route = route.result()  # the host's probe is under way
        if route or file.file.filename in self._metadata:
            try:
                return self._metadata_future(name, file).result()
            except MorganError as error:
                log.info(
                    "%s: PEP 658 metadata unusable (%s); reading the file itself",
                    file.file.filename,
                    error,
                )
        ranged = self._uses_ranges(name, file)
        if isinstance(ranged, Future):
            ranged = ranged.result()  # the host's first ranged read is under way
        if ranged:
            try:
                return self._ranged_future(name, file).result()
            except MorganError as error:
                log.info("%s: not read by ranges (%s); reading the file", file.file.filename, error)
        fetched = self.fetch(name, file)
        if file.is_wheel:  # its dependencies may be read before the download is done
            early = self._early_dependencies(file)
            pending: list[Future[Any]] = [early, fetched]
            wait(pending, return_when=FIRST_COMPLETED)
            if early.done() and _succeeded(early):
                return early.result()
        return fetched.result().dependencies

    # -- downloads ------------------------------------------------------------

    def in_tree(self, name: NormalizedName, file: ReleaseFile) -> bool:
        """True if the file is in the tree, unchanged since it was verified as the index's."""
        record = self.state(name).verified.get(file.file.filename)
        expected = file.file.hashes.get(PREFERRED_HASH)
        if record is None or expected is None or record.sha256 != expected.lower():
            return False
        return record.still_matches(self.options.index_path / name / file.file.filename)

    def fetch(
        self,
        name: NormalizedName,
        file: ReleaseFile,
        *,
        ahead: bool = False,
        background: bool = False,
    ) -> Future[Fetched]:
        """The file verified in the tree, with its dependencies: downloaded once.

        A fetch ``ahead`` of need (to read its dependencies soon) or in the
        ``background`` (a file chosen, that nobody waits for yet; the large ones
        before the others, on up to half the pool's workers) lets the pool's urgent
        work go first, until someone fetches it without either flag.
        """
        made: list[Future[Fetched]] = []

        def start() -> Future[Fetched]:
            made.append(Future())
            return made[0]

        lane = BACKGROUND if background else AHEAD if ahead else URGENT
        future = self._downloads.get(file.file.filename, start)
        if made:  # this call made it: do the work, outside the memo's lock
            self._fetched_of.setdefault(name, []).append(file.file.filename)
            if lane == BACKGROUND and self._takes_long_lane(file):
                lane = LONG
                future.add_done_callback(lambda _: self._leave_long_lane())
            try:
                self._start_fetch(name, file, future, lane)
            except BaseException:  # interrupted (Ctrl-C) before the outcome was wired up
                cancel(future)
                raise
        elif lane == URGENT:
            job = self._queued_jobs.pop(file.file.filename, None)
            if job is not None:
                self._hurry(job)
        elif lane == AHEAD:  # a chosen file a resolution will read soon: before the others
            job = self._queued_jobs.get(file.file.filename)
            if job is not None:
                self._hurry(job, AHEAD)
        return future

    def _takes_long_lane(self, file: ReleaseFile) -> bool:
        """Whether a chosen file goes before the small ones: it is large, and the long
        lane has room (else it waits in turn with the others, as any file did before)."""
        if (file.file.size or 0) < LONG_DOWNLOAD_SIZE:
            return False
        with self._lock:
            if self._long_downloads >= self._long_limit:
                return False
            self._long_downloads += 1
            return True

    def _leave_long_lane(self) -> None:
        with self._lock:
            self._long_downloads -= 1

    def sdist_dependencies(self) -> dict[str, Dependencies]:
        """The dependencies read this run from each sdist in the tree, by its sha256."""
        known = {}
        for _, future in self.fetches():
            if future.done() and not future.cancelled() and future.exception() is None:
                fetched = future.result()
                if not fetched.file.is_wheel:
                    known[fetched.result.sha256] = fetched.dependencies
        return known

    def metadata_dependencies(self) -> dict[str, Dependencies]:
        """What each wheel's METADATA read from this run's downloads (their verified bytes)
        says, by the sha256 of those bytes."""
        return dict(self._metadata_read)

    def fetches(self, project: NormalizedName | None = None) -> list[tuple[str, Future[Fetched]]]:
        """Every file fetched (or being fetched) this run, or of one project, by filename."""
        if project is None:
            return self._downloads.items()
        found = []
        for filename in list(self._fetched_of.get(project, ())):
            future = self._downloads.peek(filename)
            if future is not None:
                found.append((filename, future))
        return found

    def _start_fetch(
        self, name: NormalizedName, file: ReleaseFile, future: Future[Fetched], lane: int
    ) -> None:
        future.add_done_callback(lambda f: self._fetch_done(name, file, f))
        in_tree = self.in_tree(name, file)
        root = self.options.scratch if self.options.scratch and not in_tree else None
        try:
            folder = project_dir(root or self.options.index_path, name)
            dest = folder / check_filename(file.file.filename)
        except MorganError as error:
            future.set_exception(error)
            return
        self.progress.file_queued(file.file.size)
        record = None if root else self.state(name).verified.get(file.file.filename)
        if not self.options.verify and in_tree:
            # nothing to fetch, little to read: done here rather than queued behind requests
            _settle(future, self._download_and_read, name, file, dest, record)
            return
        try:
            job = self._submit(lane, self._download_and_read, name, file, dest, record)
            if lane != URGENT:
                self._queued_jobs[file.file.filename] = job
        except RuntimeError as error:  # the pool is shut down: the run is being interrupted
            future.set_exception(error)
            return
        job.add_done_callback(lambda done: _copy_outcome(done, future))

    def _download_and_read(
        self, name: NormalizedName, file: ReleaseFile, dest: Path, record: VerifiedFile | None
    ) -> Fetched:
        """Download (or reuse) a file and read its dependencies; wheels get a .metadata sidecar."""
        try:
            result = reuse(dest, file.file, record, self.options.verify)
            if result is None:
                result = self.transfers.transfer(
                    file.file,
                    dest,
                    name,
                    cancel=self.cancel,
                    on_bytes=self.progress.bytes_received,
                    on_metadata=(lambda metadata: self._metadata_verified(file, metadata))
                    if file.is_wheel
                    else None,
                )
        except BaseException:
            self._verified_metadata.pop(file.file.filename, None)
            raise
        # A file already in the tree whose dependencies the state knows is not read again
        # (a wheel keeps its .metadata sidecar, which the pages need).
        known = None
        sidecar = Path(f"{result.path}{METADATA_SUFFIX}")
        if result.reused and not self.options.verify and (not file.is_wheel or sidecar.is_file()):
            known = self._known_dependencies(name, file)
        try:
            if known is not None and known.sha256 == result.sha256:
                dependencies = known.dependencies(file.file.filename)
            else:
                dependencies = _read_dependencies(
                    file,
                    result,
                    self.options.verify,
                    keep_sidecar=self.options.scratch is None,
                    verified=self._verified_metadata.pop(file.file.filename, None),
                )
        except DistributionError:
            # verified, but unreadable (a bomb, a broken archive): not fit for the mirror;
            # an upload is its uploader's to remove, never the mirror's (it is only not used)
            if not is_upload(result.path):
                for path in (result.path, *(Path(f"{result.path}{s}") for s in SIDECAR_SUFFIXES)):
                    path.unlink(missing_ok=True)
            raise
        self._check_unannounced_metadata(file, result)
        if record is None or not result.reused or record.sha256 != result.sha256:
            record = result.record()
        self.state(name).verified[file.file.filename] = record
        if known is None:
            self._remember(name, file, dependencies)
        if file.is_wheel:
            _set_if_pending(self._early_dependencies(file), dependencies)
        return Fetched(result=result, dependencies=dependencies, file=file.file, project=name)

    def _metadata_verified(self, file: ReleaseFile, metadata: bytes) -> None:
        """A wheel's dependencies, from its verified bytes before they are in place: for
        whoever waits for them. A wheel that cannot be read here is read again, and
        refused, once in place."""
        try:
            dependencies = parse_core_metadata(metadata, file.file.filename)
        except MorganError:
            return
        self._verified_metadata[file.file.filename] = (metadata, dependencies)
        self._metadata_read[hashlib.sha256(metadata).hexdigest()] = dependencies
        _set_if_pending(self._early_dependencies(file), dependencies)

    def _early_dependencies(self, file: ReleaseFile) -> Future[Dependencies]:
        """A wheel's dependencies, set as soon as they are read (its download may go on)."""
        return self._verified_dependencies.get(file.file.filename, Future)

    def _check_unannounced_metadata(self, file: ReleaseFile, result: DownloadResult) -> None:
        """Compare an unannounced ``.metadata`` read earlier with the wheel's own METADATA."""
        with self._lock:
            expected = self._unannounced_metadata.get(file.file.filename)
        if expected is None or not file.is_wheel:
            return
        sidecar = Path(f"{result.path}{METADATA_SUFFIX}")
        try:
            actual = hashlib.sha256(sidecar.read_bytes()).hexdigest()
        except OSError:
            return
        if actual != expected:
            log.warning(
                "%s: the .metadata its host serves is not the wheel's METADATA", file.file.filename
            )
            with self._lock:
                self._mismatched_metadata.add(file.file.filename)

    def _fetch_done(self, name: NormalizedName, file: ReleaseFile, future: Future[Fetched]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            result = future.result().result
            self.progress.file_done(result.size, file.file.size)
            if result.reused:
                self.progress.bytes_in_tree(result.size)
            else:
                log.info("%s: downloaded (%d bytes)", file.file.filename, result.size)
            return
        self.progress.file_failed(file.file.size)
        if isinstance(error, (UpstreamError, DownloadProcessError)):  # the part is worth keeping
            dest = self.options.index_path / name / file.file.filename
            with self._lock:
                self.resumable.add(part_path(dest))


class TreeSource:
    """The mirrored tree itself, read as a client would read it: for the proof.

    Pages are the ``index.json`` the mirror wrote; dependencies come from each
    wheel's ``.metadata`` sidecar and each sdist's own files. Nothing is fetched.
    ``known`` gives the dependencies already read this run from sdists by sha256,
    ``known_metadata`` those of wheels' METADATA by the sha256 of its bytes: the same
    bytes need not be unpacked, nor parsed, twice.
    """

    def __init__(
        self,
        index_path: Path,
        package_type_regex: str,
        known: Mapping[str, Dependencies] | None = None,
        known_metadata: Mapping[str, Dependencies] | None = None,
    ) -> None:
        self.index_path = index_path
        self.package_type_regex = package_type_regex
        self._known = dict(known or {})
        self._known_metadata = dict(known_metadata or {})
        self._files: dict[NormalizedName, list[ReleaseFile]] = {}
        self._dependencies: dict[str, Dependencies] = {}
        self._lock = threading.Lock()

    def files(self, name: NormalizedName) -> Sequence[ReleaseFile]:
        with self._lock:
            found = self._files.get(name)
        if found is not None:
            return found
        folder = project_dir(self.index_path, name)
        url = folder.as_uri() + "/"
        try:
            body = (folder / PAGE_JSON).read_bytes()
        except FileNotFoundError:
            raise ProjectNotFoundError(name, url) from None
        except OSError as error:
            raise UpstreamError(url, f"cannot read its page: {error.strerror}") from None
        found = release_files(parse_json_page(body, url, name), self.package_type_regex)
        with self._lock:
            self._files[name] = found
        return found

    def dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        filename = file.file.filename
        with self._lock:
            known = self._dependencies.get(filename)
        if known is not None:
            return known
        path = project_dir(self.index_path, name) / check_filename(filename)
        if file.is_wheel:
            sidecar = Path(f"{path}{METADATA_SUFFIX}")
            try:
                metadata = sidecar.read_bytes()
                source = sidecar.name
            except FileNotFoundError:
                metadata, source = read_wheel_metadata(path, name), filename
            read = self._known_metadata.get(hashlib.sha256(metadata).hexdigest())
            dependencies = read if read is not None else parse_core_metadata(metadata, source)
        else:
            sha256 = file.file.hashes.get(PREFERRED_HASH, "")
            known = self._known.get(sha256)
            dependencies = known if known is not None else read_sdist_dependencies(path)
        with self._lock:
            self._dependencies[filename] = dependencies
        return dependencies

    def prefetch(
        self,
        name: NormalizedName,
        then: Callable[[Sequence[ReleaseFile]], None] | None = None,
    ) -> None:
        """Nothing to do ahead: the tree is local."""

    def prefetch_dependencies(
        self,
        name: NormalizedName,
        file: ReleaseFile,
        then: Callable[[], None] | None = None,
        *,
        unlikely: bool = False,
    ) -> None:
        """Nothing to do ahead: the tree is local."""


class _HostAnswers:
    """What each file host turned out to serve (``.metadata`` files, byte ranges): the
    first file of a host to try finds out for all of them."""

    def __init__(self) -> None:
        self._answers: dict[str, Future[bool]] = {}
        self._lock = threading.Lock()

    def _ask(self, host: str) -> tuple[Future[bool], bool]:
        """The host's answer (maybe still to come), and whether the caller must find it out."""
        with self._lock:
            answer = self._answers.get(host)
            if answer is not None:
                return answer, False
            answer = self._answers[host] = Future()
            return answer, True

    def answer(
        self,
        host: str,
        probe: Callable[[], Future[Dependencies]],
        served: Callable[[Future[Dependencies]], bool],
    ) -> bool | Future[bool]:
        """True if the host serves it, False if not, or a Future while that is found out.

        The first caller for a host starts ``probe`` (its own read, which finds out
        for the host) and is told True; ``served`` then reads the outcome.
        """
        answer, ours = self._ask(host)
        if not ours:
            return answer.result() if answer.done() else answer
        try:
            started = probe()
        except BaseException:
            answer.set_result(False)  # nobody may wait for an answer that cannot come
            raise
        started.add_done_callback(lambda done: answer.set_result(served(done)))
        return True

    def known(self, host: str) -> bool | None:
        """The host's answer if it is in, without asking."""
        with self._lock:
            answer = self._answers.get(host)
        if answer is None or not answer.done():
            return None
        return answer.result()


def _set_if_pending(future: Future[V], value: V) -> None:
    """Give a future its result unless it has one already (set by another thread)."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(value)


def _succeeded(done: Future[Any]) -> bool:
    """Whether a future ended with a result (asking a cancelled one for its exception
    raises, in the callback of a run being interrupted)."""
    return not done.cancelled() and done.exception() is None


def _ranges_served(done: Future[Dependencies]) -> bool:
    """Whether a host's first ranged read found ranges served (a broken zip, or one
    too costly to read so, still says the host serves them)."""
    if done.cancelled():
        return False
    error = done.exception()
    return not isinstance(error, UpstreamError) or isinstance(error, TooMuchToRead)


def _served(done: Future[Dependencies]) -> bool:
    """Whether a probe for an unannounced ``.metadata`` found one: an answer that is no
    metadata file (a 404, any failure) says the host has none; its wheels are read whole."""
    if done.cancelled():
        return False
    error = done.exception()
    return error is None or isinstance(error, DistributionError)


def _quietly(hint: Callable[[], None]) -> None:
    """Run a look-ahead; it is only a hint, so whoever needs its work meets any error."""
    try:
        hint()
    except Exception:
        log.debug("looking ahead failed", exc_info=True)


def _settle(future: Future[V], function: Callable[..., V], *args: object) -> None:
    """Give ``future`` what ``function(*args)`` returns or raises."""
    try:
        future.set_result(function(*args))
    except Exception as error:
        future.set_exception(error)


def _copy_outcome(done: Future[V], future: Future[V]) -> None:
    if future.done():  # given up on already (an interrupted run)
        return
    if done.cancelled():
        cancel(future)
        return
    error = done.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(done.result())


def _read_dependencies(
    file: ReleaseFile,
    result: DownloadResult,
    verify: bool,
    *,
    keep_sidecar: bool = True,
    verified: tuple[bytes, Dependencies] | None = None,
) -> Dependencies:
    """``verified``: the wheel's METADATA, and what it says, if it was read already (from
    its verified bytes)."""
    if not file.is_wheel:
        return read_sdist_dependencies(result.path)
    sidecar = Path(str(result.path) + METADATA_SUFFIX)
    if verified is not None:
        atomic_write(sidecar, verified[0])
        return verified[1]
    metadata: bytes | None = None
    if result.reused and not verify:
        with contextlib.suppress(FileNotFoundError):
            metadata = sidecar.read_bytes()  # written by an earlier run from this very wheel
    if metadata is None:
        project: NormalizedName = canonicalize_name(result.path.parent.name)
        metadata = read_wheel_metadata(result.path, project)
        if keep_sidecar or not result.reused:  # a dry run writes nothing to the tree
            atomic_write(sidecar, metadata)
    return parse_core_metadata(metadata, file.file.filename)


def describe_failure(error: BaseException) -> str:
    """One line for an error met while reading a project or a file."""
    if isinstance(error, MorganError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename or "the index"
        return f"cannot write {where}: {error.strerror}"
    return f"unexpected error: {error!r}; please report it"
