"""Real pip and uv resolve every requirement, per environment, from the tree as a file:// index.

The tree is mirrored once from a local upstream; then, for each environment of
the config, pip and uv pretend to be a client there and must find everything
they need in the tree alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    ENVIRONMENTS,
    GRAPH_REQUIREMENTS,
    PIP_TARGETS,
    UV_TARGETS,
    clean_client_env,
    populate_graph,
    write_config,
)
from upstream import FixtureIndex

from morgan.cli import main

pytestmark = pytest.mark.clients

#: What a client asks for: the config's requirements, as pip/uv requirement lines.
CLIENT_REQUIREMENTS = ["app[fancy]", "native", "cyc-a", "yanky", "pre", "onlypre"]


@pytest.fixture(scope="module", params=["json", "html"])
def mirrored_tree(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    base = tmp_path_factory.mktemp(f"clients-{request.param}")
    with FixtureIndex(request.param) as upstream:
        populate_graph(upstream, base / "dists")
        index = base / "index"
        config = write_config(index / "morgan.ini", ENVIRONMENTS, GRAPH_REQUIREMENTS)
        code = main(["-q", "-i", str(index), "-c", str(config), "-I", upstream.url, "mirror"])
        assert code == 0
    yield index


def uv_binary() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed; install the test extras (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_pip_downloads_everything_for_each_environment(
    mirrored_tree: Path, environment: str, tmp_path: Path
) -> None:
    dest = tmp_path / "wheels"
    command = [
        sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir",
        "--disable-pip-version-check",
        "--index-url", mirrored_tree.as_uri() + "/",
        "--only-binary=:all:", "--implementation", "cp", *PIP_TARGETS[environment].split(),
        "-d", str(dest), *CLIENT_REQUIREMENTS,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    got = {p.name for p in dest.iterdir()}
    assert any(name.startswith("native-1.0-") for name in got)
    assert "yanky-1.0-py3-none-any.whl" in got
    assert "speedy-1.0-py3-none-any.whl" in got  # an extra of a dependency
    # pip evaluates markers for the interpreter it runs on, not the --platform target,
    # so marker-dependent dependencies are checked with uv below instead.
    lib = "lib-1.0-py3-none-any.whl" if environment == "linux39" else "lib-2.0-py3-none-any.whl"
    assert lib in got


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_uv_compiles_everything_for_each_environment(
    mirrored_tree: Path, environment: str, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("\n".join(CLIENT_REQUIREMENTS) + "\n")
    command = [
        uv_binary(), "pip", "compile", str(requirements), "--no-config", "--no-cache",
        "--index-url", mirrored_tree.as_uri() + "/", *UV_TARGETS[environment],
        # any interpreter will do (--python-version is the target); without one uv
        # searches the machine for a matching Python, which is slow behind pyenv shims
        "--python", sys.executable,
        "--no-header", "--quiet",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pins = {
        line.split("==")[0]: line.split("==")[1].strip()
        for line in result.stdout.splitlines()
        if "==" in line and not line.startswith(" ")
    }
    assert pins["native"] == "1.0"
    assert pins["lib"] == ("1.0" if environment == "linux39" else "2.0")
    assert pins["yanky"] == "1.0"
    assert pins["onlypre"] == "1.0a1"
    assert "speedy" in pins
    assert ("winonly" in pins) == (environment == "win311")
