"""``morgan upload``: the mirror's distributions pushed into a package registry.

A site that already runs a registry (GitLab, Nexus, Artifactory, pypiserver, devpi)
can load the mirror into it rather than serve the tree. Every distribution of
``manifest.json`` (or every one new since an older manifest) is sent through the
upload API twine speaks (see ``morgan.upload_form``), one file at a time, in a
fixed order, streamed from disk. Each file is checked against the manifest's
sha256 before anything is sent: a file that changed since the mirror ran is an
error, never an upload.

An answer that can only repeat itself (credentials refused, a redirect, a
certificate not trusted, a registry that cannot be reached) stops the run with
one line; anything else is the fate of one file, and the run goes on.
"""

from __future__ import annotations

import contextlib
import errno
import html
import json
import logging
import os
import re
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from packaging.version import InvalidVersion, Version
from urllib3.exceptions import ConnectTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util import Timeout

from morgan import index as upstream
from morgan.errors import DistributionError, MorganError, UsageError
from morgan.index import RETRY_STATUSES, USER_AGENT, describe_transport_error, redact
from morgan.manifest import MANIFEST, ListedFile, Manifest, changed_paths
from morgan.metadata import read_sdist_pkg_info, read_wheel_metadata_stream
from morgan.tls import TLSSettings, describe_certificate_error, is_certificate_error
from morgan.transport import PoolManagers, basic_auth, host_port, netrc_credentials
from morgan.upload_form import Digests, MultipartForm, form_fields

log = logging.getLogger(__name__)

#: Where the password comes from when no option gives it (keeps it out of ``ps`` and history).
PASSWORD_VARIABLE = "MORGAN_UPLOAD_PASSWORD"  # noqa: S105 - a variable's name
#: The user name sent with a password alone: PyPI's (and pypiserver's) convention for tokens.
TOKEN_USERNAME = "__token__"  # noqa: S105 - a user name
#: Whole-request attempts for one file; the wait between them doubles from the backoff.
ATTEMPTS = 4
#: How much of an answer's body is read to say why it refused a file.
MAX_ANSWER_BYTES = 64 * 1024
#: The longest wait a ``Retry-After`` header is granted, in seconds.
RETRY_AFTER_MAX = 60.0

UPLOADED, SKIPPED, FAILED = "uploaded", "skipped", "failed"

#: What registries answer (HTTP 400, where pypiserver says 409) when the file is there:
#: PyPI "File already exists", GitLab "File name has already been taken" (or, with
#: duplicates turned off, "Duplicate package is not allowed"), Nexus "Repository does
#: not allow updating assets" (OrientDB) or "... cannot be updated" (SQL databases).
EXISTS_PHRASES = (
    "already exist",
    "already been taken",
    "duplicate package is not allowed",
    "does not allow updating assets",
    "cannot be updated",
)
_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


class UploadStopped(MorganError):
    """The registry answered in a way every further file would meet too."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(host, reason)
        self.host = host
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.host}: {self.reason}"


# -- which files ------------------------------------------------------------------


def files_to_upload(index: Path, since: Path | None = None) -> list[ListedFile]:
    """The distributions of the index's manifest (those new or changed since the manifest
    ``since``, by the rule ``export --since`` follows), in upload order."""
    current = Manifest.load(index / MANIFEST)
    old = Manifest.load(since) if since is not None else None
    changed = set(changed_paths(old, current))
    return sorted((f for p, f in current.files.items() if p in changed), key=upload_order)


def upload_order(listed: ListedFile) -> tuple[Any, ...]:
    """Per project and version, the sdist first, then the wheels: the same order every run."""
    try:
        version: tuple[int, Any] = (0, Version(listed.version))
    except InvalidVersion:
        version = (1, listed.version)
    return (listed.project, version, 1 if _is_wheel(listed.path) else 0, listed.path)


def _is_wheel(path: str) -> bool:
    return path.endswith(".whl")


def _filename(listed: ListedFile) -> str:
    return listed.path.rsplit("/", 1)[-1]


def missing(index: Path, listed: ListedFile) -> str | None:
    """Why a listed file cannot be sent as it stands (None if it is there at its size)."""
    try:
        with _open_listed(index, listed):
            return None
    except DistributionError as error:
        return error.reason


@contextlib.contextmanager
def _open_listed(index: Path, listed: ListedFile) -> Iterator[BinaryIO]:
    """The tree's own regular file at its listed size, never through a link."""
    file = index / listed.path
    if file.parent != index and not stat.S_ISDIR(_lstat_mode(file.parent)):
        raise DistributionError(listed.path, "its folder is not a folder of the tree")
    try:
        descriptor = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise DistributionError(listed.path, f"listed in {MANIFEST} but missing") from None
    except OSError as error:
        why = "a link, not a file" if error.errno == errno.ELOOP else error.strerror
        raise DistributionError(listed.path, f"cannot be read ({why})") from None
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise DistributionError(listed.path, "not a regular file")
        if status.st_size != listed.size:
            raise DistributionError(
                listed.path, f"{status.st_size} bytes, {MANIFEST} says {listed.size}"
            )
        yield stream


def _lstat_mode(path: Path) -> int:
    try:
        return path.lstat().st_mode
    except OSError:
        return 0


# -- credentials --------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for HTTP basic auth; the password is never shown."""

    username: str
    password: str = field(repr=False)
    #: Where they came from, for messages: "-u/--password", "the URL", "~/.netrc".
    source: str = ""

    def authorization(self) -> str:
        return basic_auth(self.username, self.password)


def resolve_credentials(
    url: str,
    username: str | None = None,
    password: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    netrc_file: Path | None = None,
) -> tuple[str, Credentials | None]:
    """The upload URL without its user information, and the credentials to send.

    Each part is taken from the first place that gives it: ``-u`` / ``--password``
    (else ``MORGAN_UPLOAD_PASSWORD``), then ``https://user:token@host/`` in the URL, then
    the ``~/.netrc`` entry for the host (``NETRC`` names another file; an entry for another
    login than the one given is not used). A password alone goes with ``__token__``.
    """
    environ = os.environ if environ is None else environ
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - ValueError if the port is no number or out of range
        host = host_port(parts)
    except ValueError:
        host = ""
    if not host or parts.scheme not in ("http", "https"):
        raise UsageError(f"--repository-url {redact(url)!r} is not an http(s) URL")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    sources = []
    if username is not None or password is not None:
        sources.append("-u/--password")
    if password is None and environ.get(PASSWORD_VARIABLE):
        password = environ[PASSWORD_VARIABLE]
        sources.append(PASSWORD_VARIABLE)
    if parts.username is not None and (username is None or password is None):
        if username is None:
            username = urllib.parse.unquote(parts.username)
        if password is None and parts.password is not None:
            password = urllib.parse.unquote(parts.password)
        sources.append("the URL")
    if password is None:
        entry = netrc_credentials(parts.hostname or "", environ=environ, path=netrc_file)
        if entry is not None and (username is None or username == entry[0]):
            username, password = entry
            sources.append("~/.netrc")
    if username is None and password is None:
        return bare, None
    return bare, Credentials(username or TOKEN_USERNAME, password or "", " and ".join(sources))


# -- the registry -------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one file: uploaded, skipped (already there) or failed, and why."""

    file: ListedFile
    result: str
    detail: str = ""


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    text: str
    location: str
    retry_after: str = ""


class _Broken(Exception):
    """The request did not get an answer; ``connected`` says whether it reached the host."""

    def __init__(self, reason: str, *, connected: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.connected = connected


class Registry:
    """One registry's upload URL, with its credentials, TLS settings and proxies."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        *,
        tls: TLSSettings | None = None,
        timeout: float = 60.0,
        attempts: int = ATTEMPTS,
        backoff: float | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None:
            raise ValueError("pass the URL without its credentials (see resolve_credentials)")
        self.url = url
        self.host = host_port(parts)
        self.credentials = credentials
        self.tls = tls or TLSSettings()
        self.attempts = attempts
        self.backoff = upstream.DEFAULT_BACKOFF if backoff is None else backoff
        self._timeout = Timeout(connect=min(timeout, 10.0), read=timeout)
        self._pools = PoolManagers(headers={"User-Agent": USER_AGENT}, **self.tls.pool_arguments())
        self._manager = self._pools.for_url(parts)

    def close(self) -> None:
        self._pools.clear()

    def upload(self, index: Path, listed: ListedFile, *, skip_existing: bool) -> Outcome:
        """Send one file of the tree (checked against the manifest first); UploadStopped
        when the answer would be the same for every file."""
        try:
            with _open_listed(index, listed) as stream:
                digests = Digests.of_stream(stream)
                if digests.sha256 != listed.sha256:
                    return Outcome(
                        listed,
                        FAILED,
                        f"corrupt: sha256 is {digests.sha256}, {MANIFEST} says "
                        f"{listed.sha256}; not sent (run `morgan verify`)",
                    )
                metadata = self._core_metadata(index, listed, stream)
                form = MultipartForm.build(
                    form_fields(listed, metadata, digests), _filename(listed), listed.size
                )
                return self._send(listed, form, stream, digests, skip_existing)
        except DistributionError as error:
            return Outcome(listed, FAILED, error.reason)
        except OSError as error:
            return Outcome(listed, FAILED, f"cannot be read ({error.strerror or error})")

    @staticmethod
    def _core_metadata(index: Path, listed: ListedFile, stream: BinaryIO) -> bytes | None:
        stream.seek(0)
        if _is_wheel(listed.path):
            return read_wheel_metadata_stream(stream, _filename(listed), listed.project)
        return read_sdist_pkg_info(index / listed.path)

    def _send(
        self,
        listed: ListedFile,
        form: MultipartForm,
        stream: BinaryIO,
        digests: Digests,
        skip_existing: bool,
    ) -> Outcome:
        may_have_landed = False
        for attempt in range(1, self.attempts + 1):
            stream.seek(0)
            wait = min(self.backoff * 2 ** (attempt - 1), upstream.BACKOFF_MAX)
            try:
                answer = self._post(form, stream, _filename(listed))
            except _Broken as error:
                if attempt == self.attempts:
                    if not error.connected:
                        raise UploadStopped(
                            self.host, f"cannot reach the registry ({error.reason})"
                        ) from None
                    return Outcome(
                        listed, FAILED, f"{error.reason} (after {self.attempts} attempts)"
                    )
                may_have_landed = may_have_landed or error.connected
                log.info(
                    "%s: attempt %d of %d failed (%s)", listed.path, attempt, self.attempts, error
                )
                time.sleep(wait)
                continue
            said = f"HTTP {answer.status} {answer.reason}".rstrip()
            text = f": {answer.text}" if answer.text else ""
            if 200 <= answer.status < 300:
                return Outcome(listed, UPLOADED)
            if 300 <= answer.status < 400:
                where = redact(answer.location) if answer.location else "another address"
                raise UploadStopped(
                    self.host,
                    f"{said} sends the upload to {where}; "
                    "pass that address as --repository-url (an upload is never redirected)",
                )
            if answer.status in (401, 403):  # the page that says so says nothing more
                raise UploadStopped(self.host, self._refused(said))
            if _already_there(answer):
                return self._existing(
                    listed,
                    digests,
                    answer,
                    said=said,
                    may_have_landed=may_have_landed,
                    skip_existing=skip_existing,
                )
            if answer.status in RETRY_STATUSES and attempt < self.attempts:
                may_have_landed = True
                log.info(
                    "%s: attempt %d of %d failed (%s)", listed.path, attempt, self.attempts, said
                )
                time.sleep(_retry_after(answer, wait))
                continue
            after = f" after {self.attempts} attempts" if answer.status in RETRY_STATUSES else ""
            return Outcome(listed, FAILED, f"{said}{after}{text}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, said: str) -> str:
        if self.credentials is None:
            return (
                f"{said}; the registry wants credentials: pass -u USER with --password "
                f"(or {PASSWORD_VARIABLE}), put user:token@ in --repository-url, or add "
                "the host to ~/.netrc"
            )
        return (
            f"{said}; the credentials (from {self.credentials.source}) were refused: check "
            "-u/--password, the user:token@ in --repository-url, or ~/.netrc"
        )

    @staticmethod
    def _existing(
        listed: ListedFile,
        digests: Digests,
        answer: _Answer,
        *,
        said: str,
        may_have_landed: bool,
        skip_existing: bool,
    ) -> Outcome:
        named = set(_DIGEST.findall(answer.text.lower()))
        if named and not named & {digests.sha256, digests.blake2_256}:
            return Outcome(
                listed, FAILED, f"the registry has another file under this name ({said})"
            )
        if may_have_landed:  # an attempt of this run that broke off had landed it
            return Outcome(listed, UPLOADED, "there after a retry")
        if skip_existing:
            return Outcome(listed, SKIPPED, "already on the registry")
        return Outcome(
            listed,
            FAILED,
            f"already on the registry ({said}); pass --skip-existing to count such files as done",
        )

    def _post(self, form: MultipartForm, stream: BinaryIO, filename: str) -> _Answer:
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": form.content_type,
            "Content-Length": str(form.length),
        }
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.authorization()
        try:
            response = self._manager.request(
                "POST",
                self.url,
                body=form.body(stream, filename),
                headers=headers,
                retries=False,
                redirect=False,
                timeout=self._timeout,
                preload_content=False,
            )
        except Urllib3Error as error:
            if is_certificate_error(error):
                raise UploadStopped(
                    self.host,
                    describe_certificate_error(self.host, error, self.tls, sections=False),
                ) from None
            # refused, unresolved or timed out before connecting: nothing was sent
            connected = not isinstance(error, ConnectTimeoutError)
            raise _Broken(describe_transport_error(error), connected=connected) from None
        try:
            body = response.read(MAX_ANSWER_BYTES, decode_content=True)
            response.drain_conn()
        except Urllib3Error:
            body = b""
        finally:
            response.release_conn()
        return _Answer(
            response.status,
            response.reason or "",
            _one_line(body),
            str(response.headers.get("Location", "")),
            str(response.headers.get("Retry-After", "")).strip(),
        )


def _already_there(answer: _Answer) -> bool:
    if answer.status == 409:  # pypiserver, Gitea
        return True
    said = f"{answer.reason} {answer.text}".lower()
    return answer.status == 400 and any(phrase in said for phrase in EXISTS_PHRASES)


def _retry_after(answer: _Answer, wait: float) -> float:
    """The wait a busy registry asks for in seconds (up to a minute), else the backoff."""
    if answer.retry_after.isdigit():
        return min(float(answer.retry_after), RETRY_AFTER_MAX)
    return wait


def _one_line(body: bytes) -> str:
    """What a refusal says, as one short line: a JSON ``message``, else the text of the page."""
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, AttributeError):
        document = json.loads(text)
        message = document.get("message") or document.get("error") or document.get("errors")
        if message:
            text = message if isinstance(message, str) else json.dumps(message)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def upload_files(
    index: Path,
    registry: Registry,
    files: Sequence[ListedFile],
    *,
    skip_existing: bool,
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Send ``files`` in order; ``report(outcome)`` hears of each as it is decided."""
    outcomes = []
    for listed in files:
        outcome = registry.upload(index, listed, skip_existing=skip_existing)
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes
