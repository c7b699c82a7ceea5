"""resolvelib's rounds run forward only must give resolvelib's own answer, or none.

``resolve_forward`` stands in for resolvelib on every resolution that never needs to
backjump, so it is compared with resolvelib itself: on hand-made graphs that need a
pin to be replaced, and on a few thousand random graphs (seeded, the same on every
run), many of which need real backtracking or have no solution at all. Where it
declines, ``resolve`` must still give resolvelib's answer, also where resolvelib's
own result builder never returns (a cycle of pins nothing asks for any more) or its
backtracking asks for candidates of a project no requirement names any more.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from memory_index import MemoryIndex
from packaging.requirements import Requirement
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver
from resolvelib.resolvers import Resolution
from support import ENVIRONMENTS

from morgan.environments import Environment
from morgan.errors import DistributionError
from morgan.forward import resolve_forward
from morgan.provider import EnvironmentView, Findings, MirrorProvider, ProjectRequirement
from morgan.resolve import ResolutionFailure, Task, resolve

LINUX = Environment.from_ini_section("linux", ENVIRONMENTS["linux312"])
ROUNDS = 300


class _Rounds(BaseReporter):  # type: ignore[type-arg]
    """How resolvelib got there: pins made (more than the result holds: a pin was
    replaced or undone) and candidates rejected."""

    def __init__(self) -> None:
        self.pinned = 0
        self.rejected = 0
        self.cycle = False

    def pinning(self, candidate: Any) -> None:
        self.pinned += 1

    def rejecting_candidate(self, criterion: Any, candidate: Any) -> None:
        self.rejected += 1


def provider(index: MemoryIndex) -> MirrorProvider:
    return MirrorProvider(EnvironmentView(index, LINUX, Findings()))


def requirements(*lines: str) -> list[ProjectRequirement]:
    return [ProjectRequirement.from_requirement(Requirement(line)) for line in lines]


def as_text(mapping: Any) -> dict[str, str]:
    return {key: str(candidate.version) for key, candidate in mapping.items()}


def by_resolvelib(index: MemoryIndex, lines: list[str]) -> tuple[dict[str, str] | None, _Rounds]:
    reporter = _Rounds()
    resolver: Resolver = Resolver(provider(index), reporter)  # type: ignore[type-arg]
    try:
        result = resolver.resolve(requirements(*lines), max_rounds=ROUNDS)
    except (ResolutionImpossible, ResolutionTooDeep):
        return None, reporter
    except RecursionError:  # its result builder on a cycle of pins nothing asks for
        reporter = _Rounds()
        resolution: Resolution = Resolution(provider(index), reporter)  # type: ignore[type-arg]
        state = resolution.resolve(requirements(*lines), max_rounds=ROUNDS)
        reporter.cycle = True
        return as_text(reached(state)), reporter
    return as_text(result.mapping), reporter


def reached(state: Any) -> dict[str, Any]:
    """The pins resolvelib's result would hold, found the slow and simple way."""
    connected: set[str | None] = {None}
    grown = True
    while grown:
        grown = False
        for key, criterion in state.criteria.items():
            if key in connected:
                continue
            for info in criterion.information:
                parent = None if info.parent is None else info.parent.identifier
                pinned = parent is None or state.mapping.get(parent) is info.parent
                if pinned and parent in connected:
                    connected.add(key)
                    grown = True
                    break
    return {key: pin for key, pin in state.mapping.items() if key in connected}


def forward(index: MemoryIndex, lines: list[str]) -> dict[str, str] | None:
    found = resolve_forward(provider(index), requirements(*lines), max_rounds=ROUNDS)
    return None if found is None else as_text(found)


def wheel(name: str, version: str) -> str:
    return f"{name}-{version}-py3-none-any.whl"


def test_a_pin_a_later_requirement_refuses_is_replaced_and_its_requests_dropped() -> None:
    # c is pinned to 2.0 (which asks b>=2) before d says c<2: resolvelib pins c again,
    # forgets what c 2.0 asked of b, and pins b again for c 1.0. No backjumping.
    index = (
        MemoryIndex()
        .add(wheel("a", "1.0"), ["c", "d"])
        .add(wheel("b", "1.0"))
        .add(wheel("b", "2.0"))
        .add(wheel("c", "1.0"), ["b<2"])
        .add(wheel("c", "2.0"), ["b>=2"])
        .add(wheel("d", "1.0"), ["c<2"])
    )
    expected = {"a": "1.0", "b": "1.0", "c": "1.0", "d": "1.0"}
    found, rounds = by_resolvelib(index, ["a"])
    assert found == expected
    assert rounds.pinned > len(expected)  # resolvelib did replace pins
    assert forward(index, ["a"]) == expected


def test_a_candidate_rejected_within_a_round_is_passed_over() -> None:
    # flask 3.0 needs werkzeug>=3, which the requirements refuse: its round takes flask 1.0.
    index = (
        MemoryIndex()
        .add(wheel("flask", "1.0"), ["werkzeug<2"])
        .add(wheel("flask", "3.0"), ["werkzeug>=3"])
        .add(wheel("werkzeug", "1.0"))
        .add(wheel("werkzeug", "3.0"))
    )
    expected = {"flask": "1.0", "werkzeug": "1.0"}
    assert by_resolvelib(index, ["flask", "werkzeug<2"])[0] == expected
    assert forward(index, ["flask", "werkzeug<2"]) == expected


def test_a_round_that_needs_to_backjump_is_left_to_resolvelib() -> None:
    # a 2.0 is pinned first; its dependency x then has no version that y 1.0 allows:
    # only undoing a's pin solves it.
    index = (
        MemoryIndex()
        .add(wheel("a", "1.0"), ["x<2"])
        .add(wheel("a", "2.0"), ["x>=2"])
        .add(wheel("x", "1.0"))
        .add(wheel("x", "2.0"))
        .add(wheel("y", "1.0"), ["x<2"])
    )
    found, rounds = by_resolvelib(index, ["a", "y"])
    assert found == {"a": "1.0", "x": "1.0", "y": "1.0"}
    assert rounds.rejected
    assert forward(index, ["a", "y"]) is None


def test_no_solution_is_left_to_resolvelib_to_explain() -> None:
    index = MemoryIndex().add(wheel("a", "1.0"), ["b>=2"]).add(wheel("b", "1.0"))
    assert by_resolvelib(index, ["a"])[0] is None
    assert forward(index, ["a"]) is None


PROJECTS = ["a", "b", "c", "d", "e", "f", "g"]
SPECIFIERS = ["", "", ">=2", "<3", "==2.0", ">=3", "<2", "!=3.0", ">=1,<4", "==1.0", ">1"]


def random_graph(rng: random.Random) -> tuple[MemoryIndex, list[str]]:
    """A small index where conflicts are likely: few versions, narrow ranges, extras,
    an unreadable distribution now and then, cycles allowed."""
    index = MemoryIndex()
    for project in PROJECTS:
        for version in rng.sample(["1.0", "2.0", "3.0", "4.0"], rng.randint(1, 4)):
            needs = []
            for other in rng.sample(PROJECTS, rng.randint(0, 3)):
                if other == project:
                    continue
                extra = "[x]" if rng.random() < 0.1 else ""
                needs.append(f"{other}{extra}{rng.choice(SPECIFIERS)}")
            if rng.random() < 0.3:
                needs.append(f"{rng.choice(PROJECTS)}{rng.choice(SPECIFIERS)}; extra == 'x'")
            filename = wheel(project, version)
            index.add(filename, needs, extras=["x"])
            if rng.random() < 0.05:
                index.broken[filename] = DistributionError(filename, "unreadable metadata")
    lines = [
        f"{project}{rng.choice(SPECIFIERS)}" for project in rng.sample(PROJECTS, rng.randint(1, 3))
    ]
    return index, lines


def test_forward_gives_resolvelibs_answer_on_random_graphs() -> None:
    rng = random.Random(20261129)
    answered = replaced = rejected = declined = impossible = cycles = 0
    for _ in range(3000):
        index, lines = random_graph(rng)
        expected, rounds = by_resolvelib(index, lines)
        found = forward(index, lines)
        if found is None:
            declined += expected is not None
            impossible += expected is None
            cycles += rounds.cycle
            # morgan's resolve() then runs resolvelib itself, and must give its answer.
            view = EnvironmentView(index, LINUX, Findings())
            task = Task("the requirements together", tuple(requirements(*lines)))
            if expected is None:
                with pytest.raises(ResolutionFailure):
                    resolve(view, task)
                continue
            pins = {name: str(pin.version) for name, pin in resolve(view, task).pins.items()}
            assert pins == {key: version for key, version in expected.items() if "[" not in key}
            continue
        assert found == expected, (lines, index.projects)
        answered += 1
        replaced += rounds.pinned > len(expected)
        rejected += rounds.rejected > 0
        cycles += rounds.cycle
    # The graphs must be able to fail, and forward must cover more than the easy cases.
    assert answered > 900
    assert replaced > 50  # pins replaced without backjumping
    assert rejected > 150  # candidates passed over within a round
    assert declined > 100  # solved by resolvelib only after backjumping
    assert impossible > 500
    assert cycles  # where resolvelib's own result builder never returns (morgan's does)
