"""Metadata the page does not offer: ``<wheel URL>.metadata`` asked for anyway, per host,
else the wheel's METADATA read by byte ranges.

Behind some proxies the default index's pages lose their PEP 658 attributes while
the file host still serves ``.metadata`` files. morgan then asks for them: the first
large wheel of a host finds out whether the host serves them, so a host that does
not costs one request; and what was read is checked against the wheel's own METADATA
whenever the wheel itself is downloaded. Where the host has no ``.metadata`` files,
a large wheel's METADATA is read with a few ranged requests (a "lazy wheel"), if the
host serves ranges: the first wheel of the host finds that out too.
"""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path
from typing import Any

import pytest
from builders import build_wheel, core_metadata
from support import ENVIRONMENTS, write_config
from upstream import FixtureIndex

from morgan.cli import main
from morgan.index import RangesNotServed
from morgan.lazy_wheel import BLOCK, RemoteFile, TooMuchToRead
from morgan.saved_plans import PLANS_FILE
from morgan.sources import METADATA_FIRST_SIZE

#: Large enough that its dependencies come from metadata rather than a download.
PADDING = {"app/blob": random.Random(0).randbytes(METADATA_FIRST_SIZE + 1024)}


def app_graph(upstream: FixtureIndex, dists: Path, **facts: Any) -> None:
    """app 3.0 needs ghost (missing), 2.0 needs lib>=2 (refused): app 1.0 jointly, 2.0 alone;
    app 3.0 is read for its dependencies, and never mirrored."""
    for version, requires in (("1.0", ["lib<2"]), ("2.0", ["lib>=2"]), ("3.0", ["ghost"])):
        wheel = build_wheel(dists, "app", version, requires=requires, extra_members=PADDING)
        upstream.add(wheel, **facts.get(version, facts.get("all", {})))
    upstream.add(build_wheel(dists, "lib", "1.0"), **facts.get("all", {}))
    upstream.add(build_wheel(dists, "lib", "2.0"), **facts.get("all", {}))


def mirror(upstream: FixtureIndex, base: Path) -> tuple[int, str]:
    config = write_config(
        base / "morgan.ini", {"linux312": ENVIRONMENTS["linux312"]}, "app =\nlib = <2\n"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["-i", str(base / "index"), "-c", str(config), "-I", upstream.url, "mirror",
                     "--skip-server-copy"])  # fmt: skip
    return code, out.getvalue()


def test_unannounced_metadata_is_read_instead_of_the_wheel(tmp_path: Path) -> None:
    with FixtureIndex("json") as upstream:
        app_graph(upstream, tmp_path / "dists", all={"advertise_metadata": False})
        code, said = mirror(upstream, tmp_path)
    assert code == 0, said
    assert "/files/app-3.0-py3-none-any.whl.metadata" in upstream.requests
    assert "/files/app-3.0-py3-none-any.whl" not in upstream.requests  # 1 MiB not fetched
    assert {p.name for p in (tmp_path / "index" / "app").glob("*.whl")} == {
        "app-1.0-py3-none-any.whl",
        "app-2.0-py3-none-any.whl",
    }
    assert (tmp_path / "index" / PLANS_FILE).is_file()


def ranged(upstream: FixtureIndex, path: str) -> list[str]:
    """The Range headers of the requests for ``path``, in order ("" for a whole GET)."""
    return [
        headers.get("Range", "")
        for asked, headers in zip(upstream.requests, upstream.request_headers, strict=True)
        if asked == path
    ]


def test_a_host_without_metadata_files_costs_one_request(tmp_path: Path) -> None:
    with FixtureIndex("html") as upstream:
        upstream.ranges = False  # and no ranges either: large wheels are read whole
        app_graph(upstream, tmp_path / "dists", all={"metadata": False})
        code, said = mirror(upstream, tmp_path)
    assert code == 0, said
    probes = [path for path in upstream.requests if path.endswith(".metadata")]
    assert len(probes) == 1, probes
    asked = [path for path in upstream.requests if path.startswith("/files/app-")]
    ranges = [headers.get("Range") for headers in upstream.request_headers if "Range" in headers]
    assert len(ranges) == 1, ranges  # the host's first ranged read found none: one request
    assert "/files/app-3.0-py3-none-any.whl" in asked  # read whole instead
    assert not (tmp_path / "index" / "app" / "app-3.0-py3-none-any.whl").exists()


def test_without_metadata_files_a_large_wheel_is_read_by_ranges(tmp_path: Path) -> None:
    with FixtureIndex("html") as upstream:
        app_graph(upstream, tmp_path / "dists", all={"metadata": False})
        code, said = mirror(upstream, tmp_path)
        sent = upstream.bytes_sent
    assert code == 0, said
    requests = ranged(upstream, "/files/app-3.0-py3-none-any.whl")
    assert requests and "" not in requests, requests  # never downloaded whole
    assert len(requests) <= 4, requests
    assert sent < 4 * METADATA_FIRST_SIZE  # two mirrored app wheels, and a few blocks
    assert {p.name for p in (tmp_path / "index" / "app").glob("*.whl")} == {
        "app-1.0-py3-none-any.whl",
        "app-2.0-py3-none-any.whl",
    }
    assert (tmp_path / "index" / PLANS_FILE).is_file()


def test_metadata_that_is_not_the_wheels_is_said_and_not_trusted_again(tmp_path: Path) -> None:
    other = core_metadata("app", "2.0", requires=["lib>=2"]) + "Summary: not the wheel's\n"
    with FixtureIndex("json") as upstream:
        facts = {
            "all": {"advertise_metadata": False},
            "2.0": {"advertise_metadata": False, "served_metadata": other.encode()},
        }
        app_graph(upstream, tmp_path / "dists", **facts)
        code, said = mirror(upstream, tmp_path)
    assert code == 0, said
    assert "app-2.0-py3-none-any.whl: the .metadata its host serves" in said
    assert not (tmp_path / "index" / PLANS_FILE).exists()  # not kept: an input was not sure
    sidecar = tmp_path / "index" / "app" / "app-2.0-py3-none-any.whl.metadata"
    assert b"not the wheel's" not in sidecar.read_bytes()  # the tree has the wheel's own


def test_a_server_that_lies_about_ranges_is_read_whole(tmp_path: Path) -> None:
    """A 206 whose body is not the bytes asked for is refused; the wheel is downloaded."""
    with FixtureIndex("html") as upstream:
        upstream.ranges = "lying"
        app_graph(upstream, tmp_path / "dists", all={"metadata": False})
        code, said = mirror(upstream, tmp_path)
    assert code == 0, said  # (the fixture's own thread may print the client hanging up)
    assert "error:" not in said
    ranges = [headers["Range"] for headers in upstream.request_headers if "Range" in headers]
    assert len(ranges) == 1, ranges  # the host's first ranged read found it out
    assert {p.name for p in (tmp_path / "index" / "app").glob("*.whl")} == {
        "app-1.0-py3-none-any.whl",
        "app-2.0-py3-none-any.whl",
    }
    assert (tmp_path / "index" / PLANS_FILE).is_file()


class _BytesByRanges:
    """A server's answers to ranged requests, from bytes in memory (``short``: one less)."""

    def __init__(self, data: bytes, *, short: bool = False) -> None:
        self.data = data
        self.short = short
        self.asked: list[tuple[int, int]] = []

    def get_range(self, url: str, first: int, last: int) -> tuple[bytes, int]:
        self.asked.append((first, last))
        return self.data[first : last + 1 - self.short], len(self.data)


def test_a_remote_file_reads_as_the_bytes_and_fetches_each_block_once() -> None:
    data = random.Random(3).randbytes(64 * BLOCK + 123)
    server = _BytesByRanges(data)
    remote = RemoteFile(server, "u", None)  # type: ignore[arg-type]
    rng = random.Random(4)
    for _ in range(200):  # where a zip is read: its end, and a member near its start
        start = rng.choice([len(data) - 3 * BLOCK, 0]) + rng.randrange(2 * BLOCK)
        length = rng.randrange(BLOCK)
        remote.seek(start)
        assert remote.read(length) == data[start : start + length]
    fetched = sorted(server.asked[1:])  # after the one byte that told the size
    assert all(a[1] < b[0] for a, b in zip(fetched, fetched[1:], strict=False))  # none twice
    remote.seek(-7, io.SEEK_END)
    assert remote.read() == data[-7:]
    with pytest.raises(TooMuchToRead):  # a quarter of the file is where a download is as good
        remote.seek(BLOCK * 4)
        remote.read(BLOCK * 20)


def test_a_server_sending_short_ranges_is_refused_rather_than_read_forever() -> None:
    remote = RemoteFile(_BytesByRanges(b"x" * 1000, short=True), "u", 1000)  # type: ignore[arg-type]
    with pytest.raises(RangesNotServed):
        remote.read(10)
