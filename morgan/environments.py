"""Target client environments: their PEP 508 marker values and wheel tags.

An environment is described in ``morgan.ini`` by marker values (what PEP 508
markers would see on the client) plus a few optional facts that markers cannot
express but wheel selection needs: the glibc or musl level, the macOS version,
the ABI and the client's pip. From these the environment derives the ordered list
of wheel tags a client there accepts, best first, the way pip orders
``packaging.tags.sys_tags()``.

``platform_tag`` is read in one of two ways:

* a wheel platform tag (``manylinux_2_28_x86_64``, ``win_amd64``) or a
  ``sysconfig.get_platform()`` value (``linux-x86_64``, ``macosx-11.0-arm64``):
  the client's platform, with its level where it names one;
* anything else (``win_amd64|win32``, ``manylinux.*_x86_64``): a regular
  expression, fully matched against wheel platform tags, as Morgan 0.15 read it,
  with a warning. The environment then accepts exactly the platform tags its other
  keys allow (or, where they do not say, every tag known for its system, up to the
  unknown-level maxima) that the expression matches.

When ``platform_tag`` and the markers disagree, the reading a real client would
follow wins; see :func:`_reconcile_arch` and :func:`_platforms`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from packaging import tags as tagslib
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from morgan.errors import ConfigError, DistributionError

log = logging.getLogger(__name__)

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
TAG_KEYS = (
    "platform_tag",
    "glibc_version",
    "musl_version",
    "macos_version",
    "abi",
    "pip_version",
)

#: Regular expressions on wheel tag parts, read by older Morgan releases.
LEGACY_TAG_KEYS = ("whl.tag.interpreter", "whl.tag.abi", "whl.tag.platform")

KNOWN_KEYS = frozenset(MARKER_KEYS + TAG_KEYS + LEGACY_TAG_KEYS)

# The highest levels generated when an environment does not state its own: high
# enough for any wheel published today, so "unknown" means "accept any level".
_UNKNOWN_GLIBC = (2, 60)
_UNKNOWN_MACOS = (30, 0)
_UNKNOWN_MUSL = (1, 9)

#: The first pip release that installs wheels of each family of Linux platform tags, from
#: pip's NEWS.rst: PEP 513 manylinux1 in 8.1.0, PEP 571 manylinux2010 in 19.0, PEP 599
#: manylinux2014 in 19.3, PEP 600 manylinux_X_Y in 20.3; PEP 656 musllinux came with
#: packaging 21.0 (its CHANGELOG), which pip vendored in 21.2.
PIP_PLATFORM_RELEASES = {
    "manylinux1": Version("8.1"),
    "manylinux2010": Version("19.0"),
    "manylinux2014": Version("19.3"),
    "manylinux_x_y": Version("20.3"),
    "musllinux": Version("21.2"),
}
#: macOS 11 and later counted by major version, and universal2 (packaging 20.5, "add
#: support for macos 11.0, arm64, universal2"), vendored in pip 20.3 ("Add support for
#: MacOS Big Sur compatibility tags"). Before, a Python built with an older SDK heard
#: 10.16 on macOS 11 and later, and pip counted minor versions within that major.
PIP_MACOS_11 = Version("20.3")
#: ``macosx_10_*_universal2`` for arm64 clients (packaging 20.9), vendored in pip 21.0.1.
PIP_UNIVERSAL2_BEFORE_11 = Version("21.0.1")

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
_MAC_ARCHES = {
    "arm64": "arm64",
    "aarch64": "arm64",
    "x86_64": "x86_64",
    "i386": "i386",
    "ppc": "ppc",
    "ppc64": "ppc64",
}
#: macOS binary formats holding several architectures: a Python built as one runs as
#: the machine's own architecture (``sysconfig.get_platform()`` of a universal2 build
#: says ``macosx-10.9-universal2`` on an arm64 Mac).
_MAC_FAT = frozenset({"universal2", "universal", "intel", "fat", "fat3", "fat32", "fat64"})
#: (platform_machine, interpreter) pairs of a narrower interpreter on a wider machine:
#: markers name the machine (``uname``, or Windows' own architecture), pip's tags the
#: interpreter (packaging maps linux_x86_64 to linux_i686 for a 32-bit Python).
_NARROWER = {
    "linux": {("x86_64", "i686"), ("aarch64", "armv7l")},
    "darwin": {("x86_64", "i386"), ("ppc64", "ppc")},
    # WOW64 runs 32-bit x86 on x64 and on ARM64; Windows 11 on ARM emulates x64.
    "win32": {("win_amd64", "win32"), ("win_arm64", "win32"), ("win_arm64", "win_amd64")},
}
_WINDOWS_TAGS = frozenset(_WINDOWS_PLATFORMS.values())
_FAMILY_NAMES = {"win32": "Windows", "darwin": "macOS", "linux": "Linux", "other": "another system"}

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

# The spellings of a platform that platform_tag takes as a platform (after lower-casing
# and turning "-" and "." into "_", as sysconfig.get_platform() becomes a wheel tag);
# anything else is a Morgan 0.15 regular expression.
_PLAIN_PLATFORM = re.compile(r"[A-Za-z0-9_.\-]+")
_WINDOWS_FORM = re.compile(r"win32|win_[a-z0-9_]+")
_MACOS_FORM = re.compile(r"macosx_([0-9]{1,3})_([0-9]{1,3})_([a-z0-9_]+)")
_LINUX_FORM = re.compile(
    r"(?:linux|manylinux(?:1|2010|2014)|(?:many|musl)linux(?:_[0-9]+_[0-9]+)?)_[a-z0-9_]+"
)
#: Another system's sysconfig.get_platform() (freebsd-14.1-RELEASE-amd64, cygwin-3.5-x86_64).
_OTHER_FORM = re.compile(r"(?!win|macosx|linux|manylinux|musllinux)[a-z]+_[a-z0-9_]+")


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


def pip_understands(platform: str, pip: Version | None) -> bool:
    """Whether a pip release knows a Linux platform tag (any tag when ``pip`` is None).

    See :data:`PIP_PLATFORM_RELEASES`; macOS tags are generated per pip release by
    :func:`mac_platforms` instead, and other systems' tags are known to every pip.
    """
    if pip is None:
        return True
    family = ""
    if platform.startswith("musllinux_"):
        family = "musllinux"
    elif platform.startswith("manylinux_"):
        family = "manylinux_x_y"
    else:
        family = next((f for f in PIP_PLATFORM_RELEASES if platform.startswith(f + "_")), "")
    needed = PIP_PLATFORM_RELEASES.get(family)
    return needed is None or pip >= needed


def _old_mac_formats(version: tuple[int, int], arch: str) -> list[str]:
    """The binary formats pip before 20.3 accepted (packaging 20.4's _mac_binary_formats)."""
    formats = [arch]
    if arch == "x86_64":
        if version < (10, 4):
            return []
        formats += ["intel", "fat64", "fat32"]
    elif arch == "i386":
        if version < (10, 4):
            return []
        formats += ["intel", "fat32", "fat"]
    elif arch == "ppc64":
        if version > (10, 5) or version < (10, 4):
            return []
        formats.append("fat64")
    elif arch == "ppc":
        if version > (10, 6):
            return []
        formats += ["fat32", "fat"]
    return [*formats, "universal"]


def mac_platforms(
    version: tuple[int, int], arch: str, pip: Version | None = None, *, unknown: bool = False
) -> list[str]:
    """The macOS platform tags a client's pip accepts, best first.

    Current pip: ``packaging.tags.mac_platforms``. pip 20.3 up to 21.0.1 offered an
    arm64 client no ``macosx_10_*_universal2`` tag. Older pip counted minor versions
    within the major the interpreter reported, which on macOS 11 and later was 10.16
    for the x86_64 Pythons of its time; an arm64 Python (built with the macOS 11 SDK)
    reported its real version, so only that major's tags, and never universal2.
    ``unknown`` (the macOS level is not stated) takes every such major for arm64.
    """
    if pip is None or pip >= PIP_UNIVERSAL2_BEFORE_11:
        return list(tagslib.mac_platforms(version, arch))
    if pip >= PIP_MACOS_11:
        return [
            p
            for p in tagslib.mac_platforms(version, arch)
            if arch == "x86_64" or not (p.startswith("macosx_10_") and p.endswith("_universal2"))
        ]
    if version >= (11, 0) and arch != "arm64":
        version = (10, 16)
    reported = [version]
    if unknown and version >= (11, 0):
        reported = [(major, 9) for major in range(version[0], 10, -1)]
    return [
        f"macosx_{major}_{minor}_{binary_format}"
        for major, top in reported
        for minor in range(top, -1, -1)
        for binary_format in _old_mac_formats((major, minor), arch)
    ]


@dataclass(frozen=True)
class _PlatformTag:
    """What ``platform_tag`` says: a platform of one family, or a 0.15 regular expression."""

    text: str
    #: The wheel-tag spelling (``linux-x86_64`` → ``linux_x86_64``); "" for a pattern.
    tag: str = ""
    #: "win32", "darwin", "linux" or "other" (as sys_platform names them); "" for a pattern.
    family: str = ""
    pattern: re.Pattern[str] | None = None


def _read_platform_tag(values: Mapping[str, str], section: str, path: str) -> _PlatformTag | None:
    text = values.get("platform_tag", "").strip()
    if not text:
        return None
    if _PLAIN_PLATFORM.fullmatch(text):
        tag = re.sub(r"[-.]", "_", text.lower())
        for family, form in (
            ("win32", _WINDOWS_FORM),
            ("darwin", _MACOS_FORM),
            ("linux", _LINUX_FORM),
            ("other", _OTHER_FORM),
        ):
            if form.fullmatch(tag):
                return _PlatformTag(text, tag=tag, family=family)
    try:
        pattern = re.compile(text)
    except (re.error, RecursionError, OverflowError) as error:
        raise ConfigError(
            path,
            f"{text!r} is neither a wheel platform tag, a sysconfig.get_platform() value "
            f"nor a regular expression ({error}); write e.g. manylinux_2_28_x86_64",
            section=section,
            key="platform_tag",
        ) from None
    return _PlatformTag(text, pattern=pattern)


def _family(sys_platform: str) -> str:
    """The family of systems a sys_platform value names ("" when it names none)."""
    if sys_platform in ("win32", "darwin"):
        return sys_platform
    if sys_platform.startswith("linux"):
        return "linux"
    return "other" if sys_platform else ""


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
    #: The client's pip (``pip_version``), if stated: tags it does not know are left out.
    pip_version: Version | None = None
    #: What pip compares Requires-Python against: the release numbers of the interpreter
    #: (``sys.version_info[:3]``), so 3.13.0rc1 counts as 3.13.0.
    requires_python_version: Version = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        release = (*self.python_version.release, 0, 0)[:3]
        object.__setattr__(self, "requires_python_version", Version(".".join(map(str, release))))

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
        pip = _pip_version(values, section_name, path)
        context = _Context(values, section_name, path, pip)
        hint = _read_platform_tag(values, section_name, path)
        family = hint.family if hint else ""
        if hint is not None and hint.pattern is not None:
            family = _pattern_family(hint.pattern, context)
        markers = _complete_markers(values, section_name, path, platform_family=family)
        python_version = Version(markers["python_full_version"])
        tags, level_unknown = _wheel_tags(hint, replace(context, markers=markers))
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
            pip_version=pip,
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

        As pip does, the interpreter's release numbers are compared
        (``Version(".".join(map(str, sys.version_info[:3])))``): a 3.13.0rc1 client
        installs what says ``>=3.13``. An unparsable value is ignored, as pip does,
        rather than hiding the file.
        """
        spec = _requires_python(requires_python) if requires_python else None
        return spec is None or spec.contains(self.requires_python_version, prereleases=True)

    def wheel_rank(self, wheel_tags: Iterable[Tag]) -> tuple[int, tuple[int, int], int] | None:
        """A sort key for a wheel in this environment (lower is better), or None.

        None means no tag of the wheel is supported here (with ``pip_version``: none
        that pip knows). With a known platform level the key follows pip's tag
        priority; with an unknown one a binary wheel needing a lower glibc/macOS
        level wins first, so the chosen wheel runs on the widest range of clients.
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


def _pip_version(values: Mapping[str, str], section: str, path: str) -> Version | None:
    text = values.get("pip_version", "")
    if not text:
        return None
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or more digits than int() accepts
        shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."
        raise ConfigError(
            path,
            f"{shown} is not a pip version; write what 'pip --version' says, e.g. 18.1",
            section=section,
            key="pip_version",
        ) from None


def _complete_markers(
    values: Mapping[str, str], section: str, path: str, *, platform_family: str = ""
) -> dict[str, str]:
    """Fill in marker values that can be derived from the ones given.

    ``platform_family`` is the system ``platform_tag`` names ("win32", "darwin",
    "linux"), for a sys_platform that neither it nor platform_system states.
    """
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
        if not sys_platform and platform_family != "other":
            sys_platform = platform_family
        markers["sys_platform"] = sys_platform
    markers.setdefault("os_name", "nt" if sys_platform == "win32" else "posix")
    markers.setdefault(
        "platform_system",
        {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}.get(sys_platform, ""),
    )
    for key in ("platform_machine", "platform_release", "platform_version"):
        markers.setdefault(key, "")
    return markers


@dataclass(frozen=True)
class _Context:
    """One environment's keys as written, its pip, and where it is configured (for warnings)."""

    values: Mapping[str, str]
    section: str
    path: str
    pip: Version | None = None
    markers: Mapping[str, str] = field(default_factory=dict)

    def warn(self, message: str, *args: object) -> None:
        log.warning(f"%s: [%s] {message}", self.path, self.section, *args)

    def level(self, key: str, example: str) -> tuple[int, int]:
        return _level(self.values[key], key, self.section, self.path, example)

    def system_key(self) -> str:
        """``sys_platform = X`` as stated, or the platform_system it was derived from."""
        if "sys_platform" in self.values:
            return f"sys_platform = {self.markers['sys_platform']}"
        return f"platform_system = {self.markers['platform_system']}"


def _platforms(hint: _PlatformTag | None, context: _Context) -> tuple[list[str], bool]:
    """The wheel platform tags of an environment, best first, and whether its level is unknown.

    When ``platform_tag`` names another system than the markers (``win_amd64`` with
    ``sys_platform = linux``), the markers win and platform_tag is ignored, with a
    warning. The markers are what the client's pip evaluates: they decide which
    dependencies are mirrored (``pywin32; sys_platform == "win32"``), and are never
    rewritten. The platform tags are what that pip installs, and a pip whose markers
    say Linux runs on Linux and installs Linux wheels: a tree of Windows wheels with
    Linux dependencies would install on neither system, while with the markers
    winning it installs on the client they describe (from sdists at worst, which the
    run's summary names).
    """
    family = _family(context.markers["sys_platform"])
    if hint is not None and hint.pattern is not None:
        return _pattern_platforms(hint, family, context)
    if (
        hint is not None
        and family
        and hint.family != family
        and (family != "other" or hint.family != "other")
    ):
        context.warn(
            "platform_tag = %s names a %s platform, but %s: the markers win (they decide "
            "which dependencies are mirrored, and a pip that sees them installs %s wheels), "
            "so platform_tag is ignored; correct whichever is wrong",
            hint.text,
            _FAMILY_NAMES[hint.family],
            context.system_key(),
            _FAMILY_NAMES[family],
        )
        hint = None
    if not family and hint is not None:
        family = hint.family
    return _system_platforms(family, hint, context)


def _reconcile_arch(
    family: str, own: str, hint: _PlatformTag, stated: str, context: _Context
) -> str:
    """The architecture wheels are chosen for when platform_machine and platform_tag differ.

    ``own`` is platform_machine's architecture, ``stated`` platform_tag's, both
    spelt as that system's tags spell them. A narrower interpreter on a wider machine
    is a real client (a 32-bit Python on 64-bit Linux or macOS, where markers read
    ``uname``; a 32-bit or emulated x64 Python on 64-bit or ARM64 Windows, where
    ``platform.machine()`` names Windows' own architecture): platform_tag names the
    interpreter, and its wheels are chosen, silently. No client has the other pairs
    (``linux-x86_64`` with ``platform_machine = i686``: uname says i686 only under a
    32-bit kernel, which runs no x86_64 interpreter): platform_machine wins, as the
    markers always do, so wheels and dependencies fit one and the same client, with
    a warning. A fat macOS format (``universal2``) is no architecture: a Python
    built so runs as the machine's own.
    """
    if not own or not stated or own == stated:
        return stated or own
    if family == "darwin" and stated in _MAC_FAT:
        return own
    if (own, stated) in _NARROWER.get(family, set()):
        return stated
    machine = context.markers["platform_machine"]
    context.warn(
        "platform_tag = %s contradicts platform_machine = %s: %s wheels are mirrored, for "
        "the client whose pip sees platform_machine = %s (platform_tag may name another "
        "architecture only for a narrower interpreter on a wider machine, such as a 32-bit "
        "Python on x86_64); correct whichever is wrong",
        hint.text if hint.tag.endswith(stated) else f"{hint.text} ({stated})",
        machine if machine.lower() == own else f"{machine} ({own})",
        own,
        machine,
    )
    return own


def _system_platforms(
    family: str, hint: _PlatformTag | None, context: _Context, *, both_libcs: bool = False
) -> tuple[list[str], bool]:
    """The platform tags of one system, from platform_machine, the levels and platform_tag.

    ``both_libcs`` (for a 0.15 pattern, when neither glibc_version nor musl_version is
    stated) takes musllinux tags too, after the manylinux ones.
    """
    machine = context.markers["platform_machine"].lower()
    tag = hint.tag if hint is not None else ""

    if family == "win32":
        own = _WINDOWS_PLATFORMS.get(machine, "")
        if hint is None:
            return ([own] if own else []), False
        if tag not in _WINDOWS_TAGS:
            return [tag], False  # win_ia64 and the like: taken as written
        return [_reconcile_arch(family, own, hint, tag, context)], False

    if family == "darwin":
        match = _MACOS_FORM.fullmatch(tag) if tag else None
        own = _MAC_ARCHES.get(machine, machine)
        arch = match.group(3) if match else ""
        if hint is not None and own in _MAC_ARCHES.values():
            arch = _reconcile_arch(family, own, hint, arch, context)
        arch = arch or own or "x86_64"
        if "macos_version" in context.values:
            version, unknown = context.level("macos_version", "11.0"), False
        elif match:
            version, unknown = (int(match.group(1)), int(match.group(2))), False
        else:
            version, unknown = _UNKNOWN_MACOS, True
        if arch not in {"arm64", "x86_64", "i386", "ppc", "ppc64"} | _MAC_FAT:
            return [], False
        if arch == "arm64" and version < (11, 0):
            # A universal2 build's platform names its deployment target (10.9): every
            # arm64 Mac runs macOS 11 or later.
            version = (11, 0)
        return mac_platforms(version, arch, context.pip, unknown=unknown), unknown

    if family == "linux":
        legacy = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", tag)
        if legacy:
            level = _LEGACY_MANYLINUX_LEVEL[legacy.group(1)]
            tag = f"manylinux_{level[0]}_{level[1]}_{legacy.group(2)}"
        stated = ""
        for prefix in ("linux_", "manylinux_", "musllinux_"):
            if tag.startswith(prefix):
                source = re.sub(r"^(?:[0-9]+_[0-9]+_)?", "", tag[len(prefix) :])
                stated = _LINUX_ARCHES.get(source, "")
                break
        own = _LINUX_ARCHES.get(machine, "")
        arch = _reconcile_arch(family, own, hint, stated, context) if hint else own
        if not arch:
            return [], False
        return _linux_platforms(arch, tag, context, both_libcs=both_libcs)

    if family == "other":
        # Any other system: only a platform_tag can say which binary wheels run there.
        return ([tag] if tag else []), False
    return [], False


def _linux_platforms(
    arch: str, tag: str, context: _Context, *, both_libcs: bool = False
) -> tuple[list[str], bool]:
    """manylinux (or musllinux) tags up to the stated level, then ``linux_<arch>``."""
    values = context.values
    tag_level = _LEVELLED_PLATFORM.match(tag)
    platforms: list[str] = []
    unknown = False
    musl_only = "musl_version" in values or tag.startswith("musllinux")
    if not musl_only:
        if "glibc_version" in values:
            glibc = context.level("glibc_version", "2.28")
        elif tag.startswith("manylinux") and tag_level:
            glibc = (int(tag_level.group(1)), int(tag_level.group(2)))
        else:
            glibc, unknown = _UNKNOWN_GLIBC, True
        platforms.extend(manylinux_platforms(arch, glibc))
    if musl_only or both_libcs:
        if "musl_version" in values:
            musl = context.level("musl_version", "1.2")
        elif tag_level is not None and tag.startswith("musllinux"):
            musl = (int(tag_level.group(1)), int(tag_level.group(2)))
        elif both_libcs:
            musl, unknown = _UNKNOWN_MUSL, True
        else:
            raise ConfigError(
                context.path,
                f"{values.get('platform_tag', '')!r} names no musl level; write e.g. "
                "musllinux_1_2_x86_64 or set musl_version",
                section=context.section,
                key="platform_tag",
            )
        platforms.extend(musllinux_platforms(arch, musl))
    platforms.append(f"linux_{arch}")
    return [p for p in platforms if pip_understands(p, context.pip)], unknown


def _known_platforms(family: str, context: _Context) -> list[str]:
    """Every platform tag known for a system, at its stated levels, else up to the maxima."""
    values = context.values
    if family == "win32":
        return ["win_amd64", "win32", "win_arm64"]
    if family == "darwin":
        if "macos_version" in values:
            version, unknown = context.level("macos_version", "11.0"), False
        else:
            version, unknown = _UNKNOWN_MACOS, True
        found: dict[str, None] = {}
        for arch in ("arm64", "x86_64"):
            found.update(dict.fromkeys(mac_platforms(version, arch, context.pip, unknown=unknown)))
        return list(found)
    if family == "linux":
        both = "glibc_version" not in values and "musl_version" not in values
        return [
            platform
            for arch in dict.fromkeys(_LINUX_ARCHES.values())
            for platform in _linux_platforms(arch, "", context, both_libcs=both)[0]
        ]
    return []


def _pattern_family(pattern: re.Pattern[str], context: _Context) -> str:
    """The one system whose platform tags a 0.15 pattern matches ("" if none or several)."""
    found = [
        family
        for family in ("linux", "win32", "darwin")
        if any(pattern.fullmatch(p) for p in _known_platforms(family, context))
    ]
    return found[0] if len(found) == 1 else ""


def _pattern_platforms(
    hint: _PlatformTag, family: str, context: _Context
) -> tuple[list[str], bool]:
    """The platform tags a Morgan 0.15 ``platform_tag`` pattern selects, best first.

    The candidates are the platform tags the other keys allow (sys_platform,
    platform_machine, the levels), in pip's order; where they allow none (no machine,
    no system), every tag known for the system (for each system when none is
    stated), up to the unknown-level maxima. Of those, the ones the pattern fully
    matches are kept. On Linux without glibc_version or musl_version, musllinux tags
    are candidates too, but only when the pattern matches no manylinux tag.
    """
    assert hint.pattern is not None
    values = context.values
    libc_stated = "glibc_version" in values or "musl_version" in values
    candidates, unknown = _system_platforms(family, None, context, both_libcs=not libc_stated)
    if family == "darwin" and context.markers["platform_machine"].lower() not in _MAC_ARCHES:
        candidates = []  # a Mac without its machine is assumed x86_64; here it is unknown
    if not candidates:
        systems = [family] if family else ["linux", "win32", "darwin"]
        candidates = [p for system in systems for p in _known_platforms(system, context)]
        unknown = not ({"glibc_version", "musl_version", "macos_version"} & set(values))
    matched = [p for p in dict.fromkeys(candidates) if hint.pattern.fullmatch(p)]
    if any(p.startswith("manylinux") for p in matched):
        matched = [p for p in matched if not p.startswith("musllinux")]
    if matched:
        more = len(matched) - 3
        selects = (
            "platform tags " + ", ".join(matched[:3]) + (f" and {more} more" if more > 0 else "")
        )
    else:
        selects = "no platform tag, so only pure-Python wheels"
    context.warn(
        "platform_tag = %s is neither a wheel platform tag nor a sysconfig.get_platform() "
        "value: it is read as Morgan 0.15 read it, a regular expression fully matching wheel "
        "platform tags, and selects %s; state the client instead with sys_platform, "
        "platform_machine and glibc_version, musl_version or macos_version",
        hint.text,
        selects,
    )
    return matched, unknown


def _wheel_tags(hint: _PlatformTag | None, context: _Context) -> tuple[list[Tag], bool]:
    platforms, level_unknown = _platforms(hint, context)
    values, markers, section, path = context.values, context.markers, context.section, context.path
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
