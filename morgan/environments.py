"""Target client environments: their PEP 508 marker values and wheel tags.

An environment is described in ``morgan.ini`` by marker values (what PEP 508
markers would see on the client) plus a few optional facts that markers cannot
express but wheel selection needs: the glibc or musl level, the macOS version
and the ABI. From these the environment derives the ordered list of wheel tags a
client there accepts, best first, the way pip orders ``packaging.tags.sys_tags()``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from packaging import tags as tagslib
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from morgan.errors import ConfigError, DistributionError

#: Every marker variable of PEP 508; each may be set in an ``[env.NAME]`` section.
MARKER_KEYS = (
    "os_name",
    "sys_platform",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_version",
    "python_full_version",
    "implementation_name",
    "implementation_version",
)

#: A marker environment in which every variable is a valid version: a marker that cannot
#: be evaluated even here fails because of its own literals, in every environment.
PROBE_MARKER_ENVIRONMENT = {**dict.fromkeys(MARKER_KEYS, "1.0"), "extra": ""}

#: The longest Requires-Python value read; longer ones are ignored like unparsable ones.
MAX_REQUIRES_PYTHON = 1024

#: Facts for wheel selection that markers cannot express.
TAG_KEYS = ("platform_tag", "glibc_version", "musl_version", "macos_version", "abi")

#: Regular expressions on wheel tag parts, read by older Morgan releases.
LEGACY_TAG_KEYS = ("whl.tag.interpreter", "whl.tag.abi", "whl.tag.platform")

KNOWN_KEYS = frozenset(MARKER_KEYS + TAG_KEYS + LEGACY_TAG_KEYS)

# The highest levels generated when an environment does not state its own: high
# enough for any wheel published today, so "unknown" means "accept any level".
_UNKNOWN_GLIBC = (2, 60)
_UNKNOWN_MACOS = (30, 0)

_LINUX_ARCHES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "i686": "i686",
    "x86": "i686",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv7l": "armv7l",
    "armv8l": "armv7l",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
_WINDOWS_PLATFORMS = {
    "amd64": "win_amd64",
    "x86_64": "win_amd64",
    "x86": "win32",
    "i386": "win32",
    "i686": "win32",
    "arm64": "win_arm64",
    "aarch64": "win_arm64",
}
# The oldest manylinux level each architecture was ever built for (PEP 599/600).
_MANYLINUX_FLOOR = {"x86_64": 5, "i686": 5}
_MANYLINUX_ALIASES = {
    (2, 17): (
        "manylinux2014",
        {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
    ),
    (2, 12): ("manylinux2010", {"x86_64", "i686"}),
    (2, 5): ("manylinux1", {"x86_64", "i686"}),
}
#: Levels have at most three digits: a glibc 2.99999999 would make a hundred million tags.
_LEVELLED_PLATFORM = re.compile(r"^(?:manylinux|musllinux|macosx)_([0-9]{1,3})_([0-9]{1,3})_")
_LEGACY_MANYLINUX_LEVEL = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _level(text: str, key: str, section: str, path: str, example: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{1,3})\.([0-9]{1,3})", text.strip())
    if match is None:
        raise ConfigError(
            path,
            f"{text!r} is not a MAJOR.MINOR level; write it like {example}",
            section=section,
            key=key,
        )
    return int(match.group(1)), int(match.group(2))


#: The level of a plain ``linux_<arch>`` wheel: unknown, so assumed higher than any.
_UNKNOWN_LINUX_LEVEL = (999, 0)


def platform_level(platform: str) -> tuple[int, int]:
    """The glibc, musl or macOS level a wheel platform tag needs ((0, 0) if none)."""
    if platform.startswith("linux_"):
        return _UNKNOWN_LINUX_LEVEL
    match = _LEVELLED_PLATFORM.match(platform)
    if match:
        return int(match.group(1)), int(match.group(2))
    for prefix, level in _LEGACY_MANYLINUX_LEVEL.items():
        if platform.startswith(prefix + "_"):
            return level
    return (0, 0)


def manylinux_platforms(arch: str, glibc: tuple[int, int]) -> Iterator[str]:
    """manylinux platform tags for ``arch`` up to ``glibc``, newest first (PEP 600)."""
    floor = _MANYLINUX_FLOOR.get(arch, 17)
    if glibc[0] != 2:
        return
    for minor in range(glibc[1], floor - 1, -1):
        yield f"manylinux_2_{minor}_{arch}"
        alias = _MANYLINUX_ALIASES.get((2, minor))
        if alias and arch in alias[1]:
            yield f"{alias[0]}_{arch}"


def musllinux_platforms(arch: str, musl: tuple[int, int]) -> Iterator[str]:
    """musllinux platform tags for ``arch`` up to ``musl``, newest first (PEP 656)."""
    if musl[0] != 1:
        return
    for minor in range(musl[1], -1, -1):
        yield f"musllinux_1_{minor}_{arch}"


@dataclass(frozen=True)
class Environment:
    """One client environment of the closed network, as ``[env.NAME]`` describes it."""

    name: str
    markers: Mapping[str, str]
    python_version: Version
    tags: tuple[Tag, ...]
    #: True when the libc or macOS level is not stated: then the wheel that needs
    #: the lowest level is preferred, since the client may be old.
    level_unknown: bool = False
    _ranks: Mapping[Tag, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_ini_section(
        cls, name: str, section: Mapping[str, str], *, path: str = "morgan.ini"
    ) -> Environment:
        """Build an environment from the keys of one ``[env.NAME]`` section."""
        section_name = f"env.{name}"
        values = {key: value.strip() for key, value in section.items()}
        for key in values:
            if key not in KNOWN_KEYS:
                raise ConfigError(
                    path,
                    "unknown key; use PEP 508 marker names "
                    f"({', '.join(MARKER_KEYS)}) or {', '.join(TAG_KEYS)}",
                    section=section_name,
                    key=key,
                )
        for key, example in (
            ("glibc_version", "2.28"),
            ("musl_version", "1.2"),
            ("macos_version", "12.0"),
        ):
            if key in values:
                level = _level(values[key], key, section_name, path, example)
                major = {"glibc_version": 2, "musl_version": 1}.get(key, level[0])
                if level[0] != major:
                    raise ConfigError(
                        path,
                        f"{values[key]} is no {key.split('_')[0]} version; write e.g. {example}",
                        section=section_name,
                        key=key,
                    )
        markers = _complete_markers(values, section_name, path)
        python_version = Version(markers["python_full_version"])
        tags, level_unknown = _wheel_tags(values, markers, section_name, path)
        ranks: dict[Tag, int] = {}
        for rank, tag in enumerate(tags):
            ranks.setdefault(tag, rank)
        return cls(
            name=name,
            markers=markers,
            python_version=python_version,
            tags=tuple(ranks),
            level_unknown=level_unknown,
            _ranks=ranks,
        )

    def marker_environment(self, extra: str = "") -> dict[str, str]:
        """The mapping ``packaging.markers.Marker.evaluate`` wants, for one extra."""
        env = dict(self.markers)
        env["extra"] = extra
        return env

    def evaluate_marker(self, marker: Marker, extra: str = "", *, source: str) -> bool:
        """Whether ``marker`` holds here (for one extra); DistributionError if it cannot say.

        ``source`` names where the marker comes from, for the message.
        """
        return evaluate_marker(
            marker, self.marker_environment(extra), source=f"{source} (for {self.name})"
        )

    def allows_python(self, requires_python: str | None) -> bool:
        """Whether this environment's Python satisfies a Requires-Python value.

        An unparsable value is ignored, as pip does, rather than hiding the file.
        """
        spec = _requires_python(requires_python) if requires_python else None
        return spec is None or spec.contains(self.python_version, prereleases=True)

    def wheel_rank(self, wheel_tags: Iterable[Tag]) -> tuple[int, tuple[int, int], int] | None:
        """A sort key for a wheel in this environment (lower is better), or None.

        None means no tag of the wheel is supported here. With a known platform
        level the key follows pip's tag priority; with an unknown one a binary
        wheel needing a lower glibc/macOS level wins first, so the chosen wheel
        runs on the widest range of clients.
        """
        best: int | None = None
        level: tuple[int, int] | None = None
        pure = True
        for tag in wheel_tags:
            rank = self._ranks.get(tag)
            if rank is None:
                continue
            if best is None or rank < best:
                best = rank
            if tag.platform != "any":
                pure = False
                tag_level = platform_level(tag.platform)
                if level is None or tag_level < level:
                    level = tag_level
        if best is None:
            return None
        if not self.level_unknown:
            return (0, (0, 0), best)
        return (1 if pure else 0, level or (0, 0), best)


def evaluate_marker(marker: Marker, environment: Mapping[str, str], *, source: str) -> bool:
    """``marker.evaluate(environment)``, with any failure a one-line DistributionError.

    packaging raises UndefinedComparison (``python_version ~= "3"``),
    UndefinedEnvironmentName (``"a" == "b"``) and others for markers that parse
    but have no value.
    """
    try:
        return marker.evaluate(dict(environment))
    except (ValueError, LookupError, TypeError, RecursionError) as error:
        text = str(marker)
        shown = repr(text) if len(text) <= 200 else repr(text[:200]) + "..."
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DistributionError(
            source, f"marker {shown} cannot be evaluated ({reason[:200]})"
        ) from None


@functools.lru_cache(maxsize=4096)
def _requires_python(text: str) -> SpecifierSet | None:
    """A parsed Requires-Python; the same few strings recur on every file of a project."""
    if len(text) > MAX_REQUIRES_PYTHON or not text.strip():
        return None
    try:
        spec = SpecifierSet(text)
        spec.contains(Version("0"), prereleases=True)  # parses each version once: may fail
    except ValueError:  # InvalidSpecifier, or a version with thousands of digits
        return None
    return spec


def _complete_markers(values: Mapping[str, str], section: str, path: str) -> dict[str, str]:
    """Fill in marker values that can be derived from the ones given."""
    if "python_version" not in values or not values["python_version"]:
        raise ConfigError(
            path, "missing python_version; add e.g. 'python_version = 3.12'", section=section
        )
    python_version = values["python_version"]
    if not re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}", python_version):
        raise ConfigError(
            path,
            f"{python_version!r} is not MAJOR.MINOR; write e.g. 3.12 "
            "(the full version goes in python_full_version)",
            section=section,
            key="python_version",
        )
    full = values.get("python_full_version") or f"{python_version}.0"
    try:
        full_version = Version(full)
    except ValueError:  # InvalidVersion, or more digits than int() accepts
        raise ConfigError(
            path,
            f"{full!r} is not a valid version; write e.g. 3.12.7",
            section=section,
            key="python_full_version",
        ) from None
    if full_version.release[:2] != Version(python_version).release[:2]:
        raise ConfigError(
            path,
            f"{full} does not agree with python_version = {python_version}",
            section=section,
            key="python_full_version",
        )

    markers = {key: values[key] for key in MARKER_KEYS if key in values}
    markers["python_full_version"] = full
    implementation = markers.setdefault("platform_python_implementation", "CPython")
    markers.setdefault("implementation_name", implementation.lower())
    markers.setdefault("implementation_version", full)
    sys_platform = markers.get("sys_platform")
    if sys_platform is None:
        system = markers.get("platform_system", "")
        sys_platform = {"Linux": "linux", "Windows": "win32", "Darwin": "darwin"}.get(system, "")
        if not sys_platform:
            hint = values.get("platform_tag", "").lower()
            for prefix, platform in (
                ("win", "win32"),
                ("macosx", "darwin"),
                ("linux", "linux"),
                ("manylinux", "linux"),
                ("musllinux", "linux"),
            ):
                if hint.startswith(prefix):
                    sys_platform = platform
                    break
        markers["sys_platform"] = sys_platform
    markers.setdefault("os_name", "nt" if sys_platform == "win32" else "posix")
    markers.setdefault(
        "platform_system",
        {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}.get(sys_platform, ""),
    )
    for key in ("platform_machine", "platform_release", "platform_version"):
        markers.setdefault(key, "")
    return markers


def _platforms(
    values: Mapping[str, str], markers: Mapping[str, str], section: str, path: str
) -> tuple[list[str], bool]:
    """The wheel platform tags of an environment, best first, and whether its level is unknown."""
    sys_platform = markers["sys_platform"]
    machine = markers["platform_machine"].lower()
    hint = values.get("platform_tag", "").strip()
    # Morgan writes sysconfig.get_platform() here (linux-x86_64, macosx-11.0-arm64,
    # win-amd64); a wheel platform tag (manylinux_2_28_x86_64, win_amd64) works too.
    hint_tag = re.sub(r"[-.]", "_", hint.lower()) if hint else ""

    if sys_platform == "win32" or hint_tag.startswith("win"):
        if hint_tag in ("win32", "win_amd64", "win_arm64"):
            return [hint_tag], False
        if hint_tag.startswith("win_"):
            return [hint_tag], False
        platform = _WINDOWS_PLATFORMS.get(machine)
        return ([platform] if platform else []), False

    if sys_platform == "darwin" or hint_tag.startswith("macosx"):
        match = re.fullmatch(r"macosx_([0-9]{1,3})_([0-9]{1,3})_(\w+)", hint_tag)
        arch = match.group(3) if match else (machine or "x86_64")
        arch = "arm64" if arch in ("arm64", "aarch64") else arch
        if "macos_version" in values:
            version = _level(values["macos_version"], "macos_version", section, path, "11.0")
            unknown = False
        elif match:
            version = (int(match.group(1)), int(match.group(2)))
            unknown = False
        else:
            version, unknown = _UNKNOWN_MACOS, True
        if arch not in ("arm64", "x86_64", "universal2", "i386", "ppc", "ppc64", "intel"):
            return [], False
        return list(tagslib.mac_platforms(version, arch)), unknown

    if sys_platform.startswith("linux") or hint_tag.startswith(("linux", "manylinux", "musllinux")):
        legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", hint_tag)
        if legacy:
            level = _LEGACY_MANYLINUX_LEVEL[legacy.group(1)]
            hint_tag = f"manylinux_{level[0]}_{level[1]}_{legacy.group(2)}"
        arch_source = hint_tag
        for prefix in ("linux_", "manylinux_", "musllinux_"):
            if hint_tag.startswith(prefix):
                arch_source = re.sub(r"^(?:[0-9]+_[0-9]+_)?", "", hint_tag[len(prefix) :])
                break
        else:
            arch_source = machine
        arch = _LINUX_ARCHES.get(arch_source) or _LINUX_ARCHES.get(machine)
        if arch is None:
            return [], False
        hint_level = _LEVELLED_PLATFORM.match(hint_tag)
        platforms: list[str] = []
        unknown = False
        if "musl_version" in values or hint_tag.startswith("musllinux"):
            if "musl_version" in values:
                musl = _level(values["musl_version"], "musl_version", section, path, "1.2")
            elif hint_level is not None:
                musl = (int(hint_level.group(1)), int(hint_level.group(2)))
            else:
                raise ConfigError(
                    path,
                    f"{hint!r} names no musl level; write e.g. musllinux_1_2_x86_64 "
                    "or set musl_version",
                    section=section,
                    key="platform_tag",
                )
            platforms.extend(musllinux_platforms(arch, musl))
        else:
            if "glibc_version" in values:
                glibc = _level(values["glibc_version"], "glibc_version", section, path, "2.28")
            elif hint_tag.startswith("manylinux") and hint_level:
                glibc = (int(hint_level.group(1)), int(hint_level.group(2)))
            else:
                glibc, unknown = _UNKNOWN_GLIBC, True
            platforms.extend(manylinux_platforms(arch, glibc))
        platforms.append(f"linux_{arch}")
        return platforms, unknown

    # Any other system: only a platform_tag can say which binary wheels run there.
    return ([hint_tag] if hint_tag else []), False


def _wheel_tags(
    values: Mapping[str, str], markers: Mapping[str, str], section: str, path: str
) -> tuple[list[Tag], bool]:
    platforms, level_unknown = _platforms(values, markers, section, path)
    version = Version(markers["python_full_version"])
    py = (version.major, version.minor)
    nodot = f"{py[0]}{py[1]}"
    abi = values.get("abi", "").strip()
    implementation = markers["implementation_name"]
    tags: list[Tag] = []
    if implementation == "cpython":
        default_abi = f"cp{nodot}m" if py < (3, 8) else f"cp{nodot}"
        abis = [a.strip() for a in abi.split(",") if a.strip()] if abi else [default_abi]
        if platforms:
            tags.extend(tagslib.cpython_tags(py, abis, platforms))
        interpreter = f"cp{nodot}"
    else:
        short = {"pypy": "pp", "graalpy": "graalpy", "ironpython": "ip", "jython": "jy"}
        interpreter = f"{short.get(implementation, implementation)}{nodot}"
        abis = [a.strip() for a in abi.split(",") if a.strip()]
        if platforms:
            tags.extend(tagslib.generic_tags(interpreter, [*abis, "none"], platforms))
    # packaging falls back to this machine's platforms for an empty list: never
    # let the mirroring machine leak into a client environment.
    tags.extend(tagslib.compatible_tags(py, interpreter, platforms or ["any"]))

    legacy = {}
    for part in ("interpreter", "abi", "platform"):
        key = f"whl.tag.{part}"
        if values.get(key, "").strip():
            try:
                legacy[part] = re.compile(values[key])
            except re.error as error:
                raise ConfigError(
                    path, f"not a regular expression ({error})", section=section, key=key
                ) from None
    if legacy:
        tags = [
            tag
            for tag in tags
            if all(pattern.match(getattr(tag, part)) for part, pattern in legacy.items())
        ]
    return tags, level_unknown
