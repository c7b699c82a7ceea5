"""Where each project comes from: several upstream indexes, and the uploads in the tree.

Sites mirror from a private index and PyPI at once. pip's ``--extra-index-url``
merges the pages of every index, so whoever publishes a private name on PyPI
with a higher version wins: dependency confusion. Here a project comes from one
place only, decided in this order:

1. the index it is pinned to (``projects =`` in its ``[index.NAME]`` section);
2. the tree itself, if it is private (``[private]``) or has uploaded files
   (``server.py --upload``): such a name is never looked up upstream unless
   it is pinned;
3. else the first index, in configuration order, that has a page for it (the
   command line's ``-I`` index last; ``explicit`` indexes are skipped). Only a
   "not found" moves on to the next index: any other failure stops there, since
   falling through to a public index is exactly the attack.

``Upstreams`` has the reading side of ``IndexClient`` (pages, ranges, small
files, streams), so the rest of the mirrorer does not know how many indexes
there are.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3

from morgan.config import DEFAULT_INDEX_NAME, IndexSection, MirrorConfig
from morgan.errors import ProjectNotFoundError, UpstreamError, UsageError
from morgan.index import IndexClient, PageFetch, redact
from morgan.layout import (
    METADATA_SUFFIX,
    project_dir,
    render_project_json,
    scan_project,
    uploaded_projects,
)
from morgan.metadata import read_wheel_metadata
from morgan.models import ProjectPage
from morgan.simple import MEDIA_JSON_V1, KeepFile, parse_project_page
from morgan.state import CachedPage, page_digest
from morgan.tls import TLSSettings, tls_settings

#: The origin of projects taken from the tree (uploads, private names), in summaries.
TREE_ORIGIN = "uploads"


class PrivateProjectError(UpstreamError):
    """A private name with nothing uploaded and no index pinned for it."""

    def __init__(self, project: str, index_path: Path) -> None:
        super().__init__(str(index_path / project), "private", transient=False)
        self.project = project

    def __str__(self) -> str:
        return (
            f"{self.project} is private ([private] in morgan.ini, or uploaded before) and has no "
            "uploaded files here: upload it to server.py --upload, or pin it to the index it "
            "comes from with 'projects =' in an [index.NAME] section"
        )


class Upstreams:
    """The indexes of a mirror, and its uploads, read as one upstream."""

    def __init__(
        self,
        indexes: Sequence[tuple[IndexSection, IndexClient]],
        index_path: Path,
        *,
        private: frozenset[str] = frozenset(),
    ) -> None:
        if not indexes:
            raise ValueError("at least one index")
        self.indexes = list(indexes)
        self.index_path = index_path
        self._pins = {p: (s, c) for s, c in self.indexes for p in s.projects}
        self._searched = [(s, c) for s, c in self.indexes if not s.explicit]
        uploaded = uploaded_projects(index_path)
        #: Names read from the tree: private or uploaded, and pinned to no index.
        self.local = frozenset((private | uploaded) - set(self._pins))
        self._private = private
        self._origins: dict[str, str] = {}
        self._file_hosts: dict[str, IndexClient] = {}
        self._lock = threading.Lock()
        #: The last index: the command line's (PyPI unless told); files of unknown hosts.
        self._fallback = self.indexes[-1][1]

    # -- what IndexClient offers ------------------------------------------------------

    @property
    def index_url(self) -> str:
        """The command line's index (``-I``), as morgan's single-index trees always said."""
        return self._fallback.index_url

    @property
    def backoff(self) -> float:
        return self._fallback.backoff

    @property
    def repair_kept_pages(self) -> bool:
        return self._fallback.repair_kept_pages

    @repair_kept_pages.setter
    def repair_kept_pages(self, value: bool) -> None:
        for _, client in self.indexes:
            client.repair_kept_pages = value

    def get_project_page(
        self, project: str, cached: CachedPage | None = None, keep: KeepFile | None = None
    ) -> PageFetch:
        """The project's page from the one place it comes from (see the module)."""
        if project in self.local:
            fetch = self._tree_page(project, keep)
            self._set_origin(project, TREE_ORIGIN)
            return fetch
        pinned = self._pins.get(project)
        if pinned is not None:
            section, client = pinned
            fetch = client.get_project_page(project, cached, keep)
            self._set_origin(project, section.name)
            return self._learning(client, fetch)
        if project in self._private:  # pinned names were taken above, uploads as local
            raise PrivateProjectError(project, self.index_path)
        for section, client in self._searched:
            try:
                fetch = client.get_project_page(project, cached, keep)
            except ProjectNotFoundError:
                continue
            self._set_origin(project, section.name)
            return self._learning(client, fetch)
        where = ", ".join(redact(c.project_url(project)) for _, c in self._searched)
        raise ProjectNotFoundError(project, where)

    def get_range(self, url: str, first: int, last: int) -> tuple[bytes, int]:
        if self._is_tree_url(url):
            path = self._tree_file(url)
            size = path.stat().st_size
            with path.open("rb") as stream:
                stream.seek(first)
                return stream.read(max(0, min(last, size - 1) - first + 1)), size
        return self._client_for(url).get_range(url, first, last)

    def get_bytes(self, url: str, limit: int) -> bytes:
        if self._is_tree_url(url):
            path = self._tree_file(url)
            if path.name.endswith(METADATA_SUFFIX) and not path.is_file():
                wheel = path.with_name(path.name[: -len(METADATA_SUFFIX)])
                return read_wheel_metadata(wheel, wheel.parent.name)
            if path.stat().st_size > limit:
                raise UpstreamError(redact(url), f"larger than {limit} bytes")
            return path.read_bytes()
        return self._client_for(url).get_bytes(url, limit)

    @contextmanager
    def stream(
        self, url: str, *, headers: dict[str, str] | None = None, accept_partial: bool = False
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        if self._is_tree_url(url):
            raise UpstreamError(
                url,
                "is in the tree, uploaded, and differs from its .hash sidecar; "
                "upload it again (it is never downloaded)",
                transient=False,
            )
        with self._client_for(url).stream(
            url, headers=headers, accept_partial=accept_partial
        ) as response:
            yield response

    def close(self) -> None:
        for _, client in self.indexes:
            client.close()

    # -- what the summary and the manifest say -------------------------------------------

    def origins(self) -> dict[str, str]:
        """Which index (by name, or ``TREE_ORIGIN``) each project's page came from."""
        with self._lock:
            return dict(self._origins)

    def origin_urls(self) -> dict[str, str | None]:
        """Each project's index URL (None for the tree's uploads), for lock files."""
        urls = {section.name: client.index_url for section, client in self.indexes}
        return {project: urls.get(origin) for project, origin in self.origins().items()}

    def names(self) -> dict[str, str]:
        """Every index by name, with its URL fit to print."""
        return {section.name: redact(client.index_url) for section, client in self.indexes}

    @property
    def several(self) -> bool:
        """Whether projects may come from more than one place (then the summary says where)."""
        return len(self.indexes) > 1 or bool(self.local)

    def identity(self) -> str:
        """What decides where each project comes from, for the saved plans' digest."""
        return json.dumps(
            {
                "indexes": [
                    [s.name, c.index_url, sorted(s.projects), s.explicit] for s, c in self.indexes
                ],
                "tree": sorted(self.local),
                "private": sorted(self._private),
            },
            sort_keys=True,
        )

    # -- inside ---------------------------------------------------------------------

    def _set_origin(self, project: str, origin: str) -> None:
        with self._lock:
            self._origins[project] = origin

    def _tree_page(self, project: str, keep: KeepFile | None) -> PageFetch:
        """The page of a project read from its folder, as the mirror would write it."""
        folder = project_dir(self.index_path, project)
        url = folder.as_uri() + "/"
        if not folder.is_dir():
            raise PrivateProjectError(project, self.index_path)
        body = render_project_json(project, scan_project(folder, {}))
        page = parse_project_page(body, MEDIA_JSON_V1, url, project, keep)
        if not page.files:
            raise PrivateProjectError(project, self.index_path)
        digest = page_digest(url, MEDIA_JSON_V1, body)
        return PageFetch(None, not_modified=False, digest=digest, page=page)

    def _is_tree_url(self, url: str) -> bool:
        """Whether a URL is one of the tree pages' own: a file of a project read from the
        tree. Any other ``file:`` URL (an upstream page may offer one) goes to the index
        client, which refuses it."""
        prefix = self.index_path.as_uri() + "/"
        if not url.startswith(prefix):
            return False
        return url[len(prefix) :].split("/", 1)[0] in self.local

    def _tree_file(self, url: str) -> Path:
        """The tree's file a ``file:`` URL of a tree page names; never one outside it."""
        path = _file_path(url)
        root = os.path.realpath(self.index_path)
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise UpstreamError(redact(url), "is outside the tree", transient=False)
        return Path(real)

    def _learning(self, client: IndexClient, fetch: PageFetch) -> PageFetch:
        """The fetch, teaching which client the hosts of its files belong to (for
        credentials and certificates) once its page is read."""
        if fetch.not_modified:

            def load() -> ProjectPage:
                page = fetch.page
                self._learn(client, page)
                return page

            return PageFetch(fetch.cache, not_modified=True, digest=fetch.digest, load=load)
        self._learn(client, fetch.page)
        return fetch

    def _learn(self, client: IndexClient, page: ProjectPage) -> None:
        hosts = {_host_key(file.url) for file in page.files}
        with self._lock:
            for host in hosts:
                self._file_hosts.setdefault(host, client)

    def _client_for(self, url: str) -> IndexClient:
        host = _host_key(url)
        with self._lock:
            learned = self._file_hosts.get(host)
        if learned is not None:
            return learned
        for _, client in self.indexes:
            if _host_key(client.index_url) == host:
                return client
        return self._fallback


def _file_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def _host_key(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def make_upstreams(
    config: MirrorConfig,
    index_path: Path,
    default_url: str,
    *,
    tls: TLSSettings,
    client_options: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Upstreams:
    """The upstreams ``morgan.ini`` names, then the command line's index.

    Credentials of a section come from the variables it names, else from
    ``~/.netrc`` (as for any index); certificates from its ``cert`` and
    ``client-cert``, else from the command line's.
    """
    environ = os.environ if environ is None else environ
    indexes = []
    for section in config.indexes:
        where = f"[index.{section.name}]"
        settings = tls
        if section.cert or section.client_cert:
            settings = tls_settings(
                section.cert or tls.ca_bundle,
                section.client_cert or tls.client_cert,
                cert_from=f"{where} cert" if section.cert else tls.ca_bundle_from,
                client_cert_from=f"{where} client-cert",
                environ={},
            )
        url = _with_credentials(section, environ, where)
        client = IndexClient(url, tls=settings, **client_options)
        indexes.append((section, client))
    default = IndexSection(name=DEFAULT_INDEX_NAME, url=default_url)
    indexes.append((default, IndexClient(default_url, tls=tls, **client_options)))
    return Upstreams(indexes, index_path, private=config.private)


def _with_credentials(section: IndexSection, environ: Mapping[str, str], where: str) -> str:
    """The section's URL with the user and password its variables hold, if it names any."""
    user = section.username
    if section.username_env:
        user = environ.get(section.username_env)
        if not user:
            raise UsageError(
                f"{where} username-env names {section.username_env}, which is not set; "
                "set it before running morgan"
            )
    password = None
    if section.password_env:
        password = environ.get(section.password_env)
        if password is None:
            raise UsageError(
                f"{where} password-env names {section.password_env}, which is not set; "
                "set it before running morgan"
            )
    if password is None:  # ~/.netrc has the password, and the login it goes with
        return section.url
    parts = urllib.parse.urlsplit(section.url)
    user = user or (urllib.parse.unquote(parts.username) if parts.username else "")
    credentials = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password, safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
