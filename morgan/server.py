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
``morgan.ini`` (it may hold credentials), ``server.py``, the raw ``index.html``
and ``index.json`` files (their content is public through the pages), the
``.hash`` sidecars (their content is public in the pages), ``.part`` downloads
in progress, dotfiles and hidden folders, folders that are not normalized
project names or hold no distribution, any path that does not decode to plain
names (``..``, encoded slashes, backslashes, NUL and other control characters,
empty segments), and any file or folder whose real path, symlinks followed,
lies outside the index folder.

Options: TLS (``--certfile``, ``--keyfile``) and HTTP basic auth
(``--auth-file``; make its lines with ``python3 server.py hash-password USER``).
"""

import argparse
import base64
import binascii
import collections
import contextlib
import datetime
import email.utils
import getpass
import hashlib
import hmac
import html
import http.server
import json
import os
import re
import secrets
import socket
import socketserver
import ssl
import stat
import sys
import threading
import time
import traceback
import urllib.parse
import zipfile
import zlib
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a mirror is meant to be reached from the network
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60.0
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
CHUNK_BYTES = 256 * 1024

FILE_CACHE_CONTROL = "max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "max-age=60"

PASSWORD_SCHEME = "pbkdf2_sha256"  # noqa: S105 - a scheme name, not a password
DEFAULT_ITERATIONS = 600000

_NORMALIZED_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


class UserError(Exception):
    """A problem the user can fix; reported as one line, without a traceback."""


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line, compatible with Morgan's ``server.py``."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="Serve a Morgan mirror as a simple repository (PEP 503 and PEP 691).",
        epilog="Make lines of an auth file with: server.py hash-password USER",
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
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds before an idle or stalled connection is closed (default: 60)",
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
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
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


def read_wheel_metadata(path: str) -> Optional[bytes]:
    """A wheel's own ``.dist-info/METADATA``, read with a bound; None if unreadable.

    The dist-info folder is the one at the top of the archive; when a wheel
    has several, the one named after the wheel's name and version wins.
    """
    stem = os.path.basename(path)[: -len(WHEEL_SUFFIX)]
    parts = stem.split("-")
    expected = ("%s-%s.dist-info/METADATA" % tuple(parts[:2])).lower() if len(parts) >= 2 else ""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            if len(candidates) > 1:
                candidates = [c for c in candidates if c.filename.lower() == expected]
            if len(candidates) != 1 or candidates[0].file_size > MAX_METADATA_BYTES:
                return None
            with archive.open(candidates[0]) as member:
                data = member.read(MAX_METADATA_BYTES + 1)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, ValueError):
        return None  # not a zip, damaged, encrypted, or an unknown compression
    except (NotImplementedError, KeyError):
        return None
    if len(data) > MAX_METADATA_BYTES:
        return None
    return data


def read_hash_sidecar(path: str) -> Optional[str]:
    """The sha256 in a Morgan ``<file>.hash`` sidecar ("sha256=<hex>"), if it holds one."""
    try:
        with open(path + HASH_SUFFIX, "rb") as stream:
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
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            break
    else:
        return None
    # An sdist's name part may hold dashes itself: split where the left side is the project.
    position = stem.find("-")
    while position > 0:
        if normalize(stem[:position]) == project:
            return stem[position + 1 :] or None
        position = stem.find("-", position + 1)
    _, sep, version = stem.rpartition("-")
    return version if sep and version else None


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
        key = stat_key(path, st)
        digest = self._digests.get(key)
        if digest is None:
            digest = sha256_of_file(path)
            self._digests.put(key, digest)
        return str(digest)

    def listed_facts(self, folder: str) -> Dict[str, ListedFacts]:
        """The files of the project's index.json by name (empty when absent or unreadable)."""
        checked = self.servable(folder, PAGE_JSON)
        if checked is None or checked[1].st_size > MAX_PAGE_JSON_BYTES:
            return {}
        key = stat_key(*checked)
        facts = self._listed.get(key)
        if facts is None:
            facts = {}
            try:
                with open(checked[0], "rb") as stream:
                    document = json.loads(stream.read().decode("utf-8"))
                files = document.get("files") if isinstance(document, dict) else None
            except (OSError, ValueError):
                files = None
            for item in files if isinstance(files, list) else []:
                entry = self._listed_entry(item)
                if entry is not None:
                    facts[item["filename"]] = entry
            self._listed.put(key, facts)
        return dict(facts)

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
        cached = self._metadata.get(key)
        if cached is not None:
            return cached if isinstance(cached, MetadataFacts) else None
        facts: Optional[MetadataFacts] = None
        if sidecar is not None:
            try:
                with open(sidecar[0], "rb") as stream:
                    head = stream.read(MAX_HEADER_SCAN_BYTES)
                facts = MetadataFacts(sha256_of_file(sidecar[0]), requires_python_of(head))
            except OSError:
                facts = None
        else:
            data = read_wheel_metadata(wheel)
            if data is not None:
                facts = MetadataFacts(hashlib.sha256(data).hexdigest(), requires_python_of(data))
        self._metadata.put(key, facts if facts is not None else False)
        return facts

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
        data = read_wheel_metadata(wheel[0])
        if data is None:
            return None
        etag = '"m%s"' % hashlib.sha256(data).hexdigest()[:32]
        return Resource(None, data, len(data), wheel[1].st_mtime, etag, content_type)


def open_regular_file(path: str) -> Optional[Any]:
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


class Authenticator:
    """HTTP basic auth against an auth file, re-read when it changes.

    Checking a password costs a PBKDF2 run, so accepted credentials are
    remembered (as a keyed digest, never in clear) and checks run one at a
    time, which bounds what guessing can cost the server.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._users = load_auth_file(path)
        self._signature = self._file_signature()
        self._accepted = LRUCache(1024)
        self._key = secrets.token_bytes(32)
        self._check_lock = threading.Lock()
        self._dummy = parse_password_hash(hash_password(secrets.token_hex(8), DEFAULT_ITERATIONS))

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
        self._signature = signature
        try:
            self._users = load_auth_file(self.path)
        except UserError as error:
            log_line("keeping the previous users: %s" % error)
            return
        self._accepted = LRUCache(1024)

    def user(self, header: Optional[str]) -> Optional[str]:
        """The user that an Authorization header proves, or None."""
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
        with self._check_lock:
            self._reload_if_changed()
            token = hmac.new(self._key, decoded, hashlib.sha256).digest()
            if self._accepted.get(token) == user:
                return user
            stored = self._users.get(user)
            ok = verify_password(password, stored if stored is not None else self._dummy)
            if ok and stored is not None:
                self._accepted.put(token, user)
                return user
        return None


def make_ssl_context(certfile: str, keyfile: Optional[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise UserError("cannot use certificate %s: %s" % (certfile, describe(error))) from None
    return context


# ---------------------------------------------------------------------------
# HTTP handling
# ---------------------------------------------------------------------------


class Settings(NamedTuple):
    tree: Tree
    authenticator: Optional[Authenticator]
    quiet: bool
    timeout: float


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
    """One connection: requests read one after another (HTTP/1.1 keep-alive)."""

    server_version = "morgan-server"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    server: "Server"

    # -- connection and request line -----------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.request.settimeout(self.server.settings.timeout)  # idle and slow clients
        super().setup()

    def handle_one_request(self) -> None:
        """Read and answer one request; a silent close on timeouts and hang-ups."""
        self.user: Optional[str] = None
        self.headers_sent = False
        self.response_size: Union[int, str] = "-"
        self.command = ""
        self.requestline = ""
        self.request_version = "HTTP/1.1"
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.route()
            self.wfile.flush()
        except (socket.timeout, ConnectionError, ssl.SSLError):
            self.close_connection = True

    def parse_request(self) -> bool:
        """The standard parsing, plus the checks RFC 9112 asks of a server."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        headers = self.headers
        if headers.defects or any("\n" in value for value in headers.values()):
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
            except (socket.timeout, ConnectionError, ssl.SSLError):
                raise
            except Exception:
                log_line("error answering %r:\n%s" % (self.requestline, traceback.format_exc()))
                if self.headers_sent:
                    self.close_connection = True
                else:
                    self.send_plain(500, "Internal Server Error")
        elif self.command in _STANDARD_METHODS:
            self.send_plain(405, "Method Not Allowed", [("Allow", "GET, HEAD")], close=True)
        else:
            self.send_plain(501, "Not Implemented", [("Allow", "GET, HEAD")], close=True)

    # -- responses -----------------------------------------------------------

    headers_sent = False

    def start(self, status: int, headers: List[Tuple[str, str]], length: Optional[int]) -> None:
        """Send a status line and headers (the access log line is written here)."""
        self.response_size = length if length is not None else "-"
        self.send_response(status)
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
        if self.server.settings.quiet:
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

    def answer(self, head: bool) -> None:
        """Route a GET or HEAD request; see the module docstring for what is public."""
        settings = self.server.settings
        if settings.authenticator is not None:
            self.user = settings.authenticator.user(self.headers.get("Authorization"))
            if self.user is None:
                self.send_plain(
                    401,
                    "Unauthorized",
                    [("WWW-Authenticate", 'Basic realm="morgan", charset="UTF-8"')],
                )
                return
        target = self.path
        if not target.startswith("/") and re.match(r"https?://", target, re.IGNORECASE):
            parts = urllib.parse.urlsplit(target)  # absolute form (RFC 9112, 3.2.2)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
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

    def not_found(self) -> None:
        self.send_plain(404, "Not Found")

    def redirect(self, location: str, query: str) -> None:
        if query:
            location += "?" + query
        self.send_plain(301, "Moved Permanently", [("Location", location)])

    def cache_control(self, value: str) -> str:
        visibility = "private" if self.server.settings.authenticator else "public"
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
        with stream:
            # Describe what was opened, not what was looked at before.
            st = os.fstat(stream.fileno())
            opened = resource._replace(size=st.st_size, mtime=st.st_mtime, etag=file_etag(st))
            self.send_representation(opened, stream, head)

    def send_representation(self, resource: Resource, stream: Any, head: bool) -> None:
        headers = [
            ("ETag", resource.etag),
            ("Cache-Control", self.cache_control(FILE_CACHE_CONTROL)),
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
            self.copy(stream, first, length)

    def copy(self, stream: Any, offset: int, count: int) -> None:
        """Send part of a file in chunks (the kernel's sendfile where it can)."""
        self.wfile.flush()
        sent = self.connection.sendfile(stream, offset, count)
        if sent != count:
            self.close_connection = True  # the file shrank: the promised length is a lie


# ---------------------------------------------------------------------------
# Server and main
# ---------------------------------------------------------------------------


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A thread per connection; TLS handshakes happen in that thread, not in accept()."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: Tuple[str, int],
        family: int,
        settings: Settings,
        ssl_context: Optional[ssl.SSLContext],
    ) -> None:
        self.address_family = family
        self.settings = settings
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host up in DNS (getfqdn), which can
        # hang in a closed network; the name is not needed.
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError, AttributeError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.settings.timeout)
        try:
            secure = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as error:
            log_line("%s - TLS handshake failed: %s" % (client_address[0], describe(error)))
            return
        try:
            Handler(secure, client_address, self)
        finally:
            self.shutdown_request(secure)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (socket.timeout, ConnectionError, ssl.SSLError)):
            return
        log_line("%s - error: %s" % (client_address[0], traceback.format_exc()))


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
    if options.keyfile and not options.certfile:
        raise UserError("--keyfile needs --certfile")
    authenticator = Authenticator(options.auth_file) if options.auth_file else None
    context = make_ssl_context(options.certfile, options.keyfile) if options.certfile else None
    settings = Settings(
        tree=Tree(index, metadata=not options.no_metadata),
        authenticator=authenticator,
        quiet=options.quiet,
        timeout=options.timeout,
    )
    try:
        info = socket.getaddrinfo(
            options.host or None, options.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        family, _, _, _, address = info[0]
        return Server((str(address[0]), int(address[1])), family, settings, context)
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
    """Run the server (or ``hash-password``); the exit status is returned, not raised."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["hash-password"]:
            return run_hash_password(arguments[1:])
        options = build_parser().parse_args(arguments)
        server = make_server(options)
    except UserError as error:
        log_line("server.py: error: %s" % error)
        return 2
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
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
