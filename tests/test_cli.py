"""The command line: commands, option order, one-line errors and exit statuses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from builders import build_wheel
from packaging.tags import sys_tags

from morgan import __version__
from morgan.config import MirrorConfig
from morgan.environments import Environment


def test_version(run_morgan) -> None:
    result = run_morgan("version")
    assert result.code == 0
    assert result.out.strip() == f"morgan {__version__}"


def test_generate_env_round_trips_and_matches_this_interpreter(run_morgan, tmp_path) -> None:
    result = run_morgan("generate_env", "--env", "here")
    assert result.code == 0
    config = tmp_path / "morgan.ini"
    config.write_text(result.out + "\n[requirements]\nx =\n")
    (env,) = MirrorConfig.from_file(str(config)).environments
    assert env.name == "here"
    assert env.markers["python_full_version"] == ".".join(map(str, sys.version_info[:3]))
    # the first tag this interpreter supports is the first the generated env supports
    assert next(iter(sys_tags())) in set(env.tags)


def test_generate_env_name_before_the_command(run_morgan) -> None:
    result = run_morgan("-e", "early", "generate_env")
    assert result.out.startswith("[env.early]\n")


@pytest.mark.parametrize("mode", [">=", "==", "<="])
def test_generate_reqs(run_morgan, tmp_path: Path, mode: str) -> None:
    result = run_morgan("generate_reqs", "--mode", mode)
    assert result.code == 0
    assert result.out.startswith("[requirements]\n")
    assert f"packaging = {mode}" in result.out
    config = tmp_path / "morgan.ini"
    config.write_text("[env.a]\npython_version = 3.12\n\n" + result.out)
    assert MirrorConfig.from_file(str(config)).requirements


BROKEN_CONFIGS = [
    ("", "no [env.NAME] section"),
    ("[env.a]\nsys_platform = linux\n[requirements]\nx =\n", "[env.a]: missing python_version"),
    ("[env.a]\npython_version = 3.12\nfavourite_colour = blue\n[requirements]\n",
     "[env.a] favourite_colour: unknown key"),
    ("[env.a]\npython_version = three\n[requirements]\n", "[env.a] python_version: 'three'"),
    ("[env.a]\npython_version = 3.12\n", "no [requirements] section"),
    ("[env.a]\npython_version = 3.12\n[requirements]\nrequests = >>2\n",
     "[requirements] requests: '>>2' is not a valid PEP 508 specifier"),
    ("[env.a]\npython_version = 3.12\nglibc_version = new\n[requirements]\n",
     "[env.a] glibc_version: 'new' is not a MAJOR.MINOR level"),
    ("not an ini file\n", "line 1: 'not an ini file' comes before any [section]"),
    ("[env.a]\npython_version = 3.12\n[requirements]\nrequests\n",
     "line 4: 'requests' is not 'name = value'"),
    ("[env.a]\npython_version = 3.12\n[requirements]\nrequests = @ https://x.invalid/r.whl\n",
     "direct URL requirements cannot be mirrored"),
    ("[env.]\npython_version = 3.12\n[requirements]\n", "environment name is empty"),
    ("[env.a]\npython_version = 3.12\n[requirements]\nrequests = >=2; python_version >\n",
     "is not a valid PEP 508 specifier"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BROKEN_CONFIGS)
def test_broken_config_is_one_line_and_exit_2(
    run_morgan, tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "morgan.ini"
    config.write_text(text)
    result = run_morgan("mirror", "-i", str(tmp_path / "index"), "-c", str(config))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"morgan: {config}")
    assert message in lines[0]
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())


def test_config_that_is_not_utf8(run_morgan, tmp_path: Path) -> None:
    config = tmp_path / "morgan.ini"
    config.write_bytes(b"[env.a]\npython_version = 3.12\n[requirements]\nr\xe9quests =\n")
    result = run_morgan("mirror", "-i", str(tmp_path / "index"), "-c", str(config))
    assert result.code == 2
    assert result.err == f"morgan: {config}: not UTF-8 text\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["-j", "0"], "argument -j/--jobs: must be a whole number from 1 to 64"),
        (["--timeout", "-1"], "argument --timeout: must be a number of seconds"),
        (["--timeout", "soon"], "argument --timeout: must be a number of seconds"),
    ],
)
def test_bad_option_values_are_usage_errors(
    run_morgan, tmp_path: Path, option: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        run_morgan("-i", str(tmp_path), "mirror", *option)
    assert caught.value.code == 2


def test_missing_config_names_the_fix(run_morgan, tmp_path: Path) -> None:
    result = run_morgan("-i", str(tmp_path), "mirror")
    assert result.code == 2
    assert "morgan.ini: no such configuration file" in result.err
    assert "-c/--config" in result.err


def test_bad_index_url_is_a_usage_error(run_morgan, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_morgan("-I", "ftp://example.invalid/", "mirror")
    assert exit_info.value.code == 2


def test_credentials_in_the_index_url_are_never_printed(run_morgan, tmp_path: Path) -> None:
    config = tmp_path / "morgan.ini"
    config.write_text("[env.a]\npython_version = 3.12\n[requirements]\nthing =\n")
    # nothing listens on port 9 of loopback: the run fails, and says so without the token
    result = run_morgan(
        "-i", str(tmp_path), "-I", "http://user:s3cret@127.0.0.1:9/simple/", "mirror",
        "--skip-server-copy",
    )  # fmt: skip
    assert result.code == 1
    assert "s3cret" not in result.out + result.err
    assert "http://127.0.0.1:9/simple/thing/" in result.err
    assert "Connection refused" in result.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_the_server_on_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "index" / "demo"
    build_wheel(folder, "demo", "1.0")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "morgan", "serve", "-i", str(tmp_path / "index"),
         "-H", "127.0.0.1", "-p", str(port), "--quiet",
         "--threads", "2", "--max-connections", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/simple/demo/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        for _ in range(100):
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    page = json.load(response)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("morgan serve did not answer")
        assert [f["filename"] for f in page["files"]] == ["demo-1.0-py3-none-any.whl"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


def test_environment_from_generated_block_has_no_foreign_tags(run_morgan, tmp_path) -> None:
    result = run_morgan("generate_env")
    config = tmp_path / "morgan.ini"
    config.write_text(result.out + "[requirements]\n")
    (env,) = MirrorConfig.from_file(str(config)).environments
    assert isinstance(env, Environment)
    assert not any(tag.platform.startswith(("win", "macosx")) for tag in env.tags)


def test_serve_passes_upload_options_to_the_server(run_morgan, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    index = str(tmp_path)
    result = run_morgan("serve", "-i", index, "--upload", "--max-upload-size", "10M")
    assert result.code == 2
    assert "--upload needs --auth-file" in result.err
    result = run_morgan("serve", "-i", index, "--max-upload-size", "10M")
    assert result.code == 2
    assert "--max-upload-size" in result.err
