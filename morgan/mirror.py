"""The walk: from requirements to a complete tree, through one bounded worker pool.

All network and archive work runs in the pool; all decisions run on the calling
thread, as each piece of work completes. So dependencies are followed as soon as
a version's metadata arrives (PEP 658 first, the distribution itself otherwise),
downloads run while resolution goes on, and no state needs a lock.

A requirement is processed once per (name, specifier, extras, environment), so
cycles end and shared dependencies cost one page fetch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from morgan.config import MirrorConfig
from morgan.download import DownloadResult, download, part_path
from morgan.environments import Environment, evaluate_marker
from morgan.errors import DistributionError, MorganError, ProjectNotFoundError, UpstreamError
from morgan.index import IndexClient, PageFetch
from morgan.layout import (
    HASH_SUFFIX,
    METADATA_SUFFIX,
    PART_SUFFIX,
    atomic_write,
    check_filename,
    project_dir,
    write_project_pages,
    write_root_pages,
)
from morgan.metadata import (
    MAX_MEMBER_BYTES,
    Dependencies,
    parse_core_metadata,
    read_sdist_dependencies,
    read_wheel_metadata,
)
from morgan.models import PREFERRED_HASH, Candidate, DistributionFile, ProjectPage
from morgan.progress import REDRAW_INTERVAL, Progress
from morgan.selection import Choice, SelectionOptions, candidates, choose, describe
from morgan.state import ProjectState, VerifiedFile, folder_listing

log = logging.getLogger(__name__)

DepsCallback = Callable[[Dependencies], None]
SIDECAR_SUFFIXES = (HASH_SUFFIX, METADATA_SUFFIX)
#: A callback, and the function (with its arguments) whose outcome it receives.
_LocalWork = tuple[Callable[[Future[Any]], None], Callable[..., Any], tuple[Any, ...]]
#: Files at least this large (or of unknown size) have their PEP 658 metadata fetched
#: first, so resolution does not wait for their download.
METADATA_FIRST_SIZE = 1024 * 1024


@dataclass(frozen=True)
class MirrorOptions:
    index_path: Path
    jobs: int = 8
    selection: SelectionOptions = field(default_factory=SelectionOptions)
    #: Re-hash every file already in the tree instead of trusting unchanged ones.
    verify: bool = False
    progress: Progress | None = None
    #: Called on the walk's thread several times a second (to redraw a progress line).
    on_tick: Callable[[], None] | None = None


@dataclass
class MirrorReport:
    """What a run did; the CLI prints it and derives the exit status from it."""

    projects: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    downloaded: int = 0
    reused: int = 0
    bytes_downloaded: int = 0
    bytes_reused: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Need:
    """A requirement to satisfy in some environments, and who asked for it."""

    requirement: Requirement
    environments: tuple[Environment, ...]
    required_by: str
    top_level: bool


def _label(requirement: Requirement) -> str:
    text = requirement.name
    if requirement.extras:
        text += "[" + ",".join(sorted(requirement.extras)) + "]"
    return text + str(requirement.specifier)


class Mirrorer:
    """One run of ``morgan mirror`` over a configuration."""

    def __init__(self, config: MirrorConfig, client: IndexClient, options: MirrorOptions) -> None:
        self.config = config
        self.client = client
        self.options = options
        self.report = MirrorReport()
        self._pool = ThreadPoolExecutor(max_workers=max(options.jobs, 1))
        self._pending: dict[Future[Any], Callable[[Future[Any]], None]] = {}
        #: Work for this thread (see ``_run_here``): (callback, function, arguments).
        self._local: deque[
            tuple[Callable[[Future[Any]], None], Callable[..., Any], tuple[Any, ...]]
        ]
        self._local = deque()
        self._seen: set[tuple[str, str, frozenset[str], str, bool]] = set()
        self._pages: dict[str, ProjectPage | None] = {}
        self._candidates: dict[str, list[Candidate]] = {}
        self._page_waiters: dict[str, list[_Need]] = defaultdict(list)
        self._downloads: dict[str, DownloadResult | None] = {}
        self._download_waiters: dict[str, list[Callable[[DownloadResult], None]]] = defaultdict(
            list
        )
        self._dist_deps: dict[str, Dependencies] = {}
        self._meta_deps: dict[str, Dependencies | None] = {}
        self._meta_waiters: dict[str, list[DepsCallback]] = defaultdict(list)
        #: What the index said of every file mirrored, for the pages.
        self._known: dict[str, dict[str, DistributionFile]] = defaultdict(dict)
        self._warned_extras: set[tuple[str, str]] = set()
        self._decisions: set[tuple[str, str, str]] = set()
        self._states: dict[str, ProjectState] = {}
        #: Parts of downloads that broke off, kept for the next run to resume.
        self._resumable: set[Path] = set()
        self._cancel = threading.Event()
        self._pages_unchanged: set[str] = set()
        self._page_failures: dict[str, MorganError] = {}
        self._resolved: set[str] = set()
        self.progress = options.progress or Progress()

    # -- the event loop -------------------------------------------------------

    def run(self) -> MirrorReport:
        """Mirror everything the configuration asks for, then write the pages."""
        try:
            for requirement in self.config.requirements:
                envs = tuple(
                    env
                    for env in self.config.environments
                    if requirement.marker is None
                    or env.evaluate_marker(requirement.marker, source=self.config.path)
                )
                if envs:
                    self._need(_Need(_plain(requirement), envs, "morgan.ini", top_level=True))
                else:
                    log.info("%s: its marker excludes every environment", requirement)
            self._prefetch_known_pages()
            tick = self.options.on_tick
            while self._pending or self._local:
                while self._local:
                    callback, function, args = self._local.popleft()
                    self._call(callback, _completed(function, *args))
                if not self._pending:
                    continue
                done, _ = wait(
                    list(self._pending),
                    timeout=REDRAW_INTERVAL if tick else None,
                    return_when=FIRST_COMPLETED,
                )
                if tick:
                    tick()
                for future in sorted(done, key=id):
                    self._call(self._pending.pop(future), future)
            self._write_pages()
        except BaseException:
            self._cancel.set()  # interrupted: downloads stop, their parts stay for the next run
            raise
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.report.errors.sort()
        return self.report

    def _submit(
        self, callback: Callable[[Future[Any]], None], function: Callable[..., Any], *args: Any
    ) -> None:
        self._pending[self._pool.submit(function, *args)] = callback

    def _run_here(
        self, callback: Callable[[Future[Any]], None], function: Callable[..., Any], *args: Any
    ) -> None:
        """Like ``_submit``, but ``function`` runs on this thread, ahead of waiting for workers.

        (Queued rather than called at once, so a long chain of such work cannot
        grow the stack.)
        """
        self._local.append((callback, function, args))

    def _call(self, callback: Callable[[Future[Any]], None], future: Future[Any]) -> None:
        try:
            callback(future)
        except MorganError as error:
            self._error(str(error))
        except Exception as error:  # a bug must not lose the rest of the run
            log.debug("unexpected error", exc_info=True)
            self._error(f"unexpected error: {error!r}; please report it")

    def _error(self, message: str) -> None:
        log.error("error: %s", message)
        self.report.errors.append(message)

    def _warn(self, message: str) -> None:
        log.warning("warning: %s", message)
        self.report.warnings.append(message)

    # -- requirements and pages -----------------------------------------------

    def _state(self, name: str) -> ProjectState:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = ProjectState.load(self.options.index_path / name)
        return state

    def _need(self, need: _Need) -> None:
        requirement = need.requirement
        name = canonicalize_name(requirement.name)
        all_versions = need.top_level and self.options.selection.all_versions
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        fresh = []
        for env in need.environments:
            key = (name, str(requirement.specifier), extras, env.name, all_versions)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(env)
        if not fresh:
            return
        need = _Need(requirement, tuple(fresh), need.required_by, need.top_level)
        if name in self._pages:
            failure = self._page_failures.pop(name, None)
            if failure is not None:  # a prefetched page that nobody needed until now
                self._page_failed(name, failure, [need])
            self._choose(name, need)
            return
        first = name not in self._page_waiters
        self._page_waiters[name].append(need)
        if first:
            project_dir(self.options.index_path, name)
            self._fetch_page(name)

    def _fetch_page(self, name: str) -> None:
        self._submit(
            lambda f: self._page_done(name, f),
            self.client.get_project_page,
            name,
            self._state(name).page,
        )

    def _prefetch_known_pages(self) -> None:
        """Fetch at once the pages of every project an earlier run mirrored.

        On a re-run this turns a walk of the graph, level by level, into one round
        of concurrent requests (conditional where the index allows). A page nobody
        turns out to need costs one request; its errors count only if it is needed.
        """
        index = self.options.index_path
        try:
            entries = sorted(entry.name for entry in os.scandir(index) if entry.is_dir())
        except OSError:
            return
        for name in entries:
            if name in self._pages or name in self._page_waiters or name.startswith("."):
                continue
            try:
                project_dir(index, name)
            except MorganError:
                continue
            state = self._state(name)
            if state.page is not None or state.verified:  # mirrored here before
                self._page_waiters[name] = []
                self._fetch_page(name)

    def _page_done(self, name: str, future: Future[PageFetch]) -> None:
        waiters = self._page_waiters.pop(name, [])
        try:
            fetch = future.result()
            page: ProjectPage | None = fetch.page
            self._state(name).page = fetch.cache
            if fetch.not_modified:
                self._pages_unchanged.add(name)
        except MorganError as error:
            page = None
            if waiters:
                self._page_failed(name, error, waiters)
            else:
                log.debug("%s: prefetching its page failed (%s)", name, error)
                self._page_failures[name] = error
        self._pages[name] = page
        if page is not None:
            self._candidates[name] = candidates(page, self.options.selection.package_type_regex)
            for need in waiters:
                self._choose(name, need)

    def _page_failed(self, name: str, error: MorganError, waiters: list[_Need]) -> None:
        if isinstance(error, ProjectNotFoundError):
            asked = sorted({need.required_by for need in waiters})
            self._error(f"{error} (required by {', '.join(asked)})")
        else:
            self._error(f"{name}: cannot read its page: {error}")

    def _choose(self, name: str, need: _Need) -> None:
        if self._pages.get(name) is None:
            return
        if name not in self._resolved:
            self._resolved.add(name)
            self.progress.project_resolved()
        found = self._candidates[name]
        for env in need.environments:
            result = choose(
                found, need.requirement, env, self.options.selection, top_level=need.top_level
            )
            if isinstance(result, str):
                self._error(
                    f"{_label(need.requirement)} (required by {need.required_by}) "
                    f"for {env.name}: {result}"
                )
                continue
            for choice in result:
                decision = (name, env.name, str(choice.version))
                if decision not in self._decisions:
                    self._decisions.add(decision)
                    log.info("%s: picked %s", name, describe(choice))
                self._take(name, need, choice)

    def _take(self, name: str, need: _Need, choice: Choice) -> None:
        self.report.projects.add(name)
        for candidate in choice.files:
            self._ensure_download(name, candidate, lambda result: None)
            if not candidate.is_wheel:
                self._follow_build_requirements(name, candidate, choice)
        self._dependencies_of(
            name,
            choice.metadata_source,
            lambda deps: self._follow(name, need, choice, deps),
        )

    # -- dependencies ---------------------------------------------------------

    def _follow(self, name: str, need: _Need, choice: Choice, deps: Dependencies) -> None:
        env = choice.environment
        extras = {canonicalize_name(e) for e in need.requirement.extras}
        for extra in sorted(extras - deps.extras):
            if (name, extra) not in self._warned_extras:
                self._warned_extras.add((name, extra))
                self._warn(f"{name} {choice.version} has no extra {extra!r}")
        required_by = f"{name} {choice.version}"
        source = f"{choice.metadata_source.file.filename} (for {env.name})"
        contexts = [env.marker_environment(extra) for extra in sorted(extras | {""})]
        for dependency in deps.requires:
            try:
                if dependency.marker is not None and not any(
                    evaluate_marker(dependency.marker, context, source=source)
                    for context in contexts
                ):
                    continue
            except MorganError as error:  # this dependency is unreadable, not the others
                self._error(str(error))
                continue
            self._need(_Need(_plain(dependency), (env,), required_by, top_level=False))

    def _follow_build_requirements(self, name: str, sdist: Candidate, choice: Choice) -> None:
        env = choice.environment

        def follow(deps: Dependencies) -> None:
            required_by = f"{sdist.file.filename} (to build)"
            source = f"{sdist.file.filename} (for {env.name})"
            context = env.marker_environment("")
            for requirement in deps.build_requires:
                if requirement.marker is None or evaluate_marker(
                    requirement.marker, context, source=source
                ):
                    self._need(_Need(_plain(requirement), (env,), required_by, top_level=False))

        self._ensure_download(name, sdist, self._with_dist_deps(sdist.file.filename, follow))

    def _dependencies_of(self, name: str, candidate: Candidate, callback: DepsCallback) -> None:
        """Call back with the candidate's dependencies, from PEP 658 metadata if offered.

        A file already in the tree is read instead: that costs no request. So is
        a small file (it is downloaded anyway, in about the time the metadata
        would take), which saves a request per small wheel.
        """
        filename = candidate.file.filename
        if (
            candidate.file.metadata_hashes is None
            or (candidate.file.size or METADATA_FIRST_SIZE) < METADATA_FIRST_SIZE
            or self._meta_deps.get(filename, 0) is None
            or filename in self._downloads
            or self._in_tree(name, candidate)
        ):
            self._ensure_download(name, candidate, self._with_dist_deps(filename, callback))
            return
        if filename in self._meta_deps:
            deps = self._meta_deps[filename]
            assert deps is not None
            callback(deps)
            return
        first = filename not in self._meta_waiters
        self._meta_waiters[filename].append(callback)
        if first:
            self._submit(
                lambda f: self._metadata_done(name, candidate, f),
                _fetch_metadata,
                self.client,
                candidate.file,
            )

    def _metadata_done(self, name: str, candidate: Candidate, future: Future[Dependencies]) -> None:
        filename = candidate.file.filename
        waiters = self._meta_waiters.pop(filename, [])
        try:
            deps: Dependencies | None = future.result()
        except MorganError as error:
            log.info("%s: PEP 658 metadata unusable (%s); reading the file itself", filename, error)
            deps = None
        self._meta_deps[filename] = deps
        for callback in waiters:
            if deps is not None:
                callback(deps)
            else:
                self._ensure_download(name, candidate, self._with_dist_deps(filename, callback))

    def _in_tree(self, name: str, candidate: Candidate) -> bool:
        """True if the file is in the tree, unchanged since it was verified as the index's."""
        record = self._state(name).verified.get(candidate.file.filename)
        expected = candidate.file.hashes.get(PREFERRED_HASH)
        if record is None or expected is None or record.sha256 != expected.lower():
            return False
        return record.still_matches(self.options.index_path / name / candidate.file.filename)

    def _with_dist_deps(
        self, filename: str, callback: DepsCallback
    ) -> Callable[[DownloadResult], None]:
        """A download callback that hands the file's own dependencies to ``callback``."""
        return lambda result: callback(self._dist_deps[filename])

    # -- downloads ------------------------------------------------------------

    def _ensure_download(
        self, name: str, candidate: Candidate, callback: Callable[[DownloadResult], None]
    ) -> None:
        filename = candidate.file.filename
        if filename in self._downloads:
            result = self._downloads[filename]
            if result is not None:
                callback(result)
            return
        first = filename not in self._download_waiters
        self._download_waiters[filename].append(callback)
        if not first:
            return
        try:
            dest = project_dir(self.options.index_path, name) / check_filename(filename)
        except MorganError as error:
            self._download_waiters.pop(filename)
            self._downloads[filename] = None
            self._error(f"{name}: {error}")
            return
        self._known[name][filename] = candidate.file
        self.progress.file_queued(candidate.file.size)
        context = _Context(
            record=self._state(name).verified.get(filename),
            verify=self.options.verify,
            cancel=self._cancel,
            on_bytes=self.progress.bytes_received,
        )
        callback_done = lambda f: self._download_done(name, candidate.file, f)  # noqa: E731
        if not self.options.verify and self._in_tree(name, candidate):
            # nothing to fetch, little to read: done here rather than queued behind requests
            self._run_here(callback_done, _download_and_read, self.client, candidate, dest, context)
        else:
            self._submit(callback_done, _download_and_read, self.client, candidate, dest, context)

    def _download_done(
        self,
        name: str,
        file: DistributionFile,
        future: Future[tuple[DownloadResult, Dependencies, VerifiedFile]],
    ) -> None:
        filename = file.filename
        waiters = self._download_waiters.pop(filename, [])
        try:
            result, deps, record = future.result()
        except (MorganError, OSError) as error:
            self._downloads[filename] = None
            self.progress.file_failed(file.size)
            if isinstance(error, UpstreamError):
                self._resumable.add(part_path(self.options.index_path / name / filename))
            if isinstance(error, OSError):
                where = error.filename or "the index"
                self._error(f"{filename}: cannot write {where}: {error.strerror}")
            else:
                self._error(f"{filename}: {error}")
            return
        self.progress.file_done(result.size, file.size)
        if result.reused:
            self.progress.bytes_in_tree(result.size)
        self._downloads[filename] = result
        self._dist_deps[filename] = deps
        self._state(name).verified[filename] = record
        self.report.files.add(filename)
        if result.reused:
            self.report.reused += 1
            self.report.bytes_reused += result.size
            log.debug("%s: already in the tree", filename)
        else:
            self.report.downloaded += 1
            self.report.bytes_downloaded += result.size
            log.info("%s: downloaded (%d bytes)", filename, result.size)
        for callback in waiters:
            callback(result)

    # -- the tree -------------------------------------------------------------

    def _write_pages(self) -> None:
        """Pages, saved state and clean-up; an unwritable folder is an error, not a stop.

        Folders are independent, so the pool writes them side by side (each write
        waits for its fsync).
        """
        index = self.options.index_path
        names = sorted(set(self.report.projects) | set(self._states))
        for name in names:
            self._state(name)  # loaded here: the workers only use it
        writes = {self._pool.submit(self._write_project, name): name for name in names}
        for future in as_completed(writes):
            try:
                future.result()
            except OSError as error:
                self._error(
                    f"{writes[future]}: cannot write its pages: {error.strerror} ({error.filename})"
                )
        try:
            _remove_leftovers(index, set())
            write_root_pages(index)
        except OSError as error:
            self._error(f"cannot write the project list: {error.strerror} ({error.filename})")

    def _write_project(self, name: str) -> None:
        folder = self.options.index_path / name
        if not folder.is_dir():
            return
        _remove_leftovers(folder, self._resumable)
        state = self._states[name]
        if name in self.report.projects and not (
            name in self._pages_unchanged and state.listing == folder_listing(folder)
        ):
            write_project_pages(folder, self._known.get(name, {}))
            state.listing = folder_listing(folder)
        state.save(folder)


def _plain(requirement: Requirement) -> Requirement:
    """The requirement without its marker (already evaluated) and with a normalized name.

    The result is shared between callers (and must not be changed): the same
    requirement strings come up again and again in a graph.
    """
    return _plain_from_text(str(requirement))


@functools.cache
def _plain_from_text(text: str) -> Requirement:
    plain = Requirement(text)
    plain.marker = None
    plain.name = canonicalize_name(plain.name)
    return plain


def _completed(function: Callable[..., Any], *args: Any) -> Future[Any]:
    """A future already holding what ``function(*args)`` returned or raised."""
    future: Future[Any] = Future()
    try:
        future.set_result(function(*args))
    except Exception as error:
        future.set_exception(error)
    return future


def _remove_leftovers(folder: Path, keep: set[Path]) -> None:
    """Delete the temporary files of writes that never finished (a killed run's)."""
    for entry in os.scandir(folder):
        if entry.name.startswith(".") and entry.name.endswith(PART_SUFFIX):
            path = Path(entry.path)
            if path not in keep:
                path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Context:
    """What a download worker needs from the walk: trust, a stop signal, a byte counter."""

    record: VerifiedFile | None
    verify: bool
    cancel: threading.Event
    on_bytes: Callable[[int], None]


def _fetch_metadata(client: IndexClient, file: DistributionFile) -> Dependencies:
    data = client.get_bytes(file.metadata_url, MAX_MEMBER_BYTES)
    hashes = file.metadata_hashes or {}
    if PREFERRED_HASH in hashes:
        actual = hashlib.sha256(data).hexdigest()
        if actual != hashes[PREFERRED_HASH]:
            raise UpstreamError(file.metadata_url, "metadata file does not match its hash")
    return parse_core_metadata(data, file.filename + METADATA_SUFFIX)


def _download_and_read(
    client: IndexClient, candidate: Candidate, dest: Path, checks: _Context
) -> tuple[DownloadResult, Dependencies, VerifiedFile]:
    """Download (or reuse) a file and read its dependencies; wheels get a .metadata sidecar."""
    result = download(
        client,
        candidate.file,
        dest,
        record=checks.record,
        verify=checks.verify,
        cancel=checks.cancel,
        on_bytes=checks.on_bytes,
    )
    record = checks.record
    if record is None or not result.reused or record.sha256 != result.sha256:
        record = result.record()
    try:
        return result, _read_dependencies(candidate, result, checks.verify), record
    except DistributionError:
        # verified, but unreadable (a bomb, a broken archive): not fit for the mirror
        for path in (result.path, *(Path(f"{result.path}{s}") for s in SIDECAR_SUFFIXES)):
            path.unlink(missing_ok=True)
        raise


def _read_dependencies(candidate: Candidate, result: DownloadResult, verify: bool) -> Dependencies:
    if not candidate.is_wheel:
        return read_sdist_dependencies(result.path)
    sidecar = Path(str(result.path) + METADATA_SUFFIX)
    metadata = None
    if result.reused and not verify:
        with contextlib.suppress(FileNotFoundError):
            metadata = sidecar.read_bytes()  # written by an earlier run from this very wheel
    if metadata is None:
        project: NormalizedName = canonicalize_name(result.path.parent.name)
        metadata = read_wheel_metadata(result.path, project)
        atomic_write(sidecar, metadata)
    return parse_core_metadata(metadata, candidate.file.filename)


def copy_server(index_path: Path) -> Path:
    """Put a copy of the standalone server into the tree."""
    target = index_path / "server.py"
    index_path.mkdir(parents=True, exist_ok=True)
    atomic_write(target, Path(__file__).with_name("server.py").read_bytes())
    return target
