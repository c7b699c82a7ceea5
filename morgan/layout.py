"""The mirror's directory tree, which is the contract between mirrorer and server.

::

    INDEX/
      index.html, index.json          the project list (PEP 503 HTML, PEP 691 JSON)
      pylock.<env>.toml               an environment's joint resolution (PEP 751; see
                                      morgan.lockfiles); not a project, never listed
      server.py                       the copied server (not a project)
      manifest.json                   every file served, its digest and why it is there
                                      (see morgan.manifest); written last, never listed
      morgan.ini                      the configuration (never served)
      <project>/                      PEP 503-normalized name
        <file>                        a wheel or sdist; mtime = upstream upload time
        <file>.hash                   "sha256=<hex>" (Morgan's sidecar)
        <file>.metadata               the wheel's own METADATA bytes (PEP 658)
        <file>.uploaded               marks an upload to ``server.py --upload`` (JSON: who,
                                      when, sha256, size); never served, and the file is
                                      never replaced or removed by mirror, prune or import
        index.html                    the project page with relative links
        index.json                    its PEP 691 twin; also the store of the facts the
                                      index gave (requires-python, yanked, upload-time)
        .morgan-state.json            the mirrorer's cache (see morgan.state); never served
        .<file>.part                  a download in progress, resumed by the next run
        .<name>.<random>.part         a page or sidecar being written
      .morgan.lock                    held by a running ``morgan mirror`` (see morgan.lock)
      .morgan-import-<random>/        a bundle being landed by ``server.py import``

Hidden (dot) files are never listed or served. Pages are written only when their
content changes, and always atomically.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import json
import logging
import os
import re
import stat
import tempfile
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from morgan.errors import UnsafeNameError
from morgan.metadata import parse_core_metadata
from morgan.models import PREFERRED_HASH, DistributionFile

log = logging.getLogger(__name__)

HASH_SUFFIX = ".hash"
METADATA_SUFFIX = ".metadata"
PART_SUFFIX = ".part"
UPLOADED_SUFFIX = ".uploaded"
#: The ending of an upload ``server.py`` is receiving (hidden; see its UPLOADING_SUFFIX).
UPLOADING_SUFFIX = ".uploading"
PAGE_HTML = "index.html"
PAGE_JSON = "index.json"
API_VERSION = "1.1"
#: File endings of distributions the tree lists (wheels, and sdists of any compression).
DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")
#: Characters that are never part of a file name in the tree: path separators, the
#: drive/stream separator ``:`` and control characters.
_PATH_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:]")
#: Characters Windows forbids in names, so a mirror stays copyable to any system.
_WINDOWS_CHARACTERS = re.compile(r'[<>"|?*]')
#: Names Windows reserves for devices, with or without an extension.
_WINDOWS_DEVICES = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)", re.I)
#: The longest file name accepted, in UTF-8 bytes (most file systems allow 255).
MAX_FILENAME_BYTES = 200


def path_hazard(name: str) -> str | None:
    """Why ``name`` could reach outside its folder or address a path, or None if it cannot.

    The name is judged as given and in its NFKC form (the fullwidth solidus U+FF0F becomes
    ``/`` there), so a name that only turns into a path after normalization is
    refused too.
    """
    # (an ASCII name is its own NFKC form: pages list thousands, so that is not computed)
    forms = (name,) if name.isascii() else (name, unicodedata.normalize("NFKC", name))
    for form in dict.fromkeys(forms):
        if _PATH_CHARACTERS.search(form):
            return "contains a path separator, ':' or a control character"
        if form.strip(" .") == "":
            return "is empty, or only dots and spaces"
    return None


def project_dir(index: Path, project: str) -> Path:
    """The folder of a project, refusing any name that is not a normalized project name."""
    if (
        not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", project)
        or canonicalize_name(project) != project
    ):
        raise UnsafeNameError(project, "not a normalized project name")
    return index / project


def check_filename(filename: str) -> str:
    """The filename, if it can safely be a file in a project folder; else UnsafeNameError.

    Beyond :func:`path_hazard`, a name must not hide or replace a file of the tree
    (compared case-insensitively, as on macOS and Windows), and must be a name
    every common file system can hold.
    """
    try:
        size = len(filename.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeNameError(filename, "is not valid Unicode") from None
    hazard = path_hazard(filename)
    if hazard is not None:
        raise UnsafeNameError(filename, hazard)
    folded = unicodedata.normalize("NFKC", filename).casefold()
    if folded.startswith(".") or folded in (PAGE_HTML, PAGE_JSON):
        raise UnsafeNameError(filename, "would hide or replace a file of the tree")
    if folded.endswith((HASH_SUFFIX, METADATA_SUFFIX, PART_SUFFIX)):
        raise UnsafeNameError(filename, "ends like a sidecar file")
    if size > MAX_FILENAME_BYTES:
        raise UnsafeNameError(filename, f"is longer than {MAX_FILENAME_BYTES} bytes")
    if _WINDOWS_CHARACTERS.search(filename) or filename.endswith((" ", ".")):
        raise UnsafeNameError(filename, "is not a valid file name on Windows")
    if _WINDOWS_DEVICES.fullmatch(filename.split(".", 1)[0].rstrip(" ")):
        raise UnsafeNameError(filename, "is a device name on Windows")
    return filename


def is_distribution(filename: str) -> bool:
    return filename.endswith(DISTRIBUTION_SUFFIXES) and not filename.startswith(".")


def is_upload(path: Path) -> bool:
    """Whether a distribution of the tree was uploaded here (it has an ``.uploaded``
    sidecar): such a file belongs to whoever uploaded it, never to the mirrorer."""
    return os.path.lexists(f"{path}{UPLOADED_SUFFIX}")


def upload_record(path: Path) -> dict[str, Any]:
    """What the ``.uploaded`` sidecar of a distribution says ({} if unreadable)."""
    try:
        record = json.loads(Path(f"{path}{UPLOADED_SUFFIX}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def uploaded_projects(index: Path) -> set[str]:
    """The project folders of the tree that hold at least one upload."""
    found: set[str] = set()
    try:
        with os.scandir(index) as folders:
            candidates = [f.name for f in folders if f.is_dir() and not f.name.startswith(".")]
    except OSError:
        return found
    for name in candidates:  # one listing per folder: this runs at the start of every mirror
        try:
            project_dir(index, name)
            with os.scandir(index / name) as entries:
                if any(entry.name.endswith(UPLOADED_SUFFIX) for entry in entries):
                    found.add(name)
        except (OSError, UnsafeNameError):
            continue
    return found


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> bool:
    """Replace ``path`` with ``data`` in one step; False (and no write) if unchanged.

    Not ``durable``: for caches that are checked when read back (a crash may lose
    them or leave them unreadable, then they are made again), the sync is skipped.
    """
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    with replacing(path, durable=durable) as stream:
        stream.write(data)
    return True


@contextlib.contextmanager
def replacing(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A stream whose bytes replace ``path`` in one step when the block ends (synced to
    disk first, if ``durable``); if the block fails, ``path`` is left as it was and
    nothing remains."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


#: No digest's sidecar is longer (``sha512=`` and 128 hex digits, a line break).
_HASH_SIDECAR_MAX = 512


def read_hash_sidecar(path: Path) -> tuple[str, str] | None:
    """(algorithm, hex digest) from ``<file>.hash``, or None if absent or malformed."""
    try:
        # A few bytes, read thousands of times a run: os.read skips the file object's
        # own system calls (fstat, isatty, seek).
        fd = os.open(f"{path}{HASH_SUFFIX}", os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            data = os.read(fd, _HASH_SIDECAR_MAX + 1)
        finally:
            os.close(fd)
        text = data.decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if len(data) > _HASH_SIDECAR_MAX:
        return None
    algorithm, sep, digest = text.partition("=")
    if not sep or not re.fullmatch(r"[0-9a-f]+", digest.lower()):
        return None
    return algorithm.lower(), digest.lower()


def write_hash_sidecar(path: Path, sha256: str) -> None:
    atomic_write(Path(str(path) + HASH_SUFFIX), f"{PREFERRED_HASH}={sha256}".encode("ascii"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def regular_file_digest(path: Path) -> tuple[str, int] | None:
    """The sha256 and size of the regular file at ``path``; None if there is none there
    (nothing, a folder, a link, a pipe, a device). A regular file that cannot be read
    raises: the manifest must not leave out what is there.

    The manifest asks this of a tree's thousands of small files: an lstat, an open, an
    fstat and the reads, where pathlib's checks and file object cost twice as many calls.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None  # never opened: a device may act on an open
    except FileNotFoundError:
        return None
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)  # swapped for a pipe meanwhile: no waiting
        | getattr(os, "O_NOCTTY", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None  # removed meanwhile
    except OSError as error:
        if error.errno == errno.ELOOP:  # swapped for a link meanwhile
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        size = 0
        while chunk := os.read(fd, 1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return digest.hexdigest(), size
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FileEntry:
    """One distribution file of a project page, with what the pages say of it."""

    filename: str
    sha256: str
    size: int
    requires_python: str | None = None
    yanked: bool | str = False
    metadata_sha256: str | None = None
    upload_time: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "filename": self.filename,
            "url": urllib.parse.quote(self.filename),
            "hashes": {PREFERRED_HASH: self.sha256},
            "requires-python": self.requires_python,
            "yanked": self.yanked,
            "size": self.size,
        }
        if self.metadata_sha256 is not None:
            entry["core-metadata"] = {PREFERRED_HASH: self.metadata_sha256}
            entry["dist-info-metadata"] = {PREFERRED_HASH: self.metadata_sha256}
        else:
            entry["core-metadata"] = False
        if self.upload_time:
            entry["upload-time"] = self.upload_time
        return entry

    def to_html(self) -> str:
        attributes = [
            f'href="{html.escape(urllib.parse.quote(self.filename))}#{PREFERRED_HASH}={self.sha256}"'
        ]
        if self.requires_python:
            attributes.append(f'data-requires-python="{html.escape(self.requires_python)}"')
        if self.yanked is not False:
            reason = self.yanked if isinstance(self.yanked, str) else ""
            attributes.append(f'data-yanked="{html.escape(reason)}"')
        if self.metadata_sha256 is not None:
            value = f"{PREFERRED_HASH}={self.metadata_sha256}"
            attributes.append(f'data-core-metadata="{value}"')
            attributes.append(f'data-dist-info-metadata="{value}"')
        return f"    <a {' '.join(attributes)}>{html.escape(self.filename)}</a><br/>"


def _file_version(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:  # not a distribution name, or a version int() refuses
        return None


def _previous_facts(folder: Path) -> dict[str, Mapping[str, Any]]:
    try:
        data = json.loads((folder / PAGE_JSON).read_text(encoding="utf-8"))
        return {f["filename"]: f for f in data["files"] if isinstance(f, dict) and "filename" in f}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _requires_python_from_metadata(path: Path) -> str | None:
    try:
        return parse_core_metadata(path.read_bytes(), path.name).requires_python
    except (OSError, ValueError):
        return None


def scan_project(folder: Path, known: Mapping[str, DistributionFile]) -> list[FileEntry]:
    """Every distribution file in a project folder with the facts the pages need.

    Facts come from what the index said in this run (``known``), else from the
    previous page, else from the files themselves. A file without a ``.hash``
    sidecar (dropped in by hand) is hashed and given one.
    """
    previous = _previous_facts(folder)
    entries = []
    # One listing, whose entries know their type and cache their stat: a project's pages
    # are written while thirty threads download, and every system call waits for the GIL.
    with os.scandir(folder) as found:
        listing = {entry.name: entry for entry in found}
    for name in sorted(listing):
        entry = listing[name]
        if not is_distribution(name) or not entry.is_file():
            continue
        path = folder / name
        sidecar = read_hash_sidecar(path)
        if sidecar is None or sidecar[0] != PREFERRED_HASH:
            sha256 = file_sha256(path)
            write_hash_sidecar(path, sha256)
        else:
            sha256 = sidecar[1]
        metadata_path = Path(str(path) + METADATA_SUFFIX)
        metadata_entry = listing.get(metadata_path.name)
        metadata_sha256 = (
            file_sha256(metadata_path)
            if metadata_entry is not None and metadata_entry.is_file()
            else None
        )
        upstream = known.get(path.name)
        before = previous.get(path.name, {})
        if upstream is not None:
            requires_python = upstream.requires_python
            yanked: bool | str = upstream.yanked
            upload_time = upstream.upload_time
        else:
            requires_python = before.get("requires-python")
            yanked = before.get("yanked", False)
            upload_time = before.get("upload-time")
            if requires_python is None and metadata_sha256 is not None:
                requires_python = _requires_python_from_metadata(metadata_path)
        entries.append(
            FileEntry(
                filename=path.name,
                sha256=sha256,
                size=entry.stat().st_size,
                requires_python=requires_python if isinstance(requires_python, str) else None,
                yanked=yanked if isinstance(yanked, (bool, str)) else False,
                metadata_sha256=metadata_sha256,
                upload_time=upload_time if isinstance(upload_time, str) else None,
            )
        )
    return entries


def render_project_html(project: str, entries: Iterable[FileEntry]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>Links for {html.escape(project)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {html.escape(project)}</h1>",
        *(entry.to_html() for entry in entries),
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def render_project_json(project: str, entries: Iterable[FileEntry]) -> bytes:
    entries = list(entries)
    versions = sorted({v for v in (_file_version(e.filename) for e in entries) if v})
    document = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": versions,
        "files": [entry.to_json() for entry in entries],
    }
    return (json.dumps(document, indent=1, sort_keys=False) + "\n").encode("utf-8")


def write_project_pages(folder: Path, known: Mapping[str, DistributionFile]) -> bool:
    """(Re)write a project's two pages from what is in its folder; True if either changed."""
    entries = scan_project(folder, known)
    project = folder.name
    changed = atomic_write(folder / PAGE_HTML, render_project_html(project, entries))
    changed |= atomic_write(folder / PAGE_JSON, render_project_json(project, entries))
    return changed


def project_folders(index: Path) -> list[Path]:
    """The folders of the tree that are projects: normalized names holding distributions."""
    folders = []
    for path in sorted(index.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            project_dir(index, path.name)
        except UnsafeNameError:
            continue
        if any(is_distribution(child.name) for child in path.iterdir()):
            folders.append(path)
    return folders


def write_root_pages(index: Path) -> bool:
    """(Re)write the project list; True if it changed."""
    names = [folder.name for folder in project_folders(index)]
    body = "\n".join(f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br/>' for n in names)
    page = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{body}\n  </body>\n</html>\n"
    ).encode()
    document = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": name} for name in names],
    }
    changed = atomic_write(index / PAGE_HTML, page)
    changed |= atomic_write(index / PAGE_JSON, (json.dumps(document, indent=1) + "\n").encode())
    return changed
