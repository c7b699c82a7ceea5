"""The live end-to-end test: mirror the shipped example from the real default index,
then install it offline with pip in a fresh virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from support import clean_client_env

from morgan.cli import main
from morgan.config import MirrorConfig
from morgan.errors import PageError, UpstreamError
from morgan.generate import environment_block
from morgan.index import DEFAULT_INDEX_URL, IndexClient

pytestmark = pytest.mark.live
EXAMPLE = Path(__file__).parents[1] / "morgan.ini.example"


def default_index_unreachable() -> str | None:
    """None if the default index gives its page for pip, else why not.

    Asked through morgan's own client, so proxies (HTTPS_PROXY, NO_PROXY...) are used
    exactly as ``morgan mirror`` uses them. A page that comes but cannot be read is
    no reason to skip: the test then fails.
    """
    client = IndexClient(
        DEFAULT_INDEX_URL, connect_timeout=15, read_timeout=15, retries=2, attempts=1
    )
    try:
        client.get_project_page("pip")
    except PageError:
        raise
    except UpstreamError as error:
        return str(error)
    finally:
        client.close()
    return None


def test_mirror_example_and_install_offline(tmp_path: Path) -> None:
    problem = default_index_unreachable()
    if problem is not None:
        pytest.skip(f"the default index {DEFAULT_INDEX_URL} is unreachable: {problem}")

    # The example's environments and requirements, plus one environment for this machine.
    config = tmp_path / "morgan.ini"
    config.write_text(EXAMPLE.read_text() + "\n" + environment_block("this-machine"))
    index = tmp_path / "index"
    assert main(["-q", "-i", str(index), "-c", str(config), "mirror"]) == 0
    assert (index / "server.py").is_file()

    # A re-run finds nothing new: no file is fetched again and nothing is rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in index.rglob("*")}
    assert main(["-q", "-i", str(index), "-c", str(config), "mirror"]) == 0
    assert {p: p.stat().st_mtime_ns for p in index.rglob("*")} == stamps

    requirements = [str(r) for r in MirrorConfig.from_file(str(config)).requirements]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index.as_uri() + "/",
            *requirements,
        ],
        env=clean_client_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    check = subprocess.run(
        [str(python), "-c", "import requests, socks, charset_normalizer, packaging, attrs"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def uv_binary() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed; install the test extras (pip install -e '.[test]')")
    return found


def test_an_sdist_only_project_builds_offline_and_the_lock_installs(tmp_path: Path) -> None:
    """docopt 0.6.2 has only an sdist (a setuptools build): real pip builds it from the tree
    alone, with build isolation on, so its build requirements must have been mirrored.
    Then uv installs this machine's lock file into another fresh venv, building the same
    sdist with the tree as its only index."""
    problem = default_index_unreachable()
    if problem is not None:
        pytest.skip(f"the default index {DEFAULT_INDEX_URL} is unreachable: {problem}")

    config = tmp_path / "morgan.ini"
    config.write_text(environment_block("here") + "\n[requirements]\ndocopt = ==0.6.2\n")
    index = tmp_path / "index"
    assert main(["-q", "-i", str(index), "-c", str(config), "mirror"]) == 0
    assert {p.name for p in (index / "docopt").glob("docopt-*[!h]")} == {"docopt-0.6.2.tar.gz"}
    assert list((index / "setuptools").glob("setuptools-*.whl"))  # its build requirement
    index_url = index.as_uri() + "/"

    built = tmp_path / "built"
    venv.EnvBuilder(with_pip=True).create(built)
    pip = [str(built / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-cache-dir"]
    pip += ["--disable-pip-version-check", "--index-url", index_url, "docopt==0.6.2"]
    install = subprocess.run(
        pip, env=clean_client_env(), capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Building wheel for docopt" in install.stdout, install.stdout
    assert imported_version(built, "docopt") == "0.6.2"

    locked = tmp_path / "locked"
    uv = uv_binary()
    subprocess.run([uv, "venv", "-q", str(locked)], env=clean_client_env(), check=True)
    command = [uv, "pip", "install", "--no-config", "--no-cache", "--index-url", index_url]
    command += ["--preview-features", "pylock", "--python", str(locked / "bin" / "python")]
    command += ["-r", str(index / "pylock.here.toml")]
    lock_install = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=600
    )
    assert lock_install.returncode == 0, lock_install.stdout + lock_install.stderr
    assert imported_version(locked, "docopt") == "0.6.2"


def imported_version(environment: Path, module: str) -> str:
    check = subprocess.run(
        [
            str(environment / "bin" / "python"),
            "-c",
            f"import {module}; print({module}.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    return check.stdout.strip()
