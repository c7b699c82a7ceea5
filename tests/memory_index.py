"""A frozen in-memory index for resolution tests: nothing touches a socket.

Like resolvelib's own tests, a ``MemoryIndex`` answers the two questions a
resolution asks: a project's files, and a file's dependencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from morgan.errors import ProjectNotFoundError
from morgan.metadata import Dependencies
from morgan.models import DistributionFile, ReleaseFile


@dataclass
class MemoryIndex:
    """Projects as {name: {filename: (requires, extras, build_requires)}}, plus file facts."""

    projects: dict[str, dict[str, Dependencies]] = field(default_factory=dict)
    facts: dict[str, dict[str, object]] = field(default_factory=dict)
    #: Files whose dependencies fail to read, and how.
    broken: dict[str, Exception] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def add(
        self,
        filename: str,
        requires: Sequence[str] = (),
        *,
        extras: Sequence[str] = (),
        build: Sequence[str] = (),
        **facts: object,
    ) -> MemoryIndex:
        name = canonicalize_name(filename.split("-", maxsplit=1)[0])
        self.projects.setdefault(name, {})[filename] = Dependencies(
            requires=tuple(Requirement(r) for r in requires),
            build_requires=tuple(Requirement(r) for r in build),
            extras=frozenset(canonicalize_name(e) for e in extras),
        )
        self.facts[filename] = facts
        return self

    # -- the ProjectSource protocol ------------------------------------------------------

    def files(self, name: NormalizedName) -> Sequence[ReleaseFile]:
        self.asked.append(name)
        if name not in self.projects:
            raise ProjectNotFoundError(name, f"memory:///{name}/")
        found = []
        for filename in self.projects[name]:
            file = DistributionFile(
                filename=filename,
                url=f"memory:///{name}/{filename}",
                hashes={"sha256": "0" * 64},
                **self.facts[filename],  # type: ignore[arg-type]
            )
            release_file = ReleaseFile.from_file(file, name)
            assert release_file is not None, filename
            found.append(release_file)
        return sorted(found, key=lambda f: f.version, reverse=True)

    def dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        if file.file.filename in self.broken:
            raise self.broken[file.file.filename]
        return self.projects[name][file.file.filename]

    def prefetch(self, name: NormalizedName, then: object = None) -> None:
        pass

    def prefetch_dependencies(
        self,
        name: NormalizedName,
        file: ReleaseFile,
        then: object = None,
        *,
        unlikely: bool = False,
    ) -> None:
        pass
