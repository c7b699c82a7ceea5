"""Property tests: whatever an index or a distribution says, the parsers raise only MorganError.

Each property runs a modest, derandomized number of examples, so the file is
quick and gives the same result on every run.
"""

from __future__ import annotations

import html
import io
import json
import ntpath
import os
import posixpath
import tarfile
import tempfile
import unicodedata
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest
from builders import build_sdist, build_wheel, core_metadata
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from morgan.environments import MARKER_KEYS, Environment
from morgan.errors import DistributionError, MorganError, UnsafeNameError
from morgan.layout import check_filename, path_hazard, project_dir
from morgan.metadata import (
    Dependencies,
    parse_core_metadata,
    parse_pyproject,
    parse_requirement,
    parse_requires_txt,
    read_sdist_dependencies,
    read_wheel_metadata,
)
from morgan.models import DistributionFile, ProjectPage, ReleaseFile, _parse_wheel_filename
from morgan.simple import _DIGEST_LENGTHS, _absolute_url, parse_html_page, parse_json_page

PAGE = "https://index.example/simple/demo/"
SETTINGS = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=60)

ENVIRONMENTS = [
    Environment.from_ini_section("linux", {"python_version": "3.12", "sys_platform": "linux"}),
    Environment.from_ini_section(
        "windows", {"python_version": "3.8", "sys_platform": "win32", "platform_machine": "AMD64"}
    ),
    Environment.from_ini_section(
        "release",
        {"python_version": "3.10", "platform_release": "5.15.0", "platform_version": "#1 SMP"},
    ),
    Environment.from_ini_section(
        "pypy", {"python_version": "3.9", "platform_python_implementation": "PyPy"}
    ),
]

#: Names the index may give: ordinary, hostile, and whatever text comes.
HOSTILE = st.sampled_from(
    [
        "demo-1.0.tar.gz",
        "demo-1.0-py3-none-any.whl",
        "../demo-1.0.tar.gz",
        "..\\demo-1.0.tar.gz",
        "/etc/passwd",
        "C:demo.whl",
        "demo\x00.whl",
        "..",
        ".",
        "\uff0e\uff0e\uff0fx",
        "index.html",
        "demo-1.0.tar.gz.hash",
        ".hidden-1.0.tar.gz",
        "nul.tar.gz",
        "demo-1." + "9" * 5000 + ".tar.gz",
    ]
)
FILENAMES = (
    HOSTILE | st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9._+\-]{1,30}", fullmatch=True)
)


def only_morgan_errors(function: Any, *args: Any) -> Any:
    """Call ``function``; a MorganError is fine (returns None), anything else fails the test."""
    try:
        return function(*args)
    except MorganError as error:
        text = str(error)
        assert text and "\n" not in text, text
        return None


def check_page(page: ProjectPage | None) -> None:
    if page is None:
        return
    assert page.name == "demo"
    for file in page.files:
        assert isinstance(file, DistributionFile)
        assert path_hazard(file.filename) is None, file.filename
        for algorithm, digest in file.hashes.items():
            assert len(digest) == _DIGEST_LENGTHS[algorithm]
            assert set(digest) <= set("0123456789abcdef")
        ReleaseFile.from_file(file, "demo")  # never raises


# -- pages -------------------------------------------------------------------------------------


@SETTINGS
@given(body=st.binary(max_size=3000))
def test_pages_of_arbitrary_bytes(body: bytes) -> None:
    check_page(only_morgan_errors(parse_json_page, body, PAGE, "demo"))
    check_page(only_morgan_errors(parse_html_page, body, PAGE, "demo"))


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | HOSTILE
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["sha256", "md5", "SHA256", "shake_128", "blake2b", "x"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
HEX = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=130)
HASHES = st.dictionaries(
    st.sampled_from(["sha256", "md5", "sha512", "shake_256", "blake2b", "egg"]),
    HEX | JSON_LEAVES,
    max_size=3,
)
FILE_ENTRIES = st.fixed_dictionaries(
    {"filename": FILENAMES, "url": st.text(max_size=30) | FILENAMES},
    optional={
        "hashes": HASHES | JSON_VALUES,
        "requires-python": st.text(max_size=30) | JSON_LEAVES,
        "yanked": JSON_LEAVES,
        "size": JSON_LEAVES,
        "upload-time": JSON_LEAVES,
        "core-metadata": HASHES | JSON_LEAVES,
        "dist-info-metadata": HASHES | JSON_LEAVES,
    },
)


@SETTINGS
@given(
    files=st.lists(FILE_ENTRIES | JSON_VALUES, max_size=6),
    name=st.sampled_from(["demo", "Demo", "DEMO", "de-mo", "../demo", "other", ""]) | JSON_LEAVES,
    version=st.sampled_from(["1.0", "1.1", "1.99", "2.0", "0.1", "1", "", " 1.1 "]) | JSON_LEAVES,
    meta=st.booleans(),
)
def test_structured_but_wrong_json_pages(files: Any, name: Any, version: Any, meta: bool) -> None:
    document: dict[str, Any] = {"name": name, "files": files}
    if meta:
        document["meta"] = {"api-version": version}
    body = json.dumps(document).encode()
    check_page(only_morgan_errors(parse_json_page, body, PAGE, "demo"))


ATTRIBUTE_NAMES = st.sampled_from(
    [
        "href",
        "data-yanked",
        "data-requires-python",
        "data-core-metadata",
        "data-dist-info-metadata",
        "data-size",
        "data-upload-time",
        "name",
        "content",
    ]
)
HREFS = (
    FILENAMES.map(lambda name: urllib.parse.quote(name, safe="/#=:"))
    | FILENAMES.map(lambda name: urllib.parse.quote(name, safe="") + "#sha256=" + "a" * 64)
    | st.text(alphabet="ab01=-<>&;.\"' /#:%2Fe?[]", max_size=25)
)
ANCHORS = st.dictionaries(ATTRIBUTE_NAMES, HREFS | st.text(max_size=15), max_size=6)


@SETTINGS
@given(
    anchors=st.lists(ANCHORS, max_size=5),
    head=st.sampled_from(
        [
            "",
            '<meta name="pypi:repository-version" content="1.1">',
            '<meta name="pypi:repository-version" content="2.0">',
            '<meta name="pypi:repository-version" content="1.' + "9" * 5000 + '">',
            '<meta name="pypi:repository-version">',
            '<base href="http://[broken/">',
            '<base href="../../x/">',
        ]
    ),
    tail=st.sampled_from(["", "<a href=", "<!--", "<![CDATA[", "</a></a>", "<a href='x"]),
)
def test_structured_but_wrong_html_pages(
    anchors: list[dict[str, str]], head: str, tail: str
) -> None:
    links = "".join(
        "<a " + " ".join(f'{k}="{html.escape(v)}"' for k, v in anchor.items()) + ">x</a>"
        for anchor in anchors
    )
    body = f"<html><head>{head}</head><body>{links}{tail}".encode("utf-8", "surrogatepass")
    check_page(only_morgan_errors(parse_html_page, body, PAGE, "demo"))


# -- names -------------------------------------------------------------------------------------


def stays_inside(folder: str, name: str) -> None:
    """The name joined to a folder is a direct child of it, on POSIX and on Windows."""
    for flavour, join, normpath in (
        (PurePosixPath, posixpath.join, posixpath.normpath),
        (PureWindowsPath, ntpath.join, ntpath.normpath),
    ):
        base = flavour(folder)
        joined = flavour(normpath(join(str(base), name)))
        assert joined.parent == base, (flavour, name)
        assert joined.name == name


@SETTINGS
@given(name=FILENAMES | st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_accepted_filenames_stay_inside_their_folder(name: str) -> None:
    try:
        accepted = check_filename(name)
    except UnsafeNameError as error:
        assert "\n" not in str(error)
        return
    assert accepted == name
    assert path_hazard(name) is None
    stays_inside("/srv/mirror/demo", name)
    stays_inside("C:\\mirror\\demo", name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(b"x")  # a name the file system takes as it is
        # (macOS hands names back decomposed)
        assert [unicodedata.normalize("NFC", n) for n in os.listdir(folder)] == [
            unicodedata.normalize("NFC", name)
        ]
        assert path.resolve().parent == Path(folder).resolve()


@SETTINGS
@given(name=st.text(max_size=20) | st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True) | HOSTILE)
def test_project_folders_are_plain_children(name: str) -> None:
    index = Path("/srv/mirror")
    try:
        folder = project_dir(index, name)
    except UnsafeNameError:
        return
    assert folder.parent == index
    assert folder.name == name
    assert path_hazard(name) is None
    stays_inside("/srv/mirror", name)


WHEEL_PARTS = st.from_regex(r"[A-Za-z0-9_.+!]{0,12}", fullmatch=True) | st.text(max_size=8)


@SETTINGS
@given(
    name=st.sampled_from(["demo", "Demo", "de_mo", "demo.x", "other"]) | WHEEL_PARTS,
    version=st.sampled_from(["1.0", "1.0.post1", "2!1.0", "1.0+local", "1.0a1", "x", ""])
    | WHEEL_PARTS,
    build=st.sampled_from(["", "-1", "-1abc", "-x"]),
    tags=st.sampled_from(["py3-none-any", "cp312-cp312-manylinux_2_28_x86_64", "x-y"])
    | st.tuples(WHEEL_PARTS, WHEEL_PARTS, WHEEL_PARTS).map("-".join),
    suffix=st.sampled_from([".whl", ".tar.gz", ".zip", ".tar.bz2", ".exe", ""]),
)
def test_distribution_filenames_never_raise(
    name: str, version: str, build: str, tags: str, suffix: str
) -> None:
    filename = f"{name}-{version}{build}-{tags}{suffix}" if suffix == ".whl" else ""
    filename = filename or f"{name}-{version}{suffix}"
    candidate = ReleaseFile.from_file(DistributionFile(filename=filename, url="x"), "demo")
    if candidate is not None:
        assert isinstance(candidate.version, Version)
        assert candidate.is_wheel == (suffix == ".whl")
        str(candidate.version)  # printable, whatever its digits


@SETTINGS
@given(filename=FILENAMES)
def test_arbitrary_filenames_are_candidates_or_not(filename: str) -> None:
    ReleaseFile.from_file(DistributionFile(filename=filename, url="x"), "demo")


WHEEL_PARTS = st.sampled_from(
    ["demo", "Demo_Pkg", "x__y", "", "1.0", "2.0rc1", "1.0.post1", "1", "1build", "py3", "cp312",
     "none", "abi3", "any", "manylinux_2_17_x86_64.manylinux2014_x86_64", "py2.py3", "a..b",
     "win_amd64", "-", "é", "1.0+local", "not a version"]
)  # fmt: skip


@SETTINGS
@given(parts=st.lists(WHEEL_PARTS, min_size=1, max_size=8))
def test_wheel_names_are_read_exactly_as_packaging_reads_them(parts: list[str]) -> None:
    """models reads a wheel name in two remembered halves; the result is packaging's."""
    filename = "-".join(parts) + ".whl"
    try:
        name, version, _, tags = parse_wheel_filename(filename)
        expected: object = (name, version, tags)
    except ValueError:
        expected = ValueError
    try:
        found: object = _parse_wheel_filename(filename)
    except ValueError:
        found = ValueError
    assert found == expected


# -- requirements and markers ------------------------------------------------------------------

VARIABLES = st.sampled_from([*MARKER_KEYS, "extra", "extras", "dependency_groups"])
LITERAL_TEXT = st.sampled_from(
    ["3", "3.8", "3.12.1", "1.0.*", "linux", "win32", "", "~=1", "1." + "9" * 5000, "a b"]
) | st.text(alphabet=st.characters(exclude_characters="'\"\\\n\r"), max_size=8)
LITERALS = LITERAL_TEXT.map(lambda text: f'"{text}"')
OPERATORS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~=", "===", "in", "not in"])
ATOMS = st.builds(
    lambda left, op, right: f"{left} {op} {right}",
    VARIABLES | LITERALS,
    OPERATORS,
    VARIABLES | LITERALS,
)
MARKERS = st.recursive(
    ATOMS,
    lambda inner: (
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["and", "or"]), inner)
        | inner.map(lambda m: f"({m})")
    ),
    max_leaves=6,
)
SPECIFIERS = st.sampled_from(
    ["", ">=1", "==1.*", "~=1.0", "===weird", ">=1,<2", "==" + "9" * 5000, "~=1", "!=1.0.*", "<"]
)
NAMES = st.sampled_from(["demo", "Demo_pkg", "a.b", "x", "../x", "a b", ""])
REQUIREMENTS = (
    st.builds(
        lambda name, extras, spec, marker: name + extras + spec + (f"; {marker}" if marker else ""),
        NAMES,
        st.sampled_from(["", "[fast]", "[a,b]", "[", "[-]"]),
        SPECIFIERS,
        st.none() | MARKERS,
    )
    | st.builds(
        lambda depth: "x; " + "(" * depth + 'os_name == "nt"' + ")" * depth, st.integers(0, 3000)
    )
    | st.text(max_size=60)
)
EXTRAS = st.sampled_from(["", "fast", "a", "Fast_Thing", "x" * 300])


def usable(requirement: Requirement) -> None:
    """What the mirror does with a requirement afterwards must not raise either."""
    again = Requirement(str(requirement))  # mirror._plain reparses it
    assert again.name == requirement.name
    list(requirement.specifier.filter([Version("1.0"), Version("2.0a1"), Version("0")]))
    requirement.specifier.contains(Version("1.0"), prereleases=True)


@SETTINGS
@given(line=REQUIREMENTS, extra=EXTRAS)
def test_requirements_parse_and_evaluate_in_every_environment(line: str, extra: str) -> None:
    requirement = only_morgan_errors(parse_requirement, line, "demo.whl")
    if requirement is None:
        return
    usable(requirement)
    if requirement.marker is None:
        return
    for environment in ENVIRONMENTS:
        result = only_morgan_errors(
            lambda env=environment: env.evaluate_marker(requirement.marker, extra, source="x")
        )
        assert result in (True, False, None)


@SETTINGS
@given(marker=MARKERS, extra=EXTRAS)
def test_markers_evaluate_or_say_why(marker: str, extra: str) -> None:
    requirement = only_morgan_errors(parse_requirement, f"x; {marker}", "x.whl")
    if requirement is None or requirement.marker is None:
        return
    for environment in ENVIRONMENTS:
        try:
            environment.evaluate_marker(requirement.marker, extra, source="x.whl")
        except DistributionError as error:
            assert str(error).startswith(f"x.whl (for {environment.name}): marker ")


@SETTINGS
@given(requires_python=st.text(max_size=40) | SPECIFIERS | st.none())
def test_requires_python_never_raises(requires_python: str | None) -> None:
    for environment in ENVIRONMENTS:
        assert environment.allows_python(requires_python) in (True, False)


LEVELS = st.sampled_from(["2.28", "1.2", "12.0", "2.99999999", "2." + "9" * 5000, "x", ""])
PLATFORM_TAGS = st.sampled_from(
    [
        "linux-x86_64",
        "manylinux_2_28_x86_64",
        "musllinux_x86_64",
        "musllinux_1_9999_x86_64",
        "macosx-11.0-arm64",
        "macosx_" + "9" * 5000 + "_0_arm64",
        "win-amd64",
        "",
    ]
) | st.text(max_size=12)
MARKER_VALUES = st.sampled_from(["", "3.12", "linux", "x" * 50, "1." + "9" * 5000]) | st.text(
    max_size=10
)


@FEW
@given(
    values=st.fixed_dictionaries(
        {"python_version": st.sampled_from(["3.12", "3.8", "2.7", "4.0"]) | MARKER_VALUES},
        optional={
            **{key: MARKER_VALUES for key in MARKER_KEYS if key != "python_version"},
            **{key: LEVELS for key in ("glibc_version", "musl_version", "macos_version")},
            "platform_tag": PLATFORM_TAGS,
            "abi": st.sampled_from(["", "cp312", "cp313t,cp313", "abi3"]),
        },
    ),
    line=REQUIREMENTS,
)
def test_generated_environments_evaluate_or_say_why(values: dict[str, str], line: str) -> None:
    environment = only_morgan_errors(Environment.from_ini_section, "gen", values)
    requirement = only_morgan_errors(parse_requirement, line, "x.whl")
    if environment is None or requirement is None or requirement.marker is None:
        return
    marker = requirement.marker
    only_morgan_errors(lambda: environment.evaluate_marker(marker, source="x.whl"))


# -- metadata files ----------------------------------------------------------------------------


def check_dependencies(deps: Dependencies | None) -> None:
    if deps is None:
        return
    for requirement in deps.requires + deps.build_requires:
        usable(requirement)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_core_metadata_of_arbitrary_bytes(data: bytes) -> None:
    check_dependencies(only_morgan_errors(parse_core_metadata, data, "x.whl"))


HEADER_NAMES = st.sampled_from(
    ["Metadata-Version", "Name", "Version", "Requires-Dist", "Provides-Extra", "Requires-Python"]
) | st.text(alphabet="abcXYZ-:", min_size=1, max_size=10)
HEADER_VALUES = REQUIREMENTS | st.binary(max_size=20).map(lambda b: b.decode("latin-1"))


@SETTINGS
@given(
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12),
    body=st.sampled_from(["", "\n\nbody", "\n\n\xff"]),
)
def test_core_metadata_of_structured_headers(headers: list[tuple[str, str]], body: str) -> None:
    text = "".join(f"{name}: {value}\n" for name, value in headers) + body
    check_dependencies(
        only_morgan_errors(parse_core_metadata, text.encode("utf-8", "surrogatepass"), "x.whl")
    )


@SETTINGS
@given(text=st.text(max_size=500) | st.lists(REQUIREMENTS | st.sampled_from(
    ["[fast]", "[:sys_platform == 'win32']", "[x:python_version < '3']", "[a\"b]", "[", "[:(((]"]
), max_size=12).map("\n".join))  # fmt: skip
def test_requires_txt_never_raises_foreign_errors(text: str) -> None:
    result = only_morgan_errors(parse_requires_txt, text, "requires.txt")
    if result is not None:
        requirements, _extras = result
        for requirement in requirements:
            usable(requirement)


TOML_KEYS = st.sampled_from(
    [
        "build-system",
        "requires",
        "build-backend",
        "project",
        "dependencies",
        "optional-dependencies",
        "requires-python",
        "name",
    ]
) | st.text(alphabet="abc-_\"' ", min_size=1, max_size=6)
TOML_VALUES = st.recursive(
    st.booleans() | st.integers(-10, 10) | REQUIREMENTS | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TOML_KEYS, inner, max_size=4),
    max_leaves=15,
)


def toml_value(value: Any) -> str:
    """A TOML inline value (tomllib reads it back; a test-only writer)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for these characters
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@SETTINGS
@given(document=st.dictionaries(TOML_KEYS, TOML_VALUES, max_size=4))
def test_pyproject_of_structured_documents(document: dict[str, Any]) -> None:
    text = "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in document.items())
    result = only_morgan_errors(parse_pyproject, text.encode("utf-8", "surrogatepass"), "p.toml")
    if result is not None:
        build, project = result
        for requirement in build:
            usable(requirement)
        check_dependencies(project)


@SETTINGS
@given(data=st.binary(max_size=1000) | st.text(max_size=500).map(str.encode))
def test_pyproject_of_arbitrary_bytes(data: bytes) -> None:
    only_morgan_errors(parse_pyproject, data, "p.toml")


# -- archives ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("originals")
    requires = ["six>=1", 'colorama; os_name == "nt"']
    return {
        "wheel": build_wheel(folder, "demo", "1.0", requires=requires).read_bytes(),
        "tar.gz": build_sdist(folder, "demo", "1.0", requires=requires).read_bytes(),
        "zip": build_sdist(folder, "demo", "1.0", requires=requires, fmt="zip").read_bytes(),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("mutants")


def mutate(original: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(original)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


@FEW
@given(
    kind=st.sampled_from(["wheel", "tar.gz", "zip"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.none() | st.integers(0, 4000),
)
def test_damaged_archives_raise_only_distribution_errors(
    originals: dict[str, bytes], scratch: Path, kind: str, edits: Any, cut: int | None
) -> None:
    data = mutate(originals[kind], edits, cut)
    if kind == "wheel":
        path = scratch / "demo-1.0-py3-none-any.whl"
        path.write_bytes(data)
        only_morgan_errors(read_wheel_metadata, path, "demo")
    else:
        path = scratch / f"demo-1.0.{kind}"
        path.write_bytes(data)
        check_dependencies(only_morgan_errors(read_sdist_dependencies, path))


MEMBER_NAMES = st.sampled_from(
    [
        "demo-1.0/PKG-INFO",
        "demo-1.0/pyproject.toml",
        "demo-1.0/demo.egg-info/requires.txt",
        "demo-1.0/demo.egg-info/setup_requires.txt",
        "/demo-1.0/PKG-INFO",
        "../PKG-INFO",
        "demo-1.0/../PKG-INFO",
        "./demo-1.0/PKG-INFO",
        "demo-1.0\\PKG-INFO",
    ]
)
MEMBER_TYPES = st.sampled_from(
    [tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE]
)


@FEW
@given(
    members=st.lists(
        st.tuples(
            MEMBER_NAMES, MEMBER_TYPES, st.binary(max_size=200) | REQUIREMENTS.map(str.encode)
        ),
        max_size=6,
    )
)
def test_sdists_of_arbitrary_members_write_nothing(
    scratch: Path, members: list[tuple[str, bytes, bytes]]
) -> None:
    path = scratch / "demo-1.0.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                info.linkname = "/etc/passwd"
                archive.addfile(info)
    path.write_bytes(buffer.getvalue())
    before = sorted(os.listdir(scratch))
    check_dependencies(only_morgan_errors(read_sdist_dependencies, path))
    assert sorted(os.listdir(scratch)) == before

    zipped = scratch / "demo-1.0.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(zipped, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are part of the game
        for name, kind, data in members:
            info = zipfile.ZipInfo(name)
            if kind == tarfile.SYMTYPE:
                info.external_attr = 0o120777 << 16
            archive.writestr(info, data)
    check_dependencies(only_morgan_errors(read_sdist_dependencies, zipped))
    assert sorted(os.listdir(scratch)) == sorted({*before, zipped.name})


def test_properties_hold_for_real_metadata() -> None:
    # The strategies above can produce what real distributions carry, and it parses.
    deps = parse_core_metadata(
        core_metadata("demo", "1.0", requires=['six; python_version < "3"', "attrs>=20"]).encode(),
        "demo.whl",
    )
    assert [str(r) for r in deps.requires] == ['six; python_version < "3"', "attrs>=20"]
    assert not ENVIRONMENTS[0].evaluate_marker(deps.requires[0].marker, source="x")  # type: ignore[arg-type]


URL_PARTS = st.sampled_from(
    ["..", ".", "...", "a", "b.whl", "x-1.0.tar.gz", "%2e%2e", "?q", "#f", "//other", "",
     "https://h2/p/", "HTTP://H/", "~u", "a+b", ";p", "é", "\\", "http:", "h:1", "[::1]"]
)  # fmt: skip
PAGE_URLS = st.sampled_from(
    ["http://127.0.0.1:8000/simple/x/", "http://127.0.0.1:8000/simple/x", "https://h/a/b/?q=1",
     "https://h/a/b/#f", "https://h", "https://h/", "https://h/a/../b/"]
)  # fmt: skip


@SETTINGS
@given(page_url=PAGE_URLS, parts=st.lists(st.tuples(st.sampled_from(["", "/", "//"]), URL_PARTS)))
def test_file_urls_join_exactly_as_urljoin_joins_them(page_url: str, parts: Any) -> None:
    """simple._absolute_url skips urljoin for the common shapes; the result is urljoin's."""
    href = "".join(slash + part for slash, part in parts)
    try:
        expected = urllib.parse.urljoin(page_url, href)
        urllib.parse.urlsplit(expected)
    except ValueError:
        expected = "ValueError"
    try:
        found = _absolute_url(page_url, href)
    except ValueError:
        found = "ValueError"
    assert found == expected


# -- JSON pages decoded entry by entry ------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(), _JSON_VALUES, max_size=5),
    st.lists(_JSON_VALUES, max_size=6),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([None, 0, 2]),
)
def test_a_page_decoded_entry_by_entry_is_what_json_loads_reads(
    others: dict[str, Any], files: list[Any], at: int, indent: int | None
) -> None:
    """The members and the entries of "files" are exactly json.loads's, in any layout."""
    from morgan.simple import _scan_json_page  # noqa: PLC0415 - private, tested as it is

    items = [(k, v) for k, v in others.items() if k != "files"]
    items.insert(min(at, len(items)), ("files", files))
    text = json.dumps(dict(items), indent=indent)
    seen: list[Any] = []
    members, has_files = _scan_json_page(text, seen.append)
    expected = json.loads(text)
    assert has_files
    assert seen == expected.pop("files")
    assert members == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]:,"\\ 0123456789.-eEtrufalsn\n', max_size=40))
def test_a_page_that_is_not_json_is_refused_as_json_loads_refuses_it(text: str) -> None:
    from morgan.simple import _scan_json_page  # noqa: PLC0415 - private, tested as it is

    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises((ValueError, RecursionError)):
            _scan_json_page(text, lambda _: None)
        return
    members, has_files = _scan_json_page(text, lambda _: None)
    if isinstance(expected, dict):
        assert has_files == isinstance(expected.get("files"), list)
        if has_files:
            del expected["files"]
        assert members == expected
    else:
        assert members is None
