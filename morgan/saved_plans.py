"""Plans kept between runs: a re-run whose inputs did not change resolves nothing.

An environment's plan is a function of its inputs alone: the configuration,
the options, morgan's own code, and the pages of the projects it consulted (a
file's dependencies are fixed by the sha256 its page gives). So the index
keeps, in the hidden ``.morgan-plans.json``, the plans of the last run that
ended without an error, with a digest of those inputs and of every page read.
A run that finds the same inputs and every one of those pages unchanged (a
304, or the same bytes) takes the plans from the file instead of resolving
again; any difference, or a file that cannot be read, means resolving as if it
were not there. If the tree is also unchanged since the lock files were written
and the tree proven, the lock files and the proof stand as well.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from morgan.config import MirrorConfig
from morgan.environments import Environment
from morgan.layout import atomic_write
from morgan.lockinput import LockInput
from morgan.models import DistributionFile, ReleaseFile
from morgan.plan import EnvironmentPlan
from morgan.provider import Candidate, Findings, ProjectRequirement
from morgan.resolve import Resolution, ResolutionFailure, Task
from morgan.selection import SelectionOptions
from morgan.state import folder_listing

log = logging.getLogger(__name__)

PLANS_FILE = ".morgan-plans.json"
FORMAT = 3


@dataclass(frozen=True)
class SavedPlans:
    """The file's content: what the plans were made from, and the plans."""

    #: Digest of the configuration, options, index URL and morgan's code.
    inputs: str
    #: Every page read while planning: project → page digest (or ``NOT_FOUND``).
    pages: Mapping[str, str]
    #: The tree (``tree_digest``) when its lock files were written and it was proven.
    tree: str
    document: Mapping[str, Any]


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """morgan's own source: another version may resolve differently."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_digest(
    config: MirrorConfig,
    selection: SelectionOptions,
    index_url: str,
    locks: Sequence[LockInput] = (),
) -> str:
    """The digest of everything a plan depends on besides the pages."""
    described = json.dumps(
        [
            FORMAT,
            _code_digest(),
            index_url,
            config.path,
            [_describe(env) for env in config.environments],
            [str(requirement) for requirement in config.requirements],
            repr(selection),
            [[str(lock.path), _file_digest(lock.path)] for lock in locks],
        ]
    )
    return hashlib.sha256(described.encode("utf-8", "surrogateescape")).hexdigest()


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _describe(environment: Environment) -> list[Any]:
    """Everything of an environment that selection reads, as plain values."""
    return [
        environment.name,
        sorted(environment.markers.items()),
        str(environment.python_version),
        [str(tag) for tag in environment.tags],
        environment.level_unknown,
        str(environment.pip_version),
    ]


def load(index_path: Path, inputs: str) -> SavedPlans | None:
    """The saved plans if they were made from the same inputs; None otherwise."""
    try:
        document = json.loads((index_path / PLANS_FILE).read_text(encoding="utf-8"))
        if document.get("format") != FORMAT or document.get("inputs") != inputs:
            return None
        pages = document["pages"]
        tree = document["tree"]
        if not isinstance(pages, dict) or not all(isinstance(v, str) for v in pages.values()):
            return None
        if not isinstance(tree, str):
            return None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as error:
        log.debug("ignoring unreadable %s (%s)", PLANS_FILE, error)
        return None
    return SavedPlans(inputs=inputs, pages=pages, tree=tree, document=document)


def save(
    index_path: Path,
    *,
    inputs: str,
    pages: Mapping[NormalizedName, str],
    tree: str,
    plans: Sequence[EnvironmentPlan],
    findings: Findings,
) -> None:
    """Keep the plans of a run that ended without an error, for the next run."""
    with findings.lock:
        found = {
            "refused": sorted([n, v, why] for (n, v), why in findings.refused.items()),
            "not_found": dict(sorted(findings.not_found.items())),
            "missing_extras": sorted(list(t) for t in findings.missing_extras),
        }
    document = {
        "format": FORMAT,
        "inputs": inputs,
        "pages": dict(sorted(pages.items())),
        "tree": tree,
        "findings": found,
        "plans": {plan.environment.name: _encode_plan(plan) for plan in plans},
        "files": _encode_files(plans),
    }
    # compact: a cache nobody reads, and json's C encoder runs only without indent
    data = (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    atomic_write(index_path / PLANS_FILE, data, durable=False)  # unreadable: resolved again


def tree_digest(index_path: Path) -> str:
    """The tree as ``folder_listing`` sees every project folder, and its lock files by name.

    The same digest after a run whose plans were reused means the lock files and
    the proof of the run that saved them still stand.
    """
    digest = hashlib.sha256()
    with os.scandir(index_path) as entries:
        found = sorted((e.name, e.is_dir()) for e in entries if not e.name.startswith("."))
    for name, is_folder in found:
        if is_folder:
            digest.update(f"{name}\0{folder_listing(index_path / name)}\n".encode())
        elif name.startswith("pylock.") and name.endswith(".toml"):
            digest.update(f"{name}\n".encode())
    return digest.hexdigest()


def forget(index_path: Path) -> None:
    """Drop saved plans that this run's outcome no longer stands behind."""
    (index_path / PLANS_FILE).unlink(missing_ok=True)


def restore(
    saved: SavedPlans, environments: Sequence[Environment]
) -> tuple[list[EnvironmentPlan], Findings]:
    """The saved plans again, with what the pages said of each file they pin (the pages
    are unchanged, so it still holds: no page is read or parsed)."""
    try:
        return _restore(saved, environments)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ValueError(f"{PLANS_FILE} is damaged ({type(error).__name__}: {error})") from None


def _restore(
    saved: SavedPlans, environments: Sequence[Environment]
) -> tuple[list[EnvironmentPlan], Findings]:
    """ValueError if the file does not fit (or is damaged): then resolve."""
    encoded = saved.document["plans"]
    if sorted(encoded) != sorted(env.name for env in environments):
        raise ValueError("other environments")
    files = saved.document["files"]
    parsed: dict[str, ReleaseFile] = {}

    def file_of(name: NormalizedName, filename: str) -> ReleaseFile:
        found = parsed.get(filename)
        if found is None:
            found = ReleaseFile.from_file(_decode_file(filename, files[filename]), name)
            if found is None:
                raise ValueError(f"{filename} is not a file of {name}")
            parsed[filename] = found
        return found

    plans = [_decode_plan(encoded[env.name], env, file_of) for env in environments]
    found = saved.document["findings"]
    findings = Findings(
        refused={(str(n), str(v)): str(why) for n, v, why in found["refused"]},
        not_found={str(k): str(v) for k, v in found["not_found"].items()},
        missing_extras={(str(n), str(v), str(e)) for n, v, e in found["missing_extras"]},
    )
    return plans, findings


# -- encoding -------------------------------------------------------------------


def _encode_plan(plan: EnvironmentPlan) -> dict[str, Any]:
    if plan.errors:
        raise ValueError("a plan with errors is not kept")
    # by identity: ``list.index`` compared each with every resolution before it, field
    # by field (60,000 comparisons on the benchmark's 199 resolutions)
    positions = {id(r): i for i, r in enumerate(plan.resolutions)}

    def position(resolution: Resolution) -> int:
        found = positions.get(id(resolution))
        return plan.resolutions.index(resolution) if found is None else found

    return {
        "resolutions": [_encode_resolution(r) for r in plan.resolutions],
        "joint": [position(r) for r in plan.joint],
        "to_prove": [position(r) for r in plan.to_prove],
        "warnings": [_encode_problem(w) for w in plan.warnings],
        "needs_compiler": sorted(list(pair) for pair in plan.needs_compiler),
        "no_wheel": list(plan.no_wheel),
        "builds": [[sdist, position(r)] for sdist, r in plan.builds],
    }


def _encode_files(plans: Sequence[EnvironmentPlan]) -> dict[str, Any]:
    """What the pages said of every pinned file, by file name."""
    files: dict[str, Any] = {}
    for plan in plans:
        for resolution in plan.resolutions:
            for pin in resolution.pins.values():
                for release_file in pin.files:
                    file = release_file.file
                    files[file.filename] = {
                        "url": file.url,
                        "hashes": dict(file.hashes),
                        "requires_python": file.requires_python,
                        "yanked": file.yanked,
                        "metadata_hashes": (
                            None if file.metadata_hashes is None else dict(file.metadata_hashes)
                        ),
                        "size": file.size,
                        "upload_time": file.upload_time,
                    }
    return dict(sorted(files.items()))


def _decode_file(filename: str, facts: Mapping[str, Any]) -> DistributionFile:
    metadata_hashes = facts["metadata_hashes"]
    yanked = facts["yanked"]
    return DistributionFile(
        filename=filename,
        url=str(facts["url"]),
        hashes={str(k): str(v) for k, v in facts["hashes"].items()},
        requires_python=_optional(facts["requires_python"]),
        yanked=yanked if isinstance(yanked, (bool, str)) else bool(yanked),
        metadata_hashes=(
            None
            if metadata_hashes is None
            else {str(k): str(v) for k, v in metadata_hashes.items()}
        ),
        size=None if facts["size"] is None else int(facts["size"]),
        upload_time=_optional(facts["upload_time"]),
    )


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _encode_resolution(resolution: Resolution) -> dict[str, Any]:
    task = resolution.task
    return {
        "label": task.label,
        "requirements": [[r.name, sorted(r.extras), str(r.specifier)] for r in task.requirements],
        "wheels_only": task.wheels_only,
        "stated_by": task.stated_by,
        "lock": task.lock,
        "pins": [
            [pin.name, str(pin.version), sorted(pin.extras), [f.file.filename for f in pin.files]]
            for pin in resolution.pins.values()
        ],
        "asked_by": {
            name: [list(a) for a in askers] for name, askers in resolution.asked_by.items()
        },
    }


def _encode_problem(problem: str | ResolutionFailure) -> Any:
    if isinstance(problem, ResolutionFailure):
        return [problem.environment, problem.label, list(problem.causes)]
    return problem


def _decode_plan(
    encoded: Mapping[str, Any],
    environment: Environment,
    file_of: Callable[[NormalizedName, str], ReleaseFile],
) -> EnvironmentPlan:
    resolutions = [_decode_resolution(r, file_of) for r in encoded["resolutions"]]
    return EnvironmentPlan(
        environment=environment,
        joint=[resolutions[i] for i in encoded["joint"]],
        resolutions=resolutions,
        to_prove=[resolutions[i] for i in encoded["to_prove"]],
        warnings=[_decode_problem(w) for w in encoded["warnings"]],
        needs_compiler={(str(n), str(v)) for n, v in encoded["needs_compiler"]},
        no_wheel=[str(text) for text in encoded["no_wheel"]],
        builds=[(str(sdist), resolutions[i]) for sdist, i in encoded["builds"]],
    )


def _decode_resolution(
    encoded: Mapping[str, Any], file_of: Callable[[NormalizedName, str], ReleaseFile]
) -> Resolution:
    requirements = tuple(
        ProjectRequirement(
            canonicalize_name(name),
            frozenset(canonicalize_name(e) for e in extras),
            SpecifierSet(specifier),
        )
        for name, extras, specifier in encoded["requirements"]
    )
    task = Task(
        str(encoded["label"]),
        requirements,
        bool(encoded["wheels_only"]),
        str(encoded["stated_by"]),
        str(encoded["lock"]),
    )
    pins = {}
    for name, version, extras, filenames in encoded["pins"]:
        project = canonicalize_name(name)
        pins[project] = Candidate(
            name=project,
            version=Version(version),
            extras=frozenset(canonicalize_name(e) for e in extras),
            files=tuple(file_of(project, filename) for filename in filenames),
        )
    asked_by = {
        canonicalize_name(name): tuple((str(parent), str(asked)) for parent, asked in askers)
        for name, askers in encoded["asked_by"].items()
    }
    return Resolution(task=task, pins=pins, asked_by=asked_by)


def _decode_problem(encoded: Any) -> str | ResolutionFailure:
    if isinstance(encoded, list):
        environment, label, causes = encoded
        return ResolutionFailure(str(environment), str(label), tuple(map(str, causes)))
    return str(encoded)
