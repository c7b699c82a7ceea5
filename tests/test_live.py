"""The live end-to-end test: mirror the shipped example from the real default index,
then install it offline with pip in a fresh virtual environment."""

from __future__ import annotations

import subprocess
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
