"""Dependencies from core metadata, requires.txt, pyproject.toml and whole archives."""

from __future__ import annotations

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel, core_metadata
from packaging.markers import Marker
from packaging.requirements import Requirement

from morgan import metadata
from morgan.environments import Environment
from morgan.errors import DistributionError
from morgan.metadata import (
    LEGACY_BUILD_REQUIRES,
    parse_core_metadata,
    parse_pyproject,
    parse_requires_txt,
    read_sdist_dependencies,
    read_wheel_metadata,
)

LINUX_312 = Environment.from_ini_section(
    "linux", {"python_version": "3.12", "sys_platform": "linux", "platform_machine": "x86_64"}
)
WINDOWS_38 = Environment.from_ini_section(
    "windows", {"python_version": "3.8", "sys_platform": "win32", "platform_machine": "AMD64"}
)


def strs(requirements: tuple[Requirement, ...] | list[Requirement]) -> list[str]:
    return [str(r) for r in requirements]


def applies(requirement: Requirement, environment: Environment, extra: str = "") -> bool:
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate(environment.marker_environment(extra))


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# -- core metadata -----------------------------------------------------------------------------


def test_parse_core_metadata() -> None:
    text = core_metadata(
        "Demo",
        "1.0",
        requires=["requests>=2", 'pysocks; extra == "socks"', 'colorama; os_name == "nt"'],
        requires_python=">=3.8",
        extras=["Socks", "dev_tools"],
    )
    deps = parse_core_metadata(text.encode(), "demo.whl")
    assert strs(deps.requires) == [
        "requests>=2",
        'pysocks; extra == "socks"',
        'colorama; os_name == "nt"',
    ]
    assert deps.extras == {"socks", "dev-tools"}
    assert deps.requires_python == ">=3.8"
    assert deps.build_requires == ()


@pytest.mark.parametrize("version", ["1.0", "1.2", "2.1", "2.3", "2.4"])
def test_parse_core_metadata_any_version(version: str) -> None:
    text = f"Metadata-Version: {version}\nName: demo\nVersion: 1\nRequires-Dist: six\n\n"
    assert strs(parse_core_metadata(text.encode(), "x").requires) == ["six"]


def test_parse_core_metadata_without_dependencies() -> None:
    deps = parse_core_metadata(b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n", "x")
    assert deps.requires == ()
    assert deps.extras == frozenset()
    assert deps.requires_python is None


def test_an_invalid_requirement_refuses_the_distribution() -> None:
    # pip (24.1 and later) and uv refuse such a distribution, so morgan does too.
    text = core_metadata("demo", "1.0", requires=["good>=1", "bad requirement !!", "also-good"])
    with pytest.raises(DistributionError) as caught:
        parse_core_metadata(text.encode(), "demo-1.0.whl")
    message = str(caught.value)
    assert message.startswith("demo-1.0.whl: declares an unusable requirement 'bad requirement !!'")
    assert "\n" not in message


def test_too_many_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_REQUIREMENTS", 3)
    text = core_metadata("demo", "1.0", requires=[f"dep{i}" for i in range(5)])
    with pytest.raises(DistributionError, match="more than 3 requirements"):
        parse_core_metadata(text.encode(), "demo.whl")


# -- requires.txt ------------------------------------------------------------------------------

REQUIRES_TXT = """\
requests>=2
# a comment

[socks]
PySocks!=1.5.7,>=1.5.6

[:sys_platform == "win32"]
colorama

[Security:python_version < "3.10"]
cryptography>=3; os_name == "posix"
idna[all]>=2
"""


def test_parse_requires_txt() -> None:
    requirements, extras = parse_requires_txt(REQUIRES_TXT, "requires.txt")
    assert extras == {"socks", "security"}
    by_name = {r.name.lower(): r for r in requirements}
    assert set(by_name) == {"requests", "pysocks", "colorama", "cryptography", "idna"}
    assert by_name["requests"].marker is None
    assert by_name["pysocks"].specifier.contains("1.5.6")
    assert not by_name["pysocks"].specifier.contains("1.5.7")
    assert by_name["idna"].extras == {"all"}


# (requirement, extra asked, environment, expected to apply)
REQUIRES_TXT_SEMANTICS = [
    ("requests", "", LINUX_312, True),
    ("requests", "socks", WINDOWS_38, True),
    ("pysocks", "", LINUX_312, False),
    ("pysocks", "socks", LINUX_312, True),
    ("pysocks", "security", LINUX_312, False),
    ("colorama", "", LINUX_312, False),
    ("colorama", "", WINDOWS_38, True),
    ("colorama", "socks", WINDOWS_38, True),
    ("cryptography", "security", LINUX_312, False),  # python_version >= 3.10
    ("cryptography", "security", WINDOWS_38, False),  # os_name == nt
    ("cryptography", "", WINDOWS_38, False),
    ("idna", "security", WINDOWS_38, True),
    ("idna", "security", LINUX_312, False),
    ("idna", "", WINDOWS_38, False),
]


@pytest.mark.parametrize(("name", "extra", "environment", "expected"), REQUIRES_TXT_SEMANTICS)
def test_requires_txt_marker_semantics(
    name: str, extra: str, environment: Environment, expected: bool
) -> None:
    requirements, _ = parse_requires_txt(REQUIRES_TXT, "requires.txt")
    (requirement,) = [r for r in requirements if r.name.lower() == name]
    assert applies(requirement, environment, extra) is expected


def test_requires_txt_linux_python_38_gets_cryptography() -> None:
    env = Environment.from_ini_section(
        "old", {"python_version": "3.8", "sys_platform": "linux", "platform_machine": "x86_64"}
    )
    requirements, _ = parse_requires_txt(REQUIRES_TXT, "requires.txt")
    (crypto,) = [r for r in requirements if r.name == "cryptography"]
    assert applies(crypto, env, "security")
    assert not applies(crypto, env, "socks")


def test_requires_txt_extra_is_normalized() -> None:
    requirements, extras = parse_requires_txt("[Dev_Tools]\npytest\n", "r.txt")
    assert extras == {"dev-tools"}
    (requirement,) = requirements
    assert requirement.marker is not None
    assert requirement.marker.evaluate({"extra": "dev-tools"})
    assert not requirement.marker.evaluate({"extra": ""})


def test_requires_txt_refuses_invalid_lines() -> None:
    with pytest.raises(DistributionError, match=r"r\.txt: declares an unusable requirement"):
        parse_requires_txt("ok\nnot valid !!\n[x]\nalso-ok\n", "r.txt")


def test_requires_txt_empty() -> None:
    assert parse_requires_txt("", "r.txt") == ((), frozenset())
    assert parse_requires_txt("\n# only comments\n\n", "r.txt") == ((), frozenset())


# -- pyproject.toml ----------------------------------------------------------------------------

PYPROJECT_BUILD = [
    (
        '[build-system]\nrequires = ["flit_core>=3.2,<4"]\nbuild-backend = "flit_core.buildapi"\n',
        ["flit_core<4,>=3.2"],
    ),
    (
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        ["hatchling"],
    ),
    (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n',
        ["setuptools>=61", "wheel"],
    ),
    (
        '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta:__legacy__"\n',
        ["setuptools", "wheel"],
    ),
    ('[build-system]\nrequires = ["setuptools"]\n', ["setuptools", "wheel"]),
    (
        '[build-system]\nrequires = ["setuptools", "Wheel>=0.40"]\n'
        'build-backend = "setuptools.build_meta"\n',
        ["setuptools", "Wheel>=0.40"],
    ),
    ('[build-system]\nrequires = []\nbuild-backend = "hatchling.build"\n', []),
    ("[tool.black]\nline-length = 100\n", list(LEGACY_BUILD_REQUIRES)),
    ("", list(LEGACY_BUILD_REQUIRES)),
    ('[build-system]\nbuild-backend = "hatchling.build"\n', list(LEGACY_BUILD_REQUIRES)),
]


@pytest.mark.parametrize(("text", "expected"), PYPROJECT_BUILD)
def test_parse_pyproject_build_requires(text: str, expected: list[str]) -> None:
    build, _ = parse_pyproject(text.encode(), "pyproject.toml")
    assert strs(build) == expected


def test_parse_pyproject_project_table() -> None:
    text = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "demo"
requires-python = ">=3.9"
dependencies = ["requests>=2", "tomli; python_version < '3.11'"]

[project.optional-dependencies]
Socks = ["pysocks"]
test = ["pytest>=7", "hypothesis; os_name == 'posix'"]
"""
    build, project = parse_pyproject(text.encode(), "pyproject.toml")
    assert strs(build) == ["hatchling"]
    assert project is not None
    assert project.requires_python == ">=3.9"
    assert project.extras == {"socks", "test"}
    names = [r.name for r in project.requires]
    assert names == ["requests", "tomli", "pysocks", "pytest", "hypothesis"]
    by_name = {r.name: r for r in project.requires}
    assert applies(by_name["requests"], LINUX_312)
    assert not applies(by_name["tomli"], LINUX_312)
    assert applies(by_name["tomli"], WINDOWS_38)
    assert not applies(by_name["pysocks"], LINUX_312)
    assert applies(by_name["pysocks"], LINUX_312, "socks")
    assert applies(by_name["hypothesis"], LINUX_312, "test")
    assert not applies(by_name["hypothesis"], WINDOWS_38, "test")
    assert not applies(by_name["hypothesis"], LINUX_312, "socks")


def test_parse_pyproject_without_project_table() -> None:
    _, project = parse_pyproject(b'[build-system]\nrequires = ["hatchling"]\n', "p")
    assert project is None


def test_parse_pyproject_invalid_toml(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="morgan.metadata"):
        build, project = parse_pyproject(b"[build-system\nrequires = ", "demo/pyproject.toml")
    assert strs(build) == list(LEGACY_BUILD_REQUIRES)
    assert project is None
    assert any("demo/pyproject.toml" in r.getMessage() for r in caplog.records)


def test_parse_pyproject_ignores_non_strings() -> None:
    text = (
        b'[build-system]\nrequires = ["flit_core", 3]\nbuild-backend = "x"\n'
        b'[project]\ndependencies = "six"\n'
    )
    build, project = parse_pyproject(text, "p")
    assert strs(build) == ["flit_core"]
    assert project is not None
    assert project.requires == ()


# -- wheels ------------------------------------------------------------------------------------


def test_read_wheel_metadata_exact_bytes(tmp_path: Path) -> None:
    text = core_metadata("demo", "1.0", requires=["six"]) + "Trailing: \u00e9\r\n"
    wheel = build_wheel(tmp_path, "demo", "1.0", metadata=text)
    assert read_wheel_metadata(wheel, "demo") == text.encode("utf-8")


def test_read_wheel_metadata_picks_the_projects_dist_info(tmp_path: Path) -> None:
    other = core_metadata("vendored", "9.9").encode()
    wheel = build_wheel(
        tmp_path, "my_demo", "1.0", extra_members={"vendored-9.9.dist-info/METADATA": other}
    )
    data = read_wheel_metadata(wheel, "My-Demo")
    assert b"Name: my_demo" in data
    assert data != other


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"this is not a zip file", "unreadable wheel"),
        (b"", "unreadable wheel"),
        (b"PK\x03\x04" + b"\x00" * 40, "unreadable wheel"),
    ],
)
def test_not_a_zip(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(content)
    with pytest.raises(DistributionError) as caught:
        read_wheel_metadata(path, "demo")
    assert caught.value.filename == path.name
    assert fragment in str(caught.value)


def test_wheel_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("nested/demo-1.0.dist-info/METADATA", "Name: demo\n")
    with pytest.raises(DistributionError, match=r"no \.dist-info/METADATA"):
        read_wheel_metadata(path, "demo")


def test_wheel_zip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBER_BYTES", 64 * 1024)
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb-1.0.dist-info/METADATA", b"A" * (metadata.MAX_MEMBER_BYTES + 10))
    assert path.stat().st_size < metadata.MAX_MEMBER_BYTES
    with pytest.raises(DistributionError, match="larger than 65536 bytes"):
        read_wheel_metadata(path, "bomb")


def test_wheel_metadata_at_the_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBER_BYTES", 4096)
    path = tmp_path / "edge-1.0-py3-none-any.whl"
    data = b"A" * 4096
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("edge-1.0.dist-info/METADATA", data)
    assert read_wheel_metadata(path, "edge") == data


def test_wheel_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBERS", 5)
    wheel = build_wheel(
        tmp_path, "demo", "1.0", extra_members={f"demo/m{i}.py": b"" for i in range(10)}
    )
    with pytest.raises(DistributionError, match="more than 5 members"):
        read_wheel_metadata(wheel, "demo")


# -- sdists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_read_sdist_dependencies(tmp_path: Path, fmt: str) -> None:
    sdist = build_sdist(
        tmp_path,
        "demo",
        "1.0",
        fmt=fmt,
        requires=["requests>=2"],
        requires_python=">=3.8",
        requires_txt="requests>=2\nclick\n[cli]\nrich\n",
        setup_requires_txt="setuptools_scm>=6\n",
        pyproject=(
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n'
            '[project]\nname = "demo"\ndependencies = ["attrs"]\n'
            '[project.optional-dependencies]\nfast = ["ujson"]\n'
        ),
    )
    deps = read_sdist_dependencies(sdist)
    assert strs(deps.requires) == [
        "requests>=2",
        "click",
        'rich; extra == "cli"',
        "attrs",
        'ujson; extra == "fast"',
    ]
    assert strs(deps.build_requires) == ["setuptools>=61", "wheel", "setuptools_scm>=6"]
    assert deps.extras == {"cli", "fast"}
    assert deps.requires_python == ">=3.8"


def test_sdist_without_pyproject_needs_legacy_setuptools(tmp_path: Path) -> None:
    deps = read_sdist_dependencies(build_sdist(tmp_path, "old", "0.1", requires=["six"]))
    assert strs(deps.requires) == ["six"]
    assert strs(deps.build_requires) == list(LEGACY_BUILD_REQUIRES)


def test_sdist_pyproject_build_requires(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "flitted", "2.0", build_requires=["flit_core>=3.4"])
    assert strs(read_sdist_dependencies(sdist).build_requires) == ["flit_core>=3.4"]


def test_sdist_requires_python_from_pyproject(tmp_path: Path) -> None:
    sdist = build_sdist(
        tmp_path, "dyn", "1.0", pyproject='[project]\nname = "dyn"\nrequires-python = ">=3.10"\n'
    )
    assert read_sdist_dependencies(sdist).requires_python == ">=3.10"


def test_sdist_requirements_are_not_repeated(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "dup", "1.0", requires=["six", "attrs"], requires_txt="six\n")
    assert strs(read_sdist_dependencies(sdist).requires) == ["six", "attrs"]


def test_sdist_with_tar_dot_slash_prefix(tmp_path: Path) -> None:
    path = tmp_path / "dots-1.0.tar.gz"
    members = {"./dots-1.0/PKG-INFO": core_metadata("dots", "1.0", requires=["six"]).encode()}
    write_tar(path, members)
    assert strs(read_sdist_dependencies(path).requires) == ["six"]


@pytest.mark.parametrize("content", [b"not a tarball", b"\x1f\x8b\x08\x00garbage-gzip-data", b""])
def test_sdist_not_an_archive(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(content)
    with pytest.raises(DistributionError) as caught:
        read_sdist_dependencies(path)
    assert caught.value.filename == "demo-1.0.tar.gz"


def test_sdist_zip_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(DistributionError, match="unreadable sdist"):
        read_sdist_dependencies(path)


def test_sdist_zip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBER_BYTES", 64 * 1024)
    path = tmp_path / "bomb-1.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb-1.0/PKG-INFO", b"A" * (metadata.MAX_MEMBER_BYTES + 10))
    with pytest.raises(DistributionError, match="larger than"):
        read_sdist_dependencies(path)


def test_sdist_tar_bomb_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBER_BYTES", 64 * 1024)
    path = tmp_path / "bomb-1.0.tar.gz"
    write_tar(path, {"bomb-1.0/pyproject.toml": b"#" * (metadata.MAX_MEMBER_BYTES + 10)})
    with pytest.raises(DistributionError, match="larger than"):
        read_sdist_dependencies(path)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_sdist_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(metadata, "MAX_MEMBERS", 20)
    members = {f"many-1.0/f{i}.txt": b"" for i in range(30)}
    path = tmp_path / f"many-1.0.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    else:
        write_tar(path, members)
    with pytest.raises(DistributionError, match="more than 20 members"):
        read_sdist_dependencies(path)


def write_tar(
    path: Path, members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None
) -> None:
    """A tar.gz with regular members, and links as {name: (type, target)}."""
    with tarfile.open(path, "w:gz") as archive:
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            archive.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


GOOD_PKG_INFO = core_metadata("demo", "1.0", requires=["good"]).encode()
EVIL_PKG_INFO = core_metadata("demo", "1.0", requires=["evil"]).encode()


def test_sdist_symlinks_and_hardlinks_are_not_read(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_bytes(EVIL_PKG_INFO)
    path = tmp_path / "demo-1.0.tar.gz"
    write_tar(
        path,
        {"demo-1.0/PKG-INFO": GOOD_PKG_INFO},
        links={
            "demo-1.0/pyproject.toml": (tarfile.SYMTYPE, str(target)),
            "demo-1.0/demo.egg-info/requires.txt": (tarfile.LNKTYPE, "demo-1.0/PKG-INFO"),
        },
    )
    before = tree(tmp_path)
    deps = read_sdist_dependencies(path)
    assert strs(deps.requires) == ["good"]
    assert strs(deps.build_requires) == list(LEGACY_BUILD_REQUIRES)
    assert tree(tmp_path) == before


def test_sdist_symlinked_pkg_info_is_not_read(tmp_path: Path) -> None:
    target = tmp_path / "outside"
    target.write_bytes(EVIL_PKG_INFO)
    path = tmp_path / "demo-1.0.tar.gz"
    write_tar(
        path,
        {"demo-1.0/PKG-INFO": GOOD_PKG_INFO},
        links={"demo-1.0/PKG-INFO": (tarfile.SYMTYPE, str(target))},
    )
    assert strs(read_sdist_dependencies(path).requires) == ["good"]


@pytest.mark.parametrize(
    "hostile",
    [
        "../demo-1.0/PKG-INFO",
        "/demo-1.0/PKG-INFO",
        "demo-1.0/../demo-1.0/PKG-INFO",
    ],
)
def test_sdist_hostile_paths_write_nothing(tmp_path: Path, hostile: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = work / "demo-1.0.tar.gz"
    write_tar(path, {hostile: EVIL_PKG_INFO, "demo-1.0/PKG-INFO": GOOD_PKG_INFO})
    before = tree(tmp_path)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        read_sdist_dependencies(path)
    finally:
        os.chdir(cwd)
    assert tree(tmp_path) == before
    assert not Path("/demo-1.0").exists()


@pytest.mark.parametrize("hostile", ["../demo-1.0/PKG-INFO", "/demo-1.0/PKG-INFO"])
def test_sdist_hostile_paths_are_not_read_as_metadata(tmp_path: Path, hostile: str) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    write_tar(path, {hostile: EVIL_PKG_INFO, "demo-1.0/PKG-INFO": GOOD_PKG_INFO})
    assert strs(read_sdist_dependencies(path).requires) == ["good"]


@pytest.mark.parametrize(
    ("member", "read"),
    [
        ("demo-1.0/PKG-INFO", True),
        ("demo-1.0/demo.egg-info/PKG-INFO", False),
        ("demo-1.0/sub/pkg/PKG-INFO", False),
        ("PKG-INFO", False),
    ],
)
def test_sdist_pkg_info_location(tmp_path: Path, member: str, read: bool) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    write_tar(path, {member: EVIL_PKG_INFO})
    assert (strs(read_sdist_dependencies(path).requires) == ["evil"]) is read


@pytest.mark.parametrize(
    ("member", "read"),
    [
        ("demo-1.0/demo.egg-info/requires.txt", True),
        ("demo-1.0/src/demo.egg-info/requires.txt", True),
        ("demo-1.0/requires.txt", False),
        ("demo-1.0/a/b/demo.egg-info/requires.txt", False),
        ("demo-1.0/tests/requires.txt", False),
    ],
)
def test_sdist_requires_txt_location(tmp_path: Path, member: str, read: bool) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    write_tar(path, {member: b"evil\n"})
    assert (strs(read_sdist_dependencies(path).requires) == ["evil"]) is read


def test_marker_objects_roundtrip() -> None:
    # What requires.txt sections produce must be a marker packaging itself accepts.
    requirements, _ = parse_requires_txt(REQUIRES_TXT, "r.txt")
    for requirement in requirements:
        if requirement.marker is not None:
            assert Marker(str(requirement.marker)) == requirement.marker
