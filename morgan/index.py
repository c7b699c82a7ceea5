"""The upstream index client: one pooled, retrying urllib3 client for pages and files.

Credentials may come from the index URL (``https://user:token@host/simple/``) or
``~/.netrc`` (or the file ``$NETRC`` names; see ``morgan.transport``). They are sent as
an Authorization header, only to the host they belong to, and every URL this module
lets out for printing is redacted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util import Retry, Timeout

from morgan import __version__
from morgan.errors import PageError, ProjectNotFoundError, UpstreamError
from morgan.models import ProjectPage
from morgan.simple import ACCEPT, KeepFile, parse_project_page
from morgan.state import CachedPage, page_digest
from morgan.tls import TLSSettings, describe_certificate_error, is_certificate_error
from morgan.transport import PoolManagers, basic_auth, host_key, host_port, netrc_credentials

log = logging.getLogger(__name__)

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
USER_AGENT = f"morgan/{__version__}"
#: Status codes worth asking again for: the index is busy or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A project page larger than this is refused rather than held in memory.
MAX_PAGE_BYTES = 64 * 1024 * 1024
#: Seconds before the second attempt of a transfer; each further wait doubles.
DEFAULT_BACKOFF = 0.5
#: The longest wait between two attempts of one transfer, in seconds.
BACKOFF_MAX = 10.0

T = TypeVar("T")


class _Retry(Retry):
    """urllib3's retries, except that a certificate refused is final: the next handshake
    would be refused the same way, after a backoff that only hides the cause."""

    def increment(self, *args: Any, **kwargs: Any) -> Retry:  # type: ignore[override]
        error = kwargs.get("error")
        if error is not None and is_certificate_error(error):
            pool = kwargs.get("_pool")
            raise MaxRetryError(pool, kwargs.get("url") or "", error) from error  # type: ignore[arg-type]
        return super().increment(*args, **kwargs)


class PageFetch:
    """A project page, and what to remember of it for a conditional request next time.

    After a ``304 Not Modified`` the page is parsed from the kept copy only when
    someone asks for it: a run whose plans stand never does.
    """

    def __init__(
        self,
        cache: CachedPage | None,
        *,
        not_modified: bool,
        digest: str,
        page: ProjectPage | None = None,
        load: Callable[[], ProjectPage] | None = None,
    ) -> None:
        #: The page with its validators, or None when the index sent none.
        self.cache = cache
        #: True when the index answered 304 and the page comes from the cache.
        self.not_modified = not_modified
        #: ``state.page_digest`` of the page: the same on two runs means the same page.
        self.digest = digest
        self._page = page
        self._load = load
        self._lock = threading.Lock()

    @property
    def page(self) -> ProjectPage:
        """The parsed page (MorganError if the kept copy cannot be read again)."""
        with self._lock:
            if self._page is None:
                if self._load is None:
                    raise RuntimeError("the page was released: read its files where they are kept")
                self._page = self._load()
                self._load = None
            return self._page

    def release_page(self) -> None:
        """Let go of the parsed page once what is needed of it is kept elsewhere: a real
        page lists thousands of files, most of them for no environment of the mirror."""
        with self._lock:
            self._page = None
            self._load = None


class Upstream(Protocol):
    """What the mirrorer reads an upstream through: one ``IndexClient``, or
    ``upstreams.Upstreams`` (several indexes and the tree's uploads)."""

    @property
    def index_url(self) -> str: ...

    @property
    def backoff(self) -> float: ...

    repair_kept_pages: bool

    def get_project_page(
        self, project: str, cached: CachedPage | None = None, keep: KeepFile | None = None
    ) -> PageFetch: ...

    def get_range(self, url: str, first: int, last: int) -> tuple[bytes, int]: ...

    def get_bytes(self, url: str, limit: int) -> bytes: ...

    def stream(
        self, url: str, *, headers: dict[str, str] | None = None, accept_partial: bool = False
    ) -> contextlib.AbstractContextManager[urllib3.BaseHTTPResponse]: ...

    def client_for(self, url: str) -> IndexClient:
        """The one index client that ``stream`` would fetch this file's URL with."""
        ...

    def close(self) -> None: ...


class RangesNotServed(UpstreamError):
    """A range of a file was asked for, and the server does not serve ranges."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason, transient=False)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def redact(url: str) -> str:
    """The URL without its password or token, fit to print."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host_port(parts)}"))


def normalize_index_url(url: str) -> str:
    """The index URL with exactly one trailing slash, or ValueError if it is no http(s) URL."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or not _port_ok(parts):
        raise ValueError(f"{redact(url)!r} is not an http(s) URL")
    path = parts.path.rstrip("/") + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _port_ok(parts: urllib.parse.SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - ValueError if the port is no number or out of range
    except ValueError:
        return False
    return True


class IndexClient:
    """Fetches project pages and files from one simple index."""

    def __init__(
        self,
        index_url: str = DEFAULT_INDEX_URL,
        *,
        connections: int = 8,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retries: int = 5,
        backoff: float | None = None,
        attempts: int = 4,
        tls: TLSSettings | None = None,
    ) -> None:
        #: What makes this client again in another process (see ``recipe``).
        self._recipe: dict[str, object] = {
            "index_url": index_url,
            "connections": connections,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": retries,
            # as resolved here (a default read now), so the copy behaves as this client does
            "backoff": DEFAULT_BACKOFF if backoff is None else backoff,
            "attempts": attempts,
            "tls": None if tls is None else dataclasses.asdict(tls),
        }
        url = normalize_index_url(index_url)
        parts = urllib.parse.urlsplit(url)
        self._credentials: dict[str, str] = {}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._credentials[host_key(parts)] = basic_auth(user, password)
            url = urllib.parse.urlunsplit(parts._replace(netloc=host_port(parts)))
        self.index_url = url
        #: Put back a kept page copy found lost (False in a dry run: it writes nothing).
        self.repair_kept_pages = True
        self._index_host = (parts.hostname or "").lower()
        #: Whole-transfer attempts for pages and metadata (see ``_attempts``).
        self.attempts = attempts
        self.backoff = DEFAULT_BACKOFF if backoff is None else backoff
        self.tls = tls or TLSSettings()
        self._retry = _Retry(
            total=None,  # each kind has its own budget: redirects must not eat retries
            connect=retries,
            read=retries,
            status=retries,
            other=retries,  # TLS handshakes and proxies refusing a tunnel: bounded too
            backoff_factor=self.backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            respect_retry_after_header=True,
            redirect=10,
        )
        self._timeout = Timeout(connect=connect_timeout, read=read_timeout)
        self._maxsize = max(connections, 1)
        self._pools = PoolManagers(
            num_pools=16,
            maxsize=self._maxsize,
            headers={"User-Agent": USER_AGENT},
            **self.tls.pool_arguments(),
        )
        self._lock = threading.Lock()
        #: Each host's Authorization from .netrc (or None): read once, not per request.
        self._from_netrc: dict[str, str | None] = {}

    def recipe(self) -> dict[str, object]:
        """This client's settings as JSON values (its credentials included): what the
        download process makes its own copy from, with ``from_recipe``."""
        return dict(self._recipe)

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any]) -> IndexClient:
        settings = dict(recipe)
        tls = settings.pop("tls")
        return cls(**settings, tls=None if tls is None else TLSSettings(**tls))

    def client_for(self, url: str) -> IndexClient:
        return self

    def project_url(self, project: str) -> str:
        return urllib.parse.urljoin(self.index_url, f"{project}/")

    def get_project_page(
        self, project: str, cached: CachedPage | None = None, keep: KeepFile | None = None
    ) -> PageFetch:
        """The parsed page of a (normalized) project name (of the files ``keep`` keeps).

        With a ``cached`` copy the request is conditional, and a ``304 Not
        Modified`` answer is served from the copy.
        """
        url = self.project_url(project)
        headers = {"Accept": ACCEPT}
        if cached is not None and cached.url == url:
            headers.update(cached.conditional_headers())
        else:
            cached = None
        return self._attempts(url, lambda: self._fetch_page(project, url, headers, cached, keep))

    def _fetch_page(
        self,
        project: str,
        url: str,
        headers: dict[str, str],
        cached: CachedPage | None,
        keep: KeepFile | None,
    ) -> PageFetch:
        response = self._request(url, headers=headers)
        with contextlib.ExitStack() as held:
            try:
                if response.status != 200:
                    response.drain_conn()
                if response.status == 304 and cached is not None:
                    return self._not_modified(project, url, cached, keep)
                if response.status == 404:
                    raise ProjectNotFoundError(project, redact(url))
                if response.status != 200:
                    raise _status_error(url, response)
                if _length(response) >= LARGE_PAGE_BYTES:  # read and parse, few at a time
                    held.enter_context(_LARGE_PAGES)
                body = _read_limited(response, MAX_PAGE_BYTES, url)
                final_url = urllib.parse.urljoin(url, response.geturl() or url)
            finally:
                response.release_conn()
            content_type = response.headers.get("Content-Type", "")
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
            digest = page_digest(final_url, content_type, body)
            fresh = None
            if (etag or last_modified) and final_url == url:
                fresh = CachedPage.holding(url, content_type, etag, last_modified, digest, body)
            page = _parse(body, content_type, final_url, project, keep)
        return PageFetch(fresh, not_modified=False, digest=digest, page=page)

    def _not_modified(
        self, project: str, url: str, cached: CachedPage, keep: KeepFile | None
    ) -> PageFetch:
        """The kept copy stands; it is read and parsed when first asked for, and if it
        is lost by then (or damaged), the page is fetched again in full."""

        def load() -> ProjectPage:
            body = cached.read_body()
            if body is None:
                log.info("%s: the kept copy of its page is gone; fetching it again", project)
                fetched = self.get_project_page(project, keep=keep)
                body = fetched.cache.body if fetched.cache is not None else None
                if self.repair_kept_pages and body is not None:
                    cached.repair(body)
                return fetched.page
            return _parse(body, cached.content_type, url, project, keep)

        digest = cached.digest
        if not digest:  # kept by a version without digests
            body = cached.read_body()
            if body is None:
                return self.get_project_page(project)
            digest = page_digest(url, cached.content_type, body)
        return PageFetch(cached, not_modified=True, digest=digest, load=load)

    def get_range(self, url: str, first: int, last: int) -> tuple[bytes, int]:
        """Bytes ``first`` to ``last`` (inclusive) of a file, and the file's size.

        RangesNotServed if the server answers with the whole file instead (the
        response is dropped unread) or without saying which bytes it sent.
        """
        return self._attempts(url, lambda: self._fetch_range(url, first, last))

    def _fetch_range(self, url: str, first: int, last: int) -> tuple[bytes, int]:
        headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
        with self.stream(url, headers=headers, accept_partial=True) as response:
            found = _CONTENT_RANGE.fullmatch(str(response.headers.get("Content-Range", "")))
            if (
                response.status != 206
                or found is None
                or int(found.group(1)) != first
                or int(found.group(2)) != min(last, int(found.group(3)) - 1)
            ):
                raise RangesNotServed(redact(url), "the server does not serve byte ranges")
            size = int(found.group(3))
            data = _read_limited(response, last - first + 1, url)
        return data, size

    def get_bytes(self, url: str, limit: int) -> bytes:
        """A whole small resource (a metadata file), refused if over ``limit`` bytes."""
        return self._attempts(url, lambda: self._fetch_bytes(url, limit))

    def _fetch_bytes(self, url: str, limit: int) -> bytes:
        response = self._request(url)
        try:
            if response.status != 200:
                response.drain_conn()
                raise _status_error(url, response)
            return _read_limited(response, limit, url)
        finally:
            response.release_conn()

    def _attempts(self, url: str, fetch: Callable[[], T]) -> T:
        """``fetch()``, again with backoff when the transfer broke (not when the index said no).

        urllib3 retries until a response starts; a body cut off, stalled or
        garbled after that is only caught here. A page that does not parse may
        be such a body, so it gets one more try.
        """
        parse_failures = 0
        for attempt in range(1, self.attempts + 1):
            try:
                return fetch()
            except PageError:
                parse_failures += 1
                if parse_failures > 1 or attempt == self.attempts:
                    raise
            except UpstreamError as error:
                if not error.transient or attempt == self.attempts:
                    raise
                log.info("%s: attempt %d failed (%s)", redact(url), attempt, error.reason)
            time.sleep(min(self.backoff * 2 ** (attempt - 1), BACKOFF_MAX))
        raise UpstreamError(redact(url), f"gave up after {self.attempts} attempts")

    @contextmanager
    def stream(
        self, url: str, *, headers: dict[str, str] | None = None, accept_partial: bool = False
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        """An open response whose body is read by the caller, chunk by chunk.

        ``accept_partial`` lets a ``206 Partial Content`` answer through (for a
        ranged request); any other status than 200 raises UpstreamError.
        """
        response = self._request(url, headers=headers)
        try:
            if response.status != 200 and not (accept_partial and response.status == 206):
                response.drain_conn()
                raise _status_error(url, response)
            yield response
        except BaseException:
            response.close()  # the body was not read to its end: the connection is done for
            raise
        finally:
            response.release_conn()

    def close(self) -> None:
        self._pools.clear()

    def _request(self, url: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UpstreamError(
                redact(url), f"refusing {parts.scheme!r} URL; only http(s) is fetched"
            )
        if not _port_ok(parts):  # urllib3's own message would show the URL unredacted
            raise UpstreamError(
                redact(url), "the port is not a number from 0 to 65535", transient=False
            )
        # per-request headers replace the pool's defaults in urllib3, so name ours here
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if (parts.hostname or "").lower() != self._index_host:
            log.debug("%s: fetched from another host than the index", redact(url))
        authorization = self._authorization(parts)
        if authorization:
            all_headers["Authorization"] = authorization
        try:
            return self._pools.for_url(parts).request(
                "GET",
                url,
                headers=all_headers,
                retries=self._retry,
                timeout=self._timeout,
                preload_content=False,
                decode_content=True,
            )
        except MaxRetryError as error:
            if error.reason is not None and is_certificate_error(error.reason):
                reason = describe_certificate_error(host_port(parts), error.reason, self.tls)
                raise UpstreamError(redact(url), reason, transient=False) from None
            # retries ran out: on a redirect loop or error answers, asking again will not help
            transient = not isinstance(error.reason, ResponseError)
            raise UpstreamError(
                redact(url), describe_transport_error(error), transient=transient
            ) from None
        except Urllib3Error as error:
            raise UpstreamError(redact(url), describe_transport_error(error)) from None

    def _authorization(self, parts: urllib.parse.SplitResult) -> str | None:
        key = host_key(parts)
        if key in self._credentials:
            return self._credentials[key]
        if parts.username is not None:
            return basic_auth(
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            )
        host = parts.hostname or ""
        with self._lock:
            if host not in self._from_netrc:
                entry = netrc_credentials(host)
                self._from_netrc[host] = basic_auth(*entry) if entry else None
            return self._from_netrc[host]


def _status_error(url: str, response: urllib3.BaseHTTPResponse) -> UpstreamError:
    return UpstreamError(
        redact(url), f"HTTP {response.status} {response.reason}", status=response.status
    )


def _read_limited(response: urllib3.BaseHTTPResponse, limit: int, url: str) -> bytes:
    chunks = []
    total = 0
    try:
        for chunk in response.stream(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise UpstreamError(redact(url), f"response is larger than {limit} bytes")
            chunks.append(chunk)
    except Urllib3Error as error:
        raise UpstreamError(redact(url), describe_transport_error(error)) from None
    return b"".join(chunks)


#: Pages at least this large are read two at a time and parsed one at a time: the
#: largest real pages (megabytes of JSON) all arrive at once otherwise, each held whole
#: while it waits. Parsing holds the GIL anyway, and two transfers keep the link busy.
LARGE_PAGE_BYTES = 512 * 1024
_LARGE_PAGES = threading.BoundedSemaphore(2)
_LARGE_PAGE_PARSES = threading.Lock()


def _length(response: urllib3.BaseHTTPResponse) -> int:
    """The Content-Length a response announces (0 if it announces none)."""
    try:
        return int(response.headers.get("Content-Length") or 0)
    except ValueError:
        return 0


def _parse(
    body: bytes, content_type: str, url: str, project: str, keep: KeepFile | None
) -> ProjectPage:
    if len(body) < LARGE_PAGE_BYTES:
        return parse_project_page(body, content_type, url, project, keep)
    with _LARGE_PAGE_PARSES:
        return parse_project_page(body, content_type, url, project, keep)


def describe_transport_error(error: Exception) -> str:
    """A urllib3 error as one readable line (its repr-laden text trimmed)."""
    reason = getattr(error, "reason", None) or error
    if reason.args and isinstance(reason.args[0], str):
        reason = reason.args[0]
    text = str(reason)
    # urllib3 prefixes the connection's repr ("HTTPConnection(host=..., port=...): ");
    # the URL is named elsewhere, so keep only the cause.
    return text.split("): ", 1)[1] if "): " in text else text
