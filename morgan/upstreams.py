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
import posixpath
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
    is_distribution,
    is_upload,
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
from morgan.transport import host_key, netrc_credentials

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
        #: Names read from the tree (their uploads): private or uploaded, pinned to no index.
        self.from_tree = frozenset((private | uploaded) - set(self._pins))
        self._private = private
        self._origins: dict[str, str] = {}
        #: Which client listed each file of the pages read (its URL).
        self._file_clients: dict[str, IndexClient] = {}
        self._strays: dict[str, list[str]] = {}
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
        if project in self.from_tree:
            fetch = self._tree_page(project, keep)
            self._set_origin(project, TREE_ORIGIN)
            return fetch
        pinned = self._pins.get(project)
        if pinned is not None:
            section, client = pinned
            fetch = client.get_project_page(project, cached, keep)
            self._set_origin(project, section.name)
            return self._remembering_files(client, fetch)
        for section, client in self._searched:
            try:
                fetch = client.get_project_page(project, cached, keep)
            except ProjectNotFoundError:
                continue
            self._set_origin(project, section.name)
            return self._remembering_files(client, fetch)
        where = ", ".join(redact(c.project_url(project)) for _, c in self._searched)
        raise ProjectNotFoundError(project, where)

    def get_range(self, url: str, first: int, last: int) -> tuple[bytes, int]:
        if self._is_tree_url(url):
            path = self._tree_file(url)
            with _reading(url):
                size = path.stat().st_size
                with path.open("rb") as stream:
                    stream.seek(first)
                    return stream.read(max(0, min(last, size - 1) - first + 1)), size
        return self._client_for(url).get_range(url, first, last)

    def get_bytes(self, url: str, limit: int) -> bytes:
        if self._is_tree_url(url):
            path = self._tree_file(url)
            with _reading(url):
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
        with self.client_for(url).stream(
            url, headers=headers, accept_partial=accept_partial
        ) as response:
            yield response

    def client_for(self, url: str) -> IndexClient:
        if self._is_tree_url(url):
            raise UpstreamError(
                url,
                "is an upload that no longer matches its .hash sidecar (it is never downloaded); "
                "run `morgan verify`, then restore or remove the file and its sidecars",
                transient=False,
            )
        return self._client_for(url)

    def close(self) -> None:
        for _, client in self.indexes:
            client.close()

    # -- what the summary and the manifest say -------------------------------------------

    def origins(self) -> dict[str, str]:
        """Which index (by name, or ``TREE_ORIGIN``) each project's page came from."""
        with self._lock:
            return dict(self._origins)

    def strays(self) -> dict[str, list[str]]:
        """Files in the folders of projects read from the tree that nobody uploaded (taken
        from an index before the name became private, or dropped in by hand): they are
        never resolved from, but the pages list them until ``prune`` removes them."""
        with self._lock:
            return dict(self._strays)

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
        return len(self.indexes) > 1 or bool(self.from_tree)

    def identity(self) -> str:
        """What decides where each project comes from, for the saved plans' digest."""
        return json.dumps(
            {
                "indexes": [
                    [s.name, c.index_url, sorted(s.projects), s.explicit] for s, c in self.indexes
                ],
                "tree": sorted(self.from_tree),
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
        entries = scan_project(folder, {})
        uploads = [entry for entry in entries if is_upload(folder / entry.filename)]
        strays = sorted(entry.filename for entry in entries if entry not in uploads)
        if strays:  # taken from an index before the name was private: never resolved from
            with self._lock:
                self._strays[project] = strays
        body = render_project_json(project, uploads)
        page = parse_project_page(body, MEDIA_JSON_V1, url, project, keep)
        if not page.files:
            raise PrivateProjectError(project, self.index_path)
        digest = page_digest(url, MEDIA_JSON_V1, body)
        return PageFetch(None, not_modified=False, digest=digest, page=page)

    def _is_tree_url(self, url: str) -> bool:
        """Whether a URL is one the tree pages give: ``<project>/<distribution>`` (or its
        ``.metadata``) of a project read from the tree. Any other ``file:`` URL (an index
        may offer one) goes to the index client, which refuses it."""
        prefix = self.index_path.as_uri() + "/"
        if not url.startswith(prefix):
            return False
        project, _, name = url[len(prefix) :].partition("/")
        name = urllib.parse.unquote(name).removesuffix(METADATA_SUFFIX)
        return project in self.from_tree and "/" not in name and is_distribution(name)

    def _tree_file(self, url: str) -> Path:
        """The tree's file a ``file:`` URL of a tree page names; never one outside it."""
        path = _file_path(url)
        root = os.path.realpath(self.index_path)
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            raise UpstreamError(redact(url), "is outside the tree", transient=False)
        return Path(real)

    def _remembering_files(self, client: IndexClient, fetch: PageFetch) -> PageFetch:
        """The fetch, noting which client listed each of its files (for their credentials
        and certificates) once its page is read."""
        if fetch.not_modified:

            def load() -> ProjectPage:
                page = fetch.page
                self._remember_files(client, page)
                return page

            return PageFetch(fetch.cache, not_modified=True, digest=fetch.digest, load=load)
        self._remember_files(client, fetch.page)
        return fetch

    def _remember_files(self, client: IndexClient, page: ProjectPage) -> None:
        with self._lock:
            for file in page.files:
                self._file_clients.setdefault(file.url, client)

    def _client_for(self, url: str) -> IndexClient:
        """The client of the index that listed a file: known from its page, else the index
        on the file's host whose URL shares the longest path with it (two indexes of one
        GitLab differ by path and token), else the command line's index."""
        with self._lock:
            known = self._file_clients.get(url.removesuffix(METADATA_SUFFIX))
        if known is not None:
            return known
        host = host_key(url)
        if not host:  # a URL that does not parse matches no index
            return self._fallback
        path = urllib.parse.urlsplit(url).path
        same_host = [c for _, c in self.indexes if host_key(c.index_url) == host]
        if not same_host:
            return self._fallback
        return max(same_host, key=lambda c: _shared_segments(c.index_url, path))


@contextmanager
def _reading(url: str) -> Iterator[None]:
    """A tree file that cannot be read is the upstream's error, as a failed request is."""
    try:
        yield
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
        raise UpstreamError(url, reason, transient=False) from None


def _shared_segments(index_url: str, path: str) -> int:
    """How many leading path segments a file's URL path shares with an index URL's."""
    try:
        common = posixpath.commonpath([urllib.parse.urlsplit(index_url).path or "/", path or "/"])
    except ValueError:
        return 0
    return len([segment for segment in common.split("/") if segment])


def _file_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


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


def _netrc_login(url: str) -> str | None:
    """The login ``~/.netrc`` (or ``$NETRC``) holds for the URL's host, read as
    ``IndexClient`` reads it; None without an entry."""
    found = netrc_credentials(urllib.parse.urlsplit(url).hostname or "")
    return None if found is None else found[0]


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
    parts = urllib.parse.urlsplit(section.url)
    user = user or (urllib.parse.unquote(parts.username) if parts.username else "")
    host = parts.netloc.rsplit("@", 1)[-1]
    if password is None:  # ~/.netrc has the password, and the login it goes with
        login = _netrc_login(section.url) if user else None
        if user and login is None:
            # sent without a password, some registries answer 404 for a private project,
            # and that 404 would send the name on to the next index
            raise UsageError(
                f"{where} names the user {user} but no password: name the variable that "
                f"holds it with password-env, or add the host to ~/.netrc"
            )
        if user and login != user:  # .netrc's entry would be sent, under its own login
            raise UsageError(
                f"{where} names the user {user}, but ~/.netrc has the login {login} for "
                f"its host; make them agree, or name the password's variable with password-env"
            )
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    credentials = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
