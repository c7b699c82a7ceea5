"""Lock files given to ``morgan mirror --lock``: which packages and files apply per environment.

Hand-written lock files cover each format's corners and every malformed input (each
one a one-line error naming the file, the line or package, and the fix); files made
by real uv, against the local fixture index, check that what uv writes is read the
way uv itself would install it, for a Linux and a Windows client.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from builders import build_sdist, build_wheel
from server_support import uv_path
from support import ENVIRONMENTS, clean_client_env, skip_unless_ci
from upstream import FixtureIndex

from morgan.environments import Environment
from morgan.errors import MorganError
from morgan.lockinput import (
    ExpectedFile,
    LockedRequirement,
    LockInput,
    LockInputError,
    LockMarker,
    PylockInput,
    RequirementsInput,
    UvLockInput,
    files_from_page,
    pick_files,
    read_lock,
)
from morgan.models import DistributionFile

LINUX = Environment.from_ini_section("linux", ENVIRONMENTS["linux312"])
WINDOWS = Environment.from_ini_section("win", ENVIRONMENTS["win311"])
MAC = Environment.from_ini_section("mac", ENVIRONMENTS["mac312"])
OLD = Environment.from_ini_section("old", ENVIRONMENTS["linux39"])


def sha(label: str) -> str:
    """A distinct, well-formed sha256 for a made-up file."""
    return hashlib.sha256(label.encode()).hexdigest()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pins(lock: LockInput, env: Environment) -> set[str]:
    """``name==version`` of every package the lock installs in ``env``."""
    return {f"{r.name}=={r.version}" for r in lock.for_environment(env)}


def only(lock: LockInput, env: Environment, name: str) -> LockedRequirement:
    found = [r for r in lock.for_environment(env) if r.name == name]
    assert len(found) == 1, found
    return found[0]


def picked(lock: LockInput, env: Environment, name: str) -> list[str]:
    return [f.filename for f in pick_files(only(lock, env, name), env)]


# -- PEP 751 --------------------------------------------------------------------------------

FILES = "https://files.example"
N_2_17 = "native-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
N_2_28 = "native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"
N_WIN = "native-1.0-cp311-cp311-win_amd64.whl"
N_SDIST = "native-1.0.tar.gz"
NATIVE_WHEELS = (N_2_17, N_2_28, N_WIN)
NATIVE_FILES = {name: sha(name) for name in (*NATIVE_WHEELS, N_SDIST)}
WIN = "sys_platform == 'win32'"
NOT_WIN = "sys_platform != 'win32'"


def toml(document: dict[str, Any]) -> str:
    return tomli_w.dumps(document)


def hashed(filename: str, **keys: Any) -> dict[str, Any]:
    """A PEP 751 file table naming ``filename``, with its sha256."""
    return {"name": filename, **keys, "hashes": {"sha256": sha(filename)}}


def named(name: str, version: str, **keys: Any) -> dict[str, Any]:
    """A PEP 751 package with one pure-Python wheel."""
    wheel = hashed(f"{name}-{version}-py3-none-any.whl")
    return {"name": name, "version": version, **keys, "wheels": [wheel]}


PYLOCK = {
    "lock-version": "1.0",
    "created-by": "hand",
    "requires-python": ">=3.10",
    "environments": ["sys_platform == 'linux'", WIN],
    "extras": ["fancy"],
    "dependency-groups": ["dev"],
    "packages": [
        {
            "name": "Native",
            "version": "1.0",
            "index": "https://pypi.example/simple/",
            "sdist": {
                "name": N_SDIST,
                "url": f"{FILES}/n.tgz",
                "size": 10,
                "hashes": {"sha256": sha(N_SDIST)},
            },
            "wheels": [
                {"url": f"{FILES}/{N_2_17}", "size": 20, "hashes": {"sha256": sha(N_2_17)}},
                {"url": f"{FILES}/{N_2_28}", "hashes": {"sha256": sha(N_2_28).upper()}},
                {"url": f"{FILES}/{N_WIN}", "hashes": {"sha256": sha(N_WIN), "sha512": "0" * 128}},
            ],
        },
        {
            "name": "plus",
            "wheels": [
                {
                    "url": f"{FILES}/a/plus-1.0%2Blocal-py3-none-any.whl?x=1",
                    "hashes": {"sha256": sha("plus")},
                }
            ],
        },
        {
            "name": "winonly",
            "version": "1.0",
            "marker": WIN,
            "wheels": [
                {"path": "files\\winonly-1.0-py3-none-any.whl", "hashes": {"sha256": sha("w")}}
            ],
        },
        named("fancydep", "2.0", marker="'fancy' in extras"),
        named("ghost", "1.0", marker="'undeclared' in extras or 'nogroup' in dependency_groups"),
        named("devtool", "1.0", marker="'dev' in dependency_groups and python_version >= '3.12'"),
        {
            **named("newpy", "1.0", **{"requires-python": ">=3.12"}),
            "sdist": hashed("newpy-1.0.tar.gz"),
        },
        {
            "name": "fromgit",
            "version": "0.1",
            "vcs": {"type": "git", "url": "https://user:token@git.example/fromgit.git"},
        },
        {"name": "app", "directory": {"path": ".", "editable": True}},
        {
            "name": "tarball",
            "marker": WIN,
            "archive": {"path": "vendor/tarball-1.0.tar.gz", "hashes": {"sha256": sha("t")}},
        },
    ],
}


@pytest.fixture
def pylock(tmp_path: Path) -> LockInput:
    return read_lock(write(tmp_path, "pylock.toml", toml(PYLOCK)))


def test_pylock_packages_apply_by_marker_extras_and_groups(pylock: LockInput) -> None:
    assert isinstance(pylock, PylockInput)
    assert pylock.format == "pylock"
    common = {"native==1.0", "plus==1.0+local", "fancydep==2.0", "newpy==1.0"}
    # devtool's marker also asks for Python 3.12; ghost names an extra and a group
    # the lock does not declare, so no choice of them installs it
    assert pins(pylock, LINUX) == common | {"devtool==1.0"}
    assert pins(pylock, WINDOWS) == common | {"winonly==1.0"}


def test_pylock_files_are_named_by_name_url_or_path(pylock: LockInput) -> None:
    native = only(pylock, LINUX, "native")
    assert native.version.public == "1.0"
    assert native.files_known
    assert {f.filename: f.sha256 for f in native.files} == NATIVE_FILES  # lower-cased
    sizes = {f.filename: f.size for f in native.files}
    assert sizes == {N_SDIST: 10, N_2_17: 20, N_2_28: None, N_WIN: None}
    assert native.sha256 == frozenset(NATIVE_FILES.values())
    assert native.index == "https://pypi.example/simple/"
    assert "pylock.toml" in native.origin
    assert "'native' 1.0" in native.origin
    # a URL's last path component, unquoted; a path's, with either separator
    assert [f.filename for f in only(pylock, LINUX, "plus").files] == [
        "plus-1.0+local-py3-none-any.whl"
    ]
    assert [f.filename for f in only(pylock, WINDOWS, "winonly").files] == [
        "winonly-1.0-py3-none-any.whl"
    ]


def test_pick_files_takes_the_best_wheel_by_tag_rank_and_the_sdist(pylock: LockInput) -> None:
    # glibc 2.28 is stated: pip prefers manylinux_2_28 to manylinux2014
    assert picked(pylock, LINUX, "native") == [N_2_28, N_SDIST]
    assert picked(pylock, WINDOWS, "native") == [N_WIN, N_SDIST]
    every = pick_files(only(pylock, LINUX, "native"), LINUX, all_wheels=True)
    assert [f.filename for f in every] == [N_2_28, N_2_17, N_SDIST]
    # requires-python >=3.12: nothing of it installs on Windows' 3.11, not even the sdist
    assert picked(pylock, LINUX, "newpy") == ["newpy-1.0-py3-none-any.whl", "newpy-1.0.tar.gz"]
    assert picked(pylock, WINDOWS, "newpy") == []


def test_pylock_sources_no_index_serves_are_skipped_with_a_warning(
    pylock: LockInput, caplog: pytest.LogCaptureFixture
) -> None:
    linux = pylock.select(LINUX)
    assert [(s.name, s.kind) for s in linux.skipped] == [("app", "local"), ("fromgit", "vcs")]
    fromgit = linux.skipped[1]
    assert "token" not in fromgit.source
    assert "git.example/fromgit.git" in fromgit.source
    windows = pylock.select(WINDOWS)
    assert [(s.name, s.kind) for s in windows.skipped] == [
        ("app", "local"),
        ("fromgit", "vcs"),
        ("tarball", "archive"),
    ]
    with caplog.at_level(logging.INFO, logger="morgan.lockinput"):
        pylock.for_environment(WINDOWS)
    levels = {r.getMessage().split(": ")[1]: r.levelno for r in caplog.records}
    assert levels == {
        "package 'app'": logging.INFO,
        "package 'fromgit' 0.1": logging.WARNING,
        "package 'tarball'": logging.WARNING,
    }
    assert all("token" not in r.getMessage() for r in caplog.records)
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_pylock_covers_only_its_environments_and_python(pylock: LockInput) -> None:
    assert pylock.covers(LINUX)
    assert pylock.covers(WINDOWS)
    assert not pylock.covers(MAC)
    assert "environments" in (pylock.not_covered(MAC) or "")
    assert not pylock.covers(OLD)
    assert "requires-python >=3.10" in (pylock.not_covered(OLD) or "")
    with pytest.raises(LockInputError) as caught:
        pylock.for_environment(MAC)
    message = str(caught.value)
    assert message.startswith(str(pylock.path))
    assert "'mac'" in message
    assert "\n" not in message


def test_a_minimal_pylock_covers_everything(tmp_path: Path) -> None:
    lock = read_lock(write(tmp_path, "pylock.dev.toml", 'lock-version = "1.7"\npackages = []\n'))
    assert isinstance(lock, PylockInput)
    assert lock.covers(MAC)
    assert lock.for_environment(MAC) == []


# -- uv.lock --------------------------------------------------------------------------------

REGISTRY = {"registry": "https://pypi.example/simple"}
SPEEDY = "speedy-1.0-py3-none-any.whl"


def uv_wheel(name: str, version: str) -> dict[str, Any]:
    filename = f"{name}-{version}-py3-none-any.whl"
    return {"url": f"{FILES}/{filename}", "hash": f"sha256:{sha(filename)}", "size": 7}


def uv_package(
    name: str, version: str, source: dict[str, str] = REGISTRY, **keys: Any
) -> dict[str, Any]:
    """A uv.lock package; from an index, with one pure-Python wheel."""
    table: dict[str, Any] = {"name": name, "version": version, "source": source}
    if "registry" in source:
        table["wheels"] = [uv_wheel(name, version)]
    return {**table, **keys}


def dep(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, **keys}


def uv_lock_text(*packages: dict[str, Any], **top: Any) -> str:
    return toml({"version": 1, "requires-python": ">=3.9", **top, "package": list(packages)})


UV_LOCK = uv_lock_text(
    {
        "name": "app",
        "version": "0.1",
        "source": {"editable": "."},
        "dependencies": [
            dep("forked", version="1.0", source=REGISTRY, marker=WIN),
            dep("forked", version="2.0", source=REGISTRY, marker=NOT_WIN),
            dep("localdep", marker=WIN),
            dep("fromgit", marker=WIN),
            dep("native"),
        ],
        "optional-dependencies": {
            "cpu": [
                dep(
                    "torchish",
                    version="1.0+cpu",
                    source=REGISTRY,
                    marker="extra == 'extra-3-app-cpu'",
                )
            ],
            "gpu": [
                dep(
                    "torchish",
                    version="1.0",
                    source=REGISTRY,
                    marker="extra == 'extra-3-app-gpu' and extra != 'extra-3-app-cpu'",
                )
            ],
        },
        "dev-dependencies": {"dev": [dep("devtool", marker="python_full_version >= '3.12'")]},
    },
    {
        "name": "localdep",
        "version": "0.2",
        "source": {"directory": "libs/localdep"},
        "dependencies": [dep("deepdep", extra=["speed"], marker="platform_machine == 'AMD64'")],
    },
    uv_package(
        "deepdep",
        "1.0",
        **{"optional-dependencies": {"speed": [dep("speedy")], "slow": [dep("slowpoke")]}},
    ),
    {
        "name": "speedy",
        "version": "1.0",
        "source": {"registry": "../wheels"},
        "wheels": [{"path": SPEEDY, "hash": f"sha256:{sha(SPEEDY)}"}],
    },
    {
        "name": "native",
        "version": "1.0",
        "source": REGISTRY,
        "sdist": {"url": f"{FILES}/{N_SDIST}", "hash": f"sha256:{sha(N_SDIST)}", "size": 10},
        "wheels": [{"url": f"{FILES}/{n}", "hash": f"sha256:{sha(n)}"} for n in NATIVE_WHEELS],
    },
    uv_package("slowpoke", "1.0"),
    uv_package("forked", "1.0", **{"resolution-markers": [WIN]}),
    uv_package("forked", "2.0", **{"resolution-markers": [NOT_WIN]}),
    uv_package("torchish", "1.0+cpu"),
    uv_package("torchish", "1.0"),
    uv_package("devtool", "1.0"),
    uv_package("unreached", "1.0"),
    uv_package("fromgit", "0.1", {"git": "https://user:secret@git.example/fromgit.git?rev=v1#abc"}),
    revision=3,
    **{
        "requires-python": ">=3.10",
        "resolution-markers": [WIN, NOT_WIN],
        "conflicts": [[{"package": "app", "extra": "cpu"}, {"package": "app", "extra": "gpu"}]],
    },
)


@pytest.fixture
def uv_lock(tmp_path: Path) -> LockInput:
    return read_lock(write(tmp_path, "uv.lock", UV_LOCK))


def test_uv_lock_is_walked_from_the_project_along_edges_that_hold(uv_lock: LockInput) -> None:
    assert isinstance(uv_lock, UvLockInput)
    assert uv_lock.format == "uv.lock"
    # Both sides of the conflicting extras cpu and gpu may be installed, so both torchish;
    # the path dependency localdep only applies on Windows, and with it deepdep[speed]
    # (speedy, not slowpoke); nothing depends on unreached.
    assert pins(uv_lock, LINUX) == {
        "devtool==1.0",
        "forked==2.0",
        "native==1.0",
        "torchish==1.0",
        "torchish==1.0+cpu",
    }
    assert pins(uv_lock, WINDOWS) == {
        "forked==1.0",
        "native==1.0",
        "torchish==1.0",
        "torchish==1.0+cpu",
        "deepdep==1.0",
        "speedy==1.0",
    }


def test_uv_lock_skips_the_project_path_dependencies_and_git(uv_lock: LockInput) -> None:
    assert [(s.name, s.kind) for s in uv_lock.select(LINUX).skipped] == [("app", "local")]
    windows = uv_lock.select(WINDOWS).skipped
    assert [(s.name, s.kind, s.source) for s in windows] == [
        ("app", "local", "."),
        ("fromgit", "vcs", "https://***@git.example/fromgit.git?rev=v1#abc"),
        ("localdep", "local", "libs/localdep"),
    ]
    assert "secret" not in windows[1].describe()


def test_uv_lock_files_and_their_pick(uv_lock: LockInput) -> None:
    native = only(uv_lock, LINUX, "native")
    assert {f.filename: f.sha256 for f in native.files} == NATIVE_FILES
    assert native.index == "https://pypi.example/simple"
    assert picked(uv_lock, LINUX, "native") == [N_2_28, N_SDIST]
    assert picked(uv_lock, WINDOWS, "native") == [N_WIN, N_SDIST]
    speedy = only(uv_lock, WINDOWS, "speedy")  # from a local registry: a path, no size
    assert speedy.files == (ExpectedFile(SPEEDY, sha(SPEEDY), None, SPEEDY),)
    assert uv_lock.index_urls == ("https://pypi.example/simple", "../wheels")


def test_uv_lock_covers_its_python_and_supported_markers(tmp_path: Path) -> None:
    lock = read_lock(write(tmp_path, "uv.lock", UV_LOCK))
    assert lock.covers(LINUX)
    assert not lock.covers(OLD)
    assert "3.9.18" in (lock.not_covered(OLD) or "")
    limited = UV_LOCK.replace(
        "revision = 3", "revision = 3\nsupported-markers = [\"os_name == 'posix'\"]"
    )
    lock = read_lock(write(tmp_path / "limited", "uv.lock", limited))
    assert lock.covers(LINUX)
    assert not lock.covers(WINDOWS)
    assert "supported-markers" in (lock.not_covered(WINDOWS) or "")


def test_uv_workspace_members_are_the_roots(tmp_path: Path) -> None:
    text = uv_lock_text(
        uv_package("one", "0.1", {"editable": "one"}, dependencies=[dep("two"), dep("a")]),
        uv_package("two", "0.1", {"editable": "two"}, dependencies=[dep("b", marker=WIN)]),
        uv_package("a", "1.0"),
        uv_package("b", "1.0"),
        manifest={"members": ["one", "two"]},
    )
    lock = read_lock(write(tmp_path, "uv.lock", text))
    assert pins(lock, LINUX) == {"a==1.0"}
    assert pins(lock, WINDOWS) == {"a==1.0", "b==1.0"}


def test_a_scripts_lock_starts_from_its_manifest_requirements(tmp_path: Path) -> None:
    text = uv_lock_text(
        uv_package("tool", "1.0", **{"resolution-markers": [WIN]}),
        uv_package(
            "tool",
            "2.0",
            **{"resolution-markers": [NOT_WIN], "optional-dependencies": {"x": [dep("xdep")]}},
        ),
        uv_package("winner", "1.0"),
        uv_package("xdep", "1.0"),
        manifest={"requirements": [dep("tool", extras=["x"]), dep("winner", marker=WIN)]},
        **{"resolution-markers": [WIN, NOT_WIN]},
    )
    lock = read_lock(write(tmp_path, "script.py.lock", text))
    assert isinstance(lock, UvLockInput)
    assert pins(lock, LINUX) == {"tool==2.0", "xdep==1.0"}
    assert pins(lock, WINDOWS) == {"tool==1.0", "winner==1.0"}


# -- requirements.txt -----------------------------------------------------------------------

REQUIREMENTS = f"""\
#
# This file is autogenerated by pip-compile with Python 3.12
#
--index-url https://pypi.example/simple
--extra-index-url=https://extra.example/simple
--trusted-host pypi.example
-r sub/base.txt
-c constraints-that-do-not-exist.txt

native==1.0 \\
    --hash=sha256:{sha(N_2_28)} \\
    --hash=sha256:{sha(N_WIN).upper()}
    # via app
winonly==1.0 ; sys_platform == "win32" \\
    --hash=sha256:{sha("winonly")} \\
    --hash=sha512:{"ab" * 64}
Fancy.Dep[extra]==2.0 --hash=sha256:{sha("fancydep")}  # a comment
forked===1.0 ; sys_platform == 'win32' --hash sha256:{sha("forked-1")}
forked==2.0 ; sys_platform != 'win32' --hash=sha256:{sha("forked-2")}

./vendor/localpkg
fromurl @ https://user:pw@files.example/fromurl-1.0.tar.gz --hash=sha256:{sha("fromurl")}
-e git+https://git.example/x.git#egg=x
"""
BASE = f"""\
helper==1.0 --hash=sha256:{sha("helper")}
native==1.0 --hash=sha256:{sha(N_SDIST)}
"""


@pytest.fixture
def requirements(tmp_path: Path) -> LockInput:
    write(tmp_path, "sub/base.txt", BASE)
    return read_lock(write(tmp_path, "requirements.txt", REQUIREMENTS))


def test_requirements_pins_apply_by_marker(requirements: LockInput) -> None:
    assert isinstance(requirements, RequirementsInput)
    assert requirements.covers(MAC)  # a requirements file says nothing of its clients
    common = {"native==1.0", "fancy-dep==2.0", "helper==1.0"}
    assert pins(requirements, LINUX) == common | {"forked==2.0"}
    assert pins(requirements, WINDOWS) == common | {"forked==1.0", "winonly==1.0"}
    assert requirements.index_urls == (
        "https://pypi.example/simple",
        "https://extra.example/simple",
    )


def test_requirements_hashes_are_sha256_only_and_pins_of_one_version_merge(
    requirements: LockInput,
) -> None:
    native = only(requirements, LINUX, "native")
    assert not native.files_known
    assert native.sha256 == {sha(N_2_28), sha(N_WIN), sha(N_SDIST)}
    assert native.origin.endswith("base.txt:2")  # the first pin read (-r comes first)
    assert only(requirements, WINDOWS, "winonly").sha256 == {sha("winonly")}
    assert only(requirements, LINUX, "helper").origin.endswith("base.txt:1")


def test_requirements_direct_references_are_skipped(requirements: LockInput) -> None:
    skipped = requirements.select(LINUX).skipped
    assert [(s.name, s.kind) for s in skipped] == [
        ("./vendor/localpkg", "local"),
        ("fromurl", "url"),
        ("git+https://git.example/x.git#egg=x", "vcs"),
    ]
    assert all("pw" not in s.source for s in skipped)


def test_requirements_files_are_matched_on_the_page_by_sha256(requirements: LockInput) -> None:
    page = [
        DistributionFile(name, f"https://up.example/{name}", {"sha256": digest}, size=5)
        for name, digest in NATIVE_FILES.items()
    ] + [
        DistributionFile("native-1.1.tar.gz", "https://up.example/x", {"sha256": sha(N_SDIST)}),
        DistributionFile("other-1.0.tar.gz", "https://up.example/y", {"sha256": sha(N_WIN)}),
    ]
    native = only(requirements, LINUX, "native")
    allowed = files_from_page(native, page)
    # the manylinux2014 wheel's hash is not in the file; 1.1 and "other" are not native 1.0
    assert sorted(f.filename for f in allowed) == sorted(n for n in NATIVE_FILES if "2_17" not in n)
    assert [f.filename for f in pick_files(native, LINUX, allowed)] == [
        "native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "native-1.0.tar.gz",
    ]
    assert [f.filename for f in pick_files(native, WINDOWS, allowed)] == [
        "native-1.0-cp311-cp311-win_amd64.whl",
        "native-1.0.tar.gz",
    ]
    assert pick_files(native, LINUX) == []  # no file names of its own


def test_page_files_of_a_lock_with_names_must_be_its_own(pylock: LockInput) -> None:
    native = only(pylock, LINUX, "native")
    wheel = "native-1.0-cp311-cp311-win_amd64.whl"
    page = [
        DistributionFile(wheel, "https://up.example/w", {}),  # the index states no hash
        DistributionFile("native-1.0.tar.gz", "https://up.example/s", {"sha256": sha("evil")}),
        DistributionFile("native-1.0-py3-none-any.whl", "https://up.example/p", {}),
    ]
    assert files_from_page(native, page) == [
        ExpectedFile(wheel, sha(N_WIN), None, "https://up.example/w")
    ]


def test_two_pins_of_one_project_in_one_environment_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "reqs.txt",
        f"a==1.0 --hash=sha256:{sha('1')}\n"
        f"a==2.0 ; sys_platform == 'linux' --hash=sha256:{sha('2')}\n",
    )
    lock = read_lock(path)
    assert pins(lock, WINDOWS) == {"a==1.0"}
    with pytest.raises(LockInputError, match=r"pins a twice .*reqs.txt:1\).*reqs.txt:2\)"):
        lock.for_environment(LINUX)


# -- format detection and markers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("locked.toml", 'lock-version = "1.0"\npackages = []\n', PylockInput),
        ("deps.lock", uv_lock_text(uv_package("app", "1", {"virtual": "."})), UvLockInput),
        ("pins", f"a==1 --hash=sha256:{sha('a')}\n", RequirementsInput),
        ("empty", "", RequirementsInput),
        ("constraints.in", "", RequirementsInput),
    ],
)
def test_the_format_is_told_by_name_then_content(
    tmp_path: Path, name: str, text: str, kind: type[LockInput]
) -> None:
    assert type(read_lock(write(tmp_path, name, text))) is kind


def test_the_format_can_be_given(tmp_path: Path) -> None:
    path = write(tmp_path, "pylock.toml", f"a==1 --hash=sha256:{sha('a')}\n")
    assert type(read_lock(path, format="requirements")) is RequirementsInput
    with pytest.raises(LockInputError, match="unknown lock format 'poetry'"):
        read_lock(path, format="poetry")


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("sys_platform == 'linux'", True),
        ("sys_platform == 'linux' and extra == 'x'", None),
        ("sys_platform == 'win32' and extra == 'x'", False),
        ("sys_platform == 'win32' or extra != 'x'", None),
        ("sys_platform == 'linux' or extra == 'x'", True),
        ("(extra == 'a' and extra == 'b') or python_version < '3.0'", None),
        ("'x' in extras", None),
        ("'y' in extras", False),
        ("'y' not in extras", True),
        ('"dev" in dependency_groups and platform_machine == "x86_64"', None),
        ('"nogroup" in dependency_groups or platform_machine == "x86_64"', True),
        ("'3.10' <= python_version", True),
    ],
)
def test_lock_markers_leave_extras_and_groups_open(marker: str, expected: bool | None) -> None:
    activatable = {"extras": frozenset({"x"}), "dependency_groups": frozenset({"dev"})}
    result = LockMarker(marker).evaluate(LINUX.marker_environment(), activatable=activatable)
    assert result is expected


@pytest.mark.parametrize(
    "marker",
    [
        "sys_platform ==",
        "sys_platform == 'linux' and",
        "(sys_platform == 'linux'",
        "sys_platform == 'linux')",
        "nonsense == 'x'",
        "python_version ~= '3'",
        "extra in 'x'",
        "extras == 'x'",
        "sys_platform = 'linux'",
        "(" * 40 + "os_name == 'nt'" + ")" * 40,
    ],
)
def test_unusable_markers_are_refused(marker: str) -> None:
    with pytest.raises(ValueError) as caught:
        LockMarker(marker)
    assert "\n" not in str(caught.value)


# -- malformed inputs -----------------------------------------------------------------------

A_WHEEL = "a-1.0-py3-none-any.whl"
GOOD_WHEEL = hashed(A_WHEEL)


def pylock_with(**package: Any) -> str:
    return toml({"lock-version": "1.0", "packages": [package]})


def a_wheel(**keys: Any) -> dict[str, Any]:
    return {**GOOD_WHEEL, **keys}


def uv_a(**keys: Any) -> str:
    """A uv.lock with one package ``a`` 1.0 from an index."""
    return uv_lock_text({"name": "a", "version": "1.0", "source": REGISTRY, **keys})


PYLOCK_ERRORS = [
    ("lock-version = [\n", "is not valid TOML"),
    ('lock-version = "2.0"\npackages = []\n', "lock-version '2.0' is not supported (only 1.x)"),
    ('lock-version = "one"\npackages = []\n', "lock-version 'one' is not supported"),
    ("packages = []\n", "has no lock-version"),
    ('lock-version = "1.0"\n', "has no [[packages]]"),
    ('lock-version = "1.0"\npackages = [1]\n', "packages is not an array of tables"),
    (
        toml({"lock-version": "1.0", "environments": ["os_name ="], "packages": []}),
        "environments cannot be used",
    ),
    (
        toml({"lock-version": "1.0", "requires-python": ">=x", "packages": []}),
        "requires-python = '>=x' is not a version specifier",
    ),
    (pylock_with(version="1.0", wheels=[GOOD_WHEEL]), "packages[0]: has no name"),
    (pylock_with(name="a b", wheels=[GOOD_WHEEL]), "'a b' is not a valid project name"),
    (
        pylock_with(name="a", version="x.y", wheels=[GOOD_WHEEL]),
        "version 'x.y' is not a PEP 440 version",
    ),
    (pylock_with(name="a", version="1.0"), "package 'a' 1.0: lists no wheels, sdist, vcs"),
    (pylock_with(name="a", version="1.0", wheels=[]), "lists no files"),
    (pylock_with(name="a", version="1.0", wheels=[{"name": A_WHEEL}]), f"{A_WHEEL} has no hashes"),
    (
        pylock_with(name="a", version="1.0", wheels=[a_wheel(hashes={"sha512": "0" * 128})]),
        "has no sha256 hash (only sha512)",
    ),
    (
        pylock_with(name="a", version="1.0", wheels=[a_wheel(hashes={"sha256": "abc"})]),
        "sha256 'abc' is not 64 hex digits",
    ),
    (
        pylock_with(name="a", version="2.0", wheels=[GOOD_WHEEL]),
        f"{A_WHEEL} is not a file of a 2.0",
    ),
    (pylock_with(name="b", version="1.0", wheels=[GOOD_WHEEL]), "is not a file of b 1.0"),
    (pylock_with(name="a", version="1.0", sdist=GOOD_WHEEL), f"sdist {A_WHEEL} is a wheel"),
    (
        pylock_with(name="a", version="1.0", wheels=[a_wheel(name="a-1.0.tar.gz")]),
        "wheel a-1.0.tar.gz is not a wheel",
    ),
    (
        pylock_with(name="a", version="1.0", sdist=a_wheel(name="a-1.0.tar.bz2")),
        "a-1.0.tar.bz2 is not the name of a wheel or sdist",
    ),
    (
        pylock_with(name="a", version="1.0", wheels=[a_wheel(name=f"../{A_WHEEL}")]),
        "cannot be mirrored",
    ),
    (
        pylock_with(name="a", version="1.0", wheels=[{"url": "https://x.example/", "hashes": {}}]),
        "has no hashes",
    ),
    (
        pylock_with(
            name="a",
            version="1.0",
            wheels=[{"url": "https://x.example/", "hashes": {"sha256": sha("a")}}],
        ),
        "lists a file with neither a name, a url nor a path",
    ),
    (
        pylock_with(name="a", version="1.0", wheels=[a_wheel(size="big")]),
        "size is not an integer",
    ),
    (pylock_with(name="a", version="1.0", wheels=[a_wheel(size=-1)]), "has a negative size"),
    (
        pylock_with(name="a", version="1.0", marker="os_name ==", wheels=[GOOD_WHEEL]),
        "marker cannot be used",
    ),
    (
        pylock_with(name="a", version="1.0", wheels=[GOOD_WHEEL], **{"requires-python": "3"}),
        "requires-python = '3' is not a version specifier",
    ),
    (
        pylock_with(name="a", version="1.0", vcs={"type": "git"}, wheels=[GOOD_WHEEL]),
        "has vcs and wheels",
    ),
    (
        pylock_with(name="a", wheels=[GOOD_WHEEL, a_wheel(name="a-2.0-py3-none-any.whl")]),
        "has no version, and its files name several",
    ),
]

UV_ERRORS = [
    (
        'version = 2\nrequires-python = ">=3.9"\n',
        "is a uv.lock of version 2; morgan reads version 1",
    ),
    ('requires-python = ">=3.9"\n', "has no version"),
    (uv_lock_text({"name": "a", "version": "1.0"}), "package 'a' 1.0: has no source"),
    (uv_a(), "comes from an index but lists no file"),
    (
        uv_lock_text({"name": "a", "source": REGISTRY}),
        "package 'a': comes from an index but has no version",
    ),
    (uv_a(source={"svn": "x"}), "names no single known source"),
    (uv_a(wheels=[{"url": f"{FILES}/{A_WHEEL}"}]), f"{A_WHEEL} has no hash"),
    (uv_a(sdist={"hash": f"sha256:{sha('a')}"}), "lists a file with neither a name"),
    (
        uv_a(wheels=[{"url": f"{FILES}/{A_WHEEL}", "hash": "sha512:" + "0" * 128}]),
        "is not sha256:<hex>",
    ),
    (
        uv_a(wheels=[{"url": f"{FILES}/{A_WHEEL}", "hash": "sha256:" + "g" * 64}]),
        "is not 64 hex digits",
    ),
    (
        uv_lock_text(uv_package("a", "1.0", dependencies=[dep("missing")])),
        "package 'a' 1.0: depends on missing, which matches no package",
    ),
    (
        uv_lock_text(
            uv_package("a", "1.0", dependencies=[dep("b")]),
            uv_package("b", "1.0"),
            uv_package("b", "2.0"),
        ),
        "depends on b, which matches several packages",
    ),
    (
        uv_lock_text(
            uv_package("a", "1.0", dependencies=[dep("b", marker="sys_platform ~= 'x'")]),
            uv_package("b", "1.0"),
        ),
        "marker cannot be used",
    ),
    (uv_lock_text(manifest={"members": ["ghost"]}), "[manifest] members names 'ghost'"),
    (
        uv_lock_text(uv_package("a", "1.0"), uv_package("b", "1.0")),
        "has no project to start from",
    ),
    (
        uv_lock_text(manifest={"requirements": [dep("ghost")]}),
        "[manifest] requires ghost, which the lock does not list",
    ),
]

REQUIREMENTS_ERRORS = [
    ("a>=1.0 --hash=sha256:" + sha("a"), "reqs.txt:1: a>=1.0 is not pinned to one version"),
    ("a --hash=sha256:" + sha("a"), "a is not pinned to one version; pin it as a==VERSION"),
    ("a==1.*  --hash=sha256:" + sha("a"), "a==1.* is not pinned"),
    ("a==1.0,<2 --hash=sha256:" + sha("a"), "is not pinned to one version"),
    ("a===foo --hash=sha256:" + sha("a"), "a===foo is not a PEP 440 version"),
    ("# header\n\na==1.0 \\\n    # via b", "reqs.txt:3: a==1.0 has no --hash=sha256:..."),
    (
        "a==1.0 \\\n  --hash=sha256:abc",
        "reqs.txt:1: --hash='sha256:abc' is not sha256:<64 hex digits>",
    ),
    ("a==1.0 --hash=md5:" + "0" * 32, "is not sha256:<64 hex digits> (nor sha384 or sha512)"),
    ("a==1.0 --hash=sha512:" + "0" * 128, "a==1.0 has no --hash=sha256"),
    ("a==1.0 --no-deps", "option --no-deps after a requirement is not understood"),
    ("a==1.0 --hash", "option --hash needs a value"),
    ("--frobnicate", "option --frobnicate is not understood here"),
    ("--hash=sha256:" + sha("a"), "--hash must follow a requirement"),
    ("-r missing.txt", "-r missing.txt: cannot read"),
    ("-r https://example.com/r.txt", "-r https://example.com/r.txt is a URL"),
    ("-r reqs.txt", "reqs.txt:1: -r reqs.txt includes a file being read"),
    ("a=1.0 --hash=sha256:" + sha("a"), "'a=1.0' is not a requirement"),
    ("a==1.0 ; os_name ~= '3' --hash=sha256:" + sha("a"), "is not a requirement"),
    ("--index-url 'unclosed", "cannot be split into options"),
]


def assert_one_line_error(path: Path, expected: str) -> LockInputError:
    with pytest.raises(LockInputError) as caught:
        read_lock(path)
    error = caught.value
    message = str(error)
    assert expected in message, message
    assert message.startswith(str(path)), message
    assert "\n" not in message
    # the CLI prints a MorganError as one line, and a ValueError one exits 2
    assert isinstance(error, MorganError)
    assert isinstance(error, ValueError)
    return error


@pytest.mark.parametrize(("text", "expected"), PYLOCK_ERRORS)
def test_malformed_pylock_is_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    assert_one_line_error(write(tmp_path, "pylock.toml", text), expected)


@pytest.mark.parametrize(("text", "expected"), UV_ERRORS)
def test_malformed_uv_lock_is_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    assert_one_line_error(write(tmp_path, "uv.lock", text), expected)


@pytest.mark.parametrize(("text", "expected"), REQUIREMENTS_ERRORS)
def test_malformed_requirements_are_one_line_errors(
    tmp_path: Path, text: str, expected: str
) -> None:
    error = assert_one_line_error(write(tmp_path, "reqs.txt", text + "\n"), expected)
    assert error.line is not None


def test_unreadable_and_undecodable_files_are_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "pylock.toml", "cannot be read")
    path = tmp_path / "uv.lock"
    path.write_bytes(b"version = 1\n\xff\xfe\n")
    assert_one_line_error(path, "is not UTF-8 text")


def test_an_included_files_error_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "sub/inner.txt", "\n\nb>=2\n")
    write(tmp_path, "reqs.txt", "-r sub/inner.txt\n")
    with pytest.raises(LockInputError) as caught:
        read_lock(tmp_path / "reqs.txt")
    assert str(caught.value).startswith(f"{tmp_path / 'sub' / 'inner.txt'}:3: b>=2 is not pinned")


# -- files made by real uv ------------------------------------------------------------------

#: The running interpreter's version: uv resolves for it without looking for another Python.
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
PY_TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
REAL_LINUX = Environment.from_ini_section(
    "linux",
    {
        "python_version": PY,
        "sys_platform": "linux",
        "platform_machine": "x86_64",
        "glibc_version": "2.28",
    },
)
REAL_WINDOWS = Environment.from_ini_section(
    "win", {"python_version": PY, "sys_platform": "win32", "platform_machine": "AMD64"}
)
UV_PLATFORMS = {"linux": "x86_64-manylinux_2_28", "win": "x86_64-pc-windows-msvc"}

PROJECT = """\
[project]
name = "app"
version = "0.1"
requires-python = ">=3.9"
dependencies = [
    "lib",
    "native",
    "winonly ; sys_platform == 'win32'",
    "oldpy ; python_version < '3.10'",
    "forked==1.0 ; sys_platform == 'win32'",
    "forked==2.0 ; sys_platform != 'win32'",
]

[project.optional-dependencies]
fancy = ["extrasdep"]

[dependency-groups]
dev = ["devtool"]

[build-system]
requires = ["flit_core>=3"]
build-backend = "flit_core.buildapi"
"""
NATIVE_TAGS = (
    f"{PY_TAG}-{PY_TAG}-manylinux_2_17_x86_64.manylinux2014_x86_64",
    f"{PY_TAG}-{PY_TAG}-win_amd64",
    "cp38-cp38-win_amd64",
)
#: What a walk with every extra and group installs, besides forked and winonly.
REAL_COMMON = {
    "lib==1.0",
    "helper==1.0",
    "native==1.0",
    "extrasdep==1.0",
    "deepdep==1.0",
    "speedy==1.0",
    "devtool==1.0",
}
REAL_EXPECTED = {
    "linux": REAL_COMMON | {"forked==2.0"},
    "win": REAL_COMMON | {"forked==1.0", "winonly==1.0"},
}
REAL_NATIVE = {
    "linux": [
        f"native-1.0-{PY_TAG}-{PY_TAG}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "native-1.0.tar.gz",
    ],
    "win": [f"native-1.0-{PY_TAG}-{PY_TAG}-win_amd64.whl", "native-1.0.tar.gz"],
}
REAL_ENVIRONMENTS = {"linux": REAL_LINUX, "win": REAL_WINDOWS}


@dataclass
class UvMade:
    """Lock files real uv wrote for PROJECT, and the fixture index's files."""

    folder: Path
    #: filename -> sha256 of every file the index served.
    index_files: dict[str, str]

    def page(self, project: str) -> list[DistributionFile]:
        return [
            DistributionFile(name, f"https://up.example/{name}", {"sha256": digest})
            for name, digest in self.index_files.items()
            if name.split("-")[0] == project
        ]


def populate(index: FixtureIndex, dists: Path) -> None:
    wheel = lambda *a, **k: index.add(build_wheel(dists, *a, **k))  # noqa: E731
    wheel("lib", "1.0", requires=["helper>=1"])
    index.add(build_sdist(dists, "lib", "1.0"))
    wheel("helper", "1.0")
    wheel("winonly", "1.0")
    wheel("oldpy", "1.0")
    wheel("forked", "1.0")
    wheel("forked", "2.0")
    wheel("extrasdep", "1.0", requires=["deepdep[speed]>=1"])
    wheel(
        "deepdep",
        "1.0",
        requires=['speedy; extra == "speed"', 'slowpoke; extra == "slow"'],
        extras=["speed", "slow"],
    )
    wheel("speedy", "1.0")
    wheel("slowpoke", "1.0")
    wheel("devtool", "1.0")
    for tags in NATIVE_TAGS:
        wheel("native", "1.0", tags=tags)
    index.add(build_sdist(dists, "native", "1.0"))


@pytest.fixture(scope="module")
def uv_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvMade]:
    """Run real uv once for the module: uv lock, uv export, uv pip compile (hashed)."""
    uv = uv_path()
    if uv is None:
        skip_unless_ci("uv is not installed")
    base = tmp_path_factory.mktemp("uv-made")
    folder = base / "project"
    write(folder, "pyproject.toml", PROJECT)
    env = clean_client_env(UV_PYTHON_DOWNLOADS="never")
    with FixtureIndex() as index:
        populate(index, base / "dists")
        common = ["--no-cache", "--no-config", "--index-url", index.url, "--python", sys.executable]

        def run(*args: str) -> None:
            result = subprocess.run(
                [uv, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"

        run("lock", *common)
        run(
            "export", *common, "--format", "pylock.toml", "--all-extras", "--all-groups",
            "--frozen", "-o", "pylock.toml",
        )  # fmt: skip
        compile_args = ["pip", "compile", *common, "pyproject.toml", "--all-extras"]
        run(*compile_args, "--generate-hashes", "--universal", "-o", "requirements.txt")
        for name, platform in UV_PLATFORMS.items():
            target = ["--python-platform", platform, "--python-version", PY]
            run(*compile_args, *target, "--generate-hashes", "-o", f"requirements-{name}.txt")
            run(*compile_args, *target, "--format", "pylock.toml", "-o", f"pylock.{name}.toml")
        index_files = {f.filename: f.sha256() for files in index.projects.values() for f in files}
    yield UvMade(folder, index_files)


@pytest.mark.parametrize("env_name", ["linux", "win"])
def test_real_uv_lock(uv_made: UvMade, env_name: str) -> None:
    lock = read_lock(uv_made.folder / "uv.lock")
    assert isinstance(lock, UvLockInput)
    env = REAL_ENVIRONMENTS[env_name]
    assert lock.covers(env)
    assert pins(lock, env) == REAL_EXPECTED[env_name]
    assert [(s.name, s.kind) for s in lock.select(env).skipped] == [("app", "local")]
    for requirement in lock.for_environment(env):
        for file in requirement.files:
            assert uv_made.index_files[file.filename] == file.sha256
            assert file.size is not None
    assert picked(lock, env, "native") == REAL_NATIVE[env_name]
    assert picked(lock, env, "lib") == ["lib-1.0-py3-none-any.whl", "lib-1.0.tar.gz"]


@pytest.mark.parametrize("env_name", ["linux", "win"])
def test_real_uv_exported_pylock_agrees_with_the_uv_lock(uv_made: UvMade, env_name: str) -> None:
    lock = read_lock(uv_made.folder / "pylock.toml")
    assert isinstance(lock, PylockInput)
    env = REAL_ENVIRONMENTS[env_name]
    assert pins(lock, env) == REAL_EXPECTED[env_name]
    assert [(s.name, s.kind) for s in lock.select(env).skipped] == [("app", "local")]
    assert picked(lock, env, "native") == REAL_NATIVE[env_name]
    uv_lock = read_lock(uv_made.folder / "uv.lock")
    for requirement in lock.for_environment(env):
        assert requirement.files == only(uv_lock, env, requirement.name).files


@pytest.mark.parametrize("env_name", ["linux", "win"])
def test_real_uv_compiled_pylock_per_platform(uv_made: UvMade, env_name: str) -> None:
    lock = read_lock(uv_made.folder / f"pylock.{env_name}.toml")
    env = REAL_ENVIRONMENTS[env_name]
    assert lock.covers(env)
    # no dependency group: uv pip compile was not asked for one
    assert pins(lock, env) == REAL_EXPECTED[env_name] - {"devtool==1.0"}
    native = only(lock, env, "native")
    # compiled for one platform, the lock lists only the wheel that installs there
    assert [f.filename for f in native.files] == REAL_NATIVE[env_name]
    assert picked(lock, env, "native") == REAL_NATIVE[env_name]


@pytest.mark.parametrize("env_name", ["linux", "win"])
def test_real_uv_hashed_requirements(uv_made: UvMade, env_name: str) -> None:
    env = REAL_ENVIRONMENTS[env_name]
    expected = REAL_EXPECTED[env_name] - {"devtool==1.0"}
    universal = read_lock(uv_made.folder / "requirements.txt")
    own = read_lock(uv_made.folder / f"requirements-{env_name}.txt")
    assert isinstance(universal, RequirementsInput)
    assert pins(universal, env) == expected
    assert pins(own, env) == expected
    for lock in (universal, own):
        assert lock.index_urls == ()  # uv pip compile writes no index unless asked
        native = only(lock, env, "native")
        assert native.sha256 <= set(uv_made.index_files.values())
        allowed = files_from_page(native, uv_made.page("native"))
        assert [f.filename for f in pick_files(native, env, allowed)] == REAL_NATIVE[env_name]
        for requirement in lock.for_environment(env):
            assert requirement.sha256 <= set(uv_made.index_files.values())


def test_real_uv_requirements_for_one_platform_hold_that_platforms_pins(uv_made: UvMade) -> None:
    # compiled for Windows, the file pins winonly without a marker: read for Linux, it
    # still lists it (a requirements file does not say which clients it is for)
    windows_pins = read_lock(uv_made.folder / "requirements-win.txt")
    assert "winonly==1.0" in pins(windows_pins, REAL_LINUX)
    assert "forked==1.0" in pins(windows_pins, REAL_LINUX)
