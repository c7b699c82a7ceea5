"""The upload form: what twine sends for one distribution, built without holding the file.

PyPI's legacy upload API (which GitLab, Nexus, Artifactory, pypiserver and devpi take
too) is one ``multipart/form-data`` POST per file: the protocol's fields, what the file
is and its digests, its core metadata (from a wheel's ``METADATA`` or an sdist's
``PKG-INFO``) field by field, and the file as the ``content`` part. The body is built
around the open file with an exact length, so a large wheel is streamed from disk and
the registry is told its Content-Length (many refuse chunked uploads).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from packaging.metadata import parse_email
from packaging.version import InvalidVersion, Version

from morgan.errors import DistributionError
from morgan.manifest import ListedFile

#: The legacy upload API, as PyPI, twine and every registry that takes twine's uploads speak it.
UPLOAD_ACTION = "file_upload"
PROTOCOL_VERSION = "1"
WHEEL_FILETYPE, SDIST_FILETYPE = "bdist_wheel", "sdist"
#: The ``pyversion`` of an sdist; a wheel's is the python tag of its name.
SDIST_PYVERSION = "source"
CONTENT_FIELD = "content"
CONTENT_TYPE = "application/octet-stream"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digests:
    """The digests the form names; md5 and blake2 are None where FIPS forbids them."""

    sha256: str
    md5: str | None = None
    blake2_256: str | None = None

    @classmethod
    def of_stream(cls, stream: BinaryIO) -> Digests:
        """All three in one read of the file."""
        sha256 = hashlib.sha256()
        others: dict[str, Any] = {}
        with contextlib.suppress(ValueError):
            others["md5"] = hashlib.md5(usedforsecurity=False)
        with contextlib.suppress(ValueError):
            others["blake2_256"] = hashlib.blake2b(digest_size=32)
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            sha256.update(chunk)
            for digest in others.values():
                digest.update(chunk)
        return cls(sha256.hexdigest(), **{k: v.hexdigest() for k, v in others.items()})


#: Core-metadata keys (as ``packaging.metadata`` names them) whose form field is named
#: otherwise; every other key is its own field name, as PyPI's upload form reads them.
_FORM_NAMES = {
    "platforms": "platform",
    "supported_platforms": "supported_platform",
    "license_files": "license_file",
}


def form_fields(
    listed: ListedFile, metadata: bytes | None, digests: Digests
) -> list[tuple[str, str]]:
    """The upload form of one file, besides the file: the protocol's fields, what the file
    is, its digests, and its core metadata (a field repeated for each value of a list)."""
    raw: dict[str, Any] = dict(parse_email(metadata)[0]) if metadata else {}
    if _version_before(raw.get("metadata_version"), "2.4"):
        # setuptools writes License-File under older versions; PyPI refuses it there
        raw.pop("license_files", None)
    filename = listed.path.rsplit("/", 1)[-1]
    fields = [
        (":action", UPLOAD_ACTION),
        ("protocol_version", PROTOCOL_VERSION),
        ("metadata_version", str(raw.pop("metadata_version", None) or "1.0")),
        ("name", str(raw.pop("name", None) or listed.project)),
        ("version", str(raw.pop("version", None) or listed.version)),
        ("filetype", WHEEL_FILETYPE if filename.endswith(".whl") else SDIST_FILETYPE),
        ("pyversion", filename.split("-")[-3] if filename.endswith(".whl") else SDIST_PYVERSION),
        ("sha256_digest", digests.sha256),
    ]
    if digests.md5:
        fields.append(("md5_digest", digests.md5))
    if digests.blake2_256:
        fields.append(("blake2_256_digest", digests.blake2_256))
    for key in sorted(raw):
        name, value = _FORM_NAMES.get(key, key), raw[key]
        if key == "keywords":
            fields.append((name, ", ".join(value)))
        elif key == "project_urls":
            fields.extend((name, f"{label}, {url}") for label, url in value.items())
        elif isinstance(value, (list, tuple)):
            fields.extend((name, str(item)) for item in value)
        else:
            fields.append((name, str(value)))
    return fields


def _version_before(value: object, limit: str) -> bool:
    try:
        return Version(str(value)) < Version(limit)
    except InvalidVersion:
        return True


@dataclass(frozen=True)
class MultipartForm:
    """A ``multipart/form-data`` body around one file, sent without holding the file.

    ``head`` is every field and the file part's headers, ``tail`` closes the body; the
    file's bytes go between them, read from disk as they are sent.
    """

    boundary: str
    head: bytes
    tail: bytes
    file_size: int

    @classmethod
    def build(
        cls,
        fields: Sequence[tuple[str, str]],
        filename: str,
        file_size: int,
        boundary: str | None = None,
    ) -> MultipartForm:
        boundary = boundary or f"morgan-{secrets.token_hex(16)}"
        parts = [
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
            for name, value in fields
        ]
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{CONTENT_FIELD}"; filename="{_quote(filename)}"\r\n'
            f"Content-Type: {CONTENT_TYPE}\r\n\r\n".encode()
        )
        return cls(boundary, b"".join(parts), f"\r\n--{boundary}--\r\n".encode(), file_size)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The exact Content-Length."""
        return len(self.head) + self.file_size + len(self.tail)

    def body(self, stream: BinaryIO, filename: str) -> Iterator[bytes]:
        """The body, the file read from ``stream``'s current position a chunk at a time;
        DistributionError if the file is shorter than announced (it changed meanwhile)."""
        yield self.head
        left = self.file_size
        while left:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                raise DistributionError(filename, "changed while it was being sent")
            left -= len(chunk)
            yield chunk
        yield self.tail


def _quote(text: str) -> str:
    """A name for a Content-Disposition parameter, escaped as browsers escape it."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
