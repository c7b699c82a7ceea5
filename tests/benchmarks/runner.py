"""Running the two mirrorers as child processes and measuring each run.

Wall time is taken around the child, its peak RSS is its own VmHWM at exit (see
``peakrss.py``; ``os.wait4``'s ru_maxrss is kept too), and the requests and bytes
it cost come from the upstream's counters (reset before the run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fakepypi import control

MORGAN_VERSION = "0.15.0"
HERE = Path(__file__).resolve().parent
DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")


def clean_environment() -> dict[str, str]:
    """The environment for every child: no proxies for loopback, no pip configuration, and
    bytecode cached as on a user's machine (a machine that disables it would have every
    run compile morgan's modules again: a tenth of a second that users never pay)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith("PIP_")
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass(frozen=True)
class Tool:
    name: str
    executable: Path
    takes_jobs: bool

    def command(self, index: Path, config: Path, url: str, jobs: int | None) -> list[str]:
        command = [str(self.executable), "-i", str(index), "-c", str(config), "-I", url]
        if jobs is not None and self.takes_jobs:
            command += ["-j", str(jobs)]
        return [*command, "mirror"]

    def measured(self, command: list[str], peak_file: Path) -> list[str]:
        """``command`` run through peakrss.py by the console script's own interpreter."""
        with self.executable.open() as script:
            interpreter = script.readline()[2:].strip()
        return [interpreter, str(HERE / "peakrss.py"), str(peak_file), *command]


def ours() -> Tool:
    return Tool("ours", Path(sys.executable).with_name("morgan"), takes_jobs=True)


def original_morgan(work: Path, log=print, deleted: Callable[[], None] | None = None) -> Tool:
    """Morgan 0.15.0 from PyPI in its own venv under the work dir (installed on first use;
    ``deleted`` is then told: pip deletes the temporary files it built with)."""
    venv = work / "morgan015"
    executable = venv / "bin" / "morgan"
    if not executable.exists():
        log(f"installing morgan=={MORGAN_VERSION} into {venv}")
        env = clean_environment()
        env["PIP_CONFIG_FILE"] = os.devnull  # this machine's pip config adds other indexes
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"morgan=={MORGAN_VERSION}"],
            check=True,
            env=env,
        )
        if deleted is not None:
            deleted()
    return Tool(f"Morgan {MORGAN_VERSION}", executable, takes_jobs=False)


@dataclass
class RunResult:
    tool: str
    label: str
    command: list[str]
    wall: float
    #: the child's own VmHWM, plus its own children's peak, written at its exit by peakrss.py
    peak_rss_kib: int
    #: ru_maxrss from wait4: also carries the forking harness's high-water mark
    max_rss_kib: int
    exit_code: int
    counters: dict[str, int]
    files: int
    tree_bytes: int
    log: Path
    #: 1-minute load average when the run started (the machine may be shared)
    load_before: float = 0.0
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.counters.get("requests", 0)

    @property
    def fetched(self) -> int:
        return self.counters.get("bytes", 0)


#: How long a deleted file's inode stays "recently deleted" on ext4 without a journal,
#: once its inode table is written back (the kernel's RECENTCY_MIN, 60 s), with a margin.
SETTLE_SECONDS = 70


def set_aside(index: Path, trash: Path) -> None:
    """Move a mirrored tree out of the way instead of deleting it before the next run.

    On ext4 without a journal (this benchmark's machine) the kernel will not reuse an
    inode for a minute after it was freed, and every file created meanwhile in the
    same block group scans past each such inode: deleting the last run's tree (three
    thousand files) right before a cold run made every file that run created cost
    about half a millisecond of system time, a sixth to a fifth of the run's CPU
    (perf: ``recently_deleted`` under ``ext4_create``). Users mirroring into a fresh
    folder never pay that, so no measured run may follow the deletion of a tree. (A run
    still deletes a few files of its own, what it read only for dependencies: that is
    part of what it costs.)
    """
    if not index.exists():
        return
    trash.mkdir(parents=True, exist_ok=True)
    index.rename(trash / f"{index.name}-{time.monotonic_ns()}")


def empty_trash(trash: Path, stamp: Path) -> None:
    """Delete the trees set aside, and note when: the next benchmark waits for that."""
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
        note_deletion(stamp)


def note_deletion(stamp: Path) -> None:
    """Files were deleted now: ``settle`` makes the first measured run wait for them to age."""
    stamp.write_text(f"{time.time()}\n")


def settle(trash: Path, stamp: Path, log: Callable[[str], None]) -> None:
    """Before the first measured run: let deletions of an earlier benchmark age."""
    empty_trash(trash, stamp)  # an interrupted benchmark's
    try:
        deleted = float(stamp.read_text())
    except (OSError, ValueError):
        return
    wait = deleted + SETTLE_SECONDS - time.time()
    if wait > 0:
        log(f"waiting {wait:.0f} s for the last deletions to age (see runner.set_aside)")
        os.sync()
        time.sleep(wait)


def count_tree(index: Path) -> tuple[int, int]:
    """(distribution files, their bytes) in a mirrored tree."""
    count = size = 0
    for folder, _, names in os.walk(index):
        for name in names:
            if name.endswith(DIST_SUFFIXES) and not name.startswith("."):
                count += 1
                size += os.stat(os.path.join(folder, name)).st_size
    return count, size


def run_mirror(
    tool: Tool,
    *,
    label: str,
    index: Path,
    config: Path,
    upstream: str,
    logs: Path,
    jobs: int | None = None,
    timeout: float = 3600,
) -> RunResult:
    """One ``mirror`` run of ``tool`` into ``index``, measured."""
    command = tool.command(index, config, f"{upstream}simple/", jobs)
    logs.mkdir(parents=True, exist_ok=True)
    stem = f"{tool.name.split()[0].lower()}-{label}"
    out_path, err_path = logs / f"{stem}.out", logs / f"{stem}.err"
    peak_file = logs / f"{stem}.vmhwm"
    peak_file.unlink(missing_ok=True)
    control(upstream, "reset")
    load_before = os.getloadavg()[0]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(
            tool.measured(command, peak_file),
            stdout=out,
            stderr=err,
            env=clean_environment(),
            cwd=index.parent,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, (process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: take the child down too
            _kill_group(process.pid)
            process.wait()
            raise
        finally:
            timer.cancel()
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    counters = control(upstream, "stats")
    files, tree_bytes = count_tree(index)
    tail = err_path.read_text(errors="replace").splitlines()[-15:]
    return RunResult(
        tool=tool.name,
        label=label,
        command=command,
        wall=wall,
        peak_rss_kib=int(peak_file.read_text()) if peak_file.exists() else 0,
        max_rss_kib=usage.ru_maxrss,
        exit_code=process.returncode,
        counters=counters,
        files=files,
        tree_bytes=tree_bytes,
        log=out_path,
        load_before=load_before,
        stderr_tail=tail,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
