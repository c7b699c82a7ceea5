"""The errors a user can meet, each able to say what went wrong in one line.

Every error derives from :class:`MorganError`; errors caused by bad input also
derive from :class:`ValueError`. The CLI turns them into one-line messages and
exit codes, so messages here name the cause and, where there is one, the fix.
"""

from __future__ import annotations


class MorganError(Exception):
    """Base class of every error morgan raises on purpose."""


class ConfigError(MorganError, ValueError):
    """The configuration file cannot be used as written."""

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        section: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(path, problem, section, key)
        self.path = path
        self.problem = problem
        self.section = section
        self.key = key

    def __str__(self) -> str:
        where = self.path
        if self.section is not None:
            where += f": [{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
        return f"{where}: {self.problem}"


class UpstreamError(MorganError):
    """The upstream index could not give what was asked of it."""

    def __init__(
        self, url: str, reason: str, *, status: int | None = None, transient: bool | None = None
    ) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason
        #: The HTTP status that caused it, when there was one.
        self.status = status
        #: Whether asking again may help: a broken transfer, not an answer or a loop.
        self.transient = status is None if transient is None else transient

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


class ProjectNotFoundError(UpstreamError):
    """The index has no page for a project (HTTP 404)."""

    def __init__(self, project: str, url: str) -> None:
        super().__init__(url, "not found")
        self.project = project

    def __str__(self) -> str:
        return f"project {self.project!r} is not on the index ({self.url})"


class PageError(UpstreamError, ValueError):
    """A simple-API page that cannot be parsed or is not for the project asked."""


class UnsupportedAPIVersionError(PageError):
    """A page in a major API version newer than this morgan understands."""

    def __init__(self, url: str, version: str) -> None:
        super().__init__(
            url,
            f"simple API version {version} is not supported (only 1.x); "
            "upgrade morgan or use another index",
        )
        self.version = version


class HashMismatchError(MorganError):
    """Downloaded bytes do not have the digest the index promised."""

    def __init__(self, filename: str, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(filename, algorithm, expected, actual)
        self.filename = filename
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return (
            f"{self.filename}: {self.algorithm} is {self.actual}, the index says "
            f"{self.expected}; the file was discarded"
        )


class DistributionError(MorganError, ValueError):
    """A distribution file (wheel or sdist) is malformed, hostile or too large."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(filename, reason)
        self.filename = filename
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.filename}: {self.reason}"


class UploadConflictError(MorganError):
    """An index offers a file under the name of one uploaded to the mirror, with other bytes."""

    def __init__(self, filename: str, index_url: str) -> None:
        super().__init__(filename, index_url)
        self.filename = filename
        self.index_url = index_url

    def __str__(self) -> str:
        return (
            f"{self.filename} was uploaded to this mirror, and {self.index_url} offers other "
            "bytes under that name; the upload is kept (rename or remove it by hand, or pin "
            "the project to the index it should come from)"
        )


class UnsafeNameError(MorganError, ValueError):
    """A project or file name that cannot safely become a path in the index."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        return f"refusing name {self.name!r}: {self.reason}"


class IndexLockedError(MorganError):
    """Another morgan run, or ``server.py import``, is writing the same index."""

    def __init__(self, lock_path: str) -> None:
        super().__init__(lock_path)
        self.lock_path = lock_path

    def __str__(self) -> str:
        return (
            f"another morgan run (or a server.py import) is writing this index (it holds "
            f"{self.lock_path}); wait for it to finish, then run again"
        )


class DownloadCancelled(MorganError):
    """The run is stopping (interrupted); work in progress gives up where it stands."""

    def __str__(self) -> str:
        return "cancelled"


class UsageError(MorganError, ValueError):
    """A command asked for in a way that cannot work (a missing option, a wrong file)."""
