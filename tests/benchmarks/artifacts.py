"""Writes a workload's files to disk once, and the manifest the upstream serves from.

A tree lives in ``WORK/upstream/<scale>-s<seed>-g<generator>/``: ``files/<project>/``
holds the wheels and sdists (and each wheel's METADATA as ``<wheel>.metadata``),
``morgan.ini`` the configuration both tools read, and ``manifest.json`` (written
last, so its presence means the tree is complete) every fact the index states.
Large members are random bytes stored uncompressed, so nothing on the way can
shrink them and writing them costs little more than the disk.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from workload import GENERATOR_VERSION, Project, Release, Workload, normalize

CHUNK = 1024 * 1024
#: Bytes of an archive that are not padding, roughly.
OVERHEAD = 1500


def tree_path(work: Path, workload: Workload) -> Path:
    scale = workload.scale.name
    return work / "upstream" / f"{scale}-s{workload.seed}-g{GENERATOR_VERSION}"


def ensure_tree(
    work: Path,
    workload: Workload,
    log: Callable[[str], None] = print,
    deleted: Callable[[], None] | None = None,
) -> Path:
    """The tree for ``workload``, built now unless a complete one is cached.

    Concurrent callers wait for one another (a lock file), and a tree is built in a
    temporary folder renamed into place, so nobody ever serves a half-built tree.
    ``deleted`` is told when a leftover was deleted (see ``runner.set_aside``).
    """
    root = tree_path(work, workload)
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "manifest.json").is_file():
            started = time.monotonic()
            building = root.with_name(f".{root.name}.building")
            _delete(building, deleted)  # an interrupted build's
            document = _build(building, workload)
            _delete(root, deleted)  # an incomplete tree from an older harness
            building.rename(root)
            log(
                f"built {document['files']} files ({document['bytes'] / 2**20:.0f} MiB) "
                f"in {root} in {time.monotonic() - started:.0f} s"
            )
    return root


def _delete(folder: Path, deleted: Callable[[], None] | None) -> None:
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        if deleted is not None:
            deleted()


def _build(root: Path, workload: Workload) -> dict:
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    projects = {}
    total = 0
    for project in workload.projects.values():
        entries = []
        for release in project.releases:
            for filename, writer in _distributions(project, release):
                entry = _build_once(files_dir / project.key, filename, writer, release)
                total += entry["size"]
                entries.append(entry)
        projects[project.key] = {"name": project.name, "files": entries}
    depth = workload.closure()
    document = {
        "generator": GENERATOR_VERSION,
        "scale": workload.scale.name,
        "seed": workload.seed,
        "closure": len(depth),
        "depth": max(depth.values()),
        "top_level": len(workload.requirements),
        "files": sum(len(p["files"]) for p in projects.values()),
        "bytes": total,
        "projects": projects,
    }
    (root / "morgan.ini").write_text(workload.config_text())
    (root / "manifest.json").write_text(json.dumps(document, indent=1))
    return document


def load_manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _build_once(folder: Path, filename: str, writer, release: Release) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    metadata = writer(path)
    if metadata is not None:
        (folder / (filename + ".metadata")).write_bytes(metadata)
    return {
        "filename": filename,
        "path": f"{folder.name}/{filename}",
        "size": path.stat().st_size,
        "sha256": _sha256(path),
        "upload_time": release.upload_time,
        "requires_python": release.requires_python,
        "yanked": release.yanked,
        "metadata_sha256": hashlib.sha256(metadata).hexdigest() if metadata else None,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _dist(name: str) -> str:
    return normalize(name).replace("-", "_")


def _distributions(project: Project, release: Release) -> Iterator[tuple[str, object]]:
    """(filename, writer) for each file of a release; a writer returns wheel METADATA."""
    dist = _dist(project.name)
    for tags, size in release.wheels:
        filename = f"{dist}-{release.version}-{tags}.whl"
        yield filename, _wheel_writer(project, release, tags, size)
    if release.sdist is not None:
        extension, size = release.sdist
        stem = re.sub(r"[-_.]+", "_", project.name) if project.legacy_sdist_name else dist
        filename = f"{stem}-{release.version}.{extension}"
        yield filename, _sdist_writer(project, release, extension, size)


def core_metadata(project: Project, release: Release) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project.name}",
        f"Version: {release.version}",
        f"Summary: {project.name}, a synthetic project for the morgan benchmark",
    ]
    if release.requires_python:
        lines.append(f"Requires-Python: {release.requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in project.extras]
    lines += [f"Requires-Dist: {requirement}" for requirement in project.requires]
    body = f"{project.name} does nothing; it exists to be mirrored.\n"
    return ("\n".join(lines) + "\n\n" + body).encode()


def _random_chunks(size: int) -> Iterator[bytes]:
    while size > 0:
        chunk = os.urandom(min(CHUNK, size))
        size -= len(chunk)
        yield chunk


def _wheel_writer(project: Project, release: Release, tags: str, size: int):
    def write(path: Path) -> bytes:
        dist = _dist(project.name)
        info = f"{dist}-{release.version}.dist-info"
        metadata = core_metadata(project, release)
        purelib = "true" if tags.endswith("-any") else "false"
        interpreters, abi, platforms = tags.split("-")
        tag_lines = "".join(
            f"Tag: {i}-{abi}-{p}\n" for i in interpreters.split(".") for p in platforms.split(".")
        )
        wheel = f"Wheel-Version: 1.0\nGenerator: morgan-bench\nRoot-Is-Purelib: {purelib}\n"
        record = []
        temp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
            members = {
                f"{dist}/__init__.py": f"__version__ = {release.version!r}\n".encode(),
            }
            for member, data in members.items():
                archive.writestr(member, data)
                record.append(_record(member, hashlib.sha256(data), len(data)))
            padding = max(0, size - OVERHEAD)
            if padding:
                member = f"{dist}/_data.bin"
                digest = hashlib.sha256()
                with archive.open(member, "w", force_zip64=padding > 2**31) as out:
                    for chunk in _random_chunks(padding):
                        digest.update(chunk)
                        out.write(chunk)
                record.append(_record(member, digest, padding))
            for member, data in (
                (f"{info}/METADATA", metadata),
                (f"{info}/WHEEL", (wheel + tag_lines).encode()),
            ):
                archive.writestr(member, data)
                record.append(_record(member, hashlib.sha256(data), len(data)))
            record.append(f"{info}/RECORD,,")
            archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
        temp.replace(path)
        return metadata

    return write


def _record(member: str, digest: hashlib._Hash, size: int) -> str:
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{member},sha256={encoded},{size}"


def _pyproject(project: Project, release: Release) -> bytes:
    requires = ", ".join(f'"{r}"' for r in project.build_requires)
    if project.build_backend == "in-tree":
        system = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    else:
        system = (
            f'[build-system]\nrequires = [{requires}]\nbuild-backend = "{project.build_backend}"\n'
        )
    if project.build_backend == "setuptools.build_meta":
        return system.encode()  # setup.py-era projects: dependencies live in PKG-INFO
    plain = [r for r in project.requires if "extra ==" not in r]
    table = (
        f'\n[project]\nname = "{project.name}"\nversion = "{release.version}"\n'
        f"dependencies = [{', '.join(json.dumps(r) for r in plain)}]\n"
    )
    extras: dict[str, list[str]] = {}
    for requirement in project.requires:
        match = re.search(r';\s*extra == "([^"]+)"$', requirement)
        if match:
            extras.setdefault(match.group(1), []).append(requirement[: match.start()])
    if extras:
        table += "\n[project.optional-dependencies]\n" + "".join(
            f"{extra} = [{', '.join(json.dumps(r) for r in reqs)}]\n"
            for extra, reqs in extras.items()
        )
    return (system + table).encode()


def _sdist_writer(project: Project, release: Release, extension: str, size: int):
    def write(path: Path) -> None:
        top = path.name[: -len(extension) - 1]
        members = {
            f"{top}/PKG-INFO": core_metadata(project, release),
            f"{top}/pyproject.toml": _pyproject(project, release),
            f"{top}/src/{_dist(project.name)}/__init__.py": b"",
        }
        if project.build_backend == "setuptools.build_meta":
            members[f"{top}/setup.py"] = b"from setuptools import setup\n\nsetup()\n"
        padding = max(0, size - OVERHEAD)
        temp = path.with_name(path.name + ".tmp")
        if extension == "zip":
            with zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
                for member, data in members.items():
                    archive.writestr(member, data)
                with archive.open(f"{top}/data/blob.bin", "w") as out:
                    for chunk in _random_chunks(padding):
                        out.write(chunk)
        else:
            # the gzip header names the file: give the final name, not the temporary one
            with (
                temp.open("wb") as raw,
                tarfile.open(str(path), "w:gz", fileobj=raw, compresslevel=1) as archive,
            ):
                for member, data in members.items():
                    _add(archive, member, data)
                _add(archive, f"{top}/data/blob.bin", b"".join(_random_chunks(padding)))
        temp.replace(path)

    return write


def _add(archive: tarfile.TarFile, member: str, data: bytes) -> None:
    info = tarfile.TarInfo(member)
    info.size = len(data)
    info.mtime = 1_600_000_000
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))
