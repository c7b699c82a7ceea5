"""The progress counters, the live line on a terminal, and plain lines everywhere else."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from support import ENVIRONMENTS, populate_many, write_config
from upstream import FixtureIndex

from morgan.progress import Progress, Snapshot, render


def test_counters_and_rendering() -> None:
    progress = Progress()
    progress.project_resolved()
    progress.file_queued(1000)
    progress.file_queued(None)
    progress.file_queued(500)
    progress.bytes_received(600)
    progress.file_done(600, 1000)  # smaller than announced: the total follows
    progress.file_failed(500)
    snapshot = progress.snapshot()
    assert (snapshot.projects, snapshot.files_done, snapshot.files_total) == (1, 1, 2)
    assert snapshot.bytes_done == 600
    assert snapshot.bytes_total == 600


def test_render_shows_rate_and_time_left() -> None:
    snapshot = Snapshot(
        projects=12,
        files_done=30,
        files_total=50,
        bytes_done=10 * 1024 * 1024,
        bytes_total=70 * 1024 * 1024,
        rate=1024 * 1024,
    )
    assert render(snapshot) == (
        "12 projects, 30/50 files, 10.0 MiB/70.0 MiB, 1.0 MiB/s, 0:01:00 left"
    )


def run_cli(tmp_path: Path, upstream: FixtureIndex, *, terminal: bool, quiet: bool = False):  # type: ignore[no-untyped-def]
    config = write_config(
        tmp_path / "morgan.ini", {"linux312": ENVIRONMENTS["linux312"]}, "p000 =\n"
    )
    command = [sys.executable, "-m", "morgan", "-i", str(tmp_path / "index"), "-c", str(config)]
    command += ["-I", upstream.url, "mirror", "--skip-server-copy"] + (["-q"] if quiet else [])
    if not terminal:
        done = subprocess.run(command, capture_output=True, timeout=120)
        return done.returncode, done.stdout + done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process is gone
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=120), output


def test_live_line_on_a_terminal_plain_lines_otherwise(tmp_path: Path) -> None:
    with FixtureIndex("json") as upstream:
        populate_many(upstream, tmp_path / "dists", count=30)
        upstream.latency = 0.05  # slow enough for the line to be drawn a few times
        code, on_terminal = run_cli(tmp_path / "tty", upstream, terminal=True)
        assert code == 0, on_terminal
        assert b"\r\x1b[K" in on_terminal
        assert b" projects, " in on_terminal and b" files, " in on_terminal
        assert b"mirrored 31 projects" in on_terminal

        code, in_a_pipe = run_cli(tmp_path / "pipe", upstream, terminal=False)
        assert code == 0
        assert b"\r" not in in_a_pipe and b"\x1b" not in in_a_pipe
        assert b"mirrored 31 projects" in in_a_pipe

        code, quiet = run_cli(tmp_path / "quiet", upstream, terminal=True, quiet=True)
        assert code == 0
        assert b"\x1b" not in quiet
