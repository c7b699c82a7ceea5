"""Values read from a simple index: the files of a project and its page."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from packaging.tags import Tag
from packaging.utils import NormalizedName, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

#: The digest morgan records for every file (Morgan's ``.hash`` sidecars use it too).
PREFERRED_HASH = "sha256"


@dataclass(frozen=True)
class DistributionFile:
    """One file on a project page, with everything the index says about it."""

    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    #: False, True, or the reason it was yanked (PEP 592 / PEP 691).
    yanked: bool | str = False
    #: None when the index offers no PEP 658 metadata file, else its hashes (maybe none).
    metadata_hashes: Mapping[str, str] | None = None
    size: int | None = None
    upload_time: str | None = None

    @property
    def is_yanked(self) -> bool:
        return self.yanked is not False

    @property
    def yanked_reason(self) -> str | None:
        return self.yanked if isinstance(self.yanked, str) else None

    @property
    def metadata_url(self) -> str:
        """Where PEP 658 puts the core metadata of this file."""
        return self.url + ".metadata"

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass(frozen=True)
class ProjectPage:
    """A project's page on the index."""

    name: NormalizedName
    url: str
    files: tuple[DistributionFile, ...]
    api_version: str = "1.0"


@dataclass(frozen=True)
class ReleaseFile:
    """A file whose name parsed as a wheel or sdist of a known version of its project.

    (The resolver's *candidates* are projects at a version; a release file is one
    of the files that may make up such a candidate.)
    """

    file: DistributionFile
    version: Version
    #: The wheel's tags; empty for an sdist.
    tags: frozenset[Tag]

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)

    @classmethod
    def from_file(cls, file: DistributionFile, project: str) -> ReleaseFile | None:
        """The file as a release file of ``project``, or None if its name says otherwise.

        Names that are not wheels or sdists, whose version is not PEP 440, or that
        belong to another project are none; nothing here raises.
        """
        try:
            if file.filename.endswith(".whl"):
                name, version, tags = _parse_wheel_filename(file.filename)
            else:
                name, version = parse_sdist_filename(file.filename)
                tags = frozenset()
        # InvalidWheelFilename, InvalidSdistFilename and InvalidVersion are ValueErrors,
        # and so is int()'s refusal of a version with thousands of digits.
        except ValueError:
            return None
        if name != project:
            return None
        return cls(file=file, version=version, tags=frozenset(tags))


def _parse_wheel_filename(filename: str) -> tuple[NormalizedName, Version, frozenset[Tag]]:
    """``parse_wheel_filename``, remembering its two halves: a page lists the same
    name-version for every wheel of a release, and the same tags for every release.

    The halves are checked by ``parse_wheel_filename`` itself, so what it refuses
    is refused here too (a ValueError).
    """
    parts = filename[: -len(".whl")].rsplit("-", 3)
    if len(parts) != 4:
        raise ValueError(f"not a wheel filename: {filename!r}")
    name, version = _wheel_name_version(parts[0])
    return name, version, _wheel_tags("-".join(parts[1:]))


def wheel_filename_tags(filename: str) -> frozenset[Tag] | None:
    """The tags a wheel's file name states, or None if it is no valid wheel name."""
    parts = filename[: -len(".whl")].rsplit("-", 3)
    if not filename.endswith(".whl") or len(parts) != 4:
        return None
    try:
        return _wheel_tags("-".join(parts[1:]))
    except ValueError:
        return None


@functools.lru_cache(maxsize=16384)
def _wheel_name_version(prefix: str) -> tuple[NormalizedName, Version]:
    name, version, _, _ = parse_wheel_filename(f"{prefix}-py3-none-any.whl")
    return name, version


@functools.lru_cache(maxsize=4096)
def _wheel_tags(tag_part: str) -> frozenset[Tag]:
    return parse_wheel_filename(f"x-0-{tag_part}.whl")[3]


#: A PEP 700 upload time: ``Z`` (or another offset, or none, read as UTC) and any
#: number of fractional digits, as indexes write them; Python 3.9's
#: ``datetime.fromisoformat`` reads neither ``Z`` nor arbitrary fractions.
_UPLOAD_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?",
    re.IGNORECASE,
)


def parse_upload_time(upload_time: str | None) -> datetime | None:
    """A PEP 700 upload time as an aware datetime in UTC, or None if it is unreadable.

    One reading for every use: a file's mtime in the tree and the ``upload-time``
    of the lock files (a TOML datetime in UTC). One that cannot be read is left
    out, not guessed at. Digits past microseconds are dropped.
    """
    match = _UPLOAD_TIME.fullmatch((upload_time or "").strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset = (match.group(8) or "Z").upper()
    zone = timezone.utc
    if offset != "Z":
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if delta >= timedelta(days=1):
            return None
        zone = timezone(-delta if offset[0] == "-" else delta)
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
