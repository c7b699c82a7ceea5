"""Shared test helpers: clean client environments, configs, and the synthetic project graph."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import NoReturn

import pytest
from builders import build_sdist, build_wheel
from upstream import FixtureIndex


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip a test this machine lacks something for; under CI (``CI=true``), fail instead.

    CI runs every test: there a missing Python 3.7, uv, vermin, openssl, nginx or root is a
    broken CI machine, not a reason to pass with less tested.
    """
    __tracebackhide__ = True  # report the caller's line, not this one
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so this cannot be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def clean_client_env(**extra: str) -> dict[str, str]:
    """The environment for a real pip or uv: no global settings that could mask the mirror."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_", "PYTHON")) and key != "VIRTUAL_ENV"
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_NO_CACHE="1",
    )
    env.update(extra)
    return env


def write_config(path: Path, environments: dict[str, dict[str, str]], requirements: str) -> Path:
    lines = []
    for name, values in environments.items():
        lines.append(f"[env.{name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    lines += ["[requirements]", requirements.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


#: Client environments unlike each other and unlike this machine.
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "linux39": {
        "python_version": "3.9",
        "python_full_version": "3.9.18",
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
    },
    "linux312": {
        "python_version": "3.12",
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "glibc_version": "2.28",
    },
    "musl312": {
        "python_version": "3.12",
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "musl_version": "1.2",
    },
    "win311": {"python_version": "3.11", "sys_platform": "win32", "platform_machine": "AMD64"},
    "mac312": {
        "python_version": "3.12",
        "sys_platform": "darwin",
        "platform_machine": "arm64",
        "macos_version": "12.0",
    },
}

#: How pip and uv are told to pretend to be each environment.
PIP_TARGETS = {
    "linux39": "--platform manylinux2014_x86_64 --python-version 3.9 --abi cp39",
    "linux312": "--platform manylinux_2_28_x86_64 --python-version 3.12 --abi cp312",
    # pip widens manylinux and macOS levels itself, but not musllinux ones
    "musl312": "--platform musllinux_1_2_x86_64 --platform musllinux_1_1_x86_64"
    " --python-version 3.12 --abi cp312",
    "win311": "--platform win_amd64 --python-version 3.11 --abi cp311",
    "mac312": "--platform macosx_12_0_arm64 --python-version 3.12 --abi cp312",
}
UV_TARGETS = {
    "linux39": ["--python-platform", "x86_64-manylinux_2_17", "--python-version", "3.9"],
    "linux312": ["--python-platform", "x86_64-manylinux_2_28", "--python-version", "3.12"],
    "musl312": ["--python-platform", "x86_64-unknown-linux-musl", "--python-version", "3.12"],
    "win311": ["--python-platform", "x86_64-pc-windows-msvc", "--python-version", "3.11"],
    "mac312": ["--python-platform", "aarch64-apple-darwin", "--python-version", "3.12"],
}

#: Requirements whose whole graph has a wheel for every environment above.
GRAPH_REQUIREMENTS = """
app = [fancy]
native =
cyc-a =
yanky =
pre =
onlypre =
"""

NATIVE_WHEEL_TAGS = (
    "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_28_x86_64",
    "cp312-cp312-musllinux_1_1_x86_64",
    "cp311-cp311-win_amd64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-macosx_14_0_arm64",
    "cp313-cp313-manylinux_2_17_x86_64",
)


def populate_graph(index: FixtureIndex, dists: Path) -> None:
    """A project graph with extras, markers, requires-python, tags, a cycle, yanked and pre."""
    wheel = lambda *a, **k: index.add(build_wheel(dists, *a, **k))  # noqa: E731
    sdist = lambda *a, **k: index.add(build_sdist(dists, *a, **k))  # noqa: E731
    app_requires = [
        "lib>=1",
        'extrasdep; extra == "fancy"',
        'winonly; sys_platform == "win32"',
        'oldpy; python_version < "3.10"',
    ]
    wheel("app", "1.0", requires=app_requires, extras=["fancy"])
    sdist("app", "1.0", requires=app_requires, build_requires=["flit_core>=3"])
    wheel("lib", "1.0")
    lib2 = build_wheel(dists, "lib", "2.0", requires_python=">=3.10")
    index.add(lib2, requires_python=">=3.10")
    wheel("extrasdep", "1.0", requires=["deepdep[speed]>=1"])
    wheel(
        "deepdep",
        "1.0",
        requires=['speedy; extra == "speed"', 'slowpoke; extra == "slow"'],
        extras=["speed", "slow"],
    )
    wheel("speedy", "1.0")
    wheel("slowpoke", "1.0")
    wheel("winonly", "1.0")
    wheel("oldpy", "1.0")
    wheel("flit-core", "3.9.0")
    for tags in NATIVE_WHEEL_TAGS:
        wheel("native", "1.0", tags=tags)
    sdist("native", "1.0", build_requires=["flit_core>=3"])
    wheel("cyc-a", "1.0", requires=["cyc-b"])
    wheel("cyc-b", "1.0", requires=["cyc-a>=1"])
    wheel("yanky", "1.0")
    index.add(build_wheel(dists, "yanky", "2.0"), yanked="broken build")
    wheel("pre", "1.0")
    wheel("pre", "2.0b1")
    wheel("onlypre", "1.0a1")


def populate_many(index: FixtureIndex, dists: Path, count: int = 100) -> str:
    """``count`` projects in a binary tree of dependencies (p000 needs p001 and p002, ...).

    Every project has a wheel; every 7th also an sdist (whose build needs flit-core),
    every 10th a 300 kB wheel (so transfers can break half-way). Returns the
    [requirements] that pull in all of them.
    """
    for number in range(count):
        name = f"p{number:03d}"
        children = [f"p{c:03d}>=1" for c in (2 * number + 1, 2 * number + 2) if c < count]
        payload = (
            {f"{name}/blob.bin": random.Random(number).randbytes(300_000)}
            if number % 10 == 0
            else None
        )
        index.add(build_wheel(dists, name, "1.0", requires=children, extra_members=payload))
        if number % 7 == 0:
            index.add(
                build_sdist(dists, name, "1.0", requires=children, build_requires=["flit_core"])
            )
    index.add(build_wheel(dists, "flit-core", "3.9.0"))
    return "p000 =\n"


def tree_snapshot(index: Path, *, state: bool = True) -> dict[str, bytes]:
    """Every file of a mirrored tree (relative path → bytes), without the run's own files.

    ``state=False`` leaves out the hidden state (per project, and the saved plans),
    which names the upstream's URL (and so its port).
    """
    skip = {"server.py", "morgan.ini", ".morgan.lock"}
    if not state:
        skip |= {".morgan-state.json", ".morgan-plans.json"}
    return {
        str(path.relative_to(index)): _comparable(index, path)
        for path in sorted(index.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def _comparable(index: Path, path: Path) -> bytes:
    """A file's bytes; of the manifest, its distributions only (the rest lists the lock
    files, which name the upstream's URL, and server.py, which a test may have put there)."""
    if path == index / "manifest.json":
        return json.dumps(json.loads(path.read_bytes())["files"], sort_keys=True).encode()
    return path.read_bytes()
