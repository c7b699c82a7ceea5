"""morgan/server.py over real sockets: the API, files, safety, errors, auth and TLS.

The server runs as users run it (``python server.py -i INDEX -H 127.0.0.1 -p PORT``)
in a subprocess that every test terminates, over a tree made by server_support.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import http.client
import io
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from email.utils import formatdate
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from server_support import (
    HTML_V1,
    JSON_V1,
    PIP_ACCEPT,
    SERVER_SOURCE,
    ServerProcess,
    Tree,
    build_wheel,
    find_python,
    iter_chunks,
    make_cert,
    make_tree,
    raw_exchange,
    raw_get,
    sha256_hex,
    status_of,
)
from support import skip_unless_ci

from morgan import server as server_module

PROJECTS = ["alpha", "beta", "gamma", "legacy", "zope-interface"]
SECRETS = [b"hunter2", b"outside secret", b"PARTIAL DOWNLOAD", b"private notes", b"__version__ ="]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return make_tree(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module", params=["current", "3.7"])
def server(tree: Tree, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The server on this Python, and again on the oldest Python it supports, if present."""
    python = sys.executable if request.param == "current" else find_python(request.param)
    if python is None:
        skip_unless_ci(f"no Python {request.param} on this machine")
    with ServerProcess(tree.root, python=python) as running:
        yield running


@pytest.fixture
def fresh_tree(tmp_path: Path) -> Tree:
    return make_tree(tmp_path)


def json_page(server: ServerProcess, path: str) -> Any:
    response = server.request(path, {"Accept": JSON_V1})
    assert response.status == 200, response
    assert response.header("Content-Type") == JSON_V1
    return response.json()


class Anchors(HTMLParser):
    """The <a> elements of a page: (attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append((dict(attrs), ""))
        elif tag == "meta" and dict(attrs).get("name") == "pypi:repository-version":
            self.meta = dict(attrs)

    def handle_data(self, data: str) -> None:
        if self.anchors and not self.anchors[-1][1]:
            self.anchors[-1] = (self.anchors[-1][0], data)


def anchors_of(body: bytes) -> Anchors:
    parser = Anchors()
    parser.feed(body.decode("utf-8"))
    return parser


# ---------------------------------------------------------------------------
# Portability: standard library only, Python 3.7+
# ---------------------------------------------------------------------------


def test_parses_as_python_3_7() -> None:
    ast.parse(SERVER_SOURCE.read_text(), feature_version=(3, 7))


def test_vermin_finds_nothing_newer_than_python_3_7() -> None:
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    if not Path(vermin).exists():
        skip_unless_ci("vermin is not installed")
    result = subprocess.run(
        [vermin, "--target=3.7-", "--no-tips", "--violations", str(SERVER_SOURCE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse(SERVER_SOURCE.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            assert node.module is not None
            modules.add(node.module.split(".")[0])
    assert modules <= sys.stdlib_module_names, modules - sys.stdlib_module_names


def test_runs_on_python_3_7(tmp_path: Path) -> None:
    python = find_python("3.7")
    if python is None:
        skip_unless_ci("no Python 3.7 on this machine")
    tree = make_tree(tmp_path)
    with ServerProcess(tree.root, python=python) as server:
        assert json_page(server, "/simple/")["projects"] == [{"name": p} for p in PROJECTS]
        page = json_page(server, "/simple/beta/")
        wheel = tree.dist("beta-1.2-py3-none-any.whl")
        assert {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}[
            wheel.filename
        ] == wheel.sha256
        response = server.request(f"/simple/beta/{wheel.filename}", {"Range": "bytes=0-3"})
        assert (response.status, response.body) == (206, b"PK\x03\x04")
        assert server.request("/simple/../morgan.ini").status == 404


# ---------------------------------------------------------------------------
# Pure functions, in process
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "format_", "expected"),
    [
        (PIP_ACCEPT, None, JSON_V1),
        (
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
            "text/html;q=0.01",
            None,
            JSON_V1,
        ),
        ("text/html", None, "text/html"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, "text/html"),
        (HTML_V1, None, HTML_V1),
        ("application/vnd.pypi.simple.latest+json", None, JSON_V1),
        ("application/vnd.pypi.simple.latest+html", None, HTML_V1),
        ("*/*", None, HTML_V1),
        (None, None, HTML_V1),
        ("", None, HTML_V1),
        ("application/*", None, HTML_V1),
        ("text/*", None, "text/html"),
        ("application/json", None, None),
        ("application/vnd.pypi.simple.v2+json", None, None),
        ("text/html;q=0", None, None),
        ("*/*;q=0", None, None),
        (f"{JSON_V1};q=0.5, {HTML_V1};q=0.6", None, HTML_V1),
        (f"{JSON_V1};q=0, */*", None, HTML_V1),
        (f"{JSON_V1};q=0, {HTML_V1};q=0, */*", None, None),
        (f"{JSON_V1};q=0, {HTML_V1};q=0, text/*", None, "text/html"),
        (f"{JSON_V1};q=bogus, text/html;q=0.1", None, "text/html"),
        ("garbage, ;;;, /", None, None),
        ("text/html", JSON_V1, JSON_V1),
        (None, "json", JSON_V1),
        (None, "html", HTML_V1),
        (None, "text/html", "text/html"),
        (None, "application/vnd.pypi.simple.latest+json", JSON_V1),
        (None, "application/json", None),
        (None, "*/*", None),
    ],
)
def test_negotiation(accept: str | None, format_: str | None, expected: str | None) -> None:
    assert server_module.choose_media_type(accept, format_) == expected


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=90-1000", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("BYTES = 5 - 5", 100, (5, 5)),
        ("bytes=100-", 100, server_module.UNSATISFIABLE),
        ("bytes=100-200", 100, server_module.UNSATISFIABLE),
        ("bytes=-0", 100, server_module.UNSATISFIABLE),
        ("bytes=0-", 0, server_module.UNSATISFIABLE),
        ("bytes=-5", 0, server_module.UNSATISFIABLE),
        ("bytes=9-1", 100, None),
        ("bytes=-", 100, None),
        ("bytes=0-1,5-6", 100, None),
        ("items=0-1", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes=" + "9" * 40 + "-", 100, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert server_module.parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("project", "filename", "version"),
    [
        ("alpha", "alpha-1.0-py3-none-any.whl", "1.0"),
        ("alpha", "alpha-1.0-1-py3-none-any.whl", "1.0"),
        ("zope-interface", "zope.interface-5.0.tar.gz", "5.0"),
        ("foo-bar", "foo-bar-2.0rc1.tar.gz", "2.0rc1"),
        ("foo-bar", "foo_bar-2.0.zip", "2.0"),
        ("foo", "foo-1.0.tar.bz2", "1.0"),
        ("foo", "nonsense.whl", None),
    ],
)
def test_file_version(project: str, filename: str, version: str | None) -> None:
    assert server_module.file_version(project, filename) == version


def test_requires_python_of_metadata() -> None:
    read = server_module.requires_python_of
    assert read(b"Name: a\nRequires-Python: >=3.8\nVersion: 1\n\nRequires-Python: body") == ">=3.8"
    assert read(b"Name: a\r\nrequires-python:  >=3.8,\r\n   <4\r\n\r\n") == ">=3.8, <4"
    assert read(b"Name: a\nVersion: 1\n\nRequires-Python: >=3\n") is None
    assert read(b"") is None


def test_password_hashes_round_trip() -> None:
    stored = server_module.hash_password("correct horse", iterations=1000)
    scheme, iterations, salt, digest = stored.split("$")
    assert (scheme, iterations) == ("pbkdf2_sha256", "1000")
    expected = hashlib.pbkdf2_hmac("sha256", b"correct horse", salt.encode(), 1000)
    assert base64.b64decode(digest) == expected
    parsed = server_module.parse_password_hash(stored)
    assert server_module.verify_password(b"correct horse", parsed)
    assert not server_module.verify_password(b"wrong horse", parsed)
    assert server_module.hash_password("x", 1000) != server_module.hash_password("x", 1000)
    for bad in ["md5$1$a$b", "pbkdf2_sha256$x$salt$AAAA", "pbkdf2_sha256$10$salt$!!", ""]:
        with pytest.raises(ValueError):
            server_module.parse_password_hash(bad)


# ---------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/", "/simple/"])
def test_root_lists_real_project_folders_only(server: ServerProcess, prefix: str) -> None:
    document = json_page(server, prefix)
    assert document["meta"] == {"api-version": "1.1"}
    assert [p["name"] for p in document["projects"]] == PROJECTS
    response = server.request(prefix, {"Accept": "text/html"})
    assert response.header("Content-Type") == "text/html"
    page = anchors_of(response.body)
    assert page.meta.get("content") == "1.1"
    assert [(a["href"], text) for a, text in page.anchors] == [(f"{p}/", p) for p in PROJECTS]
    for absent in (b"ghost", b"hidden", b"escaped", b"empty-project", b"docs", b"otnormal"):
        assert absent not in response.body.lower()


def test_project_json_has_every_fact(server: ServerProcess, tree: Tree) -> None:
    page = json_page(server, "/simple/beta/")
    assert page["meta"] == {"api-version": "1.1"}
    assert page["name"] == "beta"
    assert page["versions"] == ["1.0", "1.2", "1.5", "2.0"]
    files = {f["filename"]: f for f in page["files"]}
    assert sorted(files) == sorted(d.filename for d in tree.project("beta"))
    for dist in tree.project("beta"):
        entry = files[dist.filename]
        assert entry["url"] == dist.filename
        assert entry["hashes"] == {"sha256": dist.sha256}
        assert entry["size"] == dist.path.stat().st_size
        assert entry["requires-python"] == dist.requires_python
        assert entry["yanked"] == dist.yanked
        assert entry.get("upload-time") == dist.upload_time
        if dist.filename.endswith(".whl"):
            assert dist.metadata is not None
            digest = {"sha256": sha256_hex(dist.metadata)}
            assert entry["core-metadata"] == digest
            assert entry["dist-info-metadata"] == digest
        else:
            assert entry["core-metadata"] is False
            assert "dist-info-metadata" not in entry
    assert files["beta-2.0-py3-none-any.whl"]["requires-python"] == ">=4"
    assert files["beta-1.5-py3-none-any.whl"]["yanked"] == "broken release"


@pytest.mark.parametrize("accept", ["text/html", HTML_V1])
def test_project_html_has_every_fact(server: ServerProcess, tree: Tree, accept: str) -> None:
    response = server.request("/simple/beta/", {"Accept": accept})
    assert response.status == 200
    assert response.header("Content-Type") == accept
    assert b'data-requires-python="&gt;=4"' in response.body
    page = anchors_of(response.body)
    assert page.meta.get("content") == "1.1"
    anchors = {text: attrs for attrs, text in page.anchors}
    assert sorted(anchors) == sorted(d.filename for d in tree.project("beta"))
    for dist in tree.project("beta"):
        attrs = anchors[dist.filename]
        assert attrs["href"] == f"{dist.filename}#sha256={dist.sha256}"
        assert attrs.get("data-requires-python") == dist.requires_python
        if dist.yanked is False:
            assert "data-yanked" not in attrs
        else:
            assert attrs["data-yanked"] == dist.yanked
        if dist.metadata is not None:
            value = f"sha256={sha256_hex(dist.metadata)}"
            assert attrs["data-core-metadata"] == value
            assert attrs["data-dist-info-metadata"] == value
        else:
            assert "data-core-metadata" not in attrs


def test_pages_are_the_same_at_root_and_simple(server: ServerProcess) -> None:
    for accept in (JSON_V1, HTML_V1, "text/html"):
        at_root = server.request("/gamma/", {"Accept": accept})
        at_simple = server.request("/simple/gamma/", {"Accept": accept})
        assert at_root.status == at_simple.status == 200
        assert at_root.body == at_simple.body


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"Accept": PIP_ACCEPT}, "", JSON_V1),
        ({"Accept": "text/html"}, "", "text/html"),
        ({"Accept": HTML_V1}, "", HTML_V1),
        ({}, "", HTML_V1),
        ({"Accept": "text/html"}, "?format=" + JSON_V1, JSON_V1),
        ({"Accept": JSON_V1}, "?format=" + HTML_V1, HTML_V1),
        ({"Accept": "application/json"}, "", None),
        ({"Accept": "image/png"}, "", None),
        ({}, "?format=application/xml", None),
    ],
)
def test_content_negotiation_over_http(
    server: ServerProcess, headers: dict[str, str], query: str, expected: str | None
) -> None:
    for path in ("/simple/", "/simple/alpha/", "/alpha/"):
        response = server.request(path + query, headers)
        if expected is None:
            assert response.status == 406
            assert b"application/vnd.pypi.simple.v1+json" in response.body
            continue
        assert response.status == 200
        assert response.header("Content-Type") == expected
        assert response.header("Vary") == "Accept"
        assert "max-age" in (response.header("Cache-Control") or "")
        if expected == JSON_V1:
            assert response.json()["meta"]["api-version"] == "1.1"
        else:
            assert response.body.startswith(b"<!DOCTYPE html>")


def test_page_etag_gives_304(server: ServerProcess) -> None:
    first = server.request("/simple/alpha/", {"Accept": JSON_V1})
    etag = first.header("ETag")
    assert etag
    again = server.request("/simple/alpha/", {"Accept": JSON_V1, "If-None-Match": etag})
    assert (again.status, again.body) == (304, b"")
    other = server.request("/simple/alpha/", {"Accept": "text/html", "If-None-Match": etag})
    assert other.status == 200


def test_head_of_a_page(server: ServerProcess) -> None:
    full = server.request("/simple/alpha/", {"Accept": JSON_V1})
    head = server.request("/simple/alpha/", {"Accept": JSON_V1}, method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(len(full.body))
    assert head.header("Content-Type") == JSON_V1


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "/simple/"),
        ("/simple?format=json", "/simple/?format=json"),
        ("/simple/alpha", "/simple/alpha/"),
        ("/alpha", "/alpha/"),
        ("/simple/Alpha/", "/simple/alpha/"),
        ("/simple/ALPHA", "/simple/alpha/"),
        ("/simple/Zope.Interface/", "/simple/zope-interface/"),
        ("/simple/zope_interface", "/simple/zope-interface/"),
        ("/Zope__Interface/", "/zope-interface/"),
        ("/simple/Zope.Interface/?format=json", "/simple/zope-interface/?format=json"),
        (
            "/simple/Beta/beta-1.0-py3-none-any.whl",
            "/simple/beta/beta-1.0-py3-none-any.whl",
        ),
    ],
)
def test_redirects(server: ServerProcess, path: str, location: str) -> None:
    response = server.request(path)
    assert response.status == 301
    assert response.header("Location") == location


def test_redirect_is_followed_by_urllib(server: ServerProcess) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/simple/Zope.Interface", headers={"Accept": JSON_V1}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.url.endswith("/simple/zope-interface/")
        assert json.load(response)["name"] == "zope-interface"


@pytest.mark.parametrize(
    "path",
    [
        "/simple/nope/",
        "/simple/nope",
        "/simple/Nope/",
        "/nope/",
        "/simple/ghost/",
        "/simple/empty-project/",
        "/simple/docs/",
        "/simple/notnormalized/",
        "/simple/NotNormalized/",
        "/simple/not-normal/",
        "/simple/alpha/alpha-9.9-py3-none-any.whl",
        "/simple/alpha/sub/",
        "/simple/alpha/a/b",
    ],
)
def test_unknown_projects_and_files_are_404(server: ServerProcess, path: str) -> None:
    assert server.request(path).status == 404


def test_an_html_only_client_resolves_through_the_pages(server: ServerProcess) -> None:
    """A client that sends ``Accept: text/html`` only, as pip did before PEP 691.

    It finds alpha, reads its dependency from the PEP 658 metadata, and picks beta
    by the data-yanked and data-requires-python attributes, checking every hash.
    """

    def fetch(url: str, accept: str | None = None) -> tuple[str, bytes]:
        request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.headers["Content-Type"], response.read()

    def links(project: str) -> list[dict[str, str]]:
        content_type, body = fetch(f"{server.url}{project}/", "text/html")
        assert content_type == "text/html"
        found = []
        for tag in re.findall(r"<a [^>]*>", body.decode()):
            attrs = dict(re.findall(r'([a-z-]+)="([^"]*)"', tag))
            found.append({k: v.replace("&gt;", ">").replace("&lt;", "<") for k, v in attrs.items()})
        return found

    def verified(project: str, link: dict[str, str]) -> bytes:
        url, _, fragment = link["href"].partition("#")
        _, data = fetch(f"{server.url}{project}/{url}")
        assert fragment == f"sha256={sha256_hex(data)}"
        return data

    (alpha,) = [link for link in links("alpha") if link["href"].startswith("alpha-1.0-py3")]
    _, metadata = fetch(f"{server.url}alpha/{alpha['href'].partition('#')[0]}.metadata")
    assert alpha["data-core-metadata"] == f"sha256={sha256_hex(metadata)}"
    assert b"Requires-Dist: beta>=1.0" in metadata
    verified("alpha", alpha)

    candidates = [
        link
        for link in links("beta")
        if link["href"].partition("#")[0].endswith(".whl")
        and "data-yanked" not in link
        and link.get("data-requires-python", "") != ">=4"
    ]
    chosen = max(candidates, key=lambda link: link["href"])
    assert chosen["href"].startswith("beta-1.2-")
    wheel = verified("beta", chosen)
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        assert "beta-1.2.dist-info/METADATA" in archive.namelist()


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def test_file_download_headers(server: ServerProcess, tree: Tree) -> None:
    wheel = tree.dist("alpha-1.0-py3-none-any.whl")
    for prefix in ("/simple/alpha/", "/alpha/"):
        response = server.request(prefix + wheel.filename)
        assert response.status == 200
        assert response.body == wheel.path.read_bytes()
        assert response.header("Content-Length") == str(wheel.path.stat().st_size)
        assert response.header("Content-Type") == "application/zip"
        assert response.header("Accept-Ranges") == "bytes"
        assert response.header("ETag")
        assert response.header("Last-Modified") == formatdate(
            wheel.path.stat().st_mtime, usegmt=True
        )
        assert "max-age=31536000" in (response.header("Cache-Control") or "")
        assert response.header("Content-Encoding") is None
    sdist = tree.dist("alpha-1.0.tar.gz")
    response = server.request("/simple/alpha/alpha-1.0.tar.gz")
    assert response.header("Content-Type") == "application/gzip"
    assert response.body == sdist.path.read_bytes()
    assert response.header("Content-Encoding") is None


def test_file_in_tree_symlink_is_served(server: ServerProcess, tree: Tree) -> None:
    response = server.request("/simple/alpha/alpha-0.9.tar.gz")
    assert response.status == 200
    assert response.body == tree.dist("beta-1.0.tar.gz").path.read_bytes()


def test_head_of_a_file(server: ServerProcess, tree: Tree) -> None:
    wheel = tree.dist("beta-1.0-py3-none-any.whl")
    response = server.request(f"/simple/beta/{wheel.filename}", method="HEAD")
    assert response.status == 200
    assert response.body == b""
    assert response.header("Content-Length") == str(wheel.path.stat().st_size)


def test_conditional_requests(server: ServerProcess, tree: Tree) -> None:
    path = "/simple/beta/beta-1.0-py3-none-any.whl"
    first = server.request(path)
    etag, modified = first.header("ETag"), first.header("Last-Modified")
    assert etag and modified
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", {etag}'},
        {"If-None-Match": f"W/{etag}"},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": formatdate(time.time() + 3600, usegmt=True)},
    ):
        response = server.request(path, headers)
        assert (response.status, response.body) == (304, b""), headers
        assert response.header("ETag") == etag
    for headers in (
        {"If-None-Match": '"other"'},
        {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"},
        {"If-Modified-Since": "not a date"},
        # If-None-Match wins over If-Modified-Since (RFC 9110, 13.2.2).
        {"If-None-Match": '"other"', "If-Modified-Since": modified},
    ):
        response = server.request(path, headers)
        assert response.status == 200, headers
        assert response.body == first.body


def test_ranges(server: ServerProcess, tree: Tree) -> None:
    wheel = tree.dist("gamma-1.0-cp39-cp39-manylinux2014_x86_64.whl")
    data = wheel.path.read_bytes()
    size = len(data)
    path = f"/simple/gamma/{wheel.filename}"
    for header, first, last in [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, size - 1),
        ("bytes=-7", size - 7, size - 1),
        (f"bytes=5-{size * 2}", 5, size - 1),
    ]:
        response = server.request(path, {"Range": header})
        assert response.status == 206, header
        assert response.body == data[first : last + 1]
        assert response.header("Content-Range") == f"bytes {first}-{last}/{size}"
        assert response.header("Content-Length") == str(last - first + 1)
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = server.request(path, {"Range": header})
        assert response.status == 416, header
        assert response.header("Content-Range") == f"bytes */{size}"
    for header in ("bytes=0-1,4-5", "bytes=5-1", "pages=1-2"):
        response = server.request(path, {"Range": header})
        assert (response.status, response.body) == (200, data), header
    etag = server.request(path).header("ETag")
    assert etag
    resumed = server.request(path, {"Range": "bytes=3-", "If-Range": etag})
    assert (resumed.status, resumed.body) == (206, data[3:])
    changed = server.request(path, {"Range": "bytes=3-", "If-Range": '"stale"'})
    assert (changed.status, changed.body) == (200, data)
    modified = server.request(path).header("Last-Modified")
    assert modified
    by_date = server.request(path, {"Range": "bytes=3-", "If-Range": modified})
    assert by_date.status == 206
    old = server.request(path, {"Range": "bytes=3-", "If-Range": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert old.status == 200


def test_core_metadata_files(server: ServerProcess, tree: Tree) -> None:
    for dist in tree.project("beta"):
        response = server.request(f"/simple/beta/{dist.filename}.metadata")
        if dist.metadata is None:
            assert response.status == 404  # sdists: none advertised, none served
        else:
            assert response.status == 200
            assert response.body == dist.metadata
            assert sha256_hex(response.body) == sha256_hex(dist.metadata)
    assert server.request("/simple/beta/beta-9.9-py3-none-any.whl.metadata").status == 404


def test_morgan_0_15_tree_with_sidecars_only(server: ServerProcess, tree: Tree) -> None:
    assert not (tree.root / "legacy" / "index.json").exists()
    page = json_page(server, "/simple/legacy/")
    files = {f["filename"]: f for f in page["files"]}
    wheel, sdist = tree.project("legacy")
    assert wheel.metadata is not None
    assert files[wheel.filename]["hashes"] == {"sha256": wheel.sha256}
    assert files[wheel.filename]["requires-python"] == ">=3.6"
    assert files[wheel.filename]["core-metadata"] == {"sha256": sha256_hex(wheel.metadata)}
    assert files[sdist.filename]["hashes"] == {"sha256": sdist.sha256}
    assert files[sdist.filename]["requires-python"] is None
    assert page["versions"] == ["0.1"]
    metadata = server.request(f"/simple/legacy/{wheel.filename}.metadata")
    assert metadata.body == wheel.metadata
    download = server.request(f"/simple/legacy/{sdist.filename}")
    assert download.body == sdist.path.read_bytes()


def test_keep_alive_serves_several_requests_on_one_connection(server: ServerProcess) -> None:
    connection = server.connection()
    try:
        sockets = []
        for path in ("/simple/", "/simple/alpha/", "/simple/alpha/alpha-1.0.tar.gz") * 2:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            sockets.append(connection.sock)
        assert len({id(s) for s in sockets}) == 1
    finally:
        connection.close()


def test_http_1_0_clients(server: ServerProcess) -> None:
    reply = raw_exchange(server.port, b"GET /simple/ HTTP/1.0\r\n\r\n")  # closed after one
    assert status_of(reply) == 200
    assert b"Connection: close" in reply
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(b"GET /simple/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        assert response.getheader("Connection") == "keep-alive"
        response.read()
        sock.sendall(b"HEAD /simple/alpha/ HTTP/1.0\r\n\r\n")
        with sock.makefile("rb") as stream:
            rest = stream.read()  # the server closes after this one
    assert rest.startswith(b"HTTP/1.1 200 ")


# ---------------------------------------------------------------------------
# Safety
# ---------------------------------------------------------------------------

PRIVATE_TARGETS = [
    "/morgan.ini",
    "/simple/morgan.ini",
    "/server.py",
    "/simple/server.py",
    "/index.html",
    "/index.json",
    "/simple/index.json",
    "/simple/alpha/index.json",
    "/simple/alpha/index.html",
    "/alpha/index.json",
    "/simple/alpha/alpha-1.0-py3-none-any.whl.hash",
    "/simple/legacy/legacy-0.1.tar.gz.hash",
    "/simple/alpha/.alpha-1.0-py3-none-any.whl.x7k2.part",
    "/simple/alpha/notes.txt",
    "/simple/alpha/stolen-1.0-py3-none-any.whl",
    "/simple/alpha/stolen-1.0-py3-none-any.whl.metadata",
    "/simple/alpha/secret-1.0.tar.gz",
    "/simple/escaped/",
    "/simple/escaped/secret.txt",
    "/simple/escaped/stolen-1.0-py3-none-any.whl",
    "/simple/.hidden/",
    "/simple/.hidden/hidden-1.0-py3-none-any.whl",
    "/.hidden/hidden-1.0-py3-none-any.whl",
    "/simple/NotNormalized/notnormalized-1.0-py3-none-any.whl",
    "/simple/../morgan.ini",
    "/../morgan.ini",
    "/..",
    "/simple/..",
    "/simple/alpha/../../morgan.ini",
    "/simple/alpha/../alpha-1.0.tar.gz",
    "/simple/./alpha/",
    "/simple/%2e%2e/morgan.ini",
    "/simple/%2E%2E/%2e%2e/morgan.ini",
    "/simple/alpha/%2e%2e/%2e%2e/morgan.ini",
    "/simple/alpha/..%2Fmorgan.ini",
    "/simple/alpha/..%2F..%2Fmorgan.ini",
    "/simple/alpha%2F..%2F..%2Fmorgan.ini",
    "/simple/alpha%2falpha-1.0.tar.gz",
    "/simple/%2e%2e%2fmorgan.ini",
    "/simple/..%5Cmorgan.ini",
    "/simple/alpha/..\\..\\morgan.ini",
    "/simple/alpha/..%5c..%5cmorgan.ini",
    "/simple/alpha\\..\\morgan.ini",
    "/simple/alpha/alpha-1.0-py3-none-any.whl%00.hash",
    "/simple/alpha/alpha-1.0.tar.gz%00",
    "/simple/alpha%00/",
    "/simple/%00/",
    "//etc/passwd",
    "///etc/passwd",
    "/simple//etc/passwd",
    "/etc/passwd",
    "/%2Fetc%2Fpasswd",
    "/simple/%2Fetc%2Fpasswd",
    "/simple/alpha/%2Fetc%2Fpasswd",
    "/simple/alpha//etc/passwd",
    "/simple/alpha/%2e",
    "/simple/alpha/%c0%ae%c0%ae/morgan.ini",
    "/simple/alpha/%ff",
    "/simple/alpha/%0d%0aSet-Cookie:%20x",
    "/simple/~/",
    "/proc/self/environ",
    "/simple/alpha/alpha-1.0.tar.gz/..",
    "/simple/alpha/alpha-1.0.tar.gz/",
    "/simple/alpha/C:%5Cmorgan.ini",
    "/simple/alpha/C:..%5C..%5Cmorgan.ini",
    "/simple/C:/",
]


@pytest.mark.parametrize("target", PRIVATE_TARGETS)
def test_nothing_outside_the_public_names_is_served(server: ServerProcess, target: str) -> None:
    status, reply = raw_get(server.port, target)
    assert status in (400, 404), reply[:300]
    for secret in SECRETS:
        assert secret not in reply
    assert b"Set-Cookie" not in reply.split(b"\r\n\r\n")[0]


def test_absolute_form_request_target_is_held_to_the_same_rules(server: ServerProcess) -> None:
    status, _ = raw_get(server.port, f"http://127.0.0.1:{server.port}/simple/alpha/")
    assert status == 200
    status, reply = raw_get(server.port, f"http://127.0.0.1:{server.port}/simple/../morgan.ini")
    assert status == 404
    assert b"hunter2" not in reply


def test_project_pages_list_no_private_file(server: ServerProcess) -> None:
    for accept in (JSON_V1, "text/html"):
        body = server.request("/simple/alpha/", {"Accept": accept}).body
        for absent in (b"stolen", b"secret", b".part", b"notes", b".hash", b"index.json"):
            assert absent not in body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET / HTTX/1.1\r\nHost: x\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nthis line has no colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
)
def test_malformed_requests_get_400(server: ServerProcess, request_bytes: bytes) -> None:
    reply = raw_exchange(server.port, request_bytes)
    assert status_of(reply) == 400
    assert b"Traceback" not in reply
    assert server.alive()
    assert server.request("/simple/").status == 200


def test_long_request_line_gets_414(server: ServerProcess) -> None:
    reply = raw_exchange(server.port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) == 414


def test_other_methods_are_refused(server: ServerProcess) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        response = server.request("/simple/", method=method)
        assert response.status == 405
        assert response.header("Allow") == "GET, HEAD"
    reply = raw_exchange(server.port, b"BREW /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) == 501


def test_access_log_has_one_line_per_request(server: ServerProcess) -> None:
    marker = f"/simple/log-marker-{time.monotonic_ns()}/"
    assert server.request(marker).status == 404
    assert server.request("/simple/beta/", {"Accept": JSON_V1}).status == 200
    for _ in range(100):  # the line is written just after the reply; give it a moment
        lines = [line for line in server.stderr().splitlines() if marker in line]
        if lines:
            break
        time.sleep(0.05)
    assert len(lines) == 1
    pattern = r'^127\.0\.0\.1 - - \[.*\] "GET ' + re.escape(marker) + r' HTTP/1\.1" 404 '
    assert re.search(pattern, lines[0]), lines
    assert "Traceback" not in server.stderr()


def test_quiet_server_logs_no_requests(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    with ServerProcess(tree.root, "--quiet") as server:
        for path in ("/simple/", "/simple/alpha/", "/simple/nope/"):
            server.request(path)
        server.raw(b"GARBAGE\r\n\r\n")
        assert server.request("/simple/").status == 200
        assert "GET /simple/" not in server.stderr()


# ---------------------------------------------------------------------------
# A live tree: files dropped in by hand, no restart
# ---------------------------------------------------------------------------


def test_hand_dropped_files_show_up_without_restart(fresh_tree: Tree) -> None:
    tree = fresh_tree
    with ServerProcess(tree.root) as server:
        before = json_page(server, "/simple/beta/")
        assert "beta-3.0-py3-none-any.whl" not in {f["filename"] for f in before["files"]}
        # A wheel copied in by hand: no sidecars, not in index.json.
        path, metadata = build_wheel(
            tree.root / "beta", "beta", "3.0", requires_python=">=3.8", requires_dist=["alpha"]
        )
        page = json_page(server, "/simple/beta/")
        entry = {f["filename"]: f for f in page["files"]}[path.name]
        assert entry["hashes"] == {"sha256": sha256_hex(path.read_bytes())}
        assert entry["requires-python"] == ">=3.8"
        assert entry["core-metadata"] == {"sha256": sha256_hex(metadata)}
        assert entry["yanked"] is False
        assert entry["size"] == path.stat().st_size
        assert "3.0" in page["versions"]
        served = server.request(f"/simple/beta/{path.name}.metadata")
        assert (served.status, served.body) == (200, metadata)
        html_page = server.request("/simple/beta/", {"Accept": "text/html"}).body
        assert f'data-core-metadata="sha256={sha256_hex(metadata)}"'.encode() in html_page

        # The same name replaced by other bytes: the cached hash must not be reused.
        time.sleep(0.01)
        path2, _ = build_wheel(tree.root / "beta", "beta", "3.0", requires_python=">=3.9")
        assert path2 == path
        entry = {f["filename"]: f for f in json_page(server, "/simple/beta/")["files"]}[path.name]
        assert entry["hashes"] == {"sha256": sha256_hex(path.read_bytes())}
        assert entry["requires-python"] == ">=3.9"

        # A .hash sidecar is believed for files index.json does not list.
        marker = "ab" * 32
        Path(f"{path}.hash").write_text(f"sha256={marker}")
        entry = {f["filename"]: f for f in json_page(server, "/simple/beta/")["files"]}[path.name]
        assert entry["hashes"] == {"sha256": marker}

        # A new project folder appears in the root list once it holds a distribution.
        (tree.root / "delta").mkdir()
        (tree.root / "delta" / ".delta-1.0.tar.gz.abc.part").write_bytes(b"partial")
        assert "delta" not in [p["name"] for p in json_page(server, "/simple/")["projects"]]
        assert server.request("/simple/delta/").status == 404
        build_wheel(tree.root / "delta", "delta", "1.0")
        assert "delta" in [p["name"] for p in json_page(server, "/simple/")["projects"]]
        assert json_page(server, "/simple/delta/")["versions"] == ["1.0"]

        # Names that need quoting in URLs (a local version) are linked quoted and served.
        local, _ = build_wheel(tree.root / "beta", "beta", "3.1+local.1")
        entry = {f["filename"]: f for f in json_page(server, "/simple/beta/")["files"]}[local.name]
        assert entry["url"] == "beta-3.1%2Blocal.1-py3-none-any.whl"
        assert server.request("/simple/beta/" + entry["url"]).body == local.read_bytes()

        # A file removed is gone from the page and 404s.
        path.unlink()
        assert path.name not in server.request("/simple/beta/").body.decode()
        assert server.request(f"/simple/beta/{path.name}").status == 404


def test_a_file_replaced_after_the_mirrorer_wrote_index_json(fresh_tree: Tree) -> None:
    tree = fresh_tree
    dist = tree.dist("beta-1.0-py3-none-any.whl")
    build_wheel(tree.root / "beta", "beta", "1.0", requires_python=">=3.1")  # other bytes
    with ServerProcess(tree.root) as server:
        entry = {f["filename"]: f for f in json_page(server, "/simple/beta/")["files"]}[
            dist.filename
        ]
        assert entry["hashes"] == {"sha256": dist.sha256}  # recomputed, not the stale one
        assert entry["size"] == dist.path.stat().st_size


def test_wheel_without_readable_metadata_is_listed_without_core_metadata(
    fresh_tree: Tree,
) -> None:
    tree = fresh_tree
    broken = tree.root / "beta" / "beta-4.0-py3-none-any.whl"
    broken.write_bytes(b"this is not a zip file")
    with zipfile.ZipFile(tree.root / "beta" / "beta-5.0-py3-none-any.whl", "w") as archive:
        archive.writestr("beta/__init__.py", "")  # no .dist-info at all
    with ServerProcess(tree.root) as server:
        files = {f["filename"]: f for f in json_page(server, "/simple/beta/")["files"]}
        for name in ("beta-4.0-py3-none-any.whl", "beta-5.0-py3-none-any.whl"):
            assert files[name]["core-metadata"] is False
            assert server.request(f"/simple/beta/{name}.metadata").status == 404
            assert server.request(f"/simple/beta/{name}").status == 200


def test_no_metadata_option(tree: Tree) -> None:
    with ServerProcess(tree.root, "--no-metadata") as server:
        page = json_page(server, "/simple/beta/")
        for entry in page["files"]:
            assert entry["core-metadata"] is False
            assert "dist-info-metadata" not in entry
        # Facts that came from metadata are still there.
        assert {f["filename"]: f for f in page["files"]}["beta-2.0-py3-none-any.whl"][
            "requires-python"
        ] == ">=4"
        legacy = json_page(server, "/simple/legacy/")["files"]
        assert legacy[0]["requires-python"] == ">=3.6"
        body = server.request("/simple/beta/", {"Accept": "text/html"}).body
        assert b"data-core-metadata" not in body
        assert b"data-dist-info-metadata" not in body
        response = server.request("/simple/beta/beta-1.0-py3-none-any.whl.metadata")
        assert response.status == 404
        assert server.request("/simple/beta/beta-1.0-py3-none-any.whl").status == 200


def test_index_defaults_to_the_current_folder(tree: Tree) -> None:
    with ServerProcess(tree.root, use_index_flag=False) as server:
        assert [p["name"] for p in json_page(server, "/")["projects"]] == PROJECTS
        assert str(tree.root) in server.stdout()


def test_banner_tells_the_url_for_pip(server: ServerProcess, tree: Tree) -> None:
    banner = server.stdout().splitlines()[0]
    assert banner.startswith(f"Serving {tree.root} at http://127.0.0.1:{server.port}/simple/")
    assert f"--index-url http://127.0.0.1:{server.port}/simple/" in banner


# ---------------------------------------------------------------------------
# Errors of the user: one line, no traceback, non-zero exit
# ---------------------------------------------------------------------------


def run_server_command(
    tree: Tree, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tree.root / "server.py"), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        cwd=tree.root,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


def test_port_in_use(tree: Tree) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server_command(tree, "-i", str(tree.root), "-H", "127.0.0.1", "-p", str(port))
    assert_one_line_error(result, str(port), "in use")


def test_missing_index_folder(tree: Tree) -> None:
    result = run_server_command(tree, "-i", str(tree.root / "nowhere"), "-p", "0")
    assert_one_line_error(result, "nowhere")


def test_bad_certificate(tree: Tree, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = run_server_command(tree, "-H", "127.0.0.1", "-p", "0", "--certfile", str(bad))
    assert_one_line_error(result, "bad.pem")
    result = run_server_command(tree, "-p", "0", "--certfile", str(tmp_path / "missing.pem"))
    assert_one_line_error(result, "missing.pem")
    result = run_server_command(tree, "-p", "0", "--keyfile", str(bad))
    assert_one_line_error(result, "--certfile")


def test_bad_auth_file(tree: Tree, tmp_path: Path) -> None:
    auth = tmp_path / "users"
    auth.write_text("alice:plaintext\n")
    result = run_server_command(tree, "-p", "0", "--auth-file", str(auth))
    assert_one_line_error(result, "line 1")
    result = run_server_command(tree, "-p", "0", "--auth-file", str(tmp_path / "none"))
    assert_one_line_error(result, "none")


def test_bad_arguments_exit_with_usage(tree: Tree) -> None:
    result = run_server_command(tree, "-p", "not-a-port")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr


def test_main_returns_the_exit_status(tmp_path: Path) -> None:
    assert server_module.main(["-i", str(tmp_path / "nowhere")]) == 2
    assert server_module.main(["--help"]) == 0


# ---------------------------------------------------------------------------
# Auth and TLS
# ---------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_hash_password_command(tree: Tree) -> None:
    result = run_server_command(
        tree, "hash-password", "alice", "--iterations", "1000", stdin="s3cret pass\n"
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    match = re.fullmatch(r"alice:pbkdf2_sha256\$1000\$([^$]+)\$([A-Za-z0-9+/=]+)", line)
    assert match, line
    salt, digest = match.groups()
    expected = hashlib.pbkdf2_hmac("sha256", b"s3cret pass", salt.encode(), 1000)
    assert base64.b64decode(digest) == expected
    default = run_server_command(tree, "hash-password", "bob", stdin="pw\n")
    assert default.stdout.startswith("bob:pbkdf2_sha256$600000$")
    assert_one_line_error(run_server_command(tree, "hash-password", "a:b", stdin="x\n"), "':'")
    assert_one_line_error(run_server_command(tree, "hash-password", "carol", stdin=""), "empty")


@pytest.fixture(scope="module")
def auth_server(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("auth")
    auth = folder / "users"
    lines = [
        "# users of the mirror",
        "alice:" + server_module.hash_password("wonderland", 1000),
        "",
        "bob:" + server_module.hash_password("pässwörd", 1000),
    ]
    auth.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with ServerProcess(tree.root, "--auth-file", str(auth), logs=folder) as running:
        yield running


def test_auth_required(auth_server: ServerProcess) -> None:
    for headers in (
        {},
        basic("alice", "wrong"),
        basic("mallory", "wonderland"),
        basic("alice", ""),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer abc"},
    ):
        for path in ("/simple/", "/simple/alpha/", "/simple/alpha/alpha-1.0.tar.gz", "/x/../y"):
            response = auth_server.request(path, headers)
            assert response.status == 401, (path, headers)
            challenge = response.header("WWW-Authenticate") or ""
            assert challenge.startswith("Basic realm=")


def test_auth_accepts_the_users(auth_server: ServerProcess, tree: Tree) -> None:
    for user, password in (("alice", "wonderland"), ("bob", "pässwörd")):
        headers = {**basic(user, password), "Accept": JSON_V1}
        assert auth_server.request("/simple/", headers).json()["projects"]
        response = auth_server.request("/simple/alpha/alpha-1.0.tar.gz", headers)
        assert response.body == tree.dist("alpha-1.0.tar.gz").path.read_bytes()
        assert "private" in (response.header("Cache-Control") or "")
        assert auth_server.request("/simple/morgan.ini", headers).status == 404
    assert " - alice [" in auth_server.stderr()


def test_auth_file_is_reread_when_it_changes(tree: Tree, tmp_path: Path) -> None:
    auth = tmp_path / "users"
    auth.write_text("alice:" + server_module.hash_password("one", 1000) + "\n")
    with ServerProcess(tree.root, "--auth-file", str(auth)) as server:
        assert server.request("/simple/", basic("alice", "one")).status == 200
        auth.write_text("alice:" + server_module.hash_password("two", 1000) + "\n")
        assert server.request("/simple/", basic("alice", "one")).status == 401
        assert server.request("/simple/", basic("alice", "two")).status == 200
        auth.write_text("garbage\n")  # a broken edit keeps the users that were there
        assert server.request("/simple/", basic("alice", "two")).status == 200


def test_tls(tree: Tree, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with ServerProcess(tree.root, "--certfile", str(cert), "--keyfile", str(key)) as server:
        assert "https://127.0.0.1:" in server.stdout()
        server.ssl_context = ssl.create_default_context(cafile=str(cert))
        assert [p["name"] for p in json_page(server, "/simple/")["projects"]] == PROJECTS
        response = server.request("/simple/alpha/alpha-1.0.tar.gz", {"Range": "bytes=0-1"})
        assert (response.status, response.body) == (206, b"\x1f\x8b")
        full = server.request("/simple/alpha/alpha-1.0-py3-none-any.whl")
        assert full.body == tree.dist("alpha-1.0-py3-none-any.whl").path.read_bytes()
        # Plain HTTP, and a client that never finishes its handshake, harm nobody else.
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                plain.request("GET", "/simple/")
                plain.getresponse().read()
                raise ConnectionError("no")  # either way: no page over plain HTTP
            finally:
                plain.close()
        with socket.create_connection(("127.0.0.1", server.port)):
            assert server.request("/simple/").status == 200
        assert server.alive()


def test_tls_with_key_inside_the_certificate_file(tree: Tree, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    both = tmp_path / "both.pem"
    both.write_text(cert.read_text() + key.read_text())
    with ServerProcess(tree.root, "--certfile", str(both)) as server:
        server.ssl_context = ssl.create_default_context(cafile=str(cert))
        assert server.request("/simple/").status == 200


# ---------------------------------------------------------------------------
# Robustness: timeouts, handler errors, memory with large files
# ---------------------------------------------------------------------------


def test_idle_and_stalled_clients_are_disconnected(tree: Tree) -> None:
    with ServerProcess(tree.root, "--timeout", "1") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as idle:
            assert idle.recv(1024) == b""  # closed by the server, not by us
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as slow:
            slow.sendall(b"GET /simple/ HTTP/1.1\r\nHost:")
            assert slow.recv(1024) == b""
        assert server.request("/simple/").status == 200
        assert "Traceback" not in server.stderr()


def test_handler_error_gives_500_and_the_server_goes_on(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = server_module.build_parser().parse_args(
        ["-i", str(tree.root), "-H", "127.0.0.1", "-p", "0", "--quiet"]
    )
    httpd = server_module.make_server(options)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    errors: list[str] = []
    monkeypatch.setattr(server_module, "log_line", errors.append)
    try:
        port = httpd.server_address[1]

        def broken(self: Any) -> list[str]:
            raise RuntimeError("boom")

        monkeypatch.setattr(server_module.Tree, "projects", broken)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", "/simple/")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 500
            assert b"boom" not in body
            assert b"Traceback" not in body
            connection.request("GET", "/simple/alpha/")  # same connection, still usable
            response = connection.getresponse()
            assert response.status == 200
            response.read()
        finally:
            connection.close()
        assert any("RuntimeError: boom" in error for error in errors)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=60)


BIG = 2 * 1024**3
MARKERS = {0: b"BEGIN", BIG // 2: b"MIDDLE", BIG - 3: b"END"}


def test_large_file_to_many_clients_keeps_memory_flat(tmp_path: Path) -> None:
    """2 GiB (sparse) to 4 clients at once, plus resumed ranges; the server's peak RSS stays low."""
    tree = make_tree(tmp_path)
    folder = tree.root / "big"
    folder.mkdir()
    big = folder / "big-1.0.tar.gz"
    with big.open("wb") as stream:
        stream.truncate(BIG)
        for offset, marker in MARKERS.items():
            stream.seek(offset)
            stream.write(marker)
    Path(f"{big}.hash").write_text("sha256=" + "0" * 64)  # never hash 2 GiB for this test
    with ServerProcess(tree.root, "--quiet") as server:
        assert server.request("/simple/big/").status == 200
        before = server.memory_kb()
        results: dict[int, tuple[int, dict[int, bytes]]] = {}
        failures: list[BaseException] = []

        def download(number: int) -> None:
            try:
                connection = server.connection(timeout=300)
                try:
                    connection.request("GET", "/simple/big/big-1.0.tar.gz")
                    response = connection.getresponse()
                    assert response.status == 200
                    assert response.getheader("Content-Length") == str(BIG)
                    seen, position = {}, 0
                    for chunk in iter_chunks(response):
                        for offset, marker in MARKERS.items():
                            if position <= offset < position + len(chunk):
                                start = offset - position
                                seen[offset] = chunk[start : start + len(marker)]
                        position += len(chunk)
                    results[number] = (position, seen)
                finally:
                    connection.close()
            except BaseException as error:  # reported in the main thread
                failures.append(error)

        threads = [threading.Thread(target=download, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        peak_during = 0
        while any(thread.is_alive() for thread in threads):
            peak_during = max(peak_during, server.memory_kb()["VmRSS"])
            time.sleep(0.2)
        for thread in threads:
            thread.join()
        assert not failures, failures
        for size, seen in results.values():
            assert size == BIG
            assert seen == {offset: marker for offset, marker in MARKERS.items()}
        # Resuming near the end of the file.
        tail = server.request("/simple/big/big-1.0.tar.gz", {"Range": f"bytes={BIG - 10}-"})
        assert tail.status == 206
        assert tail.body == bytes(7) + b"END"
        after = server.memory_kb()
        assert after["VmHWM"] < 100 * 1024, (before, after, peak_during)
        assert after["VmRSS"] - before["VmRSS"] < 30 * 1024, (before, after)
