"""Uploads to morgan/server.py (``--upload``): twine's legacy upload API.

The server runs as users run it, in its own process, on Python 3.7 (the oldest it
supports) when this machine has it. Real twine uploads and real pip installs what was
uploaded, each with the machine's own settings shut out (no TWINE_*/PIP_* variables, no
keyring, no pip.conf, no cache). Hostile and broken uploads are made by hand, and each
must be refused with one clear status and message, leaving the tree exactly as it was,
hidden files included. Then ``import`` and ``verify`` meet trees holding uploads.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import venv
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import builders
import pytest
from server_support import (
    SERVER_SOURCE,
    ServerProcess,
    Tree,
    clean_env,
    find_python,
    make_cert,
    make_tree,
    pip_args,
    raw_exchange,
    run,
    status_of,
)
from support import skip_unless_ci
from test_transfer_server import V1, bundle_members, make_mirror, write_tar

from morgan import server as server_module
from morgan.lock import IndexLock

USER, PASSWORD = "alice", "s3cret!"
BOUNDARY = "morgan-test-boundary-7f3a"
SMALL_LIMIT = 64 * 1024


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def server_python() -> str:
    """Python 3.7 when this machine has it (under CI it must), else this Python."""
    found = find_python("3.7")
    if found is not None:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true, and there is no Python 3.7 to run server.py on", pytrace=False)
    return sys.executable


def write_users(folder: Path) -> Path:
    path = folder / "users"
    path.write_text(f"{USER}:{server_module.hash_password(PASSWORD, 1000)}\n")
    return path


def upload_server(index: Path, users: Path, *args: str, python: str | None = None) -> ServerProcess:
    return ServerProcess(
        index,
        "--upload",
        "--auth-file",
        str(users),
        *args,
        python=python or server_python(),
        script=SERVER_SOURCE,
        logs=users.parent / "logs",
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_snapshot(root: Path) -> dict[str, tuple[str, int, str, int]]:
    """Everything under ``root``, hidden files included: kind, size, sha256 and mtime of
    each file (folders by name only: a refused upload may have touched a folder's mtime
    while it wrote and removed its temporary file)."""
    found = {}
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name != "logs"]  # the server's own output
        for name in folders:
            found[os.path.relpath(os.path.join(folder, name), root)] = ("folder", 0, "", 0)
        for name in files:
            path = Path(folder, name)
            st = path.lstat()
            digest = "" if path.is_symlink() else sha256_hex(path.read_bytes())
            kind = "link" if path.is_symlink() else "file"
            found[str(path.relative_to(root))] = (kind, st.st_size, digest, st.st_mtime_ns)
    return found


def form(
    fields: list[tuple[str, str]],
    file: tuple[str, bytes] | None = None,
    boundary: str = BOUNDARY,
    file_field: str = "content",
) -> bytes:
    """A multipart/form-data body as twine makes it: fields, then the file."""
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        filename, data = file
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode("utf-8", "surrogateescape") + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def fields_for(name: str, version: str, data: bytes, filetype: str) -> list[tuple[str, str]]:
    return [
        ("name", name),
        ("version", version),
        ("filetype", filetype),
        ("sha256_digest", sha256_hex(data)),
        ("description", "A long description, never kept.\n" * 50),
        (":action", "file_upload"),
        ("protocol_version", "1"),
    ]


def auth_header(user: str = USER, password: str = PASSWORD) -> str:
    import base64  # noqa: PLC0415

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post(
    port: int,
    body: bytes,
    *,
    path: str = "/",
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    auth: bool = True,
) -> tuple[int, str, str, http.client.HTTPMessage]:
    """(status, reason, body text, headers) of a POST made with http.client."""
    if content_type is None:
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    sent = {"Content-Type": content_type}
    if auth:
        sent["Authorization"] = auth_header()
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.reason, response.read().decode(), response.headers
    finally:
        connection.close()


def raw_post(port: int, head: str, body: bytes, *, shut: bool = True, timeout: float = 30) -> bytes:
    """Send a head and a body as they are (lying or not), then read the whole answer."""
    return raw_exchange(port, head.encode("latin-1") + body, timeout, shut=shut)


def upload_head(length: int, content_type: str | None = None, extra: str = "") -> str:
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth_header()}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n"
    )


def twine(*args: str) -> subprocess.CompletedProcess[str]:
    """Real twine from this environment, with the machine's settings and keyring shut out."""
    env = {
        key: value
        for key, value in clean_env().items()
        if not key.upper().startswith(("TWINE_", "KEYRING_"))
    }
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    env["COLUMNS"] = "300"  # twine's messages unwrapped
    command = [sys.executable, "-m", "twine", "upload", "--non-interactive"]
    command += ["--disable-progress-bar", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def wheel_bytes(folder: Path, name: str, version: str, **kwargs: Any) -> tuple[str, bytes]:
    path = builders.build_wheel(folder, name, version, **kwargs)
    return path.name, path.read_bytes()


def sdist_bytes(folder: Path, name: str, version: str) -> tuple[str, bytes]:
    path = builders.build_sdist(folder, name, version)
    return path.name, path.read_bytes()


def pkg_info(name: str, version: str, body: str = "A test distribution.\n") -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n{body}".encode()


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    """A tar member as it is given: any name, any kind, any link target."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1_600_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_sdist(
    members: list[tuple[tarfile.TarInfo, bytes]], compression: str = "gz", **kwargs: Any
) -> bytes:
    """A tar sdist holding exactly ``members``, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}", **kwargs) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def zip_sdist(members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # a name given twice, on purpose
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    """A symbolic link in a zip, as Info-ZIP stores one: its target as its content."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info, target.encode()


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob(".*")
        if path.name.endswith((".part", ".uploading"))
    )


# ---------------------------------------------------------------------------
# Real twine, real pip
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("uploads"))


@pytest.mark.clients
def test_twine_uploads_and_pip_installs(mirror: Tree, tmp_path: Path) -> None:
    users = write_users(tmp_path)
    dist = tmp_path / "dist"
    wheel = builders.build_wheel(dist, "Acme.Tools", "1.0", requires_python=">=3.7")
    sdist = builders.build_sdist(dist, "Acme.Tools", "1.0")
    root = mirror.root
    root_pages_before = json.loads((root / "index.json").read_bytes())
    hidden_before = hidden_leftovers(root)
    with upload_server(root, users) as server:
        url = f"http://127.0.0.1:{server.port}/"
        result = twine("--repository-url", url, "-u", USER, "-p", PASSWORD, str(wheel), str(sdist))
        assert result.returncode == 0, result.stdout + result.stderr
        folder = root / "acme-tools"
        for path in (wheel, sdist):
            landed = folder / path.name
            assert landed.read_bytes() == path.read_bytes()
            digest = sha256_hex(path.read_bytes())
            assert Path(f"{landed}.hash").read_text() == f"sha256={digest}"
            record = json.loads(Path(f"{landed}.uploaded").read_text())
            assert list(record) == ["uploader", "upload-time", "sha256", "size", "name", "version"]
            assert record["uploader"] == USER
            assert record["sha256"] == digest and record["size"] == path.stat().st_size
            assert (record["name"], record["version"]) == ("Acme.Tools", "1.0")
            assert record["upload-time"].endswith("Z")
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read("acme_tools-1.0.dist-info/METADATA")
        assert Path(f"{folder / wheel.name}.metadata").read_bytes() == metadata
        assert not Path(f"{folder / sdist.name}.metadata").exists()
        assert hidden_leftovers(root) == hidden_before
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]

        # The static pages: the project's, and the root list (kept, the project added).
        page = json.loads((folder / "index.json").read_bytes())
        assert page["name"] == "acme-tools" and page["versions"] == ["1.0"]
        entries = {entry["filename"]: entry for entry in page["files"]}
        assert sorted(entries) == sorted([wheel.name, sdist.name])
        assert entries[wheel.name]["requires-python"] == ">=3.7"
        assert entries[wheel.name]["core-metadata"] == {"sha256": sha256_hex(metadata)}
        assert entries[sdist.name]["core-metadata"] is False
        assert entries[sdist.name]["url"] == sdist.name
        assert (
            entries[sdist.name]["upload-time"]
            == json.loads(Path(f"{folder / sdist.name}.uploaded").read_text())["upload-time"]
        )
        html = (folder / "index.html").read_text()
        assert f'href="{wheel.name}#sha256={sha256_hex(wheel.read_bytes())}"' in html
        assert 'data-requires-python="&gt;=3.7"' in html
        root_pages = json.loads((root / "index.json").read_bytes())
        assert root_pages["projects"] == sorted(
            root_pages_before["projects"] + [{"name": "acme-tools"}], key=lambda p: p["name"]
        )
        assert '<a href="acme-tools/">acme-tools</a>' in (root / "index.html").read_text()

        # The live pages show it at once, as pip asks for them.
        live = server.request(
            "/simple/acme-tools/", {"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        assert live.status == 401  # the index itself needs the same credentials
        authorized = {
            "Accept": "application/vnd.pypi.simple.v1+json",
            "Authorization": auth_header(),
        }
        live = server.request("/simple/acme-tools/", authorized)
        assert sorted(f["filename"] for f in live.json()["files"]) == sorted(entries)

        # Refused: no credentials, a wrong password; nothing is written.
        before = tree_snapshot(root)
        status, _, _, headers = post(server.port, form([]), auth=False)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        other = builders.build_wheel(tmp_path / "other", "Acme.Tools", "2.0")
        refused = twine("--repository-url", url, "-u", USER, "-p", "wrong", str(other))
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
        assert tree_snapshot(root) == before

        # A second upload of a file: refused with PyPI's words, so --skip-existing works.
        again = twine("--repository-url", url, "-u", USER, "-p", PASSWORD, str(sdist))
        assert again.returncode != 0
        assert "File already exists" in again.stdout + again.stderr
        assert tree_snapshot(root) == before
        skipped = twine(
            "--repository-url", url, "-u", USER, "-p", PASSWORD, "--skip-existing", str(sdist)
        )
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "Skipping" in skipped.stdout + skipped.stderr
        assert tree_snapshot(root) == before
        # ... and so it does for the same distribution under another spelling of its name.
        renamed = tmp_path / "renamed" / "Acme.Tools-1.0.0.tar.gz"
        renamed.parent.mkdir()
        renamed.write_bytes(sdist.read_bytes())
        again = twine("--repository-url", url, "-u", USER, "-p", PASSWORD, str(renamed))
        assert again.returncode != 0
        assert f"File already exists: acme-tools/{sdist.name}" in again.stdout + again.stderr
        skipped = twine(
            "--repository-url", url, "-u", USER, "-p", PASSWORD, "--skip-existing", str(renamed)
        )
        assert skipped.returncode == 0, skipped.stdout + skipped.stderr
        assert "Skipping" in skipped.stdout + skipped.stderr
        assert tree_snapshot(root) == before

        # pip (clean environment, no cache) installs the upload into a fresh venv.
        environment = tmp_path / "venv"
        venv.create(environment, with_pip=True)
        python = environment / "bin" / "python"
        index_url = f"http://{USER}:s3cret%21@127.0.0.1:{server.port}/simple/"
        run([str(python), "-m", "pip", "install", *pip_args(index_url), "acme.tools"])
        shown = run([str(python), "-c", "import acme_tools; print(acme_tools.__version__)"])
        assert shown.stdout.strip() == "1.0"
    assert f" - {USER} [" in server.stderr()


def test_upload_into_a_mirrored_project_keeps_its_page(mirror: Tree, tmp_path: Path) -> None:
    """Every entry and field the mirrorer wrote stays; the upload is added to them."""
    users = write_users(tmp_path)
    folder = mirror.root / "beta"
    before = json.loads((folder / "index.json").read_bytes())
    filename, data = wheel_bytes(tmp_path, "beta", "9.0", requires_python=">=3.8")
    with upload_server(mirror.root, users) as server:
        body = form(fields_for("beta", "9.0", data, "bdist_wheel"), (filename, data))
        status, reason, text, _ = post(server.port, body, path="/legacy/")
        assert (status, reason) == (200, "OK"), text
    after = json.loads((folder / "index.json").read_bytes())
    kept = [entry for entry in after["files"] if entry["filename"] != filename]
    assert kept == before["files"]
    added = next(entry for entry in after["files"] if entry["filename"] == filename)
    assert added["hashes"] == {"sha256": sha256_hex(data)} and added["size"] == len(data)
    assert added["requires-python"] == ">=3.8" and added["yanked"] is False
    assert "9.0" in after["versions"] and set(before["versions"]) <= set(after["versions"])
    html = (folder / "index.html").read_text()
    for entry in after["files"]:
        assert f'href="{entry["filename"]}#sha256={entry["hashes"]["sha256"]}"' in html
    assert 'data-yanked="broken release"' in html  # beta 1.5's, from the mirrorer's page


# ---------------------------------------------------------------------------
# Hostile and broken uploads
# ---------------------------------------------------------------------------


class Hostile:
    """A server with a small size limit and a short timeout, and what it is sent."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "index"
        self.root.mkdir()
        (self.root / "morgan.ini").write_text("[env.default]\n")
        self.users = write_users(base)
        self.filename, self.data = sdist_bytes(base / "dist", "acme", "1.0")
        self.wheel_name, self.wheel = wheel_bytes(base / "dist", "acme", "1.0")
        self.server: ServerProcess | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    state = Hostile(tmp_path_factory.mktemp("hostile"))
    limit = ["--max-upload-size", "64K", "--timeout", "2"]
    with upload_server(state.root, state.users, *limit) as server:
        state.server = server
        yield state


def assert_refused(hostile: Hostile, status: int, phrase: str, send: Any) -> None:
    """``send()`` gets ``status`` and a message holding ``phrase``; nothing is written."""
    before = tree_snapshot(hostile.base)
    got_status, reason, text = send()
    assert got_status == status, (got_status, reason, text)
    assert phrase in text, text
    assert text.count("\n") == 1 and text.startswith(f"{status} "), text
    assert tree_snapshot(hostile.base) == before
    assert hostile.server is not None and hostile.server.alive()


def refused_by(hostile: Hostile, body: bytes, **kwargs: Any) -> Any:
    def send() -> tuple[int, str, str]:
        status, reason, text, _ = post(hostile.port, body, **kwargs)
        return status, reason, text

    return send


@pytest.mark.parametrize(
    "filename",
    [
        "../acme-1.0.tar.gz",
        "../../etc/acme-1.0.tar.gz",
        "acme/../../acme-1.0.tar.gz",
        "..\\acme-1.0.tar.gz",
        "C:acme-1.0.tar.gz",
        ".acme-1.0.tar.gz",
        "acme-1.0.tar.gz\x00.txt",
        "/tmp/acme-1.0.tar.gz",
        "acme-1.0.tar.gz/",
        "index.html",
        "acme-1.0.tar.gz.hash",
        "acme-1.0.whl",
        "",
    ],
)
def test_unsafe_file_names_are_refused(hostile: Hostile, filename: str) -> None:
    body = form(fields_for("acme", "1.0", hostile.data, "sdist"), (filename, hostile.data))
    assert_refused(hostile, 400, "file name", refused_by(hostile, body))


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"name": "other"}, "is not of the project other"),
        ({"name": "acme-tools"}, "is not of the project"),
        ({"name": "bad name!"}, "is not a valid project name"),
        ({"version": "2.0"}, "is not of version 2.0"),
        ({"version": "not a version"}, "is not a valid (PEP 440) version"),
        ({"filetype": "bdist_wheel"}, "filetype"),
        ({"filetype": "bdist_egg"}, "filetype"),
        ({"sha256_digest": "0" * 64}, "sha256_digest does not match"),
        ({"md5_digest": "0" * 32}, "md5_digest does not match"),
        ({"blake2_256_digest": "0" * 64}, "blake2_256_digest does not match"),
        ({":action": "submit"}, "file_upload only"),
        ({"name": None}, "no name field"),
        ({"version": None}, "no version field"),
        ({":action": None}, "no :action field"),
    ],
)
def test_form_that_disagrees_with_the_file_is_refused(
    hostile: Hostile, change: dict[str, str | None], phrase: str
) -> None:
    fields = dict(fields_for("acme", "1.0", hostile.data, "sdist"))
    for key, value in change.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    body = form(list(fields.items()), (hostile.filename, hostile.data))
    assert_refused(hostile, 400, phrase, refused_by(hostile, body))


def test_missing_or_doubled_file_is_refused(hostile: Hostile) -> None:
    fields = fields_for("acme", "1.0", hostile.data, "sdist")
    assert_refused(hostile, 400, "no file", refused_by(hostile, form(fields)))
    wrong_field = form(fields, (hostile.filename, hostile.data), file_field="file")
    assert_refused(hostile, 400, "no file", refused_by(hostile, wrong_field))
    twice = form(fields, (hostile.filename, hostile.data))
    extra = form([], (hostile.filename, hostile.data))
    doubled = twice[: -len(f"--{BOUNDARY}--\r\n")] + extra
    assert_refused(hostile, 400, "two files", refused_by(hostile, doubled))
    empty = form(fields_for("acme", "1.0", b"", "sdist"), (hostile.filename, b""))
    assert_refused(hostile, 400, "is empty", refused_by(hostile, empty))


def test_wheel_without_metadata_is_refused(hostile: Hostile, tmp_path: Path) -> None:
    path = tmp_path / hostile.wheel_name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("acme/__init__.py", b"")
    data = path.read_bytes()
    body = form(fields_for("acme", "1.0", data, "bdist_wheel"), (path.name, data))
    assert_refused(hostile, 400, "no readable METADATA", refused_by(hostile, body))
    liar = builders.build_wheel(
        tmp_path / "liar",
        "acme",
        "1.0",
        metadata="Metadata-Version: 2.1\nName: other\nVersion: 1.0\n",
    ).read_bytes()
    body = form(fields_for("acme", "1.0", liar, "bdist_wheel"), (hostile.wheel_name, liar))
    assert_refused(hostile, 400, "METADATA says other 1.0", refused_by(hostile, body))


def upload_to(hostile: Hostile, name: str, version: str, filename: str, data: bytes) -> None:
    filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
    body = form(fields_for(name, version, data, filetype), (filename, data))
    status, reason, text, _ = post(hostile.port, body)
    assert (status, reason) == (200, "OK"), text


def remove_project(hostile: Hostile, project: str) -> None:
    """Take an upload's project out of the shared tree again, and the root pages."""
    folder = hostile.root / project
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    for name in ("index.html", "index.json"):
        (hostile.root / name).unlink()


def test_the_same_distribution_under_another_name_is_refused(
    hostile: Hostile, tmp_path: Path
) -> None:
    """Duplicates as PyPI tells them: the normalized project, the canonical version, and
    for a wheel its build tag and tags; an sdist is one per release, in any format."""
    sdist, sdist_data = sdist_bytes(tmp_path, "corp_x", "1.0")
    wheel, wheel_data = wheel_bytes(tmp_path, "corp_x", "1.0")
    assert (sdist, wheel) == ("corp_x-1.0.tar.gz", "corp_x-1.0-py3-none-any.whl")
    upload_to(hostile, "corp-x", "1.0", sdist, sdist_data)
    upload_to(hostile, "corp-x", "1.0", wheel, wheel_data)
    zipped = builders.build_sdist(tmp_path / "zip", "corp_x", "1.0", fmt="zip").read_bytes()

    def sent(name: str, version: str, filename: str, data: bytes) -> Any:
        filetype = "bdist_wheel" if filename.endswith(".whl") else "sdist"
        return refused_by(
            hostile, form(fields_for(name, version, data, filetype), (filename, data))
        )

    exists = "File already exists: corp-x/"
    for name, version, filename in [
        ("corp_x", "1.0", "corp_x-1.0.tar.gz"),
        ("Corp_X", "1.0", "Corp_X-1.0.tar.gz"),
        ("corp-x", "1.0", "corp-x-1.0.tar.gz"),
        ("corp.x", "1.00", "corp.x-1.00.tar.gz"),
        ("corp_x", "1.0.0", "corp_x-1.0.0.tgz"),
    ]:
        assert_refused(hostile, 400, exists + sdist, sent(name, version, filename, sdist_data))
    for name, version, filename in [
        ("corp_x", "1.0", "corp_x-1.0-py3-none-any.whl"),
        ("Corp_X", "1.0.0", "Corp_X-1.0.0-py3-none-any.whl"),
        ("corp.x", "1.0", "corp.x-1.0-PY3-None-Any.whl"),
    ]:
        assert_refused(hostile, 400, exists + wheel, sent(name, version, filename, wheel_data))
    only_one = "Only one sdist may be uploaded per release: corp-x/corp_x-1.0.tar.gz is the sdist"
    assert_refused(hostile, 400, only_one, sent("corp_x", "1.0", "corp_x-1.0.zip", zipped))
    assert_refused(hostile, 400, only_one, sent("corp-x", "1", "corp-x-1.zip", zipped))
    # Other wheels of the release (another build, other tags) and other releases land.
    upload_to(hostile, "corp-x", "1.0", "corp_x-1.0-1-py3-none-any.whl", wheel_data)
    upload_to(hostile, "corp-x", "1.0", "corp_x-1.0-py2.py3-none-any.whl", wheel_data)
    upload_to(
        hostile, "corp_x", "1.0.post1", "corp_x-1.0.post1.zip", zipped_as(tmp_path, "1.0.post1")
    )
    # A file the mirror put there counts as much as an upload.
    (hostile.root / "corp-x" / "corp_x-2.0.tar.gz").write_bytes(b"mirrored")
    zipped_2 = zipped_as(tmp_path, "2.0")
    assert_refused(
        hostile, 400, "Only one sdist", sent("corp-x", "2.0", "corp_x-2.0.zip", zipped_2)
    )
    remove_project(hostile, "corp-x")


def zipped_as(folder: Path, version: str) -> bytes:
    return builders.build_sdist(folder / version, "corp_x", version, fmt="zip").read_bytes()


ACME = member("acme-1.0/PKG-INFO", pkg_info("acme", "1.0"))
SETUP = member("acme-1.0/setup.py", b"from setuptools import setup\nsetup()\n")


@pytest.mark.parametrize(
    ("filename", "data", "phrase"),
    [
        ("acme-1.0.tar.gz", b"\x1f\x8b" + b"not gzip" * 50, "is not a readable tar.gz archive"),
        ("acme-1.0.tar.gz", b"not an archive at all", "is not a readable tar.gz archive"),
        ("acme-1.0.tgz", zip_sdist([("acme-1.0/PKG-INFO", ACME[1])]), "not a readable tar.gz"),
        ("acme-1.0.tar.bz2", tar_sdist([ACME]), "is not a readable tar.bz2 archive"),
        ("acme-1.0.tar.xz", tar_sdist([ACME], "bz2"), "is not a readable tar.xz archive"),
        ("acme-1.0.zip", tar_sdist([ACME]), "is not a readable zip archive"),
        ("acme-1.0.tar.gz", tar_sdist([ACME])[:-40], "is not a readable tar.gz archive"),
        ("acme-1.0.tar.gz", tar_sdist([SETUP]), "has no PKG-INFO in a top folder"),
        ("acme-1.0.tar.gz", tar_sdist([member("PKG-INFO", ACME[1])]), "has no PKG-INFO"),
        ("acme-1.0.tar.gz", tar_sdist([member("a/b/PKG-INFO", ACME[1])]), "has no PKG-INFO"),
        ("acme-1.0.zip", zip_sdist([("acme-1.0/setup.py", b"")]), "has no PKG-INFO"),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member("acme-1.0/PKG-INFO", pkg_info("other", "1.0"))]),
            "the sdist's PKG-INFO says other 1.0, the form acme 1.0",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member("acme-1.0/PKG-INFO", pkg_info("acme", "2.0"))]),
            "PKG-INFO says acme 2.0, the form acme 1.0",
        ),
        (
            "acme-1.0.zip",
            zip_sdist([("acme-1.0/PKG-INFO", pkg_info("acme", "1.0.1"))]),
            "PKG-INFO says acme 1.0.1, the form acme 1.0",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member("acme-1.0/PKG-INFO", b"Metadata-Version: 2.1\nVersion: 1.0\n")]),
            "PKG-INFO says ? 1.0",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member("acme-1.0/PKG-INFO", pkg_info("acme", "1.0", "x" * 2**20))]),
            "has a PKG-INFO over 1048576 bytes",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member(f"{top}/PKG-INFO", pkg_info("acme", "1.0")) for top in "ab"]),
            'has a PKG-INFO in several top folders, none of them "acme-1.0"',
        ),
        ("acme-1.0.tar.gz", tar_sdist([ACME, SETUP, ACME]), 'holds "acme-1.0/PKG-INFO" twice'),
        (
            "acme-1.0.zip",
            zip_sdist([("acme-1.0/PKG-INFO", ACME[1]), ("acme-1.0/PKG-INFO", ACME[1])]),
            'holds "acme-1.0/PKG-INFO" twice',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([SETUP, member("acme-1.0/PKG-INFO", kind=tarfile.SYMTYPE, link="setup.py")]),
            'holds "acme-1.0/PKG-INFO", which is not a regular file',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([member("acme-1.0/PKG-INFO", kind=tarfile.DIRTYPE)]),
            "which is not a regular file",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("/etc/cron.d/acme", b"* * * * * root sh\n")]),
            'holds "/etc/cron.d/acme", an absolute path or one with ..',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("acme-1.0/../../acme.pth", b"import os\n")]),
            'holds "acme-1.0/../../acme.pth", an absolute path or one with ..',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("..", kind=tarfile.DIRTYPE)]),
            "an absolute path or one with ..",
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("acme-1.0/key", kind=tarfile.SYMTYPE, link="/etc/shadow")]),
            'holds a link "acme-1.0/key" to "/etc/shadow"',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("acme-1.0/up", kind=tarfile.SYMTYPE, link="../../..")]),
            'holds a link "acme-1.0/up" to "../../.."',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("acme-1.0/hard", kind=tarfile.LNKTYPE, link="../x")]),
            'holds a link "acme-1.0/hard" to "../x"',
        ),
        (
            "acme-1.0.tar.gz",
            tar_sdist([ACME, member("acme-1.0/fifo", kind=tarfile.FIFOTYPE)]),
            'holds "acme-1.0/fifo", a device or a pipe',
        ),
        (
            "acme-1.0.zip",
            zip_sdist([("acme-1.0/PKG-INFO", ACME[1]), ("../acme.pth", b"import os\n")]),
            'holds "../acme.pth", an absolute path or one with ..',
        ),
        (
            "acme-1.0.zip",
            zip_sdist([("acme-1.0/PKG-INFO", ACME[1]), ("acme-1.0\\..\\..\\x", b"")]),
            "an absolute path or one with ..",
        ),
        (
            "acme-1.0.zip",
            zip_sdist([("acme-1.0/PKG-INFO", ACME[1]), zip_link("acme-1.0/key", "/etc/shadow")]),
            'holds a link "acme-1.0/key" to "/etc/shadow"',
        ),
    ],
)
def test_sdist_that_pip_would_not_build_is_refused(
    hostile: Hostile, filename: str, data: bytes, phrase: str
) -> None:
    """An sdist is opened (never extracted) and must hold a ``<dir>/PKG-INFO`` of the
    form's project and version, and nothing pip refuses to unpack."""
    body = form(fields_for("acme", "1.0", data, "sdist"), (filename, data))
    assert_refused(hostile, 400, phrase, refused_by(hostile, body))


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        (
            "Sound_Pkg-1.0.tar.gz",
            tar_sdist([member("Sound_Pkg-1.0/PKG-INFO", pkg_info("sound.pkg", "1.0.0"))]),
        ),
        ("sound_pkg-1.0.tgz", tar_sdist([member("x/PKG-INFO", pkg_info("Sound-Pkg", "1"))])),
        (
            "sound_pkg-1.0.tar.bz2",
            tar_sdist(
                [
                    member("sound_pkg-1.0", kind=tarfile.DIRTYPE),
                    member("sound_pkg-1.0/PKG-INFO", pkg_info("sound_pkg", "1.0")),
                    member("sound_pkg-1.0/docs", kind=tarfile.SYMTYPE, link="sound_pkg/docs"),
                    member("other/PKG-INFO", pkg_info("other", "2.0")),
                ],
                "bz2",
            ),
        ),
        (
            "sound_pkg-1.0.tar.xz",
            tar_sdist([member("sound_pkg-1.0/PKG-INFO", pkg_info("sound_pkg", "1.0"))], "xz"),
        ),
        (
            "sound_pkg-1.0.zip",
            zip_sdist(
                [
                    ("sound_pkg-1.0/", b""),
                    ("sound_pkg-1.0/PKG-INFO", pkg_info("sound_pkg", "1.0")),
                    zip_link("sound_pkg-1.0/docs", "sound_pkg/docs"),
                ]
            ),
        ),
        (
            "sound_pkg-1.0.tar.gz",
            tar_sdist(
                [member("sound_pkg-1.0/PKG-INFO", pkg_info("sound_pkg", "1.0"))],
                format=tarfile.PAX_FORMAT,
            ),
        ),
    ],
)
def test_sound_sdists_of_any_format_land(hostile: Hostile, filename: str, data: bytes) -> None:
    upload_to(hostile, "sound-pkg", "1.0", filename, data)
    assert (hostile.root / "sound-pkg" / filename).read_bytes() == data
    remove_project(hostile, "sound-pkg")


def test_sdist_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounds on opening an sdist: members, unpacked size, a single tar header, and the
    memory that reading a large one takes (flat: tarfile forgets each member read)."""
    read = server_module.read_sdist_pkg_info

    def problem(filename: str, data: bytes) -> str:
        path = tmp_path / filename
        path.write_bytes(data)
        with pytest.raises(server_module.SdistRefused) as refused:
            read(str(path), filename)
        return str(refused.value)

    many = [ACME] + [member(f"acme-1.0/m{i}.py") for i in range(20)]
    monkeypatch.setattr(server_module, "MAX_SDIST_MEMBERS", 20)
    assert problem("acme-1.0.tar.gz", tar_sdist(many)) == "has more than 20 members"
    zipped = zip_sdist([(info.name, data) for info, data in many])
    assert problem("acme-1.0.zip", zipped) == "has more than 20 members"
    monkeypatch.setattr(server_module, "MAX_SDIST_MEMBERS", 21)
    path = tmp_path / "acme-1.0.zip"
    path.write_bytes(zipped)
    assert read(str(path), path.name) == ACME[1]
    monkeypatch.setattr(server_module, "MAX_SDIST_DIRECTORY_BYTES", 1000)
    assert problem("acme-1.0.zip", zipped) == "has a zip directory over 1000 bytes"

    bomb = tar_sdist([member("acme-1.0/zeros", bytes(4 * 2**20)), ACME])
    assert len(bomb) < 16 * 1024
    monkeypatch.setattr(server_module, "MAX_SDIST_UNPACKED_BYTES", 2**20)
    assert problem("acme-1.0.tar.gz", bomb) == "unpacks to more than 1048576 bytes"
    assert (
        problem(
            "acme-1.0.tar.xz", tar_sdist([member("acme-1.0/zeros", bytes(4 * 2**20)), ACME], "xz")
        )
        == "unpacks to more than 1048576 bytes"
    )

    long_name = member("acme-1.0/" + "x" * (2 * 2**20))
    pax = tar_sdist([long_name, ACME], format=tarfile.PAX_FORMAT)
    monkeypatch.setattr(server_module, "MAX_SDIST_UNPACKED_BYTES", 2**30)
    assert problem("acme-1.0.tar.gz", pax) == "has a tar header over 1048576 bytes"
    gnu = tar_sdist([long_name, ACME], format=tarfile.GNU_FORMAT)
    assert problem("acme-1.0.tar.gz", gnu) == "has a tar header over 1048576 bytes"


def test_malformed_multipart_is_refused(hostile: Hostile) -> None:
    good = form(fields_for("acme", "1.0", hostile.data, "sdist"), (hostile.filename, hostile.data))
    cases = [
        (good, "multipart/form-data", 400, "no valid boundary"),
        (good, "multipart/form-data; boundary=", 400, "no valid boundary"),
        (good, 'multipart/form-data; boundary="unterminated', 400, "Content-Type is malformed"),
        (good, "multipart/form-data; boundary=" + "x" * 71, 400, "no valid boundary"),
        (good[: len(good) // 2], None, 400, "cut short"),
        (good[: -len(f"--{BOUNDARY}--\r\n")], None, 400, "cut short"),
        (b"no boundary anywhere", None, 400, "cut short"),
        (f"--{BOUNDARY}garbage\r\n".encode() + good, None, 400, "followed by text"),
        (
            f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nvalue\r\n".encode() + good,
            None,
            400,
            "no Content-Disposition",
        ),
        (f"--{BOUNDARY}\r\nbroken header\r\n\r\nv\r\n".encode() + good, None, 400, "malformed"),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: attachment; name="x"\r\n\r\nv\r\n'.encode()
            + good,
            None,
            400,
            "not form-data",
        ),
        (good, "application/json", 415, "multipart/form-data"),
        (good, "application/x-www-form-urlencoded", 415, "multipart/form-data"),
        (good, "", 415, "multipart/form-data"),
    ]
    for body, content_type, status, phrase in cases:
        assert_refused(
            hostile, status, phrase, refused_by(hostile, body, content_type=content_type)
        )


def test_oversize_and_lying_lengths_are_refused(hostile: Hostile) -> None:
    big = b"\x1f\x8b" + os.urandom(SMALL_LIMIT)
    body = form(fields_for("acme", "1.0", big, "sdist"), (hostile.filename, big))

    def raw(head: str, data: bytes, **kwargs: Any) -> Any:
        def send() -> tuple[int, str, str]:
            reply = raw_post(hostile.port, head, data, **kwargs)
            text = reply.split(b"\r\n\r\n", 1)[1].decode()
            return status_of(reply), "", text

        return send

    # A Content-Length over the limit is refused before a byte of the body is read.
    assert_refused(hostile, 413, "the limit is 65536", raw(upload_head(len(body)), body[:1000]))
    assert_refused(hostile, 413, "--max-upload-size", refused_by(hostile, body))
    # A small Content-Length, and much more sent: only that much is read.
    good = form(fields_for("acme", "1.0", hostile.data, "sdist"), (hostile.filename, hostile.data))
    assert_refused(hostile, 400, "cut short", raw(upload_head(500), good + body))
    # A Content-Length larger than what comes before the client stops sending.
    assert_refused(
        hostile, 400, "before its Content-Length", raw(upload_head(len(good) + 10), good)
    )
    # ... or stalls: the body may not stall for longer than --timeout.
    started = time.monotonic()
    stalled = raw(upload_head(len(good) + 10), good, shut=False)
    assert_refused(hostile, 408, "stalled", stalled)
    assert time.monotonic() - started < 20
    # No length at all, or chunked: 411.
    chunked = upload_head(0).replace("Content-Length: 0\r\n", "Transfer-Encoding: chunked\r\n")
    assert_refused(hostile, 411, "chunked", raw(chunked, b"5\r\nhello\r\n0\r\n\r\n"))
    no_length = upload_head(0).replace("Content-Length: 0\r\n", "")
    assert_refused(hostile, 411, "Content-Length", raw(no_length, b""))
    two = upload_head(10, extra="Content-Length: 11\r\n")
    assert_refused(hostile, 400, "Content-Length is not one number", raw(two, b"x" * 11))


def test_refusals_of_who_and_where(hostile: Hostile) -> None:
    good = form(fields_for("acme", "1.0", hostile.data, "sdist"), (hostile.filename, hostile.data))

    def no_auth() -> tuple[int, str, str]:
        status, reason, text, headers = post(hostile.port, good, auth=False)
        assert headers["WWW-Authenticate"] == 'Basic realm="morgan", charset="UTF-8"'
        return status, reason, text

    assert_refused(hostile, 401, "Unauthorized", no_auth)
    wrong = {"Authorization": auth_header(USER, "wrong")}
    assert_refused(hostile, 401, "Unauthorized", refused_by(hostile, good, headers=wrong))
    nobody = {"Authorization": auth_header("mallory", PASSWORD)}
    assert_refused(hostile, 401, "Unauthorized", refused_by(hostile, good, headers=nobody))
    for path in ("/acme/", "/simple/acme/", "/legacy/x", "/../"):
        assert_refused(
            hostile, 405, "uploads go to / or /legacy/", refused_by(hostile, good, path=path)
        )


def test_expect_100_continue(hostile: Hostile, tmp_path: Path) -> None:
    """A client that waits for 100 Continue gets it once its head is accepted."""
    filename, data = sdist_bytes(tmp_path, "expectant", "0.1")
    body = form(fields_for("expectant", "0.1", data, "sdist"), (filename, data))
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=30) as sock:
        sock.sendall(upload_head(len(body), extra="Expect: 100-continue\r\n").encode())
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert status_of(reply) == 200, reply
    folder = hostile.root / "expectant"
    assert (folder / filename).read_bytes() == data
    record = json.loads((folder / f"{filename}.uploaded").read_text())
    assert (record["name"], record["version"], record["size"]) == ("expectant", "0.1", len(data))
    # Then it is there for good: the same name is refused, nothing changes.
    assert_refused(hostile, 400, "File already exists", refused_by(hostile, body))
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    for name in ("index.html", "index.json"):
        (hostile.root / name).unlink()


def test_no_upload_without_the_option(hostile: Hostile, tmp_path: Path) -> None:
    body = form(fields_for("acme", "1.0", hostile.data, "sdist"), (hostile.filename, hostile.data))
    before = tree_snapshot(hostile.root)
    with ServerProcess(
        hostile.root, python=server_python(), script=SERVER_SOURCE, logs=tmp_path
    ) as plain:
        status, _, text, headers = post(plain.port, body)
        assert status == 405 and headers["Allow"] == "GET, HEAD", text
    assert tree_snapshot(hostile.root) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--upload"],
            "server.py: error: --upload needs --auth-file: uploads are taken from its users only",
        ),
        (["--max-upload-size", "1M"], "server.py: error: --max-upload-size needs --upload"),
    ],
)
def test_options_that_cannot_work_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [server_python(), str(SERVER_SOURCE), "-i", str(tmp_path), "-p", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message]
    assert list(tmp_path.iterdir()) == []


def test_upload_sizes_accept_suffixes() -> None:
    parse = server_module.parse_size
    assert parse("1024") == 1024 and parse("64K") == 65536 and parse("500M") == 500 * 1024**2
    assert parse("2G") == 2 * 1024**3 and parse("1GiB") == 1024**3 and parse("3t") == 3 * 1024**4
    for bad in ("", "0", "-1", "1.5G", "G", "1P"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
            parse(bad)


def test_versions_compare_as_pypi_compares_them() -> None:
    canonical = server_module.canonical_version
    assert canonical("1.0") == canonical("1.0.0") == canonical("v1") == "1"
    assert canonical("1.0-1") == canonical("1.0.post1") == "1.post1"
    assert canonical("2.0RC1") == canonical("2.0c1") == "2rc1"
    assert canonical("1!2.0.dev3+Ubuntu-1") == "1!2.dev3+ubuntu.1"
    assert canonical("1.0a") == "1a0"
    assert canonical("1.0-beta-2") == "1b2"
    for bad in ("", "one", "1.0-beta-two", "1..0", "1.0+"):
        assert canonical(bad) is None


# ---------------------------------------------------------------------------
# import and verify with uploads
# ---------------------------------------------------------------------------


def upload_by_hand(port: int, folder: Path, name: str, version: str) -> str:
    filename, data = sdist_bytes(folder, name, version)
    status, reason, text, _ = post(
        port, form(fields_for(name, version, data, "sdist"), (filename, data))
    )
    assert status == 200, (status, reason, text)
    return filename


def run_command(
    *args: str | Path, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(SERVER_SOURCE), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_import_and_verify_leave_uploads_alone(tmp_path: Path) -> None:
    source, index = tmp_path / "source", tmp_path / "index"
    m1 = make_mirror(source / "v1", V1)
    index.mkdir()
    full = write_tar(tmp_path / "full.tar", bundle_members(source / "v1"))
    server_module.import_bundle(full, index)
    users = write_users(tmp_path)
    with upload_server(index, users, python=sys.executable) as server:
        beta = upload_by_hand(server.port, tmp_path / "dist", "beta", "3.0")  # a mirrored project
        private = upload_by_hand(server.port, tmp_path / "dist", "private-tool", "1.0")  # a new one
    python = server_python()

    # verify: the uploads are sound, and the pages they rewrote are no problem.
    result = run_command("verify", "-i", index, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        result.stdout == f"verified {len(V1)} files and 2 uploads: the tree matches its manifest\n"
    )

    # A bundle that changes beta is refused whole, naming beta and [private].
    v2 = {**V1, "beta/beta-2.0-py3-none-any.whl": b"PK\x03\x04 beta 2 " * 30}
    make_mirror(source / "v2", v2)
    delta = write_tar(tmp_path / "delta.tar", bundle_members(source / "v2", m1))
    before = tree_snapshot(index)
    result = run_command("import", delta, "-i", index, python=python)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "server.py: import refused: the bundle changes the project beta, which holds files "
        f"uploaded here (beta/{beta}.uploaded): list beta in [private] in morgan.ini where "
        "the bundle is made, then export again"
    ]
    assert tree_snapshot(index) == before

    # A bundle that leaves the uploads' projects alone lands; the root pages list the
    # uploaded project again, and verify still passes.
    v3 = {
        **V1,
        "alpha/alpha-2.0.tar.gz": b"\x1f\x8b alpha 2 " * 30,
        "index.json": b'{"projects": ["alpha", "beta"], "v": 3}',
    }
    make_mirror(source / "v3", v3)
    delta = write_tar(tmp_path / "delta3.tar", bundle_members(source / "v3", m1))
    result = run_command("import", delta, "-i", index, python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"verified {len(v3)} files and 2 uploads: the tree matches its manifest"
    )
    assert {"name": "private-tool"} in json.loads((index / "index.json").read_bytes())["projects"]
    assert (index / "private-tool" / private).exists() and (index / "beta" / beta).exists()

    # An upload is never deleted by an import, whatever a bundle says.
    assert not server_module.remove_file(str(index), f"private-tool/{private}")
    assert not server_module.remove_file(str(index), f"private-tool/{private}.uploaded")
    assert (index / "private-tool" / private).exists()

    # A damaged upload is a problem; so is a record that is not one.
    uploaded = index / "private-tool" / private
    data = bytearray(uploaded.read_bytes())
    data[-1] ^= 1
    uploaded.write_bytes(bytes(data))
    Path(f"{index / 'beta' / beta}.uploaded").write_text("{not json")
    (index / "beta" / "orphan-1.0.tar.gz.uploaded").write_text("{}")
    result = run_command("verify", "-i", index, python=python)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"corrupt: beta/{beta}.uploaded (not a valid upload record)",
        "unlisted: beta/orphan-1.0.tar.gz.uploaded",
        f"corrupt: private-tool/{private} (sha256 differs from the .uploaded record)",
        f"verified {len(v3)} files: 3 problems",
    ]


@pytest.mark.parametrize("writer", ["import", "morgan run"])
def test_no_upload_lands_while_another_writer_holds_the_index(tmp_path: Path, writer: str) -> None:
    """While an import lands a bundle, or a morgan run (``mirror``, ``prune``, ``export``)
    holds the index, an upload is told to come back (503): a run writes each project's
    pages from the folder it scanned, and would leave off an upload landed meanwhile."""
    index = tmp_path / "index"
    index.mkdir()
    users = write_users(tmp_path)
    filename, data = sdist_bytes(tmp_path / "dist", "acme", "1.0")
    body = form(fields_for("acme", "1.0", data, "sdist"), (filename, data))
    held = server_module.import_lock(str(index)) if writer == "import" else IndexLock(index)
    with upload_server(index, users, python=sys.executable) as server:
        with held:
            status, _, text, headers = post(server.port, body)
            assert status == 503, text
            assert "an import is landing files, or a morgan run (mirror, prune, export)" in text
            assert headers["Retry-After"] == "10"
            assert [p.name for p in index.iterdir() if p.name != ".morgan.lock"] == []
        status, _, text, _ = post(server.port, body)
        assert status == 200, text
    assert (index / "acme" / filename).read_bytes() == data


def test_a_mirror_run_leaves_what_an_upload_writes_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``morgan mirror`` deletes hidden ``.part`` files as its own leftovers whenever it
    runs: the temporary files of an upload (the file, its sidecars, the pages) are hidden
    ``.uploading`` files, so a run in the same tree leaves them be."""
    from morgan.mirror import _remove_leftovers  # noqa: PLC0415

    folder = tmp_path / "acme"
    folder.mkdir()
    replace = os.replace
    renamed: list[str] = []

    def mirror_runs_meanwhile(source: str, target: str) -> None:
        _remove_leftovers(Path(source).parent, set())
        renamed.append(Path(source).name)
        replace(source, target)

    monkeypatch.setattr(server_module.os, "replace", mirror_runs_meanwhile)
    for name in ("acme-1.0.tar.gz.hash", "index.json", "index.html"):
        server_module.write_atomically(str(folder / name), name.encode())
        assert (folder / name).read_bytes() == name.encode()
    targets = ("acme-1.0.tar.gz.hash", "index.json", "index.html")
    assert len(renamed) == 3, renamed
    for name, target in zip(renamed, targets):
        assert name.startswith(f".{target}.") and name.endswith(".uploading"), name
    received = server_module.Received(str(tmp_path))
    received.start_part("name", None)(b"acme")
    received.start_part("content", "acme-1.0.tar.gz")(b"data")
    received.close_file()
    assert received.temp is not None and Path(received.temp).name.endswith(".uploading")
    _remove_leftovers(folder, set())
    assert Path(received.temp).read_bytes() == b"data"
    received.discard()
    assert sorted(p.name for p in folder.iterdir()) == [
        "acme-1.0.tar.gz.hash",
        "index.html",
        "index.json",
    ]


# ---------------------------------------------------------------------------
# Streaming: large bodies, TLS, and a parser fed a byte at a time
# ---------------------------------------------------------------------------


def test_large_upload_is_streamed(tmp_path: Path) -> None:
    """16 MiB, full of near-boundaries, lands byte for byte while the server's memory stays
    flat (the body is never held whole)."""
    index = tmp_path / "index"
    index.mkdir()
    users = write_users(tmp_path)
    near = f"\r\n--{BOUNDARY}"[:-1].encode()
    chunks = [os.urandom(4095 - len(near)) + near + b"!" for _ in range(16 * 256)]
    payload = member("big-1.0/data.bin", b"".join(chunks) + b"\r\n--")
    # stored, not compressed, so that the near-boundaries are in the body as they are
    data = tar_sdist([payload, member("big-1.0/PKG-INFO", pkg_info("big", "1.0"))], compresslevel=0)
    assert len(data) > 16 * 2**20 and data.count(near) > 4000
    filename = "big-1.0.tar.gz"
    body = form(fields_for("big", "1.0", data, "sdist"), (filename, data))
    with upload_server(index, users) as server:
        before = server.memory_kb()["VmHWM"]
        status, _, text, _ = post(server.port, body)
        assert status == 200, text
        grown = server.memory_kb()["VmHWM"] - before
    assert (index / "big" / filename).read_bytes() == data
    assert grown < 8 * 1024, f"peak memory grew by {grown} kB for a 16 MiB upload"


@pytest.mark.clients
def test_upload_over_https(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    index = tmp_path / "index"
    index.mkdir()
    users = write_users(tmp_path)
    wheel = builders.build_wheel(tmp_path / "dist", "tls-only", "0.1")
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    with upload_server(index, users, *tls) as server:
        url = f"https://127.0.0.1:{server.port}/legacy/"
        result = twine(
            "--repository-url", url, "--cert", str(cert), "-u", USER, "-p", PASSWORD, str(wheel)
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert (index / "tls-only" / wheel.name).read_bytes() == wheel.read_bytes()


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_parser_takes_the_body_in_any_pieces(piece: int) -> None:
    """The same parts, whatever way the body is cut when it arrives."""
    content = (f"x\r\n--{BOUNDARY}"[:-1] + "\r\n-\r\n--" + "y" * 100).encode() * 50
    body = b"preamble\r\n" + form([("name", "acme"), ("note", "é")], ("acme-1.0.tar.gz", content))
    body += b"epilogue, dropped"
    parts: dict[str, bytearray] = {}

    def start(name: str, filename: str | None) -> Any:
        key = f"{name}:{filename}"
        parts[key] = bytearray()
        return parts[key].extend

    parser = server_module.MultipartParser(BOUNDARY, start)
    for at in range(0, len(body), piece):
        parser.feed(body[at : at + piece])
    parser.finish()
    assert parts == {
        "name:None": bytearray(b"acme"),
        "note:None": bytearray("é".encode()),
        "content:acme-1.0.tar.gz": bytearray(content),
    }


def test_sdist_members_that_would_claim_unbounded_memory_are_refused(tmp_path: Path) -> None:
    """zipfile unpacks bzip2 and lzma members in chunks it does not bound, and tarfile
    maps a sparse member whole before it is seen: both are refused before any of that."""

    def problem(filename: str) -> str:
        with pytest.raises(server_module.SdistRefused) as refused:
            server_module.read_sdist_pkg_info(str(tmp_path / filename), filename)
        return str(refused.value)

    with zipfile.ZipFile(tmp_path / "acme-1.0.zip", "w") as archive:
        archive.writestr("acme-1.0/PKG-INFO", ACME[1], compress_type=zipfile.ZIP_BZIP2)
    assert problem("acme-1.0.zip") == (
        'holds "acme-1.0/PKG-INFO" compressed with method 12; only stored and deflated '
        "members are read"
    )

    tar = shutil.which("tar") or "tar"
    version = subprocess.run([tar, "--version"], capture_output=True, text=True, check=False)
    if "GNU" not in version.stdout:
        skip_unless_ci("GNU tar makes the sparse member")  # Debian's tar is GNU tar
    source = tmp_path / "src" / "acme-1.0"
    source.mkdir(parents=True)
    (source / "PKG-INFO").write_bytes(ACME[1])
    with (source / "hole").open("wb") as hole:
        hole.truncate(64 * 2**20)  # all hole: GNU tar stores it as a sparse member
    subprocess.run(
        [tar, "--sparse", "--format=gnu", "-czf", str(tmp_path / "acme-1.0.tar.gz"), "-C",
         str(source.parent), "acme-1.0"],
        check=True,
    )  # fmt: skip
    assert problem("acme-1.0.tar.gz") == "holds a sparse file"


def test_an_sdist_unpacks_to_at_most_a_multiple_of_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpacking costs CPU: past a floor, a small upload may not unpack to gigabytes."""
    bomb = tar_sdist([member("acme-1.0/zeros", bytes(8 * 2**20)), ACME])
    path = tmp_path / "acme-1.0.tar.gz"
    path.write_bytes(bomb)
    monkeypatch.setattr(server_module, "MIN_SDIST_UNPACKED_BYTES", 2**20)
    limit = server_module.SDIST_EXPANSION * len(bomb)
    assert limit < 8 * 2**20
    with pytest.raises(server_module.SdistRefused, match=f"unpacks to more than {limit} bytes"):
        server_module.read_sdist_pkg_info(str(path), path.name)
    monkeypatch.setattr(server_module, "MIN_SDIST_UNPACKED_BYTES", 16 * 2**20)
    assert server_module.read_sdist_pkg_info(str(path), path.name) == ACME[1]
