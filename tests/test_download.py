"""Verified downloads: hash, size, mtime, reuse, and nothing half-written left behind."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from upstream import FixtureIndex

from morgan.download import (
    ATTEMPTS,
    DownloadResult,
    download,
    expected_digest,
    upload_timestamp,
)
from morgan.errors import HashMismatchError, UpstreamError
from morgan.index import IndexClient
from morgan.layout import read_hash_sidecar, write_hash_sidecar
from morgan.models import DistributionFile

UPLOAD_TIME = "2024-01-02T03:04:05.000000Z"
UPLOAD_STAMP = 1704164645.0  # that instant, in seconds since the epoch (UTC)


pytestmark = pytest.mark.usefixtures("no_proxies_no_netrc")


@pytest.fixture(params=["json", "html"])
def index(request: pytest.FixtureRequest) -> Iterator[FixtureIndex]:
    with FixtureIndex(request.param) as served:
        yield served


def file_requests(index: FixtureIndex) -> list[str]:
    return [path for path in index.requests if path.startswith("/files/")]


def only_file(client: IndexClient, project: str) -> DistributionFile:
    (file,) = client.get_project_page(project).page.files
    return file


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_verified_download(tmp_path: Path, index: FixtureIndex, client: IndexClient) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel)
    file = only_file(client, "demo")
    dest = tmp_path / "mirror" / "demo" / wheel.name
    result = download(client, file, dest)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert result == DownloadResult(
        path=dest, sha256=digest, size=wheel.stat().st_size, reused=False
    )
    assert dest.read_bytes() == wheel.read_bytes()
    assert (dest.parent / (wheel.name + ".hash")).read_text() == f"sha256={digest}"
    assert dest.stat().st_mode & 0o777 == 0o644
    assert folder_names(dest.parent) == [wheel.name, wheel.name + ".hash"]
    assert file_requests(index) == [f"/files/{wheel.name}"]


def test_verified_bytes_are_handed_over_before_they_are_synced_and_in_place(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    # What a resolution waits for (a wheel's dependencies) can be read from the verified
    # part file while the download still syncs and renames it.
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel)
    dest = tmp_path / "mirror" / "demo" / wheel.name
    seen: list[tuple[str, bytes, bool]] = []

    def verified(part: Path) -> None:
        seen.append((part.name, part.read_bytes(), dest.exists()))

    download(client, only_file(client, "demo"), dest, on_verified=verified)
    assert seen == [(f".{wheel.name}.part", wheel.read_bytes(), False)]
    assert dest.read_bytes() == wheel.read_bytes()


def test_bytes_that_do_not_verify_are_never_handed_over(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel, wrong_hash=True)
    seen: list[Path] = []
    with pytest.raises(HashMismatchError):
        download(
            client, only_file(client, "demo"), tmp_path / "m" / wheel.name, on_verified=seen.append
        )
    assert seen == []


def test_mtime_is_the_upload_time(tmp_path: Path) -> None:
    with FixtureIndex("json") as index:
        sdist = build_sdist(tmp_path / "up", "demo", "1.0")
        index.add(sdist, upload_time=UPLOAD_TIME)
        client = IndexClient(index.url, retries=0)
        try:
            file = only_file(client, "demo")
            assert file.upload_time == UPLOAD_TIME
            dest = tmp_path / "mirror" / "demo" / sdist.name
            download(client, file, dest)
        finally:
            client.close()
    assert dest.stat().st_mtime == UPLOAD_STAMP


def test_wrong_hash_leaves_nothing(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel, wrong_hash=True)
    file = only_file(client, "demo")
    dest = tmp_path / "mirror" / "demo" / wheel.name
    with pytest.raises(HashMismatchError) as caught:
        download(client, file, dest)
    error = caught.value
    assert error.filename == wheel.name
    assert error.algorithm == "sha256"
    assert error.expected == "0" * 64
    assert error.actual == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert "discarded" in str(error)
    assert not dest.exists()
    assert folder_names(dest.parent) == []


def test_present_file_with_right_hash_is_reused_without_a_request(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel)
    file = only_file(client, "demo")
    dest = tmp_path / "mirror" / "demo" / wheel.name
    first = download(client, file, dest)
    index.requests.clear()
    second = download(client, file, dest)
    assert index.requests == []
    assert second.reused is True
    assert (second.path, second.sha256, second.size) == (first.path, first.sha256, first.size)


def test_copy_dropped_in_with_a_sidecar_is_reused(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path / "up", "demo", "1.0")
    dest = tmp_path / "mirror" / "demo" / sdist.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(sdist.read_bytes())
    write_hash_sidecar(dest, hashlib.sha256(sdist.read_bytes()).hexdigest())
    file = DistributionFile(
        filename=sdist.name,
        url="http://127.0.0.1:9/never-fetched",
        hashes={"sha256": hashlib.sha256(sdist.read_bytes()).hexdigest()},
    )
    client = IndexClient("http://127.0.0.1:9/simple/", retries=0)
    try:
        assert download(client, file, dest).reused is True
    finally:
        client.close()


def test_corrupted_copy_is_fetched_again(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, caplog: pytest.LogCaptureFixture
) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel)
    file = only_file(client, "demo")
    dest = tmp_path / "mirror" / "demo" / wheel.name
    download(client, file, dest)
    dest.write_bytes(b"bit rot")
    index.requests.clear()
    with caplog.at_level(logging.WARNING, logger="morgan.download"):
        result = download(client, file, dest)
    assert result.reused is False
    assert dest.read_bytes() == wheel.read_bytes()
    assert file_requests(index) == [f"/files/{wheel.name}"]
    assert any("differs from its .hash sidecar" in r.getMessage() for r in caplog.records)


def test_copy_with_another_hash_than_the_index_is_replaced(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    wheel = build_wheel(tmp_path / "up", "demo", "1.0")
    index.add(wheel)
    file = only_file(client, "demo")
    dest = tmp_path / "mirror" / "demo" / wheel.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an older build")
    write_hash_sidecar(dest, hashlib.sha256(b"an older build").hexdigest())
    result = download(client, file, dest)
    assert result.reused is False
    assert dest.read_bytes() == wheel.read_bytes()
    assert read_hash_sidecar(dest) == ("sha256", hashlib.sha256(wheel.read_bytes()).hexdigest())


def test_size_mismatch_is_an_error(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    sdist = build_sdist(tmp_path / "up", "demo", "1.0")
    index.add(sdist)
    served = only_file(client, "demo")
    real = sdist.stat().st_size
    file = DistributionFile(
        filename=served.filename, url=served.url, hashes=served.hashes, size=real + 1
    )
    dest = tmp_path / "mirror" / "demo" / sdist.name
    with pytest.raises(UpstreamError) as caught:
        download(client, file, dest)
    assert f"received {real} bytes, the index says {real + 1}" in str(caught.value)
    assert not dest.exists()
    # what arrived stays hidden, for the next run to resume
    assert folder_names(dest.parent) == [f".{sdist.name}.part"]
    assert len(file_requests(index)) == ATTEMPTS


def test_missing_file_is_an_upstream_error(
    tmp_path: Path, index: FixtureIndex, client: IndexClient
) -> None:
    sdist = build_sdist(tmp_path / "up", "demo", "1.0")
    index.add(sdist)
    served = only_file(client, "demo")
    file = DistributionFile(filename="demo-9.9.tar.gz", url=served.url.replace("1.0", "9.9"))
    dest = tmp_path / "mirror" / "demo" / "demo-9.9.tar.gz"
    with pytest.raises(UpstreamError, match="HTTP 404"):
        download(client, file, dest)
    assert folder_names(dest.parent) == []


def test_no_hash_records_what_was_received(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, caplog: pytest.LogCaptureFixture
) -> None:
    sdist = build_sdist(tmp_path / "up", "demo", "1.0")
    index.add(sdist)
    served = only_file(client, "demo")
    file = DistributionFile(filename=served.filename, url=served.url)
    dest = tmp_path / "mirror" / "demo" / sdist.name
    with caplog.at_level(logging.WARNING, logger="morgan.download"):
        result = download(client, file, dest)
    assert result.sha256 == hashlib.sha256(sdist.read_bytes()).hexdigest()
    assert read_hash_sidecar(dest) == ("sha256", result.sha256)
    assert any("no usable hash" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("algorithm", ["md5", "sha512"])
def test_other_algorithm_is_checked(
    tmp_path: Path, index: FixtureIndex, client: IndexClient, algorithm: str
) -> None:
    sdist = build_sdist(tmp_path / "up", "demo", "1.0")
    index.add(sdist)
    served = only_file(client, "demo")
    good = hashlib.new(algorithm, sdist.read_bytes()).hexdigest()
    dest = tmp_path / "mirror" / "demo" / sdist.name
    bad = DistributionFile(
        filename=served.filename, url=served.url, hashes={algorithm: "0" * len(good)}
    )
    with pytest.raises(HashMismatchError):
        download(client, bad, dest)
    assert folder_names(dest.parent) == []
    ok = DistributionFile(
        filename=served.filename, url=served.url, hashes={algorithm: good.upper()}
    )
    result = download(client, ok, dest)
    # the sidecar always records sha256, whatever the index checked with
    assert read_hash_sidecar(dest) == ("sha256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    assert result.sha256 == hashlib.sha256(sdist.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        ({"sha256": "aa"}, ("sha256", "aa")),
        ({"md5": "bb", "sha256": "aa"}, ("sha256", "aa")),
        ({"sha512": "cc", "md5": "bb"}, ("md5", "bb")),
        ({"sha512": "cc"}, ("sha512", "cc")),
        ({"blake3": "dd"}, None),
        ({}, None),
    ],
)
def test_expected_digest(hashes: dict[str, str], expected: tuple[str, str] | None) -> None:
    file = DistributionFile(filename="x-1.0.tar.gz", url="http://h/x", hashes=hashes)
    assert expected_digest(file) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (UPLOAD_TIME, UPLOAD_STAMP),
        ("2024-01-02T03:04:05Z", UPLOAD_STAMP),
        ("2024-01-02T03:04:05", UPLOAD_STAMP),
        ("2024-01-02T03:04:05.123Z", UPLOAD_STAMP),
        (" 2024-01-02T03:04:05.000000Z ", UPLOAD_STAMP),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2000-02-29T12:00:00Z", 951825600.0),
        (None, None),
        ("", None),
        ("yesterday", None),
        ("2024-01-02", None),
        ("2024-13-02T03:04:05Z", None),
        ("2024-01-02 03:04:05", None),
        ("2024-01-02T05:04:05+02:00", UPLOAD_STAMP),
        ("2024-01-02T01:34:05.5-0130", UPLOAD_STAMP),
        ("2024-01-02T03:04:05+00:00", UPLOAD_STAMP),
        ("2024-01-02T03:04:05Zjunk", None),
    ],
)
def test_upload_timestamp(text: str | None, expected: float | None) -> None:
    assert upload_timestamp(text) == expected
