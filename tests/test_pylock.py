"""The PEP 751 lock file: what it says (read back with tomllib), and that real uv installs it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from builders import build_sdist, build_wheel
from support import clean_client_env

from morgan.errors import UnsafeNameError
from morgan.pylock import (
    LockedFile,
    LockedPackage,
    parse_upload_time,
    pylock_filename,
    render_pylock,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib

INDEX_URL = "https://mirror.example/simple/"
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def locked(
    project: str,
    filename: str,
    sha256: str = SHA_A,
    *,
    size: int = 1234,
    upload_time: str | None = "2024-01-02T03:04:05.123456Z",
) -> LockedFile:
    return LockedFile(project, filename, sha256, size, upload_time)


def sample_packages() -> list[LockedPackage]:
    """Given out of order, so sorting is what the tests see."""
    return [
        LockedPackage(
            name="zeta",
            version="2.0",
            requires_python=">=3.9",
            wheels=(
                locked("zeta", "zeta-2.0-cp312-cp312-win_amd64.whl", SHA_B),
                locked("zeta", "zeta-2.0-cp312-cp312-manylinux_2_28_x86_64.whl", SHA_C),
            ),
            sdist=locked("zeta", "zeta-2.0.tar.gz", upload_time=None),
        ),
        LockedPackage(
            name="alpha-beta",
            version="1.0",
            requires_python=None,
            wheels=(locked("alpha-beta", "alpha_beta-1.0-py3-none-any.whl"),),
            sdist=None,
        ),
    ]


def render(packages: list[LockedPackage] | None = None, **options: Any) -> dict[str, Any]:
    options.setdefault("environment_marker", 'sys_platform == "linux"')
    options.setdefault("requires_python", ">=3.9")
    options.setdefault("index_url", INDEX_URL)
    text = render_pylock(sample_packages() if packages is None else packages, **options)
    lock: dict[str, Any] = tomllib.loads(text.decode("utf-8"))
    return lock


# -- what the file says ----------------------------------------------------------------


def test_top_level_keys() -> None:
    lock = render()
    assert lock["lock-version"] == "1.0"
    assert lock["created-by"] == "morgan"
    assert lock["environments"] == ['sys_platform == "linux"']
    assert lock["requires-python"] == ">=3.9"
    assert list(lock) == [
        "lock-version",
        "environments",
        "requires-python",
        "created-by",
        "packages",
    ]


def test_optional_top_level_keys_are_left_out() -> None:
    lock = render(environment_marker=None, requires_python=None, created_by="morgan-test")
    assert "environments" not in lock
    assert "requires-python" not in lock
    assert lock["created-by"] == "morgan-test"


def test_packages_sorted_by_name_and_files_by_filename() -> None:
    packages = render()["packages"]
    assert [package["name"] for package in packages] == ["alpha-beta", "zeta"]
    zeta = packages[1]
    assert [wheel["name"] for wheel in zeta["wheels"]] == [
        "zeta-2.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "zeta-2.0-cp312-cp312-win_amd64.whl",
    ]


def test_package_and_file_entries() -> None:
    alpha, zeta = render()["packages"]
    assert alpha == {
        "name": "alpha-beta",
        "version": "1.0",
        "index": INDEX_URL,
        "wheels": [
            {
                "name": "alpha_beta-1.0-py3-none-any.whl",
                "path": "alpha-beta/alpha_beta-1.0-py3-none-any.whl",
                "upload-time": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
                "size": 1234,
                "hashes": {"sha256": SHA_A},
            }
        ],
    }
    assert zeta["requires-python"] == ">=3.9"
    assert zeta["sdist"] == {
        "name": "zeta-2.0.tar.gz",
        "path": "zeta/zeta-2.0.tar.gz",
        "size": 1234,
        "hashes": {"sha256": SHA_A},
    }
    assert [wheel["hashes"] for wheel in zeta["wheels"]] == [{"sha256": SHA_C}, {"sha256": SHA_B}]


def test_paths_are_relative_with_forward_slashes() -> None:
    for package in render()["packages"]:
        files = [*package["wheels"], *([package["sdist"]] if "sdist" in package else [])]
        for file in files:
            assert file["path"] == f"{package['name']}/{file['name']}"


def test_same_input_gives_the_same_bytes() -> None:
    options: dict[str, Any] = {
        "environment_marker": 'sys_platform == "linux"',
        "requires_python": ">=3.9",
        "index_url": INDEX_URL,
    }
    forward = render_pylock(sample_packages(), **options)
    shuffled = [
        LockedPackage(p.name, p.version, p.requires_python, tuple(reversed(p.wheels)), p.sdist)
        for p in reversed(sample_packages())
    ]
    assert render_pylock(iter(shuffled), **options) == forward
    assert render_pylock(sample_packages(), **options) == forward


@pytest.mark.parametrize("count", [0, 1, 2])
def test_the_bytes_are_those_tomli_w_writes_for_the_whole_document(count: int) -> None:
    """Package tables are written one by one (and kept for the next environment's lock):
    the file must still be what tomli-w writes for the document at once."""
    packages = sample_packages()[:count]
    text = render_pylock(
        packages, environment_marker=None, requires_python=None, index_url=INDEX_URL
    ).decode()
    assert tomli_w.dumps(tomllib.loads(text)) == text


def test_package_tables_are_rendered_once_for_the_lock_files_of_a_run() -> None:
    options: dict[str, Any] = {"requires_python": None, "index_url": INDEX_URL}
    rendered: dict[Any, str] = {}
    linux = render_pylock(
        sample_packages(),
        environment_marker='sys_platform == "linux"',
        rendered=rendered,
        **options,
    )
    kept = dict(rendered)
    assert len(kept) == 2
    windows = render_pylock(
        sample_packages()[1:],
        environment_marker='sys_platform == "win32"',
        rendered=rendered,
        **options,
    )
    assert rendered == kept  # nothing rendered again
    assert linux == render_pylock(
        sample_packages(), environment_marker='sys_platform == "linux"', **options
    )
    assert windows == render_pylock(
        sample_packages()[1:], environment_marker='sys_platform == "win32"', **options
    )


def test_hashes_are_written_lowercase() -> None:
    package = LockedPackage(
        "alpha-beta",
        "1.0",
        None,
        (locked("alpha-beta", "alpha_beta-1.0-py3-none-any.whl", "AB" * 32),),
    )
    [entry] = render([package])["packages"]
    assert entry["wheels"][0]["hashes"] == {"sha256": "ab" * 32}


def test_upload_time_is_a_toml_datetime_in_utc() -> None:
    package = LockedPackage(
        "alpha-beta",
        "1.0",
        None,
        (
            locked(
                "alpha-beta",
                "alpha_beta-1.0-py3-none-any.whl",
                upload_time="2024-01-02T05:04:05+02:00",
            ),
        ),
        locked("alpha-beta", "alpha-beta-1.0.tar.gz", upload_time="yesterday"),
    )
    [entry] = render([package])["packages"]
    stamp = entry["wheels"][0]["upload-time"]
    assert isinstance(stamp, datetime)
    assert stamp.utcoffset() == timedelta(0)
    assert stamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert "upload-time" not in entry["sdist"]  # unreadable: left out, not guessed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05.123456Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02t03:04:05.5z", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)),
        (
            "2024-01-02T03:04:05.123456789Z",
            datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        ),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T01:04:05-0200", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-01T23:34:05.1-03:30", datetime(2024, 1, 2, 3, 4, 5, 100000, tzinfo=timezone.utc)),
        (" 2024-01-02T03:04:05Z\n", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        (None, None),
        ("", None),
        ("2024-01-02", None),
        ("2024-13-02T03:04:05Z", None),
        ("2024-01-02T25:04:05Z", None),
        ("2024-01-02T03:04:05+25:00", None),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("1706151845", None),
    ],
)
def test_parse_upload_time(text: str | None, expected: datetime | None) -> None:
    parsed = parse_upload_time(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == timezone.utc


@pytest.mark.parametrize(
    ("environment", "filename"),
    [
        ("linux-py311", "pylock.linux-py311.toml"),
        ("win_amd64", "pylock.win_amd64.toml"),
        ("py3.11", "pylock.py3-11.toml"),
        ("a b/c\\d:e", "pylock.a-b-c-d-e.toml"),
        ("café", "pylock.caf-.toml"),
    ],
)
def test_pylock_filename(environment: str, filename: str) -> None:
    assert pylock_filename(environment) == filename
    pylock = pytest.importorskip("packaging.pylock")
    assert pylock.is_valid_pylock_path(Path(filename))


@pytest.mark.parametrize("environment", ["", "...", "./"])
def test_pylock_filename_refuses_names_with_nothing_left(environment: str) -> None:
    with pytest.raises(ValueError, match="nothing to name a file by"):
        pylock_filename(environment)


def test_packaging_reads_it_as_a_valid_lock() -> None:
    """packaging's own PEP 751 reader (packaging >= 25.1) validates every key and type."""
    pylock = pytest.importorskip("packaging.pylock")
    text = render_pylock(
        sample_packages(),
        environment_marker='sys_platform == "linux"',
        requires_python=">=3.9",
        index_url=INDEX_URL,
    )
    lock = pylock.Pylock.from_dict(tomllib.loads(text.decode()))
    assert [package.name for package in lock.packages] == ["alpha-beta", "zeta"]
    assert lock.packages[1].sdist.path == "zeta/zeta-2.0.tar.gz"


# -- what it refuses ---------------------------------------------------------------------


def one_wheel(
    project: str = "alpha",
    filename: str = "alpha-1.0-py3-none-any.whl",
    *,
    version: str = "1.0",
    sha256: str = SHA_A,
    size: int = 1234,
) -> LockedPackage:
    return LockedPackage(project, version, None, (locked(project, filename, sha256, size=size),))


@pytest.mark.parametrize(
    ("package", "message"),
    [
        (one_wheel("Alpha", "alpha-1.0-py3-none-any.whl"), "not normalized"),
        (one_wheel(filename="alpha-1.1-py3-none-any.whl"), "not a wheel of alpha 1.0"),
        (one_wheel(filename="beta-1.0-py3-none-any.whl"), "not a wheel of alpha 1.0"),
        (one_wheel(filename="alpha-1.0.zip"), "alpha-1.0.zip"),
        (one_wheel(version="1.0.0"), None),  # the same version, spelt otherwise: fine
        (one_wheel(sha256="xyz"), "not a sha256 digest"),
        (one_wheel(size=-1), "negative size"),
        (LockedPackage("alpha", "1.0", None, ()), "no file to install"),
        (
            LockedPackage(
                "alpha",
                "1.0",
                None,
                (locked("alpha", "alpha-1.0-py3-none-any.whl"),) * 2,
            ),
            "lists a wheel twice",
        ),
        (
            LockedPackage("alpha", "1.0", None, (locked("beta", "alpha-1.0-py3-none-any.whl"),)),
            "filed under 'beta'",
        ),
    ],
)
def test_refuses_inconsistent_packages(package: LockedPackage, message: str | None) -> None:
    if message is None:
        render([package])
        return
    with pytest.raises(ValueError, match=message):
        render([package])


@pytest.mark.parametrize(
    "sdist",
    [
        locked("alpha", "../../etc/alpha-1.0.tar.gz"),
        locked("alpha", ".alpha-1.0.tar.gz"),
        locked("alpha", "alpha-1.0.tar.gz.hash"),
        locked("../alpha", "alpha-1.0.tar.gz"),
    ],
)
def test_refuses_paths_that_leave_the_project_folder(sdist: LockedFile) -> None:
    package = LockedPackage(sdist.project, "1.0", None, (), sdist)
    with pytest.raises((UnsafeNameError, ValueError)):
        render([package])


def test_refuses_a_package_locked_twice() -> None:
    with pytest.raises(ValueError, match="locked twice"):
        render([one_wheel(), one_wheel()])


@pytest.mark.parametrize("index_url", ["/srv/INDEX/", "INDEX", "ftp://host/simple/", ""])
def test_index_must_be_a_url(index_url: str) -> None:
    """uv refuses the whole lock file when ``index`` is a path ("relative URL without a base")."""
    with pytest.raises(ValueError, match="not an http"):
        render(index_url=index_url)


# -- real uv installs it -------------------------------------------------------------------


def uv_binary() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed; install the test extras (pip install -e '.[test]')")
    return found


def file_of(path: Path, upload_time: str | None = "2024-01-02T03:04:05.123456Z") -> LockedFile:
    return LockedFile(
        project=path.parent.name,
        filename=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size=path.stat().st_size,
        upload_time=upload_time,
    )


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, list[LockedPackage]]:
    """A mirror tree ``INDEX/<project>/<file>`` of two projects; beta also has an unlocked 1.0."""
    index = tmp_path / "INDEX"
    app_wheel = build_wheel(index / "app-core", "app-core", "1.0", requires=["beta>=2"])
    app_sdist = build_sdist(index / "app-core", "app-core", "1.0", requires=["beta>=2"])
    build_wheel(index / "beta", "beta", "1.0")
    beta_wheel = build_wheel(index / "beta", "beta", "2.0")
    packages = [
        LockedPackage("app-core", "1.0", ">=3.8", (file_of(app_wheel),), file_of(app_sdist, None)),
        LockedPackage("beta", "2.0", None, (file_of(beta_wheel, "2023-05-06T07:08:09Z"),)),
    ]
    return index, packages


def this_machine() -> dict[str, str | None]:
    major, minor = sys.version_info[:2]
    return {
        "environment_marker": f'sys_platform == "{sys.platform}"',
        "requires_python": f">={major}.{minor}",
    }


def uv_install(lock: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Install ``lock`` with real uv into a fresh venv: offline, no cache, no user config."""
    env = clean_client_env()
    venv = cwd / "venv"
    subprocess.run(
        [uv_binary(), "venv", "--no-config", "--no-cache", "--offline", "-q",
         "--python", sys.executable, str(venv)],
        env=env, check=True, capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    # --preview-features pylock: installing from pylock.toml is a preview in uv 0.13 (it
    # works without it, with a warning). The lock is named relative to cwd, which is
    # not its folder: the files' paths must be read relative to the lock file.
    result = subprocess.run(
        [uv_binary(), "pip", "install", "--no-config", "--no-cache", "--offline",
         "--preview-features", "pylock", "--python", str(python),
         "-r", str(lock.relative_to(cwd))],
        env=env, capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip
    return result, python


def installed(python: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return {
        name: version for name, version in json.loads(out).items() if name in ("app-core", "beta")
    }


def write_lock(index: Path, packages: list[LockedPackage], **options: Any) -> Path:
    for key, value in this_machine().items():
        options.setdefault(key, value)
    lock = index / pylock_filename("here")
    lock.write_bytes(render_pylock(packages, index_url=index.as_uri() + "/", **options))
    return lock


@pytest.mark.clients
def test_uv_installs_the_locked_versions(mirror: tuple[Path, list[LockedPackage]]) -> None:
    index, packages = mirror
    lock = write_lock(index, packages)
    assert lock.name == "pylock.here.toml"
    result, python = uv_install(lock, index.parent)
    assert result.returncode == 0, result.stderr
    # beta 1.0 sits in the same folder; only the locked 2.0 is installed
    assert installed(python) == {"app-core": "1.0", "beta": "2.0"}


@pytest.mark.clients
def test_uv_refuses_a_file_whose_hash_differs(mirror: tuple[Path, list[LockedPackage]]) -> None:
    index, packages = mirror
    beta = packages[1]
    wrong = LockedFile(
        beta.wheels[0].project, beta.wheels[0].filename, "0" * 64, beta.wheels[0].size, None
    )
    lock = write_lock(index, [packages[0], LockedPackage("beta", "2.0", None, (wrong,))])
    result, python = uv_install(lock, index.parent)
    assert result.returncode != 0
    assert "Hash mismatch" in result.stderr and "0" * 64 in result.stderr, result.stderr
    assert installed(python) == {}


@pytest.mark.clients
def test_uv_refuses_a_file_whose_size_differs(mirror: tuple[Path, list[LockedPackage]]) -> None:
    index, packages = mirror
    beta = packages[1].wheels[0]
    wrong = LockedFile(beta.project, beta.filename, beta.sha256, beta.size + 1, None)
    lock = write_lock(index, [packages[0], LockedPackage("beta", "2.0", None, (wrong,))])
    result, python = uv_install(lock, index.parent)
    assert result.returncode != 0
    assert "size" in result.stderr, result.stderr
    assert installed(python) == {}


@pytest.mark.clients
def test_uv_refuses_a_lock_for_another_environment(
    mirror: tuple[Path, list[LockedPackage]],
) -> None:
    index, packages = mirror
    lock = write_lock(index, packages, environment_marker='sys_platform == "nonesuch"')
    result, python = uv_install(lock, index.parent)
    assert result.returncode != 0
    assert "not supported by the lockfile" in result.stderr, result.stderr
    assert installed(python) == {}
