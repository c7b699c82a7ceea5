"""Choosing, for one requirement and one environment, the files a client there would install.

The rules follow pip's: PEP 440 versions, yanked files only for an exact ``==``
pin (PEP 592), pre-releases only when asked for or when nothing else fits, and
of the newest fitting version the wheel whose tags rank best in the environment.
The sdist of that version is mirrored too, so a client can always build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.environments import Environment
from morgan.models import Candidate, ProjectPage

DEFAULT_PACKAGE_TYPE_REGEX = r"(whl|zip|tar\.gz)"


@dataclass(frozen=True)
class SelectionOptions:
    """Morgan's switches that widen what is mirrored."""

    all_versions: bool = False
    all_wheels: bool = False
    package_type_regex: str = DEFAULT_PACKAGE_TYPE_REGEX


@dataclass(frozen=True)
class Choice:
    """One version chosen for one environment, and the files it needs there."""

    environment: Environment
    version: Version
    files: tuple[Candidate, ...]
    #: The file whose metadata says what this version depends on in the environment:
    #: the wheel a client there installs, else the sdist it builds.
    metadata_source: Candidate


def candidates(page: ProjectPage, package_type_regex: str) -> list[Candidate]:
    """The page's files that are wheels or sdists of this project, newest first."""
    pattern = re.compile(rf"\.{package_type_regex}$")
    found = []
    for file in page.files:
        if not pattern.search(file.filename):
            continue
        candidate = Candidate.from_file(file, page.name)
        if candidate is not None:
            found.append(candidate)
    found.sort(key=lambda c: c.version, reverse=True)
    return found


def is_exact_pin(specifier: SpecifierSet, version: Version) -> bool:
    """Whether the specifier pins exactly this version, which un-hides yanked files."""
    specs = list(specifier)
    return len(specs) == 1 and (
        (
            specs[0].operator == "=="
            and not specs[0].version.endswith(".*")
            and Version(specs[0].version) == version
        )
        or (specs[0].operator == "===" and specs[0].version == str(version))
    )


def choose(
    found: Sequence[Candidate],
    requirement: Requirement,
    environment: Environment,
    options: SelectionOptions = SelectionOptions(),
    *,
    top_level: bool = False,
) -> list[Choice] | str:
    """The versions to mirror for one environment, or the reason there are none."""
    installable = [
        c
        for c in found
        if environment.allows_python(c.file.requires_python)
        and (not c.is_wheel or environment.wheel_rank(c.tags) is not None)
        and (not c.file.is_yanked or is_exact_pin(requirement.specifier, c.version))
    ]
    versions = sorted({c.version for c in installable})
    allowed = list(requirement.specifier.filter(versions))
    if not allowed:
        return _why_nothing(found, requirement, environment)
    chosen = sorted(allowed, reverse=True)
    if not (options.all_versions and top_level):
        chosen = chosen[:1]
    choices = []
    for version in chosen:
        files = [c for c in installable if c.version == version]
        choices.append(_choice_for_version(files, environment, version, options))
    return choices


def _choice_for_version(
    files: Iterable[Candidate],
    environment: Environment,
    version: Version,
    options: SelectionOptions,
) -> Choice:
    sdists = sorted(
        (c for c in files if not c.is_wheel),
        key=lambda c: (not c.file.filename.endswith(".tar.gz"), c.file.filename),
    )
    wheels = sorted(
        (c for c in files if c.is_wheel),
        key=lambda c: (environment.wheel_rank(c.tags), c.file.filename),
    )
    picked: list[Candidate] = []
    if options.all_wheels:
        picked.extend(wheels)
    elif wheels:
        picked.append(wheels[0])
    picked.extend(sdists[:1])
    source = wheels[0] if wheels else sdists[0]
    return Choice(
        environment=environment, version=version, files=tuple(picked), metadata_source=source
    )


def _why_nothing(
    found: Sequence[Candidate], requirement: Requirement, environment: Environment
) -> str:
    if not found:
        return "the index lists no usable wheel or sdist"
    matching = [c for c in found if requirement.specifier.contains(c.version, prereleases=True)]
    if not matching:
        newest = max(c.version for c in found)
        return f"no version matches {requirement.specifier or 'any'} (newest is {newest})"
    if all(c.file.is_yanked for c in matching):
        return "every matching file is yanked (pin it with == to mirror it anyway)"
    python_ok = [c for c in matching if environment.allows_python(c.file.requires_python)]
    if not python_ok:
        return f"no matching version supports Python {environment.python_version}"
    return "no matching file installs here (no sdist, and no wheel with a supported tag)"


def describe(choice: Choice) -> str:
    """One line saying what was picked, for the decision log."""
    names = ", ".join(c.file.filename for c in choice.files)
    return f"{choice.version} for {choice.environment.name}: {names}"
