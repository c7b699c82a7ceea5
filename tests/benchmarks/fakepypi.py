"""A fast local stand-in for PyPI, run in its own process: ``python fakepypi.py --root TREE``.

It serves a tree written by ``artifacts.py`` the way PyPI does: the simple API as
PEP 691 JSON or PEP 503 HTML by the Accept header, PEP 658/714 metadata files and
``core-metadata`` hashes, PEP 700 sizes and upload times, ETag and Last-Modified with
304 answers to If-None-Match / If-Modified-Since, single byte ranges, and redirects to
normalized project names. Pages are rendered once at startup; files go out with
``sendfile``; every request waits the injected latency before it is answered.

Control endpoints, neither delayed nor counted: ``/_bench/stats`` (the counters),
``/_bench/reset`` (the counters, then zero them) and ``/_bench/latency?ms=N``.
It prints ``listening <url>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import html
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

JSON_V1 = "application/vnd.pypi.simple.v1+json"
JSON_LATEST = "application/vnd.pypi.simple.latest+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML_LATEST = "application/vnd.pypi.simple.latest+html"
TEXT_HTML = "text/html"
#: Media type asked for -> (format, Content-Type answered), in order of preference on a tie.
MEDIA = {
    JSON_V1: ("json", JSON_V1),
    JSON_LATEST: ("json", JSON_V1),
    HTML_V1: ("html", HTML_V1),
    HTML_LATEST: ("html", HTML_V1),
    TEXT_HTML: ("html", TEXT_HTML),
    "*/*": ("html", TEXT_HTML),
}
CACHE_CONTROL = "max-age=600, public"


@dataclass
class Page:
    body: bytes
    content_type: str
    etag: str
    last_modified: float


@dataclass
class FileEntry:
    path: Path
    size: int
    etag: str
    last_modified: float


class Counters:
    KINDS = ("index", "page", "not_modified", "metadata", "file", "range", "redirect", "missing")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> dict[str, int]:
        with self._lock:
            previous = dict(getattr(self, "values", {}))
            self.values = dict.fromkeys(("requests", "bytes", *self.KINDS), 0)
        return previous

    def add(self, kind: str, sent: int) -> None:
        with self._lock:
            self.values["requests"] += 1
            self.values["bytes"] += sent
            self.values[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _timestamp(upload_time: str) -> float:
    text = upload_time.rstrip("Z").split(".")[0]
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:24] + '"'


class Catalog:
    """Everything the index answers, rendered from the manifest at startup."""

    def __init__(self, root: Path, base_url: str, *, announce_metadata: bool = True) -> None:
        manifest = json.loads((root / "manifest.json").read_text())
        self.announce_metadata = announce_metadata
        files_root = root / "files"
        self.pages: dict[str, dict[str, Page]] = {}
        self.files: dict[str, FileEntry] = {}
        self.metadata: dict[str, bytes] = {}
        newest = 0.0
        for key, project in sorted(manifest["projects"].items()):
            entries = project["files"]
            for entry in entries:
                url_path = f"/files/{entry['path']}"
                stamp = _timestamp(entry["upload_time"])
                newest = max(newest, stamp)
                self.files[url_path] = FileEntry(
                    files_root / entry["path"], entry["size"], f'"{entry["sha256"][:24]}"', stamp
                )
                if entry["metadata_sha256"]:
                    data = (files_root / (entry["path"] + ".metadata")).read_bytes()
                    self.metadata[url_path + ".metadata"] = data
            modified = max((_timestamp(e["upload_time"]) for e in entries), default=0.0)
            self.pages[key] = self._project_pages(
                key, entries, base_url, modified, announce_metadata
            )
        names = sorted(manifest["projects"])
        self.index = self._index_pages(names, newest)

    @staticmethod
    def _project_pages(
        key: str, entries: list[dict], base_url: str, modified: float, announce_metadata: bool
    ) -> dict:
        """The pages; without ``announce_metadata`` they name no PEP 658 metadata (as the
        default index does behind proxies that strip it), which is still served."""
        files = []
        links = []
        versions: set[str] = set()
        for entry in entries:
            url = f"{base_url}files/{entry['path']}"
            announced = entry["metadata_sha256"] if announce_metadata else None
            metadata = {"sha256": announced} if announced else False
            files.append(
                {
                    "filename": entry["filename"],
                    "url": url,
                    "hashes": {"sha256": entry["sha256"]},
                    "requires-python": entry["requires_python"],
                    "yanked": entry["yanked"] or False,
                    "size": entry["size"],
                    "upload-time": entry["upload_time"],
                    "core-metadata": metadata,
                    "data-dist-info-metadata": metadata,
                }
            )
            versions.add(_version_of(entry["filename"]))
            attributes = f'href="{url}#sha256={entry["sha256"]}"'
            if entry["requires_python"]:
                attributes += f' data-requires-python="{html.escape(entry["requires_python"])}"'
            if announced:
                digest = f"sha256={announced}"
                attributes += f' data-dist-info-metadata="{digest}" data-core-metadata="{digest}"'
            if entry["yanked"]:
                attributes += f' data-yanked="{html.escape(entry["yanked"])}"'
            links.append(f"    <a {attributes}>{html.escape(entry['filename'])}</a><br />")
        document = {
            "meta": {"api-version": "1.1", "_last-serial": int(modified)},
            "name": key,
            "versions": sorted(versions),
            "files": files,
        }
        json_body = json.dumps(document).encode()
        html_body = (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.1">\n'
            f"    <title>Links for {key}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {key}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
        ).encode()
        return {
            "json": Page(json_body, JSON_V1, _etag(json_body), modified),
            "html": Page(html_body, TEXT_HTML, _etag(html_body), modified),
        }

    @staticmethod
    def _index_pages(names: list[str], modified: float) -> dict[str, Page]:
        json_body = json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        ).encode()
        links = "\n".join(f'    <a href="/simple/{n}/">{n}</a>' for n in names)
        html_body = (f"<!DOCTYPE html>\n<html>\n  <body>\n{links}\n  </body>\n</html>\n").encode()
        return {
            "json": Page(json_body, JSON_V1, _etag(json_body), modified),
            "html": Page(html_body, TEXT_HTML, _etag(html_body), modified),
        }


def _version_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    stem = re.sub(r"\.(tar\.gz|zip)$", "", filename)
    return stem.rsplit("-", 1)[1]


def negotiate(accept: str | None) -> tuple[str, str] | None:
    """(format, Content-Type) for an Accept header; None when nothing offered is acceptable."""
    if not accept:
        return "html", TEXT_HTML
    best: tuple[float, int, str] | None = None
    order = list(MEDIA)
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media not in MEDIA:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        rank = (quality, -order.index(media), media)
        if best is None or rank > best:
            best = rank
    if best is None:
        return None
    return MEDIA[best[2]]


def not_modified(headers, etag: str, last_modified: float) -> bool:
    """Whether conditional request headers say the client's copy is current."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(last_modified) <= since
    return False


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive) of one satisfiable byte range; None: whole file; False: 416."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or not (match.group(1) or match.group(2)):
        return None  # several ranges or garbage: ignore the header, as RFC 9110 allows
    first, last = match.group(1), match.group(2)
    if not first:
        length = int(last)
        return (max(0, size - length), size - 1) if length else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return False
    return start, end


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], root: Path, latency: float, announce_metadata: bool = True
    ) -> None:
        super().__init__(address, Handler)
        host, port = self.server_address[:2]
        self.base_url = f"http://{host}:{port}/"
        self.catalog = Catalog(root, self.base_url, announce_metadata=announce_metadata)
        self.latency = latency
        self.counters = Counters()


class Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/_bench/"):
            return self._control(path, urllib.parse.parse_qs(url.query))
        if self.server.latency:
            time.sleep(self.server.latency)
        if path in ("/simple/", "/simple"):
            return self._page("index", self.server.catalog.index, body)
        match = re.fullmatch(r"/simple/([^/]+)(/?)", path)
        if match:
            name, slash = match.groups()
            key = normalize(name)
            if key in self.server.catalog.pages and (key != name or not slash):
                return self._redirect(f"/simple/{key}/")
            if key in self.server.catalog.pages:
                return self._page("page", self.server.catalog.pages[key], body)
        if path in self.server.catalog.metadata:
            data = self.server.catalog.metadata[path]
            return self._bytes("metadata", 200, data, "application/octet-stream", body)
        if path in self.server.catalog.files:
            return self._file(self.server.catalog.files[path], body)
        return self._bytes("missing", 404, b"404 Not Found\n", "text/plain", body)

    def _control(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/_bench/latency":
            self.server.latency = float(query.get("ms", ["0"])[0]) / 1000
            result: dict = {"latency_ms": self.server.latency * 1000}
        elif path == "/_bench/reset":
            result = self.server.counters.reset()
        else:
            result = self.server.counters.snapshot()
        data = json.dumps(result).encode()
        self._headers(200, "application/json", len(data))
        self.wfile.write(data)

    def _headers(self, status: int, content_type: str | None, length: int | None, **extra) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _bytes(self, kind: str, status: int, data: bytes, content_type: str, body: bool) -> None:
        self._headers(status, content_type, len(data))
        if body:
            self.wfile.write(data)
        self.server.counters.add(kind, len(data) if body else 0)

    def _redirect(self, location: str) -> None:
        self._headers(301, None, 0, Location=location)
        self.server.counters.add("redirect", 0)

    def _page(self, kind: str, pages: dict[str, Page], body: bool) -> None:
        chosen = negotiate(self.headers.get("Accept"))
        if chosen is None:
            return self._bytes("missing", 406, b"406 Not Acceptable\n", "text/plain", body)
        page = pages[chosen[0]]
        common = {
            "ETag": page.etag,
            "Last_Modified": email.utils.formatdate(page.last_modified, usegmt=True),
            "Vary": "Accept, Accept-Encoding",
            "Cache_Control": CACHE_CONTROL,
        }
        if not_modified(self.headers, page.etag, page.last_modified):
            self._headers(304, None, None, **common)
            return self.server.counters.add("not_modified", 0)
        self._headers(200, chosen[1], len(page.body), **common)
        if body:
            self.wfile.write(page.body)
        self.server.counters.add(kind, len(page.body) if body else 0)

    def _file(self, entry: FileEntry, body: bool) -> None:
        common = {
            "ETag": entry.etag,
            "Last_Modified": email.utils.formatdate(entry.last_modified, usegmt=True),
            "Accept_Ranges": "bytes",
            "Cache_Control": "max-age=365000000, immutable, public",
        }
        if not_modified(self.headers, entry.etag, entry.last_modified):
            self._headers(304, None, None, **common)
            return self.server.counters.add("not_modified", 0)
        wanted = parse_range(self.headers.get("Range"), entry.size)
        if_range = self.headers.get("If-Range")
        if if_range and if_range.strip() != entry.etag:
            wanted = None
        if wanted is False:
            self._headers(416, None, 0, Content_Range=f"bytes */{entry.size}", **common)
            return self.server.counters.add("range", 0)
        kind, status, start, end = "file", 200, 0, entry.size - 1
        if isinstance(wanted, tuple):
            kind, status, (start, end) = "range", 206, wanted
            common["Content_Range"] = f"bytes {start}-{end}/{entry.size}"
        length = end - start + 1
        self._headers(status, "application/octet-stream", length, **common)
        sent = 0
        if body:
            with entry.path.open("rb") as stream:
                sent = self.connection.sendfile(stream, start, length)
        self.server.counters.add(kind, sent)


def control(base_url: str, action: str) -> dict:
    """Call a control endpoint of a running upstream (no proxy, however the environment says)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{base_url}_bench/{action}", timeout=30) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="a tree from artifacts.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--unannounced-metadata",
        action="store_true",
        help="pages name no PEP 658 metadata, though <file>.metadata is served",
    )
    args = parser.parse_args(argv)
    server = Upstream(
        (args.host, args.port),
        args.root,
        args.latency_ms / 1000,
        announce_metadata=not args.unannounced_metadata,
    )
    print(f"listening {server.base_url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
