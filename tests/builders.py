"""Real wheels and sdists, built on the fly for tests (no binaries are stored)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.utils import canonicalize_name


def _dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def core_metadata(
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    metadata_version: str = "2.1",
) -> str:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    return "\n".join(lines) + "\n\nA test distribution.\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tags: str = "py3-none-any",
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    metadata: str | None = None,
    extra_members: dict[str, bytes] | None = None,
) -> Path:
    """A valid wheel (METADATA, WHEEL, RECORD, one module) in ``directory``."""
    dist = _dist_name(name)
    info = f"{dist}-{version}.dist-info"
    module = dist.lower()
    text = metadata or core_metadata(
        name, version, requires=requires, requires_python=requires_python, extras=extras
    )
    members: dict[str, bytes] = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info}/METADATA": text.encode("utf-8"),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: morgan-tests\nRoot-Is-Purelib: "
            f"{'true' if tags.endswith('-none-any') else 'false'}\n"
            + "".join(f"Tag: {t}\n" for t in _expand(tags))
        ).encode(),
    }
    members.update(extra_members or {})
    record = [_record_line(path, data) for path, data in members.items()]
    record.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tags}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def _expand(tags: str) -> list[str]:
    interpreters, abis, platforms = tags.split("-")
    return [
        f"{i}-{a}-{p}"
        for i in interpreters.split(".")
        for a in abis.split(".")
        for p in platforms.split(".")
    ]


def build_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    build_requires: Iterable[str] | None = None,
    requires_txt: str | None = None,
    setup_requires_txt: str | None = None,
    pyproject: str | None = None,
    fmt: str = "tar.gz",
    metadata_version: str = "2.1",
) -> Path:
    """An sdist with PKG-INFO and, as asked, pyproject.toml and egg-info files."""
    dist = _dist_name(name)
    top = f"{dist}-{version}"
    members: dict[str, bytes] = {
        f"{top}/PKG-INFO": core_metadata(
            name,
            version,
            requires=requires,
            requires_python=requires_python,
            metadata_version=metadata_version,
        ).encode(),
        f"{top}/setup.py": b"from setuptools import setup\nsetup()\n",
        f"{top}/{dist}/__init__.py": b"",
    }
    if pyproject is None and build_requires is not None:
        listed = ", ".join(f'"{r}"' for r in build_requires)
        pyproject = f'[build-system]\nrequires = [{listed}]\nbuild-backend = "flit_core.buildapi"\n'
    if pyproject is not None:
        members[f"{top}/pyproject.toml"] = pyproject.encode()
    if requires_txt is not None:
        members[f"{top}/{dist}.egg-info/requires.txt"] = requires_txt.encode()
    if setup_requires_txt is not None:
        members[f"{top}/{dist}.egg-info/setup_requires.txt"] = setup_requires_txt.encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{top}.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
    else:
        with tarfile.open(path, "w:gz") as archive:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                info.mtime = 1_600_000_000
                archive.addfile(info, io.BytesIO(data))
    return path
