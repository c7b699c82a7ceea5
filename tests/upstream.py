"""A local upstream simple index on a real socket, speaking PEP 691 JSON or HTML only.

Tests add files (built with ``tests.builders``) with the facts the index should
state about them; the index serves project pages, files and PEP 658 metadata,
and records every request path.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html"


@dataclass
class UpstreamFile:
    path: Path
    requires_python: str | None = None
    yanked: bool | str = False
    #: Offer PEP 658 metadata for this wheel.
    metadata: bool = True
    #: Advertise a digest that does not match the bytes.
    wrong_hash: bool = False
    upload_time: str | None = "2024-01-02T03:04:05.000000Z"

    @property
    def filename(self) -> str:
        return self.path.name

    def sha256(self) -> str:
        if self.wrong_hash:
            return "0" * 64
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def wheel_metadata(self) -> bytes | None:
        if not (self.metadata and self.filename.endswith(".whl")):
            return None
        with zipfile.ZipFile(self.path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return archive.read(name)


class FixtureIndex:
    """A simple index serving ``/simple/<project>/`` and ``/files/<filename>``."""

    def __init__(self, mode: str = "json") -> None:
        assert mode in ("json", "html")
        self.mode = mode
        self.projects: dict[str, list[UpstreamFile]] = {}
        self.requests: list[str] = []
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
        return f"http://{host}:{port}/simple/"

    def __enter__(self) -> FixtureIndex:
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                index.requests.append(self.path)
                index._answer(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def _find(self, filename: str) -> UpstreamFile | None:
        for files in self.projects.values():
            for entry in files:
                if entry.filename == filename:
                    return entry
        return None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        if path.startswith("/simple/") and path.endswith("/"):
            project = path[len("/simple/") : -1]
            if project not in self.projects:
                return _send(handler, 404, b"not found", "text/plain")
            wants_json = JSON_TYPE in handler.headers.get("Accept", "")
            if self.mode == "json" and wants_json:
                return _send(handler, 200, self._json_page(project), JSON_TYPE)
            return _send(handler, 200, self._html_page(project), HTML_TYPE)
        if path.startswith("/files/"):
            name = path[len("/files/") :]
            if name.endswith(".metadata"):
                entry = self._find(name[: -len(".metadata")])
                data = entry.wheel_metadata() if entry else None
                if data is None:
                    return _send(handler, 404, b"no metadata", "text/plain")
                return _send(handler, 200, data, "application/octet-stream")
            entry = self._find(name)
            if entry is None:
                return _send(handler, 404, b"no such file", "text/plain")
            return _send(handler, 200, entry.path.read_bytes(), "application/octet-stream")
        return _send(handler, 404, b"not found", "text/plain")

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
            if metadata is not None:
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
            if metadata is not None:
                attributes += (
                    f' data-dist-info-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"'
                )
            links.append(f"<a {attributes}>{entry.filename}</a><br/>")
        body = "\n".join(links)
        return f"<!DOCTYPE html><html><body>\n{body}\n</body></html>".encode()


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
