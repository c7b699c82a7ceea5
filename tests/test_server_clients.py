"""Real installers against morgan/server.py: pip (JSON, HTML, HTTPS, basic auth) and uv.

Every client runs with the machine's own index settings removed (server_support.clean_env
and pip_args), so an install can only succeed through the server under test.

The tree (server_support.make_tree) is built so that only a server that tells the
truth gets the expected result: alpha needs beta; beta 2.0 is ruled out by a
requires-python known only to index.json, 1.5 is yanked, so beta 1.2 must win.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import (
    ServerProcess,
    Tree,
    clean_env,
    find_python,
    installed_versions,
    make_cert,
    make_signed_cert,
    make_tree,
    pip_args,
    run,
    uv_path,
)
from support import skip_unless_ci

from morgan import server as server_module

pytestmark = pytest.mark.clients

EXPECTED = {"alpha": "1.0", "beta": "1.2"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("clients"))


@pytest.fixture(scope="module")
def server(tree: Tree) -> Iterator[ServerProcess]:
    with ServerProcess(tree.root) as running:
        yield running


@pytest.fixture(scope="module")
def uv() -> str:
    found = uv_path()
    if found is None:
        skip_unless_ci("uv is not installed")
    return found


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def test_pip_install_into_a_fresh_venv(server: ServerProcess, tmp_path: Path) -> None:
    """pip's own Accept header: the PEP 691 JSON pages, with PEP 658 metadata."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    run([str(python), "-m", "pip", "install", *pip_args(server.url), "alpha"])
    result = run(
        [str(python), "-c", "import alpha, beta; print(alpha.__version__, beta.__version__)"],
    )
    assert result.stdout.split() == ["1.0", "1.2"]
    log = server.stderr()
    assert re.search(r'"GET /simple/beta/ HTTP/1\.1" 200 ', log)
    assert "beta-1.2-py3-none-any.whl" in log


def test_pip_download_for_another_platform(server: ServerProcess, tmp_path: Path) -> None:
    """A Python 3.9 manylinux target: the cp39 wheel, and not gamma 2.0 (Python >=3.10)."""
    dest = tmp_path / "wheels"
    run(
        pip(
            "download",
            *pip_args(server.url),
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.9",
            "--implementation",
            "cp",
            "--abi",
            "cp39",
            "-d",
            str(dest),
            "gamma",
        )
    )
    assert sorted(p.name for p in dest.iterdir()) == [
        "beta-1.2-py3-none-any.whl",
        "gamma-1.0-cp39-cp39-manylinux2014_x86_64.whl",
    ]


def test_pip_yanked_release_only_when_pinned(server: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "target"
    run(pip("install", *pip_args(server.url), "--target", str(target), "beta==1.5"))
    assert installed_versions(target) == {"beta": "1.5"}


def test_uv_pip_install(server: ServerProcess, uv: str, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    uv_flags = ["--no-cache", "--no-config", "--no-python-downloads"]
    run([uv, "venv", *uv_flags, "--python", sys.executable, str(environment)])
    python = environment / "bin" / "python"
    command = [uv, "pip", "install", *uv_flags, "--python", str(python)]
    run([*command, "--index-url", server.url, "alpha"])
    result = run(
        [str(python), "-c", "import alpha, beta; print(alpha.__version__, beta.__version__)"]
    )
    assert result.stdout.split() == ["1.0", "1.2"]


def pins(output: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9-]+)==(\S+)", output, re.MULTILINE))


def test_uv_pip_compile(server: ServerProcess, uv: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("alpha\ngamma\n")
    command = [uv, "pip", "compile", "--no-cache", "--no-config", "--no-python-downloads"]
    command += ["--index-url", server.url, "--python", sys.executable]
    command += ["--python-version", "3.9", "--python-platform", "x86_64-manylinux2014"]
    result = run([*command, str(requirements)])
    assert pins(result.stdout) == {"alpha": "1.0", "beta": "1.2", "gamma": "1.0"}
    # upload-time (PEP 700) is served: excluding newer than March 2020 leaves beta 1.0.
    result = run([*command, "--exclude-newer", "2020-03-01T00:00:00Z", str(requirements)])
    assert pins(result.stdout)["beta"] == "1.0"


def test_pip_over_https(tree: Tree, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with ServerProcess(tree.root, "--certfile", str(cert), "--keyfile", str(key)) as server:
        assert server.url.startswith("https://")
        target = tmp_path / "target"
        command = pip("install", *pip_args(server.url), "--cert", str(cert))
        run([*command, "--target", str(target), "alpha"])
        assert installed_versions(target) == EXPECTED


def test_uv_over_https(tree: Tree, uv: str, tmp_path: Path) -> None:
    ca, cert, key = make_signed_cert(tmp_path)
    with ServerProcess(tree.root, "--certfile", str(cert), "--keyfile", str(key)) as server:
        command = [uv, "pip", "compile", "--no-cache", "--no-config", "--no-python-downloads"]
        command += ["--index-url", server.url, "--python", sys.executable, "-"]
        result = run(command, input="alpha\n", env=clean_env(SSL_CERT_FILE=str(ca)))
        assert pins(result.stdout) == EXPECTED


def test_pip_with_basic_auth(tree: Tree, tmp_path: Path) -> None:
    auth = tmp_path / "users"
    auth.write_text("mirror-user:" + server_module.hash_password("s3cret!", 1000) + "\n")
    with ServerProcess(tree.root, "--auth-file", str(auth)) as server:
        target = tmp_path / "target"
        anonymous = subprocess.run(
            pip("install", *pip_args(server.url), "--target", str(target), "alpha"),
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=600,
        )
        assert anonymous.returncode != 0
        url = server.url.replace("://", "://mirror-user:s3cret%21@")
        run(pip("install", *pip_args(url), "--target", str(target), "alpha"))
        assert installed_versions(target) == EXPECTED
        assert " - mirror-user [" in server.stderr()


def test_old_pip_that_speaks_html_only(tree: Tree, tmp_path: Path) -> None:
    """pip 22.0 (bundled with Python 3.7) asks for text/html only, and knows no PEP 658."""
    python = find_python("3.7")
    if python is None:
        skip_unless_ci("no Python 3.7 on this machine")
    prefix = Path(python).resolve().parent.parent
    bundled = sorted(prefix.glob("lib/python3.7/ensurepip/_bundled/pip-*.whl"))
    if not bundled:
        skip_unless_ci("Python 3.7 has no bundled pip")
    env = clean_env(PYTHONPATH=str(bundled[-1]))
    version = run([python, "-m", "pip", "--version"], env=env).stdout.split()[1]
    assert tuple(int(part) for part in version.split(".")[:2]) < (22, 2), version  # pre-PEP 691
    with ServerProcess(tree.root, python=python) as server:  # and the server on 3.7 too
        target = tmp_path / "target"
        command = [python, "-m", "pip", "install", *pip_args(server.url), "--target", str(target)]
        run([*command, "alpha"], env=env)
        assert installed_versions(target) == EXPECTED
