"""The upstream index client: pages in both formats, errors, credentials, URLs."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel
from upstream import FixtureIndex

from morgan import index as index_module
from morgan.errors import PageError, ProjectNotFoundError, UpstreamError
from morgan.index import USER_AGENT, IndexClient, normalize_index_url, redact

USER, PASSWORD = "alice", "s3cr@t:pw"
QUOTED = f"{USER}:{urllib.parse.quote(PASSWORD, safe='')}"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


pytestmark = pytest.mark.usefixtures("no_proxies_no_netrc")


class Recorder:
    """A tiny HTTP server that records each request's path and headers.

    ``routes`` maps a path to (status, headers, body); anything else is a 404.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def netloc(self) -> str:
        return self.base[len("http://") :]

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.seen if seen == path]

    def __enter__(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = recorder.routes.get(
                    self.path, (404, {"Content-Type": "text/plain"}, b"not found")
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def json_page(name: str, files: list[dict[str, Any]]) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()
    return 200, {"Content-Type": "application/vnd.pypi.simple.v1+json"}, body


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_for(url: str, **options: Any) -> IndexClient:
    options.setdefault("retries", 0)
    options.setdefault("backoff", 0)
    return IndexClient(url, **options)


# -- pages from a real upstream, in both formats -----------------------------------------------


def facts(index: FixtureIndex, tmp_path: Path) -> list[tuple[Any, ...]]:
    client = client_for(index.url)
    try:
        page = client.get_project_page("demo").page
    finally:
        client.close()
    assert page.name == "demo"
    assert page.url == index.url + "demo/"
    base = index.url[: -len("/simple/")]
    return [
        (
            f.filename,
            f.url.replace(base, "BASE"),
            dict(f.hashes),
            f.requires_python,
            f.yanked,
            None if f.metadata_hashes is None else dict(f.metadata_hashes),
        )
        for f in page.files
    ]


def build_files(up: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Built once: an sdist's gzip header holds the build time, so a rebuild differs."""
    return [
        (build_wheel(up, "demo", "1.0", requires_python=">=3.8"), {"requires_python": ">=3.8"}),
        (build_sdist(up, "demo", "1.0"), {"requires_python": ">=3.8"}),
        (build_wheel(up, "demo", "0.9"), {"yanked": "broken"}),
        (build_sdist(up, "demo", "0.9"), {"yanked": True}),
        (build_wheel(up, "demo", "0.8"), {"metadata": False}),
    ]


def test_json_and_html_upstreams_give_the_same_files(tmp_path: Path) -> None:
    built = build_files(tmp_path / "up")
    found = {}
    for mode in ("json", "html"):
        with FixtureIndex(mode) as index:
            for path, extra in built:
                index.add(path, **extra)
            found[mode] = facts(index, tmp_path)
    assert found["json"] == found["html"]
    by_name = {row[0]: row for row in found["json"]}
    assert set(by_name) == {
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "demo-0.9-py3-none-any.whl",
        "demo-0.9.tar.gz",
        "demo-0.8-py3-none-any.whl",
    }
    wheel = by_name["demo-1.0-py3-none-any.whl"]
    assert wheel[1] == "BASE/files/demo-1.0-py3-none-any.whl"
    assert wheel[3] == ">=3.8"
    assert wheel[5] is not None and len(wheel[5]["sha256"]) == 64
    assert by_name["demo-0.9-py3-none-any.whl"][4] == "broken"
    assert by_name["demo-0.9.tar.gz"][4] is True
    assert by_name["demo-0.8-py3-none-any.whl"][5] is None
    assert by_name["demo-1.0.tar.gz"][5] is None


@pytest.mark.parametrize(("mode", "api_version"), [("json", "1.1"), ("html", "1.0")])
def test_content_negotiation(tmp_path: Path, mode: str, api_version: str) -> None:
    with FixtureIndex(mode) as index:
        index.add(build_sdist(tmp_path, "demo", "1.0"))
        client = client_for(index.url)
        try:
            assert client.get_project_page("demo").page.api_version == api_version
        finally:
            client.close()


def test_metadata_file_is_fetched(tmp_path: Path) -> None:
    with FixtureIndex("json") as index:
        wheel = build_wheel(tmp_path, "demo", "1.0", requires=["six"])
        entry = index.add(wheel)
        client = client_for(index.url)
        try:
            (file,) = client.get_project_page("demo").page.files
            assert client.get_bytes(file.metadata_url, 1 << 20) == entry.wheel_metadata()
            with pytest.raises(UpstreamError, match="larger than 10 bytes"):
                client.get_bytes(file.metadata_url, 10)
        finally:
            client.close()


def test_missing_project(tmp_path: Path) -> None:
    with FixtureIndex("json") as index:
        client = client_for(index.url)
        try:
            with pytest.raises(ProjectNotFoundError) as caught:
                client.get_project_page("absent")
        finally:
            client.close()
    assert caught.value.project == "absent"
    assert caught.value.url == index.url + "absent/"
    assert str(caught.value) == f"project 'absent' is not on the index ({index.url}absent/)"


def test_page_of_another_project_is_refused(recorder: Recorder) -> None:
    recorder.routes["/simple/demo/"] = json_page("evil", [])
    client = client_for(recorder.base + "/simple")
    try:
        with pytest.raises(PageError, match="'evil'"):
            client.get_project_page("demo")
    finally:
        client.close()


def test_request_headers(recorder: Recorder) -> None:
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    client = client_for(recorder.base + "/simple/")
    try:
        client.get_project_page("demo")
    finally:
        client.close()
    (headers,) = recorder.headers_for("/simple/demo/")
    assert headers["accept"].startswith("application/vnd.pypi.simple.v1+json")
    assert "authorization" not in headers


def test_user_agent_is_morgans(recorder: Recorder) -> None:
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    recorder.routes["/f"] = (200, {}, b"x")
    client = client_for(recorder.base + "/simple/")
    try:
        client.get_project_page("demo")
        client.get_bytes(recorder.base + "/f", 10)
    finally:
        client.close()
    for path in ("/simple/demo/", "/f"):
        (headers,) = recorder.headers_for(path)
        assert headers["user-agent"] == USER_AGENT


def test_http_error_status(recorder: Recorder) -> None:
    recorder.routes["/simple/demo/"] = (500, {"Content-Type": "text/plain"}, b"boom")
    client = client_for(recorder.base + "/simple/")
    try:
        with pytest.raises(UpstreamError, match="HTTP 500"):
            client.get_project_page("demo")
    finally:
        client.close()


def test_page_size_limit(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "MAX_PAGE_BYTES", 100)
    recorder.routes["/simple/demo/"] = json_page("demo", [{"filename": "x" * 200}])
    client = client_for(recorder.base + "/simple/")
    try:
        with pytest.raises(UpstreamError, match="larger than 100 bytes"):
            client.get_project_page("demo")
    finally:
        client.close()


# -- credentials -------------------------------------------------------------------------------


def test_credentials_are_sent_as_basic_auth(recorder: Recorder) -> None:
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    client = client_for(f"http://{QUOTED}@{recorder.netloc}/simple/")
    try:
        assert client.index_url == recorder.base + "/simple/"
        page = client.get_project_page("demo").page
    finally:
        client.close()
    (headers,) = recorder.headers_for("/simple/demo/")
    assert headers["authorization"] == BASIC
    assert PASSWORD not in page.url and QUOTED not in page.url


def test_credentials_go_to_the_index_host_only(recorder: Recorder, elsewhere: Recorder) -> None:
    files = [
        {"filename": "demo-1.0.tar.gz", "url": "/files/demo-1.0.tar.gz", "hashes": {}},
        {"filename": "demo-2.0.tar.gz", "url": elsewhere.base + "/demo-2.0.tar.gz", "hashes": {}},
    ]
    recorder.routes["/simple/demo/"] = json_page("demo", files)
    recorder.routes["/files/demo-1.0.tar.gz"] = (200, {}, b"one")
    elsewhere.routes["/demo-2.0.tar.gz"] = (200, {}, b"two")
    client = client_for(f"http://{QUOTED}@{recorder.netloc}/simple/")
    try:
        same_host, other_host = client.get_project_page("demo").page.files
        assert client.get_bytes(same_host.url, 100) == b"one"
        assert client.get_bytes(other_host.url, 100) == b"two"
    finally:
        client.close()
    (index_headers,) = recorder.headers_for("/files/demo-1.0.tar.gz")
    assert index_headers["authorization"] == BASIC
    (other_headers,) = elsewhere.headers_for("/demo-2.0.tar.gz")
    assert "authorization" not in other_headers


def test_credentials_are_not_sent_to_another_port_of_the_same_host(
    recorder: Recorder, elsewhere: Recorder
) -> None:
    elsewhere.routes["/f"] = (200, {}, b"x")
    client = client_for(f"http://{QUOTED}@{recorder.netloc}/simple/")
    try:
        client.get_bytes(elsewhere.base + "/f", 10)
    finally:
        client.close()
    (headers,) = elsewhere.headers_for("/f")
    assert "authorization" not in headers


def test_credentials_do_not_follow_a_redirect_to_another_host(
    recorder: Recorder, elsewhere: Recorder
) -> None:
    recorder.routes["/files/demo-1.0.tar.gz"] = (302, {"Location": elsewhere.base + "/cdn/x"}, b"")
    elsewhere.routes["/cdn/x"] = (200, {}, b"payload")
    # urllib3 counts a redirect against the total retries too, so allow one.
    client = client_for(f"http://{QUOTED}@{recorder.netloc}/simple/", retries=1)
    try:
        assert client.get_bytes(recorder.base + "/files/demo-1.0.tar.gz", 100) == b"payload"
    finally:
        client.close()
    assert recorder.headers_for("/files/demo-1.0.tar.gz")[0]["authorization"] == BASIC
    (headers,) = elsewhere.headers_for("/cdn/x")
    assert "authorization" not in headers


def test_netrc_credentials(recorder: Recorder, no_proxies_no_netrc: Path) -> None:
    netrc_file = no_proxies_no_netrc / ".netrc"
    netrc_file.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc_file.chmod(0o600)
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    client = client_for(recorder.base + "/simple/")
    try:
        client.get_project_page("demo")
    finally:
        client.close()
    (headers,) = recorder.headers_for("/simple/demo/")
    assert headers["authorization"] == BASIC


def test_netrc_variable_names_the_file(
    recorder: Recorder, no_proxies_no_netrc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (no_proxies_no_netrc / ".netrc").write_text("machine 127.0.0.1 login home password other\n")
    named = tmp_path / "named-netrc"
    named.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(named))
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    client = client_for(recorder.base + "/simple/")
    try:
        client.get_project_page("demo")
        client.get_project_page("demo")
    finally:
        client.close()
    assert [h["authorization"] for h in recorder.headers_for("/simple/demo/")] == [BASIC, BASIC]


def test_a_file_url_with_a_bad_port_is_refused_redacted() -> None:
    client = IndexClient("https://h.example/simple/", attempts=1)
    try:
        for url in ("https://u:secret@h.example:99999/f.whl", "https://u:secret@h.example:x/f"):
            with pytest.raises(UpstreamError) as caught, client.stream(url):
                pass
            assert "secret" not in str(caught.value)
            assert not caught.value.transient
    finally:
        client.close()


def _assert_secret_free(text: str) -> None:
    assert PASSWORD not in text
    assert urllib.parse.quote(PASSWORD, safe="") not in text
    assert "s3cr" not in text


def test_errors_never_show_credentials(recorder: Recorder) -> None:
    recorder.routes["/simple/broken/"] = (503, {"Content-Type": "text/plain"}, b"down")
    recorder.routes["/simple/weird/"] = (200, {"Content-Type": "application/json"}, b"{}")
    client = client_for(f"http://{QUOTED}@{recorder.netloc}/simple/")
    messages = []
    try:
        for project in ("absent", "broken", "weird"):
            with pytest.raises(UpstreamError) as caught:
                client.get_project_page(project)
            messages.append(str(caught.value))
            messages.append(caught.value.url)
        with pytest.raises(UpstreamError) as caught:
            client.get_bytes(f"http://{QUOTED}@{recorder.netloc}/files/none.tar.gz", 10)
        messages += [str(caught.value), caught.value.url]
    finally:
        client.close()
    assert len(messages) == 8
    for message in messages:
        _assert_secret_free(message)


def test_connection_errors_never_show_credentials() -> None:
    port = closed_port()
    client = client_for(f"http://{QUOTED}@127.0.0.1:{port}/simple/")
    try:
        with pytest.raises(UpstreamError) as caught:
            client.get_project_page("demo")
    finally:
        client.close()
    _assert_secret_free(str(caught.value))
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_bad_index_url_error_never_shows_credentials() -> None:
    with pytest.raises(ValueError, match="not an http") as caught:
        IndexClient(f"ftp://{QUOTED}@example.org/simple/")
    _assert_secret_free(str(caught.value))


# -- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pypi.org/simple/", "https://pypi.org/simple/"),
        ("https://user:token@host.example/simple/", "https://***@host.example/simple/"),
        ("https://token@host.example/simple/", "https://***@host.example/simple/"),
        ("https://user:@host.example:8443/s/", "https://***@host.example:8443/s/"),
        ("http://u:p%40ss@h.example/a?b=c#d", "http://***@h.example/a?b=c#d"),
        ("not a url", "not a url"),
        ("https://u:secret@host.example:99999/", "https://***@host.example:99999/"),
        ("https://u:secret@host.example:port/", "https://***@host.example:port/"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_ipv6_host_with_credentials_keeps_its_brackets() -> None:
    assert redact("http://u:p@[::1]:8080/simple/") == "http://***@[::1]:8080/simple/"
    client = IndexClient("http://u:p@[::1]:8080/simple/")
    try:
        assert client.index_url == "http://[::1]:8080/simple/"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://pypi.org/simple", "https://pypi.org/simple/"),
        ("https://pypi.org/simple/", "https://pypi.org/simple/"),
        ("https://pypi.org/simple///", "https://pypi.org/simple/"),
        ("  https://pypi.org/simple  ", "https://pypi.org/simple/"),
        ("https://pypi.org", "https://pypi.org/"),
        ("http://h.example:8080/a/b", "http://h.example:8080/a/b/"),
        ("https://pypi.org/simple?x=1#frag", "https://pypi.org/simple/"),
        ("https://u:p@h.example/simple", "https://u:p@h.example/simple/"),
    ],
)
def test_normalize_index_url(url: str, expected: str) -> None:
    assert normalize_index_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h.example/simple/",
        "file:///srv/simple/",
        "pypi.org/simple",
        "",
        "https:///simple",
        "/simple/",
        "https://h.example:99999/simple/",
        "https://u:p@h.example:port/simple/",
    ],
)
def test_normalize_index_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        normalize_index_url(url)


def test_project_url() -> None:
    client = IndexClient("https://h.example/simple")
    try:
        assert client.index_url == "https://h.example/simple/"
        assert client.project_url("demo") == "https://h.example/simple/demo/"
    finally:
        client.close()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://h.example/x.tar.gz", "gopher://h.example/x"]
)
def test_non_http_urls_are_refused(url: str) -> None:
    client = IndexClient("https://h.example/simple/")
    try:
        with pytest.raises(UpstreamError, match="only http"):
            client.get_bytes(url, 100)
        with pytest.raises(UpstreamError, match="only http"), client.stream(url):
            pass
    finally:
        client.close()


# -- proxies: from the environment, as ``morgan mirror`` (and the live test's probe) use them --


def test_http_proxy_from_the_environment_carries_the_requests(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{QUOTED}@{recorder.netloc}")
    recorder.routes["http://index.invalid/simple/demo/"] = json_page("demo", [])
    client = client_for("http://index.invalid/simple/")
    try:
        assert client.get_project_page("demo").page.name == "demo"
    finally:
        client.close()
    (headers,) = recorder.headers_for("http://index.invalid/simple/demo/")
    assert headers["proxy-authorization"] == BASIC
    assert headers["user-agent"] == USER_AGENT


def test_https_proxy_from_the_environment_is_asked_for_a_tunnel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy is asked to CONNECT to the index; this one never answers, so it times out."""
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        client = client_for("https://index.invalid/simple/", connect_timeout=0.5, attempts=1)
        try:
            with pytest.raises(UpstreamError):
                client.get_project_page("demo")
        finally:
            client.close()
        connection, _ = proxy.accept()
        with connection:
            head = connection.recv(4096)
    assert head.startswith(b"CONNECT index.invalid:443 HTTP/"), head


def test_no_proxy_hosts_are_reached_directly(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    recorder.routes["/simple/demo/"] = json_page("demo", [])
    client = client_for(recorder.base + "/simple/")
    try:
        assert client.get_project_page("demo").page.name == "demo"
    finally:
        client.close()
    assert [path for path, _ in recorder.seen] == ["/simple/demo/"]


def test_a_proxy_refusing_the_tunnel_is_a_bounded_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 counts such failures as 'other' errors: they must have a budget too, or the
    request is retried until Python's recursion limit."""
    refusals = []
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        proxy.settimeout(10)

        def refuse() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = proxy.accept()
                    with connection:
                        connection.recv(4096)
                        refusals.append(1)
                        connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=refuse, daemon=True)
        thread.start()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        client = client_for("https://index.invalid/simple/", attempts=1)
        try:
            with pytest.raises(UpstreamError) as caught:
                client.get_project_page("demo")
        finally:
            client.close()
    assert "\n" not in str(caught.value)
    assert 1 <= len(refusals) <= 10
