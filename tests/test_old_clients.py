"""A real old pip installs from the tree: ``pip_version = 18.1`` mirrors a wheel it can take.

pip 18.1 (on Python 3.6) knows manylinux1 wheels but neither manylinux2014 (pip 19.3)
nor manylinux_2_28 (pip 20.3) ones, reads only PEP 503 HTML pages, and ignores
everything newer in them. Project ``native`` 2.0 has only wheels of those newer kinds
(and an sdist); 1.0 has a manylinux1 wheel. For an environment that says
``pip_version = 18.1`` the 2.0 wheels count as unusable, so morgan's wheels-only
resolution mirrors 1.0's wheel, and the real pip 18.1, downloading from the tree as a
``file://`` index with ``--only-binary :all:``, gets it. Without ``pip_version`` the
tree holds only 2.0 for that environment, which this pip cannot install.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from server_support import find_python
from support import clean_client_env, skip_unless_ci, write_config
from upstream import FixtureIndex

from morgan.cli import main

pytestmark = pytest.mark.clients

OLD_CLIENT = {
    "python_version": "3.6",
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "glibc_version": "2.17",
    "pip_version": "18.1",
}
NEW_WHEELS = {
    "native-2.0-cp36-cp36m-manylinux2014_x86_64.whl",
    "native-2.0-cp36-cp36m-manylinux_2_28_x86_64.whl",
}
OLD_WHEEL = "native-1.0-cp36-cp36m-manylinux1_x86_64.whl"


@pytest.fixture(scope="module")
def old_pip() -> str:
    """Python 3.6 with its pip 18.1: what a client of 2018 runs."""
    python = find_python("3.6")
    if python is None:
        skip_unless_ci("no Python 3.6 on this machine")
    result = subprocess.run(
        [python, "-m", "pip", "--version"],
        env=clean_client_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 or not result.stdout.startswith("pip 18.1 "):
        skip_unless_ci(f"{python} has no pip 18.1: {result.stdout.strip() or result.stderr}")
    return python


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureIndex]:
    dists = tmp_path_factory.mktemp("old-dists")
    with FixtureIndex("html") as index:
        for tags in ("cp36-cp36m-manylinux2014_x86_64", "cp36-cp36m-manylinux_2_28_x86_64"):
            index.add(build_wheel(dists, "native", "2.0", tags=tags))
        index.add(build_wheel(dists, "native", "1.0", tags="cp36-cp36m-manylinux1_x86_64"))
        for version in ("1.0", "2.0"):
            index.add(build_sdist(dists, "native", version, build_requires=["flit_core>=3"]))
        index.add(build_wheel(dists, "flit-core", "3.9.0"))
        yield index


def mirror(upstream: FixtureIndex, index: Path, environment: dict[str, str]) -> Path:
    config = write_config(index / "morgan.ini", {"old": environment}, "native =\n")
    args = ["-q", "-i", str(index), "-c", str(config), "-I", upstream.url]
    assert main([*args, "mirror", "--skip-server-copy"]) == 0
    return index


def native_files(index: Path) -> set[str]:
    return {p.name for p in (index / "native").iterdir() if p.name.endswith((".whl", ".tar.gz"))}


def pip_download(python: str, index: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """pip 18.1 downloads ``native`` from the tree, wheels only, as a client with no compiler."""
    command = [
        python, "-m", "pip", "download", "--no-cache-dir", "--isolated",
        "--disable-pip-version-check", "--only-binary", ":all:",
        "--index-url", index.as_uri() + "/", "-d", str(dest), "native",
    ]  # fmt: skip
    # pip 18 reads global configuration from $XDG_CONFIG_DIRS even when isolated
    quiet_xdg = dest.parent / "xdg"
    quiet_xdg.mkdir(exist_ok=True)
    return subprocess.run(
        command,
        env=clean_client_env(XDG_CONFIG_DIRS=str(quiet_xdg)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pip_18_gets_the_manylinux1_wheel_morgan_mirrored_for_it(
    old_pip: str, upstream: FixtureIndex, tmp_path: Path
) -> None:
    index = mirror(upstream, tmp_path / "index", OLD_CLIENT)
    # 2.0 is mirrored as its sdist (what the client would build); 1.0's wheel because
    # that pip can install no 2.0 wheel
    assert native_files(index) == {"native-2.0.tar.gz", OLD_WHEEL, "native-1.0.tar.gz"}
    # the page pip 18 reads: PEP 503 HTML next to the files
    assert OLD_WHEEL in (index / "native" / "index.html").read_text(encoding="utf-8")

    dest = tmp_path / "downloaded"
    result = pip_download(old_pip, index, dest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in dest.iterdir()} == {OLD_WHEEL}


def test_without_pip_version_the_tree_holds_only_what_pip_18_cannot_install(
    old_pip: str, upstream: FixtureIndex, tmp_path: Path
) -> None:
    environment = {k: v for k, v in OLD_CLIENT.items() if k != "pip_version"}
    index = mirror(upstream, tmp_path / "index", environment)
    # glibc 2.17: the manylinux2014 wheel of 2.0 is the one a current pip picks
    newest = "native-2.0-cp36-cp36m-manylinux2014_x86_64.whl"
    assert newest in NEW_WHEELS
    assert native_files(index) == {newest, "native-2.0.tar.gz"}

    dest = tmp_path / "downloaded"
    result = pip_download(old_pip, index, dest)
    assert result.returncode != 0
    assert "No matching distribution found for native" in result.stdout + result.stderr
