"""The lock files of a mirror: each environment's joint resolution, as ``pylock.<env>.toml``.

Facts about each file (sha256, size, upload time) are read from the project
page the mirror just wrote, so the lock says exactly what the tree holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from morgan.environments import Environment
from morgan.index import redact
from morgan.layout import PAGE_JSON, atomic_write
from morgan.models import PREFERRED_HASH
from morgan.plan import EnvironmentPlan
from morgan.pylock import LockedFile, LockedPackage, pylock_filename, render_pylock
from morgan.selection import SelectionOptions, files_to_mirror

log = logging.getLogger(__name__)

#: The marker variables that say which clients a lock file is for (PEP 751 ``environments``).
_LOCK_MARKERS = ("sys_platform", "platform_machine", "implementation_name", "python_version")


def environment_marker(environment: Environment) -> str:
    """A marker that holds on the environment's clients, and on no other kind."""
    return " and ".join(
        f'{key} == "{environment.markers[key]}"'
        for key in _LOCK_MARKERS
        if environment.markers.get(key)
    )


def _page_entries(index_path: Path, project: str) -> Mapping[str, Mapping[str, Any]]:
    data = json.loads((index_path / project / PAGE_JSON).read_text(encoding="utf-8"))
    return {entry["filename"]: entry for entry in data["files"]}


def write_lock_files(
    index_path: Path,
    plans: Sequence[EnvironmentPlan],
    options: SelectionOptions,
    index_url: str,
    origins: Mapping[str, str | None] | None = None,
) -> list[Path]:
    """Write one lock file per environment that has a joint resolution; their paths.

    With alternatives, the first joint resolution is locked. ``origins`` gives the
    index of projects that came from another than ``index_url`` (None: uploaded).
    """
    names = {plan.environment.name: pylock_filename(plan.environment.name) for plan in plans}
    clashes = {n for n in names.values() if list(names.values()).count(n) > 1}
    if clashes:
        raise ValueError(
            f"environments would share a lock file ({', '.join(sorted(clashes))}); "
            "rename one of them"
        )
    pages: dict[str, Mapping[str, Mapping[str, Any]]] = {}
    rendered: dict[tuple[LockedPackage, str | None], str] = {}
    written = []
    for plan in plans:
        if not plan.joint:
            continue
        packages = []
        for pin in plan.joint[0].pins.values():
            if pin.name not in pages:
                pages[pin.name] = _page_entries(index_path, pin.name)
            entries = pages[pin.name]
            locked = []
            for file in files_to_mirror(pin.files, options):
                entry = entries[file.file.filename]
                locked.append(
                    LockedFile(
                        project=pin.name,
                        filename=file.file.filename,
                        sha256=entry["hashes"][PREFERRED_HASH],
                        size=entry["size"],
                        upload_time=entry.get("upload-time"),
                    )
                )
            wheels = tuple(f for f in locked if f.filename.endswith(".whl"))
            sdists = [f for f in locked if not f.filename.endswith(".whl")]
            requires_python = pin.metadata_file.file.requires_python
            packages.append(
                LockedPackage(
                    name=pin.name,
                    version=str(pin.version),
                    requires_python=requires_python,
                    wheels=wheels,
                    sdist=sdists[0] if sdists else None,
                )
            )
        env = plan.environment
        body = render_pylock(
            packages,
            environment_marker=environment_marker(env) or None,
            requires_python=None,
            index_url=redact(index_url),
            origins={name: redact(url) if url else None for name, url in (origins or {}).items()},
            rendered=rendered,
        )
        path = index_path / names[env.name]
        atomic_write(path, body)
        written.append(path)
    return written
