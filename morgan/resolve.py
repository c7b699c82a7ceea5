"""One resolution: a set of requirements, one environment, resolvelib's answer.

A failure keeps its facts (environment, what was resolved, the chain of
requirements that conflict) and says them the way pip does:
``flask 3.1.3 depends on werkzeug>=3.1; the requirements say werkzeug<2``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers import Resolution as ResolvelibResolution

from morgan.errors import MorganError
from morgan.forward import reachable_pins, resolve_forward
from morgan.provider import Candidate, EnvironmentView, MirrorProvider, ProjectRequirement
from morgan.selection import allowed_releases, why_nothing
from morgan.sources import UpstreamSource

#: resolvelib's budget of rounds for one resolution. pip allows 200,000, which on a
#: set with no solution means hours; real sets resolve in a few hundred.
MAX_ROUNDS = 10_000
#: How many of the conflicts met most often a give-up message names.
NAMED_CONFLICTS = 3


class _ConflictCounter(BaseReporter):  # type: ignore[type-arg]
    """Counts the requirements that rejected candidates: what to name when giving up."""

    def __init__(self) -> None:
        self.conflicts: Counter[str] = Counter()

    def rejecting_candidate(self, criterion: Any, candidate: Any) -> None:
        for info in criterion.information:
            parent = info.parent
            who = f"{parent.name} {parent.version} depends on" if parent else "the requirements say"
            self.conflicts[f"{who} {info.requirement}"] += 1


@dataclass(frozen=True)
class Task:
    """One resolution to run: requirements installed together, as by one pip command."""

    #: What the resolution stands for, in messages ("the requirements together").
    label: str
    requirements: tuple[ProjectRequirement, ...]
    #: Only versions with a wheel for the environment, as for a client that cannot build.
    wheels_only: bool = False
    #: Who states the requirements, in conflict messages.
    stated_by: str = "the requirements"
    #: The lock file (``mirror --lock``) whose pins these are, not resolved here.
    lock: str = ""

    def wheels_only_variant(self) -> Task:
        return Task(f"{self.label} (wheels only)", self.requirements, True, self.stated_by)


#: Who asked for a pinned project: the parent pin's name ("" for the task itself) and
#: what it asked, as ``idna<4,>=2.5``.
Asker = tuple[str, str]


@dataclass(frozen=True)
class Resolution:
    """A task resolved: the version of every project it installs (extras folded in)."""

    task: Task
    pins: Mapping[NormalizedName, Candidate]
    #: Why each pin is there: who asked for it (what ``morgan why`` and the manifest say).
    asked_by: Mapping[NormalizedName, tuple[Asker, ...]] = field(
        default_factory=dict, compare=False
    )

    @property
    def needs_building(self) -> list[Candidate]:
        """The pins with no wheel for the environment: a client must build them."""
        return [pin for pin in self.pins.values() if not pin.wheels]


class ResolutionFailure(MorganError):
    """A task has no solution in an environment."""

    def __init__(self, environment: str, label: str, causes: tuple[str, ...]) -> None:
        super().__init__(environment, label, causes)
        self.environment = environment
        self.label = label
        self.causes = causes

    def __str__(self) -> str:
        return f"{self.environment}: {self.label} cannot be installed: {'; '.join(self.causes)}"


def resolve(view: EnvironmentView, task: Task, *, max_rounds: int | None = None) -> Resolution:
    """Resolve a task as the environment's installer would; ResolutionFailure if it cannot.

    Most tasks never need to backjump: they are answered by resolvelib's rounds run
    forward only (``morgan.forward``), and only a task that needs to goes to resolvelib.
    """
    provider = MirrorProvider(view, wheels_only=task.wheels_only)
    name = view.environment.name
    for requirement in task.requirements:  # their pages, and their newest metadata, at once
        view.prefetch(requirement, wheels_only=task.wheels_only)
    rounds = max_rounds or MAX_ROUNDS
    found = resolve_forward(provider, task.requirements, max_rounds=rounds)
    if found is None:
        reporter = _ConflictCounter()
        resolution: ResolvelibResolution = ResolvelibResolution(provider, reporter)  # type: ignore[type-arg]
        try:
            state = resolution.resolve(task.requirements, max_rounds=rounds)
        except ResolutionImpossible as error:
            raise ResolutionFailure(name, task.label, _causes(view, task, error)) from None
        except ResolutionTooDeep:
            reason = f"gave up after {rounds} rounds of backtracking, most often over these"
            named = [text for text, _ in reporter.conflicts.most_common(NAMED_CONFLICTS)]
            raise ResolutionFailure(name, task.label, (reason, *named)) from None
        information = {key: criterion.information for key, criterion in state.criteria.items()}
        found = reachable_pins(state.mapping, information)
    pins = {candidate.name: candidate for candidate in found.values() if not candidate.extras}
    return _resolution(view, task, pins)


def _resolution(
    view: EnvironmentView, task: Task, pins: Mapping[NormalizedName, Candidate]
) -> Resolution:
    return Resolution(
        task=task, pins=dict(sorted(pins.items())), asked_by=asked_by(view, task, pins)
    )


def asked_by(
    view: EnvironmentView, task: Task, pins: Mapping[NormalizedName, Candidate]
) -> dict[NormalizedName, tuple[Asker, ...]]:
    """Who asked for each pin: the task's requirements and the pins' own dependencies.

    Walked again from the task, with each pin's extras as they were asked for (the
    dependencies are those the resolution just read, so this reads nothing new).
    """
    found: dict[NormalizedName, dict[Asker, None]] = {}
    queue: deque[tuple[str, ProjectRequirement]] = deque(("", r) for r in task.requirements)
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        parent, requirement = queue.popleft()
        pin = pins.get(requirement.name)
        if pin is None:
            continue
        found.setdefault(requirement.name, {})[(parent, str(requirement))] = None
        key = (requirement.name, requirement.extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            needs = view.requirements(
                Candidate(pin.name, pin.version, requirement.extras, pin.files)
            )
        except (MorganError, OSError):
            continue
        queue.extend((pin.name, need) for need in needs)
    return {name: tuple(sorted(askers)) for name, askers in sorted(found.items())}


def _causes(
    view: EnvironmentView,
    task: Task,
    error: ResolutionImpossible,  # type: ignore[type-arg]
) -> tuple[str, ...]:
    """The conflict chain, parents' requirements first, then why a project has no version."""
    said: list[str] = []
    stated: list[str] = []
    reasons: list[str] = []
    for info in error.causes:
        requirement: ProjectRequirement = info.requirement
        parent: Candidate | None = info.parent
        if parent is None:
            stated.append(f"{task.stated_by} say {requirement}")
        else:
            said.append(f"{parent.name} {parent.version} depends on {requirement}")
        reason = _why_no_version(view, task, requirement)
        if reason:
            reasons.append(reason)
    return tuple(dict.fromkeys([*said, *stated, *reasons]))


def _why_no_version(
    view: EnvironmentView, task: Task, requirement: ProjectRequirement
) -> str | None:
    """Why nothing satisfies ``requirement`` alone here, or None if something does."""
    found = view.releases(requirement.name, wheels_only=task.wheels_only)
    if allowed_releases(found, requirement.specifier):
        return _refused(view, requirement)
    with view.findings.lock:
        page_error = view.findings.page_errors.get(requirement.name)
        not_found = view.findings.not_found.get(requirement.name)
    if page_error or not_found:
        return page_error or not_found
    if task.wheels_only and view.releases(requirement.name, wheels_only=False):
        return f"no version of {requirement} has a wheel for {view.environment.name}"
    try:
        files = view.source.files(requirement.name)
    except MorganError as error:
        return str(error)
    as_text = Requirement(f"{requirement.name}{requirement.specifier}")
    aside = (
        view.source.set_aside(requirement.name) if isinstance(view.source, UpstreamSource) else 0
    )
    return f"{requirement}: {why_nothing(files, as_text, view.environment, set_aside=aside)}"


def _refused(view: EnvironmentView, requirement: ProjectRequirement) -> str | None:
    with view.findings.lock:
        refused = [
            f"{name} {version} was skipped ({reason})"
            for (name, version), reason in sorted(view.findings.refused.items())
            if name == requirement.name
        ]
    return "; ".join(refused) if refused else None
