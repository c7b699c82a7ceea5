"""Memory stays flat: a large wheel costs the mirrorer no more memory than a small one.

Downloads and hashing stream in chunks, and metadata is read from the wheel's
one METADATA member, so the peak RSS of a run must not follow the file's size.
This is a bound on memory, read from the real process's own VmHWM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from builders import build_wheel
from support import ENVIRONMENTS, write_config
from upstream import FixtureIndex

MiB = 1024 * 1024


def big_wheel(directory: Path, name: str, size: int) -> Path:
    """A valid wheel with one stored (uncompressed), incompressible member of ``size`` bytes."""
    wheel = build_wheel(directory, name, "1.0")
    block = os.urandom(MiB)
    with (
        zipfile.ZipFile(wheel, "a") as archive,
        archive.open(f"{name}/payload.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(size // MiB):
            member.write(block)
    return wheel


#: Runs the CLI, then reports the process's own peak RSS, and its download process's.
#: (VmHWM belongs to the process's memory map, which exec made new; its own ru_maxrss
#: would also carry the peak of the pytest process it was forked from. The download
#: process is its only child, started by exec too, and waited for: RUSAGE_CHILDREN.)
MEASURED_RUN = """
import resource, sys
from morgan.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM:"))
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print("peak", int(peak.split()[1]) * 1024, child, file=sys.stderr)
sys.exit(code)
"""


def peak_rss_of_mirror(tmp_path: Path, upstream: FixtureIndex, project: str) -> tuple[int, int]:
    """Peak resident memory of a ``morgan mirror`` process and of its download process
    (which streams the files), in bytes."""
    config = write_config(
        tmp_path / f"{project}.ini", {"linux312": ENVIRONMENTS["linux312"]}, f"{project} =\n"
    )
    command = [sys.executable, "-c", MEASURED_RUN, "-i", str(tmp_path / "index"), "-c", str(config)]
    command += ["-I", upstream.url, "mirror", "--skip-server-copy"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _, run, downloads = done.stderr.strip().splitlines()[-1].split()
    return int(run), int(downloads)


def test_peak_memory_does_not_grow_with_file_size(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    with FixtureIndex("json") as upstream:
        small = upstream.add(big_wheel(dists, "small", 1 * MiB))
        large = upstream.add(big_wheel(dists, "large", 200 * MiB))
        small_peak = peak_rss_of_mirror(tmp_path, upstream, "small")
        large_peak = peak_rss_of_mirror(tmp_path, upstream, "large")
    assert (tmp_path / "index" / "large" / large.filename).stat().st_size > 200 * MiB
    assert (tmp_path / "index" / "small" / small.filename).is_file()
    # a 200x larger file: the same memory, give or take noise (chunks, allocator), in the
    # run and in the process that streams and hashes the file
    for small_rss, large_rss in zip(small_peak, large_peak):
        assert large_rss - small_rss < 25 * MiB, (small_peak, large_peak)
        assert large_rss < 150 * MiB
    assert small_peak[1] > 10 * MiB  # the download process ran (an interpreter's worth)
