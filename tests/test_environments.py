"""Client environments: marker values, wheel tags and their order, config errors."""

from __future__ import annotations

import sysconfig

import pytest
from packaging import tags as tagslib
from packaging.markers import Marker
from packaging.tags import Tag, parse_tag

from morgan.environments import (
    Environment,
    manylinux_platforms,
    musllinux_platforms,
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
    ("3.12", "3.12.0rc1", ">=3.12", False),
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
