"""Reading ``morgan.ini``: client environments and the requirements to mirror.

The format is Morgan's: ``[env.NAME]`` sections of marker values, and a
``[requirements]`` section of ``name = specifier`` lines. A value may carry
extras and markers, and may continue over several lines, each adding a separate
requirement for the same name; a name given twice adds to it as well.
"""

from __future__ import annotations

import ast
import configparser
import re
import urllib.parse
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
INDEX_PREFIX = "index."
PRIVATE_SECTION = "private"
#: The name of the index given on the command line (``-I``; PyPI unless told).
DEFAULT_INDEX_NAME = "default"
#: What an ``[index.NAME]`` section may say.
INDEX_KEYS = (
    "url",
    "projects",
    "explicit",
    "username",
    "username-env",
    "password-env",
    "cert",
    "client-cert",
)
_INDEX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PROJECT_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


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
class IndexSection:
    """An upstream index named by an ``[index.NAME]`` section.

    Secrets are never in the file: the password comes from the environment
    variable ``password_env`` names, else from ``~/.netrc`` for the index's host.
    """

    name: str
    url: str
    #: Projects taken from this index only (pinned), normalized.
    projects: frozenset[str] = frozenset()
    #: Only pinned projects come from it; it is not asked for any other.
    explicit: bool = False
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    #: CA bundle and client certificate for this index (paths as written, made absolute).
    cert: str | None = None
    client_cert: str | None = None


@dataclass(frozen=True)
class MirrorConfig:
    """What ``morgan.ini`` asks for."""

    path: str
    environments: tuple[Environment, ...]
    requirements: tuple[Requirement, ...]
    #: Upstream indexes asked before the command line's, in file order.
    indexes: tuple[IndexSection, ...] = ()
    #: Project names never taken from an index unless one is pinned for them (``[private]``).
    private: frozenset[str] = frozenset()

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
        indexes = tuple(
            parse_index_section(name[len(INDEX_PREFIX) :], parser[name], path)
            for name in parser.sections()
            if name.startswith(INDEX_PREFIX)
        )
        _check_pins(indexes, path)
        private: frozenset[str] = frozenset()
        if parser.has_section(PRIVATE_SECTION):
            private = parse_private_section(parser[PRIVATE_SECTION], path)
        return cls(
            path=path,
            environments=environments,
            requirements=requirements,
            indexes=indexes,
            private=private,
        )


def _read(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False,
        interpolation=None,
        dict_type=_ExtendingDict,
        # Only "#" starts a comment everywhere: an indented "; marker" line continues a
        # requirement. Column-0 ";" comments (allowed by Morgan) are dropped below.
        comment_prefixes=("#",),
        allow_no_value=True,  # [private] lists bare names
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
    for section in parser.sections():
        if section == PRIVATE_SECTION:
            continue  # the one section of bare names
        for key, value in parser[section].items():
            if value is None:
                raise ConfigError(
                    path,
                    f"line {_line_of(lines, section, key)}: {key!r} is not 'name = value'; "
                    "in [requirements] write e.g. 'requests =' (any version) or "
                    "'requests = >=2.31'",
                )
    return parser


def _line_of(lines: list[str], section: str, key: str) -> int:
    """Where a bare ``key`` stands in ``section`` (configparser keeps no line numbers)."""
    inside = False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            inside = stripped[1:-1].strip() == section
        elif inside and stripped.lower() == key:
            return number
    return 0


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


def parse_index_section(name: str, section: Mapping[str, str | None], path: str) -> IndexSection:
    """An ``[index.NAME]`` section; ConfigError for anything unusable, secrets above all."""
    where = f"{INDEX_PREFIX}{name}"
    if not _INDEX_NAME.fullmatch(name) or name == DEFAULT_INDEX_NAME:
        raise ConfigError(
            path,
            f"{name!r} cannot name an index; use letters, digits, '.', '-' and '_' "
            f"(and not {DEFAULT_INDEX_NAME!r}, the name of the -I index)",
            section=where,
        )
    for key in section:
        if key in {"password", "token"}:
            raise ConfigError(
                path,
                "a secret is never written in morgan.ini; name the environment variable "
                "that holds it with password-env, or put it in ~/.netrc",
                section=where,
                key=key,
            )
        if key not in INDEX_KEYS:
            raise ConfigError(
                path,
                f"unknown key {key!r}; an index section may say {', '.join(INDEX_KEYS)}",
                section=where,
            )
    values = {key: (value or "").strip() for key, value in section.items()}
    for key, value in values.items():
        if re.search(r"\s#", value):
            raise ConfigError(
                path,
                "has a comment after its value, which would be read as part of it; "
                "put the comment on a line of its own",
                section=where,
                key=key,
            )
    url = values.get("url", "")
    if not url:
        raise ConfigError(path, "no url; add 'url = https://host/simple/'", section=where)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - ValueError if the port is no number or out of range
    except ValueError:
        parts = urllib.parse.urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, "is not an http(s) URL", section=where, key="url")
    if parts.password is not None:
        raise ConfigError(
            path,
            "holds a password; remove it and name the environment variable that holds it "
            "with password-env (or put it in ~/.netrc)",
            section=where,
            key="url",
        )
    folder = Path(path).resolve().parent
    return IndexSection(
        name=name,
        url=url,
        projects=frozenset(_names(values.get("projects", ""), path, where, "projects")),
        explicit=_flag(values.get("explicit", "no"), path, where, "explicit"),
        username=values.get("username") or None,
        username_env=_variable(values.get("username-env", ""), path, where, "username-env"),
        password_env=_variable(values.get("password-env", ""), path, where, "password-env"),
        cert=str(folder / values["cert"]) if values.get("cert") else None,
        client_cert=str(folder / values["client-cert"]) if values.get("client-cert") else None,
    )


def parse_private_section(section: Mapping[str, str | None], path: str) -> frozenset[str]:
    """The names of a ``[private]`` section: one per line, nothing after them."""
    names: set[str] = set()
    for key, value in section.items():
        if (value or "").strip():
            raise ConfigError(
                path,
                "takes names alone, one per line (what to mirror goes in [requirements])",
                section=PRIVATE_SECTION,
                key=key,
            )
        names.update(_names(key, path, PRIVATE_SECTION, key))
    return frozenset(names)


def _names(text: str, path: str, section: str, key: str) -> Iterator[str]:
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        if not _PROJECT_NAME.fullmatch(word):
            raise ConfigError(path, f"{word!r} is not a project name", section=section, key=key)
        yield canonicalize_name(word)


def _flag(text: str, path: str, section: str, key: str) -> bool:
    lowered = text.lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0", ""):
        return False
    raise ConfigError(path, f"{text!r} is neither yes nor no", section=section, key=key)


def _variable(text: str, path: str, section: str, key: str) -> str | None:
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ConfigError(
            path, f"{text!r} is not the name of an environment variable", section=section, key=key
        )
    return text


def _check_pins(indexes: tuple[IndexSection, ...], path: str) -> None:
    pinned: dict[str, str] = {}
    for index in indexes:
        if index.explicit and not index.projects:
            raise ConfigError(
                path,
                "explicit, but pins no project: nothing would ever come from it; "
                "add 'projects = NAME ...'",
                section=f"{INDEX_PREFIX}{index.name}",
            )
        for project in sorted(index.projects):
            if project in pinned:
                raise ConfigError(
                    path,
                    f"{project} is pinned to both [{INDEX_PREFIX}{pinned[project]}] and "
                    f"[{INDEX_PREFIX}{index.name}]; a project comes from one index",
                )
            pinned[project] = index.name
