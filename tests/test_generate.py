"""``generate_env``: the block describes what the client's pip accepts, not the build target."""

from __future__ import annotations

import configparser
import sys
import sysconfig
import types
from pathlib import Path

import pytest
from packaging import _manylinux, _musllinux
from packaging import tags as tagslib
from packaging.tags import Tag

from morgan import generate
from morgan.config import MirrorConfig
from morgan.environments import KNOWN_KEYS, Environment
from morgan.generate import InterpreterFacts, environment_block, interpreter_arch, macos_level


def parse(block: str, tmp_path: Path) -> Environment:
    """The environment morgan reads from ``block``, through the real configuration path."""
    config = tmp_path / "morgan.ini"
    config.write_text(block + "[requirements]\n")
    (env,) = MirrorConfig.from_file(str(config)).environments
    return env


def keys(block: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block)
    (section,) = parser.sections()
    return dict(parser[section])


def platforms(env: Environment) -> list[str]:
    """The environment's platform tags, best first, without ``any``."""
    seen: dict[str, None] = {}
    for tag in env.tags:
        if tag.platform != "any":
            seen.setdefault(tag.platform)
    return list(seen)


def fake_machine(
    monkeypatch: pytest.MonkeyPatch,
    *,
    sys_platform: str,
    system: str,
    machine: str,
    sysconfig_platform: str,
    pointer_size: int = 8,
    mac_ver: tuple[str, str] = ("", ""),
    glibc: str | None = None,
    musl: str | None = None,
) -> None:
    """Make ``InterpreterFacts.current()`` see another machine.

    Only the names morgan.generate looks up are replaced, never the real ``sys`` or
    ``platform`` modules.
    """
    release, cpu = mac_ver
    monkeypatch.setattr(
        generate,
        "sys",
        types.SimpleNamespace(
            platform=sys_platform, implementation=sys.implementation, executable=sys.executable
        ),
    )
    monkeypatch.setattr(
        generate,
        "platform",
        types.SimpleNamespace(
            machine=lambda: machine,
            system=lambda: system,
            release=lambda: "99.0",
            python_implementation=lambda: "CPython",
            python_version=lambda: "3.12.4",
            mac_ver=lambda: (release, ("", "", ""), cpu),
        ),
    )
    monkeypatch.setattr(
        generate, "sysconfig", types.SimpleNamespace(get_platform=lambda: sysconfig_platform)
    )
    monkeypatch.setattr(generate, "struct", types.SimpleNamespace(calcsize=lambda _: pointer_size))
    monkeypatch.setattr(generate, "_running_glibc", lambda: glibc)
    monkeypatch.setattr(generate, "_running_musl", lambda: musl)
    monkeypatch.setattr(generate, "_best_abi", lambda: "cp312")
    monkeypatch.setattr(generate, "_pip_version", lambda: "24.0")


# -- (a) a python.org universal2 build on an arm64 Mac running macOS 14 -----------------


@pytest.fixture
def arm_mac(monkeypatch: pytest.MonkeyPatch) -> InterpreterFacts:
    fake_machine(
        monkeypatch,
        sys_platform="darwin",
        system="Darwin",
        machine="arm64",
        sysconfig_platform="macosx-10.9-universal2",
        mac_ver=("14.4.1", "arm64"),
    )
    return InterpreterFacts.current()


def test_universal2_build_on_arm_mac_gets_the_macs_tags_not_the_deployment_target(
    arm_mac: InterpreterFacts, tmp_path: Path
) -> None:
    block = environment_block("mac", arm_mac)
    values = keys(block)
    assert values["platform_machine"] == "arm64"
    assert values["macos_version"] == "14.0"
    assert "platform_tag" not in values
    assert "10.9" not in block
    assert "universal2" not in block

    env = parse(block, tmp_path)
    assert platforms(env) == list(tagslib.mac_platforms((14, 0), "arm64"))
    found = {tag.platform for tag in env.tags}
    assert {"macosx_14_0_arm64", "macosx_11_0_arm64"} <= found
    assert not any(p.endswith(("_x86_64", "_intel")) for p in found)
    assert not env.level_unknown


def test_arm_mac_tags_are_those_pip_on_that_mac_computes(
    arm_mac: InterpreterFacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = parse(environment_block("mac", arm_mac), tmp_path)
    # packaging itself, asked on "that Mac": its own defaults read platform.mac_ver()
    monkeypatch.setattr(tagslib.platform, "mac_ver", lambda: ("14.4.1", ("", "", ""), "arm64"))
    monkeypatch.setattr(tagslib.platform, "system", lambda: "Darwin")
    expected = list(tagslib.platform_tags())
    assert platforms(env) == expected
    assert env.tags == tuple(tagslib.cpython_tags((3, 12), ["cp312"], expected)) + tuple(
        tagslib.compatible_tags((3, 12), "cp312", expected)
    )


def test_arm_mac_ranks_arm64_wheels_above_x86_64_only_ones(
    arm_mac: InterpreterFacts, tmp_path: Path
) -> None:
    env = parse(environment_block("mac", arm_mac), tmp_path)
    arm_new = env.wheel_rank([Tag("cp312", "cp312", "macosx_14_0_arm64")])
    arm_old = env.wheel_rank([Tag("cp312", "cp312", "macosx_11_0_arm64")])
    universal = env.wheel_rank([Tag("cp312", "cp312", "macosx_10_9_universal2")])
    assert arm_new is not None and arm_old is not None and universal is not None
    assert arm_new < arm_old < universal
    assert env.wheel_rank([Tag("cp312", "cp312", "macosx_10_9_x86_64")]) is None
    assert env.wheel_rank([Tag("cp312", "cp312", "macosx_15_0_arm64")]) is None


def test_intel_mac_on_catalina_writes_the_minor_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_machine(
        monkeypatch,
        sys_platform="darwin",
        system="Darwin",
        machine="x86_64",
        sysconfig_platform="macosx-10.9-universal2",
        mac_ver=("10.15.7", "x86_64"),
    )
    block = environment_block("intel", InterpreterFacts.current())
    assert keys(block)["macos_version"] == "10.15"
    assert platforms(parse(block, tmp_path)) == list(tagslib.mac_platforms((10, 15), "x86_64"))


@pytest.mark.parametrize(
    ("release", "level"),
    [
        ("14.4.1", (14, 0)),
        ("11.0", (11, 0)),
        ("11.7.10", (11, 0)),
        ("15", (15, 0)),
        ("10.15.7", (10, 15)),
        ("10.9", (10, 9)),
        ("10.16", (10, 16)),
        ("", None),
        ("9.2", None),
    ],
)
def test_macos_level_is_the_one_pips_tags_start_from(
    release: str, level: tuple[int, int] | None
) -> None:
    assert macos_level(release) == level
    if level is not None and release.count(".") >= 1:
        # the same tags as pip computes from the full release
        major, minor = (int(part) for part in release.split(".")[:2])
        assert list(tagslib.mac_platforms(level, "arm64")) == list(
            tagslib.mac_platforms((major, minor), "arm64")
        )


# -- (b) a 32-bit Python on a 64-bit Linux kernel ----------------------------------------


def test_32_bit_python_on_64_bit_linux_gets_i686_tags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_machine(
        monkeypatch,
        sys_platform="linux",
        system="Linux",
        machine="x86_64",
        sysconfig_platform="linux-x86_64",
        pointer_size=4,
        glibc="glibc 2.31",
    )
    facts = InterpreterFacts.current()
    assert facts.arch == "i686"
    block = environment_block("i686", facts)
    values = keys(block)
    # markers stay what pip's markers read (platform.machine()), tags follow the interpreter
    assert values["platform_machine"] == "x86_64"
    assert values["platform_tag"] == "linux_i686"
    assert values["glibc_version"] == "2.31"

    env = parse(block, tmp_path)
    found = platforms(env)
    assert found[0] == "manylinux_2_31_i686"
    assert found[-3:] == ["manylinux_2_5_i686", "manylinux1_i686", "linux_i686"]
    assert not any("x86_64" in str(tag) for tag in env.tags)

    # what packaging computes in that interpreter
    monkeypatch.setattr(sysconfig, "get_platform", lambda: "linux-x86_64")
    monkeypatch.setattr(_manylinux, "_get_glibc_version", lambda: (2, 31))
    monkeypatch.setattr(_manylinux, "_have_compatible_abi", lambda *_: True)
    monkeypatch.setattr(_musllinux, "_get_musl_version", lambda _: None)
    expected = list(tagslib._linux_platforms(is_32bit=True))
    assert set(found) == set(expected)
    assert [p for p in found if p != "linux_i686"] == [p for p in expected if p != "linux_i686"]


@pytest.mark.parametrize(
    ("readings", "arch"),
    [
        (("linux", "x86_64", "linux-x86_64", 64, ""), "x86_64"),
        (("linux", "x86_64", "linux-x86_64", 32, ""), "i686"),
        (("linux", "i686", "linux-i686", 32, ""), "i686"),
        (("linux", "aarch64", "linux-aarch64", 32, ""), "armv8l"),
        (("linux", "aarch64", "linux-aarch64", 64, ""), "aarch64"),
        (("darwin", "arm64", "macosx-10.9-universal2", 64, "arm64"), "arm64"),
        (("darwin", "x86_64", "macosx-10.9-universal2", 64, "x86_64"), "x86_64"),  # Rosetta
        (("darwin", "x86_64", "macosx-10.6-intel", 32, "x86_64"), "i386"),
        (("win32", "AMD64", "win-amd64", 64, ""), "amd64"),
        (("win32", "AMD64", "win32", 32, ""), "x86"),
        (("win32", "ARM64", "win-arm64", 64, ""), "arm64"),
    ],
)
def test_interpreter_arch(readings: tuple[str, str, str, int, str], arch: str) -> None:
    assert interpreter_arch(*readings) == arch


def test_32_bit_python_on_64_bit_windows_gets_win32(tmp_path: Path) -> None:
    facts = InterpreterFacts.from_readings(
        {
            "os_name": "nt",
            "sys_platform": "win32",
            "platform_machine": "AMD64",
            "platform_python_implementation": "CPython",
            "platform_system": "Windows",
            "platform_release": "10",
            "python_full_version": "3.12.4",
            "implementation_name": "cpython",
        },
        sysconfig_platform="win32",
        pointer_bits=32,
        abi="cp312",
    )
    block = environment_block("win", facts)
    assert keys(block)["platform_tag"] == "win32"
    assert platforms(parse(block, tmp_path)) == ["win32"]
    facts64 = InterpreterFacts.from_readings(
        {**{k: getattr(facts, k) for k in generate.MARKER_FIELDS}},
        sysconfig_platform="win-amd64",
        pointer_bits=64,
    )
    block64 = environment_block("win", facts64)
    assert "platform_tag" not in keys(block64)
    assert platforms(parse(block64, tmp_path)) == ["win_amd64"]


# -- (c) Alpine: musl 1.2 on x86_64 ------------------------------------------------------


def test_alpine_gets_musllinux_tags_and_no_manylinux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_machine(
        monkeypatch,
        sys_platform="linux",
        system="Linux",
        machine="x86_64",
        sysconfig_platform="linux-x86_64",
        glibc=None,
        musl="1.2",
    )
    block = environment_block("alpine", InterpreterFacts.current())
    values = keys(block)
    assert values["musl_version"] == "1.2"
    assert "glibc_version" not in values
    assert "platform_tag" not in values

    env = parse(block, tmp_path)
    found = platforms(env)
    assert found == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
        "linux_x86_64",
    ]
    assert not any("manylinux" in tag.platform for tag in env.tags)

    monkeypatch.setattr(sysconfig, "get_platform", lambda: "linux-x86_64")
    monkeypatch.setattr(_manylinux, "_get_glibc_version", lambda: (-1, -1))
    monkeypatch.setattr(_musllinux, "_get_musl_version", lambda _: _musllinux._MuslVersion(1, 2))
    assert set(found) == set(tagslib._linux_platforms(is_32bit=False))


def test_other_systems_keep_their_plain_platform_tag(tmp_path: Path) -> None:
    facts = InterpreterFacts.from_readings(
        {
            "os_name": "posix",
            "sys_platform": "freebsd14",
            "platform_machine": "amd64",
            "platform_python_implementation": "CPython",
            "platform_system": "FreeBSD",
            "platform_release": "14.1-RELEASE",
            "python_full_version": "3.11.9",
            "implementation_name": "cpython",
        },
        sysconfig_platform="freebsd-14.1-RELEASE-amd64",
        pointer_bits=64,
    )
    block = environment_block("bsd", facts)
    assert keys(block)["platform_tag"] == "freebsd_14_1_RELEASE_amd64"
    assert "freebsd_14_1_release_amd64" in platforms(parse(block, tmp_path))


# -- (d) this machine --------------------------------------------------------------------


def test_this_interpreter_gets_exactly_the_tags_it_supports(tmp_path: Path) -> None:
    block = environment_block("here")
    env = parse(block, tmp_path)
    supported = list(tagslib.sys_tags())
    assert set(supported) <= set(env.tags)
    assert {tag.platform for tag in supported} == {tag.platform for tag in env.tags}
    # the same order, but for where the plain linux_<arch> tag stands: packaging >= 26.3
    # puts it first, the packaging pip vendors (and morgan) last
    common = set(supported) & set(env.tags)

    def ordered(tags: list[Tag] | tuple[Tag, ...]) -> list[Tag]:
        return [tag for tag in tags if tag in common and not tag.platform.startswith("linux_")]

    assert ordered(supported) == ordered(env.tags)
    assert "platform_tag" not in keys(block) or "-" not in keys(block)["platform_tag"]


def test_pip_version_is_written_once_morgan_reads_it(tmp_path: Path) -> None:
    facts = InterpreterFacts.current()
    block = environment_block("here", facts)
    written = keys(block).get("pip_version")
    if facts.pip_version and "pip_version" in KNOWN_KEYS:
        assert written == facts.pip_version
    else:
        assert written is None
    parse(block, tmp_path)  # never a key morgan refuses


def test_facts_are_those_of_this_interpreter() -> None:
    facts = InterpreterFacts.current()
    assert facts.sys_platform == sys.platform
    assert facts.python_full_version.startswith(facts.python_version + ".")
    best = next(iter(tagslib.sys_tags()))
    assert facts.abi == best.abi
    if sys.platform.startswith("linux"):
        assert (facts.glibc_version is None) != (facts.musl_version is None)
