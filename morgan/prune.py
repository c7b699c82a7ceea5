"""``morgan prune``: remove what the configuration no longer needs.

``morgan mirror`` never deletes a distribution: the manifest it writes keeps
listing one that no environment needs any more, with no reason. Pruning
removes those (with their sidecars), rewrites the pages, and writes the
manifest again, so the tree becomes the one a fresh mirror of the same
configuration would have. It trusts the manifest only if it was written for
the configuration as it is now: after editing ``morgan.ini``, mirror first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from morgan.config import MirrorConfig
from morgan.errors import MorganError, UsageError
from morgan.layout import (
    HASH_SUFFIX,
    METADATA_SUFFIX,
    UPLOADED_SUFFIX,
    UPLOADING_SUFFIX,
    check_filename,
    is_distribution,
    is_upload,
    project_dir,
    write_project_pages,
    write_root_pages,
)
from morgan.manifest import (
    LOCK_PREFIX,
    LOCK_SUFFIX,
    MANIFEST,
    ListedFile,
    Manifest,
    config_sha256,
    render,
    unneeded,
    write,
)
from morgan.pylock import pylock_filename

log = logging.getLogger(__name__)


def prune(index: Path, config: MirrorConfig, *, dry_run: bool) -> list[ListedFile]:
    """Remove (or with ``dry_run`` only name) the files no longer needed; those files."""
    listed = Manifest.load(index / MANIFEST)
    if not listed.complete:
        raise UsageError(
            f"{index / MANIFEST} was written by a run that ended with errors, so a file it "
            "gives no reason for may still be needed; run `morgan mirror` until it succeeds"
        )
    if listed.config_sha256 != config_sha256(config):
        raise UsageError(
            f"{index / MANIFEST} was written for another version of {config.path}; "
            "run `morgan mirror` first, then prune"
        )
    locks = {pylock_filename(env.name) for env in config.environments}
    # an upload is never the mirror's to remove, whatever a manifest says
    gone = sorted(
        (f for f in unneeded(listed) if not is_upload(index / f.path)), key=lambda f: f.path
    )
    gone += [
        listed.index_files[path]
        for path in sorted(listed.index_files)
        if path.startswith(LOCK_PREFIX) and path.endswith(LOCK_SUFFIX) and path not in locks
    ]
    paths = [_tree_path(index, file.path) for file in gone]  # all checked before any goes
    if dry_run:
        return gone
    folders = set()
    for file, path in zip(gone, paths):
        for leftover in (path, Path(f"{path}{HASH_SUFFIX}"), Path(f"{path}{METADATA_SUFFIX}")):
            leftover.unlink(missing_ok=True)
        if path.parent != index:
            folders.add(path.parent)
        log.info("%s: removed", file.path)
    for folder in sorted(folders):
        if any(_keeps_folder(child.name) for child in folder.iterdir()):
            write_project_pages(folder, {})
        else:
            _remove_folder(folder)  # a fresh mirror would not have the project at all
    write_root_pages(index)
    why = {f.path: list(f.why) for f in listed.files.values() if f.needed}
    body = render(
        index,
        config=config,
        index_url=listed.index_url,
        why=why,
        complete=True,
        indexes=listed.indexes,
        origins=listed.origins(),
    )
    write(index, body)
    return gone


def _keeps_folder(name: str) -> bool:
    """Whether a project folder must stay: it holds a distribution, or an upload landing."""
    return is_distribution(name) or name.endswith((UPLOADED_SUFFIX, UPLOADING_SUFFIX))


def _remove_folder(folder: Path) -> None:
    """Remove a project folder left with pages, sidecars and state only, file by file
    (never a tree at once): should ``server.py --upload`` land something in it meanwhile,
    the folder is not empty at the end and stays."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            continue  # nothing morgan writes; left, and so is the folder
        if not _keeps_folder(child.name):
            child.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        log.info("%s: kept (something new is in it)", folder.name)


def _tree_path(index: Path, path: str) -> Path:
    """A manifest's path as a file of the tree; never a path out of it (nor through a
    project folder that is a link)."""
    parts = path.split("/")
    try:
        if len(parts) == 1 and parts[0].startswith(LOCK_PREFIX):
            return index / check_filename(parts[0])
        if len(parts) == 2 and is_distribution(parts[1]):
            folder = project_dir(index, parts[0])
            if folder.is_symlink() or not folder.is_dir():
                raise UsageError(f"{folder} is not a folder of the tree; run `morgan verify`")
            return folder / check_filename(parts[1])
    except UsageError:
        raise
    except MorganError:
        pass
    raise UsageError(f"{index / MANIFEST} lists {path!r}, which is not a file prune may remove")
