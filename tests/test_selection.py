"""Choosing versions and files per environment, the way pip would install them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from morgan.environments import Environment
from morgan.models import DistributionFile, ProjectPage, ReleaseFile
from morgan.selection import (
    SelectionOptions,
    allowed_releases,
    files_to_mirror,
    is_exact_pin,
    ordered_files,
    release_files,
    releases,
    why_nothing,
)

PAGE_URL = "https://index.example/simple/demo/"
DEFAULT_OPTIONS = SelectionOptions()


def environment(name: str, **keys: str) -> Environment:
    return Environment.from_ini_section(name, keys)


LINUX_312 = environment(
    "linux312", python_version="3.12", sys_platform="linux", platform_machine="x86_64"
)
LINUX_38 = environment(
    "linux38", python_version="3.8", sys_platform="linux", platform_machine="x86_64"
)
WIN_312 = environment(
    "win312", python_version="3.12", sys_platform="win32", platform_machine="AMD64"
)
PURE_312 = environment("pure312", python_version="3.12")


def dist(filename: str, **facts: Any) -> DistributionFile:
    return DistributionFile(
        filename=filename, url=PAGE_URL + filename, hashes={"sha256": "0" * 64}, **facts
    )


def page(*files: DistributionFile | str) -> list[ReleaseFile]:
    entries = tuple(dist(f) if isinstance(f, str) else f for f in files)
    return release_files(
        ProjectPage(name="demo", url=PAGE_URL, files=entries), r"(whl|zip|tar\.gz)"
    )


@dataclass(frozen=True)
class Choice:
    """A version a requirement alone admits, with the files mirrored of it and the one
    whose metadata a client there reads."""

    environment: Environment
    version: Version
    files: tuple[ReleaseFile, ...]
    metadata_source: ReleaseFile


def pick(
    found: list[ReleaseFile],
    requirement: str,
    env: Environment = LINUX_312,
    options: SelectionOptions = DEFAULT_OPTIONS,
    *,
    top_level: bool = False,
) -> list[Choice]:
    """What the mirror takes for one requirement alone, from the same pieces the resolver
    uses: the newest admitted release (every one with ``-a`` on a top-level line)."""
    specifier = Requirement(requirement).specifier
    allowed = allowed_releases(releases(found, env), specifier)
    assert allowed, why_nothing(found, Requirement(requirement), env)
    if not (options.all_versions and top_level):
        allowed = allowed[:1]
    choices = []
    for release in allowed:
        ordered = ordered_files(release.usable_files(specifier), env)
        chosen = tuple(files_to_mirror(ordered, options))
        choices.append(Choice(env, release.version, chosen, ordered[0]))
    return choices


def versions(choices: list[Choice]) -> list[str]:
    return [str(c.version) for c in choices]


def filenames(choice: Choice) -> list[str]:
    return [c.file.filename for c in choice.files]


def reason(found: list[ReleaseFile], requirement: str, env: Environment = LINUX_312) -> str:
    assert not allowed_releases(releases(found, env), Requirement(requirement).specifier)
    return why_nothing(found, Requirement(requirement), env)


THREE_VERSIONS = page(
    "demo-1.0.tar.gz",
    "demo-1.0-py3-none-any.whl",
    "demo-2.0.tar.gz",
    "demo-2.0-py3-none-any.whl",
    "demo-3.0.tar.gz",
    "demo-3.0-py3-none-any.whl",
)


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("demo", "3.0"),
        ("demo<3", "2.0"),
        ("demo<=2.0", "2.0"),
        ("demo~=1.0", "1.0"),
        ("demo==1.0", "1.0"),
        ("demo!=3.0", "2.0"),
        ("demo>1,<3", "2.0"),
        ("demo>=1.0; python_version < '3'", "3.0"),  # markers are the caller's business
    ],
)
def test_newest_satisfying_version(requirement: str, expected: str) -> None:
    (choice,) = pick(THREE_VERSIONS, requirement)
    assert str(choice.version) == expected
    assert filenames(choice) == [f"demo-{expected}-py3-none-any.whl", f"demo-{expected}.tar.gz"]


def test_candidates_are_sorted_newest_first_and_skip_foreign_files() -> None:
    found = page(
        "demo-1.0.tar.gz",
        "demo-10.0.tar.gz",
        "demo-2.0rc1.tar.gz",
        "other-99.0.tar.gz",
        "demo_extra-5.0-py3-none-any.whl",
        "demo-extra-5.0.tar.gz",
        "demo-notaversion.tar.gz",
        "demo-1.0-bogus.whl",
        "Demo-3.0.tar.gz",
        "demo-4.0.tar.bz2",
        "demo-4.0.exe",
        "demo-4.0-py2.7.egg",
    )
    assert [(c.file.filename, str(c.version)) for c in found] == [
        ("demo-10.0.tar.gz", "10.0"),
        ("Demo-3.0.tar.gz", "3.0"),
        ("demo-2.0rc1.tar.gz", "2.0rc1"),
        ("demo-1.0.tar.gz", "1.0"),
    ]


def test_files_of_another_project_are_never_chosen() -> None:
    found = page("other-9.0.tar.gz", "other-9.0-py3-none-any.whl", "demo-1.0.tar.gz")
    (choice,) = pick(found, "demo")
    assert str(choice.version) == "1.0"
    assert filenames(choice) == ["demo-1.0.tar.gz"]


def test_requires_python_splits_versions_between_environments() -> None:
    found = page(
        dist("demo-2.0-py3-none-any.whl", requires_python=">=3.10"),
        dist("demo-2.0.tar.gz", requires_python=">=3.10"),
        dist("demo-1.0-py3-none-any.whl", requires_python=">=3.7"),
        dist("demo-1.0.tar.gz", requires_python=">=3.7"),
    )
    assert versions(pick(found, "demo", LINUX_312)) == ["2.0"]
    assert versions(pick(found, "demo", LINUX_38)) == ["1.0"]


def test_invalid_requires_python_does_not_hide_a_file() -> None:
    found = page(dist("demo-2.0.tar.gz", requires_python=">=3.6.*"), "demo-1.0.tar.gz")
    assert versions(pick(found, "demo", LINUX_38)) == ["2.0"]


def test_newest_version_per_environment_by_tags() -> None:
    found = page(
        "demo-2.0-cp312-cp312-win_amd64.whl",
        "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        "demo-1.0-cp312-cp312-win_amd64.whl",
    )
    (windows,) = pick(found, "demo", WIN_312)
    (linux,) = pick(found, "demo", LINUX_312)
    assert filenames(windows) == ["demo-2.0-cp312-cp312-win_amd64.whl"]
    assert filenames(linux) == ["demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"]


def test_best_wheel_for_the_environment_is_chosen() -> None:
    found = page(
        "demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "demo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
        "demo-1.0-cp312-cp312-win_amd64.whl",
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
    )
    (unknown,) = pick(found, "demo", LINUX_312)
    assert filenames(unknown) == ["demo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", "demo-1.0.tar.gz"]
    glibc_228 = environment(
        "glibc",
        python_version="3.12",
        sys_platform="linux",
        platform_machine="x86_64",
        glibc_version="2.28",
    )
    (known,) = pick(found, "demo", glibc_228)
    assert filenames(known) == ["demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "demo-1.0.tar.gz"]
    (windows,) = pick(found, "demo", WIN_312)
    assert filenames(windows) == ["demo-1.0-cp312-cp312-win_amd64.whl", "demo-1.0.tar.gz"]
    (pure,) = pick(found, "demo", PURE_312)
    assert filenames(pure) == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]


# -- yanked files ------------------------------------------------------------------------------

YANKED_2 = page(
    dist("demo-2.0.tar.gz", yanked="broken"),
    dist("demo-2.0-py3-none-any.whl", yanked=True),
    "demo-1.0.tar.gz",
)


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("demo", "1.0"),
        ("demo>=1", "1.0"),
        ("demo==2.0", "2.0"),
        ("demo==2.0.0", "2.0"),
        ("demo===2.0", "2.0"),
        ("demo==1.0", "1.0"),
        ("demo<=2.0", "1.0"),
    ],
)
def test_yanked_only_for_an_exact_pin(requirement: str, expected: str) -> None:
    (choice,) = pick(YANKED_2, requirement)
    assert str(choice.version) == expected


@pytest.mark.parametrize("requirement", ["demo==2.*", "demo>=2", "demo==2.*,>=2.0", "demo~=2.0"])
def test_yanked_not_for_wildcards_or_ranges(requirement: str) -> None:
    assert reason(YANKED_2, requirement) == (
        "every matching file is yanked (pin it with == to mirror it anyway)"
    )


def test_exact_pin_includes_the_yanked_sdist_and_wheel() -> None:
    (choice,) = pick(YANKED_2, "demo==2.0")
    assert filenames(choice) == ["demo-2.0-py3-none-any.whl", "demo-2.0.tar.gz"]


@pytest.mark.parametrize(
    ("specifier", "version", "expected"),
    [
        ("==1.0", "1.0", True),
        ("==1.0.0", "1.0", True),
        ("==1.0", "1.0.1", False),
        ("==1.*", "1.0", False),
        ("===1.0", "1.0", True),
        ("===1.0.0", "1.0", False),
        (">=1.0", "1.0", False),
        ("==1.0,<2", "1.0", True),  # any non-wildcard == clause pins, as in pip
        ("<2,==1.0", "1.0", True),
        ("==1.*,>=1.0", "1.0", False),
        ("==2.0,>=1", "1.0", False),
        ("", "1.0", False),
    ],
)
def test_is_exact_pin(specifier: str, version: str, expected: bool) -> None:
    assert is_exact_pin(SpecifierSet(specifier), Version(version)) is expected


# -- pre-releases ------------------------------------------------------------------------------

PRE = page("demo-1.0.tar.gz", "demo-2.0b1.tar.gz", "demo-2.0.dev3.tar.gz")


@pytest.mark.parametrize(
    ("found", "requirement", "expected"),
    [
        (PRE, "demo", "1.0"),
        (PRE, "demo>=1", "1.0"),
        (PRE, "demo>=2.0b1", "2.0b1"),
        (PRE, "demo==2.0b1", "2.0b1"),
        (PRE, "demo>=2.0.dev0", "2.0b1"),
        (PRE, "demo>1.0", "2.0b1"),  # nothing else fits
        (page("demo-3.0a1.tar.gz", "demo-3.0a2.tar.gz"), "demo", "3.0a2"),
    ],
)
def test_prereleases(found: list[ReleaseFile], requirement: str, expected: str) -> None:
    assert versions(pick(found, requirement)) == [expected]


# -- options -----------------------------------------------------------------------------------


def test_all_versions_for_top_level_requirements_only() -> None:
    options = SelectionOptions(all_versions=True)
    assert versions(pick(THREE_VERSIONS, "demo", options=options, top_level=True)) == [
        "3.0",
        "2.0",
        "1.0",
    ]
    assert versions(pick(THREE_VERSIONS, "demo<3", options=options, top_level=True)) == [
        "2.0",
        "1.0",
    ]
    assert versions(pick(THREE_VERSIONS, "demo", options=options, top_level=False)) == ["3.0"]
    assert versions(pick(THREE_VERSIONS, "demo", top_level=True)) == ["3.0"]


def test_all_versions_still_respects_yanked_and_requires_python() -> None:
    found = page(
        dist("demo-3.0.tar.gz", requires_python=">=3.13"),
        dist("demo-2.0.tar.gz", yanked=True),
        "demo-1.0.tar.gz",
        "demo-0.9.tar.gz",
    )
    options = SelectionOptions(all_versions=True)
    assert versions(pick(found, "demo", options=options, top_level=True)) == ["1.0", "0.9"]


ALL_WHEELS_PAGE = page(
    "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    "demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
    "demo-1.0-cp312-cp312-musllinux_1_1_x86_64.whl",
    "demo-1.0-cp312-cp312-win_amd64.whl",
    "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "demo-1.0-py3-none-any.whl",
    "demo-1.0.zip",
    "demo-1.0.tar.gz",
)


def test_all_wheels_takes_every_wheel_the_environment_accepts() -> None:
    (choice,) = pick(ALL_WHEELS_PAGE, "demo", options=SelectionOptions(all_wheels=True))
    assert filenames(choice) == [
        "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        "demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
    ]
    assert choice.metadata_source.file.filename == "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


def test_without_all_wheels_one_wheel_and_the_tar_gz_sdist() -> None:
    (choice,) = pick(ALL_WHEELS_PAGE, "demo")
    assert filenames(choice) == [
        "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        "demo-1.0.tar.gz",
    ]


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        (r"(whl|zip|tar\.gz)", ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]),
        ("whl", ["demo-1.0-py3-none-any.whl"]),
        (r"tar\.gz", ["demo-1.0.tar.gz"]),
        ("zip", ["demo-1.0.zip"]),
        (r"(zip|tar\.bz2)", ["demo-1.0.zip"]),
    ],
)
def test_package_type_regex(regex: str, expected: list[str]) -> None:
    files = tuple(
        dist(name)
        for name in (
            "demo-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            "demo-1.0.zip",
            "demo-1.0.tar.bz2",
        )
    )
    found = release_files(ProjectPage(name="demo", url=PAGE_URL, files=files), regex)
    (choice,) = pick(found, "demo", options=SelectionOptions(package_type_regex=regex))
    assert filenames(choice) == expected


def test_package_type_regex_without_wheels_falls_to_older_version_with_an_sdist() -> None:
    files = (dist("demo-2.0-py3-none-any.whl"), dist("demo-1.0.tar.gz"))
    found = release_files(ProjectPage(name="demo", url=PAGE_URL, files=files), r"tar\.gz")
    assert versions(pick(found, "demo")) == ["1.0"]


# -- sdists and metadata source ----------------------------------------------------------------


def test_sdist_accompanies_the_chosen_wheel() -> None:
    (choice,) = pick(page("demo-1.0-py3-none-any.whl", "demo-1.0.zip"), "demo")
    assert filenames(choice) == ["demo-1.0-py3-none-any.whl", "demo-1.0.zip"]
    assert choice.metadata_source.file.filename == "demo-1.0-py3-none-any.whl"
    assert choice.metadata_source.is_wheel


def test_sdist_alone_when_no_wheel_fits() -> None:
    found = page("demo-1.0-cp312-cp312-win_amd64.whl", "demo-1.0.tar.gz")
    (choice,) = pick(found, "demo", LINUX_312)
    assert filenames(choice) == ["demo-1.0.tar.gz"]
    assert choice.metadata_source.file.filename == "demo-1.0.tar.gz"
    assert not choice.metadata_source.is_wheel
    assert choice.environment is LINUX_312


def test_wheel_alone_when_there_is_no_sdist() -> None:
    (choice,) = pick(page("demo-1.0-py3-none-any.whl"), "demo")
    assert filenames(choice) == ["demo-1.0-py3-none-any.whl"]


def test_sdist_of_an_older_version_is_not_mixed_in() -> None:
    (choice,) = pick(page("demo-2.0-py3-none-any.whl", "demo-1.0.tar.gz"), "demo")
    assert filenames(choice) == ["demo-2.0-py3-none-any.whl"]


# -- reasons -----------------------------------------------------------------------------------


def test_reason_empty_page() -> None:
    assert reason([], "demo") == "the index lists no usable wheel or sdist"
    assert reason(page("other-1.0.tar.gz"), "demo") == "the index lists no usable wheel or sdist"


def test_reason_no_version_matches() -> None:
    assert reason(THREE_VERSIONS, "demo>=4") == "no version matches >=4 (newest is 3.0)"
    assert reason(THREE_VERSIONS, "demo>=4,<5").startswith("no version matches ")


def test_reason_all_yanked() -> None:
    found = page(dist("demo-1.0.tar.gz", yanked=True), dist("demo-1.1.tar.gz", yanked="oops"))
    assert "every matching file is yanked" in reason(found, "demo")


def test_reason_no_python_support() -> None:
    found = page(dist("demo-1.0.tar.gz", requires_python=">=3.10"))
    assert reason(found, "demo", LINUX_38) == "no matching version supports Python 3.8.0"


def test_reason_no_installable_file() -> None:
    found = page(
        "demo-1.0-cp312-cp312-win_amd64.whl", "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    )
    assert reason(found, "demo", LINUX_312) == (
        "no matching file installs here (no sdist, and no wheel with a supported tag)"
    )
    assert versions(pick(found, "demo", WIN_312)) == ["1.0"]
