"""``morgan upload``: a mirrored tree pushed into a registry.

End to end against a real pypiserver (with htpasswd auth), then real pip installing
from it; the registries' other answers (retries, "already exists" as PyPI, GitLab and
Nexus say it, redirects, TLS) from a small registry on a real socket; the form parsed
back with the standard library's email parser.
"""

from __future__ import annotations

import contextlib
import email.message
import email.parser
import email.policy
import hashlib
import io
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import venv
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel
from server_support import SERVER_SOURCE, ServerProcess, free_port, installed_versions
from support import clean_client_env, skip_unless_ci
from upstream import FixtureIndex

from morgan import server as server_module
from morgan.cli import main
from morgan.errors import DistributionError
from morgan.generate import environment_block
from morgan.manifest import MANIFEST, ListedFile, Manifest
from morgan.upload import Credentials, Registry, resolve_credentials
from morgan.upload_form import Digests, MultipartForm, form_fields

USER, PASSWORD = "alice", "s3cret-Tok3n"
ALPHA_METADATA = """\
Metadata-Version: 2.1
Name: alpha
Version: 1.0
Summary: The first letter, and a summary with ünïcode
Home-page: https://example.org/alpha
Keywords: first,letter
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: Apache Software License
Project-URL: Source, https://example.org/alpha/src
Requires-Python: >=3.8
Requires-Dist: beta>=1
License-File: LICENSE
Description-Content-Type: text/markdown

# alpha

A test distribution.
"""


# -- the mirrored tree ----------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    index: Path
    #: The manifest of the first mirror run (alpha and what it needs), before gamma came.
    first_manifest: Path

    def manifest(self) -> Manifest:
        return Manifest.load(self.index / MANIFEST)


def _morgan(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


def _mirror(upstream: FixtureIndex, index: Path, requirements: str) -> None:
    index.mkdir(parents=True, exist_ok=True)
    config = environment_block("here") + f"\n[requirements]\n{requirements}\n"
    (index / "morgan.ini").write_text(config, encoding="utf-8")
    code, said = _morgan("-q", "-i", str(index), "-I", upstream.url, "mirror")
    assert code == 0, said


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """alpha (a wheel with full metadata, and an sdist built with flit-core), beta and
    flit-core mirrored; then gamma added by a second run."""
    base = tmp_path_factory.mktemp("upload")
    dists = base / "dists"
    with FixtureIndex("json") as upstream:
        upstream.add(build_wheel(dists, "alpha", "1.0", metadata=ALPHA_METADATA))
        upstream.add(
            build_sdist(dists, "alpha", "1.0", requires=["beta>=1"], build_requires=["flit_core"])
        )
        upstream.add(build_wheel(dists, "beta", "1.0"))
        upstream.add(build_wheel(dists, "flit-core", "3.9.0"))
        upstream.add(build_wheel(dists, "gamma", "2.0"))
        index = base / "index"
        _mirror(upstream, index, "alpha =")
        first = base / "manifest-1.json"
        shutil.copy(index / MANIFEST, first)
        _mirror(upstream, index, "alpha =\ngamma =")
    return Tree(index, first)


ALL_FILES = [
    "alpha/alpha-1.0.tar.gz",
    "alpha/alpha-1.0-py3-none-any.whl",
    "beta/beta-1.0-py3-none-any.whl",
    "flit-core/flit_core-3.9.0-py3-none-any.whl",
    "gamma/gamma-2.0-py3-none-any.whl",
]


def test_the_tree_holds_what_the_tests_expect(tree: Tree) -> None:
    assert sorted(tree.manifest().files) == sorted(ALL_FILES)
    assert sorted(Manifest.load(tree.first_manifest).files) == sorted(ALL_FILES[:4])


# -- a real pypiserver --------------------------------------------------------------


@dataclass
class PypiServer:
    url: str
    packages: Path
    process: subprocess.Popen[bytes]

    def files(self) -> dict[str, str]:
        """Filename → sha256 of what the registry stored."""
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.packages.iterdir())
        }


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[PypiServer]:
    """``pypi-server run`` on a free port, uploads behind htpasswd, no fallback to PyPI."""
    binary = Path(sys.executable).parent / "pypi-server"
    if not binary.exists():
        skip_unless_ci("pypiserver is not installed (pip install -e '.[test]')")
    with warnings.catch_warnings():  # passlib imports crypt, deprecated since 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import (  # type: ignore[import-untyped]  # noqa: PLC0415 - test tool
            HtpasswdFile,
        )

    passwords = HtpasswdFile(str(tmp_path / "htpasswd"), new=True)
    passwords.set_password(USER, PASSWORD)
    passwords.save()
    packages = tmp_path / "packages"
    packages.mkdir()
    port = free_port()
    command = [str(binary), "run", "-p", str(port), "-i", "127.0.0.1"]
    command += ["-P", str(tmp_path / "htpasswd"), "-a", "update", "--disable-fallback"]
    with (tmp_path / "pypiserver.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, str(packages)], stdout=log, stderr=subprocess.STDOUT, env=clean_client_env()
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "pypiserver.log").read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            assert time.monotonic() < deadline, "pypiserver did not start"
            time.sleep(0.05)
        yield PypiServer(f"http://127.0.0.1:{port}/", packages, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _upload(run_morgan: Any, tree: Tree, url: str, *args: str) -> Any:
    return run_morgan("-i", str(tree.index), "upload", "--repository-url", url, *args)


def test_pypiserver_takes_every_file_once(
    run_morgan: Any, tree: Tree, pypiserver: PypiServer
) -> None:
    login = ("-u", USER, "--password", PASSWORD)
    result = _upload(run_morgan, tree, pypiserver.url, *login)
    assert result.code == 0, result
    listed = tree.manifest().files
    assert pypiserver.files() == {p.rsplit("/", 1)[1]: listed[p].sha256 for p in ALL_FILES}
    said = [line.split(" (")[0] for line in result.out.splitlines()[:-1]]
    assert said == [f"uploaded {path}" for path in ALL_FILES]  # sdist first, projects sorted
    assert result.out.splitlines()[-1].startswith("uploaded 5 files (")
    assert "skipped 0 (already there); failed 0" in result.out
    assert PASSWORD not in result.out + result.err

    again = _upload(run_morgan, tree, pypiserver.url, *login)
    assert again.code == 1, again
    assert again.out.count("already on the registry (HTTP 409 Conflict)") == 5
    assert "pass --skip-existing" in again.err
    assert "failed 5:" in again.out

    skipping = _upload(run_morgan, tree, pypiserver.url, *login, "--skip-existing")
    assert skipping.code == 0, skipping
    assert "uploaded 0 files (0 B)" in skipping.out
    assert "skipped 5 (already there); failed 0" in skipping.out


@pytest.mark.parametrize("where", ["options", "url"])
def test_a_wrong_password_stops_at_once_and_is_never_shown(
    run_morgan: Any, tree: Tree, pypiserver: PypiServer, where: str
) -> None:
    secret = "wr0ng-Passw0rd"
    if where == "options":
        result = _upload(run_morgan, tree, pypiserver.url, "-u", USER, "--password", secret)
    else:
        url = pypiserver.url.replace("http://", f"http://{USER}:{secret}@")
        result = _upload(run_morgan, tree, url)
    assert result.code == 1, result
    host = pypiserver.url.split("//")[1].rstrip("/")
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"morgan: {host}: HTTP 403 Forbidden; the credentials")
    assert "check -u/--password, the user:token@ in --repository-url, or ~/.netrc" in result.err
    assert secret not in result.out + result.err
    assert pypiserver.files() == {}


def test_no_credentials_at_all_is_said_so(
    run_morgan: Any, tree: Tree, pypiserver: PypiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETRC", os.devnull)
    monkeypatch.delenv("MORGAN_UPLOAD_PASSWORD", raising=False)
    result = _upload(run_morgan, tree, pypiserver.url)
    assert result.code == 1
    assert "HTTP 401 Unauthorized; the registry wants credentials: pass -u USER" in result.err


def test_since_uploads_only_what_is_new(
    run_morgan: Any, tree: Tree, pypiserver: PypiServer
) -> None:
    since = ("--since", str(tree.first_manifest))
    result = _upload(run_morgan, tree, pypiserver.url, "-u", USER, "--password", PASSWORD, *since)
    assert result.code == 0, result
    assert list(pypiserver.files()) == ["gamma-2.0-py3-none-any.whl"]
    assert "uploaded 1 files" in result.out


@pytest.mark.clients
def test_pip_installs_what_was_uploaded(
    run_morgan: Any, tree: Tree, pypiserver: PypiServer, tmp_path: Path
) -> None:
    result = _upload(run_morgan, tree, pypiserver.url, "-u", USER, "--password", PASSWORD)
    assert result.code == 0, result
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir"]
    install += ["--index-url", f"{pypiserver.url}simple/", "alpha", "gamma"]
    done = subprocess.run(
        install, capture_output=True, text=True, env=clean_client_env(), timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = next(environment.glob("lib/python*/site-packages"))
    assert {"alpha": "1.0", "beta": "1.0", "gamma": "2.0"}.items() <= installed_versions(
        site
    ).items()


def test_morgans_own_server_takes_the_upload(
    run_morgan: Any, tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """server.py --upload speaks the same API: one tree is loaded into another's server."""
    users = tmp_path / "users"
    users.write_text(f"{USER}:{server_module.hash_password(PASSWORD, 1000)}\n")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("MORGAN_UPLOAD_PASSWORD", PASSWORD)
    upload = ("--upload", "--auth-file", str(users), "--quiet")
    with ServerProcess(other, *upload, script=SERVER_SOURCE) as server:
        url = f"http://127.0.0.1:{server.port}/"
        first = _upload(run_morgan, tree, url, "-u", USER)
        again = _upload(run_morgan, tree, url, "-u", USER, "--skip-existing")
    assert first.code == 0, first
    for path in ALL_FILES:
        assert (other / path).read_bytes() == (tree.index / path).read_bytes()
    assert again.code == 0, again
    assert "skipped 5 (already there); failed 0" in again.out


# -- a registry that answers as told --------------------------------------------------


@dataclass
class Received:
    path: str
    #: The request's headers, looked up by any case.
    headers: email.message.Message
    body: bytes
    fields: list[tuple[str, str]]
    filename: str
    content: bytes


Answer = tuple[int, dict[str, str], bytes]


def parse_form(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], str, bytes]:
    """The fields, the file's name and its bytes, read back by the standard library."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert message.is_multipart()
    fields, filename, content = [], "", b""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if part.get_filename() is not None:
            assert name == "content"
            filename, content = str(part.get_filename()), payload
        else:
            fields.append((str(name), payload.decode("utf-8")))
    return fields, filename, content


@dataclass
class FakeRegistry:
    """Answers each upload with ``answer(received, attempt)`` (attempt: 1 for the first
    request for that file); 200 by default. Records what it was sent."""

    answer: Callable[[Received, int], Answer] = lambda received, attempt: (200, {}, b"")
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)

    def __enter__(self) -> FakeRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fields, filename, content = parse_form(self.headers["Content-Type"], body)
                got = Received(self.path, self.headers, body, fields, filename, content)
                registry.received.append(got)
                attempt = sum(r.filename == filename for r in registry.received)
                status, headers, answer = registry.answer(got, attempt)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that refused our certificate: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}/legacy/"

    def filenames(self) -> list[str]:
        return [r.filename for r in self.received]


def _to(registry: FakeRegistry, run_morgan: Any, tree: Tree | Path, *args: str) -> Any:
    index = tree.index if isinstance(tree, Tree) else tree
    login = ("-u", USER, "--password", PASSWORD)
    return run_morgan("-i", str(index), "upload", "--repository-url", registry.url, *login, *args)


def test_the_form_has_what_twine_sends(run_morgan: Any, tree: Tree) -> None:
    with FakeRegistry() as registry:
        result = _to(registry, run_morgan, tree)
    assert result.code == 0, result
    assert registry.filenames() == [path.rsplit("/", 1)[1] for path in ALL_FILES]
    listed = tree.manifest().files
    for received, path in zip(registry.received, ALL_FILES):
        data = (tree.index / path).read_bytes()
        assert received.content == data
        # an exact length, never chunked: many registries refuse chunked uploads
        assert int(received.headers["Content-Length"]) == len(received.body)
        assert "Transfer-Encoding" not in received.headers
        assert received.headers["User-Agent"].startswith("morgan/")
        fields = dict(received.fields)
        assert fields[":action"] == "file_upload"
        assert fields["protocol_version"] == "1"
        assert fields["sha256_digest"] == listed[path].sha256
        assert fields["md5_digest"] == hashlib.md5(data).hexdigest()
        assert fields["blake2_256_digest"] == hashlib.blake2b(data, digest_size=32).hexdigest()
        assert fields["version"] == listed[path].version
    wheel, sdist = dict(registry.received[1].fields), dict(registry.received[0].fields)
    assert (wheel["filetype"], wheel["pyversion"]) == ("bdist_wheel", "py3")
    assert (sdist["filetype"], sdist["pyversion"]) == ("sdist", "source")
    assert sdist["name"] == "alpha" and sdist["metadata_version"] == "2.1"
    assert [v for k, v in registry.received[0].fields if k == "requires_dist"] == ["beta>=1"]
    pairs = registry.received[1].fields
    fields = dict(pairs)
    assert fields["summary"] == "The first letter, and a summary with ünïcode"
    assert fields["requires_python"] == ">=3.8"
    assert fields["keywords"] == "first, letter"
    assert fields["home_page"] == "https://example.org/alpha"
    assert fields["description_content_type"] == "text/markdown"
    assert fields["description"].startswith("# alpha")
    assert [v for k, v in pairs if k == "classifiers"] == [
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
    ]
    assert [v for k, v in pairs if k == "project_urls"] == ["Source, https://example.org/alpha/src"]
    assert "license_file" not in fields  # License-File is 2.4's; PyPI refuses it before


def test_basic_auth_is_sent_to_the_registry(
    run_morgan: Any, tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login netuser password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with FakeRegistry() as registry:
        result = run_morgan(
            "-i", str(tree.index), "upload", "--repository-url", registry.url, "--since",
            str(tree.first_manifest),
        )  # fmt: skip
    assert result.code == 0, result
    expected = Credentials("netuser", PASSWORD).authorization()
    assert [r.headers["Authorization"] for r in registry.received] == [expected]


def test_a_proxy_from_the_environment_carries_the_upload(
    run_morgan: Any, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    with FakeRegistry() as proxy:
        monkeypatch.setenv("http_proxy", f"http://puser:ppass@{proxy.host}")
        result = run_morgan(
            "-i", str(tree.index), "upload", "--since", str(tree.first_manifest),
            "--repository-url", f"http://{USER}:{PASSWORD}@registry.example/legacy/",
        )  # fmt: skip
    assert result.code == 0, result
    (received,) = proxy.received
    assert received.path == "http://registry.example/legacy/"
    assert received.headers["Proxy-Authorization"] == Credentials("puser", "ppass").authorization()
    assert received.headers["Authorization"] == Credentials(USER, PASSWORD).authorization()


def test_a_server_error_is_retried_and_the_file_sent_whole_again(
    run_morgan: Any, tree: Tree
) -> None:
    def answer(received: Received, attempt: int) -> Answer:
        return (500, {}, b"boom") if attempt == 1 else (200, {}, b"")

    with FakeRegistry(answer) as registry:
        result = _to(registry, run_morgan, tree, "--since", str(tree.first_manifest))
    assert result.code == 0, result
    assert registry.filenames() == ["gamma-2.0-py3-none-any.whl"] * 2
    first, second = registry.received
    assert first.content == second.content == (tree.index / ALL_FILES[-1]).read_bytes()
    assert "attempt 1 of 4 failed (HTTP 500 Internal Server Error)" in result.out
    assert "uploaded 1 files" in result.out


def test_already_there_after_a_retry_counts_as_uploaded(run_morgan: Any, tree: Tree) -> None:
    def answer(received: Received, attempt: int) -> Answer:
        return (503, {}, b"") if attempt == 1 else (409, {}, b"exists")

    with FakeRegistry(answer) as registry:
        result = _to(registry, run_morgan, tree, "--since", str(tree.first_manifest))
    assert result.code == 0, result
    assert "uploaded gamma/gamma-2.0-py3-none-any.whl" in result.out
    assert "there after a retry" in result.out


def test_a_registry_that_keeps_failing_fails_the_file_and_the_run_goes_on(
    run_morgan: Any, tree: Tree
) -> None:
    def answer(received: Received, attempt: int) -> Answer:
        return (503, {}, b"") if received.filename.startswith("beta") else (200, {}, b"")

    with FakeRegistry(answer) as registry:
        result = _to(registry, run_morgan, tree)
    assert result.code == 1, result
    assert registry.filenames().count("beta-1.0-py3-none-any.whl") == 4
    assert (
        "error: beta/beta-1.0-py3-none-any.whl: HTTP 503 Service Unavailable after 4 attempts"
        in result.out
    )
    assert "uploaded 4 files" in result.out


EXISTS = {
    "pypiserver": (409, b"Package 'x' already exists!"),
    "pypi": (
        400,
        b"<html><title>400 File already exists. See https://pypi.org/help/</title></html>",
    ),
    "gitlab": (400, b'{"message":"Validation failed: File name has already been taken"}'),
    "gitlab-duplicates-off": (
        400,
        b'{"message":"400 Bad request - Duplicate package is not allowed"}',
    ),
    "nexus-orientdb": (400, b"<div>Repository does not allow updating assets: pypi-hosted</div>"),
    "nexus-sql": (
        400,
        b"pypi-hosted/packages/gamma/2.0/gamma-2.0-py3-none-any.whl cannot be updated",
    ),
}


@pytest.mark.parametrize("registry_kind", sorted(EXISTS))
@pytest.mark.parametrize("skip", [True, False])
def test_already_exists_as_each_registry_says_it(
    run_morgan: Any, tree: Tree, registry_kind: str, skip: bool
) -> None:
    status, body = EXISTS[registry_kind]
    with FakeRegistry(lambda received, attempt: (status, {}, body)) as registry:
        args = ["--since", str(tree.first_manifest)] + (["--skip-existing"] if skip else [])
        result = _to(registry, run_morgan, tree, *args)
    assert len(registry.received) == 1
    if skip:
        assert result.code == 0, result
        assert "skipped gamma/gamma-2.0-py3-none-any.whl" in result.out
        assert "skipped 1 (already there); failed 0" in result.out
    else:
        assert result.code == 1, result
        assert "already on the registry" in result.out
        assert "pass --skip-existing to count such files as done" in result.out


def test_a_different_file_under_the_same_name_is_an_error_even_when_skipping(
    run_morgan: Any, tree: Tree
) -> None:
    body = b"File already exists ('gamma-2.0-py3-none-any.whl', with blake2_256 hash '" + b"a" * 64
    with FakeRegistry(lambda received, attempt: (400, {}, body + b"')")) as registry:
        result = _to(
            registry, run_morgan, tree, "--since", str(tree.first_manifest), "--skip-existing"
        )
    assert result.code == 1, result
    assert "the registry has another file under this name" in result.out


def test_a_refusal_is_said_in_one_line_and_the_run_goes_on(run_morgan: Any, tree: Tree) -> None:
    page = (
        b"<html><body><h1>400 Bad Request</h1>\n<p>Invalid value for classifiers.</p></body></html>"
    )

    def answer(received: Received, attempt: int) -> Answer:
        return (400, {}, page) if received.filename.startswith("alpha-1.0-") else (200, {}, b"")

    with FakeRegistry(answer) as registry:
        result = _to(registry, run_morgan, tree)
    assert result.code == 1, result
    assert len(registry.received) == 5
    assert (
        "  error: alpha/alpha-1.0-py3-none-any.whl: HTTP 400 Bad Request: 400 Bad Request "
        "Invalid value for classifiers." in result.out
    )


def test_a_redirect_stops_the_run(run_morgan: Any, tree: Tree) -> None:
    moved = {"Location": "https://registry.example/legacy/"}
    with FakeRegistry(lambda received, attempt: (301, moved, b"")) as registry:
        result = _to(registry, run_morgan, tree)
    assert result.code == 1
    assert len(registry.received) == 1
    assert result.err == (
        f"morgan: {registry.host}: HTTP 301 Moved Permanently sends the upload to "
        "https://registry.example/legacy/; pass that address as --repository-url "
        "(an upload is never redirected)\n"
    )


def test_an_unreachable_registry_stops_the_run(run_morgan: Any, tree: Tree) -> None:
    port = free_port()
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/"
    result = run_morgan("-i", str(tree.index), "upload", "--repository-url", url)
    assert result.code == 1
    assert result.err.startswith(f"morgan: 127.0.0.1:{port}: cannot reach the registry (")
    assert result.err.count("\n") == 1
    assert PASSWORD not in result.out + result.err


def test_tls_a_certificate_not_trusted_is_one_line_and_cert_fixes_it(
    run_morgan: Any, tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trustme = pytest.importorskip("trustme")
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    since = ("--since", str(tree.first_manifest))
    with FakeRegistry(tls=context) as registry:
        refused = _to(registry, run_morgan, tree, *since)
        assert refused.code == 1
        assert refused.err.count("\n") == 1, refused.err
        assert refused.err.startswith(f"morgan: {registry.host}: TLS: the certificate of")
        assert "--cert CA_BUNDLE" in refused.err
        assert registry.received == []
        trusted = _to(registry, run_morgan, tree, *since, "--cert", str(bundle))
    assert trusted.code == 0, trusted
    assert registry.filenames() == ["gamma-2.0-py3-none-any.whl"]


# -- what is never sent -------------------------------------------------------------


def test_a_corrupt_file_is_never_sent(run_morgan: Any, tree: Tree, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(tree.index, index)
    beta = index / "beta" / "beta-1.0-py3-none-any.whl"
    data = bytearray(beta.read_bytes())
    data[len(data) // 2] ^= 0xFF
    beta.write_bytes(bytes(data))
    with FakeRegistry() as registry:
        result = _to(registry, run_morgan, index)
    assert result.code == 1, result
    assert "beta-1.0-py3-none-any.whl" not in registry.filenames()
    assert len(registry.received) == 4
    assert "error: beta/beta-1.0-py3-none-any.whl: corrupt: sha256 is " in result.out
    assert "not sent (run `morgan verify`)" in result.out


def test_a_missing_file_is_an_error_and_the_dry_run_says_so(
    run_morgan: Any, tree: Tree, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(tree.index, index)
    (index / "gamma" / "gamma-2.0-py3-none-any.whl").unlink()
    with FakeRegistry() as registry:
        dry = _to(registry, run_morgan, index, "--dry-run")
        result = _to(registry, run_morgan, index)
    assert dry.code == result.code == 1
    assert (
        "  error: gamma/gamma-2.0-py3-none-any.whl: listed in manifest.json but missing" in dry.out
    )
    assert (
        "error: gamma/gamma-2.0-py3-none-any.whl: listed in manifest.json but missing" in result.out
    )
    assert len(registry.received) == 4


def test_the_dry_run_lists_in_order_and_sends_nothing(run_morgan: Any, tree: Tree) -> None:
    with FakeRegistry() as registry:
        result = run_morgan(
            "upload", "--dry-run", "-i", str(tree.index), "--repository-url",
            registry.url.replace("http://", f"http://{USER}:{PASSWORD}@"),
        )  # fmt: skip
    assert result.code == 0, result
    assert registry.received == []
    lines = result.out.splitlines()
    assert lines[0] == f"dry run: nothing sent to {registry.url}"
    assert [line.split(" (")[0] for line in lines[1:-1]] == [
        f"  would upload {path}" for path in ALL_FILES
    ]
    assert lines[-1].startswith("would upload 5 files (")
    assert PASSWORD not in result.out + result.err


def test_without_a_manifest_it_says_to_mirror_first(run_morgan: Any, tmp_path: Path) -> None:
    result = run_morgan("-i", str(tmp_path), "upload", "--repository-url", "http://127.0.0.1:9/")
    assert result.code == 1
    assert result.err == (
        f"morgan: {tmp_path / MANIFEST}: no manifest here; run `morgan mirror` to write one "
        "(or pass -i INDEX)\n"
    )


def test_usage_errors(run_morgan: Any, tree: Tree, tmp_path: Path) -> None:
    no_url = run_morgan("-i", str(tree.index), "upload")
    assert (no_url.code, no_url.err) == (
        2,
        "morgan: upload needs --repository-url URL (the registry's upload address)\n",
    )
    since = run_morgan(
        "-i", str(tree.index), "upload", "--repository-url", "http://127.0.0.1:9/", "--since",
        str(tmp_path / "nope.json"),
    )  # fmt: skip
    assert since.code == 2 and "no such manifest file" in since.err
    for url in ("ftp://u:pw@h/", "https://u:pw@h:99999/", "https://u:pw@h:x/", "http://[::1"):
        bad = run_morgan("-i", str(tree.index), "upload", "--repository-url", url)
        assert bad.code == 2 and "is not an http(s) URL" in bad.err and "pw" not in bad.err


def test_a_password_given_as_twine_would_is_not_echoed(
    capsys: pytest.CaptureFixture[str], tree: Tree
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["-i", str(tree.index), "upload", "--repository-url", "http://h/", "-p", "T0KEN"])
    assert stopped.value.code == 2
    said = capsys.readouterr()
    assert "T0KEN" not in said.out + said.err
    assert "upload takes its password as --password" in said.err


# -- the form, and credentials, as units ------------------------------------------------


def test_the_multipart_body_parses_back_exactly(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(2_500_000) + b"\r\n--\r\n\n\r"  # more than one chunk
    file = tmp_path / "x-1.0-py3-none-any.whl"
    file.write_bytes(data)
    fields = [
        (":action", "file_upload"),
        ("summary", 'ünïcode, "quoted" and a\r\nsecond line'),
        ("classifiers", "A :: B"),
        ("classifiers", "C :: D"),
        ("description", ""),
    ]
    form = MultipartForm.build(fields, file.name, len(data))
    with file.open("rb") as stream:
        chunks = list(form.body(stream, file.name))
    body = b"".join(chunks)
    assert len(body) == form.length
    # streamed: the file goes a megabyte at a time, never whole
    assert chunks[0] == form.head and chunks[-1] == form.tail
    assert max(len(chunk) for chunk in chunks[1:-1]) == 1 << 20
    parsed_fields, filename, content = parse_form(form.content_type, body)
    assert parsed_fields == fields
    assert filename == file.name
    assert content == data


def test_the_body_refuses_a_file_that_shrank(tmp_path: Path) -> None:
    file = tmp_path / "x-1.0.tar.gz"
    file.write_bytes(b"short")
    form = MultipartForm.build([], file.name, 100)
    with file.open("rb") as stream, pytest.raises(DistributionError, match="changed while"):
        b"".join(form.body(stream, file.name))


def test_form_fields_without_metadata_still_name_the_file() -> None:
    listed = ListedFile("old/old-0.1.zip", "0" * 64, 10, project="old", version="0.1")
    fields = dict(form_fields(listed, None, Digests("0" * 64)))
    assert fields == {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "1.0",
        "name": "old",
        "version": "0.1",
        "filetype": "sdist",
        "pyversion": "source",
        "sha256_digest": "0" * 64,
    }


def test_the_python_tag_of_a_wheel_is_its_pyversion() -> None:
    listed = ListedFile("n/n-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "0" * 64, 1)
    assert (
        dict(form_fields(listed, b"Name: n\nVersion: 1.0\n", Digests("0" * 64)))["pyversion"]
        == "cp312"
    )


NETRC = "machine registry.example login netuser password netpass\n"


@pytest.mark.parametrize(
    ("url", "username", "password", "environ", "expected"),
    [
        # options win over the URL, the URL over ~/.netrc, each part on its own
        ("https://registry.example/up/", None, None, {}, ("netuser", "netpass", "~/.netrc")),
        ("https://u:p@registry.example/up/", None, None, {}, ("u", "p", "the URL")),
        ("https://u:p@registry.example/up/", "me", "pw", {}, ("me", "pw", "-u/--password")),
        ("https://u@registry.example/up/", None, "pw", {},
         ("u", "pw", "-u/--password and the URL")),
        ("https://registry.example/up/", "me", "pw", {}, ("me", "pw", "-u/--password")),
        # the password from the environment; a password alone is a token
        ("https://registry.example/up/", "me", None, {"MORGAN_UPLOAD_PASSWORD": "env"},
         ("me", "env", "-u/--password and MORGAN_UPLOAD_PASSWORD")),
        ("https://registry.example/up/", None, "tok", {}, ("__token__", "tok", "-u/--password")),
        # an entry for another login is not used; a user alone goes without a password
        ("https://registry.example/up/", "other", None, {}, ("other", "", "-u/--password")),
        ("https://registry.example/up/", "netuser", None, {},
         ("netuser", "netpass", "-u/--password and ~/.netrc")),
        ("https://elsewhere.example/up/", None, None, {}, None),
    ],
)  # fmt: skip
def test_credentials_come_from_options_then_the_url_then_netrc(  # noqa: PLR0917 - the table
    tmp_path: Path,
    url: str,
    username: str | None,
    password: str | None,
    environ: dict[str, str],
    expected: tuple[str, str, str] | None,
) -> None:
    (tmp_path / "netrc").write_text(NETRC)
    bare, found = resolve_credentials(
        url, username, password, environ=environ, netrc_file=tmp_path / "netrc"
    )
    assert bare == url.replace("u:p@", "").replace("u@", "")
    assert (None if found is None else (found.username, found.password, found.source)) == expected
    assert "password=" not in repr(found)


def test_a_registry_never_holds_a_url_with_credentials() -> None:
    with pytest.raises(ValueError, match="without its credentials"):
        Registry("https://u:p@registry.example/")


def test_outcome_order_is_by_project_then_version(tree: Tree) -> None:
    from morgan.upload import files_to_upload  # noqa: PLC0415

    assert [listed.path for listed in files_to_upload(tree.index)] == ALL_FILES
    assert [f.path for f in files_to_upload(tree.index, tree.first_manifest)] == ALL_FILES[-1:]
    assert json.loads((tree.index / MANIFEST).read_bytes())["files"]  # the tree is untouched
