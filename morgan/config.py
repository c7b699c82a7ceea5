"""Reading ``morgan.ini``: client environments and the requirements to mirror.

The format is Morgan's: ``[env.NAME]`` sections of marker values, and a
``[requirements]`` section of ``name = specifier`` lines. A value may carry
extras and markers, and may continue over several lines, each adding a separate
requirement for the same name; a name given twice adds to it as well.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from morgan.environments import Environment
from morgan.errors import ConfigError
from morgan.metadata import UnusableRequirementError, read_requirement

ENV_PREFIX = "env."
REQUIREMENTS_SECTION = "requirements"


class _ExtendingDict(dict):  # type: ignore[type-arg]
    """Section storage in which a repeated option adds its lines instead of replacing.

    configparser stores an option being read as a list of lines; when the same
    option appears again, this keeps the earlier lines.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, list) and isinstance(self.get(key), list):
            self[key].extend(value)
            return
        super().__setitem__(key, value)


@dataclass(frozen=True)
class MirrorConfig:
    """What ``morgan.ini`` asks for."""

    path: str
    environments: tuple[Environment, ...]
    requirements: tuple[Requirement, ...]

    def line_numbers(self) -> dict[str, int]:
        """Where each requirement is written: ``str(requirement)`` → its line in the file.

        configparser keeps no line numbers, so the file is read again the way it
        reads it: a ``key = value`` line, then indented continuation lines.
        """
        try:
            text = Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return {}
        found: dict[str, int] = {}
        section, key = "", ""
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or line.startswith(";"):
                continue
            if not line[0].isspace() and stripped.startswith("[") and stripped.endswith("]"):
                section, key = stripped[1:-1].strip(), ""
                continue
            if section != REQUIREMENTS_SECTION:
                continue
            if line[0].isspace():
                value = stripped
            else:
                cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
                key, value = (line, "") if cut < 0 else (line[:cut], line[cut + 1 :])
                key, value = key.strip(), value.strip()
            if not key:
                continue
            try:
                requirement = parse_requirement_line(key, value, self.path)
            except ConfigError:
                continue
            found.setdefault(str(requirement), number)
        return found

    @classmethod
    def from_file(cls, path: str) -> MirrorConfig:
        """Read and check a configuration file; every problem is a ConfigError."""
        parser = _read(path)
        environments = tuple(
            Environment.from_ini_section(name[len(ENV_PREFIX) :], parser[name], path=path)
            for name in parser.sections()
            if name.startswith(ENV_PREFIX)
        )
        if not environments:
            raise ConfigError(
                path,
                "no [env.NAME] section; add one per client environment "
                "(`morgan generate_env` prints one for this machine)",
            )
        for env in environments:
            if not env.name:
                raise ConfigError(path, "environment name is empty", section="env.")
        if not parser.has_section(REQUIREMENTS_SECTION):
            raise ConfigError(
                path,
                "no [requirements] section; add one with lines like 'requests = >=2.31'",
            )
        requirements = tuple(parse_requirements(parser[REQUIREMENTS_SECTION], path))
        return cls(path=path, environments=environments, requirements=requirements)


def _read(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False,
        interpolation=None,
        dict_type=_ExtendingDict,
        # Only "#" starts a comment everywhere: an indented "; marker" line continues a
        # requirement. Column-0 ";" comments (allowed by Morgan) are dropped below.
        comment_prefixes=("#",),
    )
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            path, "no such configuration file; create it or pass its path with -c/--config"
        )
    try:
        text = file.read_text(encoding="utf-8")
        # blanked rather than removed, so line numbers in messages stay right
        lines = ["" if line.startswith(";") else line for line in text.splitlines()]
        parser.read_string("\n".join(lines) + "\n", source=path)
    except UnicodeDecodeError:
        raise ConfigError(path, "not UTF-8 text") from None
    except configparser.MissingSectionHeaderError as error:
        raise ConfigError(
            path,
            f"line {error.lineno}: {error.line.strip()!r} comes before any [section]; "
            "start with [env.NAME] or [requirements]",
        ) from None
    except configparser.ParsingError as error:
        lineno, line = error.errors[0]
        if line[:1] in ("'", '"'):  # some Pythons keep the repr of the line
            line = ast.literal_eval(line)
        raise ConfigError(
            path,
            f"line {lineno}: {line.strip()!r} is not 'name = value'; "
            "in [requirements] write e.g. 'requests =' (any version) or 'requests = >=2.31'",
        ) from None
    except configparser.Error as error:
        message = str(error).splitlines()[0]
        raise ConfigError(path, f"not a valid INI file ({message})") from None
    except OSError as error:
        raise ConfigError(path, f"cannot be read ({error.strerror})") from None
    return parser


def parse_requirements(section: Mapping[str, str], path: str) -> Iterator[Requirement]:
    """Each requirement of a ``[requirements]`` section, in file order."""
    for name, value in section.items():
        lines = [line.strip() for line in (value or "").splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")] or [""]
        for line in lines:
            yield parse_requirement_line(name, line, path)


def parse_requirement_line(name: str, line: str, path: str) -> Requirement:
    """``name`` plus one value line (``>=1``, ``[extra]~=2``, ``; marker``) as a Requirement."""
    text = f"{name}{line}" if line.startswith(("[", ";", "@")) or not line else f"{name} {line}"
    try:
        requirement = read_requirement(text)
    except UnusableRequirementError as reason:
        raise ConfigError(
            path,
            f"{line!r} is not a valid PEP 508 specifier ({reason}); "
            "write e.g. '>=1.2,<2' or '[extra]~=1.0'",
            section=REQUIREMENTS_SECTION,
            key=name,
        ) from None
    if requirement.url:
        raise ConfigError(
            path,
            "direct URL requirements cannot be mirrored from an index; use a version specifier",
            section=REQUIREMENTS_SECTION,
            key=name,
        )
    requirement.name = canonicalize_name(requirement.name)
    return requirement
