"""Which versions and files of a project one environment's installer can take.

The rules follow pip's: PEP 440 versions, yanked files only for an exact ``==``
pin (PEP 592), pre-releases only when asked for or when nothing else fits, wheels
ranked by the environment's tag priority. Which version wins is the resolver's
business (``morgan.provider``); of a chosen version the best wheel and the sdist
are mirrored, so a client can always build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.environments import Environment
from morgan.models import ProjectPage, ReleaseFile

DEFAULT_PACKAGE_TYPE_REGEX = r"(whl|zip|tar\.gz)"


@dataclass(frozen=True)
class SelectionOptions:
    """Morgan's switches that widen what is mirrored."""

    all_versions: bool = False
    all_wheels: bool = False
    package_type_regex: str = DEFAULT_PACKAGE_TYPE_REGEX


def release_files(page: ProjectPage, package_type_regex: str) -> list[ReleaseFile]:
    """The page's files that are wheels or sdists of this project, newest first."""
    pattern = re.compile(rf"\.{package_type_regex}$")
    found = []
    for file in page.files:
        if not pattern.search(file.filename):
            continue
        release_file = ReleaseFile.from_file(file, page.name)
        if release_file is not None:
            found.append(release_file)
    found.sort(key=lambda c: c.version, reverse=True)
    return found


def is_exact_pin(specifier: SpecifierSet, version: Version) -> bool:
    """Whether the specifier pins exactly this version, which un-hides yanked files (PEP 592).

    As in pip, any non-wildcard ``==`` (or ``===``) clause of the set counts.
    """
    for spec in specifier:
        if spec.operator == "===" and spec.version == str(version):
            return True
        if spec.operator == "==" and not spec.version.endswith(".*"):
            try:
                if Version(spec.version) == version:
                    return True
            except ValueError:
                continue
    return False


@dataclass(frozen=True)
class Release:
    """One version of a project with the files one environment can install.

    ``files`` are the installable ones (Requires-Python and wheel tags fit),
    yanked or not: whether yanked files count depends on the requirement.
    """

    version: Version
    files: tuple[ReleaseFile, ...]

    def usable_files(self, specifier: SpecifierSet) -> tuple[ReleaseFile, ...]:
        """The files a client asking for ``specifier`` would consider."""
        if not self.yanked or is_exact_pin(specifier, self.version):
            return self.files
        return tuple(f for f in self.files if not f.file.is_yanked)

    @property
    def yanked(self) -> bool:
        """Whether any file is yanked (rare: then which count depends on the specifier)."""
        # By hand, not cached_property: before Python 3.12 that locks across instances.
        known: bool | None = self.__dict__.get("_yanked")
        if known is None:
            known = self.__dict__["_yanked"] = any(f.file.is_yanked for f in self.files)
        return known

    @property
    def has_wheel(self) -> bool:
        return any(f.is_wheel for f in self.files)


def releases(
    found: Sequence[ReleaseFile], environment: Environment, *, wheels_only: bool = False
) -> list[Release]:
    """The versions with a file this environment can install, newest first.

    With ``wheels_only`` a version counts only if it has such a wheel, as for a
    client that cannot build (``--only-binary :all:``).
    """
    by_version: dict[Version, list[ReleaseFile]] = {}
    for file in found:
        if not environment.allows_python(file.file.requires_python):
            continue
        if file.is_wheel and environment.wheel_rank(file.tags) is None:
            continue
        by_version.setdefault(file.version, []).append(file)
    return [
        Release(version, tuple(files))
        for version, files in sorted(by_version.items(), reverse=True)
        if not wheels_only or any(f.is_wheel for f in files)
    ]


def allowed_releases(found: Sequence[Release], specifier: SpecifierSet) -> list[Release]:
    """The releases a requirement admits, newest first, with pip's pre-release rule.

    Pre-releases count only when the specifier names one or when nothing else
    fits; a release whose files are all yanked counts only for an exact pin.
    """
    usable = {r.version: r for r in found if r.usable_files(specifier)}
    admitted = set(specifier.filter(usable))
    return [r for r in found if r.version in admitted]


def ordered_files(
    files: Iterable[ReleaseFile], environment: Environment
) -> tuple[ReleaseFile, ...]:
    """A version's files in the order an installer there prefers them: wheels by the
    environment's tag priority, then sdists (``.tar.gz`` first)."""
    wheels = sorted(
        (f for f in files if f.is_wheel),
        key=lambda f: (environment.wheel_rank(f.tags), f.file.filename),
    )
    sdists = sorted(
        (f for f in files if not f.is_wheel),
        key=lambda f: (not f.file.filename.endswith(".tar.gz"), f.file.filename),
    )
    return (*wheels, *sdists)


def files_to_mirror(ordered: Sequence[ReleaseFile], options: SelectionOptions) -> list[ReleaseFile]:
    """Of a chosen version's files (in ``ordered_files`` order), those to put in the tree:
    the best wheel (every wheel with ``-W``) and one sdist, so a client can always build."""
    wheels = [f for f in ordered if f.is_wheel]
    sdists = [f for f in ordered if not f.is_wheel]
    return [*(wheels if options.all_wheels else wheels[:1]), *sdists[:1]]


def why_nothing(
    found: Sequence[ReleaseFile],
    requirement: Requirement,
    environment: Environment,
    *,
    set_aside: int = 0,
) -> str:
    """Why no file of ``found`` can satisfy ``requirement`` in the environment.

    ``set_aside`` counts the project's wheels that no environment of the mirror
    installs, which ``found`` leaves out.
    """
    if not found:
        if set_aside:
            return (
                f"no file installs here: no sdist, and its {set_aside} wheels install in no "
                "environment of the mirror"
            )
        return "the index lists no usable wheel or sdist"
    matching = [c for c in found if requirement.specifier.contains(c.version, prereleases=True)]
    if not matching:
        newest = max(c.version for c in found)
        said = f"no version matches {requirement.specifier or 'any'} (newest is {newest})"
        if set_aside:
            said += f" of the files an environment installs ({set_aside} wheels install in none)"
        return said
    if all(c.file.is_yanked for c in matching):
        return "every matching file is yanked (pin it with == to mirror it anyway)"
    python_ok = [c for c in matching if environment.allows_python(c.file.requires_python)]
    if not python_ok:
        return f"no matching version supports Python {environment.python_version}"
    return "no matching file installs here (no sdist, and no wheel with a supported tag)"
