"""Verified downloads into the tree: stream, hash, check, then rename into place.

A file becomes visible under its real name only after its digest matched what
the index promised; until then it is a hidden ``.part`` file in the same
folder, which the pages and the server never list.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from urllib3.exceptions import HTTPError as Urllib3Error

from morgan.errors import HashMismatchError, UpstreamError
from morgan.index import IndexClient, redact
from morgan.layout import PART_SUFFIX, file_sha256, read_hash_sidecar, write_hash_sidecar
from morgan.models import PREFERRED_HASH, DistributionFile

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
#: Whole-download attempts when the body breaks off after the headers arrived
#: (urllib3 itself retries only until the response starts).
ATTEMPTS = 3


@dataclass(frozen=True)
class DownloadResult:
    """A file in the tree whose digest is known to be right."""

    path: Path
    sha256: str
    size: int
    reused: bool


def expected_digest(file: DistributionFile) -> tuple[str, str] | None:
    """The (algorithm, digest) to check a download against: sha256 when given."""
    if PREFERRED_HASH in file.hashes:
        return PREFERRED_HASH, file.hashes[PREFERRED_HASH]
    for algorithm in sorted(file.hashes):
        if algorithm in hashlib.algorithms_guaranteed:
            return algorithm, file.hashes[algorithm]
    return None


def upload_timestamp(upload_time: str | None) -> float | None:
    """Seconds since the epoch for a PEP 700 upload time, or None if unreadable."""
    if not upload_time:
        return None
    text = upload_time.strip().rstrip("Z").split(".", 1)[0]
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def _reusable(dest: Path, file: DistributionFile) -> DownloadResult | None:
    """The file already in the tree, if its recorded hash is the one the index gives."""
    if not dest.is_file():
        return None
    recorded = read_hash_sidecar(dest)
    expected = expected_digest(file)
    if recorded is None or recorded[0] != PREFERRED_HASH:
        return None
    if expected is not None and expected[0] == PREFERRED_HASH and expected[1] != recorded[1]:
        return None
    actual = file_sha256(dest)
    if actual != recorded[1]:
        log.warning("%s: content differs from its .hash sidecar; fetching it again", dest.name)
        return None
    return DownloadResult(path=dest, sha256=actual, size=dest.stat().st_size, reused=True)


def download(client: IndexClient, file: DistributionFile, dest: Path) -> DownloadResult:
    """Put ``file`` at ``dest`` verified, or raise; a verified copy already there is kept."""
    reused = _reusable(dest, file)
    if reused is not None:
        return reused
    expected = expected_digest(file)
    if expected is None:
        log.warning(
            "%s: the index gives no usable hash; recording the sha256 of what was received",
            file.filename,
        )
    last_error: Exception | None = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _fetch(client, file, dest, expected)
        except (UpstreamError, Urllib3Error) as error:
            last_error = error
            log.info("%s: attempt %d of %d failed (%s)", file.filename, attempt, ATTEMPTS, error)
    assert last_error is not None
    if isinstance(last_error, UpstreamError):
        raise last_error
    raise UpstreamError(redact(file.url), str(last_error))


def _fetch(
    client: IndexClient, file: DistributionFile, dest: Path, expected: tuple[str, str] | None
) -> DownloadResult:
    dest.parent.mkdir(parents=True, exist_ok=True)
    sha256 = hashlib.sha256()
    other = hashlib.new(expected[0]) if expected and expected[0] != PREFERRED_HASH else None
    size = 0
    fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=PART_SUFFIX)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, client.stream(file.url) as response:
            for chunk in response.stream(CHUNK_SIZE):
                sha256.update(chunk)
                if other is not None:
                    other.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if file.size is not None and size != file.size:
            raise UpstreamError(
                redact(file.url), f"received {size} bytes, the index says {file.size}"
            )
        if expected is not None:
            actual = (other or sha256).hexdigest()
            if actual != expected[1].lower():
                raise HashMismatchError(file.filename, expected[0], expected[1], actual)
        os.chmod(temp, 0o644)
        stamp = upload_timestamp(file.upload_time)
        if stamp is not None:
            os.utime(temp, (stamp, stamp))
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    digest = sha256.hexdigest()
    write_hash_sidecar(dest, digest)
    return DownloadResult(path=dest, sha256=digest, size=size, reused=False)
