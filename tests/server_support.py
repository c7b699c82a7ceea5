"""Helpers for the tests of morgan/server.py: tiny distributions, a mirror tree, a running server.

Everything here is made on the fly in a temporary folder; nothing depends on the
mirrorer, so that the server is tested against the tree contract alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import builders
import pytest
from support import skip_unless_ci

SERVER_SOURCE = Path(__file__).resolve().parent.parent / "morgan" / "server.py"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


# ---------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
) -> tuple[Path, bytes]:
    """A small installable wheel; returns its path and its METADATA bytes."""
    path = builders.build_wheel(
        folder, name, version, tags=tag, requires=requires_dist, requires_python=requires_python
    )
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return path, archive.read(member)


def build_sdist(folder: Path, name: str, version: str) -> Path:
    """A small sdist; never built by the tests, only listed and fetched."""
    return builders.build_sdist(folder, name, version)


# ---------------------------------------------------------------------------
# The mirror tree
# ---------------------------------------------------------------------------


@dataclass
class Dist:
    """One distribution file placed in the tree, with what its pages should say."""

    path: Path
    metadata: bytes | None = None
    requires_python: str | None = None
    yanked: bool | str = False
    upload_time: str | None = None

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return sha256_hex(self.path.read_bytes())


@dataclass
class Tree:
    root: Path
    outside: Path
    dists: dict[str, list[Dist]] = field(default_factory=dict)

    def project(self, name: str) -> list[Dist]:
        return self.dists[name]

    def dist(self, filename: str) -> Dist:
        for dists in self.dists.values():
            for dist in dists:
                if dist.filename == filename:
                    return dist
        raise KeyError(filename)


def write_sidecars(dist: Dist, *, metadata: bool = True) -> None:
    """Morgan's sidecars: ``<file>.hash`` and, for wheels, ``<file>.metadata``."""
    Path(f"{dist.path}.hash").write_text(f"sha256={dist.sha256}")
    if metadata and dist.metadata is not None:
        Path(f"{dist.path}.metadata").write_bytes(dist.metadata)


def write_project_json(folder: Path, dists: Iterable[Dist]) -> None:
    """The project's index.json as the mirrorer writes it (PEP 691 + PEP 700, api 1.1)."""
    files = []
    for dist in sorted(dists, key=lambda d: d.filename):
        entry: dict[str, Any] = {
            "filename": dist.filename,
            "url": dist.filename,
            "hashes": {"sha256": dist.sha256},
            "requires-python": dist.requires_python,
            "yanked": dist.yanked,
            "size": dist.path.stat().st_size,
            "core-metadata": False,
        }
        if dist.metadata is not None:
            digest = {"sha256": sha256_hex(dist.metadata)}
            entry["core-metadata"] = digest
            entry["dist-info-metadata"] = digest
        if dist.upload_time:
            entry["upload-time"] = dist.upload_time
        files.append(entry)
    document = {
        "meta": {"api-version": "1.1"},
        "name": folder.name,
        "versions": sorted({d.filename.split("-")[1] for d in dists}),
        "files": files,
    }
    (folder / "index.json").write_text(json.dumps(document, indent=1))


def add_wheel(
    tree: Tree,
    project: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    wheel_requires_python: str | None = None,
    listed_requires_python: str | None = None,
    requires_dist: Iterable[str] = (),
    yanked: bool | str = False,
    upload_time: str | None = None,
) -> Dist:
    path, metadata = build_wheel(
        tree.root / project,
        project,
        version,
        tag=tag,
        requires_python=wheel_requires_python,
        requires_dist=requires_dist,
    )
    dist = Dist(
        path,
        metadata,
        listed_requires_python or wheel_requires_python,
        yanked,
        upload_time,
    )
    tree.dists.setdefault(project, []).append(dist)
    return dist


def make_tree(base: Path) -> Tree:
    """The standard test mirror.

    - alpha 1.0 (wheel and sdist) needs beta>=1.0;
    - beta 1.0 (wheel, sdist; uploaded 2020-01), 1.2 (2020-09), 1.5 (yanked),
      2.0 (requires-python >=4 in index.json only, so only the server can tell pip
      to skip it): installers must pick 1.2, or 1.0 when excluding newer than 2020-03;
    - gamma: platform wheels for cp39/cp311 manylinux and win, 2.0 needing Python
      >=3.10 (index.json only); gamma needs beta;
    - zope-interface: a folder whose wheel's name is not normalized;
    - legacy: a Morgan 0.15 folder (files and sidecars only, no pages);
    - things that must never be served or listed.
    """
    root = base / "index"
    outside = base / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    tree = Tree(root, outside)
    early = "2020-01-01T00:00:00Z"
    add_wheel(tree, "alpha", "1.0", requires_dist=["beta>=1.0"], upload_time=early)
    tree.dists["alpha"].append(Dist(build_sdist(root / "alpha", "alpha", "1.0")))
    add_wheel(tree, "beta", "1.0", upload_time=early)
    tree.dists["beta"].append(Dist(build_sdist(root / "beta", "beta", "1.0"), upload_time=early))
    add_wheel(tree, "beta", "1.2", upload_time="2020-09-01T00:00:00Z")
    add_wheel(tree, "beta", "1.5", yanked="broken release", upload_time="2020-06-01T00:00:00Z")
    add_wheel(tree, "beta", "2.0", listed_requires_python=">=4", upload_time="2021-01-01T00:00:00Z")
    for version, tag, listed in [
        ("1.0", "cp39-cp39-manylinux2014_x86_64", None),
        ("1.0", "cp39-cp39-win_amd64", None),
        ("1.0", "cp311-cp311-manylinux2014_x86_64", None),
        ("2.0", "cp39-cp39-manylinux2014_x86_64", ">=3.10"),
        ("2.0", "cp311-cp311-manylinux2014_x86_64", ">=3.10"),
    ]:
        add_wheel(
            tree,
            "gamma",
            version,
            tag=tag,
            requires_dist=["beta"],
            listed_requires_python=listed,
            upload_time=early,
        )
    add_wheel(tree, "zope-interface", "5.0", wheel_requires_python=">=3.7")
    # zope-interface's wheel is named zope_interface-...: fine, that is how wheels are named.
    for project in ("alpha", "beta", "gamma", "zope-interface"):
        for dist in tree.dists[project]:
            write_sidecars(dist)
        write_project_json(root / project, tree.dists[project])
        (root / project / "index.html").write_text("<html>static twin, not served raw</html>")

    # Morgan 0.15: sidecars only.
    legacy = add_wheel(tree, "legacy", "0.1", wheel_requires_python=">=3.6")
    write_sidecars(legacy)
    legacy_sdist = Dist(build_sdist(root / "legacy", "legacy", "0.1"))
    write_sidecars(legacy_sdist)
    tree.dists["legacy"].append(legacy_sdist)

    # Things that are not projects, or not public.
    (root / "morgan.ini").write_text("[env.default]\npassword = hunter2\n")
    shutil.copy(SERVER_SOURCE, root / "server.py")
    (root / "index.html").write_text('<a href="ghost/">ghost</a>')
    stale = {"meta": {"api-version": "1.1"}, "projects": [{"name": "ghost"}]}
    (root / "index.json").write_text(json.dumps(stale))
    build_wheel(root / ".hidden", "hidden", "1.0")
    build_wheel(root / "NotNormalized", "notnormalized", "1.0")
    build_wheel(root / "not_normal", "not-normal", "1.0")
    (root / "empty-project").mkdir()
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("not a project")
    (root / "alpha" / ".alpha-1.0-py3-none-any.whl.x7k2.part").write_bytes(b"PARTIAL DOWNLOAD")
    (root / "alpha" / "notes.txt").write_text("private notes")
    (outside / "secret.txt").write_text("outside secret")
    build_wheel(outside, "stolen", "1.0")
    (root / "alpha" / "stolen-1.0-py3-none-any.whl").symlink_to(
        outside / "stolen-1.0-py3-none-any.whl"
    )
    (root / "alpha" / "secret-1.0.tar.gz").symlink_to(outside / "secret.txt")
    (root / "escaped").symlink_to(outside, target_is_directory=True)
    # A symlink that stays inside the tree is fine (a mirror may share files).
    (root / "alpha" / "alpha-0.9.tar.gz").symlink_to(root / "beta" / "beta-1.0.tar.gz")
    tree.dists["alpha"].append(Dist(root / "alpha" / "alpha-0.9.tar.gz"))
    return tree


def require_openssl() -> None:
    if shutil.which("openssl") is None:
        skip_unless_ci("the openssl command is not installed")


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with openssl."""
    require_openssl()
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_signed_cert(folder: Path) -> tuple[Path, Path, Path]:
    """(CA, certificate, key): a server certificate signed by a throwaway CA.

    Clients built on rustls (uv) refuse a self-signed CA certificate as a server's
    own, so they need this more usual arrangement.
    """
    require_openssl()
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key, request = folder / "server.pem", folder / "server-key.pem", folder / "server.csr"
    extensions = folder / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    days = ["-days", "2"]
    commands = [
        ["openssl", "req", "-x509", *new_key, *days, "-subj", "/CN=Morgan test CA"],
        ["openssl", "req", *new_key, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", *days, "-CAcreateserial", "-extfile", str(extensions)],
    ]
    commands[0] += ["-keyout", str(ca_key), "-out", str(ca)]
    commands[1] += ["-keyout", str(key), "-out", str(request)]
    commands[2] += ["-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key), "-out", str(cert)]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return ca, cert, key


# ---------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``python server.py -i INDEX -H 127.0.0.1 -p PORT ...`` as users run it.

    Use it as a context manager: the process is always terminated on exit.
    Its output goes to files (an access log could fill a pipe).
    """

    def __init__(
        self,
        index: Path,
        *args: str,
        python: str = sys.executable,
        script: Path | None = None,
        use_index_flag: bool = True,
        logs: Path | None = None,
        open_files: int | None = None,
    ) -> None:
        self.index = index
        self.open_files_limit = open_files
        self.args = list(args)
        self.python = python
        self.script = script or index / "server.py"
        self.use_index_flag = use_index_flag
        self.logs = logs or index.parent / "logs"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = "--certfile" in args

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/simple/"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        if not self.script.exists():
            shutil.copy(SERVER_SOURCE, self.script)
        self.logs.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.port = free_port()
            try:
                started = self._start()
            except BaseException:
                self.stop()
                raise
            if started:
                return self
            self.stop()
            if "in use" not in self.stderr() or attempt == 2:
                raise RuntimeError(f"server did not start:\n{self.stderr()}")
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> bool:
        command = [self.python, str(self.script)]
        if self.use_index_flag:
            command += ["-i", str(self.index)]
        command += ["-H", "127.0.0.1", "-p", str(self.port), *self.args]
        self.out_path = self.logs / f"server-{self.port}.out"
        self.err_path = self.logs / f"server-{self.port}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                command,
                cwd=self.index,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                preexec_fn=self._limit_open_files if self.open_files_limit else None,
            )
        # Readiness, not speed: wait (generously) for the banner and an accepted connection.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if "Serving" in self.stdout():
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def _limit_open_files(self) -> None:
        """In the child: a lower open-file limit (soft and hard), as on a stingy system."""
        import resource  # noqa: PLC0415 - POSIX only, and only for this

        limit = self.open_files_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak resident) of the server process, in kB."""
        return self.status("VmRSS", "VmHWM")

    def status(self, *fields: str) -> dict[str, int]:
        """Numeric fields of /proc/PID/status (VmRSS, VmHWM in kB, Threads, ...)."""
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                values[key] = int(value.split()[0])
        return values

    def bytes_read(self) -> int:
        """How many bytes the server process has read from files and sockets (rchar)."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "rchar":
                return int(value)
        raise AssertionError("no rchar in /proc/PID/io")

    def open_files(self) -> int:
        """How many file descriptors the server process has open (sockets included)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    # -- requests --------------------------------------------------------------

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    ssl_context: ssl.SSLContext | None = None

    def request(
        self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> Response:
        connection = self.connection()
        try:
            connection.request(method, path, headers=dict(headers or {}))
            response = connection.getresponse()
            body = response.read()
            return Response(response.status, response.headers, body)
        finally:
            connection.close()

    def raw(self, data: bytes) -> bytes:
        return raw_exchange(self.port, data)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)


def raw_exchange(port: int, data: bytes, timeout: float = 30, *, shut: bool = False) -> bytes:
    """Send bytes as they are (no client-side cleaning of the path) and read to EOF (or to
    a reset: a server may close at once on a refusal). ``shut`` ends our side first."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Status and whole reply of ``GET <target>`` sent byte for byte."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    reply = raw_exchange(port, request.encode("latin-1"))
    return status_of(reply), reply


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; a generous liveness bound, not a speed test."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def status_of(reply: bytes) -> int:
    first = reply.split(b"\r\n", 1)[0].split()
    assert first and first[0].startswith(b"HTTP/1."), reply[:200]
    return int(first[1])


# ---------------------------------------------------------------------------
# Real clients
# ---------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for pip and uv with every machine-wide index setting removed.

    Also gone: proxies, and the CA bundles that requests would take over pip's ``--cert``.
    """
    dropped = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    dropped += ("requests_ca_bundle", "curl_ca_bundle")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_")) and key.lower() not in dropped
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def pip_args(index_url: str) -> list[str]:
    return [
        "--isolated",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--index-url",
        index_url,
    ]


def uv_path() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else None


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a client; on failure the assertion shows its output."""
    kwargs.setdefault("env", clean_env())
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (
        f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def find_python(version: str) -> str | None:
    """An interpreter of another version, checked by running it.

    ``MORGAN_TEST_PYTHON37`` (for "3.7"; the digits follow the version) names it, and
    then must be right; otherwise ``python3.7`` on PATH, then pyenv's, if present.
    """
    variable = "MORGAN_TEST_PYTHON" + version.replace(".", "")
    named = os.environ.get(variable)
    if named:
        if not _is_python(named, version):
            pytest.fail(f"{variable}={named} is not a working Python {version}", pytrace=False)
        return named
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(p) for p in sorted(pyenv.glob(f"{version}*/bin/python{version}"))]
    return next((c for c in candidates if c and _is_python(c, version)), None)


def _is_python(candidate: str, version: str) -> bool:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.returncode == 0 and result.stdout.strip() == version
    return False


def installed_versions(site: Path) -> dict[str, str]:
    """{project: version} of the .dist-info folders in a target or site-packages folder."""
    found = {}
    for dist_info in site.glob("*.dist-info"):
        name, _, version = dist_info.name[: -len(".dist-info")].rpartition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def iter_chunks(response: http.client.HTTPResponse, size: int = 1 << 20) -> Iterator[bytes]:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while True:
        count = response.readinto(view)  # type: ignore[arg-type]
        if not count:
            return
        yield bytes(view[:count])
