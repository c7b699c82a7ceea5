"""A misbehaving upstream: the run retries, resumes, and never lets an unverified byte in.

The fixture index injects faults from a seeded plan (see ``upstream.Faults``):
503 and 429 answers, connection resets, bodies cut off half-way, stalls longer
than the read timeout, and a Content-Length larger than the body.
"""

from __future__ import annotations

import errno
import hashlib
import json
import random
import re
import threading
import time
from pathlib import Path

import pytest
from builders import build_wheel
from support import ENVIRONMENTS, populate_graph, populate_many, tree_snapshot, write_config
from upstream import FAULT_KINDS, Faults, FixtureIndex

from morgan import lock as lock_module
from morgan.errors import IndexLockedError
from morgan.lock import IndexLock

LINUX = {"linux312": ENVIRONMENTS["linux312"]}


def mirror(run_morgan, index_url: str, index: Path, requirements: str, *args: str, envs=LINUX):  # type: ignore[no-untyped-def]
    config = write_config(index.parent / "morgan.ini", envs, requirements)
    return run_morgan(
        "-i", str(index), "-c", str(config), "-I", index_url, "mirror", "--skip-server-copy", *args
    )


def listed_files(index: Path) -> dict[str, str]:
    """filename → sha256 of every file the JSON pages of the tree list."""
    listed = {}
    for page in index.glob("*/index.json"):
        for entry in json.loads(page.read_text())["files"]:
            listed[entry["filename"]] = entry["hashes"]["sha256"]
    return listed


def assert_all_verified(index: Path, upstream: FixtureIndex) -> None:
    """Every listed file exists with the digest the upstream's bytes have, and nothing else."""
    originals = {
        entry.filename: hashlib.sha256(entry.path.read_bytes()).hexdigest()
        for files in upstream.projects.values()
        for entry in files
    }
    listed = listed_files(index)
    assert listed
    for filename, digest in listed.items():
        path = next(index.glob(f"*/{filename}"))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest == originals[filename]
    assert not list(index.rglob("*.part"))


@pytest.fixture(params=["json", "html"])
def many(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 100-project upstream, and the tree a fault-free run makes of it."""
    mode = request.param
    with FixtureIndex(mode) as clean:
        requirements = populate_many(clean, tmp_path / "dists")
        projects = clean.projects
    yield mode, projects, requirements


def comparable(snapshot: dict[str, bytes]) -> dict[str, bytes]:
    """The snapshot with the upstream's URL (and so its port) masked in the lock files."""
    return {
        path: re.sub(rb'(?m)^index = ".*"$', b'index = "<upstream>"', data)
        if path.startswith("pylock.")
        else data
        for path, data in snapshot.items()
    }


def test_ten_percent_faults_across_100_projects_still_complete(run_morgan, many, tmp_path: Path):  # type: ignore[no-untyped-def]
    mode, projects, requirements = many
    with FixtureIndex(mode) as clean:
        clean.projects = projects
        reference = tmp_path / "reference" / "index"
        assert mirror(run_morgan, clean.url, reference, requirements).code == 0

    faults = Faults(rate=0.10, seed=2, stall_seconds=1.5)
    with FixtureIndex(mode, faults=faults) as flaky:
        flaky.projects = projects
        index = tmp_path / "flaky" / "index"
        result = mirror(run_morgan, flaky.url, index, requirements, "--timeout", "0.5")
    assert result.code == 0, result
    assert "mirrored 101 projects" in result.out
    # every kind of fault happened, and none changed the outcome
    assert set(faults.injected) == set(FAULT_KINDS), faults.injected
    assert sum(faults.injected.values()) >= 20
    assert comparable(tree_snapshot(index, state=False)) == comparable(
        tree_snapshot(reference, state=False)
    )
    assert_all_verified(index, flaky)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_retried(run_morgan, upstream: FixtureIndex, tmp_path: Path, kind: str):  # type: ignore[no-untyped-def]
    populate_graph(upstream, tmp_path / "dists")
    upstream.faults = Faults(rate=0.3, seed=7, kinds=(kind,), stall_seconds=1.5)
    index = tmp_path / "index"
    result = mirror(
        run_morgan, upstream.url, index, "app = [fancy]\nnative =\n", "--timeout", "0.5"
    )
    assert result.code == 0, result
    assert upstream.faults.injected[kind] > 0
    assert_all_verified(index, upstream)


def test_a_file_that_always_fails_is_named_with_its_cause(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    populate_graph(upstream, tmp_path / "dists")
    upstream.faults = Faults(always={"/files/speedy-1.0-py3-none-any.whl": "503"})
    index = tmp_path / "index"
    result = mirror(run_morgan, upstream.url, index, "app = [fancy]\n")
    assert result.code == 1
    assert "speedy-1.0-py3-none-any.whl: " in result.err
    assert "HTTP 503" in result.err
    assert "1 errors" in result.out
    # the rest is done and verified; the failed file is neither in the tree nor listed
    assert (index / "deepdep" / "deepdep-1.0-py3-none-any.whl").is_file()
    assert not (index / "speedy" / "speedy-1.0-py3-none-any.whl").exists()
    assert "speedy-1.0-py3-none-any.whl" not in listed_files(index)
    assert_all_verified(index, upstream)


def test_a_broken_off_download_resumes_where_it_stopped(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    blob = random.Random(1).randbytes(2 * 1024 * 1024)  # incompressible: the wheel is as big
    big = build_wheel(tmp_path / "dists", "big", "1.0", extra_members={"big/blob.bin": blob})
    upstream.add(big)
    path = f"/files/{big.name}"
    upstream.faults = Faults(always={path: "cut"})
    index = tmp_path / "index"
    first = mirror(run_morgan, upstream.url, index, "big =\n")
    assert first.code == 1 and big.name in first.err
    part = index / "big" / f".{big.name}.part"
    kept = part.stat().st_size
    assert 0 < kept < big.stat().st_size
    assert part.read_bytes() == big.read_bytes()[:kept]
    assert not (index / "big" / big.name).exists()
    assert big.name not in listed_files(index)

    upstream.faults = Faults()
    upstream.requests.clear()
    upstream.request_headers.clear()
    second = mirror(run_morgan, upstream.url, index, "big =\n")
    assert second.code == 0, second
    ranges = [
        headers.get("Range")
        for request, headers in zip(upstream.requests, upstream.request_headers)
        if request == path
    ]
    assert ranges == [f"bytes={kept}-"]
    assert (index / "big" / big.name).read_bytes() == big.read_bytes()
    assert not part.exists()


def test_a_stale_part_that_does_not_verify_is_fetched_whole(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    wheel = build_wheel(tmp_path / "dists", "demo", "1.0")
    upstream.add(wheel)
    index = tmp_path / "index"
    (index / "demo").mkdir(parents=True)
    (index / "demo" / f".{wheel.name}.part").write_bytes(b"garbage that is not the wheel")
    result = mirror(run_morgan, upstream.url, index, "demo =\n")
    assert result.code == 0, result
    assert (index / "demo" / wheel.name).read_bytes() == wheel.read_bytes()
    assert not list(index.rglob("*.part"))


def test_wrong_bytes_are_never_renamed_into_place_or_listed(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "good", "1.0", requires=["bad"]))
    bad = upstream.add(build_wheel(dists, "bad", "1.0"), wrong_hash=True, metadata=False)
    index = tmp_path / "index"
    result = mirror(run_morgan, upstream.url, index, "good =\n")
    assert result.code == 1
    assert f"{bad.filename}: sha256 is" in result.err
    assert not (index / "bad" / bad.filename).exists()
    assert bad.filename not in listed_files(index)
    assert not list(index.glob("bad/*.whl*"))
    assert_all_verified(index, upstream)


def test_a_redirect_loop_is_a_clear_error(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    upstream.add(build_wheel(tmp_path / "dists", "loopy", "1.0"))
    upstream.redirects["/simple/loopy/"] = "/simple/loopy2/"
    upstream.redirects["/simple/loopy2/"] = "/simple/loopy/"
    result = mirror(run_morgan, upstream.url, tmp_path / "index", "loopy =\n")
    assert result.code == 1
    assert "loopy" in result.err and "redirect" in result.err.lower()
    assert len(upstream.requests) <= 30  # bounded, not endless


class OddURLs(FixtureIndex):
    """Serves demo's page with one file on another host name and one with a file:// URL."""

    def _json_page(self, project: str) -> bytes:
        page = json.loads(super()._json_page(project))
        port = self.url.split(":")[2].split("/")[0]
        for entry in page["files"]:
            if entry["filename"].startswith("demo-1.0"):
                entry["url"] = f"http://localhost:{port}/files/{entry['filename']}"
            else:
                entry["url"] = "file:///etc/passwd"
        return json.dumps(page).encode()


def test_other_hosts_are_fetched_and_logged_other_schemes_refused(
    run_morgan, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with OddURLs("json") as upstream:
        dists = tmp_path / "dists"
        upstream.add(build_wheel(dists, "demo", "1.0"))
        upstream.add(build_wheel(dists, "demo", "2.0"), requires_python="<3")
        upstream.add(build_wheel(dists, "other", "1.0"))
        index = tmp_path / "index"
        config = write_config(tmp_path / "morgan.ini", LINUX, "demo =\nother =\n")
        result = run_morgan(
            "-i", str(index), "-c", str(config), "-I", upstream.url, "-v", "mirror",
            "--skip-server-copy",
        )  # fmt: skip
    assert result.code == 1
    assert (index / "demo" / "demo-1.0-py3-none-any.whl").is_file()
    assert "fetched from another host than the index" in result.out
    assert "refusing 'file' URL" in result.err
    assert not (index / "other" / "other-1.0-py3-none-any.whl").exists()


def test_a_run_waits_a_moment_for_a_lock_held_briefly(tmp_path: Path) -> None:
    """``server.py`` holds the run's lock while an upload lands: a run starting then waits
    for it, and refuses only a lock held longer (another run, an import)."""
    held = threading.Event()

    def hold(seconds: float) -> None:
        with IndexLock(tmp_path):
            held.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold, args=(0.3,))
    holder.start()
    held.wait(10)
    started = time.monotonic()
    with IndexLock(tmp_path):
        waited = time.monotonic() - started
    holder.join()
    assert 0.1 < waited < lock_module.WAIT_SECONDS

    held.clear()
    holder = threading.Thread(target=hold, args=(lock_module.WAIT_SECONDS + 1,))
    holder.start()
    held.wait(10)
    with pytest.raises(IndexLockedError):
        IndexLock(tmp_path).acquire()
    holder.join()


@pytest.mark.skipif(not hasattr(lock_module, "fcntl"), reason="flock: POSIX only")
def test_a_lock_that_fails_otherwise_than_held_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without flock is not another run: the error is said as it is, at once,
    and nothing stays open."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_locks)
    started = time.monotonic()
    with pytest.raises(OSError, match="No locks available") as raised:
        IndexLock(tmp_path).acquire()
    assert not isinstance(raised.value, IndexLockedError)
    assert time.monotonic() - started < lock_module.WAIT_SECONDS


def test_a_second_run_on_the_same_index_refuses(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    upstream.add(build_wheel(tmp_path / "dists", "demo", "1.0"))
    index = tmp_path / "index"
    index.mkdir()
    with IndexLock(index):
        result = mirror(run_morgan, upstream.url, index, "demo =\n")
    assert result.code == 1
    assert "another morgan run (or a server.py import) is writing this index" in result.err
    assert result.err.count("\n") == 1
    assert not (index / "demo").exists()
    assert upstream.requests == []
    # once the lock is free, the same command works
    assert mirror(run_morgan, upstream.url, index, "demo =\n").code == 0
