"""What the mirrorer remembers between runs, per project, so a re-run costs almost nothing.

Each project folder may hold a hidden ``.morgan-state.json`` (never listed or
served; Morgan ignores it) with two things:

* ``verified``: for every file whose digest was checked, the size and mtime it
  had then. A file that still has them, and whose recorded digest is the one the
  index gives, is trusted without being read again (``--verify`` re-reads).
* ``page``: the validators (``ETag``, ``Last-Modified``) and the digest of the
  last project page the index sent, so the next run can ask "has it changed?";
  the page itself is kept beside, in ``.morgan-page``, and read only when a
  ``304 Not Modified`` run needs it parsed (a run whose plans stand never does).
* ``dependencies``: what each distribution read by a resolution depends on, by
  file name and the sha256 the index gave, so backtracking over it again costs
  no request and no unpacking (a file read only for this is not kept).

The file is a cache: if it is missing, unreadable or from another version,
the run simply does the work again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from morgan.layout import atomic_write, is_distribution, replacing
from morgan.metadata import Dependencies, parse_requirement

log = logging.getLogger(__name__)

STATE_FILE = ".morgan-state.json"
STATE_VERSION = 1
#: The last page body the index sent, byte for byte.
PAGE_BODY_FILE = ".morgan-page"


def page_digest(url: str, content_type: str, body: bytes) -> str:
    """What a page was read from: the same digest on two runs means the same page."""
    digest = hashlib.sha256(f"{url}\0{content_type}\0".encode("utf-8", "surrogateescape"))
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifiedFile:
    """A file whose sha256 was checked, and how it looked on disk at that moment."""

    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, sha256: str) -> VerifiedFile:
        info = path.stat()
        return cls(sha256=sha256, size=info.st_size, mtime_ns=info.st_mtime_ns)

    def still_matches(self, path: Path) -> bool:
        """True if the file has the size and mtime it had when it was verified."""
        try:
            info = path.stat()
        except OSError:
            return False
        return info.st_size == self.size and info.st_mtime_ns == self.mtime_ns


#: How much of a kept page is unpacked at a time when it is written.
_UNPACK_CHUNK = 1 << 20


def _write_unpacked(path: Path, packed: bytes) -> None:
    """Write a compressed body out whole, atomically, a megabyte at a time (the largest
    real pages are tens of megabytes, and projects are saved side by side)."""
    with replacing(path, durable=False) as stream:  # checked against its digest when read
        unpacker = zlib.decompressobj()
        pending = packed
        while pending:
            stream.write(unpacker.decompress(pending, _UNPACK_CHUNK))
            pending = unpacker.unconsumed_tail
        stream.write(unpacker.flush())


@dataclass(frozen=True)
class CachedPage:
    """A project page as the index last sent it: its validators, and where its body is."""

    url: str
    content_type: str
    etag: str | None = None
    last_modified: str | None = None
    #: ``index.page_digest`` of the body: the page, whether it comes in full or by 304.
    digest: str = ""
    #: The body, while it is not yet saved (a page that just came in full), compressed:
    #: every page read waits in memory for the end of the run, and the largest real pages
    #: are megabytes of JSON that compress tenfold.
    packed: bytes | None = field(default=None, compare=False, repr=False)
    #: Where the saved body is (``.morgan-page`` in the project's folder).
    body_path: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def holding(  # noqa: PLR0917 - the fields, in their order
        cls,
        url: str,
        content_type: str,
        etag: str | None,
        last_modified: str | None,
        digest: str,
        body: bytes,
    ) -> CachedPage:
        """A page that just came in full, its body kept (compressed) until it is saved."""
        packed = zlib.compress(body, 1)
        return cls(url, content_type, etag, last_modified, digest, packed=packed)

    @property
    def body(self) -> bytes | None:
        """The body held in memory, if it is not saved yet."""
        return None if self.packed is None else zlib.decompress(self.packed)

    def repair(self, body: bytes) -> None:
        """Keep ``body`` where the lost copy was, if it is the page the digest names."""
        if self.body_path is None or page_digest(self.url, self.content_type, body) != self.digest:
            return
        try:
            atomic_write(self.body_path, body, durable=False)
        except OSError as error:
            log.debug("%s: cannot keep the page (%s)", self.body_path, error)

    def read_body(self) -> bytes | None:
        """The body, or None if it is lost or no longer the one the digest names."""
        if self.packed is not None:
            return self.body
        if self.body_path is None:
            return None
        try:
            body = self.body_path.read_bytes()
        except OSError:
            return None
        if self.digest and page_digest(self.url, self.content_type, body) != self.digest:
            return None
        return body

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class KnownDependencies:
    """What one distribution (named by the index's sha256 of it) depends on, as text."""

    sha256: str
    requires: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    requires_python: str | None = None

    @classmethod
    def of(cls, sha256: str, dependencies: Dependencies) -> KnownDependencies:
        known = cls(
            sha256=sha256,
            requires=tuple(str(r) for r in dependencies.requires),
            build_requires=tuple(str(r) for r in dependencies.build_requires),
            extras=tuple(sorted(dependencies.extras)),
            requires_python=dependencies.requires_python,
        )
        known.__dict__["_parsed"] = dependencies
        return known

    def dependencies(self, source: str) -> Dependencies:
        """The dependencies again (each requirement checked as when first read).

        Parsed once: every environment's resolutions ask for them again and again.
        (Kept in the instance's ``__dict__``, not a field: it is not saved.)
        """
        parsed: Dependencies | None = self.__dict__.get("_parsed")
        if parsed is None:
            parsed = Dependencies(
                requires=tuple(parse_requirement(r, source) for r in self.requires),
                build_requires=tuple(parse_requirement(r, source) for r in self.build_requires),
                extras=frozenset(canonicalize_name(e) for e in self.extras),
                requires_python=self.requires_python,
            )
            self.__dict__["_parsed"] = parsed
        return parsed


@dataclass
class ProjectState:
    verified: dict[str, VerifiedFile] = field(default_factory=dict)
    page: CachedPage | None = None
    #: The folder's listing (see ``folder_listing``) right after its pages were written.
    listing: str | None = None
    dependencies: dict[str, KnownDependencies] = field(default_factory=dict)
    _saved: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    def _key(self) -> tuple[Any, ...]:
        return (dict(self.verified), self.page, self.listing, dict(self.dependencies))

    @classmethod
    def load(cls, folder: Path) -> ProjectState:
        """The saved state of a project folder; empty if there is none or it is unusable."""
        try:
            data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                return cls()
            verified = {
                name: VerifiedFile(**record) for name, record in data.get("verified", {}).items()
            }
            page, migrated = _load_page(data.get("page"), folder)
            listing = data.get("listing")
            if not isinstance(listing, (str, type(None))):
                raise TypeError("listing is not a string")
            dependencies = {
                name: KnownDependencies(
                    sha256=str(record["sha256"]),
                    requires=tuple(map(str, record.get("requires", ()))),
                    build_requires=tuple(map(str, record.get("build_requires", ()))),
                    extras=tuple(map(str, record.get("extras", ()))),
                    requires_python=_optional_string(record.get("requires_python")),
                )
                for name, record in data.get("dependencies", {}).items()
            }
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as error:
            log.debug("%s: ignoring unreadable %s (%s)", folder.name, STATE_FILE, error)
            return cls()
        state = cls(verified=verified, page=page, listing=listing, dependencies=dependencies)
        state._saved = None if migrated else state._key()
        return state

    def save(self, folder: Path) -> bool:
        """Write the state if it changed (and the folder exists); True if written."""
        unsaved_body = self.page is not None and self.page.packed is not None
        if (self._saved == self._key() and not unsaved_body) or not folder.is_dir():
            return False
        present = {path.name for path in folder.iterdir()}  # one listing, not a stat per file
        known = {name: record for name, record in self.verified.items() if name in present}
        if self.page is None:
            (folder / PAGE_BODY_FILE).unlink(missing_ok=True)
        elif self.page.packed is not None:
            _write_unpacked(folder / PAGE_BODY_FILE, self.page.packed)
            self.page = replace(self.page, packed=None, body_path=folder / PAGE_BODY_FILE)
        document: dict[str, Any] = {
            "version": STATE_VERSION,
            "verified": {name: asdict(known[name]) for name in sorted(known)},
            "page": _page_record(self.page),
            "listing": self.listing,
            "dependencies": {
                name: asdict(self.dependencies[name]) for name in sorted(self.dependencies)
            },
        }
        # compact: a cache, and json's C encoder runs only without indentation
        compact = json.dumps(document, sort_keys=True, separators=(",", ":"))
        # a cache: an unreadable state is a state lost (files are then checked again)
        written = atomic_write(folder / STATE_FILE, (compact + "\n").encode("utf-8"), durable=False)
        self._saved = self._key()
        return written


def _page_record(page: CachedPage | None) -> dict[str, Any] | None:
    if page is None:
        return None
    fields = ("url", "content_type", "etag", "last_modified", "digest")
    return {name: getattr(page, name) for name in fields}


def _load_page(record: Any, folder: Path) -> tuple[CachedPage | None, bool]:
    """The saved page's validators, and whether the record is of an older form (its
    body inline, as morgan wrote it before ``.morgan-page``): then it is saved anew."""
    if not record:
        return None, False
    url, content_type = str(record["url"]), str(record["content_type"])
    etag = _optional_string(record.get("etag"))
    last_modified = _optional_string(record.get("last_modified"))
    if "body" in record:
        body = str(record["body"]).encode("utf-8")
        digest = page_digest(url, content_type, body)
        return CachedPage.holding(url, content_type, etag, last_modified, digest, body), True
    digest = str(record["digest"])
    page = CachedPage(url, content_type, etag, last_modified, digest)
    return replace(page, body_path=folder / PAGE_BODY_FILE), False


def _optional_string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def folder_listing(folder: Path) -> str:
    """A digest of a folder's entries: every name, and the size and mtime of distributions.

    If it is what it was right after the pages were written, and the index's
    page has not changed either, the pages would come out the same: they are
    not rebuilt. A file dropped in, replaced or removed by hand changes it.
    (Sidecars and pages count by name only: their mtimes say when a run wrote
    them, which would make the state differ between runs that did the same.)
    """
    digest = hashlib.sha256()
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            line = entry.name
            if is_distribution(entry.name):
                info = entry.stat(follow_symlinks=False)
                line += f"\0{info.st_size}\0{info.st_mtime_ns}"
            digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def trusted_sha256(path: Path, record: VerifiedFile | None) -> str | None:
    """The recorded digest of ``path`` if the file is unchanged since it was verified."""
    if record is not None and record.still_matches(path):
        return record.sha256
    return None
