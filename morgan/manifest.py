"""``INDEX/manifest.json``: every file the tree serves, its digest, and why it is there.

A security review reads it to know what crosses the air gap and why; ``verify``
checks a tree against it (``server.py verify`` does, on the offline side, with
the standard library alone); ``export --since`` compares two of them to carry
only what changed; ``prune`` removes what it marks as no longer needed; and
``morgan why`` walks its reasons back to the lines of ``morgan.ini``.

Distributions are listed under ``files`` with their project, version, the
environments they serve and the reasons (one per environment and asker);
a distribution the configuration no longer needs stays listed, with no
environment and no reason, until ``prune`` removes it. Everything else a client
is served (pages, sidecars, lock files, ``server.py``) is listed under
``index-files`` with its digest only. The manifest never lists itself, the
configuration, or hidden files. It is written last, and atomically, by every
``morgan mirror``: its digest then names the whole tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from morgan import __version__
from morgan.config import MirrorConfig
from morgan.errors import MorganError, UnsafeNameError
from morgan.layout import (
    HASH_SUFFIX,
    METADATA_SUFFIX,
    PAGE_HTML,
    PAGE_JSON,
    atomic_write,
    is_distribution,
    is_upload,
    project_dir,
    regular_file_digest,
    upload_record,
)
from morgan.models import PREFERRED_HASH
from morgan.plan import EnvironmentPlan
from morgan.provider import ProjectRequirement
from morgan.resolve import Resolution
from morgan.selection import SelectionOptions, files_to_mirror

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SERVER = "server.py"
#: Root files the tree serves besides the project folders.
ROOT_PAGES = (PAGE_HTML, PAGE_JSON)
LOCK_PREFIX, LOCK_SUFFIX = "pylock.", ".toml"

#: Why a file is there (the ``reason`` of each entry of its ``why``).
REQUIREMENT, DEPENDENCY, BUILD, WHEELS_ONLY = "requirement", "dependency", "build", "wheels-only"
LOCK = "lock"
#: The reason of an upload (``server.py --upload``): for every environment, whatever the
#: configuration says; its ``environment`` is ``ANY_ENVIRONMENT``.
UPLOAD, ANY_ENVIRONMENT = "upload", "*"


class ManifestError(MorganError):
    """A manifest that cannot be read or is not morgan's."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ListedFile:
    """One file of the manifest: its digest, and for a distribution what and why."""

    path: str
    sha256: str
    size: int
    project: str = ""
    version: str = ""
    environments: tuple[str, ...] = ()
    why: tuple[Mapping[str, Any], ...] = ()
    #: The upstream index the project came from, where the mirror has several.
    index: str = ""

    @property
    def needed(self) -> bool:
        return bool(self.why)


@dataclass(frozen=True)
class Manifest:
    """A manifest as read back."""

    #: Written by a run that ended without an error: its reasons are the whole story.
    complete: bool
    config_sha256: str
    index_url: str
    environments: tuple[str, ...]
    #: Distributions, by path.
    files: Mapping[str, ListedFile]
    #: Pages, sidecars, lock files and ``server.py``, by path.
    index_files: Mapping[str, ListedFile]
    #: The upstream indexes by name, where the mirror has several.
    indexes: Mapping[str, str] = field(default_factory=dict)

    def origins(self) -> dict[str, str]:
        """Which index each project came from (where the manifest says)."""
        return {f.project: f.index for f in self.files.values() if f.index}

    def all_files(self) -> dict[str, ListedFile]:
        return {**self.files, **self.index_files}

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest; ManifestError (one line) if it is missing or damaged.

        Its paths and digests are checked by the same rules as the offline side's
        (``server.py``), so nothing read here names a file outside the tree.
        """
        from morgan import server  # noqa: PLC0415 - the offline side's rules, only when asked

        try:
            data = path.read_bytes()
            server.parse_manifest(data)
            document = json.loads(data)
        except FileNotFoundError:
            raise ManifestError(
                path, "no manifest here; run `morgan mirror` to write one (or pass -i INDEX)"
            ) from None
        except OSError as error:
            raise ManifestError(path, f"cannot be read ({error.strerror})") from None
        except ValueError as error:
            raise ManifestError(path, f"{error}; run `morgan mirror` again") from None
        try:
            return cls._from_document(document)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ManifestError(
                path, f"not a manifest morgan can read ({type(error).__name__}: {error})"
            ) from None

    @classmethod
    def _from_document(cls, document: Mapping[str, Any]) -> Manifest:
        if document["manifest-version"] != MANIFEST_VERSION:
            raise ValueError(f"manifest-version {document['manifest-version']!r}")
        files = {
            str(path): ListedFile(
                path=str(path),
                sha256=str(entry["sha256"]),
                size=int(entry["size"]),
                project=str(entry["project"]),
                version=str(entry["version"]),
                environments=tuple(map(str, entry["environments"])),
                why=tuple(_reason(reason) for reason in entry["why"]),
                index=str(entry.get("index", "")),
            )
            for path, entry in document["files"].items()
        }
        index_files = {
            str(path): ListedFile(str(path), str(entry["sha256"]), int(entry["size"]))
            for path, entry in document["index-files"].items()
        }
        return cls(
            complete=document["complete"] is True,
            config_sha256=str(document["config-sha256"]),
            index_url=str(document["index-url"]),
            environments=tuple(map(str, document["environments"])),
            files=files,
            index_files=index_files,
            indexes={str(k): str(v) for k, v in dict(document.get("indexes") or {}).items()},
        )


def _reason(reason: Any) -> dict[str, Any]:
    if not isinstance(reason, dict) or not all(
        isinstance(reason.get(key), str) for key in ("environment", "reason")
    ):
        raise ValueError(f"a reason without environment or kind: {reason!r}")
    return dict(reason)


def config_sha256(config: MirrorConfig) -> str:
    try:
        return hashlib.sha256(Path(config.path).read_bytes()).hexdigest()
    except OSError:
        return ""


def written_for(index: Path) -> tuple[bool, str] | None:
    """Whether the index's manifest is complete, and its config's digest (None if there
    is no readable manifest): enough to tell whether a run must write it again."""
    try:
        document = json.loads((index / MANIFEST).read_bytes())
        complete, config = document["complete"], document["config-sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(complete, bool) or not isinstance(config, str):
        return None
    return complete, config


def manifest_sha256(index: Path) -> str | None:
    """The digest of ``INDEX/manifest.json`` (what names a bundle's base), None if absent."""
    try:
        return hashlib.sha256((index / MANIFEST).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


# -- why each file is there -------------------------------------------------------


def reasons(
    plans: Sequence[EnvironmentPlan], config: MirrorConfig, options: SelectionOptions
) -> dict[str, list[dict[str, Any]]]:
    """Every file the plans mirror (``project/filename``) → why, per environment."""
    lines = _config_lines(config)
    found: dict[str, dict[tuple[tuple[str, str], ...], dict[str, Any]]] = {}
    for plan in plans:
        env = plan.environment.name
        builds: dict[int, list[str]] = {}
        for sdist, resolution in plan.builds:
            builds.setdefault(id(resolution), []).append(sdist)
        # The resolutions of an environment share most of their pins and askers: each
        # (pin, asker, kind of task) gives the same reasons every time it recurs.
        seen: set[tuple[Any, ...]] = set()
        for resolution in plan.resolutions:
            for path, reason in _resolution_reasons(
                env, resolution, builds.get(id(resolution), []), lines, options, seen=seen
            ):
                key = tuple(sorted((k, str(v)) for k, v in reason.items()))
                found.setdefault(path, {})[key] = reason
    return {path: [given[key] for key in sorted(given)] for path, given in found.items()}


def _config_lines(config: MirrorConfig) -> dict[str, int]:
    """A task's requirement (as ``ProjectRequirement`` says it) → its line in the config;
    also each project name → its first line, for requirements ``-a`` derives."""
    numbers = config.line_numbers()
    lines: dict[str, int] = {}
    for requirement in config.requirements:
        number = numbers.get(str(requirement))
        if number is None:
            continue
        lines.setdefault(str(ProjectRequirement.from_requirement(requirement)), number)
        lines.setdefault(canonicalize_name(requirement.name), number)
    return lines


def _resolution_reasons(
    env: str,
    resolution: Resolution,
    sdists_built: Sequence[str],
    lines: Mapping[str, int],
    options: SelectionOptions,
    *,
    seen: set[tuple[Any, ...]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Why the resolution's files are there; what ``seen`` holds was said already."""
    task = resolution.task
    built = tuple(sdists_built)
    for name, pin in resolution.pins.items():
        paths: list[str] | None = None
        for parent, asked in resolution.asked_by.get(name, ()):
            parent_pin = resolution.pins[canonicalize_name(parent)] if parent else None
            said = (
                name,
                pin.version,
                len(pin.files),  # a version's files here: with its yanked ones, or without
                None if parent_pin is None else (parent_pin.name, parent_pin.version),
                asked,
                task.wheels_only,
                None if parent_pin else (task.lock, built),
            )
            if said in seen:
                continue
            seen.add(said)
            if paths is None:
                paths = [
                    f"{name}/{file.file.filename}" for file in files_to_mirror(pin.files, options)
                ]
            wheels_only = task.wheels_only
            if parent_pin is not None:
                given = [
                    {
                        "reason": WHEELS_ONLY if wheels_only else DEPENDENCY,
                        "of": f"{parent_pin.name} {parent_pin.version}",
                        "requirement": asked,
                    }
                ]
            elif task.lock:
                given = [{"reason": LOCK, "lock": task.lock, "requirement": asked}]
            elif sdists_built:
                given = [
                    {"reason": BUILD, "of": sdist, "requirement": asked} for sdist in sdists_built
                ]
            else:
                reason: dict[str, Any] = {
                    "reason": WHEELS_ONLY if wheels_only else REQUIREMENT,
                    "requirement": asked,
                }
                line = lines.get(asked, lines.get(name))
                if line is not None:
                    reason["line"] = line
                given = [reason]
            for path in paths:
                for reason in given:
                    yield path, {"environment": env, **reason}


# -- writing ----------------------------------------------------------------------


def render(
    index: Path,
    *,
    config: MirrorConfig,
    index_url: str,
    why: Mapping[str, Sequence[Mapping[str, Any]]],
    complete: bool,
    indexes: Mapping[str, str] | None = None,
    origins: Mapping[str, str] | None = None,
) -> bytes:
    """The manifest of the tree as it is now (its pages must be written: they give the
    distributions' digests, which are not computed again).

    ``complete`` says the run behind ``why`` ended without an error; after one that
    did not (a page that could not be read, say), a file without a reason may still
    be needed, and ``prune`` waits for a complete manifest.

    With several upstream indexes, ``indexes`` names them (name → URL, redacted) and
    ``origins`` says which one each project came from. An uploaded file is always
    needed: its reason is the upload.
    """
    files: dict[str, Any] = {}
    index_files: dict[str, Any] = {}
    for folder in _project_folders(index):
        for filename, entry in _page_files(folder).items():
            path = f"{folder.name}/{filename}"
            given = [r for r in why.get(path, ()) if r.get("reason") != UPLOAD]
            if is_upload(folder / filename):
                given.insert(0, _upload_reason(folder / filename))
            files[path] = {
                "sha256": entry["sha256"],
                "size": entry["size"],
                "project": folder.name,
                "version": entry["version"],
                "environments": sorted(
                    {str(reason["environment"]) for reason in given} - {ANY_ENVIRONMENT}
                ),
                "why": given,
            }
            if origins and folder.name in origins:
                files[path]["index"] = origins[folder.name]
            for suffix in (METADATA_SUFFIX, HASH_SUFFIX):
                _add_plain(index_files, index, f"{path}{suffix}")
        for page in (PAGE_HTML, PAGE_JSON):
            _add_plain(index_files, index, f"{folder.name}/{page}")
    for name in _root_files(index):
        _add_plain(index_files, index, name)
    document = {
        "manifest-version": MANIFEST_VERSION,
        "generator": f"morgan {__version__}",
        "complete": complete,
        "config-sha256": config_sha256(config),
        "index-url": index_url,
        "environments": [env.name for env in config.environments],
        **({"indexes": dict(indexes)} if indexes else {}),
        "files": dict(sorted(files.items())),
        "index-files": dict(sorted(index_files.items())),
    }
    return _layout(document).encode("utf-8")


def _layout(document: Mapping[str, Any]) -> str:
    """The manifest as text for people and diffs: one line per top-level key, and one
    line per file of ``files`` and ``index-files`` (json's C encoder runs only without
    indentation, and a tree has thousands of files)."""
    lines = ["{"]
    for position, (key, value) in enumerate(document.items()):
        comma = "," if position < len(document) - 1 else ""
        if isinstance(value, dict) and key in ("files", "index-files") and value:
            lines.append(f" {json.dumps(key)}: {{")
            entries = [
                f"  {json.dumps(path)}: {json.dumps(entry)}" for path, entry in value.items()
            ]
            lines.append(",\n".join(entries))
            lines.append(f" }}{comma}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _upload_reason(path: Path) -> dict[str, Any]:
    record = upload_record(path)
    reason: dict[str, Any] = {"environment": ANY_ENVIRONMENT, "reason": UPLOAD}
    for key in ("uploader", "upload-time"):
        if isinstance(record.get(key), str):
            reason[key] = record[key]
    return reason


def write(index: Path, body: bytes) -> bool:
    """Replace the manifest (atomically; not at all if unchanged). True if it changed."""
    return atomic_write(index / MANIFEST, body)


def _project_folders(index: Path) -> list[Path]:
    folders = []
    for entry in sorted(os.scandir(index), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            project_dir(index, entry.name)
        except UnsafeNameError:
            continue
        folders.append(Path(entry.path))
    return folders


def _root_files(index: Path) -> list[str]:
    names = []
    for entry in os.scandir(index):
        name = entry.name
        if not entry.is_file(follow_symlinks=False):
            continue
        if name in (*ROOT_PAGES, SERVER) or (
            name.startswith(LOCK_PREFIX) and name.endswith(LOCK_SUFFIX)
        ):
            names.append(name)
    return sorted(names)


def _page_files(folder: Path) -> dict[str, dict[str, Any]]:
    """The distributions a project page lists, with their digest, size and version."""
    page = folder / PAGE_JSON
    try:
        document = json.loads(page.read_bytes())
        entries = document["files"]
    except FileNotFoundError:
        entries = []
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ManifestError(page, f"cannot be read to list its files ({error})") from None
    found = {}
    for entry in entries:
        filename = entry["filename"]
        if not is_distribution(filename) or not (folder / filename).is_file():
            continue
        found[filename] = {
            "sha256": entry["hashes"][PREFERRED_HASH],
            "size": entry["size"],
            "version": _version_of(filename),
        }
    return found


def _version_of(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""


def _add_plain(listing: dict[str, Any], index: Path, path: str) -> None:
    found = regular_file_digest(index / path)
    if found is not None:
        listing[path] = {"sha256": found[0], "size": found[1]}


# -- why ----------------------------------------------------------------------------

#: Chains printed per environment at most: a project deep in a wide graph has many.
MAX_CHAINS = 30


def chains(manifest: Manifest, name: str) -> dict[str, list[str]]:
    """Per environment, the chains that pulled ``name`` in, as ``morgan why`` prints them.

    ``idna 3.20 <- requests 2.32.5 <- morgan.ini line 3 (requests>=2.31)``.
    """
    project = canonicalize_name(name)
    by_env: dict[str, dict[tuple[str, str], list[Mapping[str, Any]]]] = {}
    version_of_sdist: dict[str, tuple[str, str]] = {}
    for listed in manifest.files.values():
        node = (listed.project, listed.version)
        version_of_sdist[listed.path] = node
        for reason in listed.why:
            given = by_env.setdefault(str(reason["environment"]), {}).setdefault(node, [])
            if reason not in given:
                given.append(reason)
    found: dict[str, list[str]] = {}
    for env in sorted(by_env):
        graph = by_env[env]
        starts = sorted(node for node in graph if node[0] == project)
        lines: list[str] = []
        for start in starts:
            for chain in _walk(graph, version_of_sdist, start, (start,)):
                if len(lines) >= MAX_CHAINS:
                    break
                lines.append(" <- ".join(chain))
        if lines:
            found[env] = list(dict.fromkeys(lines))
    return found


def _walk(
    graph: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]],
    sdists: Mapping[str, tuple[str, str]],
    node: tuple[str, str],
    seen: tuple[tuple[str, str], ...],
) -> Iterator[list[str]]:
    here = f"{node[0]} {node[1]}"
    for reason in graph.get(node, ()):
        kind, asked = reason.get("reason"), reason.get("requirement", "")
        of = reason.get("of")
        if kind == BUILD and isinstance(of, str) and of in sdists:
            parent = sdists[of]
            step = f"building {of.rsplit('/', 1)[-1]}"
        elif isinstance(of, str) and " " in of:
            parent = (canonicalize_name(of.split(" ", 1)[0]), of.split(" ", 1)[1])
            step = ""
        elif kind == LOCK:
            yield [here, f"{reason.get('lock')} ({asked})"]
            continue
        elif kind == UPLOAD:
            by, when = reason.get("uploader"), reason.get("upload-time")
            said = ["uploaded", *([f"by {by}"] if by else []), *([f"at {when}"] if when else [])]
            yield [here, " ".join(said)]
            continue
        else:
            line = reason.get("line")
            where = f"morgan.ini line {line}" if line else "morgan.ini"
            extra = " (wheels only)" if kind == WHEELS_ONLY else ""
            yield [here, f"{where} ({asked}){extra}"]
            continue
        if parent in seen:
            continue
        for rest in _walk(graph, sdists, parent, (*seen, parent)):
            yield [here, *([step] if step else []), *rest]


def removed_paths(old: Manifest, new: Manifest) -> list[str]:
    """What ``old`` lists and ``new`` does not: gone from the tree since."""
    kept = new.all_files()
    return sorted(path for path in old.all_files() if path not in kept)


def changed_paths(old: Manifest | None, new: Manifest) -> list[str]:
    """What ``new`` lists that ``old`` does not, or with other bytes."""
    before = old.all_files() if old else {}
    return sorted(
        path
        for path, listed in new.all_files().items()
        if path not in before or before[path].sha256 != listed.sha256
    )


def unneeded(manifest: Manifest) -> list[ListedFile]:
    """Distributions the configuration no longer needs."""
    return [listed for listed in manifest.files.values() if not listed.needed]


def total_size(files: Iterable[ListedFile]) -> int:
    return sum(listed.size for listed in files)
