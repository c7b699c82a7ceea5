"""The resolvelib provider: how one environment's installer sees an index.

resolvelib does the backtracking; this module says what the pieces are, the
way pip's provider does. A *requirement* is a project (with extras) and a
specifier; a *candidate* is a project at one version with the files the
environment can install of it. A requirement with extras is its own project to
resolvelib (``name[extra]``), whose candidates depend on the plain project at
the same version, so both always agree on the version.

Candidates are produced lazily, newest first, and a version's dependencies are
read when the resolver reaches it: one whose metadata cannot be read is
skipped, as pip and uv skip it. While the resolver works on one candidate, the
pages of its dependencies and the metadata of their newest versions are
already being fetched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from morgan.environments import Environment, evaluate_marker
from morgan.errors import DistributionError, MorganError, ProjectNotFoundError
from morgan.models import ReleaseFile
from morgan.selection import Release, allowed_releases, ordered_files, releases
from morgan.sources import ProjectSource, describe_failure

log = logging.getLogger(__name__)


def identifier_of(name: str, extras: Iterable[str]) -> str:
    """resolvelib's key for a project with extras: ``name`` or ``name[a,b]``."""
    extras = sorted(extras)
    return f"{name}[{','.join(extras)}]" if extras else name


def split_identifier(identifier: str) -> tuple[NormalizedName, frozenset[NormalizedName]]:
    """The project and extras of an ``identifier_of`` key."""
    name, _, extras = identifier.partition("[")
    names = extras.rstrip("]").split(",") if extras else []
    return NormalizedName(name), frozenset(NormalizedName(extra) for extra in names)


@dataclass(frozen=True)
class ProjectRequirement:
    """A requirement on a project (and some of its extras), its marker already evaluated."""

    name: NormalizedName
    extras: frozenset[NormalizedName]
    specifier: SpecifierSet

    @classmethod
    def from_requirement(cls, requirement: Requirement) -> ProjectRequirement:
        return cls(
            name=canonicalize_name(requirement.name),
            extras=frozenset(canonicalize_name(e) for e in requirement.extras),
            specifier=requirement.specifier,
        )

    @classmethod
    def pin(cls, name: NormalizedName, version: Version) -> ProjectRequirement:
        return cls(name=name, extras=frozenset(), specifier=SpecifierSet(f"=={version}"))

    #: Versions already checked against the specifier: resolvelib asks again and again.
    _admitted: dict[Version, bool] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def identifier(self) -> str:
        known: str | None = self.__dict__.get("_identifier")  # asked for at every step
        if known is None:
            known = self.__dict__["_identifier"] = identifier_of(self.name, self.extras)
        return known

    @property
    def is_exact(self) -> bool:
        """Whether a clause pins one version (``==`` without a wildcard, or ``===``)."""
        # Kept in the instance's __dict__ by hand: before Python 3.12, cached_property
        # takes one lock for all instances, and four resolving threads queued on it.
        known: bool | None = self.__dict__.get("_is_exact")
        if known is None:
            known = any(
                spec.operator in ("==", "===") and not spec.version.endswith(".*")
                for spec in self.specifier
            )
            self.__dict__["_is_exact"] = known
        return known

    def admits(self, version: Version) -> bool:
        """Whether the specifier allows ``version`` (pre-releases included, as pins are)."""
        known = self._admitted.get(version)
        if known is None:
            known = self._admitted[version] = self.specifier.contains(version, prereleases=True)
        return known

    def __str__(self) -> str:
        return f"{self.identifier}{self.specifier}"


@dataclass(frozen=True)
class Candidate:
    """A project at one version, with the files of it an environment would install."""

    name: NormalizedName
    version: Version
    extras: frozenset[NormalizedName] = frozenset()
    #: Installable here, best first: wheels by the environment's tag order, then sdists.
    files: tuple[ReleaseFile, ...] = field(default=(), compare=False)

    @property
    def identifier(self) -> str:
        known: str | None = self.__dict__.get("_identifier")
        if known is None:
            known = self.__dict__["_identifier"] = identifier_of(self.name, self.extras)
        return known

    @property
    def wheels(self) -> tuple[ReleaseFile, ...]:
        return tuple(f for f in self.files if f.is_wheel)

    @property
    def sdists(self) -> tuple[ReleaseFile, ...]:
        return tuple(f for f in self.files if not f.is_wheel)

    @property
    def metadata_file(self) -> ReleaseFile:
        """The file whose metadata a client here reads: the wheel it installs, else the sdist."""
        return self.files[0]

    def __str__(self) -> str:
        return f"{self.identifier} {self.version}"


@dataclass
class Findings:
    """What the provider met besides candidates: shared by the resolutions of one run."""

    #: Versions refused because their metadata could not be read: (project, version) → why.
    refused: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Projects whose page could not be read for another reason than "not found".
    page_errors: dict[str, str] = field(default_factory=dict)
    #: Projects not on the index at all, with the index's answer.
    not_found: dict[str, str] = field(default_factory=dict)
    #: Extras asked for that a version does not declare: (project, version, extra).
    missing_extras: set[tuple[str, str, str]] = field(default_factory=set)
    #: Files whose dependencies could not be read for a passing reason (the network):
    #: a plan that took them as having none is good for this run only.
    unknown: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class EnvironmentView:
    """An index as one environment sees it: its releases and their dependencies there.

    Shared by every resolution of that environment (on its planner's thread, and the
    threads of its wheels-only searches), so each page is ranked and each version's
    dependencies evaluated once. Look-aheads run on pool threads too: the memos of
    releases, allowed releases, candidates and requirements are read without a lock (a
    dict read is one step, and they are read at every step of every resolution) and
    filled with ``setdefault``, so every thread gets the first object made for a key.
    """

    def __init__(self, source: ProjectSource, environment: Environment, findings: Findings) -> None:
        self.source = source
        self.environment = environment
        self.findings = findings
        self._releases: dict[tuple[NormalizedName, bool], list[Release]] = {}
        self._requirements: dict[tuple[str, str, frozenset[str]], list[ProjectRequirement]] = {}
        self._allowed: dict[tuple[NormalizedName, SpecifierSet, bool], list[Release]] = {}
        self._prefetched: set[tuple[ProjectRequirement, bool]] = set()
        self._exactly: dict[tuple[NormalizedName, Version, bool], Candidate | None] = {}
        self._candidates: dict[tuple[NormalizedName, Version, frozenset[str], int], Candidate] = {}
        self._lock = threading.Lock()

    def releases(self, name: NormalizedName, *, wheels_only: bool) -> list[Release]:
        key = (name, wheels_only)
        found = self._releases.get(key)
        if found is not None:
            return found
        try:
            files = self.source.files(name)
        except ProjectNotFoundError as error:
            files = []
            with self.findings.lock:
                self.findings.not_found[name] = str(error)
        except MorganError as error:
            files = []
            with self.findings.lock:
                self.findings.page_errors[name] = f"{name}: cannot read its page: {error}"
        return self._releases.setdefault(
            key, releases(files, self.environment, wheels_only=wheels_only)
        )

    def allowed(
        self, name: NormalizedName, specifier: SpecifierSet, *, wheels_only: bool
    ) -> list[Release]:
        """The releases a specifier admits here, newest first (asked again and again while
        backtracking, so kept)."""
        key = (name, specifier, wheels_only)
        found = self._allowed.get(key)
        if found is None:
            found = self._allowed.setdefault(
                key, allowed_releases(self.releases(name, wheels_only=wheels_only), specifier)
            )
        return found

    def candidate(
        self,
        name: NormalizedName,
        release: Release,
        specifier: SpecifierSet,
        extras: frozenset[NormalizedName],
    ) -> Candidate:
        usable = release.usable_files(specifier)
        key = (name, release.version, extras, len(usable))  # yanked files in, or not
        known = self._candidates.get(key)
        if known is None:
            files = ordered_files(usable, self.environment)
            made = Candidate(name=name, version=release.version, extras=extras, files=files)
            known = self._candidates.setdefault(key, made)
        return known

    def exactly(
        self, name: NormalizedName, version: Version, *, wheels_only: bool
    ) -> Candidate | None:
        """What ``name==version`` gets here (yanked files too), or None: the proof asks
        it of every pin of every resolution, most of them shared."""
        key = (name, version, wheels_only)
        if key not in self._exactly:
            exact = SpecifierSet(f"=={version}")
            found = self.allowed(name, exact, wheels_only=wheels_only)
            self._exactly.setdefault(
                key, self.candidate(name, found[0], exact, frozenset()) if found else None
            )
        return self._exactly[key]

    def requirements(self, candidate: Candidate) -> list[ProjectRequirement]:
        """What the candidate needs here (DistributionError/MorganError if unreadable)."""
        file = candidate.metadata_file
        key = (file.file.filename, candidate.name, candidate.extras)
        known = self._requirements.get(key)
        if known is not None:
            return known
        try:
            dependencies = self.source.dependencies(candidate.name, file)
        except DistributionError:
            raise  # the distribution itself is unfit: the version is skipped
        except (MorganError, OSError) as error:
            # Not the distribution's fault: take the version pip would take, its dependencies
            # unknown, so the rest is still mirrored; the failed file is an error of the run.
            log.info("%s: dependencies unknown (%s)", file.file.filename, describe_failure(error))
            with self.findings.lock:
                self.findings.unknown.add(file.file.filename)
            return []
        source = f"{file.file.filename} (for {self.environment.name})"
        if not self.environment.allows_python(dependencies.requires_python):
            # The page did not say (HTML pages often don't); the metadata does, and pip
            # checks it before installing: the version does not fit this environment.
            raise DistributionError(
                file.file.filename,
                f"its metadata requires Python {dependencies.requires_python}, "
                f"not {self.environment.python_version}",
            )
        for extra in sorted(candidate.extras - dependencies.extras):
            with self.findings.lock:
                self.findings.missing_extras.add((candidate.name, str(candidate.version), extra))
        needed = []
        contexts = [self.environment.marker_environment(e) for e in sorted(candidate.extras)]
        if not candidate.extras:
            contexts = [self.environment.marker_environment("")]
        for requirement in dependencies.requires:
            if requirement.marker is not None and not any(
                evaluate_marker(requirement.marker, context, source=source) for context in contexts
            ):
                continue
            needed.append(ProjectRequirement.from_requirement(requirement))
        return self._requirements.setdefault(key, needed)

    def readable(self, candidate: Candidate) -> bool:
        """Whether the candidate's dependencies can be read here; if not, say why once."""
        try:
            self.requirements(candidate)
        except (MorganError, OSError) as error:
            reason = describe_failure(error)
            with self.findings.lock:
                self.findings.refused[(candidate.name, str(candidate.version))] = reason
            log.info("%s %s: skipped (%s)", candidate.name, candidate.version, reason)
            return False
        return True

    def _prefetch_needs(self, candidate: Candidate, *, wheels_only: bool) -> None:
        """Look further ahead: what the newest version needs, in turn (its metadata is in)."""
        for needed in self.requirements(candidate):
            self.prefetch(needed, wheels_only=wheels_only)

    def prefetch(self, requirement: ProjectRequirement, *, wheels_only: bool) -> None:
        """Start fetching the requirement's page and, once it is in, the metadata of the
        newest version it admits: most resolutions take that version."""

        key = (requirement, wheels_only)
        with self._lock:
            if key in self._prefetched:
                return
            self._prefetched.add(key)

        def newest(files: Sequence[ReleaseFile]) -> None:
            allowed = self.allowed(requirement.name, requirement.specifier, wheels_only=wheels_only)
            if allowed:
                candidate = self.candidate(
                    requirement.name, allowed[0], requirement.specifier, requirement.extras
                )
                self.source.prefetch_dependencies(
                    requirement.name,
                    candidate.metadata_file,
                    then=lambda: self._prefetch_needs(candidate, wheels_only=wheels_only),
                )

        self.source.prefetch(requirement.name, newest)


#: How many older versions' metadata to fetch ahead once the resolver backtracks over a
#: project: each would otherwise cost a round trip of its own.
BACKTRACK_LOOK_AHEAD = 3


class MirrorProvider(AbstractProvider):  # type: ignore[type-arg]
    """pip's rules, for one environment, over an EnvironmentView."""

    def __init__(self, view: EnvironmentView, *, wheels_only: bool = False) -> None:
        self.view = view
        self.wheels_only = wheels_only

    def identify(self, requirement_or_candidate: ProjectRequirement | Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation]],  # type: ignore[type-arg]
        backtrack_causes: Sequence[RequirementInformation],  # type: ignore[type-arg]
    ) -> tuple[bool, bool, bool, str]:
        """Pins first, then what caused backtracking, then direct requirements, then by name."""
        infos = list(information[identifier])
        pinned = any(info.requirement.is_exact for info in infos)
        direct = any(info.parent is None for info in infos)
        causes = {cause.requirement.identifier for cause in backtrack_causes}
        causes |= {cause.parent.identifier for cause in backtrack_causes if cause.parent}
        return (not pinned, identifier not in causes, not direct, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[ProjectRequirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]]:
        asked = list(requirements[identifier])
        # Backtracking may ask for a project that nothing asks for any more: all versions.
        name, extras = split_identifier(identifier)
        specifier = asked[0].specifier if asked else SpecifierSet()
        for requirement in asked[1:]:
            specifier &= requirement.specifier
        excluded = {candidate.version for candidate in incompatibilities[identifier]}
        found = self.view.allowed(name, specifier, wheels_only=self.wheels_only)
        view = self.view
        if excluded:  # backtracking over this project: fetch a few older versions' metadata
            ahead = [r for r in found if r.version not in excluded][:BACKTRACK_LOOK_AHEAD]
            for release in ahead:
                candidate = view.candidate(name, release, specifier, extras)
                view.source.prefetch_dependencies(name, candidate.metadata_file, unlikely=True)

        def produce() -> Iterator[Candidate]:
            for release in found:
                if release.version in excluded:
                    continue
                candidate = view.candidate(name, release, specifier, extras)
                if view.readable(candidate):
                    yield candidate

        return produce

    def is_satisfied_by(self, requirement: ProjectRequirement, candidate: Candidate) -> bool:
        return requirement.admits(candidate.version)

    def get_dependencies(self, candidate: Candidate) -> list[ProjectRequirement]:
        needed = list(self.view.requirements(candidate))
        if candidate.extras:
            needed.insert(0, ProjectRequirement.pin(candidate.name, candidate.version))
        for requirement in needed:
            self.view.prefetch(requirement, wheels_only=self.wheels_only)
        return needed
