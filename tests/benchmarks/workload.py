"""The synthetic upstream, as data: projects, releases, files, dependencies, morgan.ini.

Everything here is derived from a seed and a :class:`Scale`, so the same
arguments always describe the same upstream. Nothing is written to disk here
(see ``artifacts.py``).

The graph is built in levels: the top-level requirements are level 0 and
every project at level L+1 is required (unconditionally, or under a marker
some environment meets) by a project at level L, so the whole graph is
reachable and the longest chain of first discoveries is the number of levels.
Extra edges add extras, markers, version caps and skips; a few "orphan"
projects are reachable only through extras nobody asks for or markers no
environment meets, so the upstream holds more than the mirror needs.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from dataclasses import dataclass, field

#: Bump when the generated upstream changes, so cached trees are rebuilt.
GENERATOR_VERSION = 6

MB = 1024 * 1024

PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "musllinux_1_2_x86_64",
    "win_amd64",
    "win32",
    "macosx_11_0_arm64",
    "macosx_10_9_x86_64",
)
#: The platforms of the big wheels, one per environment below.
BIG_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "win_amd64",
    "macosx_11_0_arm64",
)
PYTHONS = ("cp39", "cp310", "cp311", "cp312", "cp313")

#: Markers some environment below meets, and markers none does.
LIVE_MARKERS = (
    'sys_platform == "win32"',
    'python_version < "3.10"',
    'platform_machine == "aarch64"',
    'sys_platform == "darwin"',
    'python_version >= "3.11"',
    'os_name == "posix" and platform_machine == "x86_64"',
)
DEAD_MARKERS = ('implementation_name == "pypy"', 'sys_platform == "emscripten"')

#: The client environments; keys both Morgan 0.15.0 and this morgan read.
#: Morgan 0.15.0 matches wheel platforms with ``platform_tag`` as a regex, or
#: else ``.*<sys_platform>.*<platform_machine>``: so Linux needs no tag, while
#: Windows and macOS name a wheel platform tag that both tools understand.
ENVIRONMENTS = {
    "linux312": {
        "python_version": "3.12",
        "python_full_version": "3.12.7",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "platform_system": "Linux",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "glibc_version": "2.31",
    },
    "linux39arm": {
        "python_version": "3.9",
        "python_full_version": "3.9.18",
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_machine": "aarch64",
        "platform_system": "Linux",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
    },
    "win311": {
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "os_name": "nt",
        "sys_platform": "win32",
        "platform_machine": "AMD64",
        "platform_system": "Windows",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "platform_tag": "win_amd64",
    },
    "mac312": {
        "python_version": "3.12",
        "python_full_version": "3.12.7",
        "os_name": "posix",
        "sys_platform": "darwin",
        "platform_machine": "arm64",
        "platform_system": "Darwin",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "platform_tag": "macosx_11_0_arm64",
    },
}

SYLLABLES = tuple(
    [
        "ka",
        "zo",
        "ri",
        "ban",
        "tel",
        "mo",
        "qua",
        "vex",
        "lin",
        "dor",
        "pi",
        "sum",
        "gra",
        "nel",
        "tox",
        "fi",
        "ul",
        "ber",
        "cy",
        "jun",
        "hap",
        "ost",
        "rel",
        "mi",
        "do",
        "sa",
        "ter",
        "vin",
        "po",
        "lu",
        "cre",
        "zen",
        "fab",
        "nix",
        "ro",
        "yel",
    ]
)
SUFFIXES = ("", "", "", "lib", "py", "kit", "io", "tools", "core", "x")


@dataclass(frozen=True)
class Scale:
    """How big an upstream to build."""

    name: str
    projects: int  # in the closure, build backends included
    top_level: int
    levels: int
    orphans: int
    big_files: bool
    max_small_size: int
    #: Projects shaped like the largest on PyPI: hundreds of versions, thousands of files.
    giants: int = 0
    #: The client environments (keys of ENVIRONMENTS), all of them if empty.
    environments: tuple[str, ...] = ()

    @classmethod
    def full(cls) -> Scale:
        return cls("full", 300, 45, 8, 10, True, 20 * MB)

    @classmethod
    def quick(cls) -> Scale:
        return cls("quick", 30, 8, 7, 2, False, 1 * MB)

    @classmethod
    def real(cls) -> Scale:
        """Real page shapes: 56 projects, 8 of them giants (see GIANTS), 3 environments."""
        return cls(
            "real", 56, 12, 5, 4, False, 4 * MB, giants=len(GIANTS),
            environments=("linux312", "linux39arm", "win311"),
        )  # fmt: skip

    @classmethod
    def real300(cls) -> Scale:
        """Real page shapes at the size of a site's mirror: 300 projects, 24 of them giants
        (each shape of GIANTS three times), 2 environments."""
        return cls(
            "real300", 300, 45, 7, 10, False, 2 * MB, giants=3 * len(GIANTS),
            environments=("linux312", "win311"),
        )  # fmt: skip


@dataclass
class Release:
    version: str
    upload_time: str
    requires_python: str | None = ">=3.8"
    yanked: str | None = None
    #: (wheel tag triple, size in bytes)
    wheels: list[tuple[str, int]] = field(default_factory=list)
    #: (extension, size in bytes), or None when there is no sdist
    sdist: tuple[str, int] | None = None

    @property
    def stable(self) -> bool:
        return re.fullmatch(r"[\d.]+", self.version) is not None


@dataclass
class Project:
    name: str  # as its authors spell it; the URL uses the normalized form
    level: int
    kind: str  # "pure", "binary", "big", "backend"
    releases: list[Release] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    build_requires: list[str] = field(default_factory=list)
    build_backend: str = "setuptools.build_meta"
    legacy_sdist_name: bool = False

    @property
    def key(self) -> str:
        return normalize(self.name)

    def safe_releases(self) -> list[Release]:
        """Releases every environment can install: the ones specifiers are built from."""
        return [
            r
            for r in self.releases
            if r.stable and r.yanked is None and r.requires_python == ">=3.8"
        ]


@dataclass
class Workload:
    scale: Scale
    seed: int
    projects: dict[str, Project]
    requirements: list[tuple[str, str]]  # [requirements] lines: (name, value)

    def config_text(self) -> str:
        lines = ["# Generated by tests/benchmarks/workload.py; both tools read it.", ""]
        for env, values in self.environments().items():
            lines.append(f"[env.{env}]")
            lines += [f"{key} = {value}" for key, value in values.items()]
            lines.append("")
        lines.append("[requirements]")
        lines += [f"{name} = {value}".rstrip() for name, value in self.requirements]
        return "\n".join(lines) + "\n"

    def environments(self) -> dict[str, dict[str, str]]:
        wanted = self.scale.environments or tuple(ENVIRONMENTS)
        return {name: ENVIRONMENTS[name] for name in wanted}

    def closure(self) -> dict[str, int]:
        """Project key -> first-discovery depth (1 = top level), over all environments."""
        depth: dict[str, int] = {}
        queue: deque[tuple[str, frozenset[str], int]] = deque()
        for name, value in self.requirements:
            extras = re.match(r"\s*\[([^\]]*)\]", value)
            chosen = frozenset(e.strip() for e in extras.group(1).split(",")) if extras else ()
            queue.append((normalize(name), frozenset(chosen), 1))
        seen: set[tuple[str, frozenset[str]]] = set()
        while queue:
            key, extras, level = queue.popleft()
            if (key, extras) in seen:
                continue
            seen.add((key, extras))
            depth.setdefault(key, level)
            project = self.projects[key]
            for requirement in project.requires + project.build_requires:
                target, wanted, marker = split_requirement(requirement)
                if marker_applies(marker, extras):
                    queue.append((normalize(target), wanted, level + 1))
        return depth

    def file_count(self) -> int:
        return sum(
            len(r.wheels) + (r.sdist is not None)
            for p in self.projects.values()
            for r in p.releases
        )


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(requirement: str) -> tuple[str, frozenset[str], str]:
    """(name, extras, marker) of a requirement string this module wrote."""
    head, _, marker = requirement.partition(";")
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", head)
    assert match is not None, requirement
    extras = frozenset(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
    return match.group(1), extras, marker.strip()


def marker_applies(marker: str, extras: frozenset[str]) -> bool:
    """Whether a marker written by this module holds in some environment."""
    if not marker:
        return True
    extra = re.search(r'extra == "([^"]+)"', marker)
    if extra and extra.group(1) not in extras:
        return False
    rest = re.sub(r'\s*(and\s+)?extra == "[^"]+"', "", marker).strip()
    rest = re.sub(r"^and\s+", "", rest)
    return not rest or rest not in DEAD_MARKERS


def generate(scale: Scale, seed: int = 2) -> Workload:
    rng = random.Random(f"{seed}-{scale.name}")
    names = _names(rng, scale.projects + scale.orphans)
    projects: dict[str, Project] = {}
    backends = _backends(rng)
    for project in backends:
        projects[project.key] = project
    levels = _level_sizes(scale, len(backends))
    by_level: list[list[Project]] = []
    big_levels = {2: (200, 160, 120, 90), 4: (75, 60, 55, 50)} if scale.big_files else {}
    for level, size in enumerate(levels):
        row = []
        for index in range(size):
            kind = "pure"
            if level in big_levels and index == 0:
                kind = "big"
            elif rng.random() < 0.12:
                kind = "binary"
            project = Project(name=names.pop(), level=level, kind=kind)
            project.legacy_sdist_name = rng.random() < 0.1
            row.append(project)
            projects[project.key] = project
        by_level.append(row)
    orphans = [
        Project(name=names.pop(), level=len(levels), kind="pure") for _ in range(scale.orphans)
    ]
    for project in orphans:
        projects[project.key] = project

    giants = _pick_giants(rng, by_level, scale.giants)
    for project in projects.values():
        if project.key in giants:
            project.releases = _giant_releases(rng, giants[project.key])
        elif project.kind != "backend":
            big = big_levels.get(project.level) if project.kind == "big" else None
            project.releases = _releases(rng, project, scale, big)
    _wire(rng, by_level, orphans)
    for project in projects.values():
        if project.kind != "backend":
            _build_system(rng, project)
    requirements = _requirements(rng, by_level[0])
    return Workload(scale=scale, seed=seed, projects=projects, requirements=requirements)


def _names(rng: random.Random, count: int) -> list[str]:
    """Unique project names; some as authors write them (Mixed_Case, dotted, dashed)."""
    names: dict[str, str] = {}
    while len(names) < count:
        head = rng.choice(SYLLABLES) + rng.choice(SYLLABLES)
        tail = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(0, 1)))
        tail += rng.choice(SUFFIXES)
        if not tail:
            name = head
        else:
            style = rng.random()
            if style < 0.08:
                name = f"{head.capitalize()}_{tail.capitalize()}"
            elif style < 0.14:
                name = f"{head}.{tail}"
            elif style < 0.3:
                name = f"{head}-{tail}"
            else:
                name = head + tail
        names.setdefault(normalize(name), name)
    return sorted(names.values(), key=lambda _: rng.random())


def _level_sizes(scale: Scale, backends: int) -> list[int]:
    rest = scale.projects - backends - scale.top_level
    weights = [1.2, 1.4, 1.4, 1.2, 1.0, 0.8, 0.6, 0.5, 0.4][: scale.levels - 1]
    sizes = [max(1, round(rest * w / sum(weights))) for w in weights]
    sizes[-1] += rest - sum(sizes)
    return [scale.top_level, *sizes]


def _backends(rng: random.Random) -> list[Project]:
    """Build backends: what sdists' pyproject.toml ask for, like on the real index."""
    table = {
        "setuptools": ("68.0.0", "69.5.1", "75.1.0"),
        "wheel": ("0.41.2", "0.43.0", "0.44.0"),
        "flit_core": ("3.8.0", "3.9.0"),
        "hatchling": ("1.21.0", "1.25.0"),
        "pathspec": ("0.11.2", "0.12.1"),
        "pluggy": ("1.4.0", "1.5.0"),
        "trove-classifiers": ("2024.7.2",),
    }
    projects = []
    for name, versions in table.items():
        project = Project(name=name, level=-1, kind="backend")
        for index, version in enumerate(versions):
            size = int(rng.lognormvariate(12.5, 0.6))
            release = Release(version=version, upload_time=_upload_time(rng, 2022, index))
            release.wheels = [("py3-none-any", size)]
            release.sdist = ("tar.gz", int(size * 1.3))
            project.releases.append(release)
        projects.append(project)
    by_key = {p.key: p for p in projects}
    by_key["hatchling"].requires = ["pathspec>=0.10.1", "pluggy>=1.0.0", "trove-classifiers"]
    by_key["wheel"].build_requires = ["flit_core>=3.8,<4"]
    by_key["wheel"].build_backend = "flit_core.buildapi"
    for key in ("setuptools", "flit-core", "hatchling"):
        by_key[key].build_backend = "in-tree"  # build-system requires = []
    for key in ("pathspec", "pluggy", "trove-classifiers"):
        by_key[key].build_requires = ["flit_core>=3.2,<4"]
        by_key[key].build_backend = "flit_core.buildapi"
    return projects


def _upload_time(rng: random.Random, year: int, index: int) -> str:
    day = min(364, rng.randint(0, 120) + index * 70)
    return (
        f"{year + day // 365:04d}-{1 + day % 365 // 31:02d}-{1 + day % 31 % 28:02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}."
        f"{rng.randint(0, 999999):06d}Z"
    )


def _size(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return max(low, min(high, int(rng.lognormvariate(math.log(median), sigma))))


def _releases(
    rng: random.Random, project: Project, scale: Scale, big_sizes: tuple[int, ...] | None
) -> list[Release]:
    count = rng.choices((1, 2, 3, 4, 5), weights=(2, 4, 4, 2, 1))[0]
    major = rng.randint(0, 3)
    minor = rng.randint(0, 9)
    year = rng.randint(2019, 2022)
    releases = []
    for index in range(count):
        if index and rng.random() < 0.35:
            major, minor = major + 1, 0
        elif index:
            minor += 1
        version = f"{major}.{minor}.{rng.randint(0, 4)}"
        releases.append(Release(version=version, upload_time=_upload_time(rng, year, index)))
    newest = releases[-1]
    if count > 1 and rng.random() < 0.12 and big_sizes is None:
        newest.requires_python = ">=3.10"  # the 3.9 environment takes the one before
    if count > 2 and rng.random() < 0.06:
        releases[-2].yanked = "broken build"
    if rng.random() < 0.06:
        pre = Release(version=f"{major + 1}.0.0rc1", upload_time=_upload_time(rng, year + 1, count))
        releases.append(pre)
    for release in releases:
        _files(rng, project, release, scale)
    if big_sizes is not None:
        newest.wheels = [
            (f"cp39-abi3-{platform}", size * MB) for platform, size in zip(BIG_PLATFORMS, big_sizes)
        ]
    return releases


def _files(rng: random.Random, project: Project, release: Release, scale: Scale) -> None:
    cap = scale.max_small_size
    if project.kind == "pure":
        size = _size(rng, 40_000, 1.2, 3_000, cap)
        sdist_format = "zip" if rng.random() < 0.05 else "tar.gz"
        roll = rng.random()
        if roll < 0.05:
            release.sdist = (sdist_format, int(size * 1.4))  # sdist only
            return
        release.wheels = [("py3-none-any" if roll < 0.85 else "py2.py3-none-any", size)]
        if roll > 0.1:
            release.sdist = (sdist_format, int(size * 1.4))
        return
    # binary (and the small older releases of a big project): per-Python or abi3 wheels
    release.sdist = ("tar.gz", _size(rng, 400_000, 1.0, 20_000, cap))
    platforms = [p for p in PLATFORMS if rng.random() < 0.7] or list(PLATFORMS[:1])
    median = 600_000 if scale.big_files else 200_000
    if rng.random() < 0.5:
        pythons = ["cp39-abi3"]
    else:
        pythons = [f"{py}-{py}" for py in rng.sample(PYTHONS, rng.randint(1, 3))]
    for python in pythons:
        for platform in platforms:
            release.wheels.append((f"{python}-{platform}", _size(rng, median, 1.0, 50_000, cap)))


#: The shapes of the largest projects on PyPI (as of 2026): versions, and per version
#: the Python tags and the platforms of its wheels ("none" for a pure wheel); the newest
#: versions need newer Pythons, a few are yanked, some are pre-releases.
@dataclass(frozen=True)
class GiantShape:
    like: str
    versions: int
    pythons: tuple[str, ...]
    platforms: tuple[str, ...]


_MANY = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_17_i686.manylinux2014_i686",
    "manylinux_2_17_ppc64le.manylinux2014_ppc64le",
    "manylinux_2_17_s390x.manylinux2014_s390x",
    "manylinux_2_17_armv7l.manylinux2014_armv7l",
    "musllinux_1_1_x86_64",
    "musllinux_1_2_x86_64",
    "musllinux_1_1_aarch64",
    "musllinux_1_2_aarch64",
    "win32",
    "win_amd64",
    "win_arm64",
    "macosx_10_12_x86_64",
    "macosx_11_0_arm64",
    "macosx_10_9_universal2",
)
_CPYTHONS = ("cp38-cp38", "cp39-cp39", "cp310-cp310", "cp311-cp311", "cp312-cp312", "cp313-cp313")
_PYPY = "pp310-pypy310_pp73"
GIANTS = (
    GiantShape("botocore", 1500, ("py3-none",), ("any",)),
    GiantShape("numpy", 110, _CPYTHONS[:5], _MANY[:5] + _MANY[8:10] + _MANY[12:18]),
    GiantShape("grpcio", 220, _CPYTHONS[:5], _MANY[:5] + _MANY[12:14] + _MANY[15:18]),
    GiantShape(
        "cryptography",
        150,
        ("cp37-abi3", "cp311-abi3", _PYPY),
        _MANY[:4] + _MANY[8:12] + _MANY[13:14] + _MANY[15:18],
    ),
    GiantShape("pydantic-core", 110, (*_CPYTHONS, _PYPY), _MANY),
    GiantShape(
        "protobuf",
        200,
        ("cp39-abi3", "py3-none"),
        (
            "manylinux2014_x86_64",
            "manylinux2014_aarch64",
            "win_amd64",
            "macosx_10_9_universal2",
            "any",
        ),
    ),
    GiantShape("pandas", 100, _CPYTHONS[:5], _MANY[:3] + _MANY[8:11] + _MANY[12:14] + _MANY[15:18]),
    GiantShape("pillow", 120, (*_CPYTHONS[:5], _PYPY), _MANY[:5] + _MANY[8:18]),
)


def _pick_giants(
    rng: random.Random, by_level: list[list[Project]], count: int
) -> dict[str, GiantShape]:
    """Which projects of the graph get a giant's shape: some on every level."""
    candidates = [p for row in by_level for p in row if p.kind == "pure"]
    rng.shuffle(candidates)
    shapes = [GIANTS[index % len(GIANTS)] for index in range(count)]
    return {project.key: shape for project, shape in zip(candidates, shapes)}


def _giant_releases(rng: random.Random, shape: GiantShape) -> list[Release]:
    """``shape.versions`` releases, oldest first; all but the newest few are small files."""
    releases = []
    major, minor, patch = rng.randint(0, 1), 0, 0
    year = 2012
    for index in range(shape.versions):
        roll = rng.random()
        if roll < 0.03:
            major, minor, patch = major + 1, 0, 0
        elif roll < 0.3:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        if index and index % max(1, shape.versions // 12) == 0:
            year += 1
        newest = index >= shape.versions - 4
        version = f"{major}.{minor}.{patch}"
        if rng.random() < 0.04:
            version += f"rc{rng.randint(1, 3)}"
        release = Release(version=version, upload_time=_upload_time(rng, min(year, 2025), index))
        # newer releases drop old Pythons: the 3.9 environment walks back to older ones
        fraction = index / shape.versions
        release.requires_python = (
            ">=3.10" if fraction > 0.9 else ">=3.9" if fraction > 0.6 else ">=3.8"
        )
        if rng.random() < 0.01:
            release.yanked = "broken"
        size = (lambda: _size(rng, 2 * MB, 0.8, 200_000, 4 * MB)) if newest else (lambda: 2_000)
        for python in shape.pythons:
            for platform in shape.platforms:
                if (platform == "any") != python.endswith("-none"):
                    continue
                if platform != "any" and rng.random() < 0.1:
                    continue  # not every wheel is built for every release
                release.wheels.append((f"{python}-{platform}", size()))
        release.sdist = ("tar.gz", size())
        releases.append(release)
    return releases


def _spec(rng: random.Random, target: Project) -> str:
    """A version specifier on ``target`` that some release every environment runs meets.

    All the specifiers ever made for one target hold together (the newest safe release
    below the highest major meets every one of them), so the joint resolution of the
    whole graph has a solution, though caps make the resolver backtrack to find it.
    """
    safe = target.safe_releases()
    if not safe:
        return ""
    roll = rng.random()
    oldest, newest = safe[0], safe[-1]
    majors = {int(r.version.split(".")[0]) for r in safe}
    below = [r for r in safe if int(r.version.split(".")[0]) < max(majors)] or safe
    keep = below[-1]  # meets every specifier below
    if roll < 0.3:
        return ""
    if roll < 0.65:
        return f">={oldest.version}"
    if roll < 0.88:
        return f">={rng.choice(below).version}"
    if roll < 0.94 and len(majors) > 1:
        return f"<{max(majors)}"  # a cap: an older release is mirrored too
    excludable = [r for r in safe if r is not keep and r is not newest and r is not oldest]
    if excludable:
        return f">={oldest.version},!={rng.choice(excludable).version}"
    return f">={oldest.version}"


def _wire(rng: random.Random, by_level: list[list[Project]], orphans: list[Project]) -> None:
    for level in range(len(by_level) - 1):
        parents, children = by_level[level], by_level[level + 1]
        for child in children:
            parent = rng.choice(parents)
            # the big wheels are wanted by every environment, so both tools fetch all of them
            conditional = rng.random() < 0.08 and child.kind != "big"
            marker = rng.choice(LIVE_MARKERS) if conditional else ""
            _require(rng, parent, child, marker=marker)
        for parent in parents:
            for _ in range(rng.randint(0, 3)):
                skip = level + 2 < len(by_level) and rng.random() < 0.15
                child = rng.choice(by_level[level + 2] if skip else children)
                roll = rng.random()
                if roll < 0.7:
                    _require(rng, parent, child)
                elif roll < 0.85:
                    _require(rng, parent, child, marker=rng.choice(LIVE_MARKERS))
                else:
                    _require(rng, parent, child, extra=rng.choice(("speed", "socks")))
    leaves = [p for row in by_level[-3:] for p in row]
    for orphan in orphans:
        parent = rng.choice([p for row in by_level for p in row])
        if rng.random() < 0.5:
            _require(rng, parent, orphan, extra=rng.choice(("test", "docs")))
        else:
            _require(rng, parent, orphan, marker=rng.choice(DEAD_MARKERS))
        if rng.random() < 0.5:
            _require(rng, orphan, rng.choice(leaves))


def _require(
    rng: random.Random, parent: Project, child: Project, *, marker: str = "", extra: str = ""
) -> None:
    if any(normalize(split_requirement(r)[0]) == child.key for r in parent.requires):
        return
    name = child.name if rng.random() < 0.8 else child.name.upper()
    wanted = ""
    if child.extras and rng.random() < 0.3:
        wanted = f"[{rng.choice(child.extras)}]"
    requirement = f"{name}{wanted}{_spec(rng, child)}"
    conditions = [c for c in (marker, f'extra == "{extra}"' if extra else "") if c]
    if extra and extra not in parent.extras:
        parent.extras.append(extra)
    if conditions:
        requirement += "; " + " and ".join(conditions)
    parent.requires.append(requirement)


def _build_system(rng: random.Random, project: Project) -> None:
    roll = rng.random()
    if roll < 0.6:
        project.build_requires = ["setuptools>=61", "wheel"]
    elif roll < 0.8:
        project.build_requires = ["flit_core>=3.2,<4"]
        project.build_backend = "flit_core.buildapi"
    else:
        project.build_requires = ["hatchling>=1.18"]
        project.build_backend = "hatchling.build"


def _requirements(rng: random.Random, top: list[Project]) -> list[tuple[str, str]]:
    lines = []
    for index, project in enumerate(top):
        roll = rng.random()
        spec = _spec(rng, project)
        offered = [e for e in project.extras if e in ("speed", "socks")]
        if offered and roll < 0.5:
            lines.append((project.name, f"[{offered[0]}]{spec}"))
        elif index == 1:
            lines.append((project.name, f'{spec}; sys_platform == "win32"'.lstrip()))
        elif index == 2 and len(project.safe_releases()) > 1:
            older = project.safe_releases()[0].version
            lines.append((project.name, f"\n  =={older}\n  >={older}"))
        else:
            lines.append((project.name, spec))
    return lines
