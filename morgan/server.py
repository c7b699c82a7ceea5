"""Serve a Morgan mirror to pip, uv and other installers: ``python3 server.py``.

This one file is copied into every mirror and run inside closed networks, so it
uses the standard library only, imports nothing else from Morgan, and runs on
Python 3.7 and later.

What it serves, at ``/`` and at ``/simple/`` alike (so either URL works in
pip.conf):

* the project list, and one page per project, in PEP 503 HTML or PEP 691 JSON
  (api-version 1.1), chosen by the Accept header or ``?format=``. Pages are built
  per request from the folders as they are now, so a wheel dropped into a
  project folder by hand shows up without a restart. The facts of a file come
  from the project's ``index.json`` (written by the mirrorer, which alone knows
  what the upstream index said: requires-python, yanked, upload-time), else
  from the ``.hash`` and ``.metadata`` sidecars (trees of Morgan 0.15), else
  from the file itself (its sha256, and for a wheel its own METADATA);
* the distribution files (wheels and sdists), streamed with ranges and
  conditional requests;
* ``<wheel>.metadata``: the wheel's core metadata (PEP 658), unless
  ``--no-metadata``. It is the ``.metadata`` sidecar when there is one, else it
  is read from the wheel.

What is public and what is not: only the names above. Everything else answers
404 exactly as a missing file would (400 if the target is not a path of UTF-8
names at all), so that nothing about it is revealed:
``morgan.ini`` (it may hold credentials), ``manifest.json`` (unless
``--public-manifest``: then it is served at ``/manifest.json`` and
``/simple/manifest.json``, as the tree is at both), ``server.py``, the raw ``index.html``
and ``index.json`` files (their content is public through the pages), the
``.hash`` sidecars (their content is public in the pages), the ``.uploaded``
records (who uploaded a file), ``.part`` downloads
in progress, dotfiles and hidden folders, folders that are not normalized
project names or hold no distribution, any path that does not decode to plain
names (``..``, encoded slashes, backslashes, NUL and other control characters,
empty segments), and any file or folder whose real path, symlinks followed,
lies outside the index folder.

Options: TLS (``--certfile``, ``--keyfile``) and HTTP basic auth
(``--auth-file``; make its lines with ``python3 server.py hash-password USER``).

Uploads (``--upload``, which needs ``--auth-file``): twine's legacy upload API, a
multipart/form-data POST to ``/`` or ``/legacy/`` (``twine upload --repository-url
http://HOST:PORT/``), from the users of the auth file only. The form is checked as
PyPI checks it (``:action``, name, version, filetype, digests, a wheel or sdist file
name of that project and version, a wheel's own METADATA, an sdist's own PKG-INFO, read
from the archive without extracting it, which must hold nothing pip would refuse to
unpack; no second copy of a distribution under another name, one sdist per release);
the body is read as it comes into a hidden temporary file in the project's folder (the
index folder's for a new project), never held in memory, and is at most
``--max-upload-size``. It lands so that no page ever lists half of it: the sidecars
first (``.hash``, ``.metadata`` for a wheel, and ``.uploaded``, the record of who
uploaded what and when), the file renamed into place last and never over an existing
one (``400 File already exists``, as PyPI says it), then the static pages.
``import`` refuses a bundle that would change a project holding uploads and never
deletes one; ``verify`` checks uploads against their records.

Offline commands, for trees carried into the closed network:

* ``python3 server.py verify [-i INDEX] [--quarantine DIR]`` checks the tree
  against the ``manifest.json`` that ``morgan mirror`` writes (``verify_tree``);
* ``python3 server.py import BUNDLE.tar [-i INDEX] [--force]`` checks a bundle
  made by ``morgan export`` whole, writing nothing unless all is right, lands it
  so that a running server never lists an incomplete file, then verifies
  (``import_bundle``).

Under load and attack (see the Server class): one thread reads and writes every
socket without blocking, and ``--threads`` threads build the answers, so idle,
slow and stalled clients hold no thread; a request's headers must arrive whole
within ``--timeout`` and within fixed bounds; at ``--max-connections`` idle
connections make room, else newcomers wait, then get 503. Memory stays flat:
files are sent by the kernel (or a chunk at a time over TLS), and a wheel's zip
directory is scanned in pieces, never loaded whole.
"""

import argparse
import base64
import binascii
import collections
import contextlib
import datetime
import email.errors
import email.parser
import email.utils
import errno
import getpass
import gzip
import hashlib
import hmac
import html
import http.server
import io
import json
import os
import re
import secrets
import selectors
import shutil
import socket
import ssl
import stat
import struct
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import urllib.parse
import zipfile
import zlib
from typing import (
    Any,
    BinaryIO,
    Callable,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Tuple,
    Type,
    Union,
)

DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a mirror is meant to be reached from the network
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60.0
DEFAULT_THREADS = 8
DEFAULT_MAX_CONNECTIONS = 1000
API_VERSION = "1.1"

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

WHEEL_SUFFIX = ".whl"
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")
DISTRIBUTION_SUFFIXES = (WHEEL_SUFFIX,) + SDIST_SUFFIXES
HASH_SUFFIX = ".hash"
METADATA_SUFFIX = ".metadata"
PAGE_JSON = "index.json"

#: Bounds that keep memory flat whatever the tree holds.
MAX_METADATA_BYTES = 16 * 1024 * 1024
MAX_HEADER_SCAN_BYTES = 1024 * 1024
MAX_PAGE_JSON_BYTES = 256 * 1024 * 1024
MAX_ZIP_DIRECTORY_BYTES = 64 * 1024 * 1024
ZIP_SCAN_BYTES = 1024 * 1024
CHUNK_BYTES = 256 * 1024

#: Bounds on what a client may send and hold, whatever it does.
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
MAX_PENDING_PASSWORD_CHECKS = 8
RECV_BYTES = 16 * 1024
TLS_CHUNK_BYTES = 16 * 1024
PLAIN_CHUNK_BYTES = 64 * 1024
SEND_BURST_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 2.0
IDLE_GRACE_SECONDS = 1.0
FULL_WAIT_SECONDS = 1.0
LINGER_MAX_BYTES = 1024 * 1024
LISTEN_BACKLOG = 1024

FILE_CACHE_CONTROL = "max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "max-age=60"
MANIFEST_CACHE_CONTROL = "no-cache"  # rewritten by every mirror run: always revalidated

PASSWORD_SCHEME = "pbkdf2_sha256"  # noqa: S105 - a scheme name, not a password
DEFAULT_ITERATIONS = 600000

_NORMALIZED_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


class UserError(Exception):
    """A problem the user can fix; reported as one line, without a traceback."""

    status = 2  # the exit status
    label = "error"


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line, compatible with Morgan's ``server.py``."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Serve a Morgan mirror as a simple repository (PEP 503 and PEP 691).",
        epilog=(
            "Other commands: server.py hash-password USER (a line of an auth file); "
            "server.py verify [-i INDEX] [--quarantine DIR] (check the tree against its "
            "manifest.json); server.py import BUNDLE.tar [-i INDEX] [--force] (land a bundle "
            "made by morgan export). Each has its own --help."
        ),
    )
    parser.add_argument(
        "-i", "--index-path", default=".", help="the mirror's folder (default: current folder)"
    )
    parser.add_argument(
        "-H", "--host", default=DEFAULT_HOST, help="address to listen on (default: 0.0.0.0)"
    )
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT, help="port (default: 8080)")
    parser.add_argument(
        "--no-metadata",
        action="store_true",
        help="do not offer wheels' core metadata (PEP 658) files",
    )
    parser.add_argument("--certfile", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--keyfile", help="the certificate's private key, if not in --certfile")
    parser.add_argument("--auth-file", help="require HTTP basic auth from the users in this file")
    parser.add_argument(
        "--upload",
        action="store_true",
        help=(
            "take uploads from the users of --auth-file (twine upload --repository-url "
            "http://HOST:PORT/): POST to / or /legacy/, as to PyPI's legacy API"
        ),
    )
    parser.add_argument(
        "--max-upload-size",
        type=parse_size,
        metavar="BYTES",
        help=(
            "the largest upload taken, form fields included (default: 1G; K, M, G and T "
            "are powers of 1024)"
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.add_argument(
        "--public-manifest",
        action="store_true",
        help=(
            "serve the tree's manifest.json at /manifest.json and /simple/manifest.json "
            "(by default it is never served)"
        ),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=(
            "seconds a client has to send a request's headers (counted from when it "
            "connected or was last answered), and that a download may stall (default: 60)"
        ),
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=(
            "threads that build answers (default: %d); sockets are read and written by "
            "one more thread, so slow clients and downloads hold no thread" % DEFAULT_THREADS
        ),
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=(
            "open connections at most (default: %d, lowered to fit the open-file limit); "
            "when full, a connection idle for over a second is closed to make room, or "
            "else newcomers wait a second, then get 503" % DEFAULT_MAX_CONNECTIONS
        ),
    )
    return parser


def build_verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py verify",
        description=(
            "Check the mirror against its manifest.json: each listed file is there, a "
            "regular file of the listed size and sha256, and nothing else is (hidden files, "
            "manifest.json and morgan.ini aside). Files uploaded to server.py --upload are "
            "checked against their .uploaded records instead. Exit status: 0 when the tree "
            "matches, 1 when it does not, 2 when it cannot be checked."
        ),
    )
    parser.add_argument(
        "-i", "--index-path", default=".", help="the mirror's folder (default: current folder)"
    )
    parser.add_argument(
        "--quarantine",
        metavar="DIR",
        help="move corrupt and unlisted files into DIR (outside the mirror), at their paths",
    )
    return parser


def build_import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py import",
        description=(
            "Land a bundle made by morgan export into the mirror, then verify it. A bundle "
            "that is damaged, unsafe, made against another state of the mirror or that "
            "changes a project holding uploads is refused (exit 1) and nothing is written. "
            "An interrupted import is finished by running it again. Exit status once "
            "landed: verify's."
        ),
    )
    parser.add_argument("bundle", metavar="BUNDLE.tar", help="the bundle (an uncompressed tar)")
    parser.add_argument(
        "-i", "--index-path", default=".", help="the mirror's folder (default: current folder)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=(
            "land the bundle even if it was made against another manifest.json (or is a "
            "full bundle and the mirror has a manifest.json already)"
        ),
    )
    return parser


def build_hash_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py hash-password",
        description=(
            "Print an auth-file line for USER. The password is read from the terminal, "
            "or else from the first line of standard input."
        ),
    )
    parser.add_argument("user")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    return parser


# ---------------------------------------------------------------------------
# Names and path safety
# ---------------------------------------------------------------------------


def normalize(name: str) -> str:
    """The PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_project_name(name: str) -> bool:
    """True for a name that is already a normalized project name (and so a safe folder)."""
    return bool(_NORMALIZED_NAME.match(name)) and "--" not in name


def is_distribution_name(name: str) -> bool:
    """True for a name that may be served as a distribution file."""
    return name.endswith(DISTRIBUTION_SUFFIXES) and is_plain_name(name)


def is_plain_name(name: str) -> bool:
    """A single visible path segment: no separator, no control character, no leading dot.

    ":" is refused too (a drive on Windows), and so are names that cannot be
    written as UTF-8 (undecodable bytes on disk), as they could not appear in a page.
    """
    if not name or name.startswith(".") or "/" in name or "\\" in name or ":" in name:
        return False
    if _CONTROL_CHARACTERS.search(name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_path(target: str) -> Optional[List[str]]:
    """The segments of a request target, percent-decoded; None if it is not a plain path.

    Each segment is decoded on its own, so an encoded slash stays inside its
    segment, where ``is_plain_name`` refuses it. The request line arrives as
    Latin-1 text; its bytes are taken back and read as UTF-8.
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    segments = []
    for raw in path.split("/")[1:]:
        try:
            data = urllib.parse.unquote_to_bytes(raw.encode("latin-1"))
            segments.append(data.decode("utf-8"))
        except (UnicodeEncodeError, UnicodeDecodeError):
            return None
    return segments


def is_inside(root: str, path: str) -> bool:
    """True when ``path`` (a real path) is strictly inside the folder ``root`` (a real path)."""
    return path.startswith(root.rstrip(os.sep) + os.sep)


# ---------------------------------------------------------------------------
# Tree reading
# ---------------------------------------------------------------------------


class FileFacts(NamedTuple):
    """What a project page says of one distribution file."""

    filename: str
    sha256: str
    size: int
    requires_python: Optional[str]
    yanked: Union[bool, str]
    upload_time: Optional[str]
    metadata_sha256: Optional[str]


class MetadataFacts(NamedTuple):
    sha256: str
    requires_python: Optional[str]


class ListedFacts(NamedTuple):
    """A file's entry in the mirrorer's index.json, reduced to what is used."""

    sha256: Optional[str]
    size: Optional[int]
    requires_python: Optional[str]
    yanked: Union[bool, str]
    upload_time: Optional[str]


class Resource(NamedTuple):
    """Something to send: a file on disk (``path``) or bytes in memory (``data``)."""

    path: Optional[str]
    data: Optional[bytes]
    size: int
    mtime: float
    etag: str
    content_type: str
    cache_control: str = FILE_CACHE_CONTROL


class LRUCache:
    """A small thread-safe LRU map, so that caches stay bounded on large mirrors."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            try:
                self._items.move_to_end(key)
            except KeyError:
                return None
            return self._items[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def stat_key(path: str, st: os.stat_result) -> Tuple[str, int, int, int]:
    """A cache key that changes whenever the file is replaced or rewritten."""
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def sha256_of_file(path: str) -> str:
    stream = open_regular_file(path)
    if stream is None:
        raise FileNotFoundError(errno.ENOENT, "not a regular file", path)
    digest = hashlib.sha256()
    with stream:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


def requires_python_of(metadata: bytes) -> Optional[str]:
    """The Requires-Python field of core metadata (RFC 822 style headers), if any."""
    value: Optional[str] = None
    capturing = False
    for raw_line in metadata.decode("utf-8", "replace").split("\n"):
        line = raw_line.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if capturing and value is not None:
                value = value + " " + line.strip()
            continue
        name, sep, rest = line.partition(":")
        capturing = bool(sep) and name.strip().lower() == "requires-python"
        if capturing:
            value = rest.strip()
    return value or None


class ZipMember(NamedTuple):
    """Where one member of a zip archive is, from its central directory entry."""

    name: str
    header_offset: int
    compressed_size: int
    file_size: int
    method: int
    flags: int
    crc: int


_ZIP_END = b"PK\x05\x06"
_ZIP64_END = b"PK\x06\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP_ENTRY = b"PK\x01\x02"
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_ENTRY_BYTES = 46
_ZIP_MAX32 = 0xFFFFFFFF


def zip_directory(stream: Any, size: int) -> Optional[Tuple[int, int, int]]:
    """(start, length, shift) of a zip's central directory; None if absent, odd or too large.

    ``shift`` is what to add to the offsets it records (non-zero when bytes
    were put in front of the archive). The directory must fit in
    MAX_ZIP_DIRECTORY_BYTES: it is scanned, never loaded whole.
    """
    tail_size = min(size, 22 + 65535)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    position = tail.rfind(_ZIP_END)
    if position < 0 or len(tail) - position < 22:
        return None
    end_offset = size - tail_size + position
    disk, directory_disk, _, entries, length, offset, _ = struct.unpack_from(
        "<4H2LH", tail, position + 4
    )
    if disk or directory_disk:
        return None  # split across several files
    if entries == 0xFFFF or _ZIP_MAX32 in (length, offset):
        if end_offset < 20:
            return None
        stream.seek(end_offset - 20)
        locator = stream.read(20)
        if len(locator) != 20 or locator[:4] != _ZIP64_LOCATOR:
            return None
        (record_offset,) = struct.unpack_from("<Q", locator, 8)
        if record_offset >= end_offset:
            return None
        stream.seek(record_offset)
        record = stream.read(56)
        if len(record) != 56 or record[:4] != _ZIP64_END:
            return None
        length, offset = struct.unpack_from("<2Q", record, 40)
        end_offset = record_offset
    start = end_offset - length
    if length > MAX_ZIP_DIRECTORY_BYTES or start < 0 or start < offset:
        return None
    return start, length, start - offset


def _zip64_sizes(extra: bytes, sizes: List[int]) -> Optional[List[int]]:
    """File size, compressed size and offset, with the ZIP64 extra field's values filled in."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, position)
        if kind == 1:
            data = extra[position + 4 : position + 4 + length]
            filled, used = [], 0
            for value in sizes:
                if value != _ZIP_MAX32:
                    filled.append(value)
                    continue
                if used + 8 > len(data):
                    return None
                filled.append(struct.unpack_from("<Q", data, used)[0])
                used += 8
            return filled
        position += 4 + length
    return None if _ZIP_MAX32 in sizes else sizes


def zip_entries(stream: Any, start: int, length: int) -> Iterator[bytes]:
    """Each entry of a zip's central directory (its fixed part, name, extra field and
    comment), read in chunks of ZIP_SCAN_BYTES; ValueError if the directory is malformed."""
    stream.seek(start)
    buffer, position, remaining = b"", 0, length
    while True:
        if len(buffer) - position < _ZIP_ENTRY_BYTES + 3 * 65535 and remaining > 0:
            chunk = stream.read(min(ZIP_SCAN_BYTES, remaining))
            if not chunk:
                raise ValueError("the zip directory is cut short")
            remaining -= len(chunk)
            buffer, position = buffer[position:] + chunk, 0
        if len(buffer) - position < _ZIP_ENTRY_BYTES:
            return
        if buffer[position : position + 4] != _ZIP_ENTRY:
            raise ValueError("a zip directory entry without its signature")
        name_length, extra_length, comment_length = struct.unpack_from("<3H", buffer, position + 28)
        end = position + _ZIP_ENTRY_BYTES + name_length + extra_length + comment_length
        if end > len(buffer):
            raise ValueError("the zip directory is cut short")
        yield buffer[position:end]
        position = end


def find_metadata_member(stream: Any, size: int, wheel_name: str) -> Optional[ZipMember]:
    """The wheel's top-level ``*.dist-info/METADATA`` member, found by scanning the directory.

    Only that member is kept, so memory stays flat for any number of members.
    When a wheel has several such folders, the one named after the wheel's
    name and version wins.
    """
    directory = zip_directory(stream, size)
    if directory is None:
        return None
    start, length, shift = directory
    stem = wheel_name[: -len(WHEEL_SUFFIX)]
    parts = stem.split("-")
    expected = ("%s-%s.dist-info/METADATA" % tuple(parts[:2])).lower() if len(parts) >= 2 else ""
    found: List[ZipMember] = []
    try:
        for entry in zip_entries(stream, start, length):
            name_length, extra_length = struct.unpack_from("<2H", entry, 28)
            end = _ZIP_ENTRY_BYTES + name_length
            raw_name = entry[_ZIP_ENTRY_BYTES:end]
            if not (raw_name.endswith(b".dist-info/METADATA") and raw_name.count(b"/") == 1):
                continue
            fields = struct.unpack_from("<4x6H3L5H2L", entry)
            flags, method, crc = fields[2], fields[3], fields[6]
            sizes = _zip64_sizes(
                entry[end : end + extra_length], [fields[8], fields[7], fields[15]]
            )
            if sizes is None or len(found) >= 16:
                return None
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            found.append(ZipMember(name, sizes[2] + shift, sizes[1], sizes[0], method, flags, crc))
    except ValueError:
        return None
    if len(found) > 1:
        found = [member for member in found if member.name.lower() == expected]
    return found[0] if len(found) == 1 else None


def read_zip_member(stream: Any, member: ZipMember) -> Optional[bytes]:
    """A member's bytes (stored, deflate, bzip2 or LZMA), checked against its size and CRC."""
    if member.flags & 0x1 or member.file_size > MAX_METADATA_BYTES:
        return None  # encrypted, or more than any core metadata
    if member.compressed_size > MAX_METADATA_BYTES + 1024 * 1024:
        return None
    stream.seek(member.header_offset)
    header = stream.read(30)
    if len(header) != 30 or header[:4] != _ZIP_LOCAL:
        return None
    name_length, extra_length = struct.unpack_from("<2H", header, 26)
    stream.seek(member.header_offset + 30 + name_length + extra_length)
    raw: bytes = stream.read(member.compressed_size)
    if len(raw) != member.compressed_size:
        return None
    if member.method == 0:
        data = raw
    elif member.method == 8:
        data = zlib.decompressobj(-15).decompress(raw, MAX_METADATA_BYTES + 1)
    elif member.method == 12:
        import bz2  # noqa: PLC0415 - rare in wheels, and missing from some builds

        data = bz2.BZ2Decompressor().decompress(raw, MAX_METADATA_BYTES + 1)
    elif member.method == 14:
        data = _unlzma(raw)
    else:
        return None
    if len(data) != member.file_size or zlib.crc32(data) & _ZIP_MAX32 != member.crc:
        return None
    return data


def _unlzma(raw: bytes) -> bytes:
    """A zip member in LZMA form: version (2 bytes), properties size (2), properties, data."""
    import lzma  # noqa: PLC0415 - rare in wheels, and missing from some builds

    (size,) = struct.unpack_from("<H", raw, 2)
    properties = raw[4 : 4 + size]
    if size != 5 or len(properties) != 5:
        raise ValueError("unexpected LZMA properties")
    first, dict_size = properties[0], struct.unpack_from("<L", properties, 1)[0]
    lc, lp, pb = first % 9, first // 9 % 5, first // 45
    lzma1 = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    try:
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1])
        return decompressor.decompress(raw[4 + size :], MAX_METADATA_BYTES + 1)
    except lzma.LZMAError as error:
        raise ValueError(str(error)) from None


def read_wheel_metadata(
    path: str, members: Optional["LRUCache"] = None, name: Optional[str] = None
) -> Optional[bytes]:
    """A wheel's own ``.dist-info/METADATA``, read with bounds; None if unreadable.

    ``members`` remembers where the member lies in each version of a file, so
    that the directory of a large wheel is scanned once, not on every request.
    ``name`` is the wheel's file name, when the file is not (yet) named so.
    """
    stream = open_regular_file(path)
    if stream is None:
        return None
    with stream:
        try:
            st = os.fstat(stream.fileno())
            key = stat_key(path, st)
            member = members.get(key) if members is not None else None
            if member is None:
                wheel_name = name or os.path.basename(path)
                member = find_metadata_member(stream, st.st_size, wheel_name)
                if members is not None:
                    members.put(key, member or False)
            return read_zip_member(stream, member) if member else None
        except (OSError, struct.error, zlib.error, EOFError, ValueError, ImportError):
            return None  # damaged, or a compression this Python lacks


def read_hash_sidecar(path: str) -> Optional[str]:
    """The sha256 in a Morgan ``<file>.hash`` sidecar ("sha256=<hex>"), if it holds one."""
    stream = open_regular_file(path + HASH_SUFFIX)
    if stream is None:
        return None
    try:
        with stream:
            text = stream.read(1024).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    algorithm, sep, digest = text.partition("=")
    digest = digest.strip().lower()
    if sep and algorithm.strip().lower() == "sha256" and _SHA256_HEX.match(digest):
        return digest
    return None


def file_version(project: str, filename: str) -> Optional[str]:
    """The version in a distribution's filename (for PEP 700 ``versions``)."""
    if filename.endswith(WHEEL_SUFFIX):
        parts = filename[: -len(WHEEL_SUFFIX)].split("-")
        return parts[1] if len(parts) in (5, 6) and parts[1] else None
    stem = sdist_stem(filename)
    split = split_sdist_stem(stem, project) if stem is not None else None
    return split[1] or None if split is not None else None


def sdist_stem(filename: str) -> Optional[str]:
    """An sdist's file name without its archive ending (None for another name)."""
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def split_sdist_stem(stem: str, project: str) -> Optional[Tuple[str, str]]:
    """(name part, version) of an sdist's stem. The name part may hold dashes itself: it
    is split where its left side is ``project`` if it can be, else at the last dash."""
    dashes = [index for index, char in enumerate(stem) if char == "-" and index > 0]
    if not dashes:
        return None
    split = next((at for at in dashes if normalize(stem[:at]) == project), dashes[-1])
    return stem[:split], stem[split + 1 :]


def version_sort_key(version: str) -> List[Tuple[int, int, str]]:
    """Natural order (1.10 after 1.9) without the ``packaging`` library."""
    key = []
    for part in re.split(r"(\d+)", version):
        if part.isdigit():
            key.append((1, int(part), ""))
        elif part:
            key.append((0, 0, part))
    return key


class Tree:
    """The mirror's folder, read afresh on each request, with bounded caches of costly facts."""

    def __init__(self, root: str, metadata: bool) -> None:
        self.root = os.path.realpath(root)
        self.metadata = metadata
        self._digests = LRUCache(65536)
        self._metadata = LRUCache(65536)
        self._listed = LRUCache(256)
        self._has_distribution = LRUCache(65536)
        self._members = LRUCache(65536)
        self._stripes = [threading.Lock() for _ in range(64)]

    def _once(self, cache: LRUCache, key: Any, compute: Callable[[], Any]) -> Any:
        """``cache[key]``, computed when missing by one thread while the others wait for it.

        Many clients asking at once for a page whose facts are not known yet
        (a large file dropped in by hand, a new index.json) cost one hashing
        or parsing, not one per client.
        """
        value = cache.get(key)
        if value is None:
            with self._stripes[hash(key) % len(self._stripes)]:
                value = cache.get(key)
                if value is None:
                    value = compute()
                    cache.put(key, value)
        return value

    # -- folders --------------------------------------------------------------

    def project_folder(self, name: str) -> Optional[str]:
        """The real path of project ``name`` (normalized) if it is a real project folder."""
        if not is_project_name(name):
            return None
        folder = os.path.join(self.root, name)
        if os.path.islink(folder):  # the root is real and the name plain: only links lead away
            folder = os.path.realpath(folder)
            if not is_inside(self.root, folder):
                return None
        try:
            st = os.stat(folder)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        key = stat_key(folder, st)
        found = self._has_distribution.get(key)
        if found is None:
            found = any(True for _ in self._distributions(folder, first_only=True))
            self._has_distribution.put(key, found)
        return folder if found else None

    def landed(self, folder: str) -> None:
        """A distribution was just renamed into ``folder``: remember that it holds one (its
        mtime may not have moved, if it was written within the file system's tick)."""
        with contextlib.suppress(OSError):
            self._has_distribution.put(stat_key(folder, os.stat(folder)), True)

    def projects(self) -> List[str]:
        names = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if is_project_name(entry.name) and self.project_folder(entry.name):
                    names.append(entry.name)
        return sorted(names)

    def _distributions(
        self, folder: str, first_only: bool = False
    ) -> List[Tuple[str, str, os.stat_result]]:
        """(name, real path, stat) of each servable distribution file in a project folder."""
        found = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if not is_distribution_name(entry.name):
                    continue
                checked = self.servable(folder, entry.name)
                if checked is not None:
                    found.append((entry.name, checked[0], checked[1]))
                    if first_only:
                        break
        return found

    def servable(self, folder: str, name: str) -> Optional[Tuple[str, os.stat_result]]:
        """(real path, stat) of a regular file of a (real) folder, if it stays inside the tree.

        ``name`` is a plain name, so only a symlink can lead elsewhere; only
        symlinks pay for a realpath.
        """
        path = os.path.join(folder, name)
        if os.path.islink(path):
            path = os.path.realpath(path)
            if not is_inside(self.root, path):
                return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (path, st) if stat.S_ISREG(st.st_mode) else None

    # -- facts ------------------------------------------------------------------

    def sha256(self, path: str, st: os.stat_result) -> str:
        return str(self._once(self._digests, stat_key(path, st), lambda: sha256_of_file(path)))

    def listed_facts(self, folder: str) -> Dict[str, ListedFacts]:
        """The files of the project's index.json by name (empty when absent or unreadable)."""
        checked = self.servable(folder, PAGE_JSON)
        if checked is None or checked[1].st_size > MAX_PAGE_JSON_BYTES:
            return {}
        return dict(
            self._once(self._listed, stat_key(*checked), lambda: self._read_listed(checked[0]))
        )

    def _read_listed(self, path: str) -> Dict[str, ListedFacts]:
        facts = {}
        stream = open_regular_file(path)
        try:
            if stream is None:
                raise FileNotFoundError(path)
            with stream:
                document = json.loads(stream.read(MAX_PAGE_JSON_BYTES + 1).decode("utf-8"))
            files = document.get("files") if isinstance(document, dict) else None
        except (OSError, ValueError):
            files = None
        for item in files if isinstance(files, list) else []:
            entry = self._listed_entry(item)
            if entry is not None:
                facts[item["filename"]] = entry
        return facts

    @staticmethod
    def _listed_entry(item: Any) -> Optional[ListedFacts]:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            return None
        hashes = item.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        size = item.get("size")
        requires_python = item.get("requires-python")
        yanked = item.get("yanked", False)
        upload_time = item.get("upload-time")
        return ListedFacts(
            sha256=sha256.lower()
            if isinstance(sha256, str) and _SHA256_HEX.match(sha256.lower())
            else None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            requires_python=requires_python if isinstance(requires_python, str) else None,
            yanked=yanked if isinstance(yanked, (bool, str)) else False,
            upload_time=upload_time if isinstance(upload_time, str) else None,
        )

    def metadata_facts(self, wheel: str, wheel_st: os.stat_result) -> Optional[MetadataFacts]:
        """sha256 and Requires-Python of a wheel's core metadata (sidecar, else the wheel)."""
        sidecar = self.servable(os.path.dirname(wheel), os.path.basename(wheel) + METADATA_SUFFIX)
        key = stat_key(*sidecar) if sidecar is not None else stat_key(wheel, wheel_st)
        found = self._once(
            self._metadata, key, lambda: self._read_metadata_facts(wheel, sidecar) or False
        )
        return found if isinstance(found, MetadataFacts) else None

    def _read_metadata_facts(
        self, wheel: str, sidecar: Optional[Tuple[str, os.stat_result]]
    ) -> Optional[MetadataFacts]:
        if sidecar is not None:
            stream = open_regular_file(sidecar[0])
            try:
                if stream is None:
                    raise FileNotFoundError(sidecar[0])
                with stream:
                    head = stream.read(MAX_HEADER_SCAN_BYTES)
                return MetadataFacts(sha256_of_file(sidecar[0]), requires_python_of(head))
            except OSError:
                return None
        data = read_wheel_metadata(wheel, self._members)
        if data is None:
            return None
        return MetadataFacts(hashlib.sha256(data).hexdigest(), requires_python_of(data))

    def files(self, project: str, folder: str) -> List[FileFacts]:
        """Every distribution file of a project, with the facts its pages show."""
        listed = self.listed_facts(folder)
        result = []
        for name, path, st in sorted(self._distributions(folder)):
            entry = listed.get(name)
            replaced = entry is not None and entry.size not in (None, st.st_size)
            if replaced:
                entry = None  # changed since the mirrorer wrote the page: trust only the file
            sha256 = entry.sha256 if entry is not None else None
            if sha256 is None and not replaced:
                sha256 = read_hash_sidecar(os.path.join(folder, name))
            if sha256 is None:
                sha256 = self.sha256(path, st)
            requires_python = entry.requires_python if entry is not None else None
            metadata = None
            if name.endswith(WHEEL_SUFFIX) and (self.metadata or requires_python is None):
                metadata = self.metadata_facts(path, st)
            if requires_python is None and metadata is not None:
                requires_python = metadata.requires_python
            result.append(
                FileFacts(
                    filename=name,
                    sha256=sha256,
                    size=st.st_size,
                    requires_python=requires_python,
                    yanked=entry.yanked if entry is not None else False,
                    upload_time=entry.upload_time if entry is not None else None,
                    metadata_sha256=metadata.sha256 if metadata and self.metadata else None,
                )
            )
        return result

    # -- things to send ---------------------------------------------------------

    def distribution(self, folder: str, filename: str) -> Optional[Resource]:
        if not is_distribution_name(filename):
            return None
        checked = self.servable(folder, filename)
        if checked is None:
            return None
        path, st = checked
        return Resource(
            path, None, st.st_size, st.st_mtime, file_etag(st), content_type_of(filename)
        )

    def manifest(self) -> Optional[Resource]:
        """The root's manifest.json (served with --public-manifest only)."""
        checked = self.servable(self.root, MANIFEST_NAME)
        if checked is None:
            return None
        path, st = checked
        return Resource(
            path,
            None,
            st.st_size,
            st.st_mtime,
            file_etag(st),
            "application/json",
            MANIFEST_CACHE_CONTROL,
        )

    def core_metadata(self, folder: str, filename: str) -> Optional[Resource]:
        """``<wheel>.metadata``: the sidecar if present, else read from the wheel."""
        wheel_name = filename[: -len(METADATA_SUFFIX)]
        if not self.metadata or not wheel_name.endswith(WHEEL_SUFFIX):
            return None
        if not is_distribution_name(wheel_name):
            return None
        wheel = self.servable(folder, wheel_name)
        if wheel is None:
            return None
        content_type = "text/plain; charset=utf-8"
        sidecar = self.servable(folder, filename)
        if sidecar is not None:
            path, st = sidecar
            return Resource(path, None, st.st_size, st.st_mtime, file_etag(st), content_type)
        data = read_wheel_metadata(wheel[0], self._members)
        if data is None:
            return None
        etag = '"m%s"' % hashlib.sha256(data).hexdigest()[:32]
        return Resource(None, data, len(data), wheel[1].st_mtime, etag, content_type)


def open_regular_file(path: str) -> Optional[BinaryIO]:
    """The file opened for reading if it is still a regular file (never blocks on a FIFO)."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            return os.fdopen(descriptor, "rb")
    except OSError:
        pass
    os.close(descriptor)
    return None


def file_etag(st: os.stat_result) -> str:
    return '"%x-%x"' % (st.st_size, st.st_mtime_ns)


def content_type_of(filename: str) -> str:
    """Media types that no client will take as a content encoding to undo."""
    if filename.endswith((".whl", ".zip")):
        return "application/zip"
    if filename.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if filename.endswith(".tar.bz2"):
        return "application/x-bzip2"
    if filename.endswith(".tar.xz"):
        return "application/x-xz"
    return "application/octet-stream"


# ---------------------------------------------------------------------------
# Negotiation (PEP 691)
# ---------------------------------------------------------------------------

#: Served media types, in the order preferred when a client rates several alike.
SERVED_TYPES = (HTML_V1, JSON_V1, TEXT_HTML)
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_FORMAT_SHORTHANDS = {"json": JSON_V1, "html": HTML_V1}


def parse_accept(header: str) -> List[Tuple[str, float]]:
    """(media range, q) pairs of an Accept header; malformed members are skipped."""
    ranges = []
    for member in header.split(","):
        fields = member.split(";")
        media = fields[0].strip().lower()
        if media.count("/") != 1:
            continue
        quality = 1.0
        for parameter in fields[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if not 0.0 <= quality <= 1.0:
            continue
        ranges.append((_LATEST.get(media, media), quality))
    return ranges


def quality_of(media_type: str, ranges: List[Tuple[str, float]]) -> Tuple[float, int]:
    """(q, specificity) that the most specific matching range gives a media type."""
    kind = media_type.partition("/")[0]
    best = (0.0, -1)
    for media, quality in ranges:
        if media == media_type:
            specificity = 2
        elif media == kind + "/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[1] or (specificity == best[1] and quality > best[0]):
            best = (quality, specificity)
    return best


def format_parameter(query: str) -> Optional[str]:
    """The ``format`` query parameter. A "+" is kept as it is: PEP 691 writes media
    types in the query unencoded (``?format=application/vnd.pypi.simple.v1+json``).
    """
    value = None
    for pair in query.split("&"):
        name, _, text = pair.partition("=")
        if urllib.parse.unquote(name) == "format":
            value = urllib.parse.unquote(text)
    return value


def choose_media_type(accept: Optional[str], format_: Optional[str]) -> Optional[str]:
    """The media type to serve a page in, or None for 406 Not Acceptable.

    ``?format=`` wins over Accept. With Accept, the highest q wins, then a type
    named exactly over one matched by a wildcard, then SERVED_TYPES order; a
    request without Accept is taken as ``*/*`` (RFC 9110). text/html is only
    served when asked for by name or as ``text/*``.
    """
    if format_ is not None:
        wanted = format_.strip().lower()
        wanted = _LATEST.get(wanted, _FORMAT_SHORTHANDS.get(wanted, wanted))
        return wanted if wanted in SERVED_TYPES else None
    ranges = parse_accept(accept if accept and accept.strip() else "*/*")
    best: Optional[str] = None
    best_key = (0.0, -1, 0)
    for rank, media_type in enumerate(SERVED_TYPES):
        quality, specificity = quality_of(media_type, ranges)
        if media_type == TEXT_HTML and specificity < 1:
            continue
        key = (quality, specificity, -rank)
        if quality > 0 and (best is None or key > best_key):
            best, best_key = media_type, key
    return best


# ---------------------------------------------------------------------------
# Pages (PEP 503, 691, 592, 658, 714, 700)
# ---------------------------------------------------------------------------


def _html_document(title: str, links: List[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        '    <meta charset="utf-8">',
        '    <meta name="pypi:repository-version" content="%s">' % API_VERSION,
        "    <title>%s</title>" % html.escape(title),
        "  </head>",
        "  <body>",
        "    <h1>%s</h1>" % html.escape(title),
    ]
    lines.extend("    %s<br/>" % link for link in links)
    lines.extend(["  </body>", "</html>", ""])
    return "\n".join(lines).encode("utf-8")


def _json_document(document: Dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def render_root(projects: List[str], media_type: str) -> bytes:
    if media_type == JSON_V1:
        return _json_document(
            {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
        )
    links = ['<a href="%s/">%s</a>' % (html.escape(p), html.escape(p)) for p in projects]
    return _html_document("Simple index", links)


def render_project(project: str, files: List[FileFacts], media_type: str) -> bytes:
    if media_type == JSON_V1:
        versions = {file_version(project, f.filename) for f in files}
        return _json_document(
            {
                "meta": {"api-version": API_VERSION},
                "name": project,
                "versions": sorted((v for v in versions if v), key=version_sort_key),
                "files": [_file_json(f) for f in files],
            }
        )
    return _html_document("Links for %s" % project, [_file_html(f) for f in files])


def _file_json(facts: FileFacts) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "filename": facts.filename,
        "url": urllib.parse.quote(facts.filename),
        "hashes": {"sha256": facts.sha256},
        "requires-python": facts.requires_python,
        "yanked": facts.yanked,
        "size": facts.size,
    }
    if facts.upload_time:
        entry["upload-time"] = facts.upload_time
    if facts.metadata_sha256 is not None:
        entry["core-metadata"] = {"sha256": facts.metadata_sha256}
        entry["dist-info-metadata"] = {"sha256": facts.metadata_sha256}
    else:
        entry["core-metadata"] = False
    return entry


def _file_html(facts: FileFacts) -> str:
    attributes = [
        'href="%s#sha256=%s"' % (html.escape(urllib.parse.quote(facts.filename)), facts.sha256)
    ]
    if facts.requires_python:
        attributes.append('data-requires-python="%s"' % html.escape(facts.requires_python))
    if facts.yanked is not False:
        reason = facts.yanked if isinstance(facts.yanked, str) else ""
        attributes.append('data-yanked="%s"' % html.escape(reason))
    if facts.metadata_sha256 is not None:
        value = "sha256=%s" % facts.metadata_sha256
        attributes.append('data-core-metadata="%s"' % value)
        attributes.append('data-dist-info-metadata="%s"' % value)
    return "<a %s>%s</a>" % (" ".join(attributes), html.escape(facts.filename))


# ---------------------------------------------------------------------------
# Ranges and conditional requests (RFC 9110)
# ---------------------------------------------------------------------------

UNSATISFIABLE = (-1, -1)
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,30})\s*-\s*(\d{0,30})\s*\Z", re.IGNORECASE)


def parse_range(header: str, size: int) -> Optional[Tuple[int, int]]:
    """The (first, last) byte of a single byte range, UNSATISFIABLE, or None to ignore it.

    Several ranges, other units and malformed values are ignored (the whole
    file is sent), as RFC 9110 allows.
    """
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        length = int(last)
        if length == 0 or size == 0:
            return UNSATISFIABLE
        return (max(0, size - length), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return (start, min(int(last), size - 1) if last else size - 1)


def parse_http_date(value: str) -> Optional[float]:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def etag_listed(header: str, etag: str, weak: bool) -> bool:
    """Whether an If-None-Match / If-Range list names ``etag`` (``*`` names any)."""
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        if weak:
            if tag.startswith("W/"):
                tag = tag[2:]
        elif tag.startswith("W/"):
            continue
        if tag == etag:
            return True
    return False


def http_date(timestamp: float) -> Optional[str]:
    try:
        return email.utils.formatdate(timestamp, usegmt=True)
    except (OverflowError, ValueError, OSError):
        return None


# ---------------------------------------------------------------------------
# Auth and TLS
# ---------------------------------------------------------------------------


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`` for a password."""
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode(), iterations)
    return "%s$%d$%s$%s" % (
        PASSWORD_SCHEME,
        iterations,
        salt,
        base64.b64encode(digest).decode("ascii"),
    )


def parse_password_hash(text: str) -> Tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a stored hash; ValueError if it is not one."""
    parts = text.strip().split("$")
    if len(parts) != 4 or parts[0] != PASSWORD_SCHEME:
        raise ValueError("not a %s$ITERATIONS$SALT$HASH value" % PASSWORD_SCHEME)
    iterations = int(parts[1])
    if not 1 <= iterations <= 100000000 or not parts[2]:
        raise ValueError("bad iterations or empty salt")
    try:
        digest = base64.b64decode(parts[3].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("the hash is not base64") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("the hash is not 32 bytes")
    return iterations, parts[2].encode("utf-8"), digest


def verify_password(password: bytes, stored: Tuple[int, bytes, bytes]) -> bool:
    iterations, salt, digest = stored
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password, salt, iterations), digest)


def load_auth_file(path: str) -> Dict[str, Tuple[int, bytes, bytes]]:
    """Users of an auth file: ``user:pbkdf2_sha256$...`` lines, ``#`` comments."""
    users = {}
    try:
        with open(path, encoding="utf-8-sig") as stream:  # a BOM is not part of a name
            lines = stream.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError("cannot read auth file %s: %s" % (path, describe(error))) from None
    for number, raw_line in enumerate(lines, 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        try:
            if not sep or not user:
                raise ValueError("expected USER:HASH")
            users[user] = parse_password_hash(stored)
        except ValueError as error:
            raise UserError("auth file %s, line %d: %s" % (path, number, error)) from None
    if not users:
        raise UserError("auth file %s has no users" % path)
    return users


class AuthBusy(Exception):
    """Too many different passwords are being checked at once; the client should retry."""


class _PasswordCheck:
    """One PBKDF2 check in progress, which requests with the same credentials wait for."""

    __slots__ = ("done", "user")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.user: Optional[str] = None


class Authenticator:
    """HTTP basic auth against an auth file, re-read when it changes.

    Checking a password costs a PBKDF2 run, so accepted credentials are
    remembered (as a keyed digest, never in clear) and answered without
    waiting; the checks themselves run one at a time, and requests with the
    same credentials share one check. When ``max_pending_checks`` requests
    already wait on checks, AuthBusy is raised (the client gets a 503) rather
    than holding another thread: guessing costs the server one CPU at most and
    holds a bounded part of the threads that answer. An unknown user costs as
    much as the costliest known one, so timing does not tell who exists.
    """

    def __init__(self, path: str, max_pending_checks: int = MAX_PENDING_PASSWORD_CHECKS) -> None:
        self.path = path
        self.max_pending_checks = max_pending_checks
        self._users = load_auth_file(path)
        self._signature = self._file_signature()
        self._accepted = LRUCache(1024)
        self._key = secrets.token_bytes(32)
        self._check_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._checks: Dict[bytes, _PasswordCheck] = {}
        self._waiting = 0
        self._dummy = self._dummy_for(self._users)

    @staticmethod
    def _dummy_for(users: Dict[str, Tuple[int, bytes, bytes]]) -> Tuple[int, bytes, bytes]:
        """A stored hash that no password matches, as costly as the costliest user's."""
        iterations = max(stored[0] for stored in users.values())
        return (iterations, secrets.token_hex(16).encode(), secrets.token_bytes(32))

    def _file_signature(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def _reload_if_changed(self) -> None:
        signature = self._file_signature()
        if signature == self._signature:
            return
        with self._state_lock:
            if signature == self._signature:
                return
            self._signature = signature
            try:
                users = load_auth_file(self.path)
            except UserError as error:
                log_line("keeping the previous users: %s" % error)
                return
            self._users, self._dummy = users, self._dummy_for(users)
            self._accepted = LRUCache(1024)

    def user(self, header: Optional[str]) -> Optional[str]:
        """The user that an Authorization header proves, or None; AuthBusy when overloaded."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return None
        user_bytes, sep, password = decoded.partition(b":")
        if not sep:
            return None
        try:
            user = user_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
        self._reload_if_changed()
        accepted, users, dummy = self._accepted, self._users, self._dummy
        token = hmac.new(self._key, decoded, hashlib.sha256).digest()
        if accepted.get(token) == user:
            return user
        with self._state_lock:
            if self._waiting >= self.max_pending_checks:
                raise AuthBusy()  # enough threads wait on password checks already
            self._waiting += 1
            check = self._checks.get(token)
            mine = check is None
            if check is None:
                check = self._checks[token] = _PasswordCheck()
        try:
            if not mine:
                check.done.wait()
                return check.user
            try:
                stored = users.get(user)
                with self._check_lock:
                    ok = verify_password(password, stored if stored is not None else dummy)
                if ok and stored is not None:
                    accepted.put(token, user)
                    check.user = user
            finally:
                with self._state_lock:
                    del self._checks[token]
                check.done.set()
            return check.user
        finally:
            with self._state_lock:
                self._waiting -= 1


def make_ssl_context(certfile: str, keyfile: Optional[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A client may not make the server redo TLS 1.2 handshakes at will (each costs CPU).
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise UserError("cannot use certificate %s: %s" % (certfile, describe(error))) from None
    return context


# ---------------------------------------------------------------------------
# Uploads (--upload): twine's legacy upload API, landed atomically into the tree
# ---------------------------------------------------------------------------

UPLOADED_SUFFIX = ".uploaded"
DEFAULT_MAX_UPLOAD_BYTES = 1024**3
MAX_PART_HEAD_BYTES = 16 * 1024
#: The ending of an upload being received (hidden, never listed or served).
UPLOADING_SUFFIX = ".uploading"
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 10000
MAX_UPLOAD_RECORD_BYTES = 64 * 1024
MAX_UPLOAD_NAME_BYTES = 200
#: Bounds on what opening an uploaded sdist may cost: its members are read one at a time
#: (never extracted), and a decompression bomb is stopped, not unpacked.
MAX_SDIST_MEMBERS = 100000
MAX_PKG_INFO_BYTES = 1024 * 1024
MAX_SDIST_UNPACKED_BYTES = 16 * 1024**3
#: ... and at most this many times its own size, past a floor: unpacking is CPU, and a
#: small upload that claims to unpack to gigabytes is a bomb, not a source tree.
SDIST_EXPANSION = 200
MIN_SDIST_UNPACKED_BYTES = 1024**3
MAX_SDIST_DIRECTORY_BYTES = 16 * 1024 * 1024
MAX_TAR_HEADER_BYTES = 1024 * 1024
MAX_LINK_TARGET_BYTES = 4096
BODY_CHUNK_BYTES = 256 * 1024
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
#: The form fields an upload is checked against; twine's others (the description...)
#: are read and dropped, so that none of them is held in memory.
UPLOAD_FIELDS = (
    ":action",
    "name",
    "version",
    "filetype",
    "sha256_digest",
    "md5_digest",
    "blake2_256_digest",
    "requires_python",
)
_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]\Z")
_WHEEL_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-(?P<build>[0-9][A-Za-z0-9_.]*))?"
    r"-(?P<tags>[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+)\.whl\Z"
)
#: The archive format of each sdist ending (a ".tgz" is a ".tar.gz" by another name).
_SDIST_FORMATS = {
    ".tar.gz": "gztar",
    ".tgz": "gztar",
    ".tar.bz2": "bztar",
    ".tar.xz": "xztar",
    ".zip": "zip",
}
#: PEP 440's grammar (its appendix), for telling a valid version and its canonical form.
_VERSION = re.compile(
    r"""v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_implicit>[0-9]+)|[-_.]?(?P<post>post|rev|r)[-_.]?(?P<post_n>[0-9]+)?)?
    (?:[-_.]?(?P<dev>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?\Z""",
    re.VERBOSE | re.IGNORECASE,
)
_PRE_RELEASE = {"alpha": "a", "beta": "b", "c": "rc", "pre": "rc", "preview": "rc"}


def parse_size(text: str) -> int:
    """A byte count for --max-upload-size: digits, then K, M, G or T (powers of 1024)."""
    match = re.match(r"\s*([0-9]{1,15})\s*([KMGT]?)(?:i?B)?\s*\Z", text, re.IGNORECASE)
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            "%r is not a size: a positive number of bytes, or one with K, M, G or T" % text
        )
    return int(match.group(1)) * _SIZE_SUFFIXES[match.group(2).upper()]


def canonical_version(version: str) -> Optional[str]:
    """The PEP 440 canonical form of a version, trailing ".0"s dropped (so 1.0 == 1.0.0);
    None when it is not a PEP 440 version."""
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    release = [int(part) for part in match.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    text = ".".join(str(part) for part in release)
    epoch = int(match.group("epoch") or 0)
    if epoch:
        text = "%d!%s" % (epoch, text)
    if match.group("pre"):
        kind = match.group("pre").lower()
        text += "%s%d" % (_PRE_RELEASE.get(kind, kind), int(match.group("pre_n") or 0))
    if match.group("post_implicit") is not None:
        text += ".post%d" % int(match.group("post_implicit"))
    elif match.group("post"):
        text += ".post%d" % int(match.group("post_n") or 0)
    if match.group("dev"):
        text += ".dev%d" % int(match.group("dev_n") or 0)
    if match.group("local"):
        parts = re.split(r"[-_.]", match.group("local").lower())
        text += "+" + ".".join(str(int(p)) if p.isdigit() else p for p in parts)
    return text


def split_distribution_name(filename: str, project: str) -> Optional[Tuple[str, str]]:
    """(normalized project, version) that a wheel's or sdist's file name gives, or None
    when it is not one. An sdist's name part may hold dashes: it is split where its left
    side is ``project``, if it can be."""
    match = _WHEEL_NAME.match(filename)
    if match is not None:
        return normalize(match.group("name")), match.group("version")
    stem = sdist_stem(filename)
    split = split_sdist_stem(stem, project) if stem is not None else None
    if split is None:
        return None
    name, version = split
    if not _PROJECT_NAME.match(name) or not re.match(r"[A-Za-z0-9_.!+-]+\Z", version):
        return None
    return normalize(name), version


def distribution_key(filename: str, project: str) -> Optional[Tuple[str, str, str]]:
    """What makes two distribution files one distribution, as PyPI tells duplicates:
    (normalized project, canonical version, the rest), the rest being a wheel's build tag
    and tag triple, and "sdist" for any sdist (one per release, in whatever format).
    None for a name that is not a wheel's or an sdist's."""
    split = split_distribution_name(filename, project)
    if split is None:
        return None
    version = canonical_version(split[1]) or split[1].lower()
    match = _WHEEL_NAME.match(filename)
    if match is None:
        return split[0], version, "sdist"
    return split[0], version, "%s-%s" % (match.group("build") or "", match.group("tags").lower())


def sdist_format(filename: str) -> Optional[str]:
    """The archive format of an sdist's file name, None for another name."""
    return next((kind for end, kind in _SDIST_FORMATS.items() if filename.endswith(end)), None)


def parse_parameters(value: str) -> Tuple[str, Dict[str, str]]:
    """A header value's main part and its parameters (``; name=value`` or quoted);
    ValueError when malformed or a parameter is repeated."""
    main, _, rest = value.partition(";")
    parameters: Dict[str, str] = {}
    position = 0
    while position < len(rest):
        if rest[position] in " \t;":
            position += 1
            continue
        equals = rest.find("=", position)
        if equals < 0:
            raise ValueError("a parameter without a value")
        name = rest[position:equals].strip().lower()
        position = equals + 1
        while position < len(rest) and rest[position] in " \t":
            position += 1
        if position < len(rest) and rest[position] == '"':
            chars = []
            position += 1
            while True:
                if position >= len(rest):
                    raise ValueError("an unterminated quoted string")
                char = rest[position]
                if char == "\\" and position + 1 < len(rest):
                    chars.append(rest[position + 1])
                    position += 2
                    continue
                position += 1
                if char == '"':
                    break
                chars.append(char)
            text = "".join(chars)
        else:
            end = rest.find(";", position)
            end = len(rest) if end < 0 else end
            text, position = rest[position:end].strip(), end
        if not name or name in parameters:
            raise ValueError("an empty or repeated parameter")
        parameters[name] = text
    return main.strip(), parameters


class UploadRefused(Exception):
    """An upload answered with ``status`` and a one-line ``message``; nothing stays written."""

    def __init__(self, status: int, message: str, headers: Optional[List[Tuple[str, str]]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class MultipartParser:
    """multipart/form-data (RFC 7578) parsed as it arrives, with a bounded buffer.

    ``start_part(name, filename)`` is called at each part's head and returns where
    that part's bytes go; a part of any size passes through without being held.
    """

    def __init__(
        self, boundary: str, start_part: Callable[[str, Optional[str]], Callable[[bytes], None]]
    ) -> None:
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._buffer = bytearray(b"\r\n")  # so that a first delimiter needs no CRLF before it
        self._state = "preamble"
        self._start_part = start_part
        self._sink: Callable[[bytes], None] = _discard
        self.parts = 0

    def feed(self, data: bytes) -> None:
        if self._state == "done":
            return  # the epilogue is dropped
        self._buffer += data
        while self._step():
            pass

    def finish(self) -> None:
        """The body has ended: it must have ended with the closing delimiter."""
        if self._state != "done":
            raise UploadRefused(
                400, "the multipart body is cut short: it ends before its closing boundary"
            )

    def _step(self) -> bool:
        """Take what the buffer allows; False when more bytes are needed."""
        buffer, delimiter = self._buffer, self._delimiter
        if self._state in ("preamble", "body"):
            found = buffer.find(delimiter)
            end = found if found >= 0 else max(0, len(buffer) - len(delimiter) + 1)
            if self._state == "body" and end:
                self._sink(bytes(buffer[:end]))
            if found < 0:
                del buffer[:end]
                return False
            del buffer[: found + len(delimiter)]
            self._state = "delimiter"
            return True
        if self._state == "delimiter":
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self._state = "done"
                return False
            line_end = buffer.find(b"\r\n")
            if line_end < 0 or buffer[:line_end].strip(b" \t"):
                if line_end < 0 and len(buffer) < 256:
                    return False
                raise UploadRefused(
                    400, "malformed multipart body: a boundary line is followed by text"
                )
            del buffer[: line_end + 2]
            self._state = "head"
            return True
        if self._state == "head":
            end = 0 if buffer[:2] == b"\r\n" else buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_PART_HEAD_BYTES:
                    raise UploadRefused(
                        400, "malformed multipart body: a part's headers are too long"
                    )
                return False
            head = bytes(buffer[:end])
            del buffer[: end + (2 if end == 0 else 4)]
            self.parts += 1
            if self.parts > MAX_PARTS:
                raise UploadRefused(400, "malformed multipart body: more than %d parts" % MAX_PARTS)
            name, filename = self._part_head(head)
            self._sink = self._start_part(name, filename)
            self._state = "body"
            return True
        del buffer[:]  # done: the epilogue is dropped
        return False

    @staticmethod
    def _part_head(head: bytes) -> Tuple[str, Optional[str]]:
        """The name and the filename (if any) of a part, from its Content-Disposition."""
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise UploadRefused(
                400, "malformed multipart body: a part's headers are not UTF-8"
            ) from None
        disposition = None
        for line in text.split("\r\n") if text else []:
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or name[:1] in " \t":
                raise UploadRefused(400, "malformed multipart body: a part's header is malformed")
            if name.strip().lower() == "content-disposition":
                if disposition is not None:
                    raise UploadRefused(
                        400, "malformed multipart body: a part has two Content-Dispositions"
                    )
                disposition = value
        if disposition is None:
            raise UploadRefused(400, "malformed multipart body: a part has no Content-Disposition")
        try:
            kind, parameters = parse_parameters(disposition)
        except ValueError as error:
            raise UploadRefused(
                400, "malformed multipart body: Content-Disposition has %s" % error
            ) from None
        if kind.lower() != "form-data" or "name" not in parameters:
            raise UploadRefused(
                400, "malformed multipart body: a part is not form-data with a name"
            )
        filename = parameters.get("filename")
        extended = parameters.get("filename*")
        if extended is not None:  # RFC 5987: charset'language'percent-encoded
            charset, _, encoded = extended.partition("'")
            _, _, encoded = encoded.partition("'")
            try:
                filename = urllib.parse.unquote_to_bytes(encoded).decode(charset or "utf-8")
            except (LookupError, UnicodeDecodeError):
                raise UploadRefused(
                    400, "malformed multipart body: an unreadable filename*"
                ) from None
        return parameters["name"], filename


def _discard(data: bytes) -> None:
    """Where the bytes of a form field that is not checked go."""


class BodyReader:
    """A request's body, read by the worker that answers it: first what the loop read
    along with the head, then the socket, waiting at most ``timeout`` for each piece
    (a slow upload may take long, a stalled one may not)."""

    def __init__(self, connection: "Connection", length: int, timeout: float) -> None:
        self.connection = connection
        self.remaining = length
        self.timeout = timeout
        self._selector: Optional[selectors.BaseSelector] = None

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (b"" at the end); UploadRefused when it stalls or stops short."""
        if self.remaining <= 0:
            return b""
        size = min(size, self.remaining)
        buffer = self.connection.buffer
        if buffer:
            data = bytes(buffer[:size])
            del buffer[:size]
        else:
            data = self._call(lambda: self.connection.sock.recv(size))
            if not data:
                raise UploadRefused(
                    400, "the body ended %d bytes before its Content-Length" % self.remaining
                )
        self.remaining -= len(data)
        return data

    def send(self, data: bytes) -> None:
        """Send an interim answer (100 Continue) before the body is read."""
        sock, sent = self.connection.sock, 0
        while sent < len(data):
            rest = data[sent:]
            sent += self._call(lambda: sock.send(rest))  # noqa: B023 - called at once

    def _call(self, action: Callable[[], Any]) -> Any:
        """``action()`` on the non-blocking socket, waiting while it would block."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return action()
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                events = selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                events = selectors.EVENT_WRITE
            except (OSError, ValueError) as error:
                raise UploadRefused(400, "the connection failed: %s" % describe(error)) from None
            if self._selector is None:
                self._selector = selectors.DefaultSelector()
                self._selector.register(self.connection.sock, events)
            else:
                self._selector.modify(self.connection.sock, events)
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise UploadRefused(
                    408, "Request Timeout: the body stalled for %g seconds" % self.timeout
                )

    def close(self) -> None:
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(self.connection.sock)
            self._selector.close()
            self._selector = None


class Uploads:
    """What --upload needs across requests: the size limit, the lock that lands one upload
    at a time, and a bound on uploads in progress (each holds a thread while it reads)."""

    def __init__(self, max_size: int, slots: int) -> None:
        self.max_size = max_size
        self.lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(1, slots))

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise UploadRefused(
                503, "Service Unavailable: too many uploads at once", [("Retry-After", "5")]
            )
        try:
            yield
        finally:
            self._slots.release()


class Received:
    """One upload as it arrives: the checked fields in memory, the file streamed into a
    hidden temporary file in the tree (removed by ``discard`` unless it has landed)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._raw: Dict[str, bytearray] = {}
        self.filename: Optional[str] = None
        self.temp: Optional[str] = None
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.blake2_256 = hashlib.blake2b(digest_size=32)
        try:
            # compared with what the client says it sent, not used for security
            self.md5: Optional[Any] = hashlib.new("md5")  # noqa: S324
        except ValueError:  # a FIPS build
            self.md5 = None
        self._stream: Optional[BinaryIO] = None

    def fields(self) -> Dict[str, str]:
        """The checked fields of the form, as text."""
        fields = {}
        for name, raw in self._raw.items():
            try:
                fields[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadRefused(400, "the form field %s is not UTF-8" % quoted(name)) from None
        return fields

    def start_part(self, name: str, filename: Optional[str]) -> Callable[[bytes], None]:
        if filename is not None and name == "content":
            return self._start_file(filename)
        if filename is not None or name not in UPLOAD_FIELDS:
            return _discard  # twine's other fields, and any other file (a signature)
        if name in self._raw:
            raise UploadRefused(400, "the form gives the field %s twice" % quoted(name))
        raw = self._raw[name] = bytearray()

        def collect(data: bytes) -> None:
            raw.extend(data)
            if len(raw) > MAX_FIELD_BYTES:
                raise UploadRefused(400, "the form field %s is too long" % quoted(name))

        return collect

    def _start_file(self, filename: str) -> Callable[[bytes], None]:
        if self.filename is not None:
            raise UploadRefused(400, "the form holds two files in content")
        check_upload_filename(filename)
        self.filename = filename
        folder = self.root
        name = bytes(self._raw.get("name", b"")).decode("utf-8", "replace").strip()
        if _PROJECT_NAME.match(name) and _is_real_folder(os.path.join(self.root, normalize(name))):
            folder = os.path.join(self.root, normalize(name))
        # not ".part": a mirror run in the same tree removes those as its own leftovers
        descriptor, self.temp = tempfile.mkstemp(
            prefix=".%s." % filename, suffix=UPLOADING_SUFFIX, dir=folder
        )
        self._stream = os.fdopen(descriptor, "wb")
        return self._write

    def _write(self, data: bytes) -> None:
        assert self._stream is not None
        self._stream.write(data)
        self.size += len(data)
        self.sha256.update(data)
        self.blake2_256.update(data)
        if self.md5 is not None:
            self.md5.update(data)

    def close_file(self) -> None:
        """Flush the file to disk (it is complete), keeping it."""
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None

    def discard(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
            self._stream = None
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None


def check_upload_filename(filename: str) -> None:
    """Refuse a file name that could not safely be a distribution of the tree, before
    anything is written (the project and version are checked once the form is read)."""
    if not is_distribution_name(filename) or len(filename.encode("utf-8")) > MAX_UPLOAD_NAME_BYTES:
        raise UploadRefused(
            400, "the file name %s is not a wheel or sdist file name" % quoted(filename)
        )
    if split_distribution_name(filename, "") is None:
        raise UploadRefused(
            400, "the file name %s is not a valid wheel or sdist file name" % quoted(filename)
        )


class CheckedUpload(NamedTuple):
    """An upload whose form and file agree, ready to land."""

    project: str
    filename: str
    name: str
    version: str
    sha256: str
    size: int
    metadata: Optional[bytes]
    requires_python: Optional[str]


def check_upload(received: Received) -> CheckedUpload:
    """The checks PyPI makes of an upload: the fields, and that the file matches them."""
    fields = received.fields()
    for field in (":action", "name", "version"):
        if not fields.get(field, "").strip():
            raise UploadRefused(400, "the form has no %s field" % field)
    if fields[":action"] != "file_upload":
        raise UploadRefused(
            400, "this server takes :action=file_upload only, not %s" % quoted(fields[":action"])
        )
    if received.filename is None or received.temp is None:
        raise UploadRefused(400, "the form has no file (a content part with a filename)")
    name, version, filename = fields["name"].strip(), fields["version"].strip(), received.filename
    if not _PROJECT_NAME.match(name) or len(name) > MAX_UPLOAD_NAME_BYTES:
        raise UploadRefused(400, "the name %s is not a valid project name" % quoted(name))
    canonical = canonical_version(version)
    if canonical is None:
        raise UploadRefused(
            400, "the version %s is not a valid (PEP 440) version" % quoted(version)
        )
    project = normalize(name)
    is_wheel = filename.endswith(WHEEL_SUFFIX)
    filetype = fields.get("filetype", "").strip()
    if filetype and filetype != ("bdist_wheel" if is_wheel else "sdist"):
        raise UploadRefused(
            400, "the filetype %s does not match the file %s" % (quoted(filetype), quoted(filename))
        )
    split = split_distribution_name(filename, project)
    if split is None or split[0] != project:
        raise UploadRefused(
            400, "the file %s is not of the project %s (the form's name)" % (quoted(filename), name)
        )
    if canonical_version(split[1]) != canonical:
        raise UploadRefused(
            400,
            "the file %s is not of version %s (the form's version)" % (quoted(filename), version),
        )
    if received.size == 0:
        raise UploadRefused(400, "the file %s is empty" % quoted(filename))
    digests: List[Tuple[str, Any]] = [("sha256_digest", received.sha256)]
    digests.append(("blake2_256_digest", received.blake2_256))
    digests.append(("md5_digest", received.md5))
    for field, digest in digests:
        given = fields.get(field, "").strip().lower()
        if given and digest is not None and not hmac.compare_digest(given, digest.hexdigest()):
            raise UploadRefused(400, "%s does not match the file received" % field)
    metadata = None
    requires_python = fields.get("requires_python", "").strip() or None
    if is_wheel:
        metadata = read_wheel_metadata(received.temp, name=filename)
        if metadata is None:
            raise UploadRefused(400, "the wheel %s has no readable METADATA" % quoted(filename))
        check_declared("the wheel's METADATA", metadata, project, canonical, (name, version))
        requires_python = requires_python_of(metadata)
    else:
        try:
            pkg_info = read_sdist_pkg_info(received.temp, filename)
        except SdistRefused as problem:
            raise UploadRefused(400, "the sdist %s %s" % (quoted(filename), problem)) from None
        check_declared("the sdist's PKG-INFO", pkg_info, project, canonical, (name, version))
    if requires_python is not None and (len(requires_python) > 1000 or "\n" in requires_python):
        requires_python = None
    return CheckedUpload(
        project,
        filename,
        name,
        version,
        received.sha256.hexdigest(),
        received.size,
        metadata,
        requires_python,
    )


def check_declared(
    what: str, metadata: bytes, project: str, canonical: str, form: Tuple[str, str]
) -> None:
    """Refuse a file whose core metadata names another project or version than the form."""
    said = core_metadata_fields(metadata)
    if (
        normalize(said.get("name", "")) != project
        or canonical_version(said.get("version", "")) != canonical
    ):
        raise UploadRefused(
            400,
            "%s says %s %s, the form %s %s"
            % (what, said.get("name", "?"), said.get("version", "?"), form[0], form[1]),
        )


class SdistRefused(Exception):
    """Why an uploaded sdist is not one that pip would build, as the end of a sentence
    that begins with the sdist's name."""


def is_unsafe_member_name(name: str) -> bool:
    """True for an archive member's name (or link target) that is absolute (``/x``,
    ``\\x``, ``C:x``) or has a ``..`` component: pip unpacks no such archive."""
    if not name or name[0] in "/\\" or re.match(r"[A-Za-z]:", name):
        return True
    return ".." in re.split(r"[/\\]", name)


class SdistMembers:
    """The members of an sdist, checked one at a time as they are read: at most
    MAX_SDIST_MEMBERS, none with an unsafe name or link, and its ``<dir>/PKG-INFO``
    (the one in a folder named like the file when there are several)."""

    def __init__(self, stem: str) -> None:
        self.stem = stem
        self.count = 0
        self.folders: List[str] = []  # the top folders holding a PKG-INFO
        self.first: Optional[bytes] = None
        self.named: Optional[bytes] = None

    def add(
        self, name: str, kind: str, link: Optional[str], size: int, read: Callable[[], bytes]
    ) -> None:
        """One member: ``kind`` is "file", "dir", "link" or "other" (a device, a pipe)."""
        self.count += 1
        if self.count > MAX_SDIST_MEMBERS:
            raise SdistRefused("has more than %d members" % MAX_SDIST_MEMBERS)
        if is_unsafe_member_name(name):
            raise SdistRefused("holds %s, an absolute path or one with .." % quoted(name))
        if link is not None and is_unsafe_member_name(link):
            raise SdistRefused(
                "holds a link %s to %s, an absolute path or one with .."
                % (quoted(name), quoted(link))
            )
        if kind == "other":
            raise SdistRefused("holds %s, a device or a pipe" % quoted(name))
        folder, sep, rest = name.partition("/")
        if not sep or rest != "PKG-INFO" or folder in ("", "."):
            return
        if folder in self.folders:
            raise SdistRefused("holds %s twice" % quoted(name))
        self.folders.append(folder)
        if kind != "file":
            raise SdistRefused("holds %s, which is not a regular file" % quoted(name))
        if size > MAX_PKG_INFO_BYTES:
            raise SdistRefused("has a PKG-INFO over %d bytes" % MAX_PKG_INFO_BYTES)
        if self.first is None or folder == self.stem:
            data = read()
            if len(data) > MAX_PKG_INFO_BYTES:
                raise SdistRefused("has a PKG-INFO over %d bytes" % MAX_PKG_INFO_BYTES)
            if self.first is None:
                self.first = data
            if folder == self.stem:
                self.named = data

    def pkg_info(self) -> bytes:
        if self.named is not None:
            return self.named
        if self.first is None:
            raise SdistRefused("has no PKG-INFO in a top folder (<name>-<version>/PKG-INFO)")
        if len(self.folders) > 1:
            raise SdistRefused(
                "has a PKG-INFO in several top folders, none of them %s" % quoted(self.stem)
            )
        return self.first


class _BoundedStream:
    """A stream that an archive module reads an sdist from, bounded: no single read over
    ``max_read`` bytes (tarfile reads a long name or a pax header whole, zipfile the
    central directory), and, when ``max_end`` is given, nothing past it (tarfile unpacks
    every member it skips: a decompression bomb is stopped, not unpacked)."""

    def __init__(
        self, stream: Any, max_read: int, read_refusal: str, max_end: Optional[int] = None
    ) -> None:
        self._stream = stream
        self._max_read = max_read
        self._read_refusal = read_refusal
        self._max_end = max_end

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is not None and size > self._max_read:
            raise SdistRefused(self._read_refusal)
        if size is None or size < 0:  # the rest (zipfile reads a zip's end so)
            size = self._max_read + 1
        self._bound(self._stream.tell() + size)
        data: bytes = self._stream.read(size)
        if len(data) > self._max_read:
            raise SdistRefused(self._read_refusal)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._bound(offset)
        elif whence == io.SEEK_CUR:
            self._bound(self._stream.tell() + offset)
        position: int = self._stream.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._stream.tell()
        return position

    def seekable(self) -> bool:
        return True

    def _bound(self, end: int) -> None:
        if self._max_end is not None and end > self._max_end:
            raise SdistRefused("unpacks to more than %d bytes" % self._max_end)


def _read_bounded(stream: Any, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of a member, read in chunks."""
    chunks: List[bytes] = []
    total = 0
    while total <= limit:
        chunk = stream.read(min(CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _unpacked(stream: BinaryIO, kind: str) -> Any:
    """The stream of a tar sdist's members: its gzip, bzip2 or xz layer read as it goes."""
    if kind == "gztar":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if kind == "bztar":
        import bz2  # noqa: PLC0415 - missing from some builds

        return bz2.BZ2File(stream)
    import lzma  # noqa: PLC0415 - missing from some builds

    return lzma.LZMAFile(stream)


class _NoSparseInfo(tarfile.TarInfo):
    """A tar header that refuses sparse members: tarfile builds their whole map in memory
    before a member is seen (a few KB can claim gigabytes), and no sdist has one."""

    def _proc_sparse(self, tarfile: Any) -> Any:  # old GNU sparse headers
        raise SdistRefused("holds a sparse file")

    def _proc_gnusparse_00(self, next: Any, pax_headers: Any, buf: Any) -> Any:  # noqa: A002
        raise SdistRefused("holds a sparse file")

    def _proc_gnusparse_01(self, next: Any, pax_headers: Any) -> Any:  # noqa: A002
        raise SdistRefused("holds a sparse file")

    def _proc_gnusparse_10(self, next: Any, pax_headers: Any, tarfile: Any) -> Any:  # noqa: A002
        raise SdistRefused("holds a sparse file")


def _scan_tar(stream: BinaryIO, kind: str, members: SdistMembers) -> None:
    """Read a tar sdist's members one at a time, as tarfile reads them for pip."""
    unpacked = _unpacked(stream, kind)
    refusal = "has a tar header over %d bytes" % MAX_TAR_HEADER_BYTES
    # read, seek and tell: all that tarfile calls
    size = os.fstat(stream.fileno()).st_size
    limit = min(MAX_SDIST_UNPACKED_BYTES, max(MIN_SDIST_UNPACKED_BYTES, SDIST_EXPANSION * size))
    bounded: Any = _BoundedStream(unpacked, MAX_TAR_HEADER_BYTES, refusal, limit)
    with unpacked, tarfile.open(fileobj=bounded, mode="r:", tarinfo=_NoSparseInfo) as archive:
        while True:
            member = archive.next()
            if member is None:
                return
            vars(archive)["members"].clear()  # tarfile keeps every member read: forget them
            link = member.linkname if member.issym() or member.islnk() else None
            if link is not None:
                what = "link"
            elif member.isdir():
                what = "dir"
            elif member.ischr() or member.isblk() or member.isfifo():
                what = "other"
            else:
                what = "file"

            def read(member: tarfile.TarInfo = member) -> bytes:
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise SdistRefused(
                        "holds %s, which is not a regular file" % quoted(member.name)
                    )
                with extracted:
                    return _read_bounded(extracted, MAX_PKG_INFO_BYTES)

            members.add(member.name, what, link, member.size, read)


def _scan_zip(stream: BinaryIO, members: SdistMembers) -> None:
    """Read a zip sdist's members, as zipfile reads them for pip. zipfile loads the whole
    central directory: its entries are counted in chunks first, and zipfile may read no
    more than MAX_SDIST_DIRECTORY_BYTES at once, so that it never holds more than that."""
    refusal = "has a zip directory over %d bytes" % MAX_SDIST_DIRECTORY_BYTES
    directory = zip_directory(stream, os.fstat(stream.fileno()).st_size)
    if directory is None:
        raise SdistRefused("is not a readable zip archive")
    start, length, _ = directory
    if length > MAX_SDIST_DIRECTORY_BYTES:
        raise SdistRefused(refusal)
    for count, _entry in enumerate(zip_entries(stream, start, length), 1):
        if count > MAX_SDIST_MEMBERS:
            raise SdistRefused("has more than %d members" % MAX_SDIST_MEMBERS)
    stream.seek(0)
    bounded: Any = _BoundedStream(stream, MAX_SDIST_DIRECTORY_BYTES, refusal)
    with zipfile.ZipFile(bounded) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_SDIST_MEMBERS:  # a directory zipfile found elsewhere
            raise SdistRefused("has more than %d members" % MAX_SDIST_MEMBERS)
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                # zipfile bounds no chunk it unpacks with bzip2 or lzma: a few bytes can
                # claim gigabytes of memory; sdist tools write deflate
                raise SdistRefused(
                    "holds %s compressed with method %d; only stored and deflated members "
                    "are read" % (quoted(info.filename), info.compress_type)
                )
            mode = info.external_attr >> 16
            link = None
            if info.create_system == 3 and stat.S_ISLNK(mode):
                with archive.open(info) as target:
                    link = _read_bounded(target, MAX_LINK_TARGET_BYTES).decode("utf-8", "replace")
            if link is not None:
                what = "link"
            elif info.is_dir():
                what = "dir"
            elif info.create_system == 3 and (
                stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
            ):
                what = "other"
            else:
                what = "file"

            def read(info: zipfile.ZipInfo = info) -> bytes:
                with archive.open(info) as extracted:
                    return _read_bounded(extracted, MAX_PKG_INFO_BYTES)

            members.add(info.filename, what, link, info.file_size, read)


def _archive_errors() -> Tuple[Type[BaseException], ...]:
    """What reading a damaged archive raises (lzma's own error when lzma is there)."""
    errors: List[Type[BaseException]] = [tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile]
    errors += [EOFError, OSError, zlib.error, ValueError, RuntimeError, NotImplementedError]
    errors.append(struct.error)
    with contextlib.suppress(ImportError):
        import lzma  # noqa: PLC0415 - missing from some builds

        errors.append(lzma.LZMAError)
    return tuple(errors)


def read_sdist_pkg_info(path: str, filename: str) -> bytes:
    """The ``<dir>/PKG-INFO`` of an sdist, opened as pip opens it (tarfile, zipfile) and
    read member by member, never extracted; SdistRefused says why not."""
    kind = sdist_format(filename)
    stream = open_regular_file(path)
    if kind is None or stream is None:
        raise SdistRefused("could not be opened")
    stem = filename[: -len(next(end for end in _SDIST_FORMATS if filename.endswith(end)))]
    members = SdistMembers(stem)
    with stream:
        try:
            if kind == "zip":
                _scan_zip(stream, members)
            else:
                _scan_tar(stream, kind, members)
        except SdistRefused:
            raise
        except ImportError as error:
            raise SdistRefused(
                "cannot be read here: this Python has no %s module" % (error.name or "such")
            ) from None
        except _archive_errors() as error:
            what = (
                "zip" if kind == "zip" else "tar." + {"gztar": "gz", "bztar": "bz2"}.get(kind, "xz")
            )
            raise SdistRefused(
                "is not a readable %s archive (%s)" % (what, describe(error).splitlines()[0])
            ) from None
    return members.pkg_info()


def core_metadata_fields(metadata: bytes) -> Dict[str, str]:
    """The Name and Version of core metadata (a wheel's METADATA, an sdist's PKG-INFO;
    lower-case keys), read with the standard library's email parser, as it is written."""
    headers = email.parser.HeaderParser().parsestr(metadata.decode("utf-8", "replace"))
    found = {}
    for key in ("name", "version"):
        value = headers.get(key)
        if isinstance(value, str) and value.strip():
            found[key] = value.strip()
    return found


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (a hidden temporary file, synced, renamed).

    The temporary file ends in UPLOADING_SUFFIX, never ".part": a ``morgan mirror`` run
    in the same tree deletes hidden ".part" files as its own leftovers, and would pull a
    sidecar or page from under an upload that is landing.
    """
    folder, name = os.path.split(path)
    descriptor, temp = tempfile.mkstemp(prefix=".%s." % name, suffix=UPLOADING_SUFFIX, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def upload_time_now() -> str:
    """Now, as PyPI writes upload times: ISO 8601, UTC, with a Z."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def upload_record(uploader: str, upload: CheckedUpload, upload_time: str) -> bytes:
    """The ``<file>.uploaded`` sidecar: who uploaded the file, when, and what it is."""
    record = {
        "uploader": uploader,
        "upload-time": upload_time,
        "sha256": upload.sha256,
        "size": upload.size,
        "name": upload.name,
        "version": upload.version,
    }
    return (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


@contextlib.contextmanager
def tree_lock(root: str, busy: Callable[[], Exception]) -> Iterator[None]:
    """The lock that an import holds on the index folder, held while an upload lands (so
    that an import never lands over an upload in progress); ``busy()`` is raised while an
    import runs, or a morgan run (``mirror`` holds it too: it writes pages from the folders
    it scanned; so do ``prune`` and ``export``). Where the system has no locks, nothing is
    locked."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        yield
        return
    descriptor = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        except OSError:
            pass  # a file system without locks
        yield
    finally:
        os.close(descriptor)


def check_not_a_duplicate(folder: str, upload: CheckedUpload) -> None:
    """Refuse, as PyPI does, an upload that the project's folder holds already under
    another spelling of its name (``Corp_X-1.0.tar.gz``, ``corp-x-1.00.tar.gz`` for
    ``corp_x-1.0.tar.gz``): ``400 File already exists``, the words
    ``twine upload --skip-existing`` looks for; and a second sdist of a release in
    another format: ``400 Only one sdist may be uploaded per release``."""
    key = distribution_key(upload.filename, upload.project)
    if key is None:
        return
    other_sdist = None
    with os.scandir(folder) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        if not is_distribution_name(name) or distribution_key(name, upload.project) != key:
            continue
        if key[2] != "sdist" or sdist_format(name) == sdist_format(upload.filename):
            raise UploadRefused(
                400,
                "File already exists: %s/%s, the same distribution as %s (upload a new version)"
                % (upload.project, name, upload.filename),
            )
        other_sdist = other_sdist or name
    if other_sdist is not None:
        raise UploadRefused(
            400,
            "Only one sdist may be uploaded per release: %s/%s is the sdist of %s %s"
            % (upload.project, other_sdist, upload.name, upload.version),
        )


def land_upload(tree: Tree, uploader: str, received: Received, upload: CheckedUpload) -> None:
    """Move a checked upload into INDEX/<project>/ so that no listing ever shows half of
    it: sidecars first, the file renamed into place last (never over an existing one),
    then the static pages. UploadRefused, and nothing left behind, if it may not land."""
    root = tree.root
    folder = os.path.join(root, upload.project)
    target = os.path.join(folder, upload.filename)
    created = False
    written: List[str] = []
    if os.path.lexists(folder) and not _is_real_folder(folder):
        raise UploadRefused(
            409, "%s is not a plain folder (a file or a symbolic link)" % upload.project
        )
    if os.path.lexists(target):
        raise UploadRefused(
            400,
            "File already exists: %s/%s (a file name is never reused: upload a new version)"
            % (upload.project, upload.filename),
        )
    if os.path.lexists(folder):
        check_not_a_duplicate(folder, upload)
    assert received.temp is not None
    when = upload_time_now()
    landed = False
    try:
        if not os.path.lexists(folder):
            with contextlib.suppress(FileExistsError):  # made meanwhile by another hand
                os.mkdir(folder, 0o755)
                created = True
        staged = received.temp
        if os.path.dirname(staged) != folder:  # staged at the root: the folder was new
            staged = os.path.join(folder, os.path.basename(received.temp))
            os.replace(received.temp, staged)
            received.temp = staged
        os.chmod(staged, 0o644)
        sidecars = [(HASH_SUFFIX, ("sha256=%s" % upload.sha256).encode("ascii"))]
        if upload.metadata is not None:
            sidecars.append((METADATA_SUFFIX, upload.metadata))
        sidecars.append((UPLOADED_SUFFIX, upload_record(uploader, upload, when)))
        for suffix, data in sidecars:
            write_atomically(target + suffix, data)
            written.append(target + suffix)
        moment = parse_upload_time(when)
        os.utime(staged, (moment, moment))
        exists = UploadRefused(
            400, "File already exists: %s/%s" % (upload.project, upload.filename)
        )
        try:
            os.link(staged, target)  # never over a file that took the name meanwhile
        except FileExistsError:
            raise exists from None
        except OSError:  # a file system without hard links
            if os.path.lexists(target):
                raise exists from None
            os.replace(staged, target)
            received.temp = None
        landed = True
        received.discard()  # the temporary name of the file, now linked into place
        sync_folders(root, [upload.project + "/" + upload.filename])
    finally:
        if not landed:
            for path in written:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            received.discard()
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
    tree.landed(folder)
    entry = _file_json(
        FileFacts(
            filename=upload.filename,
            sha256=upload.sha256,
            size=upload.size,
            requires_python=upload.requires_python,
            yanked=False,
            upload_time=when,
            metadata_sha256=hashlib.sha256(upload.metadata).hexdigest()
            if upload.metadata is not None
            else None,
        )
    )
    try:
        update_project_pages(tree, upload.project, folder, entry)
        list_in_root_pages(tree, upload.project)
    except Exception as error:  # the file has landed; the live pages list it already
        log_line(
            "server.py: %s landed, but its static pages could not be updated: %s"
            % (target, describe(error))
        )


def parse_upload_time(text: str) -> float:
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def read_page_document(path: str) -> Optional[Dict[str, Any]]:
    """A page's JSON document, None when absent or not a JSON object."""
    try:
        document = json.loads(read_limited(path, MAX_PAGE_JSON_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _entry_facts(item: Any) -> Optional[FileFacts]:
    """The facts of an index.json entry, for its HTML twin; None if it lacks them."""
    listed = Tree._listed_entry(item)
    if listed is None or listed.sha256 is None or not is_distribution_name(item["filename"]):
        return None
    metadata = item.get("core-metadata")
    digest = metadata.get("sha256") if isinstance(metadata, dict) else None
    return FileFacts(
        filename=item["filename"],
        sha256=listed.sha256,
        size=listed.size or 0,
        requires_python=listed.requires_python,
        yanked=listed.yanked,
        upload_time=listed.upload_time,
        metadata_sha256=digest.lower()
        if isinstance(digest, str) and _SHA256_HEX.match(digest.lower())
        else None,
    )


def update_project_pages(tree: Tree, project: str, folder: str, entry: Dict[str, Any]) -> None:
    """Add an upload to the project's static index.json and index.html, keeping every
    entry and field the mirrorer wrote; files of the folder that the page did not list
    (a new project, a folder of Morgan 0.15, a file dropped in by hand) are added too."""
    document = read_page_document(os.path.join(folder, PAGE_JSON))
    if document is None or not isinstance(document.get("files"), list):
        document = {"meta": {"api-version": API_VERSION}, "name": project, "versions": []}
        document["files"] = []
    filename = entry["filename"]
    files = [
        item
        for item in document["files"]
        if not (isinstance(item, dict) and item.get("filename") == filename)
    ]
    listed = {item.get("filename") for item in files if isinstance(item, dict)}
    for facts in tree.files(project, folder):
        if facts.filename not in listed and facts.filename != filename:
            files.append(_file_json(facts))
    files.append(entry)

    def order(item: Any) -> Tuple[int, str]:
        name = item.get("filename") if isinstance(item, dict) else None
        return (0, name) if isinstance(name, str) else (1, "")

    files.sort(key=order)
    versions = document.get("versions")
    known = {v for v in versions if isinstance(v, str)} if isinstance(versions, list) else set()
    for item in files:
        if isinstance(item, dict) and isinstance(item.get("filename"), str):
            version = file_version(project, item["filename"])
            if version:
                known.add(version)
    document["versions"] = sorted(known, key=version_sort_key)
    document["files"] = files
    document.setdefault("meta", {"api-version": API_VERSION})
    document.setdefault("name", project)
    links = [_file_html(facts) for facts in map(_entry_facts, files) if facts is not None]
    write_atomically(os.path.join(folder, PAGE_JSON), _json_document(document))
    write_atomically(
        os.path.join(folder, "index.html"), _html_document("Links for %s" % project, links)
    )


def list_in_root_pages(tree: Tree, project: str) -> None:
    """Add a project to the root's static index.json and index.html if they lack it."""
    path = os.path.join(tree.root, PAGE_JSON)
    document = read_page_document(path)
    if document is None or not isinstance(document.get("projects"), list):
        document = {"meta": {"api-version": API_VERSION}}
        document["projects"] = [{"name": name} for name in tree.projects()]
    projects = document["projects"]
    names = [item.get("name") for item in projects if isinstance(item, dict)]
    if project in names and os.path.exists(os.path.join(tree.root, "index.html")):
        return
    if project not in names:
        projects.append({"name": project})

    def order(item: Any) -> Tuple[int, str]:
        name = item.get("name") if isinstance(item, dict) else None
        return (0, name) if isinstance(name, str) else (1, "")

    projects.sort(key=order)
    document.setdefault("meta", {"api-version": API_VERSION})
    listed = [item["name"] for item in projects if isinstance(item, dict) and _listable(item)]
    write_atomically(path, _json_document(document))
    write_atomically(os.path.join(tree.root, "index.html"), render_root(listed, TEXT_HTML))


def _listable(item: Dict[str, Any]) -> bool:
    name = item.get("name")
    return isinstance(name, str) and is_project_name(name)


# ---------------------------------------------------------------------------
# HTTP handling
# ---------------------------------------------------------------------------


class Settings(NamedTuple):
    tree: Tree
    authenticator: Optional[Authenticator]
    quiet: bool
    timeout: float
    public_manifest: bool = False
    uploads: Optional[Uploads] = None  # --upload


#: What the email parser says of a multipart Content-Type when the body is not there (it
#: never is: the head is parsed alone), and so not a fault of the headers.
_BODY_DEFECTS = (
    email.errors.NoBoundaryInMultipartDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.CloseBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)
_STANDARD_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
_LOG_ESCAPES = {code: "\\x%02x" % code for code in list(range(0x20)) + [0x7F]}


def log_line(message: str) -> None:
    try:
        sys.stderr.write(message.translate(_LOG_ESCAPES) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def describe(error: BaseException) -> str:
    """An error as short text, without its class name when it has a message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or error.__class__.__name__


class Handler(http.server.BaseHTTPRequestHandler):
    """The answer to one request, from a head the Server has read whole.

    The handler never touches the socket: what it writes is gathered in
    ``wfile`` and a file to send is left in ``body``; the Server sends both
    without waiting for the client.
    """

    server_version = "morgan-server"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __init__(self, client_address: Any, settings: "Settings") -> None:
        # Not the base classes' __init__, which would read the socket itself.
        self.client_address = client_address
        self.settings = settings
        self.rfile = io.BytesIO()
        self.wfile: io.BytesIO = io.BytesIO()
        self.close_connection = True
        self.body: Optional[Tuple[Any, int, int]] = None
        self.user: Optional[str] = None
        self.headers_sent = False
        self.response_size: Union[int, str] = "-"
        #: The connection the request came on (set by the Server): an upload's body is
        #: read from it.
        self.source: Optional["Connection"] = None

    # -- request line and headers --------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def handle_head(self, head: bytes, error: int) -> None:
        """Answer one request head, or the status ``error`` the Server found it deserves."""
        self.user = None
        self.headers_sent = False
        self.response_size = "-"
        self.command = ""
        self.requestline = ""
        self.request_version = "HTTP/1.1"
        self.close_connection = True
        self.body = None
        self.wfile = io.BytesIO()
        if error:
            self.send_error(error)
            return
        self.rfile = io.BytesIO(head)
        self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE_BYTES + 2)
        if not self.parse_request():
            if not self.headers_sent:
                self.send_error(400)
            self.close_connection = True
            return
        self.route()

    def handle_expect_100(self) -> bool:
        """No "100 Continue": a body is never read, and the final answer follows at once."""
        return True

    def parse_request(self) -> bool:
        """The standard parsing, plus the checks RFC 9112 asks of a server."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        headers = self.headers
        if len(headers) > MAX_HEADERS:
            self.send_error(431, "Too many headers")
            return False
        defects = [d for d in headers.defects if not isinstance(d, _BODY_DEFECTS)]
        if defects or any("\n" in value for value in headers.values()):
            self.send_error(400, "Malformed header")
            return False
        hosts = headers.get_all("Host") or []
        if len(hosts) > 1 or (not hosts and self.request_version >= "HTTP/1.1"):
            self.send_error(400, "One Host header is required")
            return False
        if headers.get("Transfer-Encoding") or headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = True  # a body is never read, so never reuse the stream
        return True

    def route(self) -> None:
        if self.command in ("GET", "HEAD"):
            try:
                self.answer(self.command == "HEAD")
            except Exception as error:
                # Nothing has been sent yet: drop what was written and say what happened.
                self.discard_answer()
                if isinstance(error, MemoryError) or (
                    isinstance(error, OSError) and error.errno in _OUT_OF_RESOURCES
                ):
                    log_line("out of resources answering %r: %s" % (self.requestline, error))
                    self.send_plain(503, "Service Unavailable", [("Retry-After", "5")])
                else:
                    log_line("error answering %r:\n%s" % (self.requestline, traceback.format_exc()))
                    self.send_plain(500, "Internal Server Error")
        elif self.command == "POST" and self.settings.uploads is not None:
            self.close_connection = True  # what is left of a refused body is never read
            self.answer_upload(self.settings.uploads)
        elif self.command in _STANDARD_METHODS:
            self.send_plain(405, "Method Not Allowed", [("Allow", self.allowed())], close=True)
        else:
            self.send_plain(501, "Not Implemented", [("Allow", self.allowed())], close=True)

    def allowed(self) -> str:
        return "GET, HEAD, POST" if self.settings.uploads is not None else "GET, HEAD"

    # -- responses -----------------------------------------------------------

    def discard_answer(self) -> None:
        """Forget what was written for this request (nothing of it has been sent)."""
        self.wfile = io.BytesIO()
        self._headers_buffer: List[bytes] = []
        self.headers_sent = False
        if self.body is not None:
            self.body[0].close()
            self.body = None

    def start(
        self,
        status: int,
        headers: List[Tuple[str, str]],
        length: Optional[int],
        reason: Optional[str] = None,
    ) -> None:
        """Send a status line and headers (the access log line is written here)."""
        self.response_size = length if length is not None else "-"
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")  # it asked for keep-alive
        self.end_headers()
        self.headers_sent = True

    def send_plain(
        self,
        status: int,
        text: str,
        headers: Optional[List[Tuple[str, str]]] = None,
        close: bool = False,
    ) -> None:
        body = ("%d %s\n" % (status, text)).encode("utf-8")
        if close:
            self.close_connection = True
        extra = list(headers or [])
        self.start(status, [("Content-Type", "text/plain; charset=utf-8")] + extra, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        """Errors of the request line and headers: plain text, then close the connection."""
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"  # so that a status line is sent at all
        reason = self.responses.get(code, ("Error", ""))[0]
        self.send_plain(code, message or reason, close=True)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """One access log line per request, in the Common Log Format."""
        if self.settings.quiet:
            return
        log_line(
            '%s - %s [%s] "%s" %s %s'
            % (
                self.client_address[0],
                self.user or "-",
                time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                self.requestline,
                int(code) if isinstance(code, int) else code,
                self.response_size,
            )
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log_line("%s - %s" % (self.client_address[0], format % args))

    # -- routing -------------------------------------------------------------

    def authenticate(self) -> bool:
        """Whether the request may go on: with --auth-file, its credentials name a user
        (``self.user``); else a 401 (or a 503 when too many logins are checked) is sent."""
        authenticator = self.settings.authenticator
        if authenticator is None:
            return True
        try:
            self.user = authenticator.user(self.headers.get("Authorization"))
        except AuthBusy:
            busy = [("Retry-After", "1")]
            self.send_plain(503, "Service Unavailable: too many logins at once", busy)
            return False
        if self.user is None:
            self.send_plain(
                401,
                "Unauthorized",
                [("WWW-Authenticate", 'Basic realm="morgan", charset="UTF-8"')],
            )
            return False
        return True

    def target(self) -> str:
        """The request target in origin form (an absolute-form one is reduced to it)."""
        target = self.path
        if not target.startswith("/") and re.match(r"https?://", target, re.IGNORECASE):
            parts = urllib.parse.urlsplit(target)  # absolute form (RFC 9112, 3.2.2)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        return target

    def answer(self, head: bool) -> None:
        """Route a GET or HEAD request; see the module docstring for what is public."""
        settings = self.settings
        if not self.authenticate():
            return
        target = self.target()
        segments = decode_path(target)
        if segments is None:
            self.send_plain(400, "Bad Request")
            return
        query = urllib.parse.urlsplit(target).query
        prefix = "/"
        if segments[0] == "simple":
            prefix, segments = "/simple/", segments[1:]
            if not segments:
                self.redirect("/simple/", query)
                return
        tree = settings.tree
        if segments == [MANIFEST_NAME] and settings.public_manifest:
            manifest = tree.manifest()
            if manifest is None:
                self.not_found()
            else:
                self.send_resource(manifest, head)
            return
        if segments == [""]:
            self.send_page(head, query, lambda media: render_root(tree.projects(), media))
            return
        # Only "<project>", "<project>/" and "<project>/<file>", each a plain name.
        name, rest = segments[0], segments[1:]
        if (
            len(segments) > 2
            or not is_plain_name(name)
            or rest[:1] not in ([], [""])
            and not is_plain_name(rest[0])
        ):
            self.not_found()
            return
        project = normalize(name)
        folder = tree.project_folder(project)
        if folder is None:
            self.not_found()
            return
        if name != project or not rest:
            location = prefix + project + "/" + "/".join(urllib.parse.quote(s) for s in rest)
            self.redirect(location, query)
            return
        filename = rest[0]
        if filename == "":
            self.send_page(
                head,
                query,
                lambda media: render_project(project, tree.files(project, folder), media),
            )
            return
        if filename.endswith(METADATA_SUFFIX):
            resource = tree.core_metadata(folder, filename)
        else:
            resource = tree.distribution(folder, filename)
        if resource is None:
            self.not_found()
            return
        self.send_resource(resource, head)

    def answer_upload(self, uploads: Uploads) -> None:
        """A POST with --upload: twine's legacy upload, taken from authenticated users only.

        Every refusal is one status and a one-line message (in the reason phrase too,
        where twine shows it), and leaves nothing written.
        """
        if self.settings.authenticator is None or not self.authenticate():
            if not self.headers_sent:  # --upload is never on without --auth-file
                self.send_plain(401, "Unauthorized")
            return
        try:
            with uploads.slot():
                filename = self.receive_upload(uploads)
        except UploadRefused as refusal:
            self.send_message(refusal.status, refusal.message, refusal.headers)
            return
        except Exception as error:
            self.discard_answer()
            if isinstance(error, OSError) and error.errno in _NO_SPACE:
                self.send_message(507, "Insufficient Storage: %s" % describe(error))
                return
            log_line(
                "error receiving an upload %r:\n%s" % (self.requestline, traceback.format_exc())
            )
            self.send_message(500, "Internal Server Error: the upload could not be written")
            return
        self.send_message(200, "OK", body="uploaded %s\n" % filename)

    def receive_upload(self, uploads: Uploads) -> str:
        """Check the request's head, read the body as it comes, check the upload and land
        it; the file's path in the tree. UploadRefused says why not."""
        segments = decode_path(self.target())
        if segments is not None and segments[:1] == ["simple"]:
            segments = segments[1:]
        if segments not in ([], [""], ["legacy"], ["legacy", ""]):
            raise UploadRefused(
                405, "Method Not Allowed: uploads go to / or /legacy/", [("Allow", "GET, HEAD")]
            )
        headers = self.headers
        if headers.get("Transfer-Encoding") is not None:
            raise UploadRefused(
                411, "Length Required: send the upload with a Content-Length, not chunked"
            )
        lengths = {value.strip() for value in headers.get_all("Content-Length") or []}
        if not lengths:
            raise UploadRefused(411, "Length Required: send the upload with a Content-Length")
        length_text = lengths.pop()
        if lengths or not re.match(r"[0-9]{1,19}\Z", length_text):
            raise UploadRefused(400, "the Content-Length is not one number")
        length = int(length_text)
        if length > uploads.max_size:
            raise UploadRefused(
                413,
                "Content Too Large: the upload is %d bytes, the limit is %d (--max-upload-size)"
                % (length, uploads.max_size),
            )
        try:
            kind, parameters = parse_parameters(headers.get("Content-Type", ""))
        except ValueError as error:
            raise UploadRefused(400, "the Content-Type is malformed: %s" % error) from None
        if kind.lower() != "multipart/form-data":
            raise UploadRefused(
                415, "Unsupported Media Type: an upload is multipart/form-data, as twine sends it"
            )
        boundary = parameters.get("boundary", "")
        if not _BOUNDARY.match(boundary):
            raise UploadRefused(400, "the multipart/form-data Content-Type has no valid boundary")
        assert self.source is not None, "a Server sets the source of every request"
        tree = self.settings.tree
        body = BodyReader(self.source, length, self.settings.timeout)
        received = Received(tree.root)
        try:
            expect = headers.get("Expect", "").strip().lower()
            if expect == "100-continue" and self.request_version == "HTTP/1.1":
                body.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            parser = MultipartParser(boundary, received.start_part)
            while True:
                data = body.read(BODY_CHUNK_BYTES)
                if not data:
                    break
                parser.feed(data)
            parser.finish()
            received.close_file()
            upload = check_upload(received)
            busy = UploadRefused(
                503,
                "Service Unavailable: an import is landing files, or a morgan run (mirror, "
                "prune, export) holds the index",
                [("Retry-After", "10")],
            )
            user = self.user or ""
            with uploads.lock, tree_lock(tree.root, lambda: busy):
                land_upload(tree, user, received, upload)
        finally:
            received.discard()
            body.close()
        path = "%s/%s" % (upload.project, upload.filename)
        if not self.settings.quiet:
            log_line(
                "server.py: %s uploaded %s (%d bytes, sha256 %s)"
                % (user, path, upload.size, upload.sha256)
            )
        return path

    def send_message(
        self,
        status: int,
        message: str,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: Optional[str] = None,
    ) -> None:
        """A plain-text answer whose reason phrase is the message itself (as PyPI does:
        twine shows the reason phrase), made ASCII, one line and bounded."""
        reason = message.encode("ascii", "backslashreplace").decode("ascii")
        reason = _CONTROL_CHARACTERS.sub("?", reason)[:300]
        data = (body if body is not None else "%d %s\n" % (status, message)).encode("utf-8")
        extra = list(headers or [])
        self.start(
            status, [("Content-Type", "text/plain; charset=utf-8")] + extra, len(data), reason
        )
        self.wfile.write(data)

    def not_found(self) -> None:
        self.send_plain(404, "Not Found")

    def redirect(self, location: str, query: str) -> None:
        if query:
            location += "?" + query
        self.send_plain(301, "Moved Permanently", [("Location", location)])

    def cache_control(self, value: str) -> str:
        visibility = "private" if self.settings.authenticator else "public"
        return "%s, %s" % (visibility, value)

    # -- pages ---------------------------------------------------------------

    def send_page(self, head: bool, query: str, render: Callable[[str], bytes]) -> None:
        media_type = choose_media_type(self.headers.get("Accept"), format_parameter(query))
        if media_type is None:
            served = ", ".join(SERVED_TYPES)
            self.send_plain(406, "Not Acceptable: this server serves %s" % served)
            return
        try:
            body = render(media_type)
        except (FileNotFoundError, NotADirectoryError):
            self.not_found()  # the folder went away while it was read
            return
        etag = '"p%s"' % hashlib.sha256(body).hexdigest()[:32]
        headers = [
            ("Content-Type", media_type),
            ("Vary", "Accept"),
            ("ETag", etag),
            ("Cache-Control", self.cache_control(PAGE_CACHE_CONTROL)),
        ]
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None and etag_listed(if_none_match, etag, weak=True):
            self.start(304, headers[1:], None)
            return
        self.start(200, headers, len(body))
        if not head:
            self.wfile.write(body)

    # -- file sending --------------------------------------------------------

    def not_modified(self, resource: Resource) -> bool:
        """RFC 9110, 13.2.2: If-None-Match, else If-Modified-Since."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag_listed(if_none_match, resource.etag, weak=True)
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        moment = parse_http_date(since)
        return moment is not None and int(resource.mtime) <= moment

    def range_applies(self, resource: Resource) -> bool:
        """If-Range: a Range is honoured only while the representation is unchanged."""
        condition = self.headers.get("If-Range")
        if condition is None:
            return True
        condition = condition.strip()
        if condition.startswith(('"', "W/")):
            return etag_listed(condition, resource.etag, weak=False) and condition != "*"
        moment = parse_http_date(condition)
        return moment is not None and int(resource.mtime) == int(moment)

    def send_resource(self, resource: Resource, head: bool) -> None:
        """Send a file or bytes, with conditional requests and a single byte range."""
        if resource.path is None:
            self.send_representation(resource, None, head)
            return
        stream = open_regular_file(resource.path)
        if stream is None:
            self.not_found()  # removed (or replaced by something odd) since it was found
            return
        try:
            # Describe what was opened, not what was looked at before.
            st = os.fstat(stream.fileno())
            opened = resource._replace(size=st.st_size, mtime=st.st_mtime, etag=file_etag(st))
            self.send_representation(opened, stream, head)
        finally:
            if self.body is None or self.body[0] is not stream:
                stream.close()  # else the Server sends it, then closes it

    def send_representation(self, resource: Resource, stream: Any, head: bool) -> None:
        headers = [
            ("ETag", resource.etag),
            ("Cache-Control", self.cache_control(resource.cache_control)),
            ("Accept-Ranges", "bytes"),
        ]
        last_modified = http_date(resource.mtime)
        if last_modified:
            headers.append(("Last-Modified", last_modified))
        if self.not_modified(resource):
            self.start(304, headers, None)
            return
        status, first, last = 200, 0, resource.size - 1
        requested = self.headers.get("Range")
        if requested is not None and self.range_applies(resource):
            span = parse_range(requested, resource.size)
            if span == UNSATISFIABLE:
                unsatisfied = [("Content-Range", "bytes */%d" % resource.size)]
                self.send_plain(416, "Range Not Satisfiable", unsatisfied)
                return
            if span is not None:
                status, (first, last) = 206, span
                headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, resource.size)))
        headers.insert(0, ("Content-Type", resource.content_type))
        length = last - first + 1
        self.start(status, headers, length)
        if head or length <= 0:
            return
        if resource.data is not None:
            self.wfile.write(resource.data[first : last + 1])
        else:
            self.body = (stream, first, length)


# ---------------------------------------------------------------------------
# Connections: one thread reads and writes every socket, a pool of threads answers
# ---------------------------------------------------------------------------

#: What a connection is doing; the thread that may touch it follows from it.
READING = "reading"  # the loop: TLS handshake, then a request head (or idle keep-alive)
ANSWERING = "answering"  # a worker: the head is complete and is being answered
SENDING = "sending"  # the loop: the rest of an answer, as the client takes it
CLOSING = "closing"  # the loop: answered and shut for writing; what comes in is dropped
BROKEN = "broken"  # to be closed at once
CLOSED = "closed"

#: What pump() says: all sent, the socket is full (wait for it), or the connection is lost.
SENT, BLOCKED, FAILED = range(3)

_HEAD_END = re.compile(b"\r?\n\r?\n")
_OUT_OF_RESOURCES = tuple(
    getattr(errno, name)
    for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name)
)
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 47\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
    b"503 Service Unavailable: too many connections\n"
)
_CAN_SENDFILE = hasattr(os, "sendfile")


def find_head(buffer: bytearray) -> Tuple[int, int]:
    """Where the request head at the start of ``buffer`` ends, or the error status it deserves.

    (end, 0) for a complete head, (0, 414) or (0, 431) for one past the bounds,
    (0, 0) while it is incomplete. A request line of fewer than three words is
    a head on its own (HTTP/0.9 style), so that it is refused at once.
    """
    line_end = buffer.find(b"\n", 0, MAX_REQUEST_LINE_BYTES + 2)
    if line_end < 0:
        return (0, 414) if len(buffer) > MAX_REQUEST_LINE_BYTES + 1 else (0, 0)
    if len(bytes(buffer[:line_end]).split()) < 3:
        return line_end + 1, 0
    match = _HEAD_END.search(buffer, line_end)
    if match is not None and match.end() <= MAX_HEAD_BYTES:
        return match.end(), 0
    if match is not None or len(buffer) > MAX_HEAD_BYTES:
        return 0, 431
    return 0, 0


def strip_blank_lines(buffer: bytearray) -> None:
    """Drop empty lines before a request line (RFC 9112, 2.2)."""
    count = len(buffer) - len(buffer.lstrip(b"\r\n"))
    if count:
        del buffer[:count]


def after_answer(connection: "Connection") -> str:
    """What a connection does once an answer is sent: ANSWERING (another request is
    there already, perhaps cut short), READING (wait for one) or CLOSING."""
    if connection.close:
        return CLOSING
    strip_blank_lines(connection.buffer)
    end, error = find_head(connection.buffer)
    if end or error or (connection.eof and connection.buffer):
        return ANSWERING
    return CLOSING if connection.eof else READING


class Connection:
    """A client connection and what is pending on it.

    Only one thread uses it at a time: the loop in the READING, SENDING and
    CLOSING states, a worker in the ANSWERING state; it changes hands through
    the pool's queue and the Server's ``_returned`` queue.
    """

    __slots__ = (
        "sock",
        "address",
        "tls",
        "handshaken",
        "state",
        "events",
        "want",
        "buffer",
        "eof",
        "close",
        "counted",
        "pending",
        "pending_at",
        "file",
        "offset",
        "remaining",
        "drained",
    )

    def __init__(self, sock: socket.socket, address: Any, tls: bool) -> None:
        self.sock = sock
        self.address = address
        self.tls = tls
        self.handshaken = not tls
        self.state = READING
        self.events = 0  # what the selector watches for
        self.want = selectors.EVENT_WRITE  # what a blocked send waits for
        self.buffer = bytearray()  # received and not yet answered
        self.eof = False  # the client has shut its side
        self.close = False  # close once the answer is sent
        self.counted = False  # counted in Server.max_connections
        self.pending: Union[bytes, memoryview] = b""  # bytes to send, from pending_at
        self.pending_at = 0
        self.file: Any = None  # a file to send after them: offset, remaining bytes
        self.offset = 0
        self.remaining = 0
        self.drained = 0

    def drop_output(self) -> None:
        self.pending, self.pending_at, self.remaining = b"", 0, 0
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


def pump(connection: Connection) -> Tuple[int, int]:
    """(SENT, BLOCKED or FAILED, bytes sent): send what is pending without ever waiting.

    Files go with the kernel's sendfile where it can; over TLS (and where
    there is no sendfile) they are read a chunk at a time, so a connection
    never holds more than a chunk of a file in memory.
    """
    connection.want = selectors.EVENT_WRITE
    sock = connection.sock
    budget = SEND_BURST_BYTES
    try:
        while budget > 0:
            if connection.pending_at < len(connection.pending):
                at = connection.pending_at
                size = TLS_CHUNK_BYTES if connection.tls else SEND_BURST_BYTES
                sent = sock.send(connection.pending[at : at + size])
                connection.pending_at += sent
                budget -= sent
            elif connection.remaining > 0:
                if connection.tls or not _CAN_SENDFILE:
                    size = TLS_CHUNK_BYTES if connection.tls else PLAIN_CHUNK_BYTES
                    connection.file.seek(connection.offset)
                    data = connection.file.read(min(size, connection.remaining))
                    if not data:
                        return FAILED, SEND_BURST_BYTES - budget  # the file shrank
                    connection.pending, connection.pending_at = memoryview(data), 0
                    sent = len(data)
                else:
                    sent = os.sendfile(
                        sock.fileno(),
                        connection.file.fileno(),
                        connection.offset,
                        min(connection.remaining, budget),
                    )
                    if sent == 0:
                        return FAILED, SEND_BURST_BYTES - budget  # the file shrank
                    budget -= sent
                connection.offset += sent
                connection.remaining -= sent
            else:
                connection.drop_output()
                return SENT, SEND_BURST_BYTES - budget
        return BLOCKED, SEND_BURST_BYTES - budget  # more to send: the loop takes turns
    except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
        return BLOCKED, SEND_BURST_BYTES - budget
    except ssl.SSLWantReadError:
        connection.want = selectors.EVENT_READ
        return BLOCKED, SEND_BURST_BYTES - budget
    except (OSError, ValueError):
        return FAILED, SEND_BURST_BYTES - budget


class WorkerPool:
    """At most ``size`` threads, started as work comes, each running ``work(item)`` in turn."""

    def __init__(self, size: int, work: Callable[[Any], None]) -> None:
        self.size = size
        self._work = work
        self._jobs: "collections.deque[Any]" = collections.deque()
        self._condition = threading.Condition()
        self._idle = 0
        self._threads: List[threading.Thread] = []
        self._stopping = False

    def submit(self, item: Any) -> None:
        with self._condition:
            self._jobs.append(item)
            if self._idle < len(self._jobs) and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._run, name="morgan-%d" % (len(self._threads) + 1), daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as error:  # the system would not give another thread
                    if not self._threads:
                        self._jobs.pop()
                        raise
                    log_line("server.py: cannot start a thread (%s), going on with fewer" % error)
                    self.size = len(self._threads)
                else:
                    self._threads.append(thread)
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._jobs and not self._stopping:
                    self._idle += 1
                    self._condition.wait()
                    self._idle -= 1
                if self._stopping:
                    return
                item = self._jobs.popleft()
            self._work(item)

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._jobs.clear()
            self._condition.notify_all()


class Server:
    """The HTTP(S) server: one loop thread for every socket, a pool of threads for answers.

    The loop accepts connections, does TLS handshakes, reads request heads and
    sends what could not be sent at once, all without blocking, so an idle,
    slow or stalled client costs a socket and a small buffer but no thread. A
    head must be complete within ``timeout`` of the connection's becoming idle
    (a total deadline, however slowly it trickles in) and within the bounds
    MAX_REQUEST_LINE_BYTES, MAX_HEAD_BYTES and MAX_HEADERS. A complete head
    goes to a worker, which answers it and sends what the socket takes at
    once; the rest is left to the loop. Keep-alive connections return to the
    loop between requests. At ``max_connections``, the connection that has
    waited longest for a request is closed to make room if it has waited over
    IDLE_GRACE_SECONDS; else newcomers wait in the system's queue, and once that
    has lasted FULL_WAIT_SECONDS they are answered 503 (TLS ones just closed).
    """

    def __init__(
        self,
        address: Tuple[str, int],
        family: int,
        settings: Settings,
        ssl_context: Optional[ssl.SSLContext],
        *,
        threads: int = DEFAULT_THREADS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self._selector = selectors.DefaultSelector()
        self._waker, self._wake_socket = socket.socketpair()
        try:
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError, AttributeError):
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if os.name == "posix":  # elsewhere it would let another program share the port
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(LISTEN_BACKLOG)
            self.server_address = self.socket.getsockname()
            for sock in (self.socket, self._waker, self._wake_socket):
                sock.setblocking(False)
            self._selector.register(self.socket, selectors.EVENT_READ, None)
            self._selector.register(self._wake_socket, selectors.EVENT_READ, self._waker)
        except BaseException:
            self.server_close()
            raise
        self._pool = WorkerPool(threads, self._answer)
        #: Connections the loop waits on, each with its deadline, oldest first.
        self._reading: "collections.OrderedDict[Connection, float]" = collections.OrderedDict()
        self._sending: "collections.OrderedDict[Connection, float]" = collections.OrderedDict()
        self._closing: "collections.OrderedDict[Connection, float]" = collections.OrderedDict()
        self._connections: "set[Connection]" = set()
        self._returned: "collections.deque[Connection]" = collections.deque()
        self._wake_pending = False
        self._counted = 0
        self._accepting = True
        self._accept_again = 0.0
        self._paused_full = False
        self._full_since: Optional[float] = None
        self._last_warning = -3600.0
        self._stop_requested = False
        self._closed = False
        self._stopped = threading.Event()
        self._stopped.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server_close()

    # -- running ----------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the loop until shutdown()."""
        self._stopped.clear()
        try:
            while not self._stop_requested:
                self._turn(poll_interval)
        finally:
            self._stop_requested = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever() and wait until it has returned."""
        self._stop_requested = True
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and every connection."""
        self._closed = True
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.stop()
        for connection in list(getattr(self, "_connections", ())):
            self._close(connection)
        with contextlib.suppress(Exception):
            self._selector.close()
        for sock in (self.socket, self._waker, self._wake_socket):
            sock.close()

    def _turn(self, poll_interval: float) -> None:
        now = time.monotonic()
        timeout = poll_interval
        for timers in (self._reading, self._sending, self._closing):
            if timers:
                timeout = min(timeout, next(iter(timers.values())) - now)
        if not self._accepting:
            timeout = min(timeout, self._accept_again - now)
        for key, _ in self._selector.select(max(timeout, 0.0)):
            connection = key.data
            try:
                if connection is None:
                    self._accept()
                elif connection is self._waker:
                    self._take_wake()
                elif connection.state == READING:
                    self._receive(connection)
                elif connection.state == SENDING:
                    self._send(connection)
                elif connection.state == CLOSING:
                    self._drain(connection)
            except Exception:  # a bug must cost one connection at most, never the server
                self._failed(connection)
        self._take_returned()
        self._expire(time.monotonic())

    def _failed(self, connection: Any) -> None:
        log_line("server.py: error in the connection loop:\n%s" % traceback.format_exc())
        if isinstance(connection, Connection):
            self._close(connection)

    def _warn(self, message: str) -> None:
        """A line on the log, at most once a minute (floods would fill it otherwise)."""
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            log_line("server.py: %s" % message)

    # -- accepting ------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(64):
            if self._counted >= self.max_connections and not self._make_room():
                # Full, and every connection busy or just opened: newcomers wait in the
                # system's queue for a moment; if it lasts, they are accepted and told 503.
                now = time.monotonic()
                if self._full_since is None:
                    self._full_since = now
                if now - self._full_since < FULL_WAIT_SECONDS:
                    self._pause_accepting(self._full_since + FULL_WAIT_SECONDS, full=True)
                    return
                self._warn("%d connections, all busy: new ones get 503" % self._counted)
            else:
                self._full_since = None
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in _OUT_OF_RESOURCES:  # no file descriptor left: wait a little
                    self._warn("cannot accept connections: %s" % describe(error))
                    self._pause_accepting(time.monotonic() + 0.5, full=False)
                    return
                continue  # that client gave up already
            if self._counted >= self.max_connections:
                self._refuse(sock, address)
            else:
                self._admit(sock, address)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request, if it has for a while.

        Idle keep-alive connections and clients that connect and say nothing go
        first; a connection opened a moment ago is left to send its request.
        """
        if not self._reading:
            return False
        connection, deadline = next(iter(self._reading.items()))
        if deadline - self.settings.timeout > time.monotonic() - IDLE_GRACE_SECONDS:
            return False
        self._close(connection)
        return True

    def _pause_accepting(self, until: float, full: bool) -> None:
        if self._accepting:
            self._accepting = False
            self._selector.unregister(self.socket)
        self._accept_again = until
        self._paused_full = full

    def _resume_accepting(self) -> None:
        if not self._accepting:
            self._accepting = True
            self._selector.register(self.socket, selectors.EVENT_READ, None)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
        except (OSError, ValueError):
            sock.close()
            return
        connection = Connection(sock, address, self.ssl_context is not None)
        connection.counted = True
        self._counted += 1
        self._connections.add(connection)
        self._wait_for_request(connection)

    def _refuse(self, sock: socket.socket, address: Any) -> None:
        """A 503 for a connection over the limit (TLS ones are just closed)."""
        if self.ssl_context is not None:
            sock.close()
            return
        connection = Connection(sock, address, False)
        self._connections.add(connection)
        try:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock.recv(RECV_BYTES)  # what has come already, so that closing resets nothing
            sock.send(_REFUSAL)
        except OSError:
            self._close(connection)
            return
        self._linger(connection)

    # -- reading requests -------------------------------------------------------

    def _wait_for_request(self, connection: Connection) -> None:
        connection.state = READING
        self._reading[connection] = time.monotonic() + self.settings.timeout
        self._watch(connection, selectors.EVENT_READ)

    def _receive(self, connection: Connection) -> None:
        if not connection.handshaken and not self._handshake(connection):
            return
        sock = connection.sock
        try:
            while len(connection.buffer) <= MAX_HEAD_BYTES:
                data = sock.recv(RECV_BYTES)
                if not data:
                    connection.eof = True
                    break
                connection.buffer += data
                if not connection.tls or not sock.pending():  # type: ignore[attr-defined]
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            pass
        except ssl.SSLWantWriteError:
            self._watch(connection, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError):
            self._close(connection)
            return
        self._watch(connection, selectors.EVENT_READ)
        strip_blank_lines(connection.buffer)
        end, error = find_head(connection.buffer)
        if end or error or (connection.eof and connection.buffer):
            self._start_answer(connection)
        elif connection.eof:
            self._close(connection)  # a keep-alive connection closed by the client

    def _handshake(self, connection: Connection) -> bool:
        try:
            connection.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._watch(connection, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._watch(connection, selectors.EVENT_WRITE)
            return False
        except (OSError, ValueError) as error:
            if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError):
                log_line("%s - TLS handshake failed: %s" % (connection.address[0], describe(error)))
            self._close(connection)
            return False
        connection.handshaken = True
        return True

    def _start_answer(self, connection: Connection) -> None:
        self._reading.pop(connection, None)
        self._watch(connection, 0)
        connection.state = ANSWERING
        try:
            self._pool.submit(connection)
        except RuntimeError:
            self._close(connection)

    # -- answering (in a worker) ------------------------------------------------

    def _answer(self, connection: Connection) -> None:
        """Answer the complete heads in the connection's buffer, then hand it back to the loop."""
        try:
            connection.state = self._answer_heads(connection)
        except Exception:
            log_line("%s - error: %s" % (connection.address[0], traceback.format_exc()))
            connection.state = BROKEN
        self._hand_back(connection)

    def _answer_heads(self, connection: Connection) -> str:
        while True:
            end, error = find_head(connection.buffer)
            if not end and not error:
                error = 400  # the client shut its side in the middle of a request
            head = bytes(connection.buffer[:end])
            del connection.buffer[: end if end else len(connection.buffer)]
            handler = Handler(connection.address, self.settings)
            handler.source = connection
            handler.handle_head(head, error)
            connection.close = handler.close_connection or bool(error)
            connection.pending, connection.pending_at = memoryview(handler.wfile.getvalue()), 0
            if handler.body is not None:
                connection.file, connection.offset, connection.remaining = handler.body
            outcome, _ = pump(connection)
            if outcome == FAILED:
                return BROKEN
            if outcome == BLOCKED:
                return SENDING
            state = after_answer(connection)
            if state != ANSWERING:
                return state

    def _hand_back(self, connection: Connection) -> None:
        self._returned.append(connection)
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def _take_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_socket.recv(4096):
                pass
        self._wake_pending = False

    def _take_returned(self) -> None:
        while self._returned:
            connection = self._returned.popleft()
            try:
                if connection.state == SENDING:
                    self._sending[connection] = time.monotonic() + self.settings.timeout
                    self._watch(connection, connection.want)
                elif connection.state == READING:
                    self._wait_for_request(connection)
                elif connection.state == CLOSING:
                    self._linger(connection)
                else:
                    self._close(connection)
            except Exception:
                self._failed(connection)

    # -- sending and closing (in the loop) --------------------------------------

    def _send(self, connection: Connection) -> None:
        outcome, sent = pump(connection)
        if outcome == FAILED:
            self._close(connection)
        elif outcome == BLOCKED:
            if sent:  # a download may take long, but may not stall for longer than the timeout
                self._sending.pop(connection, None)
                self._sending[connection] = time.monotonic() + self.settings.timeout
            self._watch(connection, connection.want)
        else:
            self._sending.pop(connection, None)
            state = after_answer(connection)
            if state == ANSWERING:
                self._start_answer(connection)
            elif state == CLOSING:
                self._linger(connection)
            else:
                self._wait_for_request(connection)

    def _linger(self, connection: Connection) -> None:
        """Shut the sending side, then read and drop what the client still sends, for a while.

        Closing at once could make the system reset the connection, and the
        client lose the answer it has not read yet.
        """
        connection.drop_output()
        connection.buffer = bytearray()
        connection.state = CLOSING
        if connection.counted:
            connection.counted = False
            self._counted -= 1
        if connection.eof:
            self._close(connection)
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        self._closing[connection] = time.monotonic() + LINGER_SECONDS
        while len(self._closing) > max(16, self.max_connections // 2):
            self._close(next(iter(self._closing)))
        self._watch(connection, selectors.EVENT_READ)

    def _drain(self, connection: Connection) -> None:
        try:
            while True:
                data = connection.sock.recv(RECV_BYTES)
                connection.drained += len(data)
                if not data or connection.drained > LINGER_MAX_BYTES:
                    break
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except (OSError, ValueError):
            pass
        self._close(connection)

    def _expire(self, now: float) -> None:
        for timers in (self._reading, self._sending, self._closing):
            while timers:
                connection, deadline = next(iter(timers.items()))
                if deadline > now:
                    break
                self._close(connection)
        if not self._accepting and (
            now >= self._accept_again
            or (self._paused_full and self._counted < self.max_connections)
        ):
            self._resume_accepting()

    def _watch(self, connection: Connection, events: int) -> None:
        if events == connection.events:
            return
        if connection.events == 0:
            self._selector.register(connection.sock, events, connection)
        elif events == 0:
            self._selector.unregister(connection.sock)
        else:
            self._selector.modify(connection.sock, events, connection)
        connection.events = events

    def _close(self, connection: Connection) -> None:
        if connection.state == CLOSED:
            return
        if connection.events:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(connection.sock)
            connection.events = 0
        for timers in (self._reading, self._sending, self._closing):
            timers.pop(connection, None)
        self._connections.discard(connection)
        if connection.counted:
            connection.counted = False
            self._counted -= 1
        connection.drop_output()
        connection.state = CLOSED
        connection.buffer = bytearray()
        with contextlib.suppress(OSError):
            connection.sock.close()


def fit_connections(max_connections: int, threads: int) -> int:
    """The connection limit, lowered to what the open-file limit allows (raised if it may be).

    A connection may hold two descriptors, its socket and a file it sends, and
    each thread one or two more while it answers.
    """
    limit = None
    try:
        import resource  # noqa: PLC0415 - not on Windows

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = 2 * max_connections + threads + 32
        if soft != resource.RLIM_INFINITY and soft < needed:
            wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
        if soft != resource.RLIM_INFINITY:
            limit = (soft - threads - 32) // 2
    except ImportError:
        pass
    if selectors.DefaultSelector is getattr(selectors, "SelectSelector", None):
        limit = min(limit, 500) if limit is not None else 500  # select() watches ~512 at most
    if limit is not None and limit < max_connections:
        limit = max(limit, 1)
        log_line("server.py: at most %d connections at once (what the system allows)" % limit)
        return limit
    return max_connections


# ---------------------------------------------------------------------------
# Transfer: verify the tree against manifest.json, import a bundle
# ---------------------------------------------------------------------------

MANIFEST_NAME = "manifest.json"
CONFIG_NAME = "morgan.ini"
BUNDLE_INFO_NAME = "morgan-bundle.json"
STAGING_PREFIX = ".morgan-import-"
PROJECT_PAGES = ("index.html", PAGE_JSON)
MAX_MANIFEST_BYTES = MAX_PAGE_JSON_BYTES

PathArg = Union[str, "os.PathLike[str]"]


class Refusal(UserError):
    """A bundle that import will not land; nothing has been written."""

    status = 1
    label = "import refused"


class Interrupted(UserError):
    """An import that stopped while landing files; running it again finishes it."""

    status = 1
    label = "import interrupted"


class Entry(NamedTuple):
    """What a manifest or a bundle says of one file."""

    sha256: str
    size: int


class Manifest(NamedTuple):
    """INDEX/manifest.json, reduced to what verify and import check."""

    files: Dict[str, Entry]  # distributions
    index_files: Dict[str, Entry]  # everything else clients are served

    def entries(self) -> Dict[str, Entry]:
        merged = dict(self.index_files)
        merged.update(self.files)
        return merged


class Problem(NamedTuple):
    """One way the tree differs from its manifest, as verify reports it."""

    kind: str  # "missing", "corrupt", "unlisted" or "unreadable"
    path: str
    detail: str = ""
    moved_to: Optional[str] = None  # where --quarantine put it
    not_moved: str = ""  # why --quarantine could not move it

    def line(self) -> str:
        detail = " (%s)" % self.detail if self.detail else ""
        return "%s: %s%s" % (self.kind, self.path, detail)


class BundleInfo(NamedTuple):
    """A bundle's morgan-bundle.json."""

    base: Optional[str]
    manifest: str
    members: Dict[str, Entry]  # in tar order
    removed: List[str]


class ImportResult(NamedTuple):
    landed: int
    removed: int
    stale: List[str]  # staging folders of interrupted imports, now removed


def emit(line: str) -> None:
    """A report line on standard output, whatever the names hold (one line, printable)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    text = line.translate(_LOG_ESCAPES).encode(encoding, "backslashreplace").decode(encoding)
    with contextlib.suppress(OSError, ValueError):  # a closed pipe must not cost a traceback
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def quoted(name: str) -> str:
    """A name from a bundle, quoted so that an empty or odd one still reads as one."""
    return json.dumps(name, ensure_ascii=False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def path_problem(path: str) -> Optional[str]:
    """Why ``path`` may not name a file of the tree, or None.

    Manifests and bundles come from elsewhere: a path that could lead outside
    INDEX, hide among the mirrorer's caches (hidden names) or land somewhere a
    server would not look is refused.
    """
    if not path:
        return "is empty"
    if path.startswith("/"):
        return "is absolute"
    if "\\" in path:
        return "holds a backslash"
    if "\x00" in path:
        return "holds NUL"
    parts = path.split("/")
    if ".." in parts:
        return 'holds ".."'
    if "" in parts:
        return "holds an empty component"
    if any(part.startswith(".") for part in parts):
        return "holds a hidden component"
    if len(parts) > 2:
        return "has more than two components"
    if not all(is_plain_name(part) for part in parts):
        return "is not plain (a control character, ':' or a name that is not UTF-8)"
    if len(parts) == 2 and not is_project_name(parts[0]):
        return "is not in a PEP 503 normalized project folder"
    return None


def entry_of(value: Any) -> Optional[Entry]:
    """(sha256, size) of a manifest or bundle entry, if it holds valid ones."""
    if not isinstance(value, dict):
        return None
    sha256, size = value.get("sha256"), value.get("size")
    if not isinstance(sha256, str) or not _SHA256_HEX.match(sha256.lower()):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    return Entry(sha256.lower(), size)


def parse_manifest(data: bytes) -> Manifest:
    """The files a manifest.json lists; ValueError saying what is wrong with it."""
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as error:
        raise ValueError("not valid JSON (%s)" % error) from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    version = document.get("manifest-version")
    if not _is_int(version) or version != 1:
        raise ValueError("manifest-version %s is not supported (1 is)" % json.dumps(version))
    files = _manifest_section(document, "files")
    index_files = _manifest_section(document, "index-files")
    both = sorted(set(files) & set(index_files))
    if both:
        raise ValueError("%s is listed in both files and index-files" % quoted(both[0]))
    return Manifest(files, index_files)


def _manifest_section(document: Dict[str, Any], key: str) -> Dict[str, Entry]:
    section = document.get(key)
    if not isinstance(section, dict):
        raise ValueError('"%s" is not an object' % key)
    entries = {}
    for path, value in section.items():
        reason = path_problem(path)
        if reason is None and path in (MANIFEST_NAME, CONFIG_NAME):
            reason = "is never listed"
        if reason is not None:
            raise ValueError("the path %s in %s %s" % (quoted(path), key, reason))
        entry = entry_of(value)
        if entry is None:
            raise ValueError(
                'the entry of %s in %s needs "sha256" (hex) and "size"' % (quoted(path), key)
            )
        entries[path] = entry
    return entries


def read_limited(path: str, limit: int) -> bytes:
    """A regular file's bytes; OSError if it is not one, is unreadable or exceeds ``limit``."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    with os.fdopen(os.open(path, flags), "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data: bytes = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, "larger than %d bytes" % limit)
    return data


def read_manifest(root: str) -> Manifest:
    """INDEX/manifest.json; UserError (one line) when it is missing or not a manifest."""
    path = os.path.join(root, MANIFEST_NAME)
    try:
        data = read_limited(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise UserError(
            "%s not found: run morgan mirror, or import a full bundle, to write it" % path
        ) from None
    except OSError as error:
        raise UserError("cannot read %s: %s" % (path, describe(error))) from None
    try:
        return parse_manifest(data)
    except ValueError as error:
        raise UserError(
            "%s is not a valid manifest: %s; run morgan mirror, or import a full bundle, "
            "to write it again" % (path, error)
        ) from None


# -- verify -------------------------------------------------------------------


def read_upload_record(path: str) -> Optional[Entry]:
    """The sha256 and size in ``<path>.uploaded``; None when absent or not a valid record."""
    try:
        data = read_limited(path + UPLOADED_SUFFIX, MAX_UPLOAD_RECORD_BYTES)
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return None
    return entry_of(document) if isinstance(document, dict) else None


def folder_uploads(folder: str) -> Optional[str]:
    """The name of one ``.uploaded`` sidecar in a folder, if it holds any."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(UPLOADED_SUFFIX) and not entry.name.startswith("."):
                    return entry.name
    except OSError:
        pass
    return None


class Verified(NamedTuple):
    """What verify found: the problems, the files the manifest lists, the sound uploads."""

    problems: List[Problem]
    files: int
    uploads: int


def verify_tree(index: PathArg, quarantine: Optional[PathArg] = None) -> Tuple[List[Problem], int]:
    """The tree's problems against its manifest.json (sorted by path), and how many
    files the manifest lists (``verify_index`` counts the uploads too).

    With ``quarantine``, corrupt and unlisted files are moved into that folder
    (never deleted: they may be all there is of a file). UserError, before
    anything is moved, when the manifest is missing or invalid or the folder
    lies inside the index.
    """
    verified = verify_index(index, quarantine)
    return verified.problems, verified.files


def verify_index(index: PathArg, quarantine: Optional[PathArg] = None) -> Verified:
    """verify_tree, with the uploads (``server.py --upload``) counted.

    An upload is not in the manifest: it is checked against its ``.uploaded`` record
    instead (a mismatch is "corrupt"), and neither it nor its sidecars are unlisted.
    Uploads rewrite pages, so a page that differs from the manifest is no problem in
    a project folder that holds uploads, nor at the root of a tree that holds any.
    """
    root = os.fspath(index)
    if not os.path.isdir(root):
        raise UserError("index folder not found: %s" % os.path.abspath(root))
    target = quarantine_folder(root, os.fspath(quarantine)) if quarantine is not None else None
    listed = read_manifest(root).entries()
    found, uploads, uploaded = scan_unlisted(root, listed)
    for path, entry in sorted(listed.items()):
        problem = check_listed(root, path, entry)
        if problem is not None and not rewritten_by_uploads(problem, uploaded):
            found.append(problem)
    found.sort(key=lambda problem: problem.path)
    if target is not None:
        found = [quarantine_problem(root, target, problem) for problem in found]
    return Verified(found, len(listed), uploads)


def rewritten_by_uploads(problem: Problem, uploaded: "set[str]") -> bool:
    """Whether a problem is a page that an upload has rewritten (its content differs)."""
    parts = problem.path.split("/")
    if problem.kind != "corrupt" or parts[-1] not in PROJECT_PAGES:
        return False
    if not problem.detail.startswith(("size ", "sha256 ")):
        return False  # not a regular file: no upload writes that
    return bool(uploaded) if len(parts) == 1 else parts[0] in uploaded


def verify_lines(problems: List[Problem], count: int, uploads: int = 0) -> List[str]:
    """What verify prints: a line per problem (and per quarantined file), then a summary."""
    lines = []
    for problem in problems:
        lines.append(problem.line())
        if problem.moved_to is not None:
            lines.append("quarantined: %s -> %s" % (problem.path, problem.moved_to))
        elif problem.not_moved:
            lines.append("not quarantined: %s (%s)" % (problem.path, problem.not_moved))
    checked = "%d files" % count
    if uploads:
        checked += " and %d upload%s" % (uploads, "" if uploads == 1 else "s")
    if problems:
        lines.append("verified %s: %d problems" % (checked, len(problems)))
    else:
        lines.append("verified %s: the tree matches its manifest" % checked)
    return lines


def quarantine_folder(root: str, folder: str) -> str:
    """The --quarantine folder, refused inside the index (verify would find it, and so
    would a server)."""
    real_root, real = os.path.realpath(root), os.path.realpath(folder)
    if real == real_root or is_inside(real_root, real):
        raise UserError(
            "the quarantine folder %s is inside the index %s: choose a folder outside it"
            % (folder, root)
        )
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise UserError("the quarantine folder %s is not a folder: choose another" % folder)
    return os.path.abspath(folder)


def check_listed(root: str, path: str, entry: Entry, source: str = "manifest") -> Optional[Problem]:
    """The problem of one listed file, if any: a regular file of that size and sha256
    (as ``source`` gives them: the manifest, or an upload's record)."""
    parts = path.split("/")
    if len(parts) == 2 and not _is_real_folder(os.path.join(root, parts[0])):
        return Problem("missing", path)  # a symlinked project folder is reported as unlisted
    full = os.path.join(root, *parts)
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return Problem("missing", path)
    except OSError as error:
        return Problem("corrupt", path, "cannot read it: %s" % describe(error))
    if stat.S_ISLNK(st.st_mode):
        return Problem("corrupt", path, "a symbolic link, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        return Problem("corrupt", path, "not a regular file")
    if st.st_size != entry.size:
        return Problem("corrupt", path, "size %d, %s says %d" % (st.st_size, source, entry.size))
    try:
        digest = sha256_of_file(full)
    except OSError as error:
        return Problem("corrupt", path, "cannot read it: %s" % describe(error))
    if digest != entry.sha256:
        return Problem("corrupt", path, "sha256 differs from the %s" % source)
    return None


def _is_real_folder(path: str) -> bool:
    """A folder, not a symlink to one (which could lead anywhere)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def unlisted_entries(root: str, listed: Dict[str, Entry]) -> List[Problem]:
    """What the tree holds and the manifest does not account for."""
    return scan_unlisted(root, listed)[0]


def scan_unlisted(root: str, listed: Dict[str, Entry]) -> Tuple[List[Problem], int, "set[str]"]:
    """What the tree holds and the manifest does not account for; how many uploads are
    sound; the project folders that hold uploads.

    Hidden names (the mirrorer's caches, imports in progress) are skipped with
    all they hold, and so are the root's manifest.json and morgan.ini. Uploads are
    checked against their records (see check_uploads). Symlinks are reported, never
    followed.
    """
    problems = []
    uploads, uploaded = 0, set()
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as scan:
                entries = list(scan)
        except OSError as error:
            problems.append(Problem("unreadable", folder, describe(error)))
            continue
        accounted: "set[str]" = set()
        if folder and "/" not in folder:
            found, accounted, sound, holds = check_uploads(root, folder, entries, listed)
            problems.extend(found)
            uploads += sound
            if holds:
                uploaded.add(folder)
        for entry in entries:
            path = folder + "/" + entry.name if folder else entry.name
            if entry.name.startswith(".") or path in (MANIFEST_NAME, CONFIG_NAME):
                continue
            if path in listed or entry.name in accounted:
                continue  # checked already, whatever it is
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                    continue
            except OSError:
                pass
            problems.append(Problem("unlisted", path))
    return problems, uploads, uploaded


def check_uploads(
    root: str, folder: str, entries: List["os.DirEntry[str]"], listed: Dict[str, Entry]
) -> Tuple[List[Problem], "set[str]", int, bool]:
    """The uploads of a project folder: (problems, the names they account for, how many
    are sound, whether it holds any).

    An upload is a distribution with a ``.uploaded`` record; it is sound when it is a
    regular file of the record's size and sha256 (and its ``.hash``, if any, agrees).
    It, its sidecars and its folder's pages are never unlisted; a record without its
    file is.
    """
    names = {entry.name for entry in entries}
    problems: List[Problem] = []
    accounted: "set[str]" = set()
    sound, holds = 0, False
    for name in sorted(names):
        distribution = name[: -len(UPLOADED_SUFFIX)]
        if not name.endswith(UPLOADED_SUFFIX) or distribution not in names:
            continue
        if not is_distribution_name(distribution):
            continue
        path = folder + "/" + distribution
        full = os.path.join(root, folder, distribution)
        accounted.update(
            (name, distribution, distribution + HASH_SUFFIX, distribution + METADATA_SUFFIX)
        )
        holds = True
        record = read_upload_record(full)
        if record is None:
            problems.append(Problem("corrupt", path + UPLOADED_SUFFIX, "not a valid upload record"))
            continue
        if path in listed:
            continue  # the manifest's own check applies
        problem = check_listed(root, path, record, ".uploaded record")
        if problem is not None:
            problems.append(problem)
            continue
        sound += 1
        if distribution + HASH_SUFFIX in names and read_hash_sidecar(full) != record.sha256:
            problems.append(
                Problem("corrupt", path + HASH_SUFFIX, "not the sha256 of the .uploaded record")
            )
    if holds:
        accounted.update(PROJECT_PAGES)  # written by the uploads, if by nothing else
    return problems, accounted, sound, holds


def quarantine_problem(root: str, target: str, problem: Problem) -> Problem:
    """Move a corrupt or unlisted file into ``target``, at its path in the tree."""
    if problem.kind not in ("corrupt", "unlisted"):
        return problem
    parts = problem.path.split("/")
    destination = os.path.join(target, *parts)
    number = 0
    while os.path.lexists(destination):  # quarantined before: keep both
        number += 1
        destination = "%s.%d" % (os.path.join(target, *parts), number)
    try:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.move(os.path.join(root, *parts), destination)
    except (OSError, shutil.Error) as error:
        return problem._replace(not_moved=describe(error))
    return problem._replace(moved_to=destination)


# -- import -------------------------------------------------------------------


def import_bundle(bundle: PathArg, index: PathArg, force: bool = False) -> ImportResult:
    """Land a bundle (see the transfer spec) into the folder ``index``.

    The bundle is read whole and checked first, writing nothing; Refusal
    says why it may not land. Then it is read again into a hidden staging
    folder, and its files moved into place in an order that keeps every page
    and the manifest true to the files present. Interrupted if that stops
    midway: running the same import again finishes it.
    """
    path, root = os.fspath(bundle), os.fspath(index)
    if not os.path.isdir(root):
        raise UserError("index folder not found: %s (create it first)" % os.path.abspath(root))
    with import_lock(root) as locked:
        info, manifest = check_bundle(path, root, force)
        check_destinations(root, info)
        stale = remove_stale_staging(root) if locked else []
        landed = land_bundle(path, root, info, manifest)
        removed = sum(1 for removed_path in info.removed if remove_file(root, removed_path))
        relist_uploaded_projects(root)
    return ImportResult(landed, removed, stale)


def check_uploaded_projects(root: str, info: BundleInfo) -> None:
    """A bundle may not touch (land or remove files in) a project that holds uploads:
    they belong to their uploaders, and the bundle's pages would drop them."""
    touched = {name.split("/")[0] for name in list(info.members) + info.removed if "/" in name}
    for project in sorted(touched):
        folder = os.path.join(root, project)
        sidecar = folder_uploads(folder) if _is_real_folder(folder) else None
        if sidecar is not None:
            raise Refusal(
                "the bundle changes the project %s, which holds files uploaded here (%s/%s): "
                "list %s in [private] in morgan.ini where the bundle is made, then export "
                "again" % (project, project, sidecar, project)
            )


def relist_uploaded_projects(root: str) -> None:
    """After an import, put the projects that hold uploads back into the root's static
    pages, if the bundle's pages dropped them."""
    tree = Tree(root, metadata=True)
    try:
        for project in tree.projects():
            if folder_uploads(os.path.join(tree.root, project)) is not None:
                list_in_root_pages(tree, project)
    except OSError as error:
        log_line("server.py: the root pages could not list the uploaded projects: %s" % error)


def is_uploaded_file(path: str) -> bool:
    """Whether ``path`` is an upload, or one of its sidecars (never the mirror's to delete)."""
    for suffix in (UPLOADED_SUFFIX, HASH_SUFFIX, METADATA_SUFFIX):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return os.path.lexists(path + UPLOADED_SUFFIX)


@contextlib.contextmanager
def import_lock(root: str) -> Iterator[bool]:
    """One import at a time into a folder; whether it is locked (the system may not offer
    locks: then the staging folders of killed imports are left alone, as they may not be)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        yield False
        return
    descriptor = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise Refusal(
                "another import into %s is running (or a morgan run holds it, or an upload is "
                "landing): wait for it to end" % root
            ) from None
        except OSError:
            locked = False  # a file system without locks
        yield locked
    finally:
        os.close(descriptor)


def check_bundle(path: str, root: str, force: bool) -> Tuple[BundleInfo, Manifest]:
    """Read the whole bundle once, writing nothing: Refusal at the first thing wrong."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != BUNDLE_INFO_NAME:
                name = "nothing" if first is None else "member %s" % quoted(first.name)
                raise Refusal(
                    "%s is not a morgan bundle: it starts with %s, not %s"
                    % (path, name, BUNDLE_INFO_NAME)
                )
            check_member_kind(first)
            if first.size > MAX_MANIFEST_BYTES:
                raise Refusal("member %s is too large" % quoted(BUNDLE_INFO_NAME))
            info = parse_bundle_info(read_member(tar, first, keep=True)[1])
            check_base(root, info, force)
            manifest_data = check_members(tar, members, info)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise Refusal(
            "cannot read the bundle %s: %s (not an uncompressed tar, or a damaged one)"
            % (path, describe(error))
        ) from None
    try:
        manifest = parse_manifest(manifest_data)
    except ValueError as error:
        raise Refusal(
            "member %s is not a valid manifest: %s" % (quoted(MANIFEST_NAME), error)
        ) from None
    listed = manifest.entries()
    for name, entry in info.members.items():
        if name != MANIFEST_NAME and listed.get(name) != entry:
            raise Refusal(
                "member %s: the bundle's manifest.json does not list it with that sha256 and size"
                % quoted(name)
            )
    for name in info.removed:
        if name in listed:
            raise Refusal(
                "removed path %s: the bundle's manifest.json still lists it" % quoted(name)
            )
    check_removals(root, info)
    check_uploaded_projects(root, info)
    return info, manifest


def check_removals(root: str, info: BundleInfo) -> None:
    """Import deletes only what the index's own manifest lists (or what is gone already,
    as when an import that landed is run again)."""
    current = manifest_digest(root)
    listed = read_manifest(root).entries() if current not in (None, info.manifest) else {}
    for name in info.removed:
        if name in listed or not os.path.lexists(os.path.join(root, *name.split("/"))):
            continue
        raise Refusal(
            "removed path %s: the index's manifest.json does not list it, so it is not the "
            "bundle's to delete" % quoted(name)
        )


def check_members(
    tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo], info: BundleInfo
) -> bytes:
    """Check every member after the first against morgan-bundle.json; manifest.json's bytes."""
    seen = {BUNDLE_INFO_NAME}
    manifest_data = b""
    for member in members:
        name = member.name
        if name in seen:
            raise Refusal("member %s appears twice in the bundle" % quoted(name))
        check_member_kind(member)
        reason = member_path_problem(name)
        if reason is not None:
            raise Refusal("member %s: the path %s" % (quoted(name), reason))
        seen.add(name)
        expected = info.members.get(name)
        if expected is None:
            raise Refusal("member %s is not listed in %s" % (quoted(name), BUNDLE_INFO_NAME))
        if member.size != expected.size:
            raise Refusal(
                "member %s: size %d, %s says %d"
                % (quoted(name), member.size, BUNDLE_INFO_NAME, expected.size)
            )
        if name == MANIFEST_NAME and member.size > MAX_MANIFEST_BYTES:
            raise Refusal("member %s is too large" % quoted(name))
        digest, data = read_member(tar, member, keep=name == MANIFEST_NAME)
        if digest != expected.sha256:
            raise Refusal("member %s: sha256 differs from %s" % (quoted(name), BUNDLE_INFO_NAME))
        if name == MANIFEST_NAME:
            manifest_data = data
    for name in info.members:
        if name not in seen:
            raise Refusal(
                "member %s is listed in %s but absent from the bundle"
                % (quoted(name), BUNDLE_INFO_NAME)
            )
    return manifest_data


#: The files a bundle may hold (or remove) at the root of the tree; anything else there
#: (the config, a password file, a certificate) is not the mirror's to change.
_ROOT_FILES = re.compile(
    r"index\.html|index\.json|server\.py|manifest\.json|pylock\.[A-Za-z0-9_-]+\.toml"
)


def member_path_problem(name: str) -> Optional[str]:
    """Why a bundle may not hold (or remove) a file at ``name``, or None."""
    reason = path_problem(name)
    if reason is not None:
        return reason
    parts = name.split("/")
    if len(parts) == 1 and not _ROOT_FILES.fullmatch(name):
        return "is not a file of the tree (at its root only pages, lock files and server.py are)"
    # one file on case-insensitive systems: it would land after the page and replace it
    if len(parts) == 2 and parts[1] not in PROJECT_PAGES and parts[1].casefold() in PROJECT_PAGES:
        return "differs from a page's name only in case"
    return None


def check_member_kind(member: tarfile.TarInfo) -> None:
    """Refuse anything but a regular file: links and devices could write or read elsewhere."""
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        return
    if member.issym():
        kind = "a symbolic link"
    elif member.islnk():
        kind = "a hard link"
    elif member.isdir():
        kind = "a folder"
    elif member.isfifo():
        kind = "a FIFO"
    elif member.isdev():
        kind = "a device"
    else:
        kind = "of tar type %r" % member.type
    raise Refusal("member %s is %s, not a regular file" % (quoted(member.name), kind))


def read_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, keep: bool, sink: Optional[BinaryIO] = None
) -> Tuple[str, bytes]:
    """(sha256, bytes if ``keep``) of a member, read a chunk at a time (into ``sink``)."""
    stream = tar.extractfile(member)
    if stream is None:
        raise tarfile.ReadError("member %s has no data" % quoted(member.name))
    digest, kept, size = hashlib.sha256(), [], 0
    with stream:
        while True:
            try:
                chunk = stream.read(CHUNK_BYTES)
            except (tarfile.ReadError, EOFError):
                break  # the tar ends inside this member
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            if keep:
                kept.append(chunk)
            if sink is not None:
                sink.write(chunk)
    if size != member.size:
        raise Refusal(
            "member %s is cut short (%d of its %d bytes): the bundle is truncated or damaged"
            % (quoted(member.name), size, member.size)
        )
    return digest.hexdigest(), b"".join(kept)


def parse_bundle_info(data: bytes) -> BundleInfo:
    """morgan-bundle.json, checked whole; Refusal saying what is wrong with it."""
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as error:
        raise Refusal("%s is not valid JSON (%s)" % (BUNDLE_INFO_NAME, error)) from None
    if not isinstance(document, dict):
        raise Refusal("%s is not a JSON object" % BUNDLE_INFO_NAME)
    version = document.get("bundle-version")
    if not _is_int(version) or version != 1:
        raise Refusal(
            "%s: bundle-version %s is not supported (this server.py reads 1)"
            % (BUNDLE_INFO_NAME, json.dumps(version))
        )
    base, manifest = document.get("base"), document.get("manifest")
    if base is not None and not (isinstance(base, str) and _SHA256_HEX.match(base)):
        raise Refusal('%s: "base" is neither null nor a sha256' % BUNDLE_INFO_NAME)
    if not isinstance(manifest, str) or not _SHA256_HEX.match(manifest):
        raise Refusal('%s: "manifest" is not a sha256' % BUNDLE_INFO_NAME)
    members = _bundle_members(document.get("members"))
    if members.get(MANIFEST_NAME, Entry("", 0)).sha256 != manifest:
        raise Refusal(
            '%s: "manifest" is not the sha256 of a manifest.json member' % BUNDLE_INFO_NAME
        )
    removed = document.get("removed", [])
    if not isinstance(removed, list) or not all(isinstance(name, str) for name in removed):
        raise Refusal('%s: "removed" is not a list of paths' % BUNDLE_INFO_NAME)
    for name in removed:
        reason = member_path_problem(name)
        if reason is None and name == MANIFEST_NAME:
            reason = "is never removed"
        if reason is None and name in members:
            reason = "is also a member"
        if reason is not None:
            raise Refusal("removed path %s: the path %s" % (quoted(name), reason))
    return BundleInfo(base, manifest, members, sorted(set(removed)))


def _bundle_members(items: Any) -> Dict[str, Entry]:
    if not isinstance(items, list):
        raise Refusal('%s: "members" is not a list' % BUNDLE_INFO_NAME)
    members: Dict[str, Entry] = {}
    for item in items:
        name = item.get("path") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise Refusal('%s: a member has no "path"' % BUNDLE_INFO_NAME)
        reason = member_path_problem(name)
        if reason is not None:
            raise Refusal("member %s: the path %s" % (quoted(name), reason))
        if name in members:
            raise Refusal("member %s is listed twice in %s" % (quoted(name), BUNDLE_INFO_NAME))
        entry = entry_of(item)
        if entry is None:
            raise Refusal(
                'member %s: %s gives no valid "sha256" and "size"'
                % (quoted(name), BUNDLE_INFO_NAME)
            )
        members[name] = entry
    return members


def manifest_digest(root: str) -> Optional[str]:
    """The sha256 of INDEX/manifest.json's bytes, None when there is none."""
    path = os.path.join(root, MANIFEST_NAME)
    try:
        return hashlib.sha256(read_limited(path, MAX_MANIFEST_BYTES)).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Refusal("cannot read %s: %s" % (path, describe(error))) from None


def check_base(root: str, info: BundleInfo, force: bool) -> None:
    """A bundle applies to the tree it was made against (or re-runs one that landed)."""
    current = manifest_digest(root)
    if force or current in (info.base, info.manifest):
        return
    path = os.path.join(root, MANIFEST_NAME)
    if info.base is None:
        raise Refusal(
            "this is a full bundle, for a folder without manifest.json, and %s exists: "
            "import it into an empty folder, or use --force" % path
        )
    if current is None:
        raise Refusal(
            "this bundle updates the tree whose manifest.json has sha256 %s, and %s does not "
            "exist: import the bundles before it first, or use --force" % (info.base, path)
        )
    raise Refusal(
        "this bundle updates the tree whose manifest.json has sha256 %s, and %s has sha256 %s: "
        "import the bundles in order, or use --force" % (info.base, path, current)
    )


def check_destinations(root: str, info: BundleInfo) -> None:
    """Refuse what would land through a symlinked or misplaced folder, or onto a folder."""
    folders = {name.split("/")[0] for name in info.members if "/" in name}
    for name in list(info.members) + info.removed:
        parts = name.split("/")
        if len(parts) == 1 and name in folders:
            raise Refusal("member %s is both a file and a project folder" % quoted(name))
        if len(parts) == 2:
            folder = os.path.join(root, parts[0])
            if os.path.lexists(folder) and not _is_real_folder(folder):
                raise Refusal(
                    "%s is not a folder (a file or a symbolic link): move it out of the "
                    "index, then import again" % folder
                )
        if _is_real_folder(os.path.join(root, *parts)):
            raise Refusal(
                "%s is a folder: move it out of the index, then import again"
                % os.path.join(root, *parts)
            )


def remove_stale_staging(root: str) -> List[str]:
    """Remove the staging folders of imports that were killed (one import runs at a time)."""
    stale = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                stale.append(entry.name)
    return sorted(stale)


def landing_rank(name: str, manifest: Manifest) -> int:
    """Distributions land first, then sidecars, pages, root files, manifest.json last:
    so whatever a page or the manifest names is already in place."""
    if name == MANIFEST_NAME:
        return 4
    if "/" not in name:
        return 3
    if name in manifest.files:
        return 0
    return 2 if name.split("/")[1] in PROJECT_PAGES else 1


def land_bundle(path: str, root: str, info: BundleInfo, manifest: Manifest) -> int:
    """Extract into a hidden staging folder, then move each file into place with
    os.replace (a server never sees a partial file); how many landed."""
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root)
    except OSError as error:
        raise Interrupted(
            "cannot stage the bundle in %s: %s; nothing landed" % (root, describe(error))
        ) from None
    try:
        staged = stage_members(path, staging, info)
        order = sorted(staged, key=lambda name: (landing_rank(name, manifest), name))
        for count, name in enumerate(order):
            target = os.path.join(root, *name.split("/"))
            try:
                if "/" in name:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                if name == MANIFEST_NAME:  # what it names must be on disk before it is
                    sync_folders(root, order)
                os.replace(staged[name], target)
            except OSError as error:
                raise Interrupted(
                    "%s: %s, after %d of %d files landed; run the same import again to finish it"
                    % (target, describe(error), count, len(order))
                ) from None
        return len(order)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sync_folders(root: str, names: List[str]) -> None:
    """fsync the folders files were renamed into, so a crash cannot lose a rename that
    the manifest landing after it counts on (where folders can be opened: POSIX)."""
    folders = {root} | {os.path.join(root, name.split("/")[0]) for name in names if "/" in name}
    for folder in sorted(folders):
        try:
            descriptor = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(descriptor)
        except OSError:
            pass
        finally:
            os.close(descriptor)


def stage_members(path: str, staging: str, info: BundleInfo) -> Dict[str, str]:
    """Each member (but morgan-bundle.json) written to the staging folder, hashed again
    as written, with the tar's mtime; {member name: staged path}."""
    staged = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for number, member in enumerate(tar):
                if number == 0:
                    continue
                target = os.path.join(staging, "%08d" % number)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                with os.fdopen(os.open(target, flags, 0o644), "wb") as sink:
                    digest, _ = read_member(tar, member, keep=False, sink=sink)
                    sink.flush()
                    os.fsync(sink.fileno())
                if info.members.get(member.name) != Entry(digest, member.size):
                    raise tarfile.ReadError("member %s changed" % quoted(member.name))
                os.utime(target, (member.mtime, member.mtime))
                staged[member.name] = target
    except (tarfile.TarError, EOFError) as error:
        raise Refusal(
            "the bundle %s changed since it was checked (%s); nothing landed"
            % (path, describe(error))
        ) from None
    except OSError as error:
        raise Interrupted(
            "cannot stage the bundle in %s: %s; nothing landed, run the same import again"
            % (staging, describe(error))
        ) from None
    if set(staged) != set(info.members):
        raise Refusal("the bundle %s changed since it was checked; nothing landed" % path)
    return staged


def remove_file(root: str, name: str) -> bool:
    """Delete a file the new manifest no longer lists (and its project folder once empty)."""
    parts = name.split("/")
    folder = os.path.join(root, parts[0])
    if len(parts) == 2 and not _is_real_folder(folder):
        return False
    target = os.path.join(root, *parts)
    if is_uploaded_file(target):
        return False
    try:
        if _is_real_folder(target):
            return False
        os.unlink(target)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise Interrupted(
            "cannot remove %s: %s; the new files landed, run the same import again to finish"
            % (target, describe(error))
        ) from None
    if len(parts) == 2:
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only succeeds when nothing is left in it
    return True


def run_verify(argv: List[str]) -> int:
    options = build_verify_parser().parse_args(argv)
    verified = verify_index(options.index_path, options.quarantine)
    for line in verify_lines(*verified):
        emit(line)
    return 1 if verified.problems else 0


def run_import(argv: List[str]) -> int:
    options = build_import_parser().parse_args(argv)
    result = import_bundle(options.bundle, options.index_path, options.force)
    for name in result.stale:
        emit("removed %s, left by an interrupted import" % name)
    emit(
        "imported %d files into %s, removed %d"
        % (result.landed, os.path.abspath(options.index_path), result.removed)
    )
    verified = verify_index(options.index_path)
    for line in verify_lines(*verified):
        emit(line)
    return 1 if verified.problems else 0


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def display_url(host: str, port: int, tls: bool) -> str:
    """A URL that clients can use: the machine's name when listening on every address."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - recognising the wildcard, not binding
        host = socket.gethostname() or "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d/simple/" % ("https" if tls else "http", host, port)


def make_server(options: argparse.Namespace) -> Server:
    """Check the options and listen; UserError for anything the user can fix."""
    index = os.path.abspath(options.index_path)
    if not os.path.isdir(index):
        raise UserError("index folder not found: %s" % index)
    if not 0 <= options.port <= 65535:
        raise UserError("port must be between 0 and 65535: %d" % options.port)
    if options.timeout <= 0:
        raise UserError("timeout must be positive")
    if options.threads < 1 or options.max_connections < 1:
        raise UserError("--threads and --max-connections must be at least 1")
    if options.keyfile and not options.certfile:
        raise UserError("--keyfile needs --certfile")
    uploads = None
    if options.max_upload_size is not None and not options.upload:
        raise UserError("--max-upload-size needs --upload")
    if options.upload:
        if not options.auth_file:
            raise UserError("--upload needs --auth-file: uploads are taken from its users only")
        if not os.access(index, os.W_OK):
            raise UserError("--upload needs an index folder it can write to: %s" % index)
        max_size = options.max_upload_size or DEFAULT_MAX_UPLOAD_BYTES
        uploads = Uploads(max_size, slots=max(1, options.threads // 2))
    authenticator = None
    if options.auth_file:  # password checks may hold at most half of the threads
        pending = max(1, min(MAX_PENDING_PASSWORD_CHECKS, options.threads // 2))
        authenticator = Authenticator(options.auth_file, pending)
    context = make_ssl_context(options.certfile, options.keyfile) if options.certfile else None
    settings = Settings(
        tree=Tree(index, metadata=not options.no_metadata),
        authenticator=authenticator,
        quiet=options.quiet,
        timeout=options.timeout,
        public_manifest=options.public_manifest,
        uploads=uploads,
    )
    try:
        info = socket.getaddrinfo(
            options.host or None, options.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        family, _, _, _, address = info[0]
        return Server(
            (str(address[0]), int(address[1])),
            family,
            settings,
            context,
            threads=options.threads,
            max_connections=fit_connections(options.max_connections, options.threads),
        )
    except OSError as error:
        raise UserError(
            "cannot listen on %s port %d: %s" % (options.host, options.port, describe(error))
        ) from None


def run_hash_password(argv: List[str]) -> int:
    options = build_hash_parser().parse_args(argv)
    if ":" in options.user or not options.user.strip() or options.user != options.user.strip():
        raise UserError("a user name cannot contain ':' or surrounding spaces")
    if options.iterations < 1:
        raise UserError("iterations must be positive")
    if sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass("Password for %s: " % options.user)
        if getpass.getpass("Again: ") != password:
            raise UserError("the passwords differ")
    else:
        password = (sys.stdin.readline() if sys.stdin else "").rstrip("\r\n")
    if not password:
        raise UserError("empty password")
    print("%s:%s" % (options.user, hash_password(password, options.iterations)), flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the server (or a command); the exit status is returned, not raised."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["hash-password"]:
            return run_hash_password(arguments[1:])
        if arguments[:1] == ["verify"]:
            return run_verify(arguments[1:])
        if arguments[:1] == ["import"]:
            return run_import(arguments[1:])
        options = build_parser().parse_args(arguments)
        server = make_server(options)
    except UserError as error:
        log_line("server.py: %s: %s" % (error.label, error))
        return error.status
    except KeyboardInterrupt:
        log_line("server.py: interrupted")
        return 130
    except SystemExit as exit_:  # argparse: --help, or a usage error already printed
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    with server:
        port = int(server.server_address[1])
        url = display_url(options.host, port, options.certfile is not None)
        print(
            "Serving %s at %s  (pip install --index-url %s ...)"
            % (server.settings.tree.root, url, url),
            flush=True,
        )
        uploads = server.settings.uploads
        if uploads is not None:
            print(
                "Taking uploads of up to %d bytes at %s  (twine upload --repository-url %s ...)"
                % (uploads.max_size, url[: -len("simple/")], url[: -len("simple/")]),
                flush=True,
            )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
