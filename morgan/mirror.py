"""One run of ``morgan mirror``: config → pages → resolution per environment → downloads
→ pages and locks → proof.

Each arrow lives in a module of its own: the upstream index is read through
``sources``, each environment is resolved by ``plan`` (on its own thread, all
of them sharing one pool for the network), the chosen files are fetched by the
same pool, ``layout`` writes the pages, ``pylock`` the lock files, and the
proof shows from the tree alone that every environment installs what it should.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from morgan import manifest, saved_plans
from morgan.config import MirrorConfig
from morgan.environments import Environment
from morgan.errors import DistributionError, MorganError, UpstreamError
from morgan.index import Upstream, redact
from morgan.layout import (
    PAGE_JSON,
    PART_SUFFIX,
    atomic_write,
    file_sha256,
    is_distribution,
    project_dir,
    project_folders,
    write_project_pages,
    write_root_pages,
)
from morgan.lockfiles import write_lock_files
from morgan.lockinput import LockInput
from morgan.models import PREFERRED_HASH, ReleaseFile
from morgan.pinned import add_locked, covered_environments
from morgan.plan import EnvironmentPlan, applicable_lines, plan_environment, prove
from morgan.pool import LanePool
from morgan.progress import REDRAW_INTERVAL, Progress
from morgan.provider import EnvironmentView, Findings
from morgan.resolve import Resolution, ResolutionFailure
from morgan.selection import SelectionOptions, files_to_mirror
from morgan.sources import (
    SIDECAR_SUFFIXES,
    Fetched,
    FetchOptions,
    TreeSource,
    UpstreamSource,
    describe_failure,
)
from morgan.state import folder_listing
from morgan.transfers import DownloadProcess, Transfers
from morgan.upstreams import Upstreams

log = logging.getLogger(__name__)

#: Threads that write the projects' pages and states (not the network pool's thirty-odd):
#: each write is a handful of small system calls, each a turn of the interpreter lock.
#: Rewriting the benchmark's 300 projects' pages took 0.49 s (0.66 s of CPU) on 32
#: threads, 0.36 s (0.45 s) on four, 0.47 s on one, which waits out every fsync alone.
PAGE_WRITERS = 4


@dataclass(frozen=True)
class MirrorOptions:
    index_path: Path
    jobs: int = 8
    selection: SelectionOptions = field(default_factory=SelectionOptions)
    #: Re-hash every file already in the tree instead of trusting unchanged ones.
    verify: bool = False
    progress: Progress | None = None
    #: Called on the run's thread several times a second (to redraw a progress line).
    on_tick: Callable[[], None] | None = None
    #: Put a copy of ``server.py`` into the tree (``--skip-server-copy`` says no).
    copy_server: bool = True
    #: Resolve and say what would change, writing nothing to the tree (``--dry-run``).
    dry_run: bool = False
    #: Lock files whose pins are mirrored as they are (``--lock``).
    locks: tuple[LockInput, ...] = ()
    #: Set (by a SIGINT handler) to stop the run: it raises KeyboardInterrupt where the
    #: run's own thread waits, never inside a lock (see ``Mirrorer._await``).
    interrupt: threading.Event | None = None


@dataclass
class Tally:
    """Some files: how many, and their bytes (``unknown``: files whose size the index
    did not give, as HTML pages may not)."""

    files: int = 0
    bytes: int = 0
    unknown: int = 0

    def add(self, size: int | None) -> None:
        self.files += 1
        if size is None:
            self.unknown += 1
        else:
            self.bytes += size


@dataclass
class DryRunReport:
    """What a run would add to the tree, keep, and no longer need."""

    #: Per environment: (files to add, files kept, projects).
    environments: dict[str, tuple[Tally, Tally, set[str]]] = field(default_factory=dict)
    added: Tally = field(default_factory=Tally)
    kept: Tally = field(default_factory=Tally)
    unneeded: Tally = field(default_factory=Tally)
    #: Distributions downloaded (to a scratch folder) only to read their metadata.
    read_for_metadata: list[tuple[str, int]] = field(default_factory=list)


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
    #: Set by a dry run, instead of the counts above.
    dry_run: DryRunReport | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Reused:
    """The last run's plans, taken again: nothing they were made from changed."""

    plans: list[EnvironmentPlan]
    findings: Findings
    #: The tree as it was when the lock files were written and the tree proven.
    tree: str


class Mirrorer:
    """One run of ``morgan mirror`` over a configuration."""

    def __init__(self, config: MirrorConfig, client: Upstream, options: MirrorOptions) -> None:
        self.config = config
        self.client = client
        self.options = options
        self.report = MirrorReport()
        self.progress = options.progress or Progress()
        self._cancel = threading.Event()

    def run(self) -> MirrorReport:
        """Mirror everything the configuration asks for, then write pages and locks, then prove."""
        if self.options.dry_run:
            with tempfile.TemporaryDirectory(prefix="morgan-dry-run-") as scratch:
                return self._run(Path(scratch))
        return self._run(None)

    def _run(self, scratch: Path | None) -> MirrorReport:
        pool = LanePool(self.options.jobs)
        envs = self.config.environments
        planners = ThreadPoolExecutor(max_workers=max(len(envs), 1))
        writers = ThreadPoolExecutor(PAGE_WRITERS, thread_name_prefix="morgan-pages")
        if scratch is not None:
            self.client.repair_kept_pages = False
        # files are streamed in a process of their own, so that resolving does not wait
        # for the transfers' turns on this interpreter's lock (see morgan/transfers.py)
        transfers: Transfers = DownloadProcess(self.client, self.options.jobs)
        source = UpstreamSource(
            self.client,
            pool,
            FetchOptions(
                index_path=self.options.index_path,
                package_type_regex=self.options.selection.package_type_regex,
                verify=self.options.verify,
                scratch=scratch,
                environments=tuple(envs),
            ),
            progress=self.progress,
            cancel=self._cancel,
            transfers=transfers,
        )
        inputs = saved_plans.inputs_digest(
            self.config, self.options.selection, self._upstream_identity(), self.options.locks
        )
        for message in covered_environments(self.options.locks, envs):
            self._error(message)
        try:
            tree_stands = False
            mirrored_before = self._prefetch_known_pages(source)
            reused = self._reuse_plans(source, inputs)
            if reused is not None:
                plans, findings = reused.plans, reused.findings
            else:
                if not mirrored_before and scratch is None:
                    transfers.start()  # a new tree: every file is to be downloaded
                findings = Findings()
                plans = self._await(
                    [planners.submit(self._plan, source, findings, env) for env in envs]
                )
            chosen = self._chosen_files(plans)
            if scratch is not None:
                self.report.dry_run = self._dry_run(source, plans, chosen)
                self._summarize(plans, findings)
                return self._sorted_report()
            fetches = [source.fetch(name, file) for name, file in chosen]
            chosen_names = {file.file.filename for _, file in chosen}
            written = self._write_finished_projects(source, writers, chosen, fetches, chosen_names)
            self._summarize(plans, findings)  # while the last files come in
            self._await(fetches, errors=False)
            self._discard_unchosen(source, chosen_names)
            self._account(source, chosen_names)
            self._write_pages(source, writers, written)
            self._check_interrupt()
            missing = self._missing(source, chosen)
            if missing:
                self._warn(
                    f"lock files not written and the tree not proven: {missing} files are "
                    "missing (named above); run again to finish"
                )
            else:
                index = self.options.index_path
                if reused is not None and reused.tree == saved_plans.tree_digest(index):
                    log.info("the tree is as it was when proven: its lock files and proof stand")
                    tree_stands = True
                else:
                    self._write_locks(plans)
                    self._prove(plans, source)
                    self._check_interrupt()
                    tree = saved_plans.tree_digest(index)  # with the lock files
                    self._keep_plans(source, inputs, tree, plans, findings)
            server_changed = self.options.copy_server and _copy_server(self.options.index_path)
            if not (tree_stands and not server_changed and self._manifest_stands()):
                self._write_manifest(plans)
        except BaseException:
            self._cancel.set()  # interrupted: downloads stop, their parts stay for the next run
            transfers.cancel()
            raise
        finally:
            # the writers first: the downloads cancelled next must not have their folders
            # written and tidied (their parts are kept for the next run)
            writers.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            planners.shutdown(wait=True, cancel_futures=True)
            transfers.close()
        return self._sorted_report()

    def _upstream_identity(self) -> str:
        """What decides where projects come from: the index, or the indexes and uploads."""
        if isinstance(self.client, Upstreams):
            return self.client.identity()
        return self.client.index_url

    def _sorted_report(self) -> MirrorReport:
        self.report.errors.sort()
        self.report.warnings.sort()
        return self.report

    # -- steps ----------------------------------------------------------------

    def _prefetch_known_pages(self, source: UpstreamSource) -> int:
        """Fetch at once the pages of every project an earlier run mirrored; how many.

        On a re-run this turns a walk of the graph, level by level, into one round
        of concurrent requests (conditional where the index allows). A page nobody
        turns out to need costs one request; its errors count only if it is needed.
        """
        index = self.options.index_path
        try:
            entries = sorted(entry.name for entry in os.scandir(index) if entry.is_dir())
        except OSError:
            return 0
        known = 0
        for name in entries:
            if name.startswith("."):
                continue
            try:
                project_dir(index, name)
            except MorganError:
                continue
            state = source.state(NormalizedName(name))
            if state.page is not None or state.verified:  # mirrored here before
                source.prefetch(NormalizedName(name))
                known += 1
        return known

    def _reuse_plans(self, source: UpstreamSource, inputs: str) -> _Reused | None:
        """The last run's plans, if they were made from the same inputs and pages."""
        saved = saved_plans.load(self.options.index_path, inputs)
        if saved is None:
            return None
        names = [NormalizedName(name) for name in saved.pages]
        try:
            self._await([source.page(name) for name in names], errors=False)
        except MorganError:
            return None
        digests = source.page_digests()
        changed = [name for name in names if digests.get(name) != saved.pages[name]]
        if changed:
            log.info("%d pages changed since the last run: resolving", len(changed))
            return None
        try:
            plans, findings = saved_plans.restore(saved, self.config.environments)
        except (MorganError, ValueError) as error:
            log.info("the saved plans do not fit this run (%s): resolving", error)
            return None
        log.info("nothing changed upstream since the last run: its plans stand")
        return _Reused(plans, findings, saved.tree)

    def _keep_plans(
        self,
        source: UpstreamSource,
        inputs: str,
        tree: str,
        plans: list[EnvironmentPlan],
        findings: Findings,
    ) -> None:
        """Save the plans for the next run, if this run stands behind them."""
        index = self.options.index_path
        digests = source.page_digests()
        with findings.lock:
            uncertain = bool(findings.page_errors or findings.unknown)
        uncertain = uncertain or bool(source.metadata_mismatches())
        pages = {name: digest for name, digest in digests.items() if digest is not None}
        if self.report.errors or uncertain or len(pages) < len(digests):
            return  # the saved plans, if any, are of the last run that was sure of them
        try:
            saved_plans.save(
                index, inputs=inputs, pages=pages, tree=tree, plans=plans, findings=findings
            )
        except OSError as error:
            self._warn(f"cannot keep this run's plans: {describe_failure(error)}")
        except (ValueError, KeyError) as error:
            log.debug("plans not kept: %s", error)
            saved_plans.forget(index)

    def _plan(
        self, source: UpstreamSource, findings: Findings, env: Environment
    ) -> EnvironmentPlan:
        lines = applicable_lines(self.config.requirements, env, self.config.path)
        if not lines:
            log.info("%s: no requirement applies", env.name)
        view = EnvironmentView(source, env, findings)
        try:
            plan = plan_environment(
                view,
                lines,
                self.options.selection,
                on_resolution=lambda resolution: self._fetch_pins(source, resolution),
            )
            add_locked(plan, source, self.options.locks, self.options.selection)
            return plan
        except (MorganError, OSError) as error:
            failed = EnvironmentPlan(environment=env)
            failed.errors.append(f"{env.name}: {describe_failure(error)}")
            return failed
        except Exception as error:  # a bug must not lose the other environments
            if self._cancel.is_set():
                raise
            log.debug("unexpected error", exc_info=True)
            failed = EnvironmentPlan(environment=env)
            failed.errors.append(f"{env.name}: unexpected error: {error!r}; please report it")
            return failed

    def _fetch_pins(self, source: UpstreamSource, resolution: Resolution) -> None:
        """Start downloading a resolution's files while the other resolutions go on."""
        if self.options.dry_run:
            return
        for pin in resolution.pins.values():
            for file in files_to_mirror(pin.files, self.options.selection):
                source.fetch(pin.name, file, background=True)

    def _chosen_files(
        self, plans: list[EnvironmentPlan]
    ) -> list[tuple[NormalizedName, ReleaseFile]]:
        chosen: dict[str, tuple[NormalizedName, ReleaseFile]] = {}
        for message in merge_failures(e for plan in plans for e in plan.errors):
            self._error(message)
        for message in merge_failures(w for plan in plans for w in plan.warnings):
            self._warn(message)
        for plan in plans:
            for pin in plan.pins().values():
                self.report.projects.add(pin.name)
                files = files_to_mirror(pin.files, self.options.selection)
                names = ", ".join(f.file.filename for f in files)
                log.info(
                    "%s: picked %s for %s: %s", pin.name, pin.version, plan.environment.name, names
                )
                for file in files:
                    chosen.setdefault(file.file.filename, (pin.name, file))
        return [chosen[filename] for filename in sorted(chosen)]

    def _dry_run(
        self,
        source: UpstreamSource,
        plans: list[EnvironmentPlan],
        chosen: list[tuple[NormalizedName, ReleaseFile]],
    ) -> DryRunReport:
        """What the run would add, keep and leave unneeded: per environment and in all."""
        report = DryRunReport()
        present: dict[str, bool] = {}
        for name, file in chosen:
            here = self._in_tree(source, name, file)
            present[file.file.filename] = here
            (report.kept if here else report.added).add(file.file.size)
        for plan in plans:
            added, kept, projects = Tally(), Tally(), set[str]()
            for pin in plan.pins().values():
                projects.add(pin.name)
                for file in files_to_mirror(pin.files, self.options.selection):
                    tally = kept if present[file.file.filename] else added
                    tally.add(file.file.size)
            report.environments[plan.environment.name] = (added, kept, projects)
        wanted = {(name, file.file.filename) for name, file in chosen}
        index = self.options.index_path
        for folder in project_folders(index) if index.is_dir() else []:
            for entry in os.scandir(folder):
                if is_distribution(entry.name) and (folder.name, entry.name) not in wanted:
                    report.unneeded.add(entry.stat().st_size)
        for filename, future in source.fetches():
            if future.done() and not future.cancelled() and future.exception() is None:
                result = future.result().result
                if not result.reused:
                    report.read_for_metadata.append((filename, result.size))
        report.read_for_metadata.sort()
        return report

    def _in_tree(self, source: UpstreamSource, name: NormalizedName, file: ReleaseFile) -> bool:
        """Whether the run would keep the file as it is (not download it): trusted unchanged
        since it was verified, else (or with ``--verify``) hashed, as the run would."""
        if not self.options.verify and source.in_tree(name, file):
            return True
        path = self.options.index_path / name / file.file.filename
        expected = file.file.hashes.get(PREFERRED_HASH, "").lower()
        if not expected or not path.is_file() or path.is_symlink():
            return False
        return file_sha256(path) == expected

    def _discard_unchosen(
        self, source: UpstreamSource, chosen: set[str], project: NormalizedName | None = None
    ) -> None:
        """Remove what this run downloaded only to read its dependencies (of ``project``
        alone, if given).

        A version the resolver tried and left is not part of any resolution: kept,
        it would be offered to clients whose dependencies the tree may lack. (What
        it depends on stays in the project's state, so the next run reads nothing.)
        """
        for filename, future in source.fetches(project):
            if filename in chosen or not future.done() or future.cancelled():
                continue
            if future.exception() is None and not future.result().result.reused:
                path = future.result().result.path
                for leftover in (path, *(Path(f"{path}{s}") for s in SIDECAR_SUFFIXES)):
                    leftover.unlink(missing_ok=True)
                log.info("%s: read for its dependencies only; not kept", filename)

    def _account(self, source: UpstreamSource, chosen: set[str]) -> None:
        """Count what is in the tree; name every chosen file that failed."""
        for filename, future in source.fetches():
            if future.cancelled():
                continue
            error = future.exception()
            if (
                filename not in chosen
                and error is None
                and not future.result().result.path.exists()
            ):
                continue  # read for its dependencies only
            if error is None:
                fetched: Fetched = future.result()
                result = fetched.result
                self.report.files.add(filename)
                self.report.projects.add(fetched.project)
                if result.reused:
                    self.report.reused += 1
                    self.report.bytes_reused += result.size
                else:
                    self.report.downloaded += 1
                    self.report.bytes_downloaded += result.size
            elif filename in chosen or isinstance(error, (UpstreamError, OSError)):
                self._error(f"{filename}: {describe_failure(error)}")
            elif isinstance(error, DistributionError):
                self._warn(f"{describe_failure(error)} (skipped, as pip would)")
        for filename in source.metadata_mismatches():
            self._warn(
                f"{filename}: the .metadata its host serves (the page does not offer one) is "
                "not the wheel's own METADATA; its dependencies were read from it this run, "
                "from the wheel on the next"
            )

    @staticmethod
    def _missing(source: UpstreamSource, chosen: list[tuple[NormalizedName, ReleaseFile]]) -> int:
        """How many chosen files are not in the tree."""
        return sum(1 for name, file in chosen if source.fetch(name, file).exception() is not None)

    def _summarize(self, plans: list[EnvironmentPlan], findings: Findings) -> None:
        with findings.lock:
            for message in findings.page_errors.values():
                # said already, as the cause of a failure, or a page that cost a version
                if not any(message in error for error in self.report.errors):
                    self._error(message)
            for name, version, extra in sorted(findings.missing_extras):
                self._warn(f"{name} {version} has no extra {extra!r}")
            refused = dict(findings.refused)
        for (name, version), reason in sorted(refused.items()):
            log.info("%s %s: skipped (%s)", name, version, reason)
        if isinstance(self.client, Upstreams):
            for project, files in sorted(self.client.strays().items()):
                self._warn(
                    f"{project} comes from uploads only, yet its folder holds files nobody "
                    f"uploaded ({', '.join(files)}): pip still sees them; `morgan prune` "
                    "removes them"
                )
        for plan in plans:
            env = plan.environment.name
            if plan.needs_compiler:
                names = sorted(f"{name} {version}" for name, version in plan.needs_compiler)
                self._warn(
                    f"{env}: clients need a compiler for {', '.join(names)} "
                    "(no wheel of that version for them)"
                )
            for failure in plan.no_wheel:
                self._warn(f"no wheel at all: {failure}")

    def _write_finished_projects(
        self,
        source: UpstreamSource,
        writers: Executor,
        chosen: list[tuple[NormalizedName, ReleaseFile]],
        fetches: list[Future[Fetched]],
        chosen_names: set[str],
    ) -> dict[NormalizedName, Future[None]]:
        """Write each project's pages as soon as its chosen files are all in, while other
        projects' downloads go on; the future of each project's write, by name."""
        pending: dict[NormalizedName, int] = {}
        for name, _ in chosen:
            pending[name] = pending.get(name, 0) + 1
        writes: dict[NormalizedName, Future[None]] = {name: Future() for name in pending}
        lock = threading.Lock()

        def write(name: NormalizedName) -> None:
            try:
                self._write_finished_project(source, name, chosen_names)
            except BaseException as error:
                writes[name].set_exception(error)
            else:
                writes[name].set_result(None)

        def one_in(name: NormalizedName) -> None:
            with lock:
                pending[name] -= 1
                if pending[name]:
                    return
            try:
                writers.submit(write, name)
            except RuntimeError as error:  # the writers are shut down: the run is interrupted
                writes[name].set_exception(error)

        for (name, _), future in zip(chosen, fetches):
            future.add_done_callback(lambda _, name=name: one_in(name))  # type: ignore[misc]
        return writes

    def _write_finished_project(
        self, source: UpstreamSource, name: NormalizedName, chosen_names: set[str]
    ) -> None:
        self._discard_unchosen(source, chosen_names, project=name)
        self._write_project(source, name)

    def _write_pages(
        self,
        source: UpstreamSource,
        writers: Executor,
        written: dict[NormalizedName, Future[None]],
    ) -> None:
        """Pages, saved state and clean-up; an unwritable folder is an error, not a stop.

        Folders are independent, so the writers write them side by side (each write
        waits for its fsync). The folders ``written`` while downloads finished only
        have their states saved once more.
        """
        index = self.options.index_path
        states = source.states
        names = sorted({NormalizedName(n) for n in self.report.projects} | set(states))
        writes = {
            name: written.get(name) or writers.submit(self._write_project, source, name)
            for name in names
        }
        for name, future in writes.items():
            try:
                future.result()
                if name in written:  # work still under way then may have added to its state
                    source.state(name).save(index / name)
            except OSError as error:
                self._error(f"{name}: cannot write its pages: {error.strerror} ({error.filename})")
        try:
            _remove_leftovers(index, set())
            write_root_pages(index)
        except OSError as error:
            self._error(f"cannot write the project list: {error.strerror} ({error.filename})")

    def _write_project(self, source: UpstreamSource, name: NormalizedName) -> None:
        folder = self.options.index_path / name
        if not folder.is_dir():
            return
        _remove_leftovers(folder, source.resumable)
        state = source.state(name)
        unchanged = source.page_unchanged(name)
        if unchanged and state.listing == folder_listing(folder) and (folder / PAGE_JSON).is_file():
            state.save(folder)  # nothing to rewrite, nor to read the page for
            return
        known = source.known_files(name)
        if known:  # what the index no longer lists need not be remembered
            state.dependencies = {f: d for f, d in state.dependencies.items() if f in known}
        if name in self.report.projects or known:
            write_project_pages(folder, known)
            state.listing = folder_listing(folder)
        state.save(folder)

    def _write_locks(self, plans: list[EnvironmentPlan]) -> None:
        try:
            origins = None
            if isinstance(self.client, Upstreams) and self.client.several:
                origins = self.client.origin_urls()
            written = write_lock_files(
                self.options.index_path,
                plans,
                self.options.selection,
                self.client.index_url,
                origins,
            )
        except (MorganError, OSError, ValueError) as error:
            self._error(f"cannot write the lock files: {describe_failure(error)}")
            return
        for path in written:
            log.debug("%s: written", path.name)

    def _manifest_stands(self) -> bool:
        """Whether the manifest on disk is the one this run would write: the plans and the
        tree it describes stand, and it was written by a run without errors for this config."""
        written = manifest.written_for(self.options.index_path)
        return written == (True, manifest.config_sha256(self.config))

    def _write_manifest(self, plans: list[EnvironmentPlan]) -> None:
        """Last: the manifest names the tree as it is now, every file and why it is there."""
        index = self.options.index_path
        try:
            why = manifest.reasons(plans, self.config, self.options.selection)
            indexes = origins = None
            if isinstance(self.client, Upstreams) and self.client.several:
                indexes, origins = self.client.names(), self.client.origins()
            body = manifest.render(
                index,
                config=self.config,
                index_url=redact(self.client.index_url),
                why=why,
                complete=not self.report.errors,
                indexes=indexes,
                origins=origins,
            )
            manifest.write(index, body)
        except (MorganError, OSError) as error:
            self._error(f"cannot write {manifest.MANIFEST}: {describe_failure(error)}")

    def _prove(self, plans: list[EnvironmentPlan], source: UpstreamSource) -> None:
        """Show from the tree alone that each environment's resolutions install there."""
        tree = TreeSource(
            self.options.index_path,
            self.options.selection.package_type_regex,
            known=source.sdist_dependencies(),
            known_metadata=source.metadata_dependencies(),
        )
        findings = Findings()
        for plan in plans:
            view = EnvironmentView(tree, plan.environment, findings)
            for message in prove(view, plan):
                self._error(message)

    def _check_interrupt(self) -> None:
        """Raise the interrupt asked for while the run's thread was busy (not waiting)."""
        if self.options.interrupt is not None and self.options.interrupt.is_set():
            raise KeyboardInterrupt

    def _error(self, message: str) -> None:
        if message not in self.report.errors:
            log.error("error: %s", message)
            self.report.errors.append(message)

    def _warn(self, message: str) -> None:
        if message not in self.report.warnings:
            log.warning("warning: %s", message)
            self.report.warnings.append(message)

    # -- waiting --------------------------------------------------------------

    def _await(self, futures: list[Future[Any]], *, errors: bool = True) -> list[Any]:
        """Wait for all ``futures``, ticking the progress line; their results, in order.

        With ``errors`` an exception in one is re-raised; else it is left in its future.
        An interrupt asked for meanwhile is raised here.
        """
        pending = set(futures)
        tick = self.options.on_tick
        interrupt = self.options.interrupt
        while pending:
            _, pending = wait(
                pending,
                timeout=REDRAW_INTERVAL if tick or interrupt else None,
                return_when=FIRST_COMPLETED,
            )
            if interrupt is not None and interrupt.is_set():
                # raised here, between waits: a KeyboardInterrupt raised by the signal inside
                # ``wait`` can leave futures' locks held, and every thread stuck on them
                raise KeyboardInterrupt
            if tick:
                tick()
        if not errors:
            return []
        return [future.result() for future in futures]


def merge_failures(problems: Iterable[str | ResolutionFailure]) -> list[str]:
    """Messages, with one failure met in several environments said once, naming them all."""
    environments: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    messages = []
    for problem in problems:
        if isinstance(problem, ResolutionFailure):
            environments.setdefault((problem.label, problem.causes), []).append(problem.environment)
        else:
            messages.append(problem)
    for (label, causes), names in environments.items():
        messages.append(str(ResolutionFailure(", ".join(names), label, causes)))
    return messages


def _remove_leftovers(folder: Path, keep: set[Path]) -> None:
    """Delete the temporary files of writes that never finished (a killed run's)."""
    for entry in os.scandir(folder):
        if entry.name.startswith(".") and entry.name.endswith(PART_SUFFIX):
            path = Path(entry.path)
            if path not in keep:
                path.unlink(missing_ok=True)


def copy_server(index_path: Path) -> Path:
    """Put a copy of the standalone server into the tree."""
    _copy_server(index_path)
    return index_path / "server.py"


def _copy_server(index_path: Path) -> bool:
    """Copy the server into the tree; True if that changed it."""
    index_path.mkdir(parents=True, exist_ok=True)
    return atomic_write(
        index_path / "server.py", Path(__file__).with_name("server.py").read_bytes()
    )
