"""Writing ``morgan.ini`` blocks from the running interpreter, to paste or append."""

from __future__ import annotations

import os
import platform
import re
import sys
import sysconfig
from importlib import metadata as importlib_metadata

from packaging import tags as tagslib
from packaging.utils import canonicalize_name

MODES = (">=", "==", "<=")


def _platform_facts() -> dict[str, str]:
    """The libc or macOS level and ABI of this interpreter, read off its best wheel tag."""
    facts: dict[str, str] = {}
    best = next(iter(tagslib.sys_tags()), None)
    if best is None:
        return facts
    facts["abi"] = best.abi
    for tag in tagslib.sys_tags():
        match = re.match(r"^(manylinux|musllinux|macosx)_(\d+)_(\d+)_", tag.platform)
        if match:
            key = {
                "manylinux": "glibc_version",
                "musllinux": "musl_version",
                "macosx": "macos_version",
            }[match.group(1)]
            facts[key] = f"{match.group(2)}.{match.group(3)}"
            break
    return facts


def environment_block(name: str = "local") -> str:
    """An ``[env.NAME]`` section describing this interpreter exactly."""
    values = {
        "os_name": os.name,
        "sys_platform": sys.platform,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_system": platform.system(),
        "platform_release": platform.release(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "python_full_version": platform.python_version(),
        "implementation_name": sys.implementation.name,
        "platform_tag": sysconfig.get_platform(),
    }
    values.update(_platform_facts())
    lines = [f"[env.{name}]", *(f"{key} = {value}" for key, value in values.items()), ""]
    return "\n".join(lines) + "\n"


def requirements_block(mode: str = ">=") -> str:
    """A ``[requirements]`` section naming every installed distribution."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    found: dict[str, str] = {}
    for dist in importlib_metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    lines = ["[requirements]", *(f"{n} = {mode}{v}" for n, v in sorted(found.items())), ""]
    return "\n".join(lines) + "\n"
