"""What the mirror holds for one environment, and the proof that clients there can install.

Per environment, the mirror holds (the union over environments is the tree):

1. the *joint* resolution of all requirement lines that apply there, as one
   ``pip install`` of them all would resolve it. Lines naming one project are
   combined; if they cannot hold together (two ranges kept on purpose) they are
   *alternatives*, each resolved with the rest;
2. each line *alone*, so ``pip install LINE`` installs too (with ``-a``, every
   version the line admits, each with its dependencies);
3. a *wheels-only* resolution of each of those that needs an sdist there, so a
   client without a compiler installs the newest version that has a wheel;
4. for every mirrored sdist, its *build requirements*, resolved as pip's
   isolated build environment would. They must resolve only where a client has
   to build that sdist (no wheel of that version for it).

The proof runs the same tasks again against the tree alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from morgan.environments import Environment
from morgan.errors import MorganError
from morgan.provider import Candidate, EnvironmentView, ProjectRequirement
from morgan.resolve import Resolution, ResolutionFailure, Task, resolve
from morgan.selection import SelectionOptions, allowed_releases
from morgan.sources import describe_failure

log = logging.getLogger(__name__)

JOINT_LABEL = "the requirements together"
#: The backtracking budget of a wheels-only resolution: it only adds to what the
#: default resolution mirrors, so it may give up sooner. One that has a solution
#: mostly finds it going forward (the newest release with a wheel, or one a step
#: back); on the benchmark, every search that went past 300 rounds gave up at 1,000.
WHEELS_ONLY_ROUNDS = 300
#: Wheels-only searches of one environment run side by side, at most this many at once.
WHEELS_ONLY_SEARCHES = 4


@dataclass
class EnvironmentPlan:
    """The resolutions of one environment, and what went wrong on the way."""

    environment: Environment
    #: The joint resolutions (one per set of alternatives), first the default one.
    joint: list[Resolution] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    #: Resolutions that must also hold in the tree (the proof checks them).
    to_prove: list[Resolution] = field(default_factory=list)
    errors: list[str | ResolutionFailure] = field(default_factory=list)
    warnings: list[str | ResolutionFailure] = field(default_factory=list)
    #: Projects for which the default resolution picks an sdist: (project, version).
    needs_compiler: set[tuple[str, str]] = field(default_factory=set)
    #: Tasks with no wheels-only solution, and why.
    no_wheel: list[str] = field(default_factory=list)
    #: The build resolution of each mirrored sdist: (``project/filename``, resolution),
    #: one resolution serving every sdist with the same build requirements.
    builds: list[tuple[str, Resolution]] = field(default_factory=list)
    #: Called with each resolution as it is added (to start its downloads at once).
    on_resolution: Callable[[Resolution], None] | None = field(
        default=None, repr=False, compare=False
    )
    _by_task: dict[Task, list[Resolution]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for resolution in self.resolutions:
            self._by_task.setdefault(resolution.task, []).append(resolution)

    def add(self, resolution: Resolution, *, proven: bool = True) -> None:
        """Keep a resolution: the mirror holds its pins (and, if ``proven``, the proof
        checks that it installs from the tree)."""
        same_task = self._by_task.setdefault(resolution.task, [])
        if resolution in same_task:  # not compared with the hundreds of other tasks
            return
        same_task.append(resolution)
        self.resolutions.append(resolution)
        if proven:
            self.to_prove.append(resolution)
        if self.on_resolution is not None:
            self.on_resolution(resolution)

    def pins(self) -> dict[tuple[NormalizedName, str], Candidate]:
        """Every (project, version) any resolution of this environment picked."""
        found: dict[tuple[NormalizedName, str], Candidate] = {}
        for resolution in self.resolutions:
            for pin in resolution.pins.values():
                found.setdefault((pin.name, str(pin.version)), pin)
        return found


def applicable_lines(
    requirements: Iterable[Requirement], environment: Environment, source: str
) -> list[ProjectRequirement]:
    """The requirement lines whose markers hold in the environment."""
    return [
        ProjectRequirement.from_requirement(r)
        for r in requirements
        if r.marker is None or environment.evaluate_marker(r.marker, source=source)
    ]


def line_label(line: ProjectRequirement) -> str:
    return f"'{line}'"


def joint_tasks(
    view: EnvironmentView, lines: Sequence[ProjectRequirement], *, left_out: bool = False
) -> list[Task]:
    """The joint resolutions: one, or one per alternative when lines on a project clash.

    Lines naming one project clash when together they admit no version the index
    has for this environment, while each alone admits one. Each alternative is
    then resolved with all other lines; with several clashing projects the i-th
    task takes the i-th alternative of each (the last one where it has fewer),
    so every alternative is resolved at least once.
    """
    groups: dict[str, list[ProjectRequirement]] = {}
    for line in lines:
        groups.setdefault(line.name, []).append(line)
    alternatives: dict[str, list[ProjectRequirement]] = {}
    for name, group in groups.items():
        if len(group) < 2:
            continue
        found = view.releases(group[0].name, wheels_only=False)
        combined = SpecifierSet()
        for line in group:
            combined &= line.specifier
        if not allowed_releases(found, combined) and all(
            allowed_releases(found, line.specifier) for line in group
        ):
            alternatives[name] = group
    base = JOINT_LABEL + (" (the others left out)" if left_out else "")
    if not alternatives:
        return [Task(base, tuple(lines))]
    tasks = []
    for index in range(max(len(group) for group in alternatives.values())):
        chosen = {name: group[min(index, len(group) - 1)] for name, group in alternatives.items()}
        requirements = tuple(
            line for line in lines if line.name not in alternatives or line is chosen[line.name]
        )
        label = f"{base} with " + ", ".join(str(chosen[name]) for name in sorted(chosen))
        tasks.append(Task(label, requirements))
    return tasks


def all_versions_tasks(view: EnvironmentView, line: ProjectRequirement) -> list[Task]:
    """For ``-a``: every version the line admits, each alone."""
    tasks = []
    for release in allowed_releases(view.releases(line.name, wheels_only=False), line.specifier):
        pinned = ProjectRequirement(line.name, line.extras, SpecifierSet(f"=={release.version}"))
        tasks.append(Task(f"'{pinned}' (all versions of '{line}')", (pinned,)))
    return tasks


def plan_environment(
    view: EnvironmentView,
    lines: Sequence[ProjectRequirement],
    options: SelectionOptions,
    on_resolution: Callable[[Resolution], None] | None = None,
) -> EnvironmentPlan:
    """Resolve everything the mirror must hold for one environment.

    ``on_resolution`` is called with each resolution as soon as it is found (the
    wheels-only ones once all of the environment's are): the mirror holds all of
    them, so their files may be fetched at once.
    """
    plan = EnvironmentPlan(environment=view.environment, on_resolution=on_resolution)
    env = view.environment.name

    def attempt(task: Task, *, failure_is_error: bool = True) -> Resolution | None:
        try:
            resolution = resolve(view, task)
        except ResolutionFailure as failure:
            (plan.errors if failure_is_error else plan.warnings).append(failure)
            return None
        plan.add(resolution)
        return resolution

    if not lines:
        return plan
    # Every line's graph starts to arrive at once (pages, then the newest versions'
    # metadata, then theirs), rather than line after line, level by level.
    for line in lines:
        view.prefetch(line, wheels_only=False)
    # Each line alone first: a line that cannot be installed even alone is one error,
    # and the joint resolution is then that of the other lines.
    defaults: list[Resolution] = []
    failed: set[ProjectRequirement] = set()
    for line in dict.fromkeys(lines):
        resolution = attempt(Task(line_label(line), (line,)))
        if resolution is None:
            failed.add(line)
            continue
        defaults.append(resolution)
        if options.all_versions:  # an old version that cannot be installed is only noted
            for task in all_versions_tasks(view, line):
                found = attempt(task, failure_is_error=False)
                defaults.extend([found] if found else [])
    rest = [line for line in lines if line not in failed]
    if rest:
        for task in joint_tasks(view, rest, left_out=len(rest) < len(lines)):
            same = [r for r in defaults if set(r.task.requirements) == set(task.requirements)]
            if same:  # one line: its joint resolution is the line's own
                plan.joint.append(same[0])
                continue
            resolution = attempt(task)
            if resolution is not None:
                plan.joint.append(resolution)
                defaults.append(resolution)
    variants: list[Task] = []
    for resolution in defaults:
        sdist_only = resolution.needs_building
        if not sdist_only:
            continue
        plan.needs_compiler |= {(pin.name, str(pin.version)) for pin in sdist_only}
        variant = resolution.task.wheels_only_variant()
        # A project with no wheel here in any version cannot be part of a wheels-only
        # solution: say so at once instead of proving it by exhaustive backtracking.
        # (A wheels-only install that avoids it through other versions of its
        # dependents is not looked for.)
        hopeless = sorted(
            pin.name for pin in sdist_only if not view.releases(pin.name, wheels_only=True)
        )
        if hopeless:
            plan.no_wheel.append(
                f"{view.environment.name}: {variant.label}: no version of "
                f"{', '.join(hopeless)} has a wheel for {view.environment.name}"
            )
            continue
        variants.append(variant)
    for outcome in _search_wheels_only(view, list(dict.fromkeys(variants))):
        if isinstance(outcome, ResolutionFailure):
            plan.no_wheel.append(str(outcome))
        else:
            plan.add(outcome)
    _plan_builds(view, plan)
    log.debug("%s: %d resolutions, %d versions", env, len(plan.resolutions), len(plan.pins()))
    return plan


def _search_wheels_only(
    view: EnvironmentView, variants: Sequence[Task]
) -> list[Resolution | ResolutionFailure]:
    """The wheels-only resolutions, side by side; each outcome in the order asked.

    A wheels-only search backtracks over older versions, and waits for each one's
    metadata in turn: one after the other, an environment's searches kept its
    planning going a second and a half after everything else was resolved (50 ms
    from the index). Their outcomes are kept in order, so the plan is the same.
    """

    def search(variant: Task) -> Resolution | ResolutionFailure:
        try:
            return resolve(view, variant, max_rounds=WHEELS_ONLY_ROUNDS)
        except ResolutionFailure as failure:
            return failure

    if len(variants) < 2:
        return [search(variant) for variant in variants]
    workers = min(len(variants), WHEELS_ONLY_SEARCHES)
    searches = ThreadPoolExecutor(workers, thread_name_prefix="morgan-wheels-only")
    try:
        return list(searches.map(search, variants))
    finally:  # after an error (an interrupted run), the searches not yet begun never are
        searches.shutdown(wait=True, cancel_futures=True)


def _plan_builds(view: EnvironmentView, plan: EnvironmentPlan) -> None:
    """Resolve the build requirements of every sdist mirrored for the environment.

    Each set of build requirements is resolved once, as pip's isolated build
    environment would (on its own, without the outer requirements); sdists the
    result brings in are followed in turn.
    """
    env = view.environment
    done: dict[tuple[str, ...], Resolution | ResolutionFailure] = {}
    seen: set[tuple[str, str]] = set()
    queue = list(plan.pins().values())
    _prefetch_sdists(view, queue)
    while queue:
        pin = queue.pop(0)
        if (pin.name, str(pin.version)) in seen or not pin.sdists:
            continue
        seen.add((pin.name, str(pin.version)))
        sdist = pin.sdists[0]
        filename = sdist.file.filename
        try:
            dependencies = view.source.dependencies(pin.name, sdist)
            build = [
                ProjectRequirement.from_requirement(r)
                for r in dependencies.build_requires
                if r.marker is None or env.evaluate_marker(r.marker, source=filename)
            ]
        except (MorganError, OSError) as error:
            message = f"{filename}: {describe_failure(error)}"
            (plan.errors if not pin.wheels else plan.warnings).append(message)
            continue
        if not build:
            continue
        key = tuple(sorted(str(r) for r in build))
        outcome = done.get(key)
        if outcome is None:
            task = Task(f"building {filename}", tuple(build), stated_by="its build requirements")
            try:
                outcome = resolve(view, task)
            except ResolutionFailure as failed:
                outcome = failed
            done[key] = outcome
        if isinstance(outcome, ResolutionFailure):
            message = str(
                ResolutionFailure(outcome.environment, f"building {filename}", outcome.causes)
            )
            if pin.wheels:
                message += " (clients there install its wheel, so none needs to build it)"
                plan.warnings.append(message)
            else:
                plan.errors.append(message)
            continue
        plan.add(outcome, proven=False)
        plan.builds.append((f"{pin.name}/{filename}", outcome))
        _prefetch_sdists(view, outcome.pins.values())
        queue.extend(outcome.pins.values())


def _prefetch_sdists(view: EnvironmentView, pins: Iterable[Candidate]) -> None:
    """Start reading every sdist's build requirements at once: they come only from the
    archive, so each costs a download, and one after the other they would add up."""
    for pin in pins:
        if pin.sdists:
            view.source.prefetch_dependencies(pin.name, pin.sdists[0])


def prove(view: EnvironmentView, plan: EnvironmentPlan) -> list[str]:
    """Show, from the tree alone, that each of the plan's tasks installs; what fails, as errors.

    A task is proven when the tree holds a solution for it: the plan's own pins,
    each with a file the environment installs, whose dependencies (read from the
    tree) the pins satisfy. A backtracking resolver such as pip's finds a solution
    wherever one exists, so that is proof enough, and it costs no search. If the
    plan's pins do not hold, the task is resolved again against the tree, which
    either finds another solution or says what is missing.
    """
    errors = []
    for resolution in plan.to_prove:
        if holds(view, resolution):
            continue
        try:
            resolve(view, resolution.task)
        except ResolutionFailure as failure:
            errors.append(f"the mirror does not install what it should: {failure}")
    return errors


def holds(view: EnvironmentView, resolution: Resolution) -> bool:
    """Whether the resolution's pins are a solution of its task in the view's index."""
    task = resolution.task
    pins: dict[str, Candidate] = {}
    for name, chosen in resolution.pins.items():
        found = view.exactly(name, chosen.version, wheels_only=task.wheels_only)
        if found is None:
            return False
        pins[name] = found
    queue = list(task.requirements)
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement = queue.pop()
        pin = pins.get(requirement.name)
        if pin is None or not requirement.admits(pin.version):
            return False
        key = (requirement.name, requirement.extras)
        if key in seen:
            continue
        seen.add(key)
        asked = Candidate(pin.name, pin.version, requirement.extras, pin.files)
        if not view.readable(asked):
            return False
        queue.extend(view.requirements(asked))
    return True
