"""morgan/server.py's offline commands: ``verify`` and ``import`` (the transfer spec).

Trees, manifests and bundles are made here by hand, per the spec, independently of
the mirrorer and its exporter. The commands run as users run them, in a subprocess
(on this Python and on Python 3.7); what needs a failure injected midway runs in
process.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from server_support import SERVER_SOURCE, ServerProcess, find_python
from support import skip_unless_ci

from morgan import server as server_module
from morgan.lock import IndexLock

Member = tuple[tarfile.TarInfo, "bytes | None"]

DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")
PAGES = ("index.html", "index.json")

#: The mirror on the connected side, first as it is mirrored (V1), then later (V2).
V1: dict[str, bytes] = {
    "alpha/alpha-1.0-py3-none-any.whl": b"PK\x03\x04 alpha wheel " * 40,
    "alpha/alpha-1.0-py3-none-any.whl.metadata": b"Metadata-Version: 2.1\nName: alpha\n",
    "alpha/alpha-1.0.tar.gz": b"\x1f\x8b alpha sdist " * 30,
    "alpha/index.html": b"<html>alpha 1.0</html>",
    "alpha/index.json": b'{"name": "alpha"}',
    "beta/beta-1.0-py3-none-any.whl": b"PK\x03\x04 beta wheel " * 50,
    "beta/beta-1.0-py3-none-any.whl.metadata": b"Metadata-Version: 2.1\nName: beta\n",
    "beta/index.html": b"<html>beta 1.0</html>",
    "beta/index.json": b'{"name": "beta", "v": 1}',
    "index.html": b"<html>alpha beta</html>",
    "index.json": b'{"projects": ["alpha", "beta"]}',
    "pylock.linux.toml": b'lock-version = "1.0"\n',
}
V2: dict[str, bytes] = {
    **{path: data for path, data in V1.items() if not path.startswith("alpha/")},
    "beta/beta-2.0-py3-none-any.whl": b"PK\x03\x04 beta 2 wheel " * 60,
    "beta/beta-2.0-py3-none-any.whl.metadata": b"Metadata-Version: 2.1\nName: beta\n\n2",
    "beta/index.html": b"<html>beta 1.0 2.0</html>",
    "beta/index.json": b'{"name": "beta", "v": 2}',
    "gamma/gamma-0.1.tar.gz": b"\x1f\x8b gamma sdist " * 20,
    "gamma/index.html": b"<html>gamma</html>",
    "gamma/index.json": b'{"name": "gamma"}',
    "index.html": b"<html>beta gamma</html>",
    "index.json": b'{"projects": ["beta", "gamma"]}',
}
#: Never listed, never exported, never verified.
PRIVATE = {
    "morgan.ini": b"[env.linux]\npassword = hunter2\n",
    ".cache/state.json": b"{}",
    "beta/.beta-3.0-py3-none-any.whl.x7k2.part": b"PARTIAL",
}


# ---------------------------------------------------------------------------
# Trees, manifests and bundles, per the spec
# ---------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_files(root: Path, files: dict[str, bytes], first_mtime: int = 1_600_000_000) -> None:
    """Write files with distinct whole-second mtimes (so that landing them can be checked)."""
    for number, (path, data) in enumerate(sorted(files.items())):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, (first_mtime + number, first_mtime + number))


def tree_files(root: Path) -> list[str]:
    """The paths a manifest lists: regular files, not hidden, not manifest.json or morgan.ini."""
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            path = Path(folder, name).relative_to(root).as_posix()
            if name.startswith(".") or path in ("manifest.json", "morgan.ini"):
                continue
            if Path(folder, name).is_file() and not Path(folder, name).is_symlink():
                found.append(path)
    return sorted(found)


def manifest_of(root: Path) -> dict[str, Any]:
    """INDEX/manifest.json as the spec has the mirrorer write it."""
    files: dict[str, Any] = {}
    index_files: dict[str, Any] = {}
    for path in tree_files(root):
        data = (root / path).read_bytes()
        entry = {"sha256": sha256_hex(data), "size": len(data)}
        project, _, name = path.rpartition("/")
        if project and name.endswith(DISTRIBUTION_SUFFIXES):
            reason = {"environment": "linux", "reason": "requirement", "requirement": project}
            files[path] = {
                **entry,
                "project": project,
                "version": name.split("-")[1],
                "environments": ["linux"],
                "why": [{**reason, "line": 1}],
            }
        else:
            index_files[path] = entry
    return {
        "manifest-version": 1,
        "generator": "tests",
        "config-sha256": sha256_hex(PRIVATE["morgan.ini"]),
        "index-url": "https://pypi.org/simple/",
        "environments": ["linux"],
        "files": files,
        "index-files": index_files,
    }


def write_manifest(root: Path) -> bytes:
    data = (json.dumps(manifest_of(root), indent=1, sort_keys=True) + "\n").encode()
    (root / "manifest.json").write_bytes(data)
    return data


def make_mirror(root: Path, files: dict[str, bytes]) -> bytes:
    """A mirror's folder with its private files and its manifest; the manifest's bytes."""
    write_files(root, {**files, **PRIVATE})
    return write_manifest(root)


def regular(name: str, data: bytes, mtime: int = 1_500_000_000) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info, None


def bundle_members(source: Path, base: bytes | None = None) -> list[Member]:
    """The members of a bundle of ``source`` against the manifest ``base`` (None: a full one).

    morgan-bundle.json, distributions, other project files, root files, manifest.json.
    """
    manifest_bytes = (source / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    listed = {**manifest["files"], **manifest["index-files"]}
    old: dict[str, Any] = {}
    if base is not None:
        old_manifest = json.loads(base)
        old = {**old_manifest["files"], **old_manifest["index-files"]}

    def changed(path: str) -> bool:
        return path not in old or (old[path]["sha256"], old[path]["size"]) != (
            listed[path]["sha256"],
            listed[path]["size"],
        )

    distributions = sorted(p for p in manifest["files"] if changed(p))
    others = sorted(p for p in manifest["index-files"] if "/" in p and changed(p))
    roots = sorted(p for p in manifest["index-files"] if "/" not in p and changed(p))
    members = []
    for path in [*distributions, *others, *roots, "manifest.json"]:
        members.append(regular(path, (source / path).read_bytes(), mtime_of(source / path)))
    info = {
        "bundle-version": 1,
        "base": sha256_hex(base) if base is not None else None,
        "manifest": sha256_hex(manifest_bytes),
        "members": [
            {"path": member.name, "sha256": sha256_hex(data or b""), "size": member.size}
            for member, data in members
        ],
        "removed": sorted(set(old) - set(listed)),
    }
    info_bytes = json.dumps(info, indent=1).encode()
    return [regular("morgan-bundle.json", info_bytes, mtime_of(source / "manifest.json")), *members]


def mtime_of(path: Path) -> int:
    return int(path.stat().st_mtime)


def write_tar(out: Path, members: Iterable[Member]) -> Path:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def bundle_info(members: list[Member]) -> dict[str, Any]:
    data = members[0][1]
    assert data is not None
    return json.loads(data)


def with_info(members: list[Member], change: Callable[[dict[str, Any]], None]) -> list[Member]:
    """The members with morgan-bundle.json changed by ``change``."""
    info = bundle_info(members)
    change(info)
    return [regular("morgan-bundle.json", json.dumps(info).encode()), *members[1:]]


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (and root itself): mode, size and mtime, links not followed."""
    st = root.lstat()
    entries = {".": (st.st_mode, 0, st.st_mtime_ns)}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder, name)
            st = path.lstat()
            entries[path.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return entries


def contents(root: Path) -> dict[str, bytes]:
    return {path: (root / path).read_bytes() for path in tree_files(root)}


def run_server(python: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(SERVER_SOURCE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The single stderr line of a command that failed as a user would see it fail."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(params=["current", "3.7"])
def python(request: pytest.FixtureRequest) -> str:
    """This Python, and the oldest that server.py supports."""
    if request.param == "current":
        return sys.executable
    found = find_python(request.param)
    if found is None:
        skip_unless_ci(f"no Python {request.param} on this machine")
    return found


class Mirrors:
    """The connected side's tree at V1 and V2, and bundles of each."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.v1_tree, self.v2_tree = base / "v1", base / "v2"
        self.m1 = make_mirror(self.v1_tree, V1)
        self.m2 = make_mirror(self.v2_tree, V2)
        self.bundles = base / "bundles"
        self.bundles.mkdir()
        self.full = write_tar(self.bundles / "full.tar", bundle_members(self.v1_tree))
        self.delta = write_tar(self.bundles / "delta.tar", bundle_members(self.v2_tree, self.m1))

    def delta_members(self) -> list[Member]:
        return bundle_members(self.v2_tree, self.m1)


@pytest.fixture
def mirrors(tmp_path: Path) -> Mirrors:
    return Mirrors(tmp_path)


def imported_v1(mirrors: Mirrors, index: Path) -> Path:
    """``index`` holding V1 as an import lands it (in process: the subject is elsewhere)."""
    index.mkdir()
    server_module.import_bundle(mirrors.full, index)
    return index


# ---------------------------------------------------------------------------
# The test helpers themselves
# ---------------------------------------------------------------------------


def test_bundles_follow_the_spec(mirrors: Mirrors) -> None:
    with tarfile.open(mirrors.delta) as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names[0] == "morgan-bundle.json" and names[-1] == "manifest.json"
    assert all(m.isreg() and m.mode == 0o644 and m.uid == m.gid == 0 for m in members)
    info = bundle_info(mirrors.delta_members())
    assert [m["path"] for m in info["members"]] == names[1:]
    assert names[1:3] == ["beta/beta-2.0-py3-none-any.whl", "gamma/gamma-0.1.tar.gz"]
    assert info["base"] == sha256_hex(mirrors.m1)
    assert info["removed"] == sorted(p for p in V1 if p.startswith("alpha/"))
    assert "beta/beta-1.0-py3-none-any.whl" not in names  # unchanged: not in a delta
    again = write_tar(mirrors.base / "again.tar", bundle_members(mirrors.v2_tree, mirrors.m1))
    assert again.read_bytes() == mirrors.delta.read_bytes()


# ---------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------


def test_verify_passes_a_tree_that_matches(tmp_path: Path, python: str) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    (index / ".morgan-import-x1").mkdir()  # hidden: an import in progress
    (index / ".morgan-import-x1" / "00000001").write_bytes(b"staged")
    before = snapshot(tmp_path)
    result = run_server(python, "verify", "-i", index)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"verified {len(V1)} files: the tree matches its manifest\n"
    assert result.stderr == ""
    assert snapshot(tmp_path) == before


def test_verify_in_the_current_folder_by_default(tmp_path: Path) -> None:
    make_mirror(tmp_path, V1)
    result = subprocess.run(
        [sys.executable, str(SERVER_SOURCE), "verify"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def damage(index: Path, outside: Path) -> list[str]:
    """Every kind of difference verify must find; the lines it must print, in order."""
    wheel = index / "alpha/alpha-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[10] ^= 0x01  # one bit, same size
    wheel.write_bytes(bytes(data))
    with (index / "alpha/index.json").open("ab") as stream:
        stream.write(b" ")
    (index / "beta/index.html").unlink()
    (index / "beta/notes.txt").write_bytes(b"notes")
    (index / "docs/deep").mkdir(parents=True)
    (index / "docs/deep/readme.txt").write_bytes(b"deep")
    outside.mkdir(exist_ok=True)
    (outside / "evil.whl").write_bytes(b"evil")
    (index / "evil-1.0-py3-none-any.whl").symlink_to(outside / "evil.whl")
    (index / "index.json").unlink()  # a listed file turned into a symlink, to the same bytes
    (outside / "index.json").write_bytes(V1["index.json"])
    (index / "index.json").symlink_to(outside / "index.json")
    os.mkfifo(index / "beta/pipe")
    size = len(V1["alpha/index.json"])
    return [
        "corrupt: alpha/alpha-1.0-py3-none-any.whl (sha256 differs from the manifest)",
        f"corrupt: alpha/index.json (size {size + 1}, manifest says {size})",
        "missing: beta/index.html",
        "unlisted: beta/notes.txt",
        "unlisted: beta/pipe",
        "unlisted: docs/deep/readme.txt",
        "unlisted: evil-1.0-py3-none-any.whl",
        "corrupt: index.json (a symbolic link, not a regular file)",
    ]


def test_verify_reports_each_problem_sorted_by_path(tmp_path: Path, python: str) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    expected = damage(index, tmp_path / "outside")
    before = snapshot(tmp_path)
    result = run_server(python, "verify", "-i", index)
    assert result.returncode == 1, result.stderr
    summary = f"verified {len(V1)} files: {len(expected)} problems"
    assert result.stdout.splitlines() == [*expected, summary]
    assert result.stderr == ""
    assert snapshot(tmp_path) == before  # verify alone moves and deletes nothing


def test_verify_tree_is_callable_in_process(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    expected = damage(index, tmp_path / "outside")
    problems, count = server_module.verify_tree(index)
    assert count == len(V1)
    assert [problem.line() for problem in problems] == expected
    assert [p.kind for p in problems][:3] == ["corrupt", "corrupt", "missing"]
    lines = server_module.verify_lines(problems, count)
    assert lines[-1] == f"verified {count} files: {len(expected)} problems"


def test_verify_finds_a_symlinked_project_folder(tmp_path: Path) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    elsewhere = tmp_path / "elsewhere"
    (index / "beta").rename(elsewhere)
    (index / "beta").symlink_to(elsewhere, target_is_directory=True)
    problems, _ = server_module.verify_tree(index)
    beta = sorted(p for p in V1 if p.startswith("beta/"))
    assert [p.line() for p in problems] == ["unlisted: beta", *(f"missing: {p}" for p in beta)]


def test_quarantine_moves_corrupt_and_unlisted_files_out(tmp_path: Path, python: str) -> None:
    index, quarantine = tmp_path / "index", tmp_path / "quarantine"
    make_mirror(index, V1)
    damage(index, tmp_path / "outside")
    corrupt_wheel = (index / "alpha/alpha-1.0-py3-none-any.whl").read_bytes()
    result = run_server(python, "verify", "-i", index, "--quarantine", quarantine)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    moved = [
        "alpha/alpha-1.0-py3-none-any.whl",
        "alpha/index.json",
        "beta/notes.txt",
        "beta/pipe",
        "docs/deep/readme.txt",
        "evil-1.0-py3-none-any.whl",
        "index.json",
    ]
    for path in moved:
        assert f"quarantined: {path} -> {quarantine / path}" in lines
        assert not os.path.lexists(index / path)
        assert os.path.lexists(quarantine / path)
    assert not any("beta/index.html ->" in line for line in lines)  # missing: nothing to move
    assert (quarantine / "alpha/alpha-1.0-py3-none-any.whl").read_bytes() == corrupt_wheel
    assert (quarantine / "evil-1.0-py3-none-any.whl").is_symlink()  # moved, not followed
    assert (tmp_path / "outside/evil.whl").read_bytes() == b"evil"
    assert lines[-1] == f"verified {len(V1)} files: 8 problems"

    # What was moved out is now missing, and nothing else is wrong.
    again = run_server(python, "verify", "-i", index)
    assert again.returncode == 1
    assert again.stdout.splitlines()[:-1] == [
        "missing: alpha/alpha-1.0-py3-none-any.whl",
        "missing: alpha/index.json",
        "missing: beta/index.html",
        "missing: index.json",
    ]

    # A file quarantined twice keeps both versions.
    (index / "beta/notes.txt").write_bytes(b"notes, again")
    third = run_server(python, "verify", "-i", index, "--quarantine", quarantine)
    assert f"quarantined: beta/notes.txt -> {quarantine}/beta/notes.txt.1" in third.stdout
    assert (quarantine / "beta/notes.txt").read_bytes() == b"notes"
    assert (quarantine / "beta/notes.txt.1").read_bytes() == b"notes, again"


@pytest.mark.parametrize("inside", ["index", "index/quarantine", "index/beta/q"])
def test_quarantine_inside_the_index_is_refused(tmp_path: Path, inside: str) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    damage(index, tmp_path / "outside")
    before = snapshot(tmp_path)
    result = run_server(sys.executable, "verify", "-i", index, "--quarantine", tmp_path / inside)
    line = one_line_error(result, 2)
    assert "is inside the index" in line and "choose a folder outside it" in line
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (None, "manifest.json not found: run morgan mirror, or import a full bundle"),
        (b"{not json", "is not a valid manifest: not valid JSON"),
        (b"[]", "is not a valid manifest: not a JSON object"),
        (b'{"manifest-version": 2, "files": {}, "index-files": {}}', "manifest-version 2"),
        (b'{"manifest-version": 1, "files": {}}', '"index-files" is not an object'),
        (
            b'{"manifest-version": 1, "files": {}, "index-files": {"../etc/passwd": '
            b'{"sha256": "' + b"0" * 64 + b'", "size": 1}}}',
            '"../etc/passwd" in index-files holds ".."',
        ),
        (
            b'{"manifest-version": 1, "files": {"a/a-1.whl": {"sha256": "x", "size": 1}}, '
            b'"index-files": {}}',
            'the entry of "a/a-1.whl" in files needs',
        ),
    ],
)
def test_verify_without_a_valid_manifest_says_so(
    tmp_path: Path, manifest: bytes | None, expected: str
) -> None:
    index = tmp_path / "index"
    write_files(index, V1)
    if manifest is not None:
        (index / "manifest.json").write_bytes(manifest)
    result = run_server(sys.executable, "verify", "-i", index)
    line = one_line_error(result, 2)
    assert line.startswith("server.py: error: ") and expected in line, line
    assert result.stdout == ""


def test_verify_of_a_missing_folder_says_so(tmp_path: Path) -> None:
    result = run_server(sys.executable, "verify", "-i", tmp_path / "nowhere")
    assert "index folder not found" in one_line_error(result, 2)


# ---------------------------------------------------------------------------
# import: what lands
# ---------------------------------------------------------------------------


def test_full_bundle_into_an_empty_folder(mirrors: Mirrors, python: str) -> None:
    index = mirrors.base / "index"
    index.mkdir()
    result = run_server(python, "import", mirrors.full, "-i", index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"imported {len(V1) + 1} files into {index}, removed 0",
        f"verified {len(V1)} files: the tree matches its manifest",
    ]
    assert result.stderr == ""
    assert contents(index) == V1
    assert (index / "manifest.json").read_bytes() == mirrors.m1
    for path in V1:  # mtimes come from the tar, which has them from the tree
        assert mtime_of(index / path) == mtime_of(mirrors.v1_tree / path)
        assert (index / path).stat().st_mode & 0o777 == 0o644 & ~current_umask()
    assert not (index / "morgan.ini").exists()  # never exported
    assert [p.name for p in index.iterdir() if p.name.startswith(".")] == []  # staging removed
    assert run_server(python, "verify", "-i", index).returncode == 0


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_delta_bundle_over_the_previous_import(mirrors: Mirrors, python: str) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    (index / "morgan.ini").write_bytes(PRIVATE["morgan.ini"])  # the closed side's own
    (index / "beta/.cache").write_bytes(b"hidden")
    result = run_server(python, "import", mirrors.delta, "-i", index)
    assert result.returncode == 0, result.stderr
    info = bundle_info(mirrors.delta_members())
    removed = len(info["removed"])
    assert result.stdout.splitlines() == [
        f"imported {len(info['members'])} files into {index}, removed {removed}",
        f"verified {len(V2)} files: the tree matches its manifest",
    ]
    assert contents(index) == V2
    assert (index / "manifest.json").read_bytes() == mirrors.m2
    assert not (index / "alpha").exists()  # emptied by the removals, then removed
    assert (index / "morgan.ini").read_bytes() == PRIVATE["morgan.ini"]
    assert (index / "beta/.cache").read_bytes() == b"hidden"

    # Running it again once it has landed is allowed, and changes nothing.
    again = run_server(python, "import", mirrors.delta, "-i", index)
    assert again.returncode == 0, again.stderr
    assert contents(index) == V2


def test_full_bundle_run_again_is_allowed(mirrors: Mirrors) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    result = run_server(sys.executable, "import", mirrors.full, "-i", index)
    assert result.returncode == 0, result.stderr
    assert contents(index) == V1


def test_bundle_on_another_base_needs_force(mirrors: Mirrors, python: str) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    (index / "index.html").write_bytes(b"<html>changed here</html>")
    write_manifest(index)  # another state than the delta's base
    current = sha256_hex((index / "manifest.json").read_bytes())
    before = snapshot(mirrors.base)
    refused = run_server(python, "import", mirrors.delta, "-i", index)
    line = one_line_error(refused, 1)
    assert line.startswith("server.py: import refused: ")
    assert sha256_hex(mirrors.m1) in line and current in line
    assert "import the bundles in order, or use --force" in line
    assert snapshot(mirrors.base) == before

    forced = run_server(python, "import", mirrors.delta, "-i", index, "--force")
    assert forced.returncode == 0, forced.stderr
    assert contents(index) == V2


def test_full_bundle_over_a_mirror_needs_force(mirrors: Mirrors) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    full_v2 = write_tar(mirrors.bundles / "full2.tar", bundle_members(mirrors.v2_tree))
    before = snapshot(mirrors.base)
    line = one_line_error(run_server(sys.executable, "import", full_v2, "-i", index), 1)
    assert "this is a full bundle" in line and "--force" in line
    assert snapshot(mirrors.base) == before
    assert run_server(sys.executable, "import", full_v2, "-i", index, "--force").returncode == 1
    # Forced, the full bundle lands but removes nothing: the old files are unlisted now.
    problems, _ = server_module.verify_tree(index)
    assert {p.kind for p in problems} == {"unlisted"}


def test_delta_bundle_into_an_empty_folder_is_refused(mirrors: Mirrors) -> None:
    index = mirrors.base / "index"
    index.mkdir()
    line = one_line_error(run_server(sys.executable, "import", mirrors.delta, "-i", index), 1)
    assert "does not exist: import the bundles before it first, or use --force" in line
    assert list(index.iterdir()) == []


def test_landing_order(mirrors: Mirrors, monkeypatch: pytest.MonkeyPatch) -> None:
    """Distributions, other project files, project pages, root files, manifest.json, removals."""
    index = imported_v1(mirrors, mirrors.base / "index")
    events: list[tuple[str, str]] = []
    real_replace, real_unlink = os.replace, os.unlink

    def inside(path: Any) -> str | None:
        text = os.fspath(path)
        if not os.path.isabs(text) or not text.startswith(f"{index}/"):
            return None
        relative = Path(text).relative_to(index).as_posix()
        return None if relative.startswith(".") else relative

    def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        assert Path(os.fspath(source)).parent.name.startswith(".morgan-import-")
        events.append(("replace", inside(target) or "?"))
        real_replace(source, target, *args, **kwargs)

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        relative = inside(path)
        if relative is not None:
            events.append(("unlink", relative))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(server_module.os, "replace", replace)
    monkeypatch.setattr(server_module.os, "unlink", unlink)
    result = server_module.import_bundle(mirrors.delta, index)
    monkeypatch.undo()

    manifest = json.loads(mirrors.m2)

    def rank(path: str) -> int:
        if path == "manifest.json":
            return 4
        if "/" not in path:
            return 3
        if path in manifest["files"]:
            return 0
        return 2 if path.split("/")[1] in PAGES else 1

    landed = [path for kind, path in events if kind == "replace"]
    info = bundle_info(mirrors.delta_members())
    assert sorted(landed) == sorted(m["path"] for m in info["members"])
    assert [rank(path) for path in landed] == sorted(rank(path) for path in landed)
    assert set(map(rank, landed)) == {0, 1, 2, 3, 4}
    assert landed[-1] == "manifest.json"
    assert events[len(landed) :] == [("unlink", path) for path in info["removed"]]
    assert (result.landed, result.removed) == (len(landed), len(info["removed"]))


def test_interrupted_import_can_be_run_again(
    mirrors: Mirrors, monkeypatch: pytest.MonkeyPatch, python: str
) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    real_replace = os.replace
    landed: list[str] = []

    def replace_then_fail(source: Any, target: Any) -> None:
        if len(landed) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        landed.append(os.fspath(target))
        real_replace(source, target)

    monkeypatch.setattr(server_module.os, "replace", replace_then_fail)
    with pytest.raises(
        server_module.Interrupted, match=r"after 3 of \d+ files landed; run the same"
    ):
        server_module.import_bundle(mirrors.delta, index)
    monkeypatch.undo()
    assert (index / "manifest.json").read_bytes() == mirrors.m1  # still the base
    assert (index / "beta/beta-2.0-py3-none-any.whl").exists()  # landed before the failure
    assert not [p for p in index.iterdir() if p.name.startswith(".morgan-import-")]

    result = run_server(python, "import", mirrors.delta, "-i", index)
    assert result.returncode == 0, result.stderr
    assert contents(index) == V2


def test_killed_import_can_be_run_again(mirrors: Mirrors, python: str) -> None:
    """A killed import leaves files landed and its staging folder; running it again ends it."""
    index = imported_v1(mirrors, mirrors.base / "index")
    members = mirrors.delta_members()
    for info, data in members[1:4]:  # the first distributions had landed
        assert data is not None
        (index / info.name).parent.mkdir(exist_ok=True)
        (index / info.name).write_bytes(data)
    staging = index / ".morgan-import-k1ll3d"
    staging.mkdir()
    (staging / "00000004").write_bytes(b"half a fi")
    result = run_server(python, "import", mirrors.delta, "-i", index)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "removed .morgan-import-k1ll3d, left by an interrupted import\n"
    )
    assert contents(index) == V2
    assert not staging.exists()


def test_import_bundle_is_callable_in_process(mirrors: Mirrors) -> None:
    index = mirrors.base / "index"
    index.mkdir()
    result = server_module.import_bundle(mirrors.full, index)
    assert (result.landed, result.removed, result.stale) == (len(V1) + 1, 0, [])
    with pytest.raises(server_module.Refusal, match="this is a full bundle"):
        server_module.import_bundle(mirrors.full, mirrors.v2_tree)


# ---------------------------------------------------------------------------
# import: what is refused, with nothing written
# ---------------------------------------------------------------------------


def _insert(members: list[Member], member: Member, at: int = 1) -> list[Member]:
    return [*members[:at], member, *members[at:]]


def _replace_data(
    members: list[Member], name: str, change: Callable[[bytes], bytes]
) -> list[Member]:
    result = []
    for info, data in members:
        if info.name == name:
            assert data is not None
            info, data = regular(name, change(data), int(info.mtime))
        result.append((info, data))
    return result


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


WHEEL2 = "beta/beta-2.0-py3-none-any.whl"


def _listed(members: list[Member], extra: Member) -> list[Member]:
    """``extra`` added to the tar and to morgan-bundle.json (so only its nature is wrong)."""
    data = extra[1] or b""
    entry = {"path": extra[0].name, "sha256": sha256_hex(data), "size": len(data)}
    return _insert(with_info(members, lambda info: info["members"].insert(0, entry)), extra)


HOSTILE: dict[str, tuple[Callable[[list[Member]], list[Member]], str]] = {
    "dot-dot": (
        lambda m: _insert(m, regular("../evil-1.0-py3-none-any.whl", b"evil")),
        'member "../evil-1.0-py3-none-any.whl": the path holds ".."',
    ),
    "dot-dot-listed": (
        lambda m: _listed(m, regular("beta/../../evil.whl", b"evil")),
        'member "beta/../../evil.whl": the path holds ".."',
    ),
    "absolute": (
        lambda m: _insert(m, regular("/tmp/evil-1.0-py3-none-any.whl", b"evil")),
        'member "/tmp/evil-1.0-py3-none-any.whl": the path is absolute',
    ),
    "backslash": (
        lambda m: _insert(m, regular("beta\\evil.whl", b"evil")),
        'member "beta\\\\evil.whl": the path holds a backslash',
    ),
    "symlink": (
        lambda m: _listed(m, special("beta/beta-9.0.tar.gz", tarfile.SYMTYPE, "/etc/passwd")),
        'member "beta/beta-9.0.tar.gz" is a symbolic link, not a regular file',
    ),
    "hard-link": (
        lambda m: _insert(m, special("beta/beta-9.0.tar.gz", tarfile.LNKTYPE, "/etc/passwd")),
        'member "beta/beta-9.0.tar.gz" is a hard link, not a regular file',
    ),
    "device": (
        lambda m: _insert(m, special("beta/beta-9.0.tar.gz", tarfile.CHRTYPE)),
        'member "beta/beta-9.0.tar.gz" is a device, not a regular file',
    ),
    "fifo": (
        lambda m: _insert(m, special("beta/beta-9.0.tar.gz", tarfile.FIFOTYPE)),
        'member "beta/beta-9.0.tar.gz" is a FIFO, not a regular file',
    ),
    "folder": (
        lambda m: _insert(m, special("delta", tarfile.DIRTYPE)),
        'member "delta" is a folder, not a regular file',
    ),
    "duplicate": (
        lambda m: [*m[:2], m[1], *m[2:]],
        f'member "{WHEEL2}" appears twice in the bundle',
    ),
    "duplicate-manifest": (
        lambda m: [*m, m[-1]],
        'member "manifest.json" appears twice in the bundle',
    ),
    "not-listed": (
        lambda m: _insert(m, regular("beta/beta-9.0.tar.gz", b"sneaked in"), at=2),
        'member "beta/beta-9.0.tar.gz" is not listed in morgan-bundle.json',
    ),
    "listed-absent": (
        lambda m: [m[0], *m[2:]],
        f'member "{WHEEL2}" is listed in morgan-bundle.json but absent from the bundle',
    ),
    "same-size-other-bytes": (
        lambda m: _replace_data(m, WHEEL2, _flip),
        f'member "{WHEEL2}": sha256 differs from morgan-bundle.json',
    ),
    "other-size": (
        lambda m: _replace_data(m, WHEEL2, lambda data: data + b"\0"),
        f'member "{WHEEL2}": size {len(V2[WHEEL2]) + 1}, morgan-bundle.json says {len(V2[WHEEL2])}',
    ),
    "manifest-differs": (
        lambda m: _replace_data(m, "manifest.json", lambda data: data.replace(b"1", b"2", 1)),
        'member "manifest.json": sha256 differs from morgan-bundle.json',
    ),
    "hidden": (
        lambda m: _insert(m, regular("beta/.evil.whl", b"evil")),
        'member "beta/.evil.whl": the path holds a hidden component',
    ),
    "hidden-root": (
        lambda m: _listed(m, regular(".bashrc", b"evil")),
        'member ".bashrc": the path holds a hidden component',
    ),
    "three-components": (
        lambda m: _insert(m, regular("beta/sub/evil.whl", b"evil")),
        'member "beta/sub/evil.whl": the path has more than two components',
    ),
    "not-a-project-folder": (
        lambda m: _listed(m, regular("Beta_Two/evil.whl", b"evil")),
        'member "Beta_Two/evil.whl": the path is not in a PEP 503 normalized project folder',
    ),
    "control-character": (
        lambda m: _insert(m, regular("beta/evil\n.whl", b"evil")),
        'member "beta/evil\\n.whl": the path is not plain',
    ),
    "config": (
        lambda m: _listed(m, regular("morgan.ini", b"[env.x]\nindex_url = http://evil/\n")),
        'member "morgan.ini": the path is not a file of the tree',
    ),
    "info-not-first": (
        lambda m: [m[1], m[0], *m[2:]],
        f'is not a morgan bundle: it starts with member "{WHEEL2}", not morgan-bundle.json',
    ),
    "info-twice": (
        lambda m: [m[0], m[0], *m[1:]],
        'member "morgan-bundle.json" appears twice in the bundle',
    ),
    "info-invalid-json": (
        lambda m: [regular("morgan-bundle.json", b'{"bundle-version": 1,'), *m[1:]],
        "morgan-bundle.json is not valid JSON",
    ),
    "info-other-version": (
        lambda m: with_info(m, lambda info: info.update({"bundle-version": 2})),
        "morgan-bundle.json: bundle-version 2 is not supported",
    ),
    "info-lists-unsafe-member": (
        lambda m: with_info(
            m, lambda info: info["members"].append({"path": "/etc/x", "sha256": "0", "size": 1})
        ),
        'member "/etc/x": the path is absolute',
    ),
    "info-lists-twice": (
        lambda m: with_info(m, lambda info: info["members"].append(info["members"][0])),
        f'member "{WHEEL2}" is listed twice in morgan-bundle.json',
    ),
    "removed-unsafe": (
        lambda m: with_info(m, lambda info: info["removed"].append("../index/beta")),
        'removed path "../index/beta": the path holds ".."',
    ),
    "removed-manifest": (
        lambda m: with_info(m, lambda info: info["removed"].append("manifest.json")),
        'removed path "manifest.json": the path is never removed',
    ),
    "removed-still-listed": (
        lambda m: with_info(
            m, lambda info: info["removed"].append("beta/beta-1.0-py3-none-any.whl")
        ),
        'removed path "beta/beta-1.0-py3-none-any.whl": the bundle\'s manifest.json still lists',
    ),
    "member-not-in-new-manifest": (
        lambda m: _listed(m, regular("beta/beta-9.0.tar.gz", b"not in the manifest")),
        'member "beta/beta-9.0.tar.gz": the bundle\'s manifest.json does not list it',
    ),
    "empty": (lambda m: [], "is not a morgan bundle: it starts with nothing"),
    "root-file-not-the-trees": (
        lambda m: _listed(m, regular("users.auth", b"evil:pbkdf2$1$00$00\n")),
        'member "users.auth": the path is not a file of the tree',
    ),
    "root-file-in-other-case": (
        lambda m: _listed(m, regular("MANIFEST.JSON", b"{}")),
        'member "MANIFEST.JSON": the path is not a file of the tree',
    ),
    "page-in-other-case": (
        lambda m: _listed(m, regular("beta/INDEX.HTML", b"<html>evil</html>")),
        'member "beta/INDEX.HTML": the path differs from a page\'s name only in case',
    ),
    "removed-root-file": (
        lambda m: with_info(m, lambda info: info["removed"].append("cert.pem")),
        'removed path "cert.pem": the path is not a file of the tree',
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundle_is_refused_and_nothing_written(
    mirrors: Mirrors, python: str, case: str
) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    make, expected = HOSTILE[case]
    bundle = write_tar(mirrors.bundles / f"{case}.tar", make(mirrors.delta_members()))
    before = snapshot(mirrors.base)
    result = run_server(python, "import", bundle, "-i", index)
    line = one_line_error(result, 1)
    assert line.startswith("server.py: import refused: "), line
    assert expected in line, line
    assert result.stdout == ""
    assert snapshot(mirrors.base) == before  # INDEX, the bundle and all around them


def test_the_unaltered_delta_lands(mirrors: Mirrors) -> None:
    """The control of the hostile cases: the same bundle, unaltered, is accepted."""
    index = imported_v1(mirrors, mirrors.base / "index")
    bundle = write_tar(mirrors.bundles / "control.tar", mirrors.delta_members())
    assert run_server(sys.executable, "import", bundle, "-i", index).returncode == 0


@pytest.mark.parametrize("cut", ["mid-member", "mid-header", "mid-first", "first-header"])
def test_truncated_bundle_is_refused(mirrors: Mirrors, python: str, cut: str) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    data = mirrors.delta.read_bytes()
    with tarfile.open(mirrors.delta) as tar:
        wheel = tar.getmember(WHEEL2)
    at = {
        "mid-member": wheel.offset_data + wheel.size // 2,
        "mid-header": wheel.offset + 100,
        "mid-first": 700,
        "first-header": 100,
    }[cut]
    bundle = mirrors.bundles / "cut.tar"
    bundle.write_bytes(data[:at])
    before = snapshot(mirrors.base)
    line = one_line_error(run_server(python, "import", bundle, "-i", index), 1)
    expected = {
        "mid-member": f'member "{WHEEL2}" is cut short',
        "mid-header": f'member "{WHEEL2}" is listed in morgan-bundle.json but absent',
        "mid-first": 'member "morgan-bundle.json" is cut short',
        "first-header": "cannot read the bundle",
    }[cut]
    assert expected in line, line
    assert snapshot(mirrors.base) == before


def test_member_through_a_symlinked_project_folder_is_refused(mirrors: Mirrors) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    outside = mirrors.base / "outside"
    outside.mkdir()
    (index / "gamma").symlink_to(outside, target_is_directory=True)
    before = snapshot(mirrors.base)
    line = one_line_error(run_server(sys.executable, "import", mirrors.delta, "-i", index), 1)
    assert f"{index}/gamma is not a folder (a file or a symbolic link)" in line
    assert snapshot(mirrors.base) == before
    assert list(outside.iterdir()) == []


def test_member_onto_a_folder_is_refused(mirrors: Mirrors) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    (index / "gamma/index.json").mkdir(parents=True)
    before = snapshot(mirrors.base)
    line = one_line_error(run_server(sys.executable, "import", mirrors.delta, "-i", index), 1)
    assert f"{index}/gamma/index.json is a folder" in line
    assert snapshot(mirrors.base) == before


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [
        ("missing.tar", "No such file or directory"),
        ("not-a-tar.tar", "not an uncompressed tar"),
        ("bundle.tar.gz", "not an uncompressed tar"),
    ],
)
def test_unreadable_bundle_is_refused(mirrors: Mirrors, bundle: str, expected: str) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    (mirrors.bundles / "not-a-tar.tar").write_bytes(b"hello " * 200)
    with tarfile.open(mirrors.bundles / "bundle.tar.gz", "w:gz") as tar:
        for info, data in mirrors.delta_members():
            tar.addfile(info, io.BytesIO(data or b""))
    before = snapshot(mirrors.base)
    line = one_line_error(
        run_server(sys.executable, "import", mirrors.bundles / bundle, "-i", index), 1
    )
    assert "cannot read the bundle" in line and expected in line, line
    assert snapshot(mirrors.base) == before


def test_import_into_a_missing_folder_says_so(mirrors: Mirrors) -> None:
    result = run_server(sys.executable, "import", mirrors.full, "-i", mirrors.base / "nowhere")
    assert "index folder not found" in one_line_error(result, 2)
    assert not (mirrors.base / "nowhere").exists()


def test_commands_have_help() -> None:
    main_help = run_server(sys.executable, "--help")
    assert main_help.returncode == 0
    assert "server.py verify" in main_help.stdout and "server.py import" in main_help.stdout
    assert "--public-manifest" in main_help.stdout
    for command in ("verify", "import"):
        result = run_server(sys.executable, command, "--help")
        assert result.returncode == 0 and f"usage: server.py {command}" in result.stdout
    usage = run_server(sys.executable, "import")
    assert usage.returncode == 2 and "BUNDLE.tar" in usage.stderr


def test_one_import_at_a_time(mirrors: Mirrors) -> None:
    import fcntl  # noqa: PLC0415 - POSIX only, like the lock it tests

    index = imported_v1(mirrors, mirrors.base / "index")
    before = snapshot(mirrors.base)
    descriptor = os.open(index, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # as an import in progress holds it
        result = run_server(sys.executable, "import", mirrors.delta, "-i", index)
    finally:
        os.close(descriptor)
    assert "another import into" in one_line_error(result, 1)
    assert snapshot(mirrors.base) == before


def test_no_import_while_morgan_mirror_writes_the_index(mirrors: Mirrors) -> None:
    """A run writes pages from the folders it scanned: a bundle landing meanwhile would
    mix its pages with the run's. The run holds the lock an import takes."""
    index = imported_v1(mirrors, mirrors.base / "index")
    with IndexLock(index):
        before = snapshot(mirrors.base)  # with the run's lock file
        result = run_server(sys.executable, "import", mirrors.delta, "-i", index)
        assert "or a morgan run holds it" in one_line_error(result, 1)
        assert snapshot(mirrors.base) == before
    # once the run is over, the same import lands
    assert run_server(sys.executable, "import", mirrors.delta, "-i", index).returncode == 0


# ---------------------------------------------------------------------------
# Serving manifest.json
# ---------------------------------------------------------------------------

MANIFEST_URLS = ["/manifest.json", "/simple/manifest.json", "/simple/manifest.json?format=json"]
PRIVATE_URLS = [
    "/manifest.json/",
    "/simple//manifest.json",
    "/beta/manifest.json",
    "/simple/beta/manifest.json",
    "/morgan.ini",
    "/simple/index.json",
    "/pylock.linux.toml",
    "/simple/.cache/state.json",
]


def test_manifest_is_never_served_by_default(tmp_path: Path, python: str) -> None:
    index = tmp_path / "index"
    make_mirror(index, V1)
    with ServerProcess(index, python=python, script=SERVER_SOURCE) as server:
        for url in MANIFEST_URLS + PRIVATE_URLS:
            response = server.request(url)
            assert response.status == 404, url
            assert b"manifest-version" not in response.body


def test_manifest_is_served_with_public_manifest(tmp_path: Path, python: str) -> None:
    index = tmp_path / "index"
    manifest = make_mirror(index, V1)
    with ServerProcess(index, "--public-manifest", python=python, script=SERVER_SOURCE) as server:
        for url in MANIFEST_URLS:
            response = server.request(url)
            assert response.status == 200, url
            assert response.body == manifest
            assert response.header("Content-Type") == "application/json"
            assert response.header("Cache-Control") == "public, no-cache"
            etag = response.header("ETag")
            assert etag is not None
            assert server.request(url, {"If-None-Match": etag}).status == 304
            head = server.request(url, method="HEAD")
            assert (head.status, head.body) == (200, b"")
        for url in PRIVATE_URLS:
            assert server.request(url).status == 404, url
        (index / "manifest.json").unlink()
        assert server.request("/manifest.json").status == 404


def test_import_deletes_only_what_the_indexs_manifest_lists(mirrors: Mirrors, python: str) -> None:
    index = imported_v1(mirrors, mirrors.base / "index")
    private = index / "beta" / "beta-0.1-py3-none-any.whl"  # the operator's own, unlisted
    private.write_bytes(b"keep me")
    members = with_info(
        mirrors.delta_members(),
        lambda info: info["removed"].append(str(private.relative_to(index))),
    )
    bundle = write_tar(mirrors.bundles / "removes-unlisted.tar", members)
    before = snapshot(mirrors.base)
    result = run_server(python, "import", bundle, "-i", index)
    line = one_line_error(result, 1)
    assert (
        'removed path "beta/beta-0.1-py3-none-any.whl": the index\'s manifest.json does not '
        "list it" in line
    ), line
    assert snapshot(mirrors.base) == before
    assert private.read_bytes() == b"keep me"
