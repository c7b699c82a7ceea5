"""``morgan export``: the tree, or what changed in it since a manifest, as one tar.

What crosses the air gap is one file a transfer log can name by its sha256. The
bundle is deterministic (the same tree and base give the same bytes): members
in a fixed order, each with the tree's mtime and no owner. Its first member,
``morgan-bundle.json``, names the base manifest it applies to, the new
manifest's digest, every member's digest, and the files to delete; the
offline side (``python3 server.py import``) checks all of it before it lands
anything. Every member is hashed as it is written and must match the
manifest, so a file changed since the mirror ran never crosses unnoticed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from morgan.errors import MorganError, UsageError
from morgan.layout import is_distribution, replacing
from morgan.manifest import MANIFEST, SERVER, Manifest, changed_paths, removed_paths

BUNDLE_MANIFEST = "morgan-bundle.json"
BUNDLE_VERSION = 1
_CHUNK = 1 << 20


class BundleError(MorganError):
    """A bundle that cannot be written as the manifest says."""


class Member(NamedTuple):
    """A file of the bundle, as ``morgan-bundle.json`` lists it."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class WrittenBundle:
    """What ``export`` wrote: for the transfer log."""

    path: Path
    sha256: str
    size: int
    #: Files in the bundle (besides ``morgan-bundle.json``), and their bytes.
    members: int
    content_bytes: int
    #: Files the import deletes.
    removed: int


def member_order(path: str) -> tuple[int, str]:
    """The members' order in the tar: distributions, other project files, root files, the
    manifest last (the offline side lands them in an order of its own, pages after
    sidecars; this one only makes the bundle deterministic and easy to read)."""
    if path == MANIFEST:
        return (3, path)
    if "/" not in path:
        return (2, path)
    return (0 if is_distribution(path.rsplit("/", 1)[1]) else 1, path)


def export_bundle(index: Path, output: Path, *, since: Path | None = None) -> WrittenBundle:
    """Write the bundle of ``index`` (what changed since the manifest ``since``) to ``output``."""
    output = output.resolve()
    if output == index or index in output.parents:
        raise UsageError(f"{output}: write the bundle outside the index ({index})")
    manifest_path = index / MANIFEST
    manifest_bytes = _read(manifest_path)
    current = Manifest.load(manifest_path)
    old = Manifest.load(since) if since is not None else None
    base = hashlib.sha256(_read(since)).hexdigest() if since is not None else None
    listed = current.all_files()
    paths = set(changed_paths(old, current))
    if SERVER in listed:
        paths.add(SERVER)  # the offline side's one tool, in every bundle
    members = [
        Member(path, listed[path].sha256, listed[path].size)
        for path in sorted(paths, key=member_order)
    ]
    members.append(
        Member(MANIFEST, hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes))
    )
    removed = removed_paths(old, current) if old is not None else []
    document = {
        "bundle-version": BUNDLE_VERSION,
        "base": base,
        "manifest": members[-1].sha256,
        "members": [member._asdict() for member in members],
        "removed": removed,
    }
    header = (json.dumps(document, indent=1) + "\n").encode("utf-8")
    mtime = int(manifest_path.stat().st_mtime)
    output.parent.mkdir(parents=True, exist_ok=True)
    with replacing(output) as raw:
        stream = _HashingWriter(raw)
        fileobj = cast(Any, stream)  # tarfile needs only write() and tell()
        with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(BUNDLE_MANIFEST, len(header), mtime), io.BytesIO(header))
            for member in members[:-1]:
                _add_file(tar, index, member)
            tar.addfile(_info(MANIFEST, len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
    return WrittenBundle(
        path=output,
        sha256=stream.digest.hexdigest(),
        size=stream.written,
        members=len(members),
        content_bytes=sum(member.size for member in members),
        removed=len(removed),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot be read ({error.strerror})") from None


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _add_file(tar: tarfile.TarFile, index: Path, member: Member) -> None:
    """Add one file of the tree, checked against the manifest as it is read."""
    path, sha256, size = member
    file = index / path
    try:
        if file.parent != index and not _real_folder(file.parent):
            raise BundleError(
                f"{path}: its folder is not a folder of the tree; run `morgan verify`"
            )
        # never through a link: what crosses is the tree's own file or nothing
        descriptor = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise BundleError(f"{path}: not a regular file; run `morgan verify`")
            if status.st_size != size:
                raise BundleError(
                    f"{path}: {status.st_size} bytes, the manifest says {size}; run `morgan verify`"
                )
            reader = _HashingReader(stream)
            tar.addfile(_info(path, size, int(status.st_mtime)), reader)
    except FileNotFoundError:
        raise BundleError(
            f"{path}: listed in {MANIFEST} but missing; run `morgan verify`"
        ) from None
    except OSError as error:
        why = (
            "a link, not a file" if error.errno == errno.ELOOP else f"unreadable ({error.strerror})"
        )
        raise BundleError(f"{path}: {why}; run `morgan verify`") from None
    if reader.digest.hexdigest() != sha256:
        raise BundleError(f"{path}: its bytes differ from {MANIFEST}; run `morgan verify`")


def _real_folder(path: Path) -> bool:
    """A folder, not a link to one (which could lead out of the tree)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


class _HashingReader:
    """A file read through sha256, for tarfile.addfile."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data


class _HashingWriter:
    """The bundle's bytes counted and hashed on their way to the disk."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> int:
        self.stream.write(data)
        self.digest.update(data)
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written
