"""What ``morgan mirror --lock FILE`` adds to an environment's plan: exactly the lock's pins.

A lock was resolved by the tool that wrote it, so nothing is resolved here: for
each environment the lock covers, each package that applies there becomes a
pin of the plan with the files the environment installs of it (the best wheel
and the sdist, as for any pin), chosen among the index's files that the lock
allows. Each file is then downloaded against the lock's sha256, not only the
page's, so a lock and an index that disagree never put a file in the tree. A
package the index lacks, or whose files all differ from the lock, is an error
that names it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from morgan.environments import Environment
from morgan.errors import MorganError
from morgan.lockinput import LockedRequirement, LockInput, files_from_page, pick_files
from morgan.models import PREFERRED_HASH, ReleaseFile
from morgan.plan import EnvironmentPlan
from morgan.provider import Candidate, ProjectRequirement
from morgan.resolve import Resolution, Task
from morgan.selection import SelectionOptions, ordered_files
from morgan.sources import ProjectSource, describe_failure

log = logging.getLogger(__name__)


def add_locked(
    plan: EnvironmentPlan,
    source: ProjectSource,
    locks: Sequence[LockInput],
    options: SelectionOptions,
) -> None:
    """Add to ``plan`` the pins of every lock that covers its environment."""
    env = plan.environment
    for lock in locks:
        reason = lock.not_covered(env)
        if reason is not None:
            log.info("%s: not for %s (%s)", lock.path, env.name, reason)
            continue
        selection = lock.select(env)
        for skipped in selection.skipped:
            if not skipped.is_local:
                plan.warnings.append(f"{env.name}: {skipped.describe()}")
        for requirement in selection.requirements:
            pin = _locked_pin(source, env, requirement, options)
            if isinstance(pin, str):
                plan.errors.append(f"{env.name}: {pin}")
                continue
            task = Task(
                f"{requirement.name}=={requirement.version} of {lock.path.name}",
                (ProjectRequirement.pin(requirement.name, requirement.version),),
                lock=str(lock.path),
            )
            asked = (("", f"{requirement.name}=={requirement.version}"),)
            plan.add(
                Resolution(task=task, pins={pin.name: pin}, asked_by={pin.name: asked}),
                proven=False,
            )


def covered_environments(
    locks: Sequence[LockInput], environments: Sequence[Environment]
) -> list[str]:
    """Errors for locks that cover none of the configuration's environments."""
    errors = []
    for lock in locks:
        reasons = [lock.not_covered(env) for env in environments]
        if all(reason is not None for reason in reasons):
            named = "; ".join(f"{env.name}: {r}" for env, r in zip(environments, reasons))
            errors.append(
                f"{lock.path} covers none of the environments of the configuration ({named})"
            )
    return errors


def _locked_pin(
    source: ProjectSource,
    env: Environment,
    requirement: LockedRequirement,
    options: SelectionOptions,
) -> Candidate | str:
    """The pin of a locked package in ``env``, or why there is none."""
    where = requirement.origin or requirement.name
    try:
        page = [release.file for release in source.files(requirement.name)]
    except (MorganError, OSError) as error:
        return f"{where}: {requirement.name} {requirement.version}: {describe_failure(error)}"
    project = f"{requirement.name} {requirement.version}"
    allowed = files_from_page(requirement, page)
    if requirement.files_known:  # the files the lock names for env must all be there
        chosen = pick_files(requirement, env, all_wheels=options.all_wheels)
        on_page = {file.filename: file for file in allowed}
        missing = [file.filename for file in chosen if file.filename not in on_page]
        if missing:
            return (
                f"{where}: the index has no {', '.join(missing)} with the lock's sha256 "
                "(it lacks the file, or its digest differs); lock again against this index"
            )
        chosen = [on_page[file.filename] for file in chosen]
    elif not allowed:
        return (
            f"{where}: the index has no file of {project} with the lock's sha256; "
            "lock again against this index"
        )
    else:
        chosen = pick_files(requirement, env, allowed, all_wheels=options.all_wheels)
    if not chosen:
        return f"{where}: no file of {project} the lock allows installs in {env.name}"
    by_name = {file.filename: file for file in page}
    files = []
    for expected in chosen:
        listed = by_name[expected.filename]
        # downloaded against the lock's digest: the page's may be missing (HTML pages)
        hashes = {**listed.hashes, PREFERRED_HASH: expected.sha256}
        release = ReleaseFile.from_file(
            dataclasses.replace(listed, hashes=hashes), requirement.name
        )
        if release is not None:
            files.append(release)
    return Candidate(
        name=requirement.name,
        version=requirement.version,
        files=ordered_files(files, env),
    )
