"""Killing the mirrorer never breaks the tree, and two runs never write it at once.

The mirrorer runs as a real process against a slow local upstream, is killed
(SIGINT or SIGKILL) at seeded random moments, and is then run again to the end.
Meanwhile the real server serves the tree, and a poller checks that every file
it lists is complete and has the digest it is listed with.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from builders import build_wheel
from server_support import ServerProcess
from support import ENVIRONMENTS, populate_many, skip_unless_ci, tree_snapshot, write_config
from upstream import FixtureIndex

from morgan.sources import METADATA_FIRST_SIZE

JSON = "application/vnd.pypi.simple.v1+json"


def start_mirror(index: Path, config: Path, url: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "morgan", "-i", str(index), "-c", str(config), "-I", url]
    return subprocess.Popen(
        [*command, "mirror", "--skip-server-copy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_to_the_end(index: Path, config: Path, url: str) -> None:
    process = start_mirror(index, config, url)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, (out, err)


class Poller(threading.Thread):
    """Reads the tree through the server, over and over, checking every listed file."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.files_checked = 0

    def get(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"Accept": JSON})
        with urllib.request.urlopen(request, timeout=30) as response:
            return bytes(response.read())

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sweep()
            except Exception as error:  # a failed read is a finding, not a crash
                self.problems.append(f"{type(error).__name__}: {error}")
                return

    def sweep(self) -> None:
        projects = json.loads(self.get(self.base))["projects"]
        for project in projects:
            page_url = urllib.parse.urljoin(self.base, f"{project['name']}/")
            for entry in json.loads(self.get(page_url))["files"]:
                name = entry["filename"]
                if name.startswith(".") or name.endswith(".part"):
                    self.problems.append(f"a temporary file is listed: {name}")
                data = self.get(urllib.parse.urljoin(page_url, entry["url"]))
                digest = entry["hashes"].get("sha256")
                if digest is not None and hashlib.sha256(data).hexdigest() != digest:
                    self.problems.append(f"{name} is listed but incomplete or wrong")
                self.files_checked += 1


@pytest.fixture
def slow_upstream(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FixtureIndex("json") as upstream:
        requirements = populate_many(upstream, tmp_path / "dists", count=100)
        upstream.latency = 0.02
        config = write_config(
            tmp_path / "morgan.ini", {"linux312": ENVIRONMENTS["linux312"]}, requirements
        )
        reference = tmp_path / "reference"
        run_to_the_end(reference, config, upstream.url)
        yield upstream, config, tree_snapshot(reference)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_runs_then_a_full_run_give_the_uninterrupted_tree(
    slow_upstream, tmp_path: Path, how: signal.Signals
) -> None:  # type: ignore[no-untyped-def]
    upstream, config, reference = slow_upstream
    index = tmp_path / "index"
    index.mkdir()
    rng = random.Random(f"interrupt-{how.name}")
    with ServerProcess(index, "--quiet") as server:
        poller = Poller(server.url)
        poller.start()
        interrupted = 0
        try:
            for _ in range(4):
                asked = len(upstream.requests)
                process = start_mirror(index, config, upstream.url)
                # let the run get going (past start-up), then kill it somewhere in its middle
                deadline = time.monotonic() + 60
                while len(upstream.requests) == asked:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 1.0))
                process.send_signal(how)
                _, err = process.communicate(timeout=120)
                interrupted += process.returncode != 0
                if how == signal.SIGINT and process.returncode != 0:
                    assert process.returncode == 130, err
                    assert b"interrupted; run the same command again" in err
                    assert b"Traceback" not in err
            run_to_the_end(index, config, upstream.url)
        finally:
            poller.stop.set()
            poller.join(timeout=120)
    (index / "server.py").unlink()
    assert interrupted >= 3  # the kills landed mid-run
    assert poller.problems == []
    assert poller.files_checked > 0
    assert tree_snapshot(index) == reference


def test_a_run_that_finds_nothing_new_writes_nothing(slow_upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    upstream, config, _ = slow_upstream
    index = tmp_path / "index"
    run_to_the_end(index, config, upstream.url)

    def stamps() -> dict[str, tuple[int, int, int]]:
        return {
            str(path): (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size)
            for path in index.rglob("*")
        }

    before = stamps()
    upstream.requests.clear()
    run_to_the_end(index, config, upstream.url)
    assert stamps() == before
    # only conditional page requests (answered 304): no file and no metadata fetched again
    assert upstream.requests and all(r.startswith("/simple/") for r in upstream.requests)
    assert all("If-None-Match" in h for h in upstream.request_headers[-len(upstream.requests) :])


def test_two_runs_at_once_never_interleave(slow_upstream, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    upstream, config, reference = slow_upstream
    index = tmp_path / "index"
    # the first run stays under way (its last project's page is held) until the second ends
    release = threading.Event()
    upstream.held["/simple/p099/"] = release
    try:
        first = start_mirror(index, config, upstream.url)
        deadline = time.monotonic() + 60
        while not (index / ".morgan.lock").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        second = start_mirror(index, config, upstream.url)
        _, err = second.communicate(timeout=120)  # after waiting WAIT_SECONDS for the lock
        assert first.poll() is None
    finally:
        release.set()
    assert second.returncode == 1
    assert b"another morgan run (or a server.py import) is writing this index" in err
    assert err.count(b"\n") == 1
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert tree_snapshot(index) == reference


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 2 MiB tmpfs: a disk that fills up."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        skip_unless_ci("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        skip_unless_ci(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_is_a_clear_error_and_leaves_the_tree_intact(
    run_morgan, small_disk: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    index = small_disk / "index"
    envs = {"linux312": ENVIRONMENTS["linux312"]}
    with FixtureIndex("json") as upstream:
        dists = tmp_path / "dists"
        for name in ("alpha", "beta"):
            upstream.add(build_wheel(dists, name, "1.0"))
        config = write_config(tmp_path / "morgan.ini", envs, "alpha =\nbeta =\n")
        args = ["-i", str(index), "-c", str(config), "-I", upstream.url, "mirror"]
        assert run_morgan(*args).code == 0
        before = tree_snapshot(index)

        blob = random.Random(0).randbytes(3 * 1024 * 1024)
        upstream.add(build_wheel(dists, "huge", "1.0", extra_members={"huge/blob": blob}))
        write_config(tmp_path / "morgan.ini", envs, "alpha =\nbeta =\nhuge =\n")
        result = run_morgan(*args)

    assert result.code == 1
    assert "huge-1.0-py3-none-any.whl: cannot write" in result.err
    assert "No space left on device" in result.err
    assert "Traceback" not in result.err
    assert not list(index.rglob("*.part"))
    assert not (index / "huge" / "huge-1.0-py3-none-any.whl").exists()
    after = tree_snapshot(index)
    assert {k: v for k, v in after.items() if k in before} == before
    assert json.loads((index / "index.json").read_text())["projects"] == [
        {"name": "alpha"},
        {"name": "beta"},
    ]


def test_ctrl_c_keeps_the_parts_of_downloads_still_queued(tmp_path: Path) -> None:
    # An interrupted run cancels the downloads still queued; their folders must not be
    # written and tidied on the way out, or the parts an earlier run left to resume go.
    dists = tmp_path / "dists"
    index = tmp_path / "index"
    with FixtureIndex("json") as upstream:
        wheels = []
        for name in ("first", "second"):
            # large enough that their dependencies come from PEP 658 metadata: the files
            # themselves are only downloaded once chosen, one at a time (-j 1)
            bulk = {f"{name}/data.bin": random.Random(name).randbytes(METADATA_FIRST_SIZE + 1)}
            wheel = build_wheel(dists, name, "1.0", extra_members=bulk)
            upstream.add(wheel)
            upstream.held[f"/files/{wheel.name}"] = threading.Event()
            wheels.append(wheel)
        parts = []
        for wheel in wheels:  # downloads an earlier, interrupted run began
            folder = index / wheel.name.split("-", 1)[0]
            folder.mkdir(parents=True)
            parts.append(folder / f".{wheel.name}.part")
            parts[-1].write_bytes(wheel.read_bytes()[:4096])
        config = write_config(
            tmp_path / "morgan.ini", {"linux312": ENVIRONMENTS["linux312"]}, "first =\nsecond =\n"
        )
        command = [sys.executable, "-m", "morgan", "-j", "1", "-i", str(index), "-c", str(config)]
        process = subprocess.Popen(
            [*command, "-I", upstream.url, "mirror", "--skip-server-copy"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            asked = {f"/files/{wheel.name}" for wheel in wheels}
            while not asked & {path.split("?", 1)[0] for path in upstream.requests}:
                assert time.monotonic() < deadline, "no chosen file was asked for"
                assert process.poll() is None, process.communicate()
                time.sleep(0.02)
            time.sleep(0.3)  # the other chosen file waits behind it
            process.send_signal(signal.SIGINT)
            time.sleep(0.5)
            for held in upstream.held.values():  # the stalled download ends: the run exits
                held.set()
            out, err = process.communicate(timeout=60)
        finally:
            for held in upstream.held.values():
                held.set()
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, (out, err)
    assert [part.exists() for part in parts] == [True, True]
