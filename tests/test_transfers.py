"""Transfers in a download process of its own: the same verified files and the same errors
as a transfer here, its child stopped by cancel, by a closed pipe, and never waited on
forever when it dies."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from packaging.utils import NormalizedName
from support import ENVIRONMENTS, GRAPH_REQUIREMENTS, populate_graph, tree_snapshot, write_config
from upstream import Faults, FixtureIndex

import morgan.index
from morgan import mirror as mirror_module
from morgan.cli import main
from morgan.download import ATTEMPTS, DownloadResult, part_path
from morgan.errors import (
    DownloadCancelled,
    HashMismatchError,
    UploadConflictError,
    UpstreamError,
)
from morgan.index import IndexClient
from morgan.layout import UPLOADED_SUFFIX, read_hash_sidecar
from morgan.models import DistributionFile
from morgan.pool import LanePool
from morgan.sources import FetchOptions, UpstreamSource
from morgan.tls import TLSSettings
from morgan.transfers import (
    _BOOTSTRAP,
    DownloadProcess,
    DownloadProcessError,
    LocalTransfers,
    Transfers,
    _decode_error,
    _encode_error,
    _file_message,
)

pytestmark = pytest.mark.usefixtures("no_proxies_no_netrc")


@pytest.fixture
def index() -> Iterator[FixtureIndex]:
    with FixtureIndex("json") as served:
        yield served


@pytest.fixture
def process(client: IndexClient) -> Iterator[DownloadProcess]:
    made = DownloadProcess(client, threads=4)
    yield made
    made.close()


#: Both ways a file can be transferred; every contract test runs over both.
MAKERS: dict[str, Callable[[IndexClient], Transfers]] = {
    "here": LocalTransfers,
    "process": lambda client: DownloadProcess(client, threads=4),
}


@pytest.fixture(params=sorted(MAKERS))
def transfers(request: pytest.FixtureRequest, client: IndexClient) -> Iterator[Transfers]:
    made = MAKERS[request.param](client)
    yield made
    made.close()


def only_file(client: IndexClient, project: str) -> DistributionFile:
    (file,) = client.get_project_page(project).page.files
    return file


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``work`` on a thread; its result or exception lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # the test looks at it
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_request(index: FixtureIndex, path: str) -> None:
    deadline = time.monotonic() + 30
    while path not in index.requests:
        assert time.monotonic() < deadline, f"{path} was never asked for"
        time.sleep(0.01)


def test_a_wheel_arrives_verified_with_its_metadata_and_progress(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, transfers: Transfers
) -> None:
    wheel = index.add(build_wheel(tmp_path / "dists", "alpha", "1.0", requires=["beta>=2"]))
    file = only_file(client, "alpha")
    dest = tmp_path / "tree" / "alpha" / wheel.filename
    received: list[int] = []
    metadata: list[bytes] = []

    result = transfers.transfer(
        file,
        dest,
        "alpha",
        cancel=threading.Event(),
        on_bytes=received.append,
        on_metadata=metadata.append,
    )

    size = wheel.path.stat().st_size
    assert result == DownloadResult(dest, wheel.sha256(), size, reused=False)
    assert dest.read_bytes() == wheel.path.read_bytes()
    assert read_hash_sidecar(dest) == ("sha256", wheel.sha256())
    assert sum(received) == size
    assert metadata == [wheel.wheel_metadata()]
    assert not part_path(dest).exists()


def test_the_transfers_run_in_another_process(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, process: DownloadProcess
) -> None:
    index.add(build_sdist(tmp_path / "dists", "alpha", "1.0"))
    file = only_file(client, "alpha")
    assert process.pid is None  # started by the first transfer, not before
    metadata: list[bytes] = []
    process.transfer(
        file,
        tmp_path / "tree" / file.filename,
        "alpha",
        cancel=threading.Event(),
        on_metadata=metadata.append,
    )
    assert process.pid is not None and process.pid != os.getpid()
    assert metadata == []  # an sdist: no METADATA to hand on early
    process.close()
    with pytest.raises(RuntimeError, match="closed"):
        process.transfer(
            file, tmp_path / "again" / file.filename, "alpha", cancel=threading.Event()
        )


def test_errors_come_back_as_the_errors_a_transfer_here_raises(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, transfers: Transfers
) -> None:
    bad = index.add(build_wheel(tmp_path / "dists", "bad", "1.0"), wrong_hash=True)
    gone = index.add(build_wheel(tmp_path / "dists", "gone", "1.0"))
    bad_file, gone_file = only_file(client, "bad"), only_file(client, "gone")
    index.projects["gone"].clear()  # listed, then 404
    cancel = threading.Event()

    dest = tmp_path / "tree" / "bad" / bad.filename
    with pytest.raises(HashMismatchError) as mismatch:
        transfers.transfer(bad_file, dest, "bad", cancel=cancel)
    assert mismatch.value.filename == bad.filename and mismatch.value.expected == "0" * 64
    assert not dest.exists() and not part_path(dest).exists()

    with pytest.raises(UpstreamError) as missing:
        transfers.transfer(gone_file, tmp_path / "tree" / gone.filename, "gone", cancel=cancel)
    assert missing.value.status == 404 and missing.value.transient is False
    assert "404" in str(missing.value)

    # a file uploaded to the mirror under the same name is never replaced
    uploaded = tmp_path / "tree" / "gone" / gone.filename
    uploaded.parent.mkdir(parents=True, exist_ok=True)
    uploaded.write_bytes(b"mine")
    Path(f"{uploaded}{UPLOADED_SUFFIX}").write_text("")
    with pytest.raises(UploadConflictError):
        transfers.transfer(gone_file, uploaded, "gone", cancel=cancel)
    assert uploaded.read_bytes() == b"mine"


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("http://x/f.whl", "refused", status=503, transient=True),
        UpstreamError("http://x/f.whl", "not found", status=404),
        HashMismatchError("f.whl", "sha256", "a" * 64, "b" * 64),
        UploadConflictError("f.whl", "http://x/"),
        DownloadCancelled(),
        OSError(28, "No space left on device", "/tree/.f.whl.part"),
        OSError("no errno at all"),
    ],
    ids=repr,
)
def test_an_error_crosses_the_pipe_unchanged(error: BaseException) -> None:
    crossed = _decode_error(json.loads(json.dumps(_encode_error(error))))
    assert type(crossed) is type(error)
    assert str(crossed) == str(error)
    if isinstance(error, UpstreamError):
        assert isinstance(crossed, UpstreamError)
        assert (crossed.status, crossed.transient) == (error.status, error.transient)


def test_an_unexpected_error_is_named_not_lost() -> None:
    """A bug in the child stays a bug here (not one of morgan's errors, which would be
    taken for a refusal), named with its type."""
    try:
        1 / 0  # noqa: B018 - a real exception, with a traceback
    except ZeroDivisionError as error:
        encoded = _encode_error(error)
    assert "ZeroDivisionError" in encoded["traceback"]
    crossed = _decode_error(json.loads(json.dumps(encoded)))
    assert type(crossed) is RuntimeError
    assert str(crossed) == "in the download process: ZeroDivisionError: division by zero"


class HeldTransfer:
    """A wheel's transfer under way on a thread, its request held by the index until
    ``release`` is set."""

    def __init__(
        self,
        tmp_path: Path,
        index: FixtureIndex,
        client: IndexClient,
        process: DownloadProcess,
        cancel: threading.Event,
    ) -> None:
        wheel = index.add(build_wheel(tmp_path / "dists", "slow", "1.0"))
        self.file = only_file(client, "slow")
        self.release = threading.Event()
        index.held[f"/files/{wheel.filename}"] = self.release
        self.dest = tmp_path / "tree" / "slow" / wheel.filename
        self.thread, self.outcome = in_thread(
            lambda: process.transfer(self.file, self.dest, "slow", cancel=cancel)
        )
        wait_for_request(index, f"/files/{wheel.filename}")


def test_cancel_stops_the_childs_transfer_and_keeps_nothing_half_done(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, process: DownloadProcess
) -> None:
    cancel = threading.Event()
    held = HeldTransfer(tmp_path, index, client, process, cancel)

    cancel.set()  # the run is interrupted: the waiting thread tells the child
    time.sleep(0.5)
    held.release.set()  # the bytes come now, and the child stops at the first of them
    held.thread.join(30)
    assert not held.thread.is_alive()
    assert len(held.outcome) == 1 and isinstance(held.outcome[0], DownloadCancelled)
    assert not held.dest.exists()
    with pytest.raises(DownloadCancelled):  # nothing new starts once cancelled
        process.transfer(held.file, held.dest, "slow", cancel=cancel)


def test_a_child_that_dies_fails_its_transfers_and_nobody_waits_forever(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, process: DownloadProcess
) -> None:
    held = HeldTransfer(tmp_path, index, client, process, threading.Event())
    assert process.pid is not None

    os.kill(process.pid, signal.SIGKILL)
    held.thread.join(30)
    held.release.set()
    assert not held.thread.is_alive()
    (error,) = held.outcome
    assert isinstance(error, DownloadProcessError)
    assert str(error) == (
        "the download process: it ended with exit code -9 before its transfers were done"
    )
    with pytest.raises(DownloadProcessError, match="exit code -9"):
        process.transfer(held.file, tmp_path / "again.whl", "slow", cancel=threading.Event())


def child_fetching_a_held_wheel(
    tmp_path: Path, index: FixtureIndex, wheel: Path
) -> tuple[subprocess.Popen[bytes], threading.Event, Path]:
    """A bare download process (``python -m morgan.transfers``) asked for ``wheel``, whose
    request the index holds until the event is set; and where the wheel is to go."""
    entry = index.add(wheel)
    project = entry.filename.split("-")[0]
    file = IndexClient(index.url).get_project_page(project).page.files[0]
    release = threading.Event()
    index.held[f"/files/{entry.filename}"] = release
    child = subprocess.Popen(
        [sys.executable, "-m", "morgan.transfers", "2", str(logging.WARNING)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdin is not None
    dest = tmp_path / "tree" / entry.filename
    requests = [
        {"op": "client", "key": 0, "recipe": IndexClient(index.url).recipe()},
        {
            "op": "get",
            "id": 1,
            "client": 0,
            "file": _file_message(file),
            "dest": str(dest),
            "project": project,
            "wheel": True,
        },
    ]
    child.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    child.stdin.flush()
    wait_for_request(index, f"/files/{entry.filename}")
    return child, release, dest


def test_the_child_stops_when_its_pipe_closes(tmp_path: Path, index: FixtureIndex) -> None:
    """A parent killed outright closes the child's stdin: the child cancels and ends."""
    wheel = build_wheel(tmp_path / "dists", "slow", "1.0")
    child, release, dest = child_fetching_a_held_wheel(tmp_path, index, wheel)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    release.set()
    assert child.wait(30) == 0
    answers = [json.loads(line) for line in child.stdout.read().splitlines()]
    child.stdout.close()
    assert answers == [
        {"ready": True},
        {"id": 1, "error": {"type": "DownloadCancelled", "args": []}},
    ]
    assert not dest.exists()


def test_the_childs_log_lines_reach_this_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="morgan")
    wheel = build_wheel(tmp_path / "dists", "cut", "1.0")
    with FixtureIndex("json", Faults(always={wheel.name: "cut"})) as index:
        index.add(wheel)
        client = IndexClient(index.url, retries=0, backoff=0)
        page = client.get_project_page("cut").page
        process = DownloadProcess(client, threads=2)
        try:
            with pytest.raises(UpstreamError, match="Connection broken"):
                process.transfer(
                    page.files[0], tmp_path / "tree" / wheel.name, "cut", cancel=threading.Event()
                )
        finally:
            process.close()
    retries = [r for r in caplog.records if r.name == "morgan.download" and "attempt" in r.message]
    assert [r.message.split(" failed")[0] for r in retries] == [
        f"{wheel.name}: attempt {n} of {ATTEMPTS}" for n in range(1, ATTEMPTS)
    ]


def test_a_client_is_made_again_from_its_recipe(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    original = IndexClient(
        "https://user:s%40cret@example.org/simple/",
        connections=3,
        connect_timeout=4.0,
        read_timeout=5.0,
        retries=2,
        backoff=0.5,
        attempts=6,
        tls=TLSSettings(ca_bundle=str(bundle), ca_bundle_from="--cert"),
    )
    copy = IndexClient.from_recipe(json.loads(json.dumps(original.recipe())))
    assert copy.recipe() == original.recipe()
    assert copy.index_url == original.index_url == "https://example.org/simple/"
    assert copy.tls == original.tls
    assert (copy.backoff, copy.attempts) == (0.5, 6)
    assert copy._credentials == original._credentials  # the password went along
    # a default is taken as it is here (the tests make it short): the child waits as long
    defaulted = IndexClient.from_recipe(IndexClient("http://example.org/simple/").recipe())
    assert defaulted.backoff == morgan.index.DEFAULT_BACKOFF == 0.01


def run_mirror(index: FixtureIndex, tree: Path, capsys: pytest.CaptureFixture[str]) -> int:
    config = write_config(tree.parent / f"{tree.name}.ini", ENVIRONMENTS, GRAPH_REQUIREMENTS)
    capsys.readouterr()
    code = main(
        ["-i", str(tree), "-c", str(config), "-I", index.url, "mirror", "--skip-server-copy"]
    )
    capsys.readouterr()
    return code


def test_a_mirror_is_the_same_whether_files_come_through_the_process_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[DownloadProcess] = []
    real = mirror_module.DownloadProcess

    def spied(client: IndexClient, threads: int) -> DownloadProcess:
        made = real(client, threads)
        started.append(made)
        return made

    with FixtureIndex("json") as upstream:
        populate_graph(upstream, tmp_path / "dists")
        monkeypatch.setattr(mirror_module, "DownloadProcess", spied)
        assert run_mirror(upstream, tmp_path / "through-process", capsys) == 0
        (used,) = started
        assert used.pid is not None  # the files came through a child
        monkeypatch.setattr(mirror_module, "DownloadProcess", lambda c, t: LocalTransfers(c))
        assert run_mirror(upstream, tmp_path / "here", capsys) == 0

    through = tree_snapshot(tmp_path / "through-process", state=False)
    here = tree_snapshot(tmp_path / "here", state=False)
    assert through == here
    assert any(name.endswith(".whl.metadata") for name in through)


def test_a_new_tree_starts_the_process_before_its_first_transfer_and_a_rerun_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The child's interpreter takes a tenth of a second to be ready: a new tree starts it
    # while its first pages come in. A re-run, whose files are all in place, never does,
    # whether its plans stand or are made again (another configuration).
    events: list[str] = []
    real = mirror_module.DownloadProcess

    class Spied(real):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            events.append("start")
            super().start()

        def transfer(self, *args: object, **kwargs: object) -> DownloadResult:
            events.append("transfer")
            return super().transfer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mirror_module, "DownloadProcess", Spied)
    tree = tmp_path / "tree"
    with FixtureIndex("json") as upstream:
        populate_graph(upstream, tmp_path / "dists")
        assert run_mirror(upstream, tree, capsys) == 0
        assert events[:2] == ["start", "transfer"]
        events.clear()
        assert run_mirror(upstream, tree, capsys) == 0  # the plans stand
        config = write_config(tmp_path / "other.ini", ENVIRONMENTS, GRAPH_REQUIREMENTS[:-1])
        code = main(
            ["-i", str(tree), "-c", str(config), "-I", upstream.url, "mirror", "--skip-server-copy"]
        )
        assert code == 0
    assert events == []


def test_callbacks_run_on_the_waiting_thread_which_may_transfer_again(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, process: DownloadProcess
) -> None:
    """As a transfer here would: a wheel's METADATA may start more work (a resolution's
    look-ahead), even another transfer, and nothing waits on the thread reading answers."""
    first = index.add(build_wheel(tmp_path / "dists", "alpha", "1.0"))
    second = index.add(build_wheel(tmp_path / "dists", "beta", "1.0"))
    alpha, beta = only_file(client, "alpha"), only_file(client, "beta")
    threads: list[int] = []
    nested: list[DownloadResult] = []

    def on_metadata(metadata: bytes) -> None:
        threads.append(threading.get_ident())
        dest = tmp_path / "tree" / "beta" / second.filename
        nested.append(process.transfer(beta, dest, "beta", cancel=threading.Event()))

    thread, outcome = in_thread(
        lambda: process.transfer(
            alpha,
            tmp_path / "tree" / "alpha" / first.filename,
            "alpha",
            cancel=threading.Event(),
            on_metadata=on_metadata,
        )
    )
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], DownloadResult)
    assert threads == [thread.ident]
    assert [r.sha256 for r in nested] == [second.sha256()]


@pytest.mark.parametrize(
    ("executable", "ahead", "why"),
    [
        ("false", False, "exit code 1"),  # starts, and ends at once
        ("no-such-python", True, "No such file or directory"),  # cannot be spawned
        ("no-such-python", False, "No such file or directory"),
    ],
    ids=["ends-at-once", "unspawnable-started-ahead", "unspawnable-at-first-transfer"],
)
def test_a_child_that_cannot_start_leaves_the_transfers_to_this_process(
    tmp_path: Path,
    index: FixtureIndex,
    client: IndexClient,
    monkeypatch: pytest.MonkeyPatch,
    *,
    caplog: pytest.LogCaptureFixture,
    executable: str,
    ahead: bool,
    why: str,
) -> None:
    wheel = index.add(build_wheel(tmp_path / "dists", "alpha", "1.0"))
    file = only_file(client, "alpha")
    monkeypatch.setattr(sys, "executable", shutil.which(executable) or str(tmp_path / executable))
    process = DownloadProcess(client, threads=2)
    try:
        if ahead:
            process.start()  # a hint: not an error of the run
        for attempt in ("first", "second"):
            dest = tmp_path / attempt / wheel.filename
            result = process.transfer(file, dest, "alpha", cancel=threading.Event())
            assert result.sha256 == wheel.sha256() and dest.read_bytes() == wheel.path.read_bytes()
    finally:
        process.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"the download process could not start ({why}); downloading in this process"
    ]


def test_the_child_ignores_ctrl_c_before_its_imports(tmp_path: Path) -> None:
    # The terminal's Ctrl-C reaches the child too; the run handles it and tells the child.
    # A stand-in for morgan.transfers reports what SIGINT does while it is imported.
    stand_in = tmp_path / "path" / "morgan"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    (stand_in / "transfers.py").write_text(
        "import signal\n"
        "IGNORED = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "def main(argv):\n"
        "    print('ignored' if IGNORED else 'not ignored')\n"
        "    return 0\n"
    )
    search = json.dumps([str(tmp_path / "path"), *sys.path])
    result = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, search, "2", "20"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "ignored"


def test_a_child_whose_answers_cannot_be_sent_keeps_the_part(
    tmp_path: Path, index: FixtureIndex
) -> None:
    """The parent is gone mid-transfer: the child cancels, and the part stays to resume."""
    blob = os.urandom(3 << 20)
    wheel = build_wheel(tmp_path / "dists", "big", "1.0", extra_members={"big/blob.bin": blob})
    child, release, dest = child_fetching_a_held_wheel(tmp_path, index, wheel)
    assert child.stdin is not None and child.stdout is not None
    child.stdout.close()  # nobody reads the answers any more
    release.set()
    time.sleep(1)
    child.stdin.close()
    assert child.wait(30) == 0
    assert not dest.exists()
    assert 0 < part_path(dest).stat().st_size < wheel.stat().st_size


def test_the_parts_of_a_dead_childs_transfers_are_kept_to_resume(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, process: DownloadProcess
) -> None:
    """The run keeps a part whose transfer broke off (``resumable``): the next run resumes
    it. A dead download process breaks its transfers off as a dropped connection would."""
    wheel = index.add(build_wheel(tmp_path / "dists", "slow", "1.0"))
    release = threading.Event()
    index.held[f"/files/{wheel.filename}"] = release
    pool = LanePool(2)
    source = UpstreamSource(
        client,
        pool,
        FetchOptions(index_path=tmp_path / "tree", package_type_regex="whl"),
        transfers=process,
    )
    try:
        (file,) = source.files(NormalizedName("slow"))
        fetched = source.fetch(NormalizedName("slow"), file)
        wait_for_request(index, f"/files/{wheel.filename}")
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(DownloadProcessError):
            fetched.result(30)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert source.resumable == {part_path(tmp_path / "tree" / "slow" / wheel.filename)}
