"""Client environments: marker values, wheel tags and their order, config errors."""

from __future__ import annotations

import sysconfig

import pytest
from packaging import tags as tagslib
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.version import Version

from morgan.environments import (
    TAG_KEYS,
    Environment,
    mac_platforms,
    manylinux_platforms,
    musllinux_platforms,
    pip_understands,
    platform_level,
)
from morgan.errors import ConfigError, DistributionError

LINUX = {"sys_platform": "linux", "platform_machine": "x86_64"}
LINUX_312 = {"python_version": "3.12", **LINUX}


def env(**keys: str) -> Environment:
    return Environment.from_ini_section("test", keys, path="conf/morgan.ini")


def rank(environment: Environment, wheel_tags: str) -> tuple[int, tuple[int, int], int] | None:
    return environment.wheel_rank(parse_tag(wheel_tags))


def best(environment: Environment, wheels: list[str]) -> str:
    """The wheel tag set a client of the environment would get, as selection sorts them."""
    ranked = [(rank(environment, w), w) for w in wheels]
    usable = [(r, w) for r, w in ranked if r is not None]
    assert usable, "no wheel fits"
    return min(usable)[1]


# -- which wheels an environment accepts -------------------------------------------------------

ACCEPTS = [
    # manylinux on Linux, at and below the stated glibc
    (LINUX_312, "cp312-cp312-manylinux_2_17_x86_64", True),
    (LINUX_312, "cp312-cp312-manylinux2014_x86_64", True),
    (LINUX_312, "cp312-cp312-manylinux1_x86_64", True),
    (LINUX_312, "cp312-cp312-manylinux_2_39_x86_64", True),
    (LINUX_312, "cp312-cp312-linux_x86_64", True),
    (LINUX_312, "cp312-abi3-manylinux_2_17_x86_64", True),
    (LINUX_312, "cp39-abi3-manylinux_2_17_x86_64", True),
    (LINUX_312, "cp312-cp312-manylinux_2_17_aarch64", False),
    (LINUX_312, "cp311-cp311-manylinux_2_17_x86_64", False),
    (LINUX_312, "cp313-abi3-manylinux_2_17_x86_64", False),
    (LINUX_312, "cp312-cp312-win_amd64", False),
    (LINUX_312, "cp312-cp312-macosx_11_0_arm64", False),
    ({**LINUX_312, "glibc_version": "2.28"}, "cp312-cp312-manylinux_2_28_x86_64", True),
    ({**LINUX_312, "glibc_version": "2.28"}, "cp312-cp312-manylinux_2_17_x86_64", True),
    ({**LINUX_312, "glibc_version": "2.28"}, "cp312-cp312-manylinux_2_31_x86_64", False),
    ({**LINUX_312, "glibc_version": "2.17"}, "cp312-cp312-manylinux2014_x86_64", True),
    ({**LINUX_312, "glibc_version": "2.12"}, "cp312-cp312-manylinux2014_x86_64", False),
    # musllinux only when musl_version says the client has musl
    (LINUX_312, "cp312-cp312-musllinux_1_1_x86_64", False),
    ({**LINUX_312, "musl_version": "1.2"}, "cp312-cp312-musllinux_1_1_x86_64", True),
    ({**LINUX_312, "musl_version": "1.2"}, "cp312-cp312-musllinux_1_2_x86_64", True),
    ({**LINUX_312, "musl_version": "1.1"}, "cp312-cp312-musllinux_1_2_x86_64", False),
    ({**LINUX_312, "musl_version": "1.2"}, "cp312-cp312-manylinux_2_17_x86_64", False),
    # other Linux architectures from platform_machine
    ({**LINUX_312, "platform_machine": "aarch64"}, "cp312-cp312-manylinux_2_17_aarch64", True),
    ({**LINUX_312, "platform_machine": "aarch64"}, "cp312-cp312-manylinux_2_17_x86_64", False),
    ({**LINUX_312, "platform_machine": "i686"}, "cp312-cp312-manylinux1_i686", True),
    # Windows from platform_machine
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "AMD64"},
        "cp312-cp312-win_amd64",
        True,
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "AMD64"},
        "cp312-cp312-win32",
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "x86"},
        "cp312-cp312-win32",
        True,
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "x86"},
        "cp312-cp312-win_amd64",
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "ARM64"},
        "cp312-cp312-win_arm64",
        True,
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "ARM64"},
        "cp312-cp312-win_amd64",
        False,
    ),
    # Morgan's sysconfig-style platform_tag
    ({"python_version": "3.12", "platform_tag": "win-amd64"}, "cp312-cp312-win_amd64", True),
    ({"python_version": "3.12", "platform_tag": "win32"}, "cp312-cp312-win32", True),
    ({"python_version": "3.12", "platform_tag": "win32"}, "cp312-cp312-win_amd64", False),
    ({"python_version": "3.12", "platform_tag": "linux-x86_64"}, "cp312-cp312-linux_x86_64", True),
    (
        {"python_version": "3.12", "platform_tag": "linux-x86_64"},
        "cp312-cp312-manylinux_2_17_x86_64",
        True,
    ),
    (
        {"python_version": "3.12", "platform_tag": "manylinux_2_28_x86_64"},
        "cp312-cp312-manylinux_2_28_x86_64",
        True,
    ),
    (
        {"python_version": "3.12", "platform_tag": "manylinux_2_28_x86_64"},
        "cp312-cp312-manylinux_2_34_x86_64",
        False,
    ),
    # macOS from platform_tag or macos_version
    (
        {"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"},
        "cp312-cp312-macosx_11_0_arm64",
        True,
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"},
        "cp312-cp312-macosx_10_9_universal2",
        True,
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"},
        "cp312-cp312-macosx_12_0_arm64",
        False,
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"},
        "cp312-cp312-macosx_10_9_x86_64",
        False,
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-10.9-x86_64"},
        "cp312-cp312-macosx_10_9_x86_64",
        True,
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-10.9-x86_64"},
        "cp312-cp312-macosx_10_13_x86_64",
        False,
    ),
    (
        {
            "python_version": "3.12",
            "sys_platform": "darwin",
            "platform_machine": "arm64",
            "macos_version": "14.0",
        },
        "cp312-cp312-macosx_14_0_arm64",
        True,
    ),
    (
        {
            "python_version": "3.12",
            "sys_platform": "darwin",
            "platform_machine": "arm64",
            "macos_version": "13.0",
        },
        "cp312-cp312-macosx_14_0_arm64",
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "arm64"},
        "cp312-cp312-macosx_14_0_arm64",
        True,
    ),
    # ABIs: 3.7 has the "m" ABI, a custom abi replaces the default
    ({**LINUX, "python_version": "3.7"}, "cp37-cp37m-manylinux_2_17_x86_64", True),
    ({**LINUX, "python_version": "3.7"}, "cp37-cp37-manylinux_2_17_x86_64", False),
    ({**LINUX, "python_version": "3.8"}, "cp38-cp38-manylinux_2_17_x86_64", True),
    ({**LINUX, "python_version": "3.8"}, "cp38-cp38m-manylinux_2_17_x86_64", False),
    (
        {**LINUX, "python_version": "3.13", "abi": "cp313t"},
        "cp313-cp313t-manylinux_2_17_x86_64",
        True,
    ),
    (
        {**LINUX, "python_version": "3.13", "abi": "cp313t"},
        "cp313-cp313-manylinux_2_17_x86_64",
        False,
    ),
    ({**LINUX, "python_version": "3.13"}, "cp313-cp313t-manylinux_2_17_x86_64", False),
    # pure wheels everywhere
    (LINUX_312, "py3-none-any", True),
    (LINUX_312, "py2.py3-none-any", True),
    (LINUX_312, "cp312-none-any", True),
    (LINUX_312, "py2-none-any", False),
    (
        {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "AMD64"},
        "py3-none-any",
        True,
    ),
    ({"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"}, "py3-none-any", True),
    ({"python_version": "3.9"}, "py3-none-any", True),
    ({"python_version": "3.9"}, "py39-none-any", True),
    ({"python_version": "3.9"}, "py310-none-any", False),
]


@pytest.mark.parametrize(("keys", "wheel", "accepted"), ACCEPTS)
def test_wheel_acceptance(keys: dict[str, str], wheel: str, accepted: bool) -> None:
    assert (rank(env(**keys), wheel) is not None) is accepted


# -- which wheel is best -----------------------------------------------------------------------

BEST = [
    # unknown glibc: the wheel needing the lowest glibc wins, even over a better ABI
    (
        LINUX_312,
        ["cp312-cp312-manylinux_2_28_x86_64", "cp39-abi3-manylinux_2_17_x86_64"],
        "cp39-abi3-manylinux_2_17_x86_64",
    ),
    (
        LINUX_312,
        [
            "cp312-cp312-manylinux_2_28_x86_64",
            "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "cp312-cp312-manylinux_2_34_x86_64",
        ],
        "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    ),
    (
        LINUX_312,
        ["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux1_x86_64"],
        "cp312-cp312-manylinux1_x86_64",
    ),
    # a binary wheel beats the pure one, as in pip
    (
        LINUX_312,
        ["py3-none-any", "cp312-cp312-manylinux_2_28_x86_64"],
        "cp312-cp312-manylinux_2_28_x86_64",
    ),
    # stated glibc: pip's order, the newest compatible manylinux and the best ABI first
    (
        {**LINUX_312, "glibc_version": "2.28"},
        ["cp312-cp312-manylinux_2_28_x86_64", "cp39-abi3-manylinux_2_17_x86_64"],
        "cp312-cp312-manylinux_2_28_x86_64",
    ),
    (
        {**LINUX_312, "glibc_version": "2.28"},
        ["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_28_x86_64"],
        "cp312-cp312-manylinux_2_28_x86_64",
    ),
    (
        {**LINUX_312, "glibc_version": "2.28"},
        ["cp312-cp312-manylinux_2_34_x86_64", "cp312-cp312-manylinux_2_17_x86_64"],
        "cp312-cp312-manylinux_2_17_x86_64",
    ),
    (
        {**LINUX_312, "glibc_version": "2.28"},
        ["cp312-abi3-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_17_x86_64"],
        "cp312-cp312-manylinux_2_17_x86_64",
    ),
    # unknown macOS level: the oldest macOS wins; stated: the newest fitting
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "x86_64"},
        ["cp312-cp312-macosx_10_13_x86_64", "cp312-cp312-macosx_10_9_x86_64"],
        "cp312-cp312-macosx_10_9_x86_64",
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-10.15-x86_64"},
        ["cp312-cp312-macosx_10_9_x86_64", "cp312-cp312-macosx_10_13_x86_64"],
        "cp312-cp312-macosx_10_13_x86_64",
    ),
    (
        {"python_version": "3.12", "platform_tag": "macosx-11.0-arm64"},
        ["cp312-cp312-macosx_10_9_universal2", "cp312-cp312-macosx_11_0_arm64"],
        "cp312-cp312-macosx_11_0_arm64",
    ),
    # musl: newest compatible first
    (
        {**LINUX_312, "musl_version": "1.2"},
        ["cp312-cp312-musllinux_1_1_x86_64", "cp312-cp312-musllinux_1_2_x86_64"],
        "cp312-cp312-musllinux_1_2_x86_64",
    ),
]


@pytest.mark.parametrize(("keys", "wheels", "expected"), BEST)
def test_best_wheel(keys: dict[str, str], wheels: list[str], expected: str) -> None:
    environment = env(**keys)
    assert best(environment, wheels) == expected
    assert best(environment, list(reversed(wheels))) == expected


def test_unknown_glibc_never_prefers_a_newer_glibc() -> None:
    """For any pair of manylinux wheels, the lower glibc level wins when it is unknown."""
    environment = env(**LINUX_312)
    assert environment.level_unknown
    levels = [(2, 5), (2, 12), (2, 17), (2, 24), (2, 28), (2, 31), (2, 34), (2, 39)]
    abis = ["cp312-cp312", "cp312-abi3", "cp39-abi3", "cp312-none", "py3-none"]
    for low in levels:
        for high in levels:
            if low >= high:
                continue
            for abi_low in abis:
                for abi_high in abis:
                    a = f"{abi_low}-manylinux_{low[0]}_{low[1]}_x86_64"
                    b = f"{abi_high}-manylinux_{high[0]}_{high[1]}_x86_64"
                    assert best(environment, [a, b]) == a, (a, b)


def test_known_glibc_follows_pip_order() -> None:
    """With glibc stated, the tag order is packaging's cpython_tags for those platforms."""
    environment = env(**LINUX_312, glibc_version="2.28")
    assert not environment.level_unknown
    platforms = [*manylinux_platforms("x86_64", (2, 28)), "linux_x86_64"]
    expected = list(tagslib.cpython_tags((3, 12), ["cp312"], platforms))
    assert list(environment.tags[: len(expected)]) == expected
    assert environment.tags[0] == Tag("cp312", "cp312", "manylinux_2_28_x86_64")


def test_unknown_glibc_does_not_prefer_a_plain_linux_wheel() -> None:
    environment = env(**LINUX_312)
    wheels = ["cp312-cp312-linux_x86_64", "cp312-cp312-manylinux_2_17_x86_64"]
    assert best(environment, wheels) == "cp312-cp312-manylinux_2_17_x86_64"
    assert best(environment, ["cp312-cp312-linux_x86_64", "py3-none-any"]) == (
        "cp312-cp312-linux_x86_64"
    )


def test_legacy_manylinux_platform_tag() -> None:
    environment = env(python_version="3.12", platform_tag="manylinux2014_x86_64")
    assert not environment.level_unknown
    assert rank(environment, "cp312-cp312-manylinux2014_x86_64") is not None
    assert rank(environment, "cp312-cp312-manylinux_2_17_x86_64") is not None
    assert rank(environment, "cp312-cp312-manylinux_2_28_x86_64") is None


# -- pure-only environments --------------------------------------------------------------------


def test_platformless_environment_gets_only_any_wheels() -> None:
    environment = env(python_version="3.12")
    assert environment.tags
    assert {tag.platform for tag in environment.tags} == {"any"}
    assert {tag.abi for tag in environment.tags} == {"none"}


def test_platformless_environment_never_gets_this_machines_tags() -> None:
    environment = env(python_version="3.12")
    own = {tag for tag in tagslib.sys_tags() if tag.platform != "any"}
    assert own  # this machine has platform tags of its own
    assert not own & set(environment.tags)
    machine = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert rank(environment, f"cp312-cp312-{machine}") is None


@pytest.mark.parametrize(
    "keys",
    [
        {"python_version": "3.12", "sys_platform": "linux"},  # no machine
        {"python_version": "3.12", "sys_platform": "linux", "platform_machine": "sparc"},
        {"python_version": "3.12", "sys_platform": "freebsd14"},
        {"python_version": "3.12", "sys_platform": "win32"},
    ],
)
def test_unknown_platform_is_pure_only(keys: dict[str, str]) -> None:
    environment = env(**keys)
    assert {tag.platform for tag in environment.tags} == {"any"}


def test_other_system_with_platform_tag() -> None:
    environment = env(
        python_version="3.12", sys_platform="freebsd14", platform_tag="freebsd-14.0-amd64"
    )
    assert rank(environment, "cp312-cp312-freebsd_14_0_amd64") is not None
    assert rank(environment, "cp312-cp312-linux_x86_64") is None


def test_tags_have_no_duplicates() -> None:
    environment = env(**LINUX_312)
    assert len(environment.tags) == len(set(environment.tags))


# -- requires-python ---------------------------------------------------------------------------

REQUIRES_PYTHON = [
    ("3.12", None, None, True),
    ("3.12", None, "", True),
    ("3.12", None, "   ", True),
    ("3.12", None, ">=3.8", True),
    ("3.12", None, ">=3.13", False),
    ("3.12", None, "<3.12", False),
    ("3.12", None, "~=3.12", True),
    ("3.12", None, ">=3.8,!=3.12.*", False),
    ("3.12", None, ">=3.12.1", False),
    ("3.12", "3.12.7", ">=3.12.1", True),
    ("3.13", "3.13.0rc2", ">=3.13.0rc1", True),
    ("2.7", None, ">=2.7,!=3.0.*,!=3.1.*", True),
    # invalid specifiers are ignored, as pip does
    ("3.12", None, ">=3.6.*", True),
    ("3.12", None, "not a specifier", True),
    ("3.12", None, ">= 3.9; python_version > '2'", True),
]


@pytest.mark.parametrize(("python", "full", "requires", "allowed"), REQUIRES_PYTHON)
def test_allows_python(python: str, full: str | None, requires: str | None, allowed: bool) -> None:
    keys = {"python_version": python}
    if full:
        keys["python_full_version"] = full
    assert env(**keys).allows_python(requires) is allowed


# -- markers -----------------------------------------------------------------------------------


def test_marker_environment_with_extra() -> None:
    environment = env(**LINUX_312)
    marker = Marker('extra == "socks" and sys_platform == "linux"')
    assert marker.evaluate(environment.marker_environment("socks"))
    assert not marker.evaluate(environment.marker_environment(""))
    assert not marker.evaluate(environment.marker_environment("http2"))
    assert environment.marker_environment("socks")["extra"] == "socks"
    assert "extra" not in environment.markers


@pytest.mark.parametrize(
    ("marker", "keys", "expected"),
    [
        ('python_version >= "3.10"', {"python_version": "3.12"}, True),
        ('python_version >= "3.10"', {"python_version": "3.9"}, False),
        (
            'python_full_version < "3.12.3"',
            {"python_version": "3.12", "python_full_version": "3.12.2"},
            True,
        ),
        (
            'python_full_version < "3.12.3"',
            {"python_version": "3.12", "python_full_version": "3.12.7"},
            False,
        ),
        ('sys_platform == "win32"', {"python_version": "3.12", "platform_system": "Windows"}, True),
        ('os_name == "nt"', {"python_version": "3.12", "sys_platform": "win32"}, True),
        ('os_name == "posix"', {"python_version": "3.12", "sys_platform": "linux"}, True),
        ('platform_system == "Darwin"', {"python_version": "3.12", "sys_platform": "darwin"}, True),
        (
            'implementation_name == "pypy"',
            {"python_version": "3.10", "platform_python_implementation": "PyPy"},
            True,
        ),
        ('platform_python_implementation == "CPython"', {"python_version": "3.12"}, True),
        ('platform_machine == "aarch64"', {**LINUX, "python_version": "3.12"}, False),
    ],
)
def test_markers_evaluate(marker: str, keys: dict[str, str], expected: bool) -> None:
    assert Marker(marker).evaluate(env(**keys).marker_environment()) is expected


DEFAULTS = [
    (
        {"python_version": "3.12"},
        {
            "python_full_version": "3.12.0",
            "platform_python_implementation": "CPython",
            "implementation_name": "cpython",
            "implementation_version": "3.12.0",
            "os_name": "posix",
        },
    ),
    (
        {"python_version": "3.11", "python_full_version": "3.11.4"},
        {"python_full_version": "3.11.4", "implementation_version": "3.11.4"},
    ),
    (
        {"python_version": "3.12", "platform_system": "Linux"},
        {"sys_platform": "linux", "os_name": "posix", "platform_system": "Linux"},
    ),
    (
        {"python_version": "3.12", "platform_system": "Windows"},
        {"sys_platform": "win32", "os_name": "nt", "platform_system": "Windows"},
    ),
    (
        {"python_version": "3.12", "platform_system": "Darwin"},
        {"sys_platform": "darwin", "os_name": "posix"},
    ),
    (
        {"python_version": "3.12", "sys_platform": "win32"},
        {"os_name": "nt", "platform_system": "Windows"},
    ),
    (
        {"python_version": "3.12", "sys_platform": "linux"},
        {"os_name": "posix", "platform_system": "Linux", "platform_machine": ""},
    ),
    (
        {"python_version": "3.12", "sys_platform": "darwin"},
        {"platform_system": "Darwin"},
    ),
    (
        {"python_version": "3.10", "platform_python_implementation": "PyPy"},
        {"implementation_name": "pypy"},
    ),
    # stated values are kept
    (
        {"python_version": "3.12", "sys_platform": "linux", "os_name": "custom"},
        {"os_name": "custom", "sys_platform": "linux"},
    ),
]


@pytest.mark.parametrize(("keys", "expected"), DEFAULTS)
def test_marker_defaults(keys: dict[str, str], expected: dict[str, str]) -> None:
    markers = env(**keys).markers
    for key, value in expected.items():
        assert markers[key] == value, key


def test_every_marker_variable_is_set() -> None:
    markers = env(python_version="3.12").marker_environment()
    for name in (
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
        "extra",
    ):
        assert isinstance(markers[name], str), name


def test_values_are_stripped_and_python_version_parsed() -> None:
    environment = env(python_version=" 3.11 ", python_full_version=" 3.11.9 ")
    assert environment.markers["python_version"] == "3.11"
    assert str(environment.python_version) == "3.11.9"
    assert environment.name == "test"


def test_pypy_tags() -> None:
    environment = env(
        python_version="3.10",
        platform_python_implementation="PyPy",
        sys_platform="linux",
        platform_machine="x86_64",
        glibc_version="2.17",
    )
    assert rank(environment, "pp310-none-manylinux_2_17_x86_64") is not None
    assert rank(environment, "cp310-cp310-manylinux_2_17_x86_64") is None
    assert rank(environment, "py3-none-any") is not None


# -- legacy whl.tag.* keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "wheel", "accepted"),
    [
        ({"whl.tag.platform": r"manylinux.*x86_64|any"}, "cp312-cp312-manylinux_2_17_x86_64", True),
        ({"whl.tag.platform": r"manylinux.*x86_64|any"}, "cp312-cp312-linux_x86_64", False),
        ({"whl.tag.platform": r"manylinux.*x86_64|any"}, "py3-none-any", True),
        ({"whl.tag.abi": r"abi3|none"}, "cp312-cp312-manylinux_2_17_x86_64", False),
        ({"whl.tag.abi": r"abi3|none"}, "cp39-abi3-manylinux_2_17_x86_64", True),
        ({"whl.tag.interpreter": r"py3"}, "cp312-cp312-manylinux_2_17_x86_64", False),
        ({"whl.tag.interpreter": r"py3"}, "py3-none-any", True),
        ({"whl.tag.interpreter": ""}, "cp312-cp312-manylinux_2_17_x86_64", True),
    ],
)
def test_legacy_tag_regexes(keys: dict[str, str], wheel: str, accepted: bool) -> None:
    assert (rank(env(**LINUX_312, **keys), wheel) is not None) is accepted


# -- configuration errors ----------------------------------------------------------------------

ERRORS = [
    ({"sys_platform": "linux"}, None, "python_version"),
    ({"python_version": ""}, None, "python_version"),
    ({"python_version": "3.12.1"}, "python_version", "3.12.1"),
    ({"python_version": "3"}, "python_version", "'3'"),
    ({"python_version": "three"}, "python_version", "three"),
    ({"python_version": "3.12", "python_full_version": "3.12.x"}, "python_full_version", "3.12.x"),
    ({"python_version": "3.12", "python_full_version": "3.11.4"}, "python_full_version", "3.11.4"),
    ({"python_version": "3.12", "platform": "linux"}, "platform", "unknown key"),
    ({"python_version": "3.12", "glibc": "2.17"}, "glibc", "unknown key"),
    ({**LINUX_312, "glibc_version": "2"}, "glibc_version", "'2'"),
    ({**LINUX_312, "glibc_version": "glibc 2.28"}, "glibc_version", "2.28"),
    ({**LINUX_312, "musl_version": "latest"}, "musl_version", "latest"),
    (
        {"python_version": "3.12", "sys_platform": "darwin", "macos_version": "big sur"},
        "macos_version",
        "big sur",
    ),
    ({**LINUX_312, "whl.tag.platform": "manylinux(["}, "whl.tag.platform", "regular expression"),
    # numbers int() refuses, or levels that would make millions of tags
    ({"python_version": "9" * 5000 + ".1"}, "python_version", "is not MAJOR.MINOR"),
    ({"python_version": "\u0663.\u0661\u0662"}, "python_version", "is not MAJOR.MINOR"),
    (
        {"python_version": "3.12", "python_full_version": "3.12." + "9" * 5000},
        "python_full_version",
        "valid version",
    ),
    ({**LINUX_312, "glibc_version": "2.99999999"}, "glibc_version", "MAJOR.MINOR level"),
    ({**LINUX_312, "glibc_version": "2." + "9" * 5000}, "glibc_version", "MAJOR.MINOR level"),
    ({"python_version": "3.12", "platform_tag": "musllinux_x86_64"}, "platform_tag", "musl level"),
    # a platform_tag that is no platform is a Morgan 0.15 regular expression: it must compile
    ({**LINUX_312, "platform_tag": "manylinux(["}, "platform_tag", "regular expression"),
    ({**LINUX_312, "platform_tag": "win_amd64|*"}, "platform_tag", "regular expression"),
    ({**LINUX_312, "pip_version": "eighteen"}, "pip_version", "'eighteen' is not a pip version"),
    ({**LINUX_312, "pip_version": "18.1.x"}, "pip_version", "e.g. 18.1"),
    ({**LINUX_312, "pip_version": "1" * 5000}, "pip_version", "is not a pip version"),
]


@pytest.mark.parametrize(("keys", "key", "fragment"), ERRORS)
def test_config_errors(keys: dict[str, str], key: str | None, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        env(**keys)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.path == "conf/morgan.ini"
    assert error.section == "env.test"
    assert error.key == key
    message = str(error)
    assert "\n" not in message
    assert message.startswith("conf/morgan.ini: [env.test]")
    if key is not None:
        assert f"[env.test] {key}:" in message
    assert fragment in message


# -- markers that parse but cannot be evaluated ------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        'python_version ~= "3"',  # ~= needs two release segments
        '"5.0" ~= platform_release',  # platform_release is unknown here: ""
        'python_version > "1.' + "9" * 5000 + '"',  # more digits than int() accepts
    ],
)
def test_evaluate_marker_says_why_it_cannot(marker: str) -> None:
    linux = env(**LINUX_312)
    with pytest.raises(DistributionError) as caught:
        linux.evaluate_marker(Marker(marker), source="demo-1.0.whl")
    message = str(caught.value)
    assert message.startswith("demo-1.0.whl (for test): marker ")
    assert "cannot be evaluated" in message
    assert "\n" not in message and len(message) < 600


def test_evaluate_marker_with_an_extra() -> None:
    linux = env(**LINUX_312)
    marker = Marker('extra == "Fast_Thing" and os_name == "posix"')
    assert linux.evaluate_marker(marker, "fast-thing", source="x")
    assert not linux.evaluate_marker(marker, "", source="x")


@pytest.mark.parametrize(
    "requires_python", [">=3," * 1000 + ">=3", ">=" + "9" * 5000, ">=3.8,<", "\x00"]
)
def test_unusable_requires_python_is_ignored(requires_python: str) -> None:
    assert env(**LINUX_312).allows_python(requires_python)


# -- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "level"),
    [
        ("manylinux_2_28_x86_64", (2, 28)),
        ("manylinux2014_aarch64", (2, 17)),
        ("manylinux2010_x86_64", (2, 12)),
        ("manylinux1_i686", (2, 5)),
        ("musllinux_1_2_x86_64", (1, 2)),
        ("macosx_10_9_x86_64", (10, 9)),
        ("macosx_14_0_arm64", (14, 0)),
        ("win_amd64", (0, 0)),
        ("any", (0, 0)),
    ],
)
def test_platform_level(platform: str, level: tuple[int, int]) -> None:
    assert platform_level(platform) == level


def test_plain_linux_wheel_needs_more_than_any_manylinux() -> None:
    # A linux_<arch> wheel says nothing of the glibc it was built against.
    assert platform_level("linux_x86_64") > platform_level("manylinux_2_60_x86_64")
    assert platform_level("linux_aarch64") > platform_level("musllinux_1_2_aarch64")


def test_manylinux_platforms() -> None:
    x86 = list(manylinux_platforms("x86_64", (2, 17)))
    assert x86[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert x86[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert "manylinux2010_x86_64" in x86
    arm = list(manylinux_platforms("aarch64", (2, 28)))
    assert arm[0] == "manylinux_2_28_aarch64"
    assert arm[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert list(manylinux_platforms("x86_64", (3, 1))) == []


def test_musllinux_platforms() -> None:
    assert list(musllinux_platforms("aarch64", (1, 2))) == [
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
        "musllinux_1_0_aarch64",
    ]
    assert list(musllinux_platforms("x86_64", (2, 0))) == []


# -- Morgan 0.15's platform_tag: a regular expression ------------------------------------------

WINDOWS = {"python_version": "3.12", "sys_platform": "win32", "platform_machine": "AMD64"}
LINUX_PATTERN = {**LINUX_312, "platform_tag": "manylinux.*_x86_64"}
ANY_MANYLINUX = {"python_version": "3.12", "platform_tag": "manylinux.*_x86_64"}
ANY_AARCH64 = {"python_version": "3.12", "sys_platform": "linux", "platform_tag": ".*_aarch64"}
ANY_MAC_ARM = {
    "python_version": "3.12",
    "sys_platform": "darwin",
    "platform_tag": r"macosx_1\d_0_arm64",
}
MUSL_PATTERN = {**LINUX_312, "platform_tag": r"musllinux_1_\d_x86_64"}
EITHER_LIBC = {**LINUX_312, "platform_tag": r"(many|musl)linux.*_x86_64"}

PLATFORM_PATTERNS = [
    # the examples of Morgan 0.15 configs: fully matched against the wheel's platform tag,
    # among the tags the other keys allow (an AMD64 Windows takes no win32 wheel)
    (WINDOWS | {"platform_tag": "win_amd64|win32"}, "cp312-cp312-win_amd64", True),
    (WINDOWS | {"platform_tag": "win_amd64|win32"}, "cp312-cp312-win32", False),
    (WINDOWS | {"platform_tag": "win_amd64|win32"}, "py3-none-any", True),
    # no machine: every Windows platform tag is a candidate
    ({"python_version": "3.12", "platform_tag": "win_amd64|win32"}, "cp312-cp312-win32", True),
    ({"python_version": "3.12", "platform_tag": "win_amd64|win32"}, "cp312-cp312-win_amd64", True),
    ({"python_version": "3.12", "platform_tag": "win_amd64|win32"}, "cp312-cp312-win_arm64", False),
    (LINUX_PATTERN, "cp312-cp312-manylinux_2_17_x86_64", True),
    (LINUX_PATTERN, "cp312-cp312-manylinux2014_x86_64", True),
    (LINUX_PATTERN, "cp312-cp312-manylinux1_x86_64", True),
    (LINUX_PATTERN, "cp312-cp312-manylinux_2_39_x86_64", True),
    (LINUX_PATTERN, "cp312-cp312-linux_x86_64", False),  # fullmatch: "manylinux" is required
    (LINUX_PATTERN, "cp312-cp312-musllinux_1_2_x86_64", False),
    (LINUX_PATTERN, "cp312-cp312-manylinux_2_17_aarch64", False),
    (LINUX_PATTERN, "py3-none-any", True),
    # interpreter and ABI rules still hold
    (LINUX_PATTERN, "cp311-cp311-manylinux_2_17_x86_64", False),
    (LINUX_PATTERN, "cp39-abi3-manylinux_2_17_x86_64", True),
    # the levels stated still hold
    (LINUX_PATTERN | {"glibc_version": "2.17"}, "cp312-cp312-manylinux_2_28_x86_64", False),
    (LINUX_PATTERN | {"glibc_version": "2.17"}, "cp312-cp312-manylinux2010_x86_64", True),
    # the system comes from the pattern when no key names it; the architectures of that
    # system are the candidates when no machine is stated
    (ANY_MANYLINUX, "cp312-cp312-manylinux_2_28_x86_64", True),
    (ANY_MANYLINUX, "cp312-cp312-win_amd64", False),
    (ANY_AARCH64, "cp312-cp312-manylinux_2_17_aarch64", True),
    (ANY_AARCH64, "cp312-cp312-manylinux_2_17_x86_64", False),
    (ANY_AARCH64, "cp312-cp312-linux_aarch64", True),
    (ANY_MAC_ARM, "cp312-cp312-macosx_14_0_arm64", True),
    (ANY_MAC_ARM, "cp312-cp312-macosx_14_0_x86_64", False),
    # musllinux only when the pattern matches no manylinux tag (or musl_version says so)
    (MUSL_PATTERN, "cp312-cp312-musllinux_1_1_x86_64", True),
    (MUSL_PATTERN, "cp312-cp312-manylinux_2_17_x86_64", False),
    (EITHER_LIBC, "cp312-cp312-manylinux_2_17_x86_64", True),
    (EITHER_LIBC, "cp312-cp312-musllinux_1_1_x86_64", False),
    (EITHER_LIBC | {"musl_version": "1.2"}, "cp312-cp312-musllinux_1_1_x86_64", True),
    # Morgan 0.15's own test config: "manylinux" fully matches no tag, so pure wheels only
    (LINUX_312 | {"platform_tag": "manylinux"}, "cp312-cp312-manylinux_2_17_x86_64", False),
    (LINUX_312 | {"platform_tag": "manylinux"}, "py3-none-any", True),
    # a pattern for another system than the markers selects nothing of it
    (LINUX_312 | {"platform_tag": "win_amd64|win32"}, "cp312-cp312-win_amd64", False),
    # with pip_version, only the tags that pip knows
    (LINUX_PATTERN | {"pip_version": "18.1"}, "cp312-cp312-manylinux2014_x86_64", False),
    (LINUX_PATTERN | {"pip_version": "18.1"}, "cp312-cp312-manylinux1_x86_64", True),
]


@pytest.mark.parametrize(("keys", "wheel", "accepted"), PLATFORM_PATTERNS)
def test_platform_tag_pattern(keys: dict[str, str], wheel: str, accepted: bool) -> None:
    assert (rank(env(**keys), wheel) is not None) is accepted


PLATFORM_TAG_READINGS = [
    # what platform_tag is a platform: a wheel platform tag or sysconfig.get_platform()
    ("linux-x86_64", False),
    ("linux_i686", False),
    ("manylinux_2_28_x86_64", False),
    ("manylinux2014_aarch64", False),
    ("musllinux_1_2_x86_64", False),
    ("win32", False),
    ("win-amd64", False),
    ("win_arm64", False),
    ("macosx-11.0-arm64", False),
    ("macosx-10.9-universal2", False),
    ("freebsd-14.1-RELEASE-amd64", False),
    # anything else is a Morgan 0.15 pattern
    ("win_amd64|win32", True),
    ("manylinux.*_x86_64", True),
    ("manylinux", True),
    ("linux", True),
    ("macosx_x86_64", True),
    (".*", True),
]


@pytest.mark.parametrize(("value", "pattern"), PLATFORM_TAG_READINGS)
def test_which_platform_tag_is_a_pattern(
    value: str, pattern: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        env(python_version="3.12", platform_tag=value)
    warned = [r.getMessage() for r in caplog.records if "regular expression" in r.getMessage()]
    assert bool(warned) is pattern


def test_platform_tag_pattern_warns_and_suggests_the_explicit_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        env(**LINUX_PATTERN)
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelname == "WARNING"
    assert message.startswith("conf/morgan.ini: [env.test] platform_tag = manylinux.*_x86_64 ")
    assert "Morgan 0.15" in message and "regular expression" in message
    assert "manylinux_2_60_x86_64" in message  # what it selects
    for key in (
        "sys_platform",
        "platform_machine",
        "glibc_version",
        "musl_version",
        "macos_version",
    ):
        assert key in message


def test_platform_tag_pattern_that_selects_nothing_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        environment = env(**LINUX_312, platform_tag="manylinux")
    assert {tag.platform for tag in environment.tags} == {"any"}
    assert "no platform tag, so only pure-Python wheels" in caplog.text


@pytest.mark.parametrize(
    ("pattern", "sys_platform"),
    [
        ("win_amd64|win32", "win32"),
        ("manylinux.*_x86_64", "linux"),
        (r"macosx_1\d_0_arm64", "darwin"),
        ("(win32|manylinux1_x86_64)", ""),  # two systems: not decided
        ("nothing", ""),
    ],
)
def test_platform_tag_pattern_names_the_system(pattern: str, sys_platform: str) -> None:
    assert env(python_version="3.12", platform_tag=pattern).markers["sys_platform"] == sys_platform


def test_platform_tag_pattern_keeps_pips_order() -> None:
    """The matched tags keep their place in pip's order: the newest fitting level first."""
    environment = env(**LINUX_PATTERN, glibc_version="2.28")
    wheels = ["cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_28_x86_64"]
    assert best(environment, wheels) == "cp312-cp312-manylinux_2_28_x86_64"
    unknown = env(**LINUX_PATTERN)
    assert unknown.level_unknown
    assert best(unknown, wheels) == "cp312-cp312-manylinux_2_17_x86_64"


# -- platform_tag against the markers ----------------------------------------------------------

CONTRADICTIONS = [
    # (keys, wheels accepted, wheels refused, warned)
    # Morgan's original README sample: a client whose uname says i686 runs a 32-bit
    # interpreter, which installs i686 wheels whatever platform_tag says
    (
        {
            "python_version": "3.9",
            "python_full_version": "3.9.9",
            "os_name": "posix",
            "platform_tag": "linux-x86_64",
            "sys_platform": "linux",
            "platform_machine": "i686",
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "implementation_name": "cpython",
        },
        ["cp39-cp39-manylinux1_i686", "cp39-cp39-manylinux_2_17_i686", "cp39-cp39-linux_i686"],
        ["cp39-cp39-manylinux1_x86_64", "cp39-cp39-linux_x86_64"],
        True,
    ),
    # a 32-bit Python on a 64-bit kernel: uname says x86_64, the interpreter is i686
    (
        LINUX_312 | {"platform_tag": "linux_i686"},
        ["cp312-cp312-manylinux_2_17_i686"],
        ["cp312-cp312-manylinux_2_17_x86_64"],
        False,
    ),
    (
        LINUX_312 | {"platform_machine": "aarch64", "platform_tag": "linux_armv8l"},
        ["cp312-cp312-manylinux_2_17_armv7l"],
        ["cp312-cp312-manylinux_2_17_aarch64"],
        False,
    ),
    # another architecture: the machine's, at the level the tag states
    (
        LINUX_312 | {"platform_tag": "manylinux2014_aarch64"},
        ["cp312-cp312-manylinux2014_x86_64"],
        ["cp312-cp312-manylinux2014_aarch64", "cp312-cp312-manylinux_2_28_x86_64"],
        True,
    ),
    # Windows: platform.machine() names Windows' architecture; WOW64 and x64 emulation
    (
        WINDOWS | {"platform_tag": "win32"},
        ["cp312-cp312-win32"],
        ["cp312-cp312-win_amd64"],
        False,
    ),
    (
        WINDOWS | {"platform_machine": "ARM64", "platform_tag": "win_amd64"},
        ["cp312-cp312-win_amd64"],
        ["cp312-cp312-win_arm64"],
        False,
    ),
    (
        WINDOWS | {"platform_machine": "ARM64", "platform_tag": "win32"},
        ["cp312-cp312-win32"],
        ["cp312-cp312-win_arm64"],
        False,
    ),
    # no 64-bit interpreter runs on 32-bit Windows, no ARM64 one on x64
    (
        WINDOWS | {"platform_machine": "x86", "platform_tag": "win_amd64"},
        ["cp312-cp312-win32"],
        ["cp312-cp312-win_amd64"],
        True,
    ),
    (
        WINDOWS | {"platform_tag": "win_arm64"},
        ["cp312-cp312-win_amd64"],
        ["cp312-cp312-win_arm64"],
        True,
    ),
    # macOS: a universal2 build runs as the machine's architecture, on macOS 11 or later
    # when that is arm64
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "arm64"}
        | {"platform_tag": "macosx-10.9-universal2"},
        ["cp312-cp312-macosx_11_0_arm64", "cp312-cp312-macosx_10_9_universal2"],
        ["cp312-cp312-macosx_10_9_x86_64", "cp312-cp312-macosx_12_0_arm64"],
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "x86_64"}
        | {"platform_tag": "macosx-10.9-universal2"},
        ["cp312-cp312-macosx_10_9_x86_64", "cp312-cp312-macosx_10_9_universal2"],
        ["cp312-cp312-macosx_11_0_arm64", "cp312-cp312-macosx_10_13_x86_64"],
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "x86_64"}
        | {"platform_tag": "macosx_10_6_i386"},
        ["cp312-cp312-macosx_10_6_i386"],
        ["cp312-cp312-macosx_10_6_x86_64"],
        False,
    ),
    # Rosetta makes uname say x86_64: an arm64 machine runs arm64 Pythons
    (
        {"python_version": "3.12", "sys_platform": "darwin", "platform_machine": "arm64"}
        | {"platform_tag": "macosx-11.0-x86_64"},
        ["cp312-cp312-macosx_11_0_arm64"],
        ["cp312-cp312-macosx_11_0_x86_64", "cp312-cp312-macosx_12_0_arm64"],
        True,
    ),
    # another system than the markers: the markers win, platform_tag is ignored
    (
        LINUX_312 | {"platform_tag": "win_amd64"},
        ["cp312-cp312-manylinux_2_17_x86_64"],
        ["cp312-cp312-win_amd64"],
        True,
    ),
    (
        WINDOWS | {"platform_tag": "linux-x86_64"},
        ["cp312-cp312-win_amd64"],
        ["cp312-cp312-linux_x86_64", "cp312-cp312-manylinux_2_17_x86_64"],
        True,
    ),
    (
        {"python_version": "3.12", "platform_system": "Windows", "platform_machine": "AMD64"}
        | {"platform_tag": "manylinux_2_28_x86_64"},
        ["cp312-cp312-win_amd64"],
        ["cp312-cp312-manylinux_2_28_x86_64"],
        True,
    ),
    (
        LINUX_312 | {"platform_tag": "macosx-11.0-arm64"},
        ["cp312-cp312-manylinux_2_17_x86_64"],
        ["cp312-cp312-macosx_11_0_arm64"],
        True,
    ),
    (
        LINUX_312 | {"platform_tag": "freebsd-14.1-RELEASE-amd64"},
        ["cp312-cp312-manylinux_2_17_x86_64"],
        ["cp312-cp312-freebsd_14_1_release_amd64"],
        True,
    ),
    # agreeing keys: no warning
    (
        LINUX_312 | {"platform_tag": "linux-x86_64"},
        ["cp312-cp312-manylinux_2_17_x86_64"],
        ["cp312-cp312-manylinux_2_17_i686"],
        False,
    ),
    (
        {"python_version": "3.12", "sys_platform": "freebsd14", "platform_machine": "amd64"}
        | {"platform_tag": "freebsd-14.1-RELEASE-amd64"},
        ["cp312-cp312-freebsd_14_1_release_amd64"],
        ["cp312-cp312-linux_x86_64"],
        False,
    ),
]


@pytest.mark.parametrize(("keys", "accepted", "refused", "warned"), CONTRADICTIONS)
def test_platform_tag_against_the_markers(
    keys: dict[str, str],
    accepted: list[str],
    refused: list[str],
    warned: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        environment = env(**keys)
    for wheel in accepted:
        assert rank(environment, wheel) is not None, wheel
    for wheel in refused:
        assert rank(environment, wheel) is None, wheel
    assert bool(caplog.records) is warned, caplog.text
    for record in caplog.records:
        message = record.getMessage()
        assert record.levelname == "WARNING"
        assert message.startswith("conf/morgan.ini: [env.test] platform_tag = ")
        assert f"platform_tag = {keys['platform_tag']}" in message
        stated = [
            key for key in ("platform_machine", "sys_platform", "platform_system") if key in message
        ]
        assert stated, message
        for key in stated:
            assert f"{key} = {keys[key]}" in message, message


def test_morgans_readme_sample_warns_naming_both_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        environment = env(
            python_version="3.9",
            platform_tag="linux-x86_64",
            sys_platform="linux",
            platform_machine="i686",
        )
    assert [r.getMessage() for r in caplog.records] == [
        "conf/morgan.ini: [env.test] platform_tag = linux-x86_64 contradicts platform_machine"
        " = i686: i686 wheels are mirrored, for the client whose pip sees platform_machine ="
        " i686 (platform_tag may name another architecture only for a narrower interpreter on"
        " a wider machine, such as a 32-bit Python on x86_64); correct whichever is wrong"
    ]
    assert environment.markers["platform_machine"] == "i686"  # markers are never rewritten
    assert best(environment, ["cp39-cp39-manylinux1_x86_64", "cp39-cp39-manylinux1_i686"]) == (
        "cp39-cp39-manylinux1_i686"
    )


def test_os_contradiction_keeps_the_markers(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="morgan.environments"):
        environment = env(**LINUX_312, platform_tag="win_amd64")
    assert environment.markers["sys_platform"] == "linux"
    assert environment.markers["os_name"] == "posix"
    (record,) = caplog.records
    assert "platform_tag = win_amd64 names a Windows platform, but sys_platform = linux" in (
        record.getMessage()
    )


# -- pip_version: only the tags that pip knows -------------------------------------------------

OLD_LINUX = {"python_version": "3.6", **LINUX, "glibc_version": "2.28"}
MUSL = {"python_version": "3.9", **LINUX, "musl_version": "1.2"}
MAC_ARM = {
    "python_version": "3.9",
    "sys_platform": "darwin",
    "platform_machine": "arm64",
    "macos_version": "12.0",
}
MAC_X86 = MAC_ARM | {"platform_machine": "x86_64"}

PIP_VERSIONS = [
    # manylinux1: pip 8.1
    (OLD_LINUX, "8.0.3", "cp36-cp36m-manylinux1_x86_64", False),
    (OLD_LINUX, "8.0.3", "cp36-cp36m-linux_x86_64", True),
    (OLD_LINUX, "8.1.0", "cp36-cp36m-manylinux1_x86_64", True),
    # manylinux2010: pip 19.0
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux1_x86_64", True),
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux2010_x86_64", False),
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux2014_x86_64", False),
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux_2_28_x86_64", False),
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux_2_17_x86_64.manylinux2014_x86_64", False),
    (OLD_LINUX, "18.1", "cp36-cp36m-manylinux_2_5_x86_64.manylinux1_x86_64", True),
    (OLD_LINUX, "18.1", "py3-none-any", True),
    (OLD_LINUX, "19.0", "cp36-cp36m-manylinux2010_x86_64", True),
    (OLD_LINUX, "19.2.3", "cp36-cp36m-manylinux2014_x86_64", False),
    # manylinux2014: pip 19.3, which matches the manylinux2014 part of a compressed tag set
    (OLD_LINUX, "19.3", "cp36-cp36m-manylinux2014_x86_64", True),
    (OLD_LINUX, "19.3", "cp36-cp36m-manylinux_2_17_x86_64.manylinux2014_x86_64", True),
    (OLD_LINUX, "19.3", "cp36-cp36m-manylinux_2_17_x86_64", False),
    (OLD_LINUX, "20.2.4", "cp36-cp36m-manylinux_2_24_x86_64", False),
    # PEP 600 manylinux_x_y: pip 20.3
    (OLD_LINUX, "20.3", "cp36-cp36m-manylinux_2_24_x86_64", True),
    (OLD_LINUX, "20.3", "cp36-cp36m-manylinux_2_28_x86_64", True),
    (OLD_LINUX, "20.3", "cp36-cp36m-manylinux_2_31_x86_64", False),  # glibc 2.28 still
    (OLD_LINUX, "24.0", "cp36-cp36m-manylinux_2_17_x86_64", True),
    # musllinux (PEP 656): pip 21.2; before, a musl client takes only linux_<arch>
    (MUSL, "21.1.3", "cp39-cp39-musllinux_1_1_x86_64", False),
    (MUSL, "21.1.3", "cp39-cp39-linux_x86_64", True),
    (MUSL, "21.2", "cp39-cp39-musllinux_1_1_x86_64", True),
    (MUSL, "21.2", "cp39-cp39-musllinux_1_2_x86_64", True),
    # macOS 11+ and universal2: pip 20.3; before, an arm64 Python saw only its own major,
    # and an x86_64 one heard 10.16
    (MAC_ARM, "20.2.4", "cp39-cp39-macosx_12_0_arm64", True),
    (MAC_ARM, "20.2.4", "cp39-cp39-macosx_11_0_arm64", False),
    (MAC_ARM, "20.2.4", "cp39-cp39-macosx_11_0_universal2", False),
    (MAC_ARM, "20.3", "cp39-cp39-macosx_11_0_arm64", True),
    (MAC_ARM, "20.3", "cp39-cp39-macosx_11_0_universal2", True),
    # macosx_10_*_universal2 on arm64: pip 21.0.1
    (MAC_ARM, "21.0", "cp39-cp39-macosx_10_9_universal2", False),
    (MAC_ARM, "21.0.1", "cp39-cp39-macosx_10_9_universal2", True),
    (MAC_X86, "20.2.4", "cp39-cp39-macosx_11_0_x86_64", False),
    (MAC_X86, "20.2.4", "cp39-cp39-macosx_10_16_x86_64", True),
    (MAC_X86, "20.2.4", "cp39-cp39-macosx_10_9_x86_64", True),
    (MAC_X86, "20.2.4", "cp39-cp39-macosx_10_9_universal2", False),
    (MAC_X86, "20.3", "cp39-cp39-macosx_10_9_universal2", True),
    (MAC_X86, "20.3", "cp39-cp39-macosx_11_0_x86_64", True),
    # Windows tags are known to every pip
    (WINDOWS | {"python_version": "3.6"}, "9.0.1", "cp36-cp36m-win_amd64", True),
]


@pytest.mark.parametrize(("keys", "pip", "wheel", "accepted"), PIP_VERSIONS)
def test_pip_version(keys: dict[str, str], pip: str, wheel: str, accepted: bool) -> None:
    environment = env(**keys, pip_version=pip)
    assert environment.pip_version == Version(pip)
    assert (rank(environment, wheel) is not None) is accepted


PIP_BEST = [
    # pip 18.1 on Python 3.6 gets the manylinux1 wheel where one exists
    ("18.1", ["manylinux2014", "manylinux_2_28", "manylinux1"], "manylinux1"),
    ("19.0", ["manylinux1", "manylinux2010", "manylinux2014"], "manylinux2010"),
    (
        "19.3",
        ["manylinux_2_28", "manylinux_2_17.manylinux2014", "manylinux1"],
        "manylinux_2_17.manylinux2014",
    ),
    ("20.3", ["manylinux_2_17.manylinux2014", "manylinux_2_28"], "manylinux_2_28"),
]


@pytest.mark.parametrize(("pip", "platforms", "expected"), PIP_BEST)
def test_pip_version_best_wheel(pip: str, platforms: list[str], expected: str) -> None:
    """Which of a release's wheels (cp36-cp36m, for x86_64) a client with that pip gets."""

    def wheel(platform: str) -> str:
        return "cp36-cp36m-" + ".".join(f"{p}_x86_64" for p in platform.split("."))

    environment = env(**OLD_LINUX, pip_version=pip)
    wheels = [wheel(p) for p in platforms]
    assert best(environment, wheels) == wheel(expected)
    assert best(environment, list(reversed(wheels))) == wheel(expected)


def test_pip_version_keeps_pips_order() -> None:
    """pip 19.3 on glibc 2.28: manylinux2014, manylinux2010, manylinux1, linux, as that pip."""
    environment = env(**OLD_LINUX, pip_version="19.3")
    platforms = [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]
    expected = list(tagslib.cpython_tags((3, 6), ["cp36m"], platforms))
    assert list(environment.tags[: len(expected)]) == expected
    assert "pip_version" in TAG_KEYS


def test_without_pip_version_every_tag_counts() -> None:
    environment = env(**OLD_LINUX)
    assert environment.pip_version is None
    assert rank(environment, "cp36-cp36m-manylinux_2_28_x86_64") is not None


@pytest.mark.parametrize(
    ("platform", "pip", "known"),
    [
        ("manylinux1_x86_64", "8.1", True),
        ("manylinux1_x86_64", "8.0", False),
        ("manylinux2010_i686", "19.0", True),
        ("manylinux2014_aarch64", "19.2", False),
        ("manylinux_2_17_x86_64", "20.3", True),
        ("manylinux_2_17_x86_64", "20.3b1", False),
        ("musllinux_1_2_aarch64", "21.2", True),
        ("musllinux_1_2_aarch64", "21.1", False),
        ("linux_x86_64", "1.5", True),
        ("win_amd64", "1.5", True),
        ("manylinux_2_17_x86_64", None, True),
    ],
)
def test_pip_understands(platform: str, pip: str | None, known: bool) -> None:
    assert pip_understands(platform, Version(pip) if pip else None) is known


@pytest.mark.parametrize(
    ("version", "arch"), [((10, 15), "x86_64"), ((11, 0), "arm64"), ((14, 0), "x86_64")]
)
def test_mac_platforms_of_a_current_pip_are_packagings(version: tuple[int, int], arch: str) -> None:
    assert mac_platforms(version, arch) == list(tagslib.mac_platforms(version, arch))
    assert mac_platforms(version, arch, Version("25.0")) == list(
        tagslib.mac_platforms(version, arch)
    )


# -- pre-release Pythons: Requires-Python sees the release numbers, as pip -----------------------

PRERELEASE_PYTHON = [
    # pip: Version(".".join(map(str, sys.version_info[:3]))) in SpecifierSet(requires_python)
    ("3.13.0rc1", ">=3.13", True),
    ("3.13.0rc1", ">=3.13.0", True),
    ("3.13.0rc1", "~=3.13", True),
    ("3.13.0rc1", "==3.13.*", True),
    ("3.13.0rc1", ">3.13.0", False),
    ("3.13.0rc1", "<3.13", False),
    ("3.13.0rc1", "==3.13.0rc1", False),  # 3.13.0 is compared
    ("3.13.0rc1", ">=3.13.0rc1", True),
    ("3.13.0a1", ">=3.12,<3.14", True),
    ("3.13.0b3", "!=3.13.0", False),
    ("3.13.1rc1", ">=3.13.1", True),
    ("3.13.1rc1", "<3.13.1", False),
]


@pytest.mark.parametrize(("full", "requires", "allowed"), PRERELEASE_PYTHON)
def test_prerelease_python_requires_python(full: str, requires: str, allowed: bool) -> None:
    environment = env(python_version="3.13", python_full_version=full)
    assert environment.allows_python(requires) is allowed
    # what pip computes
    release = Version(".".join(map(str, Version(full).release[:3])))
    assert (release in SpecifierSet(requires)) is allowed


def test_prerelease_python_markers_keep_the_full_version() -> None:
    """Markers see platform.python_version() ("3.13.0rc1"), as the client's pip does."""
    environment = env(python_version="3.13", python_full_version="3.13.0rc1")
    assert environment.markers["python_full_version"] == "3.13.0rc1"
    assert environment.markers["implementation_version"] == "3.13.0rc1"
    assert str(environment.python_version) == "3.13.0rc1"
    assert environment.requires_python_version == Version("3.13.0")
    assert environment.evaluate_marker(Marker('python_version >= "3.13"'), source="x")
    assert not environment.evaluate_marker(Marker('python_full_version >= "3.13.0"'), source="x")
