"""The whole air-gap crossing, as an operator does it, with real pip and uv at the end.

Online: mirror, export. Offline, with nothing but Python 3.7 and the server.py
taken out of the bundle: import into an empty folder, verify, serve, install.
Then a second round: a new requirement, a delta bundle ``--since`` the first
manifest that carries only what changed, imported over the first copy, which
then equals the online tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from server_support import (
    ServerProcess,
    find_python,
    installed_versions,
    pip_args,
    run,
    uv_path,
)
from support import ENVIRONMENTS, populate_graph, skip_unless_ci, write_config
from upstream import FixtureIndex

from morgan.cli import main
from morgan.generate import environment_block

FIRST = "app = [fancy]\nnative ="
SECOND = FIRST + "\nnewproj ="


@pytest.fixture(scope="module")
def python37() -> str:
    found = find_python("3.7")
    if found is None:
        skip_unless_ci("no Python 3.7 to run server.py on the offline side")
    return found


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[FixtureIndex]:
    with FixtureIndex("json") as index:
        populate_graph(index, tmp_path / "dists")
        index.add(build_wheel(tmp_path / "dists", "newproj", "1.0", requires=["lib>=1"]))
        index.add(build_sdist(tmp_path / "dists", "newproj", "1.0", requires=["lib>=1"]))
        yield index


def morgan(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


def mirror(upstream: FixtureIndex, index: Path, requirements: str) -> None:
    environments = {name: ENVIRONMENTS[name] for name in ("linux312", "win311")}
    config = write_config(index / "morgan.ini", environments, requirements)
    config.write_text(environment_block("here") + "\n" + config.read_text())
    code, said = morgan("-q", "-i", str(index), "-I", upstream.url, "mirror")
    assert code == 0, said


def offline(python: str, *args: str, tools: Path) -> subprocess.CompletedProcess[str]:
    """``python3 server.py ARGS`` on the offline side."""
    return subprocess.run(
        [python, str(tools / "server.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tools,
    )


def served(index: Path) -> dict[str, str]:
    """Every file of the tree but the hidden ones and the config: path → sha256."""
    return {
        str(path.relative_to(index)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(index.rglob("*"))
        if path.is_file()
        and not any(p.startswith(".") for p in path.relative_to(index).parts)
        and path.name != "morgan.ini"
    }


def bundle_paths(bundle: Path) -> list[str]:
    with tarfile.open(bundle) as tar:
        return tar.getnames()


def install_with_pip(server: ServerProcess, target: Path, *requirements: str) -> dict[str, str]:
    run([sys.executable, "-m", "pip", "install", *pip_args(server.url), "--target", str(target),
         *requirements])  # fmt: skip
    return installed_versions(target)


def install_with_uv(server: ServerProcess, target: Path, *requirements: str) -> dict[str, str]:
    uv = uv_path()
    if uv is None:
        skip_unless_ci("uv is not installed")
    run([uv, "pip", "install", "--no-config", "--no-cache", "--index-url", server.url,
         "--python", sys.executable, "--target", str(target), *requirements])  # fmt: skip
    return installed_versions(target)


def test_the_whole_crossing(graph: FixtureIndex, python37: str, tmp_path: Path) -> None:
    online, inside = tmp_path / "online", tmp_path / "inside"
    mirror(graph, online, FIRST)

    # online: the first bundle, and the manifest it carries, kept for the next round
    first = tmp_path / "transfer-1.tar"
    code, said = morgan("-i", str(online), "export", "-o", str(first))
    assert code == 0, said
    first_manifest = tmp_path / "manifest-1.json"
    first_manifest.write_bytes((online / "manifest.json").read_bytes())

    # offline: server.py comes out of the bundle; the rest goes in with it
    tools = tmp_path / "tools"
    tools.mkdir()
    with tarfile.open(first) as tar:
        member = tar.extractfile("server.py")
        assert member is not None
        (tools / "server.py").write_bytes(member.read())
    inside.mkdir()
    landed = offline(python37, "import", str(first), "-i", str(inside), tools=tools)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    checked = offline(python37, "verify", "-i", str(inside), tools=tools)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert served(inside) == served(online)
    assert set(json.loads((inside / "manifest.json").read_bytes())["files"]) == {
        path for path in served(online) if path.endswith((".whl", ".tar.gz"))
    }

    expected = {"app": "1.0", "lib": "2.0", "extrasdep": "1.0", "deepdep": "1.0", "speedy": "1.0"}
    with ServerProcess(inside, python=python37) as server:
        assert install_with_pip(server, tmp_path / "pip", "app[fancy]") == expected
        assert install_with_uv(server, tmp_path / "uv", "app[fancy]") == expected

    # the second round: one more requirement; the delta carries only what changed
    mirror(graph, online, SECOND)
    second = tmp_path / "transfer-2.tar"
    code, said = morgan(
        "export", "-i", str(online), "--since", str(first_manifest), "-o", str(second)
    )
    assert code == 0, said
    carried = bundle_paths(second)
    old_files = json.loads(first_manifest.read_bytes())["files"]
    distributions = [p for p in carried if p.endswith((".whl", ".tar.gz"))]
    assert sorted(distributions) == [
        "newproj/newproj-1.0-py3-none-any.whl",
        "newproj/newproj-1.0.tar.gz",
    ]
    assert not set(carried) & set(old_files)
    assert "native/index.json" not in carried  # unchanged pages stay behind
    assert {"index.json", "manifest.json", "server.py"} <= set(carried)

    landed = offline(python37, "import", str(second), "-i", str(inside), tools=tools)
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert served(inside) == served(online)
    with ServerProcess(inside, python=python37) as server:
        assert install_with_pip(server, tmp_path / "pip2", "newproj") == {
            "newproj": "1.0",
            "lib": "2.0",
        }

    # the first bundle again, now on the wrong base: refused, nothing changes
    before = served(inside)
    again = offline(python37, "import", str(first), "-i", str(inside), tools=tools)
    assert again.returncode == 1
    assert served(inside) == before
    shutil.rmtree(tools)
