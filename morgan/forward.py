"""resolvelib's rounds, run forward only: the same answer without its per-round bookkeeping.

Most resolutions never backtrack. Each round pins the most preferred unsatisfied
project to its first candidate whose dependencies conflict with nothing; a pin that
a later requirement refuses is simply pinned again in a later round. resolvelib
does exactly that too, but every round it checks every criterion against its pin
and copies its whole state, so a resolution of n projects costs n² checks: over a
mirror's hundreds of resolutions of hundreds of projects, that was a fifth of a cold
run's time.

This module runs the same rounds through the same provider (same candidates, same
order, same preference, same removal of what a refused pin had asked for), keeping
the unsatisfied set up to date as pins and criteria change. At the first round where
no candidate of the chosen project fits, resolvelib would backjump: ``resolve_forward``
returns None there, and the caller runs resolvelib from the start. Where it returns
pins, they are resolvelib's (``tests/test_forward.py`` compares the two on random
graphs).

The provider's ``get_preference`` must depend only on the identifier's information
and the backtrack causes (there are none going forward), so each criterion's
preference is computed once per change; ``narrow_requirement_selection`` must be
resolvelib's default (all identifiers).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from resolvelib.structs import RequirementInformation, build_iter_view

from morgan.provider import Candidate, MirrorProvider, ProjectRequirement

if TYPE_CHECKING:  # at run time resolvelib's is a plain namedtuple
    Information = RequirementInformation[ProjectRequirement, Candidate]


class _Criterion:
    """What is known of one identifier: who asks what of it, and its candidates."""

    __slots__ = ("candidates", "information")

    def __init__(self, information: list[Information], candidates: Iterable[Candidate]) -> None:
        self.information = information
        self.candidates = candidates


class _Column(Mapping[str, Iterator[Any]]):
    """One field of every criterion, as resolvelib hands them to a provider."""

    def __init__(self, criteria: Mapping[str, _Criterion], field: str) -> None:
        self._criteria = criteria
        self._field = field

    def __getitem__(self, key: str) -> Iterator[Any]:
        return iter(getattr(self._criteria[key], self._field))

    def __iter__(self) -> Iterator[str]:
        return iter(self._criteria)

    def __len__(self) -> int:
        return len(self._criteria)


class _Forward:
    def __init__(self, provider: MirrorProvider) -> None:
        self.provider = provider
        self.criteria: dict[str, _Criterion] = {}
        self.mapping: dict[str, Candidate] = {}
        self.unsatisfied: set[str] = set()
        self.preferences: dict[str, Any] = {}
        #: Identifiers whose criteria hold information given by a pin of the key.
        self.children: dict[str, set[str]] = {}

    def add(
        self,
        criteria: dict[str, _Criterion],
        requirement: ProjectRequirement,
        parent: Candidate | None,
    ) -> bool:
        """resolvelib's ``_add_to_criteria`` into ``criteria`` (an overlay of the state's);
        False where it would raise RequirementsConflicted."""
        identifier = self.provider.identify(requirement)
        known = criteria.get(identifier) or self.criteria.get(identifier)
        information = list(known.information) if known else []
        asked = [info.requirement for info in information]
        asked.append(requirement)
        matches = self.provider.find_matches(
            identifier=identifier,
            requirements={identifier: iter(asked)},
            incompatibilities={identifier: iter(())},
        )
        information.append(RequirementInformation(requirement, parent))
        candidates = build_iter_view(matches)  # produced lazily and once, as in resolvelib
        if not candidates:
            return False
        criteria[identifier] = _Criterion(information, candidates)
        return True

    def satisfied(self, identifier: str) -> bool:
        pin = self.mapping.get(identifier)
        if pin is None:
            return False
        return all(
            self.provider.is_satisfied_by(info.requirement, pin)
            for info in self.criteria[identifier].information
        )

    def preference(self, identifier: str) -> Any:
        known = self.preferences.get(identifier)
        if known is None:
            known = self.preferences[identifier] = self.provider.get_preference(
                identifier=identifier,
                resolutions=self.mapping,
                candidates=_Column(self.criteria, "candidates"),
                information=_Column(self.criteria, "information"),
                backtrack_causes=[],
            )
        return known

    def pin(self, name: str) -> bool:
        """One round's pin of ``name``; False where resolvelib would have to backjump."""
        for candidate in self.criteria[name].candidates:
            changed: dict[str, _Criterion] = {}
            dependencies = self.provider.get_dependencies(candidate)
            if all(self.add(changed, need, candidate) for need in dependencies):
                self._commit(name, candidate, changed)
                return True
        return False

    def _commit(self, name: str, candidate: Candidate, changed: dict[str, _Criterion]) -> None:
        was_satisfied = {key for key in changed if key in self.criteria} - self.unsatisfied
        self.criteria.update(changed)
        self.children.setdefault(name, set()).update(changed)
        self.mapping.pop(name, None)
        self.mapping[name] = candidate
        touched = {name, *changed}
        # A pin that a new requirement refuses no longer speaks for its dependencies:
        # what it asked is dropped everywhere (it is pinned again in a later round).
        refused = {key for key in was_satisfied if not self.satisfied(key)}
        if refused:
            for parent in refused:
                for child in self.children.get(parent, ()):
                    criterion = self.criteria[child]
                    kept = [
                        info
                        for info in criterion.information
                        if info.parent is None or info.parent.identifier not in refused
                    ]
                    if len(kept) != len(criterion.information):
                        self.criteria[child] = _Criterion(kept, criterion.candidates)
                        touched.add(child)
        for key in touched:
            self.preferences.pop(key, None)
            if self.satisfied(key):
                self.unsatisfied.discard(key)
            else:
                self.unsatisfied.add(key)

    def result(self) -> dict[str, Candidate]:
        information = {key: criterion.information for key, criterion in self.criteria.items()}
        return reachable_pins(self.mapping, information)


def reachable_pins(
    mapping: Mapping[str, Candidate], information: Mapping[str, Iterable[Information]]
) -> dict[str, Candidate]:
    """The pins with a route from the requirements, through pins' own dependencies.

    What resolvelib's ``_build_result`` keeps, found without its recursion, which
    never ends on a cycle of pins that nothing else asks for any more.
    """
    children: dict[str, list[str]] = {}
    connected = set()
    for key, infos in information.items():
        for info in infos:
            if info.parent is None:
                connected.add(key)
            elif mapping.get(info.parent.identifier) is info.parent:
                children.setdefault(info.parent.identifier, []).append(key)
    queue = list(connected)
    while queue:
        for child in children.get(queue.pop(), ()):
            if child not in connected:
                connected.add(child)
                queue.append(child)
    return {key: pin for key, pin in mapping.items() if key in connected}


def resolve_forward(
    provider: MirrorProvider,
    requirements: Iterable[ProjectRequirement],
    *,
    max_rounds: int,
) -> dict[str, Candidate] | None:
    """resolvelib's ``result.mapping`` for the requirements, if reached without backjumping.

    None where resolvelib would backjump, fail, or run out of rounds: the caller runs it.
    """
    state = _Forward(provider)
    for requirement in requirements:
        if not state.add(state.criteria, requirement, None):
            return None
    state.unsatisfied = set(state.criteria)
    for _ in range(max_rounds):
        if not state.unsatisfied:
            return state.result()
        if len(state.unsatisfied) == 1:
            name = next(iter(state.unsatisfied))
        else:
            name = min(state.unsatisfied, key=state.preference)
        if not state.pin(name):
            return None
    return None
