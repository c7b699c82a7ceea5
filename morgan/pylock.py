"""A PEP 751 lock file (``pylock.toml``) for one client environment of the mirror.

The lock file lies at the top of the tree, next to the project folders it points into::

    INDEX/
      pylock.<env>.toml               what to install in environment <env>, exactly
      <project>/<file>                each file it names, by a path relative to INDEX

so the tree can be carried as a whole to the closed network and installed from there
with ``uv pip install -r INDEX/pylock.<env>.toml``, without any index or resolver:
the lock names each file, its size and its sha256, and the installer checks both.

The text is written by ``tomli_w`` (the writer pip uses for ``pip lock``), never by
hand, and depends only on its input: packages are sorted by name and files by name,
so the same mirror gives the same bytes and a lock file under version control
changes only where the mirror did.

What uv (0.13) needs, found by running it (see ``tests/test_pylock.py``):

* ``packages.index`` must be a URL (``file:///…/INDEX/`` is fine; a plain path makes
  uv refuse the file); uv files its cache under it and never reads from it when each
  file has a ``path``.
* ``environments`` and the top-level ``requires-python`` are enforced: on another
  platform or Python uv refuses the lock file instead of installing.
* ``path`` is joined to the lock file's folder, so ``<project>/<filename>`` with
  forward slashes works on every system, as PEP 751 allows.
* ``size`` is checked against the file before it is read, the hashes after.
* ``upload-time`` as ``tomli_w`` writes a UTC datetime (``2024-01-02 03:04:05+00:00``)
  is read as is.
* installing from a lock file is still a preview feature: uv warns unless given
  ``--preview-features pylock``. pip reads ``-r pylock.toml`` from 26.1 on
  (experimental), and installs these files too.
* a wheel whose file name disagrees with its package's version is installed by uv
  0.13 without a word (later uv refuse the whole lock file), so :func:`render_pylock`
  refuses such input itself.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from morgan.layout import check_filename, project_dir
from morgan.models import parse_upload_time

#: The only version of the format this module writes (PEP 751's first and so far only).
LOCK_VERSION = "1.0"
#: PEP 751: ``pylock.toml``, or ``pylock.<name>.toml`` where ``<name>`` has no dot.
_LOCK_NAME = re.compile(r"pylock\.([^.]+)\.toml")
#: What an environment's name may keep in a lock file's name; the rest becomes ``-``.
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class LockedFile:
    """One distribution file of the tree, with what an installer checks it against."""

    #: The normalized project name, which is also the file's folder in the tree.
    project: str
    filename: str
    #: Lowercase hex; the installer refuses the file unless its bytes have this digest.
    sha256: str
    #: In bytes; uv refuses a file of another size before reading it.
    size: int
    #: The index's PEP 700 upload time (e.g. ``2024-01-02T03:04:05.123456Z``), or None.
    upload_time: str | None = None

    @property
    def path(self) -> str:
        """Where the file is, relative to the lock file at the top of the tree.

        Always with ``/``: PEP 751 allows POSIX separators in relative paths, and
        uv reads them on Windows too, so one lock file serves every client system.
        """
        return f"{self.project}/{self.filename}"


@dataclass(frozen=True)
class LockedPackage:
    """One project at one version, with the files of it that suit the environment."""

    #: The normalized project name.
    name: str
    version: str
    #: The Requires-Python the index (or the metadata) gave, which installers enforce.
    requires_python: str | None
    wheels: tuple[LockedFile, ...]
    sdist: LockedFile | None = None


def pylock_filename(environment_name: str) -> str:
    """The lock file's name for an environment: ``pylock.<name>.toml``.

    PEP 751 allows only ``pylock.toml`` and ``pylock.<name>.toml`` with no dot in
    ``<name>``, but the environments of ``morgan.ini`` are named freely
    (``[env.py3.11]``). Rather than refuse such a name, every character other than
    ASCII letters, digits, ``_`` and ``-`` becomes ``-`` (``py3.11`` gives
    ``pylock.py3-11.toml``), which also keeps the name a plain, portable file name.
    Two environments whose names differ only there would share a lock file; the
    caller that writes every environment's lock must check for that.
    """
    name = _UNSAFE_NAME_CHARACTERS.sub("-", environment_name)
    if not name.strip("-"):
        raise ValueError(f"environment name {environment_name!r} has nothing to name a file by")
    filename = f"pylock.{name}.toml"
    assert _LOCK_NAME.fullmatch(filename), filename
    return filename


def _file_table(file: LockedFile, project: str) -> dict[str, Any]:
    """The TOML table of one file, after checking it can only point into its folder."""
    if file.project != project:
        raise ValueError(f"{file.filename} is filed under {file.project!r}, not {project!r}")
    project_dir(Path(), file.project)  # refuses anything but a normalized name
    check_filename(file.filename)  # refuses separators, "..", hidden and sidecar names
    if not re.fullmatch(r"[0-9a-f]{64}", file.sha256.lower()):
        raise ValueError(f"{file.filename}: {file.sha256!r} is not a sha256 digest")
    if file.size < 0:
        raise ValueError(f"{file.filename}: negative size {file.size}")
    table: dict[str, Any] = {"name": file.filename, "path": file.path}
    uploaded = parse_upload_time(file.upload_time)
    if uploaded is not None:
        table["upload-time"] = uploaded
    table["size"] = file.size
    table["hashes"] = {"sha256": file.sha256.lower()}
    return table


def _check_wheel(package: LockedPackage, wheel: LockedFile) -> None:
    """Refuse a wheel of another project or version: the lock would lie about what it installs."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.filename)
        same = name == package.name and version == Version(package.version)
    except (InvalidWheelFilename, InvalidVersion) as error:
        raise ValueError(f"{wheel.filename}: {error}") from None
    if not same:
        raise ValueError(f"{wheel.filename} is not a wheel of {package.name} {package.version}")


def _package_table(package: LockedPackage, index_url: str | None) -> dict[str, Any]:
    if canonicalize_name(package.name) != package.name:
        raise ValueError(f"package name {package.name!r} is not normalized")
    if not package.wheels and package.sdist is None:
        raise ValueError(f"{package.name} {package.version} has no file to install")
    table: dict[str, Any] = {"name": package.name, "version": package.version}
    if package.requires_python:
        table["requires-python"] = package.requires_python
    if index_url is not None:
        table["index"] = index_url
    if package.sdist is not None:
        table["sdist"] = _file_table(package.sdist, package.name)
    if package.wheels:
        for wheel in package.wheels:
            _check_wheel(package, wheel)
        wheels = sorted(package.wheels, key=lambda wheel: wheel.filename)
        names = [wheel.filename for wheel in wheels]
        if len(set(names)) != len(names):
            raise ValueError(f"{package.name} {package.version} lists a wheel twice")
        table["wheels"] = [_file_table(wheel, package.name) for wheel in wheels]
    return table


def render_pylock(
    packages: Iterable[LockedPackage],
    *,
    environment_marker: str | None,
    requires_python: str | None,
    index_url: str,
    created_by: str = "morgan",
    origins: Mapping[str, str | None] | None = None,
    rendered: dict[tuple[LockedPackage, str | None], str] | None = None,
) -> bytes:
    """The bytes of ``pylock.<env>.toml`` for the packages one environment installs.

    ``environment_marker`` (a PEP 508 marker describing the environment) becomes the
    one entry of ``environments``, so an installer on another system refuses the
    lock instead of installing the wrong wheels. ``index_url`` is the simple
    index the files come from, recorded for audits and SBOMs; uv needs it to be a
    URL. Each package must appear once: with no markers to tell entries apart, two
    versions of a project would be ambiguous, which PEP 751 makes an error at
    install time, so it is refused here instead. With several indexes, ``origins``
    gives each project's own index URL, or None for a project uploaded to the
    mirror (then its package names no index: it was found in none).

    ``rendered`` keeps each package's ``[[packages]]`` text for the next lock file
    of the same run: most packages are locked for several environments alike.
    """
    origins = origins or {}
    for url in {index_url, *origins.values()} - {None}:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.path):
            # uv refuses the whole lock file when ``index`` is a plain path
            raise ValueError(f"index URL {url!r} is not an http(s) or file URL")
    ordered = sorted(packages, key=lambda package: package.name)
    for before, after in zip(ordered, ordered[1:]):
        if before.name == after.name:
            raise ValueError(f"{after.name} is locked twice")
    document: dict[str, Any] = {"lock-version": LOCK_VERSION}
    if environment_marker:
        document["environments"] = [environment_marker]
    if requires_python:
        document["requires-python"] = requires_python
    document["created-by"] = created_by
    if not ordered:
        document["packages"] = []
        return tomli_w.dumps(document).encode("utf-8")
    rendered = {} if rendered is None else rendered
    chunks = [tomli_w.dumps(document)]
    for package in ordered:
        index = origins.get(package.name, index_url)
        text = rendered.get((package, index))
        if text is None:
            text = tomli_w.dumps({"packages": [_package_table(package, index)]})
            rendered[(package, index)] = text
        chunks.append(text)
    # What tomli-w writes for the whole document: each ``[[packages]]`` entry after a blank
    # line. (It would write an array of short tables inline, but a package table is never
    # short: it holds a file's 64-digit sha256.)
    return "\n".join(chunks).encode("utf-8")
