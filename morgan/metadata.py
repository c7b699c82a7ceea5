"""What a distribution depends on, read from its core metadata or from its archive.

Archives are read in memory, member by member, and only the members that carry
metadata; every read is bounded, so a crafted archive cannot exhaust memory, and
nothing is ever extracted to disk.
"""

from __future__ import annotations

import logging
import re
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from morgan.errors import DistributionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older interpreters only
    import tomli as tomllib

log = logging.getLogger(__name__)

#: The largest metadata member read (METADATA, PKG-INFO, requires.txt, pyproject.toml).
MAX_MEMBER_BYTES = 8 * 1024 * 1024
#: An archive with more members than this is refused (a tar bomb of tiny entries).
MAX_MEMBERS = 100_000
#: How many requirements one distribution may declare before it is called absurd.
MAX_REQUIREMENTS = 10_000

#: What pip assumes an sdist without ``[build-system]`` needs to build (PEP 518).
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
_SETUPTOOLS_BACKENDS = (None, "setuptools.build_meta:__legacy__", "setuptools.build_meta")


@dataclass(frozen=True)
class Dependencies:
    """The requirements of one distribution: to run it, and to build it from source."""

    requires: tuple[Requirement, ...] = ()
    build_requires: tuple[Requirement, ...] = ()
    extras: frozenset[NormalizedName] = field(default_factory=frozenset)
    requires_python: str | None = None


def _requirements(lines: Iterable[str], source: str) -> Iterator[Requirement]:
    for count, line in enumerate(lines):
        if count >= MAX_REQUIREMENTS:
            raise DistributionError(source, f"declares more than {MAX_REQUIREMENTS} requirements")
        try:
            yield Requirement(line)
        except InvalidRequirement as error:
            log.warning("%s: ignoring invalid requirement %r (%s)", source, line, error)


def parse_core_metadata(data: bytes, source: str) -> Dependencies:
    """Dependencies from a METADATA / PKG-INFO file (any metadata version)."""
    raw, _ = parse_email(data)
    return Dependencies(
        requires=tuple(_requirements(raw.get("requires_dist", []), source)),
        extras=frozenset(canonicalize_name(e) for e in raw.get("provides_extra", [])),
        requires_python=raw.get("requires_python"),
    )


def _with_extra_and_marker(requirement: Requirement, extra: str, marker: str) -> Requirement:
    """The requirement, further limited to an extra and a marker (requires.txt sections)."""
    conditions = []
    if requirement.marker is not None:
        conditions.append(f"({requirement.marker})")
    if marker:
        conditions.append(f"({marker})")
    if extra:
        conditions.append(f'extra == "{canonicalize_name(extra)}"')
    if not conditions:
        return requirement
    base = requirement.name
    if requirement.extras:
        base += "[" + ",".join(sorted(requirement.extras)) + "]"
    return Requirement(f"{base}{requirement.specifier}; {' and '.join(conditions)}")


def parse_requires_txt(text: str, source: str) -> tuple[tuple[Requirement, ...], frozenset[str]]:
    """Requirements and extras of setuptools' ``requires.txt`` (``[extra:marker]`` sections)."""
    requirements: list[Requirement] = []
    extras: set[str] = set()
    extra, marker = "", ""
    for number, raw_line in enumerate(text.splitlines()):
        if number >= MAX_REQUIREMENTS:
            raise DistributionError(source, f"requires.txt has more than {MAX_REQUIREMENTS} lines")
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = line[1:-1].partition(":")
            extra, marker = extra.strip(), marker.strip()
            if extra:
                extras.add(canonicalize_name(extra))
            continue
        for requirement in _requirements([line], source):
            try:
                requirements.append(_with_extra_and_marker(requirement, extra, marker))
            except InvalidRequirement as error:
                log.warning("%s: ignoring section [%s:%s] (%s)", source, extra, marker, error)
    return tuple(requirements), frozenset(extras)


def parse_pyproject(
    data: bytes, source: str
) -> tuple[tuple[Requirement, ...], Dependencies | None]:
    """Build requirements and, when static, the ``[project]`` dependencies of a pyproject.toml.

    The first item is None-free: an absent ``[build-system]`` gives pip's legacy
    setuptools default.
    """
    try:
        document: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        log.warning("%s: ignoring unreadable pyproject.toml (%s)", source, error)
        return tuple(Requirement(r) for r in LEGACY_BUILD_REQUIRES), None

    build_system = document.get("build-system")
    build_lines: list[str] = list(LEGACY_BUILD_REQUIRES)
    if isinstance(build_system, dict) and isinstance(build_system.get("requires"), list):
        build_lines = [r for r in build_system["requires"] if isinstance(r, str)]
        backend = build_system.get("build-backend")
        # setuptools asks for "wheel" through get_requires_for_build_wheel until 70.1,
        # and the legacy backend always does: mirror it so such sdists build offline.
        names = {canonicalize_name(Requirement(r).name) for r in build_lines if _valid(r)}
        if backend in _SETUPTOOLS_BACKENDS and "wheel" not in names:
            build_lines.append("wheel")
    build = tuple(_requirements(build_lines, source))

    project = document.get("project")
    if not isinstance(project, dict):
        return build, None
    dependencies = project.get("dependencies")
    lines = (
        [d for d in dependencies if isinstance(d, str)] if isinstance(dependencies, list) else []
    )
    requires = list(_requirements(lines, source))
    extras: set[NormalizedName] = set()
    optional = project.get("optional-dependencies")
    if isinstance(optional, dict):
        for extra, deps in optional.items():
            extras.add(canonicalize_name(extra))
            extra_lines = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
            requires.extend(
                _with_extra_and_marker(requirement, extra, "")
                for requirement in _requirements(extra_lines, source)
            )
    requires_python = project.get("requires-python")
    return build, Dependencies(
        requires=tuple(requires),
        extras=frozenset(extras),
        requires_python=requires_python if isinstance(requires_python, str) else None,
    )


def _valid(line: str) -> bool:
    try:
        Requirement(line)
    except InvalidRequirement:
        return False
    return True


def _read_member(stream: IO[bytes], name: str, source: str) -> bytes:
    data = stream.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise DistributionError(source, f"{name} is larger than {MAX_MEMBER_BYTES} bytes")
    return data


_METADATA_MEMBER = re.compile(r"^([^/]+)\.dist-info/METADATA$")


def read_wheel_metadata(path: Path, project: str) -> bytes:
    """The exact bytes of a wheel's ``.dist-info/METADATA`` (what PEP 658 serves)."""
    source = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if len(names) > MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            found = [n for n in names if _METADATA_MEMBER.match(n)]
            if len(found) > 1:
                wanted = canonicalize_name(project)
                found = [
                    n for n in found if canonicalize_name(n.split("-", 1)[0]) == wanted
                ] or found[:1]
            if not found:
                raise DistributionError(source, "has no .dist-info/METADATA; not a valid wheel")
            with archive.open(found[0]) as stream:
                return _read_member(stream, found[0], source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as error:
        raise DistributionError(source, f"unreadable wheel ({error})") from None


def _sdist_members(path: Path, source: str) -> Iterator[tuple[str, IO[bytes]]]:
    """(name, stream) for each regular-file member, from a zip or any tar compression."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            for info in infos:
                if not info.is_dir():
                    with archive.open(info) as stream:
                        yield info.filename, stream
        return
    # Stream mode reads each member once, in order, without an index in memory.
    with tarfile.open(path, mode="r|*") as archive:
        for count, member in enumerate(archive):
            if count >= MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            if not member.isreg():
                continue
            member_stream = archive.extractfile(member)
            if member_stream is not None:
                yield member.name, member_stream
            # tarfile keeps every member seen; drop them so memory stays flat.
            archive.members = []  # type: ignore[attr-defined]


def _sdist_role(name: str) -> str | None:
    """Which metadata file an sdist member is, judged by its place in the tree."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("./"):
        normalized = normalized[2:]
    parts = normalized.split("/")
    if normalized.startswith("/") or ".." in parts or "" in parts:
        return None
    if len(parts) == 2 and parts[1] in ("PKG-INFO", "pyproject.toml"):
        return parts[1]
    if (
        3 <= len(parts) <= 4
        and parts[-2].endswith(".egg-info")
        and parts[-1]
        in (
            "requires.txt",
            "setup_requires.txt",
        )
    ):
        return parts[-1]
    return None


def read_sdist_dependencies(path: Path) -> Dependencies:
    """Run and build requirements of an sdist, from every metadata file it carries."""
    source = path.name
    found: dict[str, bytes] = {}
    try:
        for name, stream in _sdist_members(path, source):
            role = _sdist_role(name)
            if role is not None and role not in found:
                found[role] = _read_member(stream, name, source)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        if isinstance(error, DistributionError):
            raise
        raise DistributionError(source, f"unreadable sdist ({error})") from None

    requires: list[Requirement] = []
    extras: set[NormalizedName] = set()
    requires_python: str | None = None
    if "PKG-INFO" in found:
        core = parse_core_metadata(found["PKG-INFO"], f"{source}/PKG-INFO")
        requires.extend(core.requires)
        extras.update(core.extras)
        requires_python = core.requires_python
    if "requires.txt" in found:
        text = found["requires.txt"].decode("utf-8", "replace")
        reqs, txt_extras = parse_requires_txt(text, f"{source}/requires.txt")
        requires.extend(reqs)
        extras.update(canonicalize_name(e) for e in txt_extras)
    build: list[Requirement] = [Requirement(r) for r in LEGACY_BUILD_REQUIRES]
    if "pyproject.toml" in found:
        build_reqs, project = parse_pyproject(found["pyproject.toml"], f"{source}/pyproject.toml")
        build = list(build_reqs)
        if project is not None:
            requires.extend(project.requires)
            extras.update(project.extras)
            requires_python = requires_python or project.requires_python
    if "setup_requires.txt" in found:
        text = found["setup_requires.txt"].decode("utf-8", "replace")
        build.extend(parse_requires_txt(text, f"{source}/setup_requires.txt")[0])
    return Dependencies(
        requires=_unique(requires),
        build_requires=_unique(build),
        extras=frozenset(extras),
        requires_python=requires_python,
    )


def _unique(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    seen: dict[str, Requirement] = {}
    for requirement in requirements:
        seen.setdefault(str(requirement), requirement)
    return tuple(seen.values())
