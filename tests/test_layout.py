"""The mirror tree: safe names, atomic writes, project and root pages."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel

from morgan import layout, manifest
from morgan import server as server_module
from morgan.errors import UnsafeNameError
from morgan.layout import (
    atomic_write,
    check_filename,
    file_sha256,
    is_distribution,
    project_dir,
    read_hash_sidecar,
    regular_file_digest,
    write_hash_sidecar,
    write_project_pages,
    write_root_pages,
)
from morgan.metadata import read_wheel_metadata
from morgan.models import DistributionFile
from morgan.simple import parse_html_page, parse_json_page

OLD = 1_500_000_000  # an mtime long past, to see whether a file was rewritten


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def known_file(filename: str, **facts: object) -> DistributionFile:
    return DistributionFile(filename=filename, url=f"https://up.example/{filename}", **facts)  # type: ignore[arg-type]


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0.tar.gz",
        "Demo_Pkg-1.0+local.zip",
        "x..y-1.0.tar.gz",
        "é" * 100,  # 200 bytes
        "a" * 200,
    ],
)
def test_check_filename_accepts(name: str) -> None:
    assert check_filename(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b.whl",
        "/etc/passwd",
        "a\\b.whl",
        "..\\evil.whl",
        "..",
        ".",
        "../evil.whl",
        "evil\x00.whl",
        "evil\n.whl",
        "evil\r.whl",
        "evil\t.whl",
        "evil\x1b[31m.whl",
        "evil\x7f.whl",
        "C:evil.whl",
        ".hidden-1.0.tar.gz",
        ".demo-1.0.tar.gz.abc.part",
        "demo-1.0.tar.gz.hash",
        "demo-1.0-py3-none-any.whl.metadata",
        "demo-1.0.tar.gz.part",
        "index.html",
        "index.json",
        "a" * 201,
        "é" * 101,
    ],
)
def test_check_filename_refuses(name: str) -> None:
    with pytest.raises(UnsafeNameError) as caught:
        check_filename(name)
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == name
    assert "refusing name" in str(caught.value)


@pytest.mark.parametrize("name", ["demo", "a", "0", "a-b", "zope-interface", "py3-foo1"])
def test_project_dir_accepts_normalized_names(tmp_path: Path, name: str) -> None:
    assert project_dir(tmp_path, name) == tmp_path / name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Demo",
        "demo_x",
        "demo.x",
        "a--b",
        "-demo",
        "demo-",
        "..",
        ".",
        "a/b",
        "a b",
        "../etc",
        "é",
    ],
)
def test_project_dir_refuses(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeNameError, match="not a normalized project name"):
        project_dir(tmp_path, name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("demo-1.0-py3-none-any.whl", True),
        ("demo-1.0.tar.gz", True),
        ("demo-1.0.zip", True),
        ("demo-1.0.tar.bz2", True),
        ("demo-1.0.tgz", True),
        ("demo-1.0.tar.gz.hash", False),
        ("demo-1.0-py3-none-any.whl.metadata", False),
        (".demo-1.0.tar.gz.x.part", False),
        (".demo-1.0.tar.gz", False),
        ("index.html", False),
    ],
)
def test_is_distribution(name: str, expected: bool) -> None:
    assert is_distribution(name) is expected


# -- atomic writes and sidecars ----------------------------------------------------------------


def test_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    assert atomic_write(path, b"one") is True
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o644
    os.utime(path, (OLD, OLD))
    assert atomic_write(path, b"one") is False
    assert path.stat().st_mtime == OLD
    assert atomic_write(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert path.stat().st_mtime != OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_atomic_write_into_missing_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        atomic_write(tmp_path / "absent" / "page.html", b"x")
    assert list(tmp_path.iterdir()) == []


def test_hash_sidecar_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_bytes(b"data")
    assert read_hash_sidecar(path) is None
    write_hash_sidecar(path, "AB" * 32)
    assert (tmp_path / "demo-1.0.tar.gz.hash").read_bytes() == ("sha256=" + "AB" * 32).encode()
    assert read_hash_sidecar(path) == ("sha256", "ab" * 32)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"sha256=" + b"a" * 64, ("sha256", "a" * 64)),
        (b"SHA256=" + b"A" * 64 + b"\n", ("sha256", "a" * 64)),
        (b"md5=" + b"c" * 32, ("md5", "c" * 32)),
        (b"a" * 64, None),
        (b"sha256=not-hex", None),
        (b"sha256=", None),
        (b"\xff\xfe", None),
        (b"sha512=" + b"0" * 128 + b"\n", ("sha512", "0" * 128)),
        (b"sha256=" + b"a" * 600, None),  # longer than any digest's sidecar
    ],
)
def test_read_hash_sidecar(
    tmp_path: Path, content: bytes, expected: tuple[str, str] | None
) -> None:
    path = tmp_path / "f.whl"
    (tmp_path / "f.whl.hash").write_bytes(content)
    assert read_hash_sidecar(path) == expected


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 7))
    assert file_sha256(path) == sha256(path)


# -- project pages -----------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder as a mirror run leaves it: files, sidecars, debris."""
    folder = tmp_path / "index" / "demo"
    wheel = build_wheel(folder, "demo", "1.0", requires_python=">=3.8")
    sdist = build_sdist(folder, "demo", "1.0")
    build_sdist(folder, "demo", "0.9", fmt="zip")
    (folder / (wheel.name + ".metadata")).write_bytes(read_wheel_metadata(wheel, "demo"))
    write_hash_sidecar(wheel, sha256(wheel))
    write_hash_sidecar(sdist, sha256(sdist))
    (folder / f".{sdist.name}.k3j4.part").write_bytes(b"half a download")
    (folder / "demo-2.0.tar.gz.part").write_bytes(b"junk")
    (folder / ".demo-3.0.tar.gz").write_bytes(b"hidden")
    (folder / "notes.txt").write_text("not a distribution")
    (folder / "sub.whl").mkdir()
    return folder


KNOWN = {
    "demo-1.0-py3-none-any.whl": known_file(
        "demo-1.0-py3-none-any.whl",
        requires_python=">=3.8",
        upload_time="2024-01-02T03:04:05.000000Z",
    ),
    "demo-1.0.tar.gz": known_file(
        "demo-1.0.tar.gz",
        requires_python=">=3.8",
        yanked="bad <release> & more",
        upload_time="2024-01-02T03:04:06.000000Z",
    ),
}

LISTED = ["demo-0.9.zip", "demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]


def test_project_pages_list_only_distributions(project: Path) -> None:
    assert write_project_pages(project, KNOWN) is True
    document = json.loads((project / "index.json").read_text())
    assert [f["filename"] for f in document["files"]] == LISTED
    text = (project / "index.html").read_text()
    for debris in ("part", ".demo-3.0", "notes.txt", "sub.whl", ".hash", ".metadata<"):
        assert debris not in text, debris
    page = parse_html_page(text.encode(), "http://mirror.example/simple/demo/", "demo")
    assert [f.filename for f in page.files] == LISTED
    assert not (project / ".demo-1.0.tar.gz.k3j4.part.hash").exists()
    assert not (project / "demo-2.0.tar.gz.part.hash").exists()


def test_project_json_page(project: Path) -> None:
    write_project_pages(project, KNOWN)
    document = json.loads((project / "index.json").read_text(encoding="utf-8"))
    assert document["meta"] == {"api-version": "1.1"}
    assert document["name"] == "demo"
    assert sorted(document["versions"]) == ["0.9", "1.0"]
    files = {f["filename"]: f for f in document["files"]}
    wheel = files["demo-1.0-py3-none-any.whl"]
    wheel_path = project / "demo-1.0-py3-none-any.whl"
    metadata_sha = sha256(project / "demo-1.0-py3-none-any.whl.metadata")
    assert wheel == {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": "demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": sha256(wheel_path)},
        "requires-python": ">=3.8",
        "yanked": False,
        "size": wheel_path.stat().st_size,
        "core-metadata": {"sha256": metadata_sha},
        "dist-info-metadata": {"sha256": metadata_sha},
        "upload-time": "2024-01-02T03:04:05.000000Z",
    }
    sdist = files["demo-1.0.tar.gz"]
    assert sdist["yanked"] == "bad <release> & more"
    assert sdist["core-metadata"] is False
    assert sdist["upload-time"] == "2024-01-02T03:04:06.000000Z"
    assert sdist["size"] == (project / "demo-1.0.tar.gz").stat().st_size


def test_project_html_page(project: Path) -> None:
    write_project_pages(project, KNOWN)
    text = (project / "index.html").read_text(encoding="utf-8")
    wheel_sha = sha256(project / "demo-1.0-py3-none-any.whl")
    metadata_sha = sha256(project / "demo-1.0-py3-none-any.whl.metadata")
    assert '<meta name="pypi:repository-version" content="1.1">' in text
    assert f'href="demo-1.0-py3-none-any.whl#sha256={wheel_sha}"' in text
    assert 'data-requires-python="&gt;=3.8"' in text
    assert 'data-yanked="bad &lt;release&gt; &amp; more"' in text
    assert f'data-core-metadata="sha256={metadata_sha}"' in text
    assert f'data-dist-info-metadata="sha256={metadata_sha}"' in text
    assert "https://up.example" not in text  # links are relative


def test_html_and_json_pages_agree(project: Path) -> None:
    write_project_pages(project, KNOWN)
    url = "http://mirror.example/simple/demo/"
    from_html = parse_html_page((project / "index.html").read_bytes(), url, "demo")
    from_json = parse_json_page((project / "index.json").read_bytes(), url, "demo")
    assert from_html.api_version == from_json.api_version == "1.1"
    for a, b in zip(from_html.files, from_json.files):
        assert (a.filename, a.url, a.hashes, a.requires_python, a.yanked, a.metadata_hashes) == (
            b.filename,
            b.url,
            b.hashes,
            b.requires_python,
            b.yanked,
            b.metadata_hashes,
        )
    assert len(from_html.files) == len(from_json.files) == 3
    wheel = from_json.files[1]
    assert wheel.url == url + "demo-1.0-py3-none-any.whl"
    assert wheel.metadata_hashes == {
        "sha256": sha256(project / "demo-1.0-py3-none-any.whl.metadata")
    }


def test_pages_are_rewritten_only_when_changed(project: Path) -> None:
    assert write_project_pages(project, KNOWN) is True
    for name in ("index.html", "index.json"):
        os.utime(project / name, (OLD, OLD))
    assert write_project_pages(project, KNOWN) is False
    assert (project / "index.html").stat().st_mtime == OLD
    assert (project / "index.json").stat().st_mtime == OLD
    build_sdist(project, "demo", "1.1")
    assert write_project_pages(project, KNOWN) is True
    assert "demo-1.1.tar.gz" in (project / "index.html").read_text()


def test_previous_facts_are_kept_for_files_not_known(project: Path) -> None:
    write_project_pages(project, KNOWN)
    first = json.loads((project / "index.json").read_text())
    assert write_project_pages(project, {}) is False
    assert json.loads((project / "index.json").read_text()) == first
    facts = {f["filename"]: f for f in first["files"]}
    assert facts["demo-1.0.tar.gz"]["yanked"] == "bad <release> & more"
    assert facts["demo-1.0.tar.gz"]["requires-python"] == ">=3.8"


def test_known_facts_replace_previous_ones(project: Path) -> None:
    write_project_pages(project, KNOWN)
    unyanked = {"demo-1.0.tar.gz": known_file("demo-1.0.tar.gz", requires_python=">=3.9")}
    write_project_pages(project, unyanked)
    facts = {f["filename"]: f for f in json.loads((project / "index.json").read_text())["files"]}
    assert facts["demo-1.0.tar.gz"]["yanked"] is False
    assert facts["demo-1.0.tar.gz"]["requires-python"] == ">=3.9"
    assert "upload-time" not in facts["demo-1.0.tar.gz"]
    # the wheel was not in this run's facts: its previous ones stay
    assert facts["demo-1.0-py3-none-any.whl"]["upload-time"] == "2024-01-02T03:04:05.000000Z"


def test_requires_python_from_metadata_sidecar(project: Path) -> None:
    write_project_pages(project, {})
    facts = {f["filename"]: f for f in json.loads((project / "index.json").read_text())["files"]}
    assert facts["demo-1.0-py3-none-any.whl"]["requires-python"] == ">=3.8"
    assert facts["demo-1.0.tar.gz"]["requires-python"] is None
    assert facts["demo-1.0.tar.gz"]["yanked"] is False


def test_hand_dropped_file_is_hashed_and_given_a_sidecar(project: Path) -> None:
    dropped = project / "demo-0.9.zip"
    assert not (project / "demo-0.9.zip.hash").exists()
    write_project_pages(project, {})
    digest = sha256(dropped)
    assert (project / "demo-0.9.zip.hash").read_text() == f"sha256={digest}"
    facts = {f["filename"]: f for f in json.loads((project / "index.json").read_text())["files"]}
    assert facts["demo-0.9.zip"]["hashes"] == {"sha256": digest}
    assert facts["demo-0.9.zip"]["size"] == dropped.stat().st_size


def test_sidecar_of_another_algorithm_is_replaced(project: Path) -> None:
    sdist = project / "demo-1.0.tar.gz"
    (project / "demo-1.0.tar.gz.hash").write_text(
        "md5=" + hashlib.md5(sdist.read_bytes()).hexdigest()
    )
    write_project_pages(project, KNOWN)
    assert read_hash_sidecar(sdist) == ("sha256", sha256(sdist))


def test_recorded_sidecar_digest_is_what_the_pages_say(project: Path) -> None:
    # The .hash sidecar is the record; the pages do not re-hash a file that has one.
    sdist = project / "demo-1.0.tar.gz"
    write_hash_sidecar(sdist, "f" * 64)
    write_project_pages(project, KNOWN)
    assert f"demo-1.0.tar.gz#sha256={'f' * 64}" in (project / "index.html").read_text()


def test_corrupt_previous_page_is_ignored(project: Path) -> None:
    (project / "index.json").write_text("{not json")
    assert write_project_pages(project, {}) is True
    assert json.loads((project / "index.json").read_text())["name"] == "demo"


def test_empty_project_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    write_project_pages(folder, {})
    document = json.loads((folder / "index.json").read_text())
    assert document["files"] == [] and document["versions"] == []


def test_filename_needing_quoting(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    sdist = build_sdist(folder, "demo", "1.0+local")
    write_project_pages(folder, {})
    text = (folder / "index.html").read_text()
    assert 'href="demo-1.0%2Blocal.tar.gz#sha256=' in text
    page = parse_html_page(text.encode(), "http://m.example/demo/", "demo")
    assert [f.filename for f in page.files] == [sdist.name]


# -- root pages --------------------------------------------------------------------------------


def test_root_pages_list_only_project_folders(tmp_path: Path) -> None:
    index = tmp_path / "index"
    build_sdist(index / "demo", "demo", "1.0")
    build_wheel(index / "zope-interface", "zope.interface", "5.0")
    build_sdist(index / "Bad_Name", "bad_name", "1.0")
    build_sdist(index / ".hidden", "hidden", "1.0")
    (index / "empty").mkdir()
    (index / "debris").mkdir()
    (index / "debris" / ".debris-1.0.tar.gz.x.part").write_bytes(b"")
    (index / "debris" / "debris-1.0.tar.gz.hash").write_text("sha256=" + "0" * 64)
    (index / "server.py").write_text("# server")
    (index / "morgan.ini").write_text("[requirements]\n")
    assert write_root_pages(index) is True
    document = json.loads((index / "index.json").read_text())
    assert document == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "demo"}, {"name": "zope-interface"}],
    }
    text = (index / "index.html").read_text()
    assert '<a href="demo/">demo</a>' in text
    assert '<a href="zope-interface/">zope-interface</a>' in text
    for absent in ("Bad_Name", "hidden", "empty", "debris", "server.py", "morgan.ini"):
        assert absent not in text
    assert write_root_pages(index) is False


def test_what_is_served_is_synced_before_it_replaces_and_caches_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    assert atomic_write(tmp_path / "index.json", b"{}")
    assert len(synced) == 1
    assert atomic_write(tmp_path / ".morgan-state.json", b"{}", durable=False)
    assert len(synced) == 1
    assert (tmp_path / ".morgan-state.json").read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".morgan-state.json", "index.json"]


def test_regular_file_digest_reads_regular_files_only(tmp_path: Path) -> None:
    """What the manifest lists of a tree's plain files: never a link, a folder or a pipe
    (which must not block the run)."""
    page = tmp_path / "page.json"
    page.write_bytes(b"{}" * 1000)
    assert regular_file_digest(page) == (hashlib.sha256(b"{}" * 1000).hexdigest(), 2000)
    (tmp_path / "empty").write_bytes(b"")
    assert regular_file_digest(tmp_path / "empty") == (hashlib.sha256(b"").hexdigest(), 0)
    assert regular_file_digest(tmp_path / "missing") is None
    (tmp_path / "folder").mkdir()
    assert regular_file_digest(tmp_path / "folder") is None
    (tmp_path / "link").symlink_to(page)
    assert regular_file_digest(tmp_path / "link") is None
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        assert regular_file_digest(tmp_path / "pipe") is None
    if Path(os.devnull).exists() and os.devnull != "nul":
        assert regular_file_digest(Path(os.devnull)) is None  # a device is never opened


def test_regular_file_digest_says_when_a_regular_file_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left out, an unreadable page would be missing from the manifest, and the next
    bundle would tell the other side to delete it."""
    page = tmp_path / "index.json"
    page.write_bytes(b"{}")
    real_open = os.open

    def refused(path: Any, flags: int, *args: Any) -> int:
        if Path(path) == page:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(PermissionError):
        regular_file_digest(page)


def test_the_server_names_the_tree_s_files_as_the_mirror_does() -> None:
    """server.py is one file with no imports from morgan, so it repeats these names: the
    tree on disk is the contract between the two, and a name changed on one side only
    would break it silently (the server would serve a sidecar as a file, or hide a page)."""
    assert server_module.HASH_SUFFIX == layout.HASH_SUFFIX
    assert server_module.METADATA_SUFFIX == layout.METADATA_SUFFIX
    assert server_module.UPLOADED_SUFFIX == layout.UPLOADED_SUFFIX
    assert server_module.UPLOADING_SUFFIX == layout.UPLOADING_SUFFIX
    assert server_module.PAGE_JSON == layout.PAGE_JSON
    assert server_module.PROJECT_PAGES == (layout.PAGE_HTML, layout.PAGE_JSON)
    assert server_module.DISTRIBUTION_SUFFIXES == layout.DISTRIBUTION_SUFFIXES
    assert server_module.MANIFEST_NAME == manifest.MANIFEST
