"""A local upstream simple index on a real socket, speaking PEP 691 JSON or HTML only.

Tests add files (built with ``tests.builders``) with the facts the index should
state about them; the index serves project pages (with ETag/Last-Modified and
304 answers), files (with single Range requests) and PEP 658 metadata, and
records every request path. A seeded :class:`Faults` plan makes it misbehave
the way real links and proxies do.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html"
LAST_MODIFIED = "Tue, 02 Jan 2024 03:04:05 GMT"
FAULT_KINDS = ("503", "429", "reset", "cut", "stall", "length")


@dataclass
class Faults:
    """Which requests misbehave, and how: a seeded plan, deterministic per request.

    The n-th request for a path fails with probability ``rate``; whether it does,
    and how, depends only on (seed, path, n), so a run is reproducible whatever
    order its concurrent requests arrive in. ``always`` makes the paths ending
    with a key fail every time with the given kind.
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    #: How long a "stall" holds the connection silent (longer than the client's timeout).
    stall_seconds: float = 2.0
    always: dict[str, str] = field(default_factory=dict)
    #: How many of each kind were injected.
    injected: Counter[str] = field(default_factory=Counter)
    _counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, path: str) -> str | None:
        with self._lock:
            for suffix, kind in self.always.items():
                if path.endswith(suffix):
                    self.injected[kind] += 1
                    return kind
            self._counts[path] += 1
            rng = random.Random(f"{self.seed}:{path}:{self._counts[path]}")
            if rng.random() >= self.rate:
                return None
            kind = rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind


@dataclass
class UpstreamFile:
    path: Path
    requires_python: str | None = None
    yanked: bool | str = False
    #: Offer PEP 658 metadata for this wheel.
    metadata: bool = True
    #: Say so on the page; if not, ``<file>.metadata`` is still served (as some proxies
    #: of the default index do: they strip the attribute, the file host keeps the files).
    advertise_metadata: bool = True
    #: Serve these bytes as its ``.metadata`` instead of the wheel's own METADATA.
    served_metadata: bytes | None = None
    #: Advertise a digest that does not match the bytes.
    wrong_hash: bool = False
    upload_time: str | None = "2024-01-02T03:04:05.000000Z"

    @property
    def filename(self) -> str:
        return self.path.name

    def sha256(self) -> str:
        if self.wrong_hash:
            return "0" * 64
        digest = hashlib.sha256()
        with self.path.open("rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
        return digest.hexdigest()

    def wheel_metadata(self) -> bytes | None:
        if not (self.metadata and self.filename.endswith(".whl")):
            return None
        with zipfile.ZipFile(self.path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return archive.read(name)


class FixtureIndex:
    """A simple index serving ``/simple/<project>/`` and ``/files/<filename>``."""

    def __init__(
        self,
        mode: str = "json",
        faults: Faults | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        assert mode in ("json", "html")
        self.mode = mode
        #: Serve HTTPS with this server-side context (a test CA's certificate).
        self.tls = tls
        #: Answer 401 unless the request carries these basic-auth credentials.
        self.auth = auth
        self.faults = faults or Faults()
        self.projects: dict[str, list[UpstreamFile]] = {}
        self.requests: list[str] = []
        #: The headers of every request, in order, beside ``requests``.
        self.request_headers: list[dict[str, str]] = []
        #: Paths answered with a redirect to another path (a loop, if they point at each other).
        self.redirects: dict[str, str] = {}
        self.bytes_sent = 0
        #: Seconds every request waits before it is answered (a distant index).
        self.latency = 0.0
        #: Requests for these paths wait until their event is set (a download under way).
        self.held: dict[str, threading.Event] = {}
        #: Serve byte ranges of files (False: the whole file, as some servers answer;
        #: "lying": the whole file, answered as if it were the range asked for).
        self.ranges: bool | str = True
        self._server: ThreadingHTTPServer | None = None

    def add(self, path: Path, **facts: Any) -> UpstreamFile:
        if path.name.endswith(".whl"):
            project = parse_wheel_filename(path.name)[0]
        else:
            project = parse_sdist_filename(path.name)[0]
        entry = UpstreamFile(path=path, **facts)
        self.projects.setdefault(canonicalize_name(project), []).append(entry)
        return entry

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}/simple/"

    def __enter__(self) -> FixtureIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                index.requests.append(self.path)
                index.request_headers.append(dict(self.headers.items()))
                if index.auth is not None and not index._authorized(self):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fixture"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if index.latency:
                    time.sleep(index.latency)
                held = index.held.get(self.path.split("?", 1)[0])
                if held is not None:
                    held.wait(30)
                fault = index.faults.pick(self.path.split("?", 1)[0])
                if fault is not None:
                    index._misbehave(self, fault)
                    return
                index._answer(self)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        assert self.auth is not None
        token = base64.b64encode(":".join(self.auth).encode()).decode()
        return handler.headers.get("Authorization") == f"Basic {token}"

    def _find(self, filename: str) -> UpstreamFile | None:
        for files in self.projects.values():
            for entry in files:
                if entry.filename == filename:
                    return entry
        return None

    def _misbehave(self, handler: BaseHTTPRequestHandler, fault: str) -> None:
        handler.close_connection = True
        if fault in ("503", "429"):
            handler.send_response(int(fault))
            handler.send_header("Retry-After", "0")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif fault == "reset":
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        elif fault == "stall":
            time.sleep(self.faults.stall_seconds)
        elif fault in ("cut", "length"):
            head, body = self._response_of(handler)
            if fault == "cut":  # breaks off half-way
                handler.wfile.write(head + body[: len(body) // 2])
            else:  # announces more than it sends
                length = f"Content-Length: {len(body)}".encode()
                longer = f"Content-Length: {len(body) + 1000}".encode()
                handler.wfile.write(head.replace(length, longer) + body)
        else:  # pragma: no cover
            raise AssertionError(fault)

    def _response_of(self, handler: BaseHTTPRequestHandler) -> tuple[bytes, bytes]:
        """The (head, body) a well-behaved answer would have had."""
        saved = handler.wfile

        class Capture:
            data = b""

            def write(self, chunk: bytes) -> None:
                Capture.data += chunk

        handler.wfile = Capture()  # type: ignore[assignment]
        try:
            self._answer(handler, count=False)
        finally:
            handler.wfile = saved
        head, _, body = Capture.data.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n", body

    def _answer(self, handler: BaseHTTPRequestHandler, *, count: bool = True) -> None:
        path = handler.path.split("?", 1)[0]
        if path in self.redirects:
            handler.send_response(302)
            handler.send_header("Location", self.redirects[path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if path.startswith("/simple/") and path.endswith("/"):
            project = path[len("/simple/") : -1]
            if project not in self.projects:
                return _send(handler, 404, b"not found", "text/plain")
            wants_json = JSON_TYPE in handler.headers.get("Accept", "")
            if self.mode == "json" and wants_json:
                body, content_type = self._json_page(project), JSON_TYPE
            else:
                body, content_type = self._html_page(project), HTML_TYPE
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            if handler.headers.get("If-None-Match") == etag:
                handler.send_response(304)
                handler.send_header("ETag", etag)
                handler.end_headers()
                return None
            return self._send(
                handler,
                200,
                body,
                content_type,
                {"ETag": etag, "Last-Modified": LAST_MODIFIED},
                count=count,
            )
        if path.startswith("/files/"):
            name = path[len("/files/") :]
            if name.endswith(".metadata"):
                entry = self._find(name[: -len(".metadata")])
                data = entry.served_metadata or entry.wheel_metadata() if entry else None
                if data is None:
                    return _send(handler, 404, b"no metadata", "text/plain")
                return _send(handler, 200, data, "application/octet-stream")
            entry = self._find(name)
            if entry is None:
                return _send(handler, 404, b"no such file", "text/plain")
            return self._send_file(handler, entry.path, count=count)
        return _send(handler, 404, b"not found", "text/plain")

    def _send_file(self, handler: BaseHTTPRequestHandler, path: Path, *, count: bool) -> None:
        """A file, streamed (files may be large), or the single range ``bytes=A-[B]`` asks
        for (unless ``ranges`` is off: then the whole file, as servers without them do)."""
        size = path.stat().st_size
        start, end = 0, size
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", ""))
        if wanted and self.ranges == "lying":  # says 206, and sends the whole file
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes 0-{size - 1}/{size}")
        elif wanted and self.ranges:
            start = int(wanted.group(1))
            end = min(size, int(wanted.group(2)) + 1) if wanted.group(2) else size
            if start >= size or start >= end:
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(end - start))
        handler.end_headers()
        with path.open("rb") as stream:
            stream.seek(start)
            left = end - start
            while left and (chunk := stream.read(min(left, 1024 * 1024))):
                handler.wfile.write(chunk)
                left -= len(chunk)
                if count:
                    self.bytes_sent += len(chunk)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        count: bool = True,
    ) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        if count:
            self.bytes_sent += len(body)

    def _json_page(self, project: str) -> bytes:
        files = []
        for entry in self.projects[project]:
            item: dict[str, Any] = {
                "filename": entry.filename,
                "url": f"../../files/{entry.filename}",
                "hashes": {"sha256": entry.sha256()},
                "requires-python": entry.requires_python,
                "yanked": entry.yanked,
                "size": entry.path.stat().st_size,
                "upload-time": entry.upload_time,
            }
            metadata = entry.wheel_metadata()
            if metadata is not None and entry.advertise_metadata:
                item["core-metadata"] = {"sha256": hashlib.sha256(metadata).hexdigest()}
            files.append(item)
        document = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
        return json.dumps(document).encode()

    def _html_page(self, project: str) -> bytes:
        links = []
        for entry in self.projects[project]:
            attributes = f'href="/files/{entry.filename}#sha256={entry.sha256()}"'
            if entry.requires_python:
                attributes += f' data-requires-python="{html.escape(entry.requires_python)}"'
            if entry.yanked is not False:
                reason = entry.yanked if isinstance(entry.yanked, str) else ""
                attributes += f' data-yanked="{html.escape(reason)}"'
            if entry.upload_time:
                # not in PEP 503, but what the default index sends on these machines
                attributes += f' data-upload-time="{entry.upload_time}"'
            metadata = entry.wheel_metadata()
            if metadata is not None and entry.advertise_metadata:
                attributes += (
                    f' data-dist-info-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"'
                )
            links.append(f"<a {attributes}>{entry.filename}</a><br/>")
        body = "\n".join(links)
        return f"<!DOCTYPE html><html><body>\n{body}\n</body></html>".encode()


class _QuietServer(ThreadingHTTPServer):
    """The fixture's server: a client that hangs up mid-answer (morgan stopping a
    download on a full disk, say) is no error of the index, and prints nothing on the
    stderr that tests read for morgan's tracebacks."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
