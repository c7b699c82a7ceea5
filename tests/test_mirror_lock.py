"""``morgan mirror --lock``: exactly what a lock file pins, from locks real uv wrote."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from server_support import uv_path
from support import ENVIRONMENTS, clean_client_env, skip_unless_ci, write_config
from upstream import FixtureIndex

ENVS = {name: ENVIRONMENTS[name] for name in ("linux312", "win311")}
PROJECT = """\
[project]
name = "app"
version = "0.1"
requires-python = ">=3.11"
dependencies = ["dep<2", "lib", "winonly; sys_platform == 'win32'"]
"""
#: What the locks pin: dep 1.0, though the index's newest is 2.0 (no resolution of ours).
LINUX = {"dep": {"1.0"}, "lib": {"1.0"}, "helper": {"1.0"}}
WINDOWS = {**LINUX, "winonly": {"1.0"}}


@pytest.fixture(params=["json", "html"])
def locked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FixtureIndex, Path]]:
    """A fixture index, and a folder where real uv locked a project against it."""
    uv = uv_path()
    if uv is None:
        skip_unless_ci("uv is not installed")
    dists = tmp_path / "dists"
    with FixtureIndex(request.param) as index:
        for name, version, requires in (
            ("dep", "1.0", []),
            ("dep", "2.0", []),
            ("lib", "1.0", ["helper>=1"]),
            ("helper", "1.0", []),
            ("winonly", "1.0", []),
        ):
            index.add(build_wheel(dists, name, version, requires=requires))
        index.add(build_sdist(dists, "dep", "1.0"))
        project = tmp_path / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text(PROJECT)
        common = ["--no-cache", "--no-config", "--index-url", index.url, "--python", sys.executable]
        for args in (
            ["lock"],
            ["export", "--format", "pylock.toml", "--frozen", "-o", "pylock.toml"],
            ["pip", "compile", "pyproject.toml", "--universal", "--generate-hashes",
             "-o", "requirements.txt"],
        ):  # fmt: skip
            result = subprocess.run(
                [uv, *args, *common],
                cwd=project,
                env=clean_client_env(UV_PYTHON_DOWNLOADS="never"),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        yield index, project


def mirror_lock(run_morgan, index: FixtureIndex, tree: Path, *locks: Path):  # type: ignore[no-untyped-def]
    config = write_config(tree / "morgan.ini", ENVS, "")
    lock_args = [arg for lock in locks for arg in ("--lock", str(lock))]
    return run_morgan(
        "-i", str(tree), "-c", str(config), "-I", index.url, "mirror", "--skip-server-copy",
        *lock_args,
    )  # fmt: skip


def versions_by_environment(tree: Path) -> dict[str, dict[str, set[str]]]:
    files = json.loads((tree / "manifest.json").read_bytes())["files"]
    found: dict[str, dict[str, set[str]]] = {}
    for entry in files.values():
        for env in entry["environments"]:
            found.setdefault(env, {}).setdefault(entry["project"], set()).add(entry["version"])
    return found


@pytest.mark.parametrize("lock_name", ["uv.lock", "pylock.toml", "requirements.txt"])
def test_the_mirror_holds_exactly_the_pinned_versions(
    run_morgan, locked: tuple[FixtureIndex, Path], tmp_path: Path, lock_name: str
) -> None:
    index, project = locked
    tree = tmp_path / "tree"
    said = mirror_lock(run_morgan, index, tree, project / lock_name)
    assert said.code == 0, said
    assert "error:" not in said.out + said.err
    assert versions_by_environment(tree) == {"linux312": LINUX, "win311": WINDOWS}
    assert not list((tree / "dep").glob("dep-2.0*"))
    assert sorted(p.name for p in (tree / "dep").glob("dep-*[lz]")) == [
        "dep-1.0-py3-none-any.whl",
        "dep-1.0.tar.gz",
    ]
    why = run_morgan("-i", str(tree), "why", "helper")
    assert why.code == 0, why
    assert f"  helper 1.0 <- {project / lock_name} (helper==1.0)" in why.out.splitlines()
    # a re-run stands on the same plans; the tree stays as it is
    again = mirror_lock(run_morgan, index, tree, project / lock_name)
    assert again.code == 0, again
    assert "0 downloaded" in again.out


def test_a_wrong_hash_in_the_lock_is_refused(
    run_morgan, locked: tuple[FixtureIndex, Path], tmp_path: Path
) -> None:
    index, project = locked
    pylock = project / "pylock.toml"
    text = pylock.read_text()
    good = re.search(r'dep-1\.0-py3-none-any\.whl.*?sha256 = "([0-9a-f]{64})"', text, re.S)
    assert good, text
    pylock.write_text(text.replace(good.group(1), "0" * 64))
    tree = tmp_path / "tree"
    said = mirror_lock(run_morgan, index, tree, pylock)
    assert said.code == 1, said
    assert re.search(
        r"error: (linux312|win311): .*pylock\.toml.*: the index has no "
        r"dep-1\.0-py3-none-any\.whl with the lock's sha256",
        said.out,
    ), said.out
    assert not (tree / "dep" / "dep-1.0-py3-none-any.whl").exists()
    # the rest of the lock is still mirrored
    assert (tree / "lib" / "lib-1.0-py3-none-any.whl").is_file()


def test_a_lock_for_no_environment_of_the_config_is_an_error(
    run_morgan, locked: tuple[FixtureIndex, Path], tmp_path: Path
) -> None:
    index, project = locked
    pylock = project / "pylock.toml"
    text = pylock.read_text()
    # a lock for macOS only
    pylock.write_text("environments = [\"sys_platform == 'darwin'\"]\n" + text)
    tree = tmp_path / "tree"
    said = mirror_lock(run_morgan, index, tree, pylock)
    assert said.code == 1
    assert "covers none of the environments of the configuration" in said.out


def test_an_unreadable_lock_is_one_line_and_exit_2(run_morgan, tmp_path: Path) -> None:
    bad = tmp_path / "pylock.toml"
    bad.write_text("lock-version = [")
    config = write_config(tmp_path / "tree" / "morgan.ini", ENVS, "")
    said = run_morgan("-i", str(tmp_path / "tree"), "-c", str(config), "mirror", "--lock", str(bad))
    assert said.code == 2
    assert said.err.startswith(f"morgan: {bad}") and said.err.count("\n") == 1
    assert "Traceback" not in said.err
