"""Reading morgan.ini: environments and requirements, and every way it can be wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import parse_tag

from morgan.config import MirrorConfig, parse_requirement_line, parse_requirements
from morgan.errors import ConfigError

MORGAN_EXAMPLE = """\
[env.legacy]
os_name = posix
sys_platform = linux
platform_machine = x86_64
platform_python_implementation = CPython
platform_system = Linux
python_version = 3.7
python_full_version = 3.7.7
implementation_name = cpython
platform_tag = linux-x86_64

[env.edge]
os_name = posix
sys_platform = darwin
platform_machine = arm64
platform_python_implementation = CPython
platform_system = Darwin
python_version = 3.10
python_full_version = 3.10.4
implementation_name = cpython
platform_tag = macosx-11.0-arm64

[env.windows]
os_name = nt
sys_platform = win32
platform_machine = AMD64
platform_python_implementation = CPython
platform_system = Windows
python_version = 3.11
python_full_version = 3.11.2
implementation_name = cpython
platform_tag = win-amd64

[requirements]
requests = >=2.24.0
protobuf = ==3.20.1
redis = >4.1.0,<4.2.1
xonsh = [full]~=0.11.0
"""

ENV = "[env.linux]\npython_version = 3.12\nsys_platform = linux\nplatform_machine = x86_64\n\n"


def write(tmp_path: Path, text: str, name: str = "morgan.ini") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def requirements_of(tmp_path: Path, body: str) -> list[str]:
    path = write(tmp_path, ENV + "[requirements]\n" + textwrap.dedent(body))
    return [str(r) for r in MirrorConfig.from_file(path).requirements]


def test_morgans_example_file(tmp_path: Path) -> None:
    path = write(tmp_path, MORGAN_EXAMPLE)
    config = MirrorConfig.from_file(path)
    assert config.path == path
    assert [e.name for e in config.environments] == ["legacy", "edge", "windows"]
    legacy, edge, windows = config.environments
    assert str(legacy.python_version) == "3.7.7"
    assert str(edge.python_version) == "3.10.4"
    assert str(windows.python_version) == "3.11.2"
    assert legacy.wheel_rank(parse_tag("cp37-cp37m-manylinux2014_x86_64")) is not None
    assert edge.wheel_rank(parse_tag("cp310-cp310-macosx_11_0_arm64")) is not None
    assert edge.wheel_rank(parse_tag("cp310-cp310-manylinux2014_x86_64")) is None
    assert windows.wheel_rank(parse_tag("cp311-cp311-win_amd64")) is not None
    assert windows.wheel_rank(parse_tag("cp311-cp311-win32")) is None
    assert [str(r) for r in config.requirements] == [
        "requests>=2.24.0",
        "protobuf==3.20.1",
        "redis<4.2.1,>4.1.0",
        "xonsh[full]~=0.11.0",
    ]
    xonsh = config.requirements[3]
    assert xonsh.extras == {"full"}
    assert xonsh.specifier.contains("0.11.5")
    assert not xonsh.specifier.contains("0.12.0")
    redis = config.requirements[2]
    assert [v for v in ("4.1.0", "4.1.1", "4.2.0", "4.2.1") if redis.specifier.contains(v)] == [
        "4.1.1",
        "4.2.0",
    ]


REQUIREMENT_TABLE = [
    ("requests = >=2.24.0\n", ["requests>=2.24.0"]),
    ("requests = >= 2.24.0\n", ["requests>=2.24.0"]),
    ("requests =\n", ["requests"]),
    ("Requests = ==2.31.0\n", ["requests==2.31.0"]),
    ("Foo_Bar.baz = >1\n", ["foo-bar-baz>1"]),
    ("urllib3 =\n  <1.27\n  >=2\n  [brotli]\n", ["urllib3<1.27", "urllib3>=2", "urllib3[brotli]"]),
    ("urllib3 = <1.27\n  >=2\n", ["urllib3<1.27", "urllib3>=2"]),
    ("redis = >4\nredis = <6\n", ["redis>4", "redis<6"]),
    ('pywin32 = ; sys_platform == "win32"\n', ['pywin32; sys_platform == "win32"']),
    (
        'xonsh = [full, linux]~=0.11.0; python_version >= "3.8"\n',
        ['xonsh[full,linux]~=0.11.0; python_version >= "3.8"'],
    ),
    ("pkg = ===1.0.local\n", ["pkg===1.0.local"]),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    REQUIREMENT_TABLE,
)
def test_requirements(tmp_path: Path, body: str, expected: list[str]) -> None:
    assert requirements_of(tmp_path, body) == expected


def test_repeated_name_keeps_every_line_in_file_order(tmp_path: Path) -> None:
    # configparser stores a name once, where it first appeared; both values survive.
    found = requirements_of(tmp_path, "redis = >4\nother = ==1.0\nredis = <6\n")
    assert sorted(found) == ["other==1.0", "redis<6", "redis>4"]
    assert found.index("redis>4") < found.index("redis<6")


def test_requirement_names_are_normalized(tmp_path: Path) -> None:
    path = write(tmp_path, ENV + "[requirements]\nZope.Interface = >=5\nruamel_yaml =\n")
    names = [r.name for r in MirrorConfig.from_file(path).requirements]
    assert names == ["zope-interface", "ruamel-yaml"]


def test_marker_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, ENV + '[requirements]\npywin32 = ; sys_platform == "win32"\n')
    (requirement,) = MirrorConfig.from_file(path).requirements
    assert requirement.marker is not None
    assert requirement.marker.evaluate({"sys_platform": "win32"})
    assert not requirement.marker.evaluate({"sys_platform": "linux"})
    assert not requirement.specifier


def test_comment_lines_in_a_value_are_skipped() -> None:
    assert [str(r) for r in parse_requirements({"foo": ">=1\n# not this\n<2"}, "x.ini")] == [
        "foo>=1",
        "foo<2",
    ]


def test_empty_value_is_unconstrained() -> None:
    (requirement,) = parse_requirements({"six": ""}, "x.ini")
    assert requirement.name == "six"
    assert not requirement.specifier
    assert requirement.specifier.contains("1.16.0")
    (requirement,) = parse_requirements({"six": None}, "x.ini")  # type: ignore[dict-item]
    assert str(requirement) == "six"


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("requests", ">=2", "requests>=2"),
        ("requests", "", "requests"),
        ("requests", "[socks]", "requests[socks]"),
        ("requests", "[socks]>=2", "requests[socks]>=2"),
        ("requests", '; os_name == "nt"', 'requests; os_name == "nt"'),
        ("Requests", "~=2.31", "requests~=2.31"),
    ],
)
def test_parse_requirement_line(name: str, line: str, expected: str) -> None:
    assert str(parse_requirement_line(name, line, "m.ini")) == expected


# -- errors ------------------------------------------------------------------------------------


def check_error(error: ConfigError, path: str, section: str | None, key: str | None) -> str:
    assert isinstance(error, ValueError)
    assert error.path == path
    assert error.section == section
    assert error.key == key
    message = str(error)
    assert "\n" not in message
    assert message.startswith(path)
    if section is not None:
        assert f"[{section}]" in message
    if key is not None:
        assert f"[{section}] {key}:" in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.ini")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, None, None)
    assert "no such configuration file" in message


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        MirrorConfig.from_file(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # no section header at all
        ("requests = >=2\n", "line 1: 'requests = >=2' comes before any [section]"),
        ("[requirements\nfoo = 1\n", "line 1: '[requirements' comes before any [section]"),
        ("<html><body>not ini</body></html>\n", "comes before any [section]"),
        # a name without '=' (the line number counts the blanked ';' comment)
        (
            ENV + "; a comment\n[requirements]\nrequests\n",
            f"line {ENV.count(chr(10)) + 3}: 'requests' is not 'name = value'; "
            "in [requirements] write e.g. 'requests =' (any version)",
        ),
    ],
)
def test_not_ini(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, None, None)
    assert expected in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "morgan.ini"
    path.write_bytes(b"[env.a]\npython_version = 3.12\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        MirrorConfig.from_file(str(path))


def test_no_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[requirements]\nrequests = >=2\n")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, None, None)
    assert "[env.NAME]" in message


def test_empty_environment_name(tmp_path: Path) -> None:
    path = write(tmp_path, "[env.]\npython_version = 3.12\n[requirements]\nsix =\n")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    check_error(caught.value, path, "env.", None)


def test_no_requirements_section(tmp_path: Path) -> None:
    path = write(tmp_path, ENV)
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, None, None)
    assert "[requirements]" in message


def test_empty_requirements_section_is_allowed(tmp_path: Path) -> None:
    config = MirrorConfig.from_file(write(tmp_path, ENV + "[requirements]\n"))
    assert config.requirements == ()
    assert [e.name for e in config.environments] == ["linux"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("requests = >=>2\n", "requests"),
        ("requests = 2.*.1\n", "requests"),
        ("requests = [socks\n", "requests"),
        ("requests = >=2\n  <<3\n", "requests"),
        ("not a name! = 1\n", "not a name!"),
    ],
)
def test_invalid_specifier(tmp_path: Path, body: str, key: str) -> None:
    path = write(tmp_path, ENV + "[requirements]\n" + body)
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, "requirements", key)
    assert "not a valid PEP 508 specifier" in message


@pytest.mark.parametrize(
    "body",
    [
        "pip = @ https://example.org/pip-24.0-py3-none-any.whl\n",
        "pip = [socks] @ https://example.org/pip.tar.gz\n",
    ],
)
def test_direct_url_requirement(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, ENV + "[requirements]\n" + body)
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    message = check_error(caught.value, path, "requirements", "pip")
    assert "direct URL" in message


def test_environment_errors_name_the_file_and_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[env.old]\npython_version = 3.12.1\n[requirements]\nsix =\n")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    check_error(caught.value, path, "env.old", "python_version")


def test_unknown_environment_key(tmp_path: Path) -> None:
    path = write(tmp_path, ENV + "glibc = 2.28\n[requirements]\nsix =\n")
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.from_file(path)
    check_error(caught.value, path, "env.linux", "glibc")


def test_requirement_objects_are_plain_requirements(tmp_path: Path) -> None:
    config = MirrorConfig.from_file(write(tmp_path, MORGAN_EXAMPLE))
    assert all(isinstance(r, Requirement) for r in config.requirements)
    assert all(r.url is None for r in config.requirements)


def test_comment_line_inside_a_continued_value_is_skipped(tmp_path: Path) -> None:
    body = "urllib3 =\n    >=2\n    # not a requirement\n    <3\n"
    assert requirements_of(tmp_path, body) == ["urllib3>=2", "urllib3<3"]


def test_marker_on_a_continuation_line_is_not_lost(tmp_path: Path) -> None:
    found = requirements_of(tmp_path, 'pywin32 =\n    ; sys_platform == "win32"\n    >=306\n')
    assert found == ['pywin32; sys_platform == "win32"', "pywin32>=306"]


def test_comments_at_the_start_of_a_line(tmp_path: Path) -> None:
    body = "; a comment\n# another\nsix =\n; six = >=99\n"
    assert requirements_of(tmp_path, body) == ["six"]
