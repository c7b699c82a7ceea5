"""Where files are transferred: in this process, or in a download process of its own.

A cold run is bound by one core running Python. The resolving threads, the pages
being parsed and written, and thirty-odd threads streaming, hashing, syncing and
renaming files all take turns on one interpreter lock. ``DownloadProcess`` moves
the streaming into a child interpreter with its own lock, on the other core; the
resolvers keep this one to themselves. The child is started as a new tree's planning
begins (every file is to come), else by the first transfer (a re-run with every file
already in place never starts it), and ends with the run.

The child runs ``morgan.transfers.main`` with this process's ``sys.path`` (never the
folder it was started in). It reads requests as JSON lines on its stdin and answers
on its stdout: that it is ready, then per file the bytes received, a wheel's METADATA
as soon as its bytes are verified (a resolution may be waiting for its dependencies),
then the file's digest or the error. A child that cannot be started (no interpreter
there, no process left to fork), or ends before it is ready (an interpreter that
cannot run it), leaves the transfers to this process, with a warning.
It knows nothing of the run but the index clients it was given (their recipes,
credentials included: it is this user's own process), and stops what it is doing
when told to cancel, or when its stdin closes because this process is gone. Ctrl-C
is this process's to handle: the child ignores SIGINT.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol, cast

from morgan.allocator import tune_allocator, tune_collector
from morgan.download import DownloadResult, transfer
from morgan.errors import (
    DistributionError,
    DownloadCancelled,
    HashMismatchError,
    MorganError,
    UnsafeNameError,
    UploadConflictError,
    UpstreamError,
)
from morgan.index import IndexClient, Upstream, redact
from morgan.layout import is_upload
from morgan.metadata import read_wheel_metadata
from morgan.models import DistributionFile

log = logging.getLogger(__name__)

#: How often a thread waiting for the child looks at the run's cancel event.
CANCEL_POLL_SECONDS = 0.2
#: Bytes received that the child adds up before it tells (progress needs no more).
BYTES_REPORTED_EVERY = 1 << 20
#: How long the child may take to end once its work is done, before it is killed.
EXIT_WAIT_SECONDS = 10.0

OnBytes = Callable[[int], None]
OnMetadata = Callable[[bytes], None]


class DownloadProcessError(MorganError):
    """The download process ended, or could not be written to, before a transfer was done."""

    def __str__(self) -> str:
        return f"the download process: {self.args[0]}"


class Transfers(Protocol):
    """Fetches a file into the tree, verified (see ``download.transfer``)."""

    def transfer(
        self,
        file: DistributionFile,
        dest: Path,
        project: str,
        *,
        cancel: threading.Event,
        on_bytes: OnBytes | None = None,
        on_metadata: OnMetadata | None = None,
    ) -> DownloadResult:
        """``on_metadata`` gets a wheel's METADATA once its bytes are verified."""
        ...

    def start(self) -> None:
        """Get ready before the first transfer comes (a hint: it may do nothing)."""

    def cancel(self) -> None:
        """Stop every transfer where it stands (their parts stay, for the next run)."""

    def close(self) -> None: ...


class LocalTransfers:
    """Transfers on the calling thread, in this process."""

    def __init__(self, client: Upstream) -> None:
        self.client = client

    def transfer(
        self,
        file: DistributionFile,
        dest: Path,
        project: str,
        *,
        cancel: threading.Event,
        on_bytes: OnBytes | None = None,
        on_metadata: OnMetadata | None = None,
    ) -> DownloadResult:
        return transfer(
            self.client,
            file,
            dest,
            cancel=cancel,
            on_bytes=on_bytes,
            on_verified=_metadata_reader(project, on_metadata),
        )

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        pass  # each transfer watches the run's cancel event itself

    def close(self) -> None:
        pass


#: What the reader thread hands a waiting transfer: ("bytes", n), ("metadata", bytes),
#: ("done", DownloadResult) or ("error", exception).
_Event = tuple[str, Any]

#: The child's command: its imports resolve as this process's did (``sys.path`` is given
#: whole), never from whatever folder the run was started in.
_BOOTSTRAP = (
    # Ctrl-C reaches the whole process group: ignored before the imports (a tenth of a
    # second), or one during them ends the child with a traceback
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "import json, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
    "from morgan.transfers import main; sys.exit(main(sys.argv[1:]))"
)


class DownloadProcess:
    """Transfers run by a child interpreter (see the module), for any of ``client``'s indexes.

    Each transfer waits on its own queue, and the callbacks run on the waiting thread, as
    they would in this process: the thread reading the child's answers runs nobody's code.
    A child that cannot start (it cannot be spawned, or ends before it says it is ready)
    is not fatal: the run's files are then transferred here, with a warning.
    """

    def __init__(self, client: Upstream, threads: int) -> None:
        self.client = client
        self.threads = max(threads, 1)
        self._here = LocalTransfers(client)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._ended: str | None = None
        self._answered = False
        #: The child could not start: transfers run here instead.
        self._unusable = False
        self._closed = False
        self._keys: dict[IndexClient, int] = {}
        self._pending: dict[int, queue.SimpleQueue[_Event]] = {}
        self._next_id = 0
        self._cancelled = False
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, once the first transfer started it."""
        return None if self._process is None else self._process.pid

    def transfer(
        self,
        file: DistributionFile,
        dest: Path,
        project: str,
        *,
        cancel: threading.Event,
        on_bytes: OnBytes | None = None,
        on_metadata: OnMetadata | None = None,
    ) -> DownloadResult:
        if not self._unusable:
            try:
                return self._in_child(
                    file, dest, project, cancel=cancel, on_bytes=on_bytes, on_metadata=on_metadata
                )
            except DownloadProcessError:
                if not self._unusable:  # it could not start: transferred here instead
                    raise
        return self._here.transfer(
            file, dest, project, cancel=cancel, on_bytes=on_bytes, on_metadata=on_metadata
        )

    def _in_child(
        self,
        file: DistributionFile,
        dest: Path,
        project: str,
        *,
        cancel: threading.Event,
        on_bytes: OnBytes | None,
        on_metadata: OnMetadata | None,
    ) -> DownloadResult:
        if is_upload(dest):  # as download.transfer says it, before any index is asked
            raise UploadConflictError(file.filename, redact(file.url))
        index_client = self.client.client_for(file.url)  # raises for a changed upload
        events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        request = {
            "op": "get",
            "file": _file_message(file),
            "dest": str(dest),
            "project": project,
            "wheel": file.is_wheel,
        }
        try:
            with self._lock:
                if cancel.is_set():
                    raise DownloadCancelled()
                self._start()
                key = self._keys.get(index_client)
                if key is None:
                    key = self._keys[index_client] = len(self._keys)
                    self._send({"op": "client", "key": key, "recipe": index_client.recipe()})
                self._next_id += 1
                request["id"] = self._next_id
                request["client"] = key
                self._pending[self._next_id] = events
                self._send(request)
        except DownloadProcessError:
            if self._reader is not None:
                self._reader.join(EXIT_WAIT_SECONDS)  # the reader decides if it ever started
            raise
        while True:
            try:
                kind, value = events.get(timeout=CANCEL_POLL_SECONDS)
            except queue.Empty:
                if cancel.is_set():
                    self.cancel()
                continue
            if kind == "bytes" and on_bytes is not None:
                on_bytes(value)
            elif kind == "metadata" and on_metadata is not None:
                on_metadata(value)
            elif kind == "done":
                return cast(DownloadResult, value)
            elif kind == "error":
                raise value

    def start(self) -> None:
        """Start the child now rather than at the first transfer: its interpreter takes a
        tenth of a second to be ready, which the first transfers, those a resolution
        waits for, would otherwise wait out."""
        with self._lock:
            if not self._closed and self._ended is None:
                with contextlib.suppress(DownloadProcessError):  # said, and done here
                    self._start()

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled or self._process is None or self._ended is not None:
                return
            with contextlib.suppress(DownloadProcessError):  # gone: nothing left to stop
                self._send({"op": "cancel"})
                self._cancelled = True

    def close(self) -> None:
        """End the child once its transfers are done (the run waited for them)."""
        with self._lock:
            self._closed = True
            process = self._process
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # already gone
            process.stdin.close()
        try:
            process.wait(EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join()

    # -- the parent's side of the pipe -------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("the download process is closed")
        if self._ended is not None:
            raise DownloadProcessError(self._ended)
        if self._process is not None:
            return
        level = logging.getLogger("morgan").getEffectiveLevel()
        command = [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path)]
        try:
            process = subprocess.Popen(
                [*command, str(self.threads), str(level)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None if _usable_stderr() else subprocess.DEVNULL,
            )
        except OSError as error:  # no interpreter there, no process left to fork
            self._unusable = True
            self._ended = f"it could not be started ({error.strerror or error})"
            log.warning(
                "the download process could not start (%s); downloading in this process",
                error.strerror or error,
            )
            raise DownloadProcessError(self._ended) from None
        self._process = process
        self._reader = threading.Thread(
            target=self._read, name="morgan-download-process", daemon=True
        )
        self._reader.start()

    def _send(self, message: dict[str, Any]) -> None:
        """Write one request (the caller holds the lock)."""
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except OSError:
            raise DownloadProcessError(self._ended or "it ended unexpectedly") from None

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            for line in self._process.stdout:
                try:
                    self._answer(json.loads(line))
                except Exception:  # one bad answer must not strand the rest
                    log.debug("download process: could not use %r", line, exc_info=True)
        finally:
            self._process.stdout.close()
            code = self._process.wait()
            with self._lock:
                self._ended = f"it ended with exit code {code} before its transfers were done"
                self._unusable = not self._answered and not self._closed
                pending, self._pending = self._pending, {}
            if self._unusable:
                log.warning(
                    "the download process could not start (exit code %d); "
                    "downloading in this process",
                    code,
                )
            for events in pending.values():
                events.put(("error", DownloadProcessError(self._ended)))

    def _answer(self, message: dict[str, Any]) -> None:
        self._answered = True
        if "ready" in message:
            return
        if "log" in message:
            level, name, text = message["log"]
            logging.getLogger(name).log(level, "%s", text)
            return
        with self._lock:
            events = self._pending.get(message["id"])
            if events is not None and ("done" in message or "error" in message):
                del self._pending[message["id"]]
        if events is None:
            return
        if "bytes" in message:
            events.put(("bytes", message["bytes"]))
        elif "metadata" in message:
            events.put(("metadata", base64.b64decode(message["metadata"])))
        elif "done" in message:
            path, sha256, size = message["done"]
            events.put(("done", DownloadResult(Path(path), sha256, size, reused=False)))
        else:
            events.put(("error", _decode_error(message["error"])))


def _usable_stderr() -> bool:
    """Whether the child can share this process's stderr (a GUI or service may have none)."""
    try:
        os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return True


# -- the child's side --------------------------------------------------------------------


class _Answers:
    """The child's stdout, written whole lines at a time by many threads.

    A pipe that breaks (the parent is gone) cancels every transfer: nobody is left
    to tell, and the parts stay for the next run. It never raises into a transfer,
    which would take a failure to write here for a failed download and delete its part.
    """

    def __init__(self, stream: IO[bytes], cancel: threading.Event) -> None:
        self._stream = stream
        self.cancel = cancel
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message).encode() + b"\n"
        with self._lock:
            if self._stream.closed:  # broken earlier
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                self.cancel.set()
                with contextlib.suppress(OSError):
                    self._stream.close()


class _ForwardedLogs(logging.Handler):
    def __init__(self, answers: _Answers) -> None:
        super().__init__()
        self.answers = answers

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.answers.send({"log": [record.levelno, record.name, text]})
        except Exception:  # a log line must never end a transfer
            self.handleError(record)


def serve(requests: Iterator[bytes], answers: _Answers, threads: int) -> None:
    """Answer ``requests`` until they end; then stop what is still running."""
    cancel = answers.cancel
    clients: dict[int, IndexClient] = {}
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="morgan-transfer") as pool:
            try:
                for line in requests:
                    try:
                        message = json.loads(line)
                        if message["op"] == "client":
                            clients[message["key"]] = IndexClient.from_recipe(message["recipe"])
                        elif message["op"] == "get":
                            client = clients[message["client"]]
                            pool.submit(_serve_one, message, client, cancel, answers)
                        elif message["op"] == "cancel":
                            cancel.set()
                    except Exception:  # one request it cannot read: the others still go
                        log.error("download process: cannot read request %r", line, exc_info=True)
            finally:
                cancel.set()  # the parent closed the pipe (done, or gone), or this failed
    finally:
        for made in clients.values():
            made.close()


def _serve_one(
    message: dict[str, Any], client: IndexClient, cancel: threading.Event, answers: _Answers
) -> None:
    ident = message["id"]
    received = 0

    def on_bytes(count: int) -> None:
        nonlocal received
        received += count
        if received >= BYTES_REPORTED_EVERY:
            answers.send({"id": ident, "bytes": received})
            received = 0

    def on_metadata(metadata: bytes) -> None:
        answers.send({"id": ident, "metadata": base64.b64encode(metadata).decode("ascii")})

    try:
        result = transfer(
            client,
            _file_of(message["file"]),
            Path(message["dest"]),
            cancel=cancel,
            on_bytes=on_bytes,
            on_verified=_metadata_reader(message["project"], on_metadata)
            if message["wheel"]
            else None,
        )
    except BaseException as error:  # every failure is the parent's to judge
        answer: dict[str, Any] = {"id": ident, "error": _encode_error(error)}
    else:
        answer = {"id": ident, "done": [str(result.path), result.sha256, result.size]}
    if received:
        answers.send({"id": ident, "bytes": received})
    answers.send(answer)


def _metadata_reader(project: str, on_metadata: OnMetadata | None) -> Callable[[Path], None] | None:
    """An ``on_verified`` that hands on the wheel's METADATA, if it can be read here (a
    wheel that cannot is read again, and refused, once it is in place)."""
    if on_metadata is None:
        return None

    def read(part: Path) -> None:
        try:
            metadata = read_wheel_metadata(part, project)
        except (MorganError, OSError):
            return
        on_metadata(metadata)

    return read


# -- what crosses the pipe ----------------------------------------------------------------


def _file_message(file: DistributionFile) -> dict[str, Any]:
    """What a transfer needs to know of a file (not its requires-python or yanked state)."""
    return {
        "filename": file.filename,
        "url": file.url,
        "hashes": dict(file.hashes),
        "size": file.size,
        "upload_time": file.upload_time,
    }


def _file_of(message: dict[str, Any]) -> DistributionFile:
    return DistributionFile(**message)


#: The errors a transfer raises on purpose, rebuilt from their arguments on this side.
_REBUILT: dict[str, type[MorganError]] = {
    cls.__name__: cls
    for cls in (
        DistributionError,
        DownloadCancelled,
        HashMismatchError,
        UnsafeNameError,
        UploadConflictError,
    )
}


def _encode_error(error: BaseException) -> dict[str, Any]:
    if isinstance(error, UpstreamError):
        return {
            "type": "UpstreamError",
            "args": [error.url, error.reason],
            "status": error.status,
            "transient": error.transient,
        }
    if type(error).__name__ in _REBUILT and all(isinstance(a, str) for a in error.args):
        return {"type": type(error).__name__, "args": list(error.args)}
    if isinstance(error, OSError):
        if error.errno is None:
            return {"type": "OSError", "args": [None, str(error), None]}
        return {"type": "OSError", "args": [error.errno, error.strerror, error.filename]}
    described = f"{type(error).__name__}: {error}"
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {"type": "", "args": [described], "traceback": trace}


def _decode_error(message: dict[str, Any]) -> BaseException:
    kind, args = message["type"], message["args"]
    if kind == "UpstreamError":
        return UpstreamError(*args, status=message["status"], transient=message["transient"])
    if kind in _REBUILT:
        return _REBUILT[kind](*args)
    if kind == "OSError":
        errno, strerror, filename = args
        if errno is None:
            return OSError(strerror)
        return OSError(errno, strerror) if filename is None else OSError(errno, strerror, filename)
    # not one of morgan's errors: a bug, to be reported as one (with the child's traceback)
    log.debug("in the download process:\n%s", message.get("traceback", ""))
    return RuntimeError(f"in the download process: {args[0]}")


def main(argv: list[str]) -> int:
    """The child: ``python -m morgan.transfers THREADS LOG_LEVEL``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_allocator()  # as the run does: thirty-odd threads, one chunk each at a time
    tune_collector()
    threads, level = int(argv[0]), int(argv[1])
    # the answers get a stdout of their own: whatever else prints goes to stderr
    answers = _Answers(os.fdopen(os.dup(sys.stdout.fileno()), "wb"), threading.Event())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    handler = _ForwardedLogs(answers)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # started: from now on its end is a failure, not a reason to transfer in the run itself
    answers.send({"ready": True})
    serve(iter(sys.stdin.buffer.readline, b""), answers, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
