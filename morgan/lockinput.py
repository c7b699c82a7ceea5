"""Lock files a user wants mirrored exactly (``morgan mirror --lock FILE``).

Three formats are read, each into the same shape: for one client environment, the
projects that apply there, each at one version, with the files the lock allows.

* PEP 751 ``pylock.toml`` / ``pylock.<name>.toml``: the lock's ``environments`` and
  ``requires-python`` say which clients it covers; each package's ``marker`` and
  ``requires-python`` whether it applies. Files are known by name, sha256 and size.
* uv's ``uv.lock`` (and a script's ``<script>.py.lock``): universal, so which packages
  apply is found by walking the dependency graph from the workspace roots (every
  member, else the local projects nothing depends on, and the ``[manifest]``
  requirements of a script or of a workspace root that is no project), as ``uv sync
  --all-packages --all-extras --all-groups`` would, following the edges whose markers
  hold in the environment; of a package forked into several versions, the edge names
  the one that applies.
* ``requirements.txt`` as ``pip-compile --generate-hashes`` or ``uv pip compile
  --generate-hashes`` write it: every requirement pinned with ``==`` (or ``===``) and
  hashed. Files are not named there, only allowed by sha256: the mirror matches the
  index's files by digest (:func:`files_from_page`).

Decisions on what the formats leave open:

* Packages that cannot come from an index (PEP 751 ``vcs``, ``directory`` and
  ``archive`` entries; uv ``git``, ``url`` and ``path`` sources; direct references and
  ``-e`` lines of a requirements file) are skipped, not refused: one git dependency
  should not keep the rest of a lock from being mirrored. Each is reported by
  :meth:`LockInput.select` (and logged by :meth:`LockInput.for_environment`), as a
  warning, except local source trees (the project itself, workspace members, path
  dependencies), which are the user's own code and only noted.
* Extras and dependency groups: a package applies when its marker holds in the
  environment for *some* choice of extras and groups, so the mirror serves whatever
  the client installs. Without conflicting extras this is exactly ``--all-extras
  --all-groups``; with uv's conflicting extras (which uv encodes as ``extra ==
  'extra-7-project-cpu'`` markers) both sides are mirrored, so one project may apply at
  two versions. A PEP 751 ``'x' in extras`` holds only for extras the lock declares.
* Every file is checked by sha256, the digest morgan records for every file: a lock
  entry without one (only sha512, say) is an error, and in a requirements file other
  ``--hash`` algorithms are ignored beside at least one sha256.
* In a requirements file, ``-r FILE`` is followed, relative to the file that names it
  (as pip does); ``-c FILE`` is ignored, since constraints add no package and every
  requirement is pinned already. Index options (``-i``, ``--extra-index-url``) are
  recorded in :attr:`LockInput.index_urls`; other pip options that change nothing
  about which files exist (``--find-links``, ``--trusted-host``, ``--pre``, ...) are
  accepted and ignored, anything else is refused.

Every problem with the file is a :class:`LockInputError`: a ConfigError, so the CLI
prints one line (naming the file, the line or package, and the fix) and exits 2.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Union

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from morgan.environments import PROBE_MARKER_ENVIRONMENT, Environment, evaluate_marker
from morgan.errors import ConfigError, DistributionError, UnsafeNameError
from morgan.index import redact
from morgan.layout import check_filename
from morgan.metadata import (
    MAX_NESTING,
    MAX_REQUIREMENT_LENGTH,
    UnusableRequirementError,
    read_requirement,
)
from morgan.models import PREFERRED_HASH, DistributionFile, ReleaseFile
from morgan.selection import SelectionOptions, files_to_mirror, ordered_files, releases

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older interpreters only
    import tomli as tomllib

log = logging.getLogger(__name__)

#: The formats :func:`read_lock` reads, as :attr:`LockInput.format` names them.
FORMATS = ("pylock", "uv.lock", "requirements")
#: PEP 751: ``pylock.toml``, or ``pylock.<name>.toml`` where ``<name>`` has no dot.
_PYLOCK_NAME = re.compile(r"pylock(?:\.[^.]+)?\.toml")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: pip's other --hash algorithms: accepted beside a sha256, and ignored.
_OTHER_HASHES = {"sha384": 96, "sha512": 128}
#: The uv.lock format versions read (uv refuses any other as well).
_UV_LOCK_VERSION = 1
#: uv source kinds: the user's own source trees, and the ones no index can serve.
_UV_LOCAL = ("editable", "virtual", "directory")
_UV_UNMIRRORABLE = ("git", "url", "path")


class LockInputError(ConfigError):
    """A lock file given to ``morgan mirror --lock`` that cannot be used as written.

    A ConfigError (so a ValueError): the CLI prints it as one line and exits 2. The
    message reads ``FILE[:LINE][: WHERE]: problem; fix``, where ``WHERE`` is the entry
    of a TOML lock (``package 'foo' 1.0``, ``packages[3]``).
    """

    def __init__(
        self, path: Path | str, problem: str, *, line: int | None = None, where: str = ""
    ) -> None:
        shown = f"{path}:{line}" if line is not None else str(path)
        if where:
            shown += f": {where}"
        super().__init__(shown, problem)
        self.lock_path = str(path)
        self.line = line
        self.where = where


# -- what a lock file says ------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedFile:
    """One distribution file a lock allows, and what its bytes must be."""

    filename: str
    #: Lowercase hex.
    sha256: str
    size: int | None = None
    #: Where the lock found it (informational: the mirror downloads from its own upstream).
    url: str | None = None
    #: The index's Requires-Python for the file, when it comes from a page
    #: (:func:`files_from_page`); a lock's own is the requirement's.
    requires_python: str | None = None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass(frozen=True)
class LockedRequirement:
    """One project at the exact version a lock installs in an environment.

    ``files`` are the files the lock names (pylock, uv.lock); a requirements file
    names none, and then only ``sha256`` says which of the index's files are allowed.
    """

    name: NormalizedName
    version: Version
    files: tuple[ExpectedFile, ...]
    #: Every digest an allowed file may have: the files' own, or a requirement's --hash values.
    sha256: frozenset[str]
    requires_python: str | None = None
    #: Where in the lock it is said, for messages (``FILE:LINE`` or ``FILE: package NAME``).
    origin: str = ""
    #: The index the lock says the package comes from, if it names one.
    index: str | None = None

    @property
    def files_known(self) -> bool:
        """Whether the lock names the files (else the index's are matched by sha256)."""
        return bool(self.files)


@dataclass(frozen=True)
class SkippedPackage:
    """A package that applies in an environment but cannot come from an index."""

    name: str
    #: ``local`` (a source tree: the project, a member, a path dependency), ``vcs``,
    #: ``url`` (a remote archive) or ``archive`` (a local archive file).
    kind: str
    #: Where it comes from, with any password removed, fit to print.
    source: str
    origin: str = ""

    @property
    def is_local(self) -> bool:
        """The user's own source tree, which no mirror is expected to serve."""
        return self.kind == "local"

    def describe(self) -> str:
        """One line saying what is skipped and why."""
        if self.is_local:
            return f"{self.origin}: {self.name} is a local source tree ({self.source}); skipped"
        return (
            f"{self.origin}: {self.name} comes from {self.kind} {self.source}, not from an "
            "index, so it is not mirrored; the clients need it from elsewhere"
        )


@dataclass(frozen=True)
class LockSelection:
    """What a lock installs in one environment."""

    requirements: tuple[LockedRequirement, ...]
    skipped: tuple[SkippedPackage, ...] = ()


class LockInput(ABC):
    """A lock file that was read and checked; ask it what applies in each environment."""

    #: One of :data:`FORMATS`.
    format: ClassVar[str]

    def __init__(self, path: Path, index_urls: Sequence[str] = ()) -> None:
        self.path = path
        #: The indexes the lock names, in order of appearance (informational).
        self.index_urls: tuple[str, ...] = tuple(dict.fromkeys(index_urls))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @abstractmethod
    def not_covered(self, environment: Environment) -> str | None:
        """Why the lock does not cover ``environment``, or None when it does."""

    def covers(self, environment: Environment) -> bool:
        """Whether the lock is meant for ``environment`` (its environments and Python)."""
        return self.not_covered(environment) is None

    def select(self, environment: Environment) -> LockSelection:
        """The packages that apply in ``environment``, and those skipped there.

        A LockInputError if the lock does not cover the environment (see
        :meth:`covers`) or something only the environment shows is wrong (two pins
        of one project, a uv.lock edge to nothing). Sorted by name, then version.
        """
        reason = self.not_covered(environment)
        if reason is not None:
            raise LockInputError(
                self.path,
                f"does not cover environment {environment.name!r}: {reason}; lock for it too, "
                "or leave this lock out for that environment",
            )
        requirements, skipped = self._select(environment)
        return LockSelection(
            tuple(sorted(requirements, key=lambda r: (r.name, r.version))),
            tuple(sorted(skipped, key=lambda s: (s.name, s.origin))),
        )

    def for_environment(self, environment: Environment) -> list[LockedRequirement]:
        """:meth:`select`'s requirements, logging each skipped package (a warning unless local)."""
        selection = self.select(environment)
        for skipped in selection.skipped:
            level = logging.INFO if skipped.is_local else logging.WARNING
            log.log(level, "%s (for %s)", skipped.describe(), environment.name)
        return list(selection.requirements)

    @abstractmethod
    def _select(
        self, environment: Environment
    ) -> tuple[list[LockedRequirement], list[SkippedPackage]]: ...


def read_lock(path: Path | str, *, format: str | None = None) -> LockInput:
    """Read and check a lock file; every problem with it is a one-line LockInputError.

    The format is ``format`` if given (one of :data:`FORMATS`), else told by the name
    (``pylock.toml``, ``pylock.<name>.toml``, ``uv.lock``, ``<script>.py.lock``,
    ``*.txt``, ``*.in``), else by the content.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = format or _format_by_name(path.name)
    if kind is not None and kind not in FORMATS:
        raise LockInputError(path, f"unknown lock format {kind!r}; use one of {', '.join(FORMATS)}")
    if kind == "requirements":
        return RequirementsInput.read(path, _text(path, data))
    if kind is None:
        document = _toml_or_none(_text(path, data))
        if document is None or not ("lock-version" in document or "package" in document):
            return RequirementsInput.read(path, _text(path, data))
        kind = "pylock" if "lock-version" in document else "uv.lock"
    document = _toml(path, data)
    if kind == "pylock":
        return PylockInput.read(path, document)
    return UvLockInput.read(path, document)


def _format_by_name(name: str) -> str | None:
    if _PYLOCK_NAME.fullmatch(name):
        return "pylock"
    if name == "uv.lock" or name.endswith(".py.lock"):
        return "uv.lock"
    if name.endswith((".txt", ".in")):
        return "requirements"
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise LockInputError(
            path, f"cannot be read ({error.strerror or error}); check the path given to --lock"
        ) from None


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LockInputError(path, "is not UTF-8 text; save it as UTF-8") from None


def _toml_or_none(text: str) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    return document


def _toml(path: Path, data: bytes) -> dict[str, Any]:
    try:
        document: dict[str, Any] = tomllib.loads(_text(path, data))
    except tomllib.TOMLDecodeError as error:
        reason = str(error).splitlines()[0] if str(error) else "invalid"
        raise LockInputError(
            path, f"is not valid TOML ({reason[:200]}); regenerate it with the tool that made it"
        ) from None
    return document


# -- choosing files -------------------------------------------------------------------------


def pick_files(
    requirement: LockedRequirement,
    environment: Environment,
    files: Iterable[ExpectedFile] | None = None,
    *,
    all_wheels: bool = False,
) -> list[ExpectedFile]:
    """Of a locked package's files, those to mirror for ``environment``.

    As morgan's own selection does: the best wheel the environment installs (by its
    tag ranking; every such wheel with ``all_wheels``) and the sdist, all of them
    only if Requires-Python admits the environment's Python. ``files`` defaults to
    the lock's; for a requirements-file pin, pass :func:`files_from_page`'s. An
    empty list means nothing of the lock installs there, for the caller to report.
    """
    by_name: dict[str, ExpectedFile] = {}
    candidates = []
    for expected in requirement.files if files is None else files:
        dist = DistributionFile(
            filename=expected.filename,
            url=expected.url or "",
            hashes={PREFERRED_HASH: expected.sha256},
            requires_python=expected.requires_python or requirement.requires_python,
            size=expected.size,
        )
        release_file = ReleaseFile.from_file(dist, requirement.name)
        if release_file is None or release_file.version != requirement.version:
            continue
        by_name.setdefault(expected.filename, expected)
        candidates.append(release_file)
    installable = releases(candidates, environment)
    if not installable:
        return []
    ordered = ordered_files(installable[0].files, environment)
    chosen = files_to_mirror(ordered, SelectionOptions(all_wheels=all_wheels))
    return [by_name[file.file.filename] for file in chosen]


def files_from_page(
    requirement: LockedRequirement, page_files: Iterable[DistributionFile]
) -> list[ExpectedFile]:
    """The index's files of a locked package that the lock allows, to pass to :func:`pick_files`.

    Without file names (a requirements file), a file counts when the sha256 the index
    states for it is one the lock allows and its name is of the package at the
    locked version. With names (pylock, uv.lock), the name must be one of the lock's
    and the index must not state another sha256 (it may state none: the bytes are
    checked against the lock's digest after the download, elsewhere).
    """
    named = {f.filename: f for f in requirement.files}
    found = []
    for page_file in page_files:
        digest = page_file.hashes.get(PREFERRED_HASH, "").lower()
        if named:
            locked = named.get(page_file.filename)
            if locked is None or (digest and digest != locked.sha256):
                continue
            digest, size = locked.sha256, locked.size
        elif digest in requirement.sha256:
            size = page_file.size
        else:
            continue
        release_file = ReleaseFile.from_file(page_file, requirement.name)
        if release_file is None or release_file.version != requirement.version:
            continue
        found.append(
            ExpectedFile(
                filename=page_file.filename,
                sha256=digest,
                size=size,
                url=page_file.url,
                requires_python=page_file.requires_python,
            )
        )
    return found


# -- markers --------------------------------------------------------------------------------

#: Marker variables that depend on the extras and groups asked for, not on the client.
_ACTIVATION_VARIABLES = ("extra", "extras", "dependency_groups")
_MARKER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'[^']*'|"[^"]*")
      | (?P<op>===|==|!=|<=|>=|~=|<|>|not\s+in(?![\w.])|in(?![\w.]))
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Comparison:
    """One ``lhs op rhs`` of a marker: a PEP 508 test, or one on extras or groups."""

    #: The PEP 508 test, when the comparison is not on extras or groups.
    marker: Marker | None
    #: For one on extras or groups: the variable, the (normalized) name and whether it
    #: holds when the name is absent (``!=``, ``not in``).
    variable: str = ""
    name: str = ""
    negated: bool = False


@dataclass(frozen=True)
class _Junction:
    """``and`` (``all_of``) or ``or`` of sub-expressions."""

    all_of: bool
    parts: tuple[_Expression, ...]


_Expression = Union[_Comparison, _Junction]


class LockMarker:
    """A marker of a lock file, read so that extras and groups can stay open.

    PEP 508 comparisons are evaluated by packaging; ``extra == '...'``, ``'...' in
    extras`` and ``'...' in dependency_groups`` depend on what the user installs, so
    they are "maybe" unless the name cannot be activated at all. A marker *may hold*
    unless it is false whatever is activated. (packaging reads ``extras`` and
    ``dependency_groups`` only from release 25, and one ``extra`` at a time.)
    """

    def __init__(self, text: str) -> None:
        """Parse ``text``; a ValueError with a one-line reason if it is not a usable marker."""
        self.text = text
        self._expression = _MarkerParser(text).parse()

    def __repr__(self) -> str:
        return f"<LockMarker {self.text!r}>"

    def evaluate(
        self,
        environment: Mapping[str, str],
        *,
        activatable: Mapping[str, frozenset[str]] | None = None,
        source: str = "",
    ) -> bool | None:
        """True, False, or None (it depends on the extras or groups installed).

        ``activatable`` maps ``extras`` or ``dependency_groups`` to every name that
        can be activated: a comparison with another name is then decided.
        """
        return _evaluate(self._expression, environment, activatable or {}, source)

    def may_hold(
        self,
        environment: Mapping[str, str],
        *,
        activatable: Mapping[str, frozenset[str]] | None = None,
        source: str = "",
    ) -> bool:
        """Whether the marker holds in the environment for some extras and groups."""
        return self.evaluate(environment, activatable=activatable, source=source) is not False


class _MarkerParser:
    """A recursive-descent parser over PEP 508's marker grammar.

    Each comparison that is not on extras or groups is handed to packaging, which
    checks it; so only the ``and``/``or``/parenthesis structure is read here.
    """

    def __init__(self, text: str) -> None:
        if len(text) > MAX_REQUIREMENT_LENGTH:
            raise ValueError(f"marker longer than {MAX_REQUIREMENT_LENGTH} characters")
        self.text = text
        self.tokens = _marker_tokens(text)
        self.position = 0
        self.depth = 0

    def parse(self) -> _Expression:
        expression = self._or()
        if self.position != len(self.tokens):
            unexpected = self.tokens[self.position][1]
            raise ValueError(f"marker {_short(self.text)}: unexpected {unexpected!r}")
        return expression

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise ValueError(f"marker {_short(self.text)} ends too early")
        self.position += 1
        return token

    def _or(self) -> _Expression:
        parts = [self._and()]
        while self._peek() == ("word", "or"):
            self.position += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _Junction(False, tuple(parts))

    def _and(self) -> _Expression:
        parts = [self._atom()]
        while self._peek() == ("word", "and"):
            self.position += 1
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else _Junction(True, tuple(parts))

    def _atom(self) -> _Expression:
        if self._peek() == ("paren", "("):
            self.position += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise ValueError(f"marker nests parentheses deeper than {MAX_NESTING} levels")
            inner = self._or()
            if self._take() != ("paren", ")"):
                raise ValueError(f"marker {_short(self.text)}: a parenthesis is not closed")
            self.depth -= 1
            return inner
        lhs, op, rhs = self._take(), self._take(), self._take()
        if op[0] != "op" or lhs[0] not in ("word", "string") or rhs[0] not in ("word", "string"):
            raise ValueError(f"marker {_short(self.text)} is not a PEP 508 marker")
        return _comparison(lhs, " ".join(op[1].split()), rhs, self.text)


def _marker_tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _MARKER_TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            raise ValueError(f"marker {_short(text)} cannot be read at {text[position:][:20]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return tokens


def _comparison(
    lhs: tuple[str, str], operator: str, rhs: tuple[str, str], text: str
) -> _Comparison:
    for variable, value, on_left in ((lhs, rhs, True), (rhs, lhs, False)):
        if variable[0] != "word" or variable[1] not in _ACTIVATION_VARIABLES:
            continue
        if value[0] != "string":
            break
        name = str(canonicalize_name(value[1][1:-1]))
        if variable[1] == "extra" and operator in ("==", "!="):
            return _Comparison(None, "extra", name, negated=operator == "!=")
        if variable[1] != "extra" and not on_left and operator in ("in", "not in"):
            return _Comparison(None, variable[1], name, negated=operator == "not in")
        break
    if any(t[0] == "word" and t[1] in _ACTIVATION_VARIABLES for t in (lhs, rhs)):
        raise ValueError(
            f"marker {_short(text)} compares {lhs[1]} {operator} {rhs[1]}, which no installer "
            "evaluates (write extra == 'name' or 'name' in extras)"
        )
    atom = f"{lhs[1]} {operator} {rhs[1]}"
    try:
        marker = Marker(atom)
    except InvalidMarker as error:
        reason = str(error).splitlines()[0] if str(error) else "invalid"
        raise ValueError(f"marker {_short(text)}: {reason[:200]}") from None
    try:
        evaluate_marker(marker, PROBE_MARKER_ENVIRONMENT, source="")
    except DistributionError as error:
        raise ValueError(error.reason) from None
    return _Comparison(marker)


def _evaluate(
    expression: _Expression,
    environment: Mapping[str, str],
    activatable: Mapping[str, frozenset[str]],
    source: str,
) -> bool | None:
    if isinstance(expression, _Comparison):
        if expression.marker is not None:
            return evaluate_marker(expression.marker, environment, source=source)
        names = activatable.get(expression.variable)
        if names is not None and expression.name not in names:
            return expression.negated
        return None
    # Kleene's three-valued logic: "maybe" stays maybe unless another part decides.
    decided = not expression.all_of
    result: bool | None = not decided
    for part in expression.parts:
        value = _evaluate(part, environment, activatable, source)
        if value is decided:
            return decided
        if value is None:
            result = None
    return result


def _short(text: str, limit: int = 100) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


# -- reading TOML tables with messages -------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where in a lock file a value is, to make errors that say so."""

    path: Path
    package: str = ""

    def at(self, package: str) -> _Where:
        return _Where(self.path, package)

    def error(self, problem: str) -> LockInputError:
        return LockInputError(self.path, problem, where=self.package)

    def __str__(self) -> str:
        return f"{self.path}: {self.package}" if self.package else str(self.path)


_KIND_NAMES = {str: "a string", int: "an integer", list: "an array", dict: "a table"}


def _get(
    table: Mapping[str, Any], key: str, kind: type, where: _Where, *, required: bool = False
) -> Any:
    value = table.get(key)
    if value is None:
        if required:
            raise where.error(f"has no {key}; regenerate the lock file")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise where.error(f"{key} is not {_KIND_NAMES[kind]}; regenerate the lock file")
    return value


def _tables(table: Mapping[str, Any], key: str, where: _Where) -> list[dict[str, Any]]:
    values = _get(table, key, list, where) or []
    if not all(isinstance(value, dict) for value in values):
        raise where.error(f"{key} is not an array of tables; regenerate the lock file")
    return values


def _strings(table: Mapping[str, Any], key: str, where: _Where) -> list[str]:
    values = _get(table, key, list, where) or []
    if not all(isinstance(value, str) for value in values):
        raise where.error(f"{key} is not an array of strings; regenerate the lock file")
    return values


def _marker(text: str, where: _Where, key: str = "marker") -> LockMarker:
    try:
        return LockMarker(text)
    except ValueError as error:
        raise where.error(f"{key} cannot be used ({error}); correct or regenerate it") from None


def _specifier(text: str, where: _Where, key: str = "requires-python") -> SpecifierSet:
    try:
        spec = SpecifierSet(text)
        spec.contains(Version("0"), prereleases=True)
    except ValueError:
        raise where.error(f"{key} = {_short(text, 60)} is not a version specifier") from None
    return spec


def _version(text: str, where: _Where) -> Version:
    try:
        return Version(text)
    except ValueError:
        raise where.error(
            f"version {_short(text, 40)} is not a PEP 440 version; morgan mirrors only those"
        ) from None


def _name(text: str, where: _Where) -> NormalizedName:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", text):
        raise where.error(f"{_short(text, 60)} is not a valid project name")
    return canonicalize_name(text)


def _filename_of(url: str | None, path: str | None) -> str:
    """The file name at the end of a URL (unquoted) or a path (either separator)."""
    if url:
        return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    return (path or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _sha256(hexdigest: str, where: _Where, filename: str) -> str:
    if not _SHA256.fullmatch(hexdigest):
        raise where.error(
            f"{filename}: sha256 {_short(hexdigest, 70)} is not 64 hex digits; regenerate the lock"
        )
    return hexdigest.lower()


def _expected_file(
    filename: str,
    sha256: str,
    size: int | None,
    url: str | None,
    *,
    where: _Where,
    name: NormalizedName,
    version: Version | None,
) -> tuple[ExpectedFile, Version]:
    """The file checked to be a safe name of a wheel or sdist of ``name`` (at ``version``)."""
    if not filename:
        raise where.error("lists a file with neither a name, a url nor a path; regenerate the lock")
    try:
        check_filename(filename)
    except UnsafeNameError as error:
        raise where.error(f"file {error.name!r} {error.reason}; it cannot be mirrored") from None
    try:
        if filename.endswith(".whl"):
            file_name, file_version, _, _ = parse_wheel_filename(filename)
        else:
            file_name, file_version = parse_sdist_filename(filename)
    except ValueError:
        raise where.error(
            f"{filename} is not the name of a wheel or sdist (.whl, .tar.gz, .zip); "
            "morgan mirrors only those"
        ) from None
    if file_name != name or (version is not None and file_version != version):
        locked = f"{name} {version}" if version is not None else name
        raise where.error(f"{filename} is not a file of {locked}; the lock contradicts itself")
    if size is not None and size < 0:
        raise where.error(f"{filename} has a negative size")
    return ExpectedFile(filename, sha256, size, url), file_version


# -- PEP 751 --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PylockEntry:
    name: NormalizedName
    marker: LockMarker | None
    where: _Where
    locked: LockedRequirement | None = None
    skipped: SkippedPackage | None = None


class PylockInput(LockInput):
    """A PEP 751 lock file: packages with markers, each with its files."""

    format = "pylock"

    def __init__(
        self,
        path: Path,
        *,
        environments: Sequence[LockMarker],
        requires_python: SpecifierSet | None,
        activatable: Mapping[str, frozenset[str]],
        entries: Sequence[_PylockEntry],
        index_urls: Sequence[str] = (),
    ) -> None:
        super().__init__(path, index_urls)
        self.environments = tuple(environments)
        self.requires_python = requires_python
        self._activatable = dict(activatable)
        self._entries = tuple(entries)

    @classmethod
    def read(cls, path: Path, document: Mapping[str, Any]) -> PylockInput:
        """Check a parsed ``pylock.toml``; a LockInputError for anything malformed."""
        where = _Where(path)
        lock_version = document.get("lock-version")
        if not isinstance(lock_version, str):
            raise where.error("has no lock-version; is it a PEP 751 lock file?")
        try:
            major = Version(lock_version).release[0]
        except ValueError:
            major = -1
        if major != 1:
            raise where.error(
                f"lock-version {_short(lock_version, 20)} is not supported (only 1.x); "
                "write the lock with a tool that writes PEP 751 lock-version 1.0"
            )
        environments = [
            _marker(text, where, "environments")
            for text in _strings(document, "environments", where)
        ]
        requires_python = _get(document, "requires-python", str, where)
        activatable = {
            "extras": frozenset(canonicalize_name(e) for e in _strings(document, "extras", where)),
            "dependency_groups": frozenset(
                canonicalize_name(g) for g in _strings(document, "dependency-groups", where)
            ),
        }
        if "packages" not in document:
            raise where.error("has no [[packages]]; is it a PEP 751 lock file?")
        entries = [
            _pylock_entry(table, where.at(f"packages[{number}]"))
            for number, table in enumerate(_tables(document, "packages", where))
        ]
        return cls(
            path,
            environments=environments,
            requires_python=(
                _specifier(requires_python, where) if requires_python is not None else None
            ),
            activatable=activatable,
            entries=entries,
            index_urls=[e.locked.index for e in entries if e.locked and e.locked.index],
        )

    def not_covered(self, environment: Environment) -> str | None:
        if self.requires_python is not None and not self.requires_python.contains(
            environment.requires_python_version, prereleases=True
        ):
            return (
                f"requires-python {self.requires_python} excludes its Python "
                f"{environment.python_version}"
            )
        if self.environments and not any(
            marker.may_hold(environment.marker_environment(), source=f"{self.path}: environments")
            for marker in self.environments
        ):
            return "none of its environments markers holds there"
        return None

    def _select(
        self, environment: Environment
    ) -> tuple[list[LockedRequirement], list[SkippedPackage]]:
        requirements, skipped = [], []
        for entry in self._entries:
            if entry.marker is not None and not entry.marker.may_hold(
                environment.marker_environment(),
                activatable=self._activatable,
                source=str(entry.where),
            ):
                continue
            if entry.locked is not None:
                requirements.append(entry.locked)
            elif entry.skipped is not None:
                skipped.append(entry.skipped)
        return requirements, skipped


def _pylock_entry(table: Mapping[str, Any], where: _Where) -> _PylockEntry:
    raw_name = _get(table, "name", str, where, required=True)
    name = _name(raw_name, where)
    where = where.at(f"package {name!r}")
    marker_text = _get(table, "marker", str, where)
    marker = _marker(marker_text, where) if marker_text is not None else None
    version_text = _get(table, "version", str, where)
    version = _version(version_text, where) if version_text is not None else None
    if version is not None:
        where = where.at(f"package {name!r} {version}")
    requires_python = _get(table, "requires-python", str, where)
    if requires_python is not None:
        _specifier(requires_python, where)
    index = _get(table, "index", str, where)

    others = [key for key in ("vcs", "directory", "archive") if key in table]
    files_given = [key for key in ("sdist", "wheels") if key in table]
    if len(others) > 1 or (others and files_given):
        raise where.error(
            f"has {' and '.join(others + files_given)}; a package comes from exactly one source"
        )
    if others:
        skipped = _pylock_skipped(table, others[0], name, where)
        return _PylockEntry(name, marker, where, skipped=skipped)
    if not files_given:
        raise where.error("lists no wheels, sdist, vcs, directory or archive; regenerate the lock")

    files = [_pylock_file(wheel, where, name, version) for wheel in _tables(table, "wheels", where)]
    for file, _ in files:
        if not file.is_wheel:
            raise where.error(f"wheel {file.filename} is not a wheel (.whl)")
    sdist = _get(table, "sdist", dict, where)
    if sdist is not None:
        files.append(_pylock_file(sdist, where, name, version))
        if files[-1][0].is_wheel:
            raise where.error(f"sdist {files[-1][0].filename} is a wheel")
    if not files:
        raise where.error("lists no files (wheels is empty and there is no sdist)")
    versions = {file_version for _, file_version in files}
    if version is None:
        if len(versions) != 1:
            raise where.error("has no version, and its files name several; regenerate the lock")
        version = versions.pop()
        where = where.at(f"package {name!r} {version}")
    expected = tuple(file for file, _ in files)
    locked = LockedRequirement(
        name=name,
        version=version,
        files=expected,
        sha256=frozenset(file.sha256 for file in expected),
        requires_python=requires_python,
        origin=str(where),
        index=index,
    )
    return _PylockEntry(name, marker, where, locked=locked)


def _pylock_file(
    table: Mapping[str, Any], where: _Where, name: NormalizedName, version: Version | None
) -> tuple[ExpectedFile, Version]:
    url = _get(table, "url", str, where)
    path = _get(table, "path", str, where)
    filename = _get(table, "name", str, where) or _filename_of(url, path)
    hashes = _get(table, "hashes", dict, where)
    if not hashes:
        raise where.error(f"{filename or 'a file'} has no hashes; regenerate the lock with hashes")
    digest = hashes.get(PREFERRED_HASH)
    if not isinstance(digest, str):
        algorithms = ", ".join(sorted(str(algorithm) for algorithm in hashes))
        raise where.error(
            f"{filename} has no sha256 hash (only {algorithms}); morgan checks files by sha256, "
            "so lock against an index that gives sha256 digests"
        )
    sha256 = _sha256(digest, where, filename)
    size = _get(table, "size", int, where)
    return _expected_file(
        filename, sha256, size, url or path, where=where, name=name, version=version
    )


def _pylock_skipped(table: Mapping[str, Any], key: str, name: str, where: _Where) -> SkippedPackage:
    value = _get(table, key, dict, where, required=True)
    url = value.get("url") if isinstance(value.get("url"), str) else None
    path = value.get("path") if isinstance(value.get("path"), str) else None
    source = redact(url) if url else (path or "?")
    if key == "directory":
        return SkippedPackage(name, "local", source, str(where))
    if key == "vcs":
        return SkippedPackage(name, "vcs", source, str(where))
    return SkippedPackage(name, "url" if url else "archive", source, str(where))


# -- uv.lock --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UvDependency:
    """An edge of uv.lock's graph: a package (by name, and version or source if ambiguous)."""

    name: NormalizedName
    version: Version | None
    source: Mapping[str, Any] | None
    extras: tuple[str, ...]
    marker: LockMarker | None


@dataclass
class _UvPackage:
    name: NormalizedName
    version: Version | None
    source: Mapping[str, Any]
    source_kind: str
    where: _Where
    dependencies: tuple[_UvDependency, ...]
    optional: Mapping[str, tuple[_UvDependency, ...]]
    groups: Mapping[str, tuple[_UvDependency, ...]]
    resolution_markers: tuple[LockMarker, ...]
    files: tuple[ExpectedFile, ...] = ()
    index: str | None = None


class UvLockInput(LockInput):
    """uv's universal lock: a graph walked from the workspace roots for each environment."""

    format = "uv.lock"

    def __init__(
        self,
        path: Path,
        *,
        requires_python: SpecifierSet | None,
        supported: Sequence[LockMarker],
        resolution: Sequence[LockMarker],
        packages: Sequence[_UvPackage],
        roots: Sequence[_UvPackage],
        root_edges: Sequence[_UvDependency],
    ) -> None:
        super().__init__(path, [p.index for p in packages if p.index])
        self.requires_python = requires_python
        self._supported = tuple(supported)
        self._resolution = tuple(resolution)
        self._packages = tuple(packages)
        self._roots = tuple(roots)
        self._root_edges = tuple(root_edges)
        self._by_name: dict[str, list[_UvPackage]] = {}
        for package in packages:
            self._by_name.setdefault(package.name, []).append(package)

    @classmethod
    def read(cls, path: Path, document: Mapping[str, Any]) -> UvLockInput:
        """Check a parsed ``uv.lock``; a LockInputError for anything malformed."""
        where = _Where(path)
        version = document.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise where.error("has no version; is it a uv.lock?")
        if version != _UV_LOCK_VERSION:
            raise where.error(
                f"is a uv.lock of version {version}; morgan reads version {_UV_LOCK_VERSION} "
                "(regenerate it with a uv that writes it, or upgrade morgan)"
            )
        requires_python = _get(document, "requires-python", str, where)
        supported = [
            _marker(t, where, "supported-markers")
            for t in _strings(document, "supported-markers", where)
        ]
        resolution = [
            _marker(t, where, "resolution-markers")
            for t in _strings(document, "resolution-markers", where)
        ]
        tables = _tables(document, "package", where) or _tables(document, "distribution", where)
        packages = [
            _uv_package(table, where.at(f"package[{number}]"))
            for number, table in enumerate(tables)
        ]
        manifest = _get(document, "manifest", dict, where) or {}
        root_edges = [
            _uv_dependency(table, where.at("[manifest] requirements"))
            for table in _tables(manifest, "requirements", where)
        ]
        groups = _get(manifest, "dependency-groups", dict, where) or {}
        for group in groups:
            root_edges += [
                _uv_dependency(table, where.at(f"[manifest] dependency-groups {group}"))
                for table in _tables(groups, group, where)
            ]
        lock = cls(
            path,
            requires_python=(
                _specifier(requires_python, where) if requires_python is not None else None
            ),
            supported=supported,
            resolution=resolution,
            packages=packages,
            roots=[],
            root_edges=root_edges,
        )
        lock._roots = tuple(lock._find_roots(_strings(manifest, "members", where)))
        lock._check_edges()
        if not lock._roots and not root_edges:
            raise where.error(
                "has no project to start from (no editable, virtual or directory package, "
                "no [manifest] members or requirements), so what it installs is unknown; "
                "regenerate it with uv lock"
            )
        for dependency in root_edges:
            if dependency.name not in lock._by_name:
                raise where.error(
                    f"[manifest] requires {dependency.name}, which the lock does not list; "
                    "regenerate it with uv lock"
                )
        return lock

    def _find_roots(self, members: Sequence[str]) -> Iterator[_UvPackage]:
        """The workspace members, or else the local packages nothing depends on."""
        if members:
            for member in members:
                found = self._by_name.get(canonicalize_name(member), [])
                if len(found) != 1:
                    raise LockInputError(
                        self.path,
                        f"[manifest] members names {member!r}, which the lock lists "
                        f"{len(found)} times; regenerate it with uv lock",
                    )
                yield found[0]
            return
        local = [p for p in self._packages if p.source_kind in _UV_LOCAL]
        targets = {
            dependency.name for package in local for dependency in _all_dependencies(package)
        }
        roots = [p for p in local if p.name not in targets]
        yield from roots or local

    def _check_edges(self) -> None:
        """Every edge must name exactly one package (else a LockInputError)."""
        for package in self._packages:
            for dependency in _all_dependencies(package):
                self._target(dependency, package.where)

    def _target(self, dependency: _UvDependency, where: _Where) -> _UvPackage:
        found = [
            p
            for p in self._by_name.get(dependency.name, [])
            if (dependency.version is None or p.version == dependency.version)
            and (dependency.source is None or p.source == dependency.source)
        ]
        if len(found) != 1:
            problem = "no package of the lock" if not found else "several packages of the lock"
            raise where.error(
                f"depends on {dependency.name}, which matches {problem}; regenerate it with uv lock"
            )
        return found[0]

    def not_covered(self, environment: Environment) -> str | None:
        if self.requires_python is not None and not self.requires_python.contains(
            environment.requires_python_version, prereleases=True
        ):
            return (
                f"requires-python {self.requires_python} excludes its Python "
                f"{environment.python_version}"
            )
        markers = environment.marker_environment()
        for key, listed in (
            ("supported-markers", self._supported),
            ("resolution-markers", self._resolution),
        ):
            if listed and not any(
                m.may_hold(markers, source=f"{self.path}: {key}") for m in listed
            ):
                return f"none of its {key} holds there"
        return None

    def _select(
        self, environment: Environment
    ) -> tuple[list[LockedRequirement], list[SkippedPackage]]:
        markers = environment.marker_environment()
        queue: list[tuple[_UvPackage, str | None]] = []
        seen: set[tuple[int, str | None]] = set()
        reached: dict[int, _UvPackage] = {}

        def reach(package: _UvPackage, extras: Iterable[str | None]) -> None:
            reached[id(package)] = package
            for extra in extras:
                if (id(package), extra) not in seen:
                    seen.add((id(package), extra))
                    queue.append((package, extra))

        def follow(dependency: _UvDependency, where: _Where) -> None:
            if dependency.marker is not None and not dependency.marker.may_hold(
                markers, source=str(where)
            ):
                return
            reach(self._target(dependency, where), [None, *dependency.extras])

        for root in self._roots:
            reach(root, [None, *root.optional])
            for group in root.groups.values():
                for dependency in group:
                    follow(dependency, root.where)
        for dependency in self._root_edges:
            # The manifest's own requirements (a script's, or a workspace root that is
            # no project) name no version: the package whose fork applies is meant.
            source = f"{self.path}: [manifest]"
            if dependency.marker is not None and not dependency.marker.may_hold(
                markers, source=source
            ):
                continue
            for package in self._by_name.get(dependency.name, []):
                if not package.resolution_markers or any(
                    m.may_hold(markers, source=source) for m in package.resolution_markers
                ):
                    reach(package, [None, *dependency.extras])
        while queue:
            package, extra = queue.pop()
            edges = package.optional.get(extra, ()) if extra else package.dependencies
            for dependency in edges:
                follow(dependency, package.where)

        requirements, skipped = [], []
        for package in reached.values():
            if package.source_kind in _UV_LOCAL:
                source = str(package.source.get(package.source_kind, "?"))
                skipped.append(SkippedPackage(package.name, "local", source, str(package.where)))
            elif package.source_kind in _UV_UNMIRRORABLE:
                source = str(package.source.get(package.source_kind, "?"))
                kind = {"git": "vcs", "url": "url", "path": "archive"}[package.source_kind]
                shown = redact(source) if kind != "archive" else source
                skipped.append(SkippedPackage(package.name, kind, shown, str(package.where)))
            else:
                assert package.version is not None  # checked when read
                requirements.append(
                    LockedRequirement(
                        name=package.name,
                        version=package.version,
                        files=package.files,
                        sha256=frozenset(f.sha256 for f in package.files),
                        origin=str(package.where),
                        index=package.index,
                    )
                )
        return requirements, skipped


def _all_dependencies(package: _UvPackage) -> Iterator[_UvDependency]:
    yield from package.dependencies
    for edges in (*package.optional.values(), *package.groups.values()):
        yield from edges


def _uv_package(table: Mapping[str, Any], where: _Where) -> _UvPackage:
    name = _name(_get(table, "name", str, where, required=True), where)
    where = where.at(f"package {name!r}")
    version_text = _get(table, "version", str, where)
    version = _version(version_text, where) if version_text is not None else None
    if version is not None:
        where = where.at(f"package {name!r} {version}")
    source = _get(table, "source", dict, where, required=True)
    kinds = [key for key in ("registry", *_UV_LOCAL, *_UV_UNMIRRORABLE) if key in source]
    if len(kinds) != 1:
        raise where.error(
            f"has source {_short(str(source), 80)}, which names no single known source; "
            "regenerate it with uv lock"
        )
    kind = kinds[0]

    def edges(tables: list[dict[str, Any]]) -> tuple[_UvDependency, ...]:
        return tuple(_uv_dependency(t, where) for t in tables)

    optional_tables = _get(table, "optional-dependencies", dict, where) or {}
    group_tables = (
        _get(table, "dev-dependencies", dict, where)
        or _get(table, "dependency-groups", dict, where)
        or {}
    )
    package = _UvPackage(
        name=name,
        version=version,
        source=source,
        source_kind=kind,
        where=where,
        dependencies=edges(_tables(table, "dependencies", where)),
        optional={
            canonicalize_name(extra): edges(_tables(optional_tables, extra, where))
            for extra in optional_tables
        },
        groups={group: edges(_tables(group_tables, group, where)) for group in group_tables},
        resolution_markers=tuple(
            _marker(t, where, "resolution-markers")
            for t in _strings(table, "resolution-markers", where)
        ),
    )
    if kind != "registry":
        return package
    if version is None:
        raise where.error("comes from an index but has no version; regenerate it with uv lock")
    registry = source["registry"]
    package.index = registry if isinstance(registry, str) else None
    files = [_uv_file(wheel, where, name, version) for wheel in _tables(table, "wheels", where)]
    if any(not file.is_wheel for file in files):
        raise where.error("lists a wheel whose name does not end with .whl")
    sdist = _get(table, "sdist", dict, where)
    if sdist is not None:
        file = _uv_file(sdist, where, name, version)
        if file.is_wheel:
            raise where.error(f"sdist {file.filename} is a wheel")
        files.append(file)
    if not files:
        raise where.error("comes from an index but lists no file; regenerate it with uv lock")
    package.files = tuple(files)
    return package


def _uv_file(
    table: Mapping[str, Any], where: _Where, name: NormalizedName, version: Version
) -> ExpectedFile:
    url = _get(table, "url", str, where)
    path = _get(table, "path", str, where)
    filename = _get(table, "filename", str, where) or _filename_of(url, path)
    digest = _get(table, "hash", str, where)
    if digest is None:
        raise where.error(
            f"{filename or 'a file'} has no hash; morgan checks files by sha256, so lock "
            "against an index that gives sha256 digests"
        )
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != PREFERRED_HASH:
        raise where.error(
            f"{filename}: hash {_short(digest, 40)} is not sha256:<hex>; morgan checks files by "
            "sha256, so lock against an index that gives sha256 digests"
        )
    sha256 = _sha256(hexdigest, where, filename)
    size = _get(table, "size", int, where)
    return _expected_file(
        filename, sha256, size, url or path, where=where, name=name, version=version
    )[0]


def _uv_dependency(table: Mapping[str, Any], where: _Where) -> _UvDependency:
    name = _name(_get(table, "name", str, where, required=True), where)
    version_text = _get(table, "version", str, where)
    source = _get(table, "source", dict, where)
    marker_text = _get(table, "marker", str, where)
    extras = _strings(table, "extra", where) + _strings(table, "extras", where)
    return _UvDependency(
        name=name,
        version=_version(version_text, where) if version_text is not None else None,
        source=source,
        extras=tuple(canonicalize_name(e) for e in extras),
        marker=_marker(marker_text, where) if marker_text is not None else None,
    )


# -- requirements.txt -----------------------------------------------------------------------

#: pip options that change nothing about which files the mirror needs.
_IGNORED_OPTIONS = frozenset(
    {
        "-f",
        "--find-links",
        "--trusted-host",
        "--no-binary",
        "--only-binary",
        "--use-feature",
        "--prefer-binary",
        "--pre",
        "--no-index",
        "--require-hashes",
    }
)
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url")
_INCLUDE_OPTIONS = ("-r", "--requirement")
_CONSTRAINT_OPTIONS = ("-c", "--constraint")
_EDITABLE_OPTIONS = ("-e", "--editable")
#: The options that take a value (the rest are flags, or not understood).
_VALUED_OPTIONS = frozenset(
    {
        *(_IGNORED_OPTIONS - {"--prefer-binary", "--pre", "--no-index", "--require-hashes"}),
        *_INDEX_OPTIONS,
        *_INCLUDE_OPTIONS,
        *_CONSTRAINT_OPTIONS,
        *_EDITABLE_OPTIONS,
        "--hash",
    }
)
_COMMENT = re.compile(r"(?:^|\s+)#.*$")
_URL_OR_PATH = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://|\.|/|~|[a-zA-Z]:[\\/])")


@dataclass(frozen=True)
class _Pin:
    name: NormalizedName
    version: Version
    marker: Marker | None
    sha256: frozenset[str]
    origin: str


@dataclass(frozen=True)
class _DirectReference:
    skipped: SkippedPackage
    marker: Marker | None


class RequirementsInput(LockInput):
    """A hashed requirements file: exact pins, each with the sha256 digests it allows."""

    format = "requirements"

    def __init__(
        self,
        path: Path,
        pins: Sequence[_Pin],
        direct: Sequence[_DirectReference],
        index_urls: Sequence[str] = (),
    ) -> None:
        super().__init__(path, index_urls)
        self._pins = tuple(pins)
        self._direct = tuple(direct)

    @classmethod
    def read(cls, path: Path, text: str) -> RequirementsInput:
        """Check a requirements file (and the ``-r`` files it names)."""
        reader = _RequirementsReader()
        reader.read(path, text)
        return cls(path, reader.pins, reader.direct, reader.index_urls)

    def not_covered(self, environment: Environment) -> str | None:
        return None  # a requirements file says nothing of the clients it is for

    def _select(
        self, environment: Environment
    ) -> tuple[list[LockedRequirement], list[SkippedPackage]]:
        chosen: dict[NormalizedName, _Pin] = {}
        for pin in self._pins:
            if pin.marker is not None and not environment.evaluate_marker(
                pin.marker, source=pin.origin
            ):
                continue
            earlier = chosen.get(pin.name)
            if earlier is None:
                chosen[pin.name] = pin
            elif earlier.version != pin.version:
                raise LockInputError(
                    self.path,
                    f"pins {pin.name} twice for environment {environment.name!r}: "
                    f"{earlier.version} ({earlier.origin}) and {pin.version} ({pin.origin}); "
                    "keep one, or tell them apart with markers",
                )
            else:
                chosen[pin.name] = _Pin(
                    pin.name,
                    pin.version,
                    earlier.marker,
                    earlier.sha256 | pin.sha256,
                    earlier.origin,
                )
        requirements = [
            LockedRequirement(
                name=pin.name,
                version=pin.version,
                files=(),
                sha256=pin.sha256,
                origin=pin.origin,
            )
            for pin in chosen.values()
        ]
        skipped = [
            d.skipped
            for d in self._direct
            if d.marker is None or environment.evaluate_marker(d.marker, source=d.skipped.origin)
        ]
        return requirements, skipped


class _RequirementsReader:
    """Reads a requirements file line by line, following ``-r`` includes."""

    def __init__(self) -> None:
        self.pins: list[_Pin] = []
        self.direct: list[_DirectReference] = []
        self.index_urls: list[str] = []
        self._reading: list[Path] = []

    def read(self, path: Path, text: str) -> None:
        self._reading.append(path.resolve())
        for number, line in _logical_lines(text):
            self._line(path, number, line)
        self._reading.pop()

    def _line(self, path: Path, number: int, line: str) -> None:
        def fail(problem: str) -> LockInputError:
            return LockInputError(path, problem, line=number)

        if line.startswith("-"):
            self._option_line(path, number, _split(line, fail), fail)
            return
        words = line.split()
        first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        text = " ".join(words[:first_option])
        options = _split(" ".join(words[first_option:]), fail)
        hashes = _hashes(options, fail)
        origin = f"{path}:{number}"
        if _URL_OR_PATH.match(text):
            reference = SkippedPackage(text, _reference_kind(text), redact(text), origin)
            self.direct.append(_DirectReference(reference, None))
            return
        try:
            requirement = read_requirement(text)
        except UnusableRequirementError as error:
            raise fail(f"{_short(text, 80)} is not a requirement ({error})") from None
        name = canonicalize_name(requirement.name)
        if requirement.url is not None:
            kind = _reference_kind(requirement.url)
            reference = SkippedPackage(name, kind, redact(requirement.url), origin)
            self.direct.append(_DirectReference(reference, requirement.marker))
            return
        version = _pinned_version(requirement, fail)
        if not hashes:
            raise fail(
                f"{name}=={version} has no --hash=sha256:...; generate the file with "
                "pip-compile --generate-hashes or uv pip compile --generate-hashes"
            )
        self.pins.append(_Pin(name, version, requirement.marker, frozenset(hashes), origin))

    def _option_line(
        self,
        path: Path,
        number: int,
        words: list[str],
        fail: Callable[[str], LockInputError],
    ) -> None:
        while words:
            option, value, words = _take_option(words, fail)
            if option in _IGNORED_OPTIONS:
                continue
            if option in _INDEX_OPTIONS:
                self.index_urls.append(value)
            elif option in _INCLUDE_OPTIONS:
                self._include(path, value, fail)
            elif option in _CONSTRAINT_OPTIONS:
                log.debug("%s:%s: -c %s ignored (constraints add no package)", path, number, value)
            elif option in _EDITABLE_OPTIONS:
                reference = SkippedPackage(
                    value, _reference_kind(value), redact(value), f"{path}:{number}"
                )
                self.direct.append(_DirectReference(reference, None))
            elif option == "--hash":
                raise fail("--hash must follow a requirement on the same (continued) line")
            else:
                raise fail(
                    f"option {option} is not understood here; morgan reads the options "
                    "pip-compile and uv pip compile write (-i, --extra-index-url, -r, --hash)"
                )

    def _include(self, path: Path, value: str, fail: Callable[[str], LockInputError]) -> None:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
            raise fail(f"-r {redact(value)} is a URL; download it and name the file instead")
        included = path.parent / value
        if included.resolve() in self._reading:
            raise fail(f"-r {value} includes a file being read; remove the loop")
        try:
            data = included.read_bytes()
        except OSError as error:
            raise fail(f"-r {value}: cannot read {included} ({error.strerror or error})") from None
        self.read(included, _text(included, data))


def _reference_kind(reference: str) -> str:
    """What a requirements file's direct reference is, as :class:`SkippedPackage` names it."""
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", reference)
    if scheme is None or scheme.group(1).lower() == "file":
        archive = reference.endswith((".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"))
        return "archive" if archive else "local"
    return "vcs" if "+" in scheme.group(1) else "url"


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with continuations joined and comments removed, as pip does."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        line = _COMMENT.sub("", " ".join(part.strip() for part in pending)).strip()
        pending = []
        if line:
            yield start, line
    if pending:
        line = _COMMENT.sub("", " ".join(part.strip() for part in pending)).strip()
        if line:
            yield start, line


def _split(text: str, fail: Callable[[str], LockInputError]) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise fail(f"cannot be split into options ({error})") from None


def _take_option(
    words: list[str], fail: Callable[[str], LockInputError]
) -> tuple[str, str, list[str]]:
    """The first option of ``words``, its value ("" for a flag) and the words after it.

    As pip's optparse reads them: ``--name=value``, ``--name value``, ``-x value``
    and ``-xvalue``. An option not known here takes no value, so that the caller
    names it as not understood.
    """
    word, rest = words[0], words[1:]
    if not word.startswith("-") or word == "-":
        raise fail(f"{_short(word, 60)} is not an option; put requirements on lines of their own")
    if word.startswith("--") and "=" in word:
        option, value = word.split("=", 1)
        return option, value, rest
    if not word.startswith("--") and len(word) > 2 and word[:2] in _VALUED_OPTIONS:
        return word[:2], word[2:], rest
    if word not in _VALUED_OPTIONS:
        return word, "", rest
    if not rest:
        raise fail(f"option {word} needs a value")
    return word, rest[0], rest[1:]


def _hashes(words: list[str], fail: Callable[[str], LockInputError]) -> set[str]:
    """The sha256 digests of a requirement's ``--hash`` options (other algorithms are ignored)."""
    found = set()
    while words:
        option, value, words = _take_option(words, fail)
        if option != "--hash":
            raise fail(
                f"option {option} after a requirement is not understood; morgan reads --hash only"
            )
        algorithm, _, digest = value.partition(":")
        if algorithm == PREFERRED_HASH and _SHA256.fullmatch(digest):
            found.add(digest.lower())
        elif algorithm in _OTHER_HASHES and re.fullmatch(
            rf"[0-9a-fA-F]{{{_OTHER_HASHES[algorithm]}}}", digest
        ):
            continue
        else:
            raise fail(
                f"--hash={_short(value, 80)} is not sha256:<64 hex digits> (nor sha384 or "
                "sha512); regenerate the file"
            )
    return found


def _pinned_version(requirement: Requirement, fail: Callable[[str], LockInputError]) -> Version:
    specs = list(requirement.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        try:
            return Version(specs[0].version)
        except ValueError:
            raise fail(
                f"{requirement.name}{specs[0]} is not a PEP 440 version; morgan mirrors only those"
            ) from None
    shown = f"{requirement.name}{requirement.specifier}"
    raise fail(
        f"{shown} is not pinned to one version; pin it as {requirement.name}==VERSION with "
        "--hash=sha256:... (pip-compile --generate-hashes or uv pip compile --generate-hashes "
        "write such files)"
    )
