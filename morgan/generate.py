"""Writing ``morgan.ini`` blocks from the running interpreter, to paste or append.

``generate_env`` describes the client as its pip sees it: marker values as PEP 508
markers read them, and the wheel-tag facts pip derives its tags from (the interpreter's
architecture, the running glibc, musl or macOS, the ABI), never the deployment target
the interpreter was built for. Gathering the facts (:meth:`InterpreterFacts.current`)
is kept apart from writing them (:func:`environment_block`), so other machines can be
described by facts alone.
"""

from __future__ import annotations

import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata

from packaging import _manylinux, _musllinux
from packaging import tags as tagslib
from packaging.utils import canonicalize_name

from morgan.environments import KNOWN_KEYS

MODES = (">=", "==", "<=")

#: The marker values written, in this order; platform_version (a kernel build string)
#: and implementation_version (derived from python_full_version) are left out.
MARKER_FIELDS = (
    "os_name",
    "sys_platform",
    "platform_machine",
    "platform_python_implementation",
    "platform_system",
    "platform_release",
    "python_full_version",
    "implementation_name",
)
#: The order the marker keys are written in (the order earlier morgan releases used).
_MARKER_ORDER = (*MARKER_FIELDS[:6], "python_version", *MARKER_FIELDS[6:])


def _level(text: str | None) -> tuple[int, int] | None:
    """The MAJOR.MINOR at the start of a version string ("glibc 2.31", "1.2.4"), or None."""
    match = re.search(r"([0-9]+)\.([0-9]+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def macos_level(release: str) -> tuple[int, int] | None:
    """The level pip's tags start from on a Mac running ``release`` (``platform.mac_ver()[0]``).

    ``packaging.tags.mac_platforms`` counts 10.x releases by their minor version but, from
    macOS 11 on, by the major version alone: 14.4.1 gives ``macosx_14_0`` down to
    ``macosx_11_0``, so MAJOR.0 is written (the same tags, and the level a wheel names).
    """
    match = re.match(r"([0-9]+)(?:\.([0-9]+))?", release.strip())
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major >= 11:
        return (major, 0)
    if major == 10:
        return (10, minor)
    return None


def _normalize(platform_name: str) -> str:
    """``sysconfig.get_platform()`` spelt as a wheel platform tag, as packaging does."""
    return platform_name.replace(".", "_").replace("-", "_").replace(" ", "_")


def interpreter_arch(
    sys_platform: str, machine: str, sysconfig_platform: str, pointer_bits: int, mac_arch: str = ""
) -> str:
    """The architecture this interpreter's wheels are built for, as their tags spell it.

    ``platform.machine()`` names the kernel's architecture: a 32-bit Python on a 64-bit
    Linux says ``x86_64`` but loads only i686 code. This follows
    ``packaging.tags._linux_platforms``: the arch part of ``sysconfig.get_platform()``,
    narrowed to i686 (or armv8l) when pointers are 32-bit. On macOS,
    ``sysconfig.get_platform()`` is the build's deployment target
    (``macosx-10.9-universal2``) and says nothing about the machine, so the running
    CPU (``platform.mac_ver()[2]``) is used, i386/ppc for a 32-bit interpreter, as
    ``packaging.tags._mac_arch`` does. On Windows the interpreter's own platform
    (``win32``, ``win-amd64``, ``win-arm64``) gives ``x86``, ``amd64`` or ``arm64``.
    """
    normalized = _normalize(sysconfig_platform)
    if sys_platform.startswith("linux"):
        arch = normalized[len("linux_") :] if normalized.startswith("linux_") else machine
        if pointer_bits == 32:
            arch = {"x86_64": "i686", "aarch64": "armv8l"}.get(arch, arch)
        return arch
    if sys_platform == "darwin":
        arch = mac_arch or machine
        if pointer_bits == 32:
            return "ppc" if arch.startswith("ppc") else "i386"
        return arch
    if sys_platform == "win32":
        windows = {"win32": "x86", "win_amd64": "amd64", "win_arm64": "arm64"}
        return windows.get(normalized.lower(), machine.lower())
    return machine


@dataclass(frozen=True)
class InterpreterFacts:
    """What pip on one machine sees: its marker values and the facts its wheel tags follow."""

    os_name: str
    sys_platform: str
    #: ``platform.machine()``: the kernel's architecture, what markers compare against.
    platform_machine: str
    platform_python_implementation: str
    platform_system: str
    platform_release: str
    python_full_version: str
    implementation_name: str
    #: The interpreter's architecture (see :func:`interpreter_arch`); differs from
    #: ``platform_machine`` for a 32-bit Python on a 64-bit system.
    arch: str
    abi: str | None = None
    glibc_version: tuple[int, int] | None = None
    musl_version: tuple[int, int] | None = None
    macos_version: tuple[int, int] | None = None
    #: The plain platform tag on systems morgan has no rules for (FreeBSD...).
    generic_platform: str | None = None
    pip_version: str | None = None

    @classmethod
    def from_readings(
        cls,
        markers: Mapping[str, str],
        *,
        sysconfig_platform: str,
        pointer_bits: int,
        mac_release: str = "",
        mac_arch: str = "",
        glibc: str | None = None,
        musl: str | None = None,
        abi: str | None = None,
        pip_version: str | None = None,
    ) -> InterpreterFacts:
        """Facts from raw readings: ``markers`` holds :data:`MARKER_FIELDS`' values,
        ``glibc`` and ``musl`` the running C library's version text, if any."""
        sys_platform = markers["sys_platform"]
        machine = markers["platform_machine"]
        known = sys_platform.startswith("linux") or sys_platform in ("darwin", "win32")
        glibc_level = _level(glibc) if sys_platform.startswith("linux") else None
        musl_level = (
            _level(musl) if sys_platform.startswith("linux") and glibc_level is None else None
        )
        return cls(
            **{key: markers[key] for key in MARKER_FIELDS},
            arch=interpreter_arch(
                sys_platform, machine, sysconfig_platform, pointer_bits, mac_arch
            ),
            abi=abi or None,
            glibc_version=glibc_level,
            musl_version=musl_level,
            macos_version=macos_level(mac_release) if sys_platform == "darwin" else None,
            generic_platform=None if known else _normalize(sysconfig_platform),
            pip_version=pip_version or None,
        )

    @classmethod
    def current(cls) -> InterpreterFacts:
        """The facts of the running interpreter and the machine it runs on."""
        markers = {
            "os_name": os.name,
            "sys_platform": sys.platform,
            "platform_machine": platform.machine(),
            "platform_python_implementation": platform.python_implementation(),
            "platform_system": platform.system(),
            "platform_release": platform.release(),
            "python_full_version": platform.python_version(),
            "implementation_name": sys.implementation.name,
        }
        linux = sys.platform.startswith("linux")
        glibc = _running_glibc() if linux else None
        mac_release, _, mac_arch = platform.mac_ver() if sys.platform == "darwin" else ("", "", "")
        return cls.from_readings(
            markers,
            sysconfig_platform=sysconfig.get_platform(),
            pointer_bits=struct.calcsize("P") * 8,
            mac_release=_real_macos_release(mac_release) if sys.platform == "darwin" else "",
            mac_arch=mac_arch,
            glibc=glibc,
            musl=_running_musl() if linux and glibc is None else None,
            abi=_best_abi(),
            pip_version=_pip_version(),
        )

    @property
    def python_version(self) -> str:
        return ".".join(self.python_full_version.split(".")[:2])

    @property
    def platform_tag(self) -> str | None:
        """A plain platform tag for morgan's ``platform_tag`` key, only where needed.

        Morgan derives wheel tags from ``platform_machine``; when the interpreter's
        architecture differs (a 32-bit Python on a 64-bit system), markers must keep
        the machine's name (``platform_machine == "x86_64"`` holds for that pip) while
        the tags follow the interpreter: then the interpreter's own platform tag is
        written (``linux_i686``, ``win32``). Never a deployment target.
        """
        if self.generic_platform:
            return self.generic_platform
        if self.arch.lower() == self.platform_machine.lower():
            return None
        if self.sys_platform.startswith("linux"):
            return f"linux_{self.arch}"
        if self.sys_platform == "win32":
            return "win32" if self.arch == "x86" else f"win_{self.arch}"
        if self.sys_platform == "darwin" and self.macos_version:
            return "macosx_{}_{}_{}".format(*self.macos_version, self.arch)
        return None


def _running_glibc() -> str | None:
    """The running glibc's version ("glibc 2.31"), not the one the binary was linked for."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        text = None
    if not text:
        try:  # gnu_get_libc_version() through ctypes, as pip does when confstr cannot
            text = _manylinux._glibc_version_string()
        except Exception:  # a private helper of packaging: any failure means "not known"
            text = None
    return text if text and _level(text) else None


def _running_musl() -> str | None:
    """The version of the musl this interpreter runs on (Alpine), as pip reads it."""
    try:
        version = _musllinux._get_musl_version(sys.executable)
    except Exception:  # a private helper of packaging: any failure means "not known"
        return None
    return f"{version.major}.{version.minor}" if version else None


def _real_macos_release(release: str) -> str:
    """``platform.mac_ver()[0]``, asked again when a Python built on an old SDK hears 10.16."""
    if not release.startswith("10.16"):
        return release
    try:  # what packaging.tags.mac_platforms does for the same reason
        return (
            subprocess.run(
                [sys.executable, "-sS", "-c", "import platform; print(platform.mac_ver()[0])"],
                check=True,
                env={"SYSTEM_VERSION_COMPAT": "0"},
                stdout=subprocess.PIPE,
                text=True,
                timeout=60,
            ).stdout.strip()
            or release
        )
    except (OSError, subprocess.SubprocessError):
        return release


def _best_abi() -> str | None:
    best = next(iter(tagslib.sys_tags()), None)
    return best.abi if best is not None else None


def _pip_version() -> str | None:
    """The version of pip installed for this interpreter, if any."""
    try:
        return importlib_metadata.version("pip")
    except importlib_metadata.PackageNotFoundError:
        return None


def environment_block(name: str = "local", facts: InterpreterFacts | None = None) -> str:
    """An ``[env.NAME]`` section describing this interpreter (or ``facts``) exactly."""
    facts = facts or InterpreterFacts.current()
    values = {key: getattr(facts, key) for key in MARKER_FIELDS}
    values["python_version"] = facts.python_version
    lines = [f"[env.{name}]", *(f"{key} = {values[key]}" for key in _MARKER_ORDER)]
    for key, level in (
        ("glibc_version", facts.glibc_version),
        ("musl_version", facts.musl_version),
        ("macos_version", facts.macos_version),
    ):
        if level is not None:
            lines.append(f"{key} = {level[0]}.{level[1]}")
    if facts.abi:
        lines.append(f"abi = {facts.abi}")
    if facts.platform_tag:
        lines.append(f"platform_tag = {facts.platform_tag}")
    # written only once morgan reads the key: a generated block is never one it refuses
    if facts.pip_version and "pip_version" in KNOWN_KEYS:
        lines.append(f"pip_version = {facts.pip_version}")
    return "\n".join([*lines, ""]) + "\n"


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
