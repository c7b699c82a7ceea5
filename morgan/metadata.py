"""What a distribution depends on, read from its core metadata or from its archive.

Archives are read in memory, member by member, and only the members that carry
metadata; every read is bounded, so a crafted archive cannot exhaust memory, and
nothing is ever extracted to disk.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from morgan.environments import PROBE_MARKER_ENVIRONMENT, evaluate_marker
from morgan.errors import DistributionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older interpreters only
    import tomli as tomllib

if TYPE_CHECKING:
    from typing_extensions import Self

try:
    from lzma import LZMAError
except ImportError:  # pragma: no cover - Python built without lzma

    class LZMAError(Exception):  # type: ignore[no-redef]
        """Stands in for lzma's error where there is no lzma."""


log = logging.getLogger(__name__)

#: The largest metadata member read (METADATA, PKG-INFO, requires.txt, pyproject.toml).
MAX_MEMBER_BYTES = 8 * 1024 * 1024
#: An archive with more members than this is refused (a tar bomb of tiny entries).
MAX_MEMBERS = 100_000
#: How many requirements (and how many extras) one distribution may declare.
MAX_REQUIREMENTS = 10_000
#: The longest requirement line read; real ones, URLs included, are far shorter.
MAX_REQUIREMENT_LENGTH = 8 * 1024
#: The deepest parenthesis nesting in a requirement (real markers nest two or three).
MAX_NESTING = 32
#: The largest zip central directory read (zipfile holds all of it, and more, in memory).
MAX_ZIP_DIRECTORY_BYTES = 64 * 1024 * 1024
#: The largest pax or GNU long-name header of a tar member (tarfile reads it whole).
MAX_TAR_HEADER_BYTES = 64 * 1024

#: What pip assumes an sdist without ``[build-system]`` needs to build (PEP 518).
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
_SETUPTOOLS_BACKENDS = (None, "setuptools.build_meta:__legacy__", "setuptools.build_meta")
#: A valid extra name (PEP 685), once normalized.
_EXTRA_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Dependencies:
    """The requirements of one distribution: to run it, and to build it from source."""

    requires: tuple[Requirement, ...] = ()
    build_requires: tuple[Requirement, ...] = ()
    extras: frozenset[NormalizedName] = field(default_factory=frozenset)
    requires_python: str | None = None


def _short(text: str, limit: int = 100) -> str:
    """``repr(text)``, cut to ``limit`` characters, for one-line messages."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _nesting(text: str) -> int:
    """The deepest parenthesis nesting of ``text`` (quotes ignored: an upper bound)."""
    depth = deepest = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(depth - 1, 0)
    return deepest


class UnusableRequirementError(ValueError):
    """A requirement string that cannot be used; the message is its one-line reason."""


def read_requirement(line: str) -> Requirement:
    """One PEP 508 requirement, checked so that it can be evaluated and compared.

    Every way a requirement can be unusable raises UnusableRequirementError:
    invalid syntax; a line too long or nested too deeply to parse safely, whoever
    notices it (morgan's bounds, packaging's own limit, or a RecursionError);
    versions no one can compare; a marker no environment can evaluate. Callers
    decide what the file holding it becomes, but all of them decide the same way.
    """
    if _nesting(line) > MAX_NESTING:
        raise UnusableRequirementError(f"nests parentheses deeper than {MAX_NESTING} levels")
    if len(line) > MAX_REQUIREMENT_LENGTH:
        raise UnusableRequirementError(f"longer than {MAX_REQUIREMENT_LENGTH} characters")
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        raise UnusableRequirementError(_first_line(error, "invalid")) from None
    except RecursionError:
        raise UnusableRequirementError("nested too deeply to parse") from None
    for specifier in requirement.specifier:
        try:
            specifier.contains(Version("0"), prereleases=True)
        except ValueError:  # e.g. a version with more digits than int() accepts
            raise UnusableRequirementError(
                f"its version {_short(specifier.version, 40)} cannot be compared"
            ) from None
    if requirement.marker is not None:
        try:
            evaluate_marker(requirement.marker, PROBE_MARKER_ENVIRONMENT, source="")
        except DistributionError as error:
            raise UnusableRequirementError(error.reason) from None
    return requirement


def _first_line(error: BaseException, default: str) -> str:
    text = str(error)
    return text.splitlines()[0][:200] if text else default


def parse_requirement(line: str, source: str) -> Requirement:
    """One requirement of a distribution's metadata; DistributionError if it is unusable.

    A distribution that declares a requirement nobody can read is refused whole:
    pip (24.1 and later) and uv refuse it too and move on to another version,
    so mirroring it would only give clients a file they will not install.
    """
    try:
        return read_requirement(line)
    except UnusableRequirementError as error:
        raise DistributionError(
            source, f"declares an unusable requirement {_short(line)} ({error})"
        ) from None


def _requirements(lines: Iterable[str], source: str) -> Iterator[Requirement]:
    lines = list(lines)
    if len(lines) > MAX_REQUIREMENTS:
        raise DistributionError(source, f"declares more than {MAX_REQUIREMENTS} requirements")
    for line in lines:
        yield parse_requirement(line, source)


def _extras(names: Iterable[str], source: str) -> frozenset[NormalizedName]:
    """Valid extra names, normalized; invalid ones are skipped with a warning."""
    names = list(names)
    if len(names) > MAX_REQUIREMENTS:
        raise DistributionError(source, f"declares more than {MAX_REQUIREMENTS} extras")
    extras = set()
    for name in names:
        normalized = canonicalize_name(name)
        if _EXTRA_NAME.fullmatch(normalized):
            extras.add(normalized)
        else:
            log.warning("%s: ignoring invalid extra name %s", source, _short(name))
    return frozenset(extras)


def parse_core_metadata(data: bytes, source: str) -> Dependencies:
    """Dependencies from a METADATA / PKG-INFO file (any metadata version).

    A field with bytes that are not UTF-8 is still read (packaging sets it
    aside): its requirements are as valid as their text is.
    """
    try:
        raw, unparsed = parse_email(data)
    except (ValueError, LookupError, TypeError, RecursionError) as error:
        raise DistributionError(source, f"unreadable core metadata ({error})") from None
    requires = [*raw.get("requires_dist", []), *_strings(unparsed.get("requires-dist"))]
    extras = [*raw.get("provides_extra", []), *_strings(unparsed.get("provides-extra"))]
    requires_python = raw.get("requires_python")
    return Dependencies(
        requires=tuple(_requirements(requires, source)),
        extras=_extras(extras, source),
        requires_python=requires_python if isinstance(requires_python, str) else None,
    )


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _with_extra_and_marker(
    requirement: Requirement, extra: str, marker: str, source: str
) -> Requirement:
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
    return parse_requirement(f"{base}{requirement.specifier}; {' and '.join(conditions)}", source)


def parse_requires_txt(text: str, source: str) -> tuple[tuple[Requirement, ...], frozenset[str]]:
    """Requirements and extras of setuptools' ``requires.txt`` (``[extra:marker]`` sections)."""
    requirements: list[Requirement] = []
    extras: set[str] = set()
    extra, marker, skip = "", "", False
    for number, raw_line in enumerate(text.splitlines()):
        if number >= MAX_REQUIREMENTS:
            raise DistributionError(source, f"requires.txt has more than {MAX_REQUIREMENTS} lines")
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            extra, _, marker = line[1:-1].partition(":")
            extra, marker = extra.strip(), marker.strip()
            skip = bool(extra) and not _EXTRA_NAME.fullmatch(canonicalize_name(extra))
            if skip:
                log.warning("%s: ignoring section %s (invalid extra name)", source, _short(line))
            elif extra:
                extras.add(canonicalize_name(extra))
            continue
        if not skip:
            requirement = parse_requirement(line, source)
            requirements.append(_with_extra_and_marker(requirement, extra, marker, source))
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
    except RecursionError:
        raise DistributionError(source, "pyproject.toml is nested too deeply to read") from None

    build_system = document.get("build-system")
    build_lines: list[str] = list(LEGACY_BUILD_REQUIRES)
    backend: Any = None
    if isinstance(build_system, dict) and isinstance(build_system.get("requires"), list):
        build_lines = _strings(build_system["requires"])
        backend = build_system.get("build-backend")

    project = document.get("project")
    project = project if isinstance(project, dict) else None
    dependencies = _strings(project.get("dependencies")) if project else []
    optional = project.get("optional-dependencies") if project else None
    optional = optional if isinstance(optional, dict) else {}
    extra_lines = {extra: _strings(deps) for extra, deps in optional.items()}
    total = len(build_lines) + len(dependencies) + sum(len(v) for v in extra_lines.values())
    if total > MAX_REQUIREMENTS:
        raise DistributionError(source, f"declares more than {MAX_REQUIREMENTS} requirements")

    build = list(_requirements(build_lines, source))
    # setuptools asks for "wheel" through get_requires_for_build_wheel until 70.1,
    # and the legacy backend always does: mirror it so such sdists build offline.
    if backend in _SETUPTOOLS_BACKENDS and "wheel" not in {
        canonicalize_name(r.name) for r in build
    }:
        build.append(Requirement("wheel"))
    if project is None:
        return tuple(build), None

    requires = list(_requirements(dependencies, source))
    extras = _extras(extra_lines, source)
    for extra, lines in extra_lines.items():
        if canonicalize_name(extra) not in extras:
            continue
        for requirement in _requirements(lines, source):
            requires.append(_with_extra_and_marker(requirement, extra, "", source))
    requires_python = project.get("requires-python")
    return tuple(build), Dependencies(
        requires=tuple(requires),
        extras=extras,
        requires_python=requires_python if isinstance(requires_python, str) else None,
    )


#: How much of an archive member is read at a time: one ``read(MAX_MEMBER_BYTES + 1)``
#: makes a buffered reader set aside the whole limit first, and sdists are read on
#: many threads at once.
_MEMBER_CHUNK = 64 * 1024


def _read_member(stream: IO[bytes], name: str, source: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(_MEMBER_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_MEMBER_BYTES:
            raise DistributionError(
                source, f"{_short(name)} is larger than {MAX_MEMBER_BYTES} bytes; not read"
            )
        chunks.append(chunk)


#: What reading a hostile or broken archive can raise from the standard library.
_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    OSError,  # also bz2's errors
    EOFError,
    ValueError,  # also UnicodeDecodeError of member names
    RuntimeError,  # encrypted members; NotImplementedError for unknown compressions
    LookupError,
    struct.error,
    zlib.error,
    LZMAError,
)


def _archive_error(source: str, kind: str, error: BaseException) -> DistributionError:
    if isinstance(error, RecursionError):
        reason = "its headers are nested too deeply"
    else:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = f"unreadable {kind} ({detail[:200]})"
    return DistributionError(source, reason)


_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_DIRECTORY_ENTRY = b"PK\x01\x02"
_EOCD_SIZE, _EOCD64_SIZE, _LOCATOR_SIZE = 22, 56, 20


def check_zip_directory(path: Path, source: str) -> None:
    """Refuse a zip whose central directory zipfile would need too much memory to hold.

    zipfile reads the whole directory and makes an object of every entry before
    anything can be checked, so the directory's size and entry count are read
    from its end records first (the classic one, and a ZIP64 one where present),
    taking the largest size any of them claims.
    """
    with path.open("rb") as stream:
        check_zip_stream(stream, source)


def check_zip_stream(stream: IO[bytes], source: str) -> None:
    """``check_zip_directory`` of an open, seekable zip (a file, or one read by ranges)."""
    size = stream.seek(0, os.SEEK_END)
    tail_size = min(size, _EOCD_SIZE + 0xFFFF + _LOCATOR_SIZE + _EOCD64_SIZE)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    directory = 0
    found = {tail.rfind(_EOCD)}
    if tail[-_EOCD_SIZE:].startswith(_EOCD):
        found.add(len(tail) - _EOCD_SIZE)
    for position in found - {-1}:
        if position + _EOCD_SIZE > len(tail):
            continue
        directory = max(directory, struct.unpack_from("<I", tail, position + 12)[0])
        locator = position - _LOCATOR_SIZE
        if locator < 0 or tail[locator : locator + 4] != _EOCD64_LOCATOR:
            continue
        records = [tail[max(locator - _EOCD64_SIZE, 0) : locator]]
        stream.seek(min(struct.unpack_from("<Q", tail, locator + 8)[0], size))
        records.append(stream.read(_EOCD64_SIZE))
        for record in records:
            if len(record) == _EOCD64_SIZE and record.startswith(_EOCD64):
                directory = max(directory, struct.unpack_from("<Q", record, 40)[0])
    if directory > MAX_ZIP_DIRECTORY_BYTES:
        raise DistributionError(
            source,
            f"its zip directory claims {directory} bytes, "
            f"more than {MAX_ZIP_DIRECTORY_BYTES}; not read",
        )
    # Every entry starts with a signature: counting them bounds the entries zipfile makes.
    window = min(size, directory + tail_size)
    stream.seek(size - window)
    entries, carry = 0, b""
    while chunk := stream.read(1024 * 1024):
        block = carry + chunk
        entries += block.count(_DIRECTORY_ENTRY)
        carry = block[-3:]  # a signature cut in two is counted with the next chunk
    if entries > MAX_MEMBERS:
        raise DistributionError(source, f"has more than {MAX_MEMBERS} members")


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    """Whether a zip entry was stored as a Unix symbolic link."""
    return (info.external_attr >> 16) & 0o170000 == 0o120000


_METADATA_MEMBER = re.compile(r"^([^/]+)\.dist-info/METADATA$")


def read_wheel_metadata(path: Path, project: str) -> bytes:
    """The exact bytes of a wheel's ``.dist-info/METADATA`` (what PEP 658 serves)."""
    with path.open("rb") as stream:
        return read_wheel_metadata_stream(stream, path.name, project)


def read_wheel_metadata_stream(stream: IO[bytes], source: str, project: str) -> bytes:
    """``read_wheel_metadata`` of an open, seekable wheel (a file, or one read by ranges)."""
    try:
        check_zip_stream(stream, source)
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            found = [i for i in infos if _METADATA_MEMBER.match(i.filename)]
            if len(found) > 1:
                wanted = canonicalize_name(project)
                found = [
                    i for i in found if canonicalize_name(i.filename.split("-", 1)[0]) == wanted
                ] or found[:1]
            if not found:
                raise DistributionError(source, "has no .dist-info/METADATA; not a valid wheel")
            if _zip_is_link(found[0]):
                raise DistributionError(source, f"{found[0].filename} is a link; not read")
            with archive.open(found[0]) as member:
                return _read_member(member, found[0].filename, source)
    except DistributionError:
        raise
    except _ARCHIVE_ERRORS as error:
        raise _archive_error(source, "wheel", error) from None


#: tar member types whose whole content tarfile reads into memory as a header.
_TAR_HEADER_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class _BoundedTarInfo(tarfile.TarInfo):
    """Tar headers checked before tarfile acts on them.

    tarfile reads a pax or GNU long-name header whole, and a GNU sparse map
    block by block without limit; a small compressed sdist could make either
    gigabytes. Headers over :data:`MAX_TAR_HEADER_BYTES` and sparse members
    (never found in an sdist) are refused instead.
    """

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _TAR_HEADER_TYPES and info.size > MAX_TAR_HEADER_BYTES:
            raise _TarRefusedError(
                f"a tar header of {info.size} bytes, more than {MAX_TAR_HEADER_BYTES}"
            )
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise _TarRefusedError("a sparse tar member")
        return info

    # tarfile's hook for GNU sparse 1.0 maps announced in a pax header.
    def _proc_gnusparse_10(self, *args: object) -> None:
        raise _TarRefusedError("a sparse tar member")


class _TarRefusedError(Exception):
    """A tar header refused before tarfile reads it; becomes a DistributionError."""


def _sdist_files(path: Path, source: str) -> dict[str, bytes]:
    """The metadata files of an sdist by role, each read at most once and bounded.

    Links are never followed: a metadata file stored as a link is not read.
    """
    found: dict[str, bytes] = {}

    def wanted(name: str, is_link: bool) -> str | None:
        role = _sdist_role(name)
        if role is None or role in found:
            return None
        if is_link:
            log.warning("%s: not reading %s, which is a link", source, _short(name))
            return None
        return role

    if path.name.endswith(".zip"):
        check_zip_directory(path, source)
        with zipfile.ZipFile(path) as zip_archive:
            infos = zip_archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            for info in infos:
                role = None if info.is_dir() else wanted(info.filename, _zip_is_link(info))
                if role is not None:
                    with zip_archive.open(info) as stream:
                        found[role] = _read_member(stream, info.filename, source)
        return found
    # Stream mode reads each member once, in order, without an index in memory.
    with tarfile.open(path, mode="r|*", tarinfo=_BoundedTarInfo) as tar_archive:
        for count, member in enumerate(tar_archive):
            if count >= MAX_MEMBERS:
                raise DistributionError(source, f"has more than {MAX_MEMBERS} members")
            if member.isreg() or member.issym() or member.islnk():
                role = wanted(member.name, not member.isreg())
                member_stream = tar_archive.extractfile(member) if role is not None else None
                if role is not None and member_stream is not None:
                    with member_stream:
                        found[role] = _read_member(member_stream, member.name, source)
            # tarfile keeps every member seen; drop them so memory stays flat.
            tar_archive.members = []  # type: ignore[attr-defined]
    return found


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


def _read_sdist_files(path: Path) -> dict[str, bytes]:
    """``_sdist_files``, with every archive error as a DistributionError."""
    source = path.name
    try:
        return _sdist_files(path, source)
    except DistributionError:
        raise
    except _TarRefusedError as error:
        raise DistributionError(source, f"has {error}; not read") from None
    except _ARCHIVE_ERRORS as error:
        raise _archive_error(source, "sdist", error) from None


def read_sdist_pkg_info(path: Path) -> bytes | None:
    """The exact bytes of an sdist's top-level ``PKG-INFO`` (None if it has none): the core
    metadata an upload form is filled from, read with the same bounds as dependencies."""
    return _read_sdist_files(path).get("PKG-INFO")


def read_sdist_dependencies(path: Path) -> Dependencies:
    """Run and build requirements of an sdist, from every metadata file it carries."""
    source = path.name
    found = _read_sdist_files(path)

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
