"""The tree as a static site: real nginx with contrib/nginx/morgan.conf, real pip and uv.

A tree mirrored from the local fixture index is served by Debian's nginx with
the shipped configuration, changed only in its ``listen`` and ``root`` lines (as
an operator would). pip and uv install through it and get the PEP 691 JSON pages
(nginx's access log says which type each page went out as); a browser gets
HTML; every name morgan's own server keeps private answers 404; every URL of
every page resolves from ``/`` and from ``/simple/`` alike. The same tree also
installs as a ``file://`` index, with no server at all.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from server_support import installed_versions, pip_args, run, uv_path
from support import populate_many, skip_unless_ci
from upstream import FixtureIndex

from morgan.cli import main
from morgan.generate import environment_block

pytestmark = pytest.mark.clients

CONF = Path(__file__).resolve().parent.parent / "contrib" / "nginx" / "morgan.conf"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
EXPECTED = {"alpha": "1.0", "zope-iface": "2.0"}


# -- the tree, and nginx serving it --------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree written by `morgan mirror`, for this machine: alpha needs zope.iface."""
    base = tmp_path_factory.mktemp("nginx-tree")
    dists = base / "dists"
    index = base / "index"
    with FixtureIndex("json") as upstream:
        upstream.add(build_wheel(dists, "alpha", "1.0", requires=["zope.iface>=2"]))
        upstream.add(build_sdist(dists, "alpha", "1.0", requires=["zope.iface>=2"]))
        upstream.add(build_wheel(dists, "zope.iface", "1.0"))
        upstream.add(build_wheel(dists, "zope.iface", "2.0"))
        config = index / "morgan.ini"
        index.mkdir(parents=True)
        config.write_text(environment_block("here") + "\n[requirements]\nalpha =\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["-q", "-i", str(index), "-c", str(config), "-I", upstream.url, "mirror"])
        assert code == 0, out.getvalue()
    assert (index / "server.py").is_file() and (index / "pylock.here.toml").is_file()
    return index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def site_config(root: Path, port: int) -> str:
    """The shipped file with its two CHANGE lines set, and nothing else touched."""
    text = CONF.read_text()
    changed = re.sub(
        r"(?m)^(\s*)listen \S+;(\s*# CHANGE)", rf"\g<1>listen 127.0.0.1:{port};\2", text
    )
    changed = re.sub(r"(?m)^(\s*)root \S+;(\s*# CHANGE)", rf"\g<1>root {root};\2", changed)
    differing = [
        (a, b) for a, b in zip(text.splitlines(), changed.splitlines(), strict=True) if a != b
    ]
    assert len(differing) == 2, differing
    return changed


@dataclass
class Nginx:
    url: str
    access_log: Path

    def page_types(self) -> list[tuple[str, str]]:
        """(path, Content-Type) of every page request in the access log so far."""
        found = []
        for line in self.access_log.read_text().splitlines():
            path, status, content_type = line.split("\t")
            if path.endswith("/") and status == "200":
                found.append((path, content_type))
        return found


def nginx_binary() -> str:
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        skip_unless_ci("nginx is not installed (Debian: apt-get install nginx)")
    return binary


@contextlib.contextmanager
def running_nginx(root: Path, prefix: Path) -> Iterator[Nginx]:
    """nginx serving ``root`` with the shipped file, its own files in ``prefix``."""
    binary = nginx_binary()
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "morgan.conf").write_text(site_config(root, port))
    temp = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""  # the tree is in a 0700 folder
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    log_format morgan '$request_uri\\t$status\\t$sent_http_content_type';\n"
        f"    access_log {prefix / 'access.log'} morgan;\n"
        f"{temp}"
        "    gzip on;\n"  # as Debian's nginx.conf has it
        f"    include {prefix / 'morgan.conf'};\n"
        "}\n"
    )
    check = subprocess.run(
        [binary, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (prefix / "error.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield Nginx(f"http://127.0.0.1:{port}", prefix / "access.log")
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def nginx(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with running_nginx(tree, tmp_path_factory.mktemp("nginx")) as running:
        yield running


# -- a plain HTTP client that shows redirects instead of following them ----------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, **headers: str) -> Answer:
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Answer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers.items()), error.read())


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links += [value for name, value in attrs if name == "href" and value]


def html_links(body: bytes) -> list[str]:
    parser = _Links()
    parser.feed(body.decode("utf-8"))
    return [link.split("#", 1)[0] for link in parser.links]


# -- installers ----------------------------------------------------------------------------------


def pip_install(index_url: str, target: Path) -> dict[str, str]:
    run([sys.executable, "-m", "pip", "install", *pip_args(index_url), "--target", str(target),
         "alpha"])  # fmt: skip
    return installed_versions(target)


def uv_install(index_url: str, target: Path) -> dict[str, str]:
    uv = uv_path()
    if uv is None:
        skip_unless_ci("uv is not installed")
    run([uv, "pip", "install", "--no-cache", "--no-config", "--no-python-downloads",
         "--python", sys.executable, "--index-url", index_url, "--target", str(target),
         "alpha"])  # fmt: skip
    return installed_versions(target)


@pytest.mark.parametrize("prefix", ["/simple/", "/"])
def test_pip_installs_through_nginx_and_gets_json(
    nginx: Nginx, prefix: str, tmp_path: Path
) -> None:
    before = len(nginx.page_types())
    assert pip_install(nginx.url + prefix, tmp_path / "target") == EXPECTED
    pages = nginx.page_types()[before:]
    assert pages, "pip asked for no page"
    assert {content_type for _, content_type in pages} == {JSON_TYPE}, pages


@pytest.mark.parametrize("prefix", ["/simple/", "/"])
def test_uv_installs_through_nginx_and_gets_json(nginx: Nginx, prefix: str, tmp_path: Path) -> None:
    before = len(nginx.page_types())
    assert uv_install(nginx.url + prefix, tmp_path / "target") == EXPECTED
    pages = nginx.page_types()[before:]
    assert pages, "uv asked for no page"
    assert {content_type for _, content_type in pages} == {JSON_TYPE}, pages


def test_pip_and_uv_install_from_a_file_url(tree: Path, tmp_path: Path) -> None:
    url = tree.as_uri() + "/"
    assert pip_install(url, tmp_path / "pip") == EXPECTED
    assert uv_install(url, tmp_path / "uv") == EXPECTED


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (PIP_ACCEPT, JSON_TYPE),
        (UV_ACCEPT, JSON_TYPE),
        ("application/vnd.pypi.simple.latest+json", JSON_TYPE),
        ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
        (BROWSER_ACCEPT, "text/html"),
        ("", "text/html"),
    ],
)
def test_the_accept_header_picks_the_page(nginx: Nginx, accept: str, content_type: str) -> None:
    for path in ("/", "/simple/", "/alpha/", "/simple/alpha/"):
        answer = get(nginx.url + path, **({"Accept": accept} if accept else {}))
        assert answer.status == 200, path
        assert answer.headers["Content-Type"] == content_type, path
        assert answer.headers["Vary"] == "Accept"
        assert answer.headers["Cache-Control"] == "public, max-age=60"
        if content_type == JSON_TYPE:
            assert json.loads(answer.body)["meta"]["api-version"] == "1.1"
        else:
            assert b"pypi:repository-version" in answer.body


PRIVATE = [
    "morgan.ini",
    "server.py",
    "index.html",
    "index.json",
    "pylock.here.toml",
    "manifest.json",
    ".morgan.lock",
    ".morgan-plans.json",
    "alpha/index.json",
    "alpha/index.html",
    "alpha/.morgan-state.json",
    "alpha/alpha-1.0-py3-none-any.whl.hash",
    "alpha/.alpha-1.0-py3-none-any.whl.part",
    "alpha/.index.json.x1y2.part",
    "alpha/alpha-1.0.tar.gz.metadata",
    "alpha/nothing-9.0-py3-none-any.whl",
    "alpha/../morgan.ini",
    "%2e%2e/morgan.ini",
    "alpha/%2e%2e/morgan.ini",
    "alpha%2findex.json",
    "ALPHA/",
    ".hidden/",
    "no-such-project/",
]


@pytest.mark.parametrize("path", PRIVATE)
@pytest.mark.parametrize("prefix", ["/", "/simple/"])
def test_every_private_name_answers_404(nginx: Nginx, tree: Path, prefix: str, path: str) -> None:
    # leftovers a run may leave or write next to the files being served
    for name in ("alpha/.alpha-1.0-py3-none-any.whl.part", "alpha/.index.json.x1y2.part"):
        (tree / name).write_bytes(b"partial")
    answer = get(nginx.url + prefix + path, Accept=PIP_ACCEPT)
    assert answer.status in (400, 404), (prefix + path, answer.status, answer.body[:200])
    assert b"[env." not in answer.body and b"import" not in answer.body


@pytest.mark.parametrize("accept", [PIP_ACCEPT, BROWSER_ACCEPT])
def test_every_url_of_every_page_resolves_from_both_prefixes(
    nginx: Nginx, tree: Path, accept: str
) -> None:
    for prefix in ("/", "/simple/"):
        root_url = nginx.url + prefix
        root = get(root_url, Accept=accept)
        if accept == PIP_ACCEPT:
            projects = [p["name"] + "/" for p in json.loads(root.body)["projects"]]
        else:
            projects = html_links(root.body)
        assert sorted(projects) == ["alpha/", "zope-iface/"]
        for link in projects:
            assert not urllib.parse.urlsplit(link).netloc and not link.startswith("/")
            page_url = urllib.parse.urljoin(root_url, link)
            page = get(page_url, Accept=accept)
            assert page.status == 200, page_url
            if accept == PIP_ACCEPT:
                files = json.loads(page.body)["files"]
                urls = [f["url"] for f in files]
                urls += [f["url"] + ".metadata" for f in files if f.get("core-metadata")]
            else:
                urls = html_links(page.body)
            assert urls
            for url in urls:
                assert not urllib.parse.urlsplit(url).netloc and not url.startswith("/")
                answer = get(urllib.parse.urljoin(page_url, url))
                assert answer.status == 200, urllib.parse.urljoin(page_url, url)
                on_disk = tree / link / urllib.parse.unquote(url)
                assert answer.body == on_disk.read_bytes()


def test_files_are_cached_long_pages_briefly_and_ranges_work(nginx: Nginx, tree: Path) -> None:
    wheel = "alpha/alpha-1.0-py3-none-any.whl"
    answer = get(f"{nginx.url}/simple/{wheel}")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/zip"
    assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Encoding" not in answer.headers
    sdist = get(f"{nginx.url}/simple/alpha/alpha-1.0.tar.gz", **{"Accept-Encoding": "gzip"})
    assert sdist.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in sdist.headers  # never undone by a client
    assert sdist.body == (tree / "alpha" / "alpha-1.0.tar.gz").read_bytes()
    part = get(f"{nginx.url}/simple/{wheel}", Range="bytes=10-19")
    assert part.status == 206
    assert part.body == (tree / wheel).read_bytes()[10:20]
    metadata = get(f"{nginx.url}/simple/{wheel}.metadata")
    assert metadata.status == 200
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert metadata.body == (tree / f"{wheel}.metadata").read_bytes()
    assert metadata.body.startswith(b"Metadata-Version:")


@pytest.mark.parametrize(
    ("asked", "location"),
    [
        ("/simple/zope.iface/", "../zope-iface/"),
        ("/simple/zope_iface/", "../zope-iface/"),
        ("/simple/zope__iface/", "../zope-iface/"),
        ("/zope-_.iface/", "../zope-iface/"),
        ("/simple/alpha", "./alpha/"),
        ("/alpha", "./alpha/"),
        ("/simple", "/simple/"),
    ],
)
def test_names_as_written_redirect_to_the_normalized_page(
    nginx: Nginx, asked: str, location: str
) -> None:
    answer = get(nginx.url + asked, Accept=PIP_ACCEPT)
    assert answer.status == 301, answer
    assert answer.headers["Location"] == location
    followed = get(urllib.parse.urljoin(nginx.url + asked, location), Accept=PIP_ACCEPT)
    assert followed.status == 200
    assert followed.headers["Content-Type"] == JSON_TYPE


def test_a_mirror_run_never_shows_nginx_clients_half_a_page(tmp_path: Path) -> None:
    """Pages are replaced whole (written aside, then renamed): while runs add releases to
    every project, every page nginx sends parses, and lists only files it can send."""
    index, dists = tmp_path / "index", tmp_path / "dists"
    index.mkdir()
    config = index / "morgan.ini"
    with FixtureIndex("json") as upstream:
        requirements = populate_many(upstream, dists, count=40)
        config.write_text(environment_block("here") + "\n[requirements]\n" + requirements)
        args = ["-q", "-i", str(index), "-c", str(config), "-I", upstream.url, "mirror"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            assert main(args) == 0, out.getvalue()
        problems: list[str] = []
        checked = [0]
        stop = threading.Event()

        def poll(nginx: Nginx) -> None:
            while not stop.is_set():
                for project in (f"p{number:03d}" for number in range(40)):
                    page = get(f"{nginx.url}/simple/{project}/", Accept=PIP_ACCEPT)
                    try:
                        files = json.loads(page.body)["files"]
                    except ValueError:
                        problems.append(f"{project}: half a page")
                        continue
                    for entry in files[-1:]:
                        url = f"{nginx.url}/simple/{project}/{entry['url']}"
                        if get(url, Range="bytes=0-0").status != 206:
                            problems.append(f"{project}: lists {entry['filename']}, not there")
                    checked[0] += 1

        with running_nginx(index, tmp_path / "nginx") as nginx:
            poller = threading.Thread(target=poll, args=(nginx,), daemon=True)
            poller.start()
            try:
                for version in ("1.1", "1.2"):
                    for number in range(40):
                        upstream.add(build_wheel(dists, f"p{number:03d}", version))
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        assert main(args) == 0, out.getvalue()
            finally:
                stop.set()
                poller.join(60)
    assert problems == []
    assert checked[0] > 40
    assert "p000-1.2-py3-none-any.whl" in {p.name for p in (index / "p000").iterdir()}
