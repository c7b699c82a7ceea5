"""Verified downloads into the tree: stream, hash, check, then rename into place.

A file becomes visible under its real name only after its digest matched what
the index promised; until then it is the hidden ``.<file>.part`` in the same
folder, which the pages and the server never list. A broken-off transfer is
resumed from that part (HTTP Range), in this run or the next, and the part is
deleted whenever its bytes cannot be right.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from urllib3.exceptions import HTTPError as Urllib3Error

from morgan.errors import (
    DownloadCancelled,
    HashMismatchError,
    UploadConflictError,
    UpstreamError,
)
from morgan.index import BACKOFF_MAX, Upstream, describe_transport_error, redact
from morgan.layout import PART_SUFFIX, is_upload, read_hash_sidecar, write_hash_sidecar
from morgan.models import PREFERRED_HASH, DistributionFile, parse_upload_time
from morgan.state import VerifiedFile, trusted_sha256

log = logging.getLogger(__name__)

#: Bytes read, hashed and written at a time (below the allocator's mapping threshold, so
#: each chunk comes from the heap rather than from fresh pages).
CHUNK_SIZE = 256 * 1024
#: Whole-download attempts when the body breaks off after the headers arrived
#: (urllib3 itself retries only until the response starts).
ATTEMPTS = 5
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadResult:
    """A file in the tree whose digest is known to be right."""

    path: Path
    sha256: str
    size: int
    reused: bool

    def record(self) -> VerifiedFile:
        return VerifiedFile.of(self.path, self.sha256)


def expected_digest(file: DistributionFile) -> tuple[str, str] | None:
    """The (algorithm, digest) to check a download against: sha256 when given."""
    if PREFERRED_HASH in file.hashes:
        return PREFERRED_HASH, file.hashes[PREFERRED_HASH].lower()
    for algorithm in sorted(file.hashes):
        if algorithm in hashlib.algorithms_guaranteed:
            return algorithm, file.hashes[algorithm].lower()
    return None


def upload_timestamp(upload_time: str | None) -> float | None:
    """Whole seconds since the epoch for a PEP 700 upload time (a file's mtime), or None."""
    moment = parse_upload_time(upload_time)
    return None if moment is None else float(calendar.timegm(moment.utctimetuple()))


def part_path(dest: Path) -> Path:
    """Where the download of ``dest`` grows until it is verified."""
    return dest.with_name(f".{dest.name}{PART_SUFFIX}")


def reuse(
    dest: Path, file: DistributionFile, record: VerifiedFile | None, verify: bool
) -> DownloadResult | None:
    """The file already in the tree, if its recorded hash is the one the index gives.

    A file unchanged (size, mtime) since it was last verified is not read again
    unless ``verify`` asks for it.
    """
    if not dest.is_file():
        return None
    sidecar = read_hash_sidecar(dest)
    if sidecar is None or sidecar[0] != PREFERRED_HASH:
        return None
    recorded = sidecar[1]
    expected = expected_digest(file)
    if expected is not None and expected[0] == PREFERRED_HASH and expected[1] != recorded:
        return None
    trusted = None if verify else trusted_sha256(dest, record)
    if trusted == recorded and expected is not None and expected[0] == PREFERRED_HASH:
        return DownloadResult(path=dest, sha256=recorded, size=dest.stat().st_size, reused=True)
    sha256 = hashlib.sha256()
    other = hashlib.new(expected[0]) if expected and expected[0] != PREFERRED_HASH else None
    _hash_file(dest, None, sha256, other)  # one read for both digests
    actual = sha256.hexdigest()
    if actual != recorded:
        log.warning("%s: content differs from its .hash sidecar; fetching it again", dest.name)
        return None
    if expected is not None and other is not None and other.hexdigest() != expected[1]:
        return None
    return DownloadResult(path=dest, sha256=actual, size=dest.stat().st_size, reused=True)


def download(
    client: Upstream,
    file: DistributionFile,
    dest: Path,
    *,
    record: VerifiedFile | None = None,
    verify: bool = False,
    cancel: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_verified: Callable[[Path], None] | None = None,
) -> DownloadResult:
    """Put ``file`` at ``dest`` verified, or raise; a verified copy already there is kept."""
    reused = reuse(dest, file, record, verify)
    if reused is not None:
        return reused
    return transfer(client, file, dest, cancel=cancel, on_bytes=on_bytes, on_verified=on_verified)


def transfer(
    client: Upstream,
    file: DistributionFile,
    dest: Path,
    *,
    cancel: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_verified: Callable[[Path], None] | None = None,
) -> DownloadResult:
    """Fetch ``file`` into ``dest`` (resuming a part left by an earlier attempt), verified.

    ``cancel`` stops a transfer between two chunks; ``on_bytes`` hears of each chunk;
    ``on_verified`` is given the hidden part file once all its bytes are in and verified,
    before they are synced and renamed into place (a resolution waiting for a wheel's
    dependencies need not wait for the disk). It must not raise.
    """
    if is_upload(dest):  # an upload is never replaced: not even by a file of its own name
        raise UploadConflictError(file.filename, redact(file.url))
    expected = expected_digest(file)
    if expected is None:
        log.warning(
            "%s: the index gives no usable hash; recording the sha256 of what was received",
            file.filename,
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(
        client, file, dest, expected, cancel=cancel, on_bytes=on_bytes, on_verified=on_verified
    )
    for attempt in range(1, ATTEMPTS + 1):
        resumed = transfer.resume_point() > 0
        try:
            return transfer.run()
        except HashMismatchError:
            if not resumed:
                raise
            # the kept part was stale (the file changed upstream?): start from nothing
            log.info("%s: resumed download did not verify; fetching it whole", file.filename)
        except (UpstreamError, Urllib3Error) as error:
            if isinstance(error, UpstreamError) and error.status == 416 and resumed:
                transfer.part.unlink(missing_ok=True)  # the part is complete or too long
                continue
            if attempt == ATTEMPTS or (isinstance(error, UpstreamError) and not error.transient):
                if isinstance(error, UpstreamError):
                    raise
                raise UpstreamError(redact(file.url), describe_transport_error(error)) from None
            reason = error.reason if isinstance(error, UpstreamError) else error
            log.info(
                "%s: attempt %d of %d failed (%s)",
                file.filename,
                attempt,
                ATTEMPTS,
                describe_transport_error(reason) if isinstance(reason, Exception) else reason,
            )
            _sleep(min(client.backoff * 2 ** (attempt - 1), BACKOFF_MAX), cancel)
    raise UpstreamError(redact(file.url), f"gave up after {ATTEMPTS} attempts")


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise DownloadCancelled()


class _Transfer:
    """One file's bytes on their way into the tree, resumable across attempts and runs."""

    def __init__(
        self,
        client: Upstream,
        file: DistributionFile,
        dest: Path,
        expected: tuple[str, str] | None,
        *,
        cancel: threading.Event | None,
        on_bytes: Callable[[int], None] | None,
        on_verified: Callable[[Path], None] | None = None,
    ) -> None:
        self.on_bytes = on_bytes
        self.on_verified = on_verified
        self.client = client
        self.file = file
        self.dest = dest
        self.part = part_path(dest)
        self.expected = expected
        self.cancel = cancel

    def _hashers(self) -> tuple[hashlib._Hash, hashlib._Hash | None]:
        other = None
        if self.expected and self.expected[0] != PREFERRED_HASH:
            other = hashlib.new(self.expected[0])
        return hashlib.sha256(), other

    def resume_point(self) -> int:
        """Bytes already in the part file that are worth keeping."""
        try:
            size = self.part.stat().st_size
        except FileNotFoundError:
            return 0
        if self.file.size is not None and size >= self.file.size:
            self.part.unlink()
            return 0
        return size

    def run(self) -> DownloadResult:
        sha256, other = self._hashers()
        offset = self.resume_point()
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with self.client.stream(
                self.file.url, headers=headers, accept_partial=bool(offset)
            ) as response:
                if offset and not _continues_at(response, offset):
                    log.debug("%s: the index sent the whole file again", self.file.filename)
                    offset = 0
                mode = "ab" if offset else "wb"
                with self.part.open(mode) as out:
                    if offset:
                        _hash_file(self.part, offset, sha256, other)
                        out.truncate(offset)
                    size = offset
                    for chunk in response.stream(CHUNK_SIZE):
                        if self.cancel is not None and self.cancel.is_set():
                            raise DownloadCancelled()
                        size += len(chunk)
                        if self.file.size is not None and size > self.file.size:
                            raise UpstreamError(
                                redact(self.file.url),
                                f"sent more than the {self.file.size} bytes the index announced",
                            )
                        sha256.update(chunk)
                        if other is not None:
                            other.update(chunk)
                        out.write(chunk)
                        if self.on_bytes is not None:
                            self.on_bytes(len(chunk))
                    out.flush()
                    self._check(size, sha256, other)
                    if self.on_verified is not None:
                        self.on_verified(self.part)
                    os.fsync(out.fileno())
        except (UpstreamError, Urllib3Error, DownloadCancelled):
            raise  # the part is kept: the next attempt or run resumes it
        except BaseException:
            self.part.unlink(missing_ok=True)  # a local failure (disk full): leave nothing
            raise
        return self._finish(size, sha256)

    def _check(self, size: int, sha256: hashlib._Hash, other: hashlib._Hash | None) -> None:
        """Raise unless the part holds all the bytes announced, with the digest promised."""
        if self.file.size is not None and size != self.file.size:
            # the body broke off early without a transport error: resume it
            raise UpstreamError(
                redact(self.file.url), f"received {size} bytes, the index says {self.file.size}"
            )
        if self.expected is not None:
            actual = (other or sha256).hexdigest()
            if actual != self.expected[1]:
                raise HashMismatchError(
                    self.file.filename, self.expected[0], self.expected[1], actual
                )  # the part is deleted: its bytes cannot be right

    def _finish(self, size: int, sha256: hashlib._Hash) -> DownloadResult:
        try:
            os.chmod(self.part, 0o644)
            stamp = upload_timestamp(self.file.upload_time)
            if stamp is not None:
                os.utime(self.part, (stamp, stamp))
            if is_upload(self.dest):  # uploaded to server.py while this was on its way
                self.part.unlink(missing_ok=True)
                raise UploadConflictError(self.file.filename, redact(self.file.url))
            os.replace(self.part, self.dest)
        except UpstreamError:
            raise
        except BaseException:
            self.part.unlink(missing_ok=True)
            raise
        digest = sha256.hexdigest()
        write_hash_sidecar(self.dest, digest)
        return DownloadResult(path=self.dest, sha256=digest, size=size, reused=False)


def _continues_at(response: object, offset: int) -> bool:
    """True if the response is a 206 whose body starts at ``offset``."""
    if getattr(response, "status", None) != 206:
        return False
    headers = getattr(response, "headers", {})
    match = _CONTENT_RANGE.fullmatch(str(headers.get("Content-Range", "")).strip())
    return match is not None and int(match.group(1)) == offset


def _hash_file(
    path: Path, length: int | None, sha256: hashlib._Hash, other: hashlib._Hash | None
) -> None:
    """Feed the file's first ``length`` bytes (all of it if None) to the hashers."""
    with path.open("rb") as stream:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = stream.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                if remaining is not None:
                    raise UpstreamError(str(path), "the partial download shrank while resuming")
                return
            sha256.update(chunk)
            if other is not None:
                other.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
