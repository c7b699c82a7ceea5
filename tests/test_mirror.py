"""End-to-end runs of ``morgan mirror`` against a local upstream, in JSON and HTML-only modes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
import zipfile
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from support import ENVIRONMENTS, GRAPH_REQUIREMENTS, populate_graph, write_config
from upstream import FixtureIndex

from morgan.cli import main
from morgan.mirror import PAGE_WRITERS, Mirrorer
from morgan.sources import METADATA_FIRST_SIZE


def files_in(index: Path, project: str) -> set[str]:
    folder = index / project
    if not folder.is_dir():
        return set()
    return {
        p.name
        for p in folder.iterdir()
        if p.name.endswith((".whl", ".tar.gz", ".zip")) and not p.name.startswith(".")
    }


def mirror(run_morgan, upstream: FixtureIndex, index: Path, requirements: str, **kw):  # type: ignore[no-untyped-def]
    environments = kw.pop("environments", ENVIRONMENTS)
    config = write_config(index / "morgan.ini", environments, requirements)
    extra = kw.pop("args", ())
    return run_morgan(
        "-i",
        str(index),
        "-c",
        str(config),
        "-I",
        upstream.url,
        "mirror",
        "--skip-server-copy",
        *extra,
    )


@pytest.fixture
def graph(upstream: FixtureIndex, tmp_path: Path) -> FixtureIndex:
    populate_graph(upstream, tmp_path / "dists")
    return upstream


def test_graph_is_mirrored_per_environment(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    result = mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS)
    assert result.code == 0, result

    # requires-python splits lib between environments: 3.9 gets 1.0, the rest 2.0
    assert files_in(index, "lib") == {"lib-1.0-py3-none-any.whl", "lib-2.0-py3-none-any.whl"}
    # the [fancy] extra brings extrasdep, whose deepdep[speed] brings speedy, not slowpoke
    assert files_in(index, "extrasdep") and files_in(index, "deepdep")
    assert files_in(index, "speedy") and not files_in(index, "slowpoke")
    # markers: only for Windows, only below 3.10
    assert files_in(index, "winonly") and files_in(index, "oldpy")
    # one wheel per environment, the one its pip prefers, plus the sdist
    assert files_in(index, "native") == {
        "native-1.0-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "native-1.0-cp312-cp312-musllinux_1_1_x86_64.whl",
        "native-1.0-cp311-cp311-win_amd64.whl",
        "native-1.0-cp312-cp312-macosx_11_0_arm64.whl",
        "native-1.0.tar.gz",
    }
    # the cycle ends
    assert files_in(index, "cyc-a") and files_in(index, "cyc-b")
    # yanked skipped, pre-releases only when nothing else exists
    assert files_in(index, "yanky") == {"yanky-1.0-py3-none-any.whl"}
    assert files_in(index, "pre") == {"pre-1.0-py3-none-any.whl"}
    assert files_in(index, "onlypre") == {"onlypre-1.0a1-py3-none-any.whl"}
    # the build requirement of app's sdist
    assert "app-1.0.tar.gz" in files_in(index, "app")
    assert files_in(index, "flit-core")

    assert "native: picked 1.0 for win311: native-1.0-cp311-cp311-win_amd64.whl" in result.out
    assert "0 errors" in result.out


def test_sidecars_and_pages(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "app = [fancy]").code == 0
    folder = index / "app"
    wheel = folder / "app-1.0-py3-none-any.whl"
    sdist = folder / "app-1.0.tar.gz"

    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (folder / "app-1.0-py3-none-any.whl.hash").read_text() == f"sha256={digest}"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("app-1.0.dist-info/METADATA")
    assert (folder / "app-1.0-py3-none-any.whl.metadata").read_bytes() == metadata
    assert not (folder / "app-1.0.tar.gz.metadata").exists()
    assert (folder / "app-1.0.tar.gz.hash").is_file()
    # upload time becomes the mtime
    assert int(sdist.stat().st_mtime) == 1704164645

    page = json.loads((folder / "index.json").read_text())
    assert page["meta"]["api-version"] == "1.1"
    assert page["versions"] == ["1.0"]
    by_name = {f["filename"]: f for f in page["files"]}
    entry = by_name["app-1.0-py3-none-any.whl"]
    assert entry["url"] == "app-1.0-py3-none-any.whl"
    assert entry["hashes"] == {"sha256": digest}
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert entry["size"] == wheel.stat().st_size
    assert entry["upload-time"] == "2024-01-02T03:04:05.000000Z"
    assert by_name["app-1.0.tar.gz"]["core-metadata"] is False

    html = (folder / "index.html").read_text()
    assert f'href="app-1.0-py3-none-any.whl#sha256={digest}"' in html
    assert "data-core-metadata=" in html and "data-dist-info-metadata=" in html
    root = json.loads((index / "index.json").read_text())
    names = {p["name"] for p in root["projects"]}
    assert {"app", "lib", "extrasdep", "deepdep", "speedy", "flit-core"} <= names
    assert '<a href="app/">app</a>' in (index / "index.html").read_text()
    assert not list(index.rglob("*.part"))


def test_lib_requires_python_lands_in_pages(run_morgan, graph: FixtureIndex, tmp_path) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    page = json.loads((index / "lib" / "index.json").read_text())
    facts = {f["filename"]: f["requires-python"] for f in page["files"]}
    assert facts == {"lib-1.0-py3-none-any.whl": None, "lib-2.0-py3-none-any.whl": ">=3.10"}
    assert 'data-requires-python="&gt;=3.10"' in (index / "lib" / "index.html").read_text()


def test_yanked_file_is_mirrored_when_pinned(run_morgan, graph: FixtureIndex, tmp_path) -> None:
    index = tmp_path / "index"
    result = mirror(run_morgan, graph, index, "yanky = ==2.0")
    assert result.code == 0, result
    assert files_in(index, "yanky") == {"yanky-2.0-py3-none-any.whl"}
    page = json.loads((index / "yanky" / "index.json").read_text())
    assert page["files"][0]["yanked"] == "broken build"
    assert 'data-yanked="broken build"' in (index / "yanky" / "index.html").read_text()


def test_prerelease_when_asked(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "pre = >=2.0b1").code == 0
    assert files_in(index, "pre") == {"pre-2.0b1-py3-none-any.whl"}


def test_missing_dependency_is_reported_and_the_rest_mirrored(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "needsghost", "1.0", requires=["ghost>=1", "real"]))
    upstream.add(build_wheel(dists, "real", "1.0"))
    index = tmp_path / "index"
    result = mirror(
        run_morgan,
        upstream,
        index,
        "needsghost =\nreal =",
        environments={
            "linux": ENVIRONMENTS["linux39"],
        },
    )
    assert result.code == 1
    assert "project 'ghost' is not on the index" in result.err
    assert "needsghost 1.0 depends on ghost>=1" in result.err
    assert "Traceback" not in result.err
    assert files_in(index, "real") == {"real-1.0-py3-none-any.whl"}  # through its own line


def test_unknown_top_level_project(run_morgan, upstream: FixtureIndex, tmp_path: Path) -> None:
    result = mirror(run_morgan, upstream, tmp_path / "index", "nope =")
    assert result.code == 1
    assert "project 'nope' is not on the index" in result.err


def test_hash_mismatch_is_discarded(run_morgan, upstream: FixtureIndex, tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "tampered", "1.0"), wrong_hash=True, metadata=False)
    upstream.add(build_wheel(dists, "fine", "1.0"))
    index = tmp_path / "index"
    result = mirror(run_morgan, upstream, index, "tampered =\nfine =")
    assert result.code == 1
    assert "tampered-1.0-py3-none-any.whl: sha256 is" in result.err
    assert "the file was discarded" in result.err
    assert files_in(index, "tampered") == set()
    assert not list(index.rglob("*.part"))
    assert files_in(index, "fine") == {"fine-1.0-py3-none-any.whl"}
    assert (
        not (index / "tampered" / "index.html").exists()
        or "tampered-1.0" not in (index / "tampered" / "index.html").read_text()
    )


def test_sdist_only_project_reads_requires_txt_and_build_requirements(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    requires_txt = (
        "base-dep>=1\n\n[feature]\nfeat-dep\n\n[unused]\nunused-dep\n\n"
        '[:sys_platform == "win32"]\nwin-dep\n'
    )
    upstream.add(
        build_sdist(
            dists,
            "sdistonly",
            "1.0",
            requires_txt=requires_txt,
            setup_requires_txt="setup-helper\n",
            pyproject='[build-system]\nrequires = ["buildtool>=1"]\n'
            'build-backend = "buildtool.api"\n',
        )
    )
    for name in ("base-dep", "feat-dep", "unused-dep", "win-dep", "buildtool", "setup-helper"):
        upstream.add(build_wheel(dists, name, "1.0"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux39"], "win": ENVIRONMENTS["win311"]}
    result = mirror(run_morgan, upstream, index, "sdistonly = [feature]", environments=environments)
    assert result.code == 0, result
    for present in ("sdistonly", "base-dep", "feat-dep", "win-dep", "buildtool", "setup-helper"):
        assert files_in(index, present), present
    assert not files_in(index, "unused-dep")


def test_windows_marker_dependency_only_for_windows(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    assert mirror(run_morgan, graph, index, "app =", environments=environments).code == 0
    assert not files_in(index, "winonly")
    assert not files_in(index, "oldpy")
    assert not files_in(index, "extrasdep")


def test_rerun_reuses_files_and_writes_nothing(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "app = [fancy]").code == 0

    def stamps() -> dict[Path, int]:
        return {
            p: p.stat().st_mtime_ns
            for p in index.rglob("*")
            if p.is_file() and p.name != "morgan.ini"
        }

    before = stamps()
    second = mirror(run_morgan, graph, index, "app = [fancy]")
    assert second.code == 0
    assert " 0 downloaded" in second.out
    assert stamps() == before


def test_all_versions_and_all_wheels(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(
        run_morgan,
        graph,
        index,
        "pre = >=1.0\nnative =",
        environments=environments,
        args=("--mirror-all-versions", "--mirror-all-wheels"),
    )
    assert result.code == 0, result
    assert files_in(index, "pre") == {"pre-1.0-py3-none-any.whl"}  # 2.0b1 is a pre-release
    assert files_in(index, "native") == {
        "native-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        "native-1.0.tar.gz",
    }


def test_missing_extra_is_a_warning(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(run_morgan, graph, index, "lib = [turbo]", environments=environments)
    assert result.code == 0
    assert "lib 2.0 has no extra 'turbo'" in result.err


def test_package_type_regex_limits_files(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(
        run_morgan,
        graph,
        index,
        "native =",
        environments=environments,
        args=("--package-type-regex", "whl"),
    )
    assert result.code == 0
    assert files_in(index, "native") == {"native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"}


MORGAN_EXAMPLE = """\
[env.legacy]
python_version = 3.9
python_full_version = 3.9.9
os_name = posix
platform_tag = linux-x86_64
sys_platform = linux
platform_machine = i686
platform_python_implementation = CPython
platform_system = Linux
implementation_name = cpython

[env.edge]
os_name = posix
platform_tag = linux-x86_64
sys_platform = linux
platform_machine = x86_64
platform_python_implementation = CPython
platform_system = Linux
python_version = 3.12
python_full_version = 3.12.7
implementation_name = cpython

[env.windows]
os_name = nt
platform_tag = win_amd64
sys_platform = win32
platform_machine = AMD64
platform_python_implementation = CPython
platform_system = Windows
python_version = 3.12
python_full_version = 3.12.7
implementation_name = cpython

[requirements]
requests = >=2.24.0
protobuf = ==3.20.1
redis = >4.1.0,<4.2.1
xonsh = [full]~=0.11.0
"""


def test_morgans_own_example_config(run_morgan, upstream: FixtureIndex, tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    for version in ("2.23.0", "2.26.0"):
        upstream.add(build_wheel(dists, "requests", version, requires=["idna>=2"]))
    upstream.add(build_wheel(dists, "idna", "3.4"))
    for tags in (
        "cp39-cp39-manylinux_2_5_x86_64.manylinux1_x86_64",
        "cp312-cp312-win_amd64",
        "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
        "py2.py3-none-any",
    ):
        upstream.add(build_wheel(dists, "protobuf", "3.20.1", tags=tags))
    for version in ("4.1.0", "4.2.0", "4.2.1"):
        upstream.add(build_wheel(dists, "redis", version))
    upstream.add(
        build_wheel(
            dists, "xonsh", "0.11.0", requires=['prompt-toolkit; extra == "full"'], extras=["full"]
        )
    )
    upstream.add(build_wheel(dists, "prompt-toolkit", "3.0.0"))
    index = tmp_path / "index"
    index.mkdir()
    (index / "morgan.ini").write_text(MORGAN_EXAMPLE)
    # Morgan's own invocation: options before the command, config found in the index
    result = run_morgan("--index-path", str(index), "--index-url", upstream.url, "mirror")
    assert result.code == 0, result
    assert files_in(index, "requests") == {"requests-2.26.0-py3-none-any.whl"}
    assert files_in(index, "redis") == {"redis-4.2.0-py3-none-any.whl"}
    assert files_in(index, "prompt-toolkit")
    assert files_in(index, "protobuf") == {
        # legacy: platform_tag says x86_64 but platform_machine = i686 wins (the client's
        # pip sees i686, with a warning); there is no i686 wheel, so the pure one
        "protobuf-3.20.1-py2.py3-none-any.whl",
        "protobuf-3.20.1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "protobuf-3.20.1-cp312-cp312-win_amd64.whl",
    }
    assert (index / "server.py").is_file()


def test_options_after_the_command(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    config = write_config(tmp_path / "elsewhere.ini", {"l": ENVIRONMENTS["linux312"]}, "lib =")
    result = run_morgan(
        "mirror", "-i", str(index), "-c", str(config), "-I", graph.url, "--skip-server-copy"
    )
    assert result.code == 0, result
    assert files_in(index, "lib") == {"lib-2.0-py3-none-any.whl"}
    assert not (index / "server.py").exists()


def test_copy_server_command(run_morgan, tmp_path: Path) -> None:
    result = run_morgan("copy_server", "-i", str(tmp_path))
    assert result.code == 0
    copied = (tmp_path / "server.py").read_bytes()
    assert copied == (Path(__file__).parents[1] / "morgan" / "server.py").read_bytes()


def test_every_bad_requirement_is_one_line_and_the_rest_is_done(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    """A nonexistent project, an impossible specifier, a missing extra, an environment
    no file fits: each is named once, and every good requirement is still mirrored."""
    graph.add(build_wheel(tmp_path / "dists", "winwheel", "1.0", tags="cp311-cp311-win_amd64"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"], "win": ENVIRONMENTS["win311"]}
    requirements = "ghost =\nlib = >=2,<1\nspeedy = [turbo]\nwinwheel =\ncyc-a =\n"
    result = mirror(run_morgan, graph, index, requirements, environments=environments)
    assert result.code == 1
    problems = result.err.strip().splitlines()
    # one line each; a failure met in both environments names both, once
    assert len(problems) == 4, result.err
    assert any(
        line.startswith("error: linux, win: 'ghost' cannot be installed: ")
        and "project 'ghost' is not on the index" in line
        for line in problems
    )
    assert any(
        line.startswith("error: linux, win: 'lib<1,>=2' cannot be installed: ")
        and "no version matches <1,>=2 (newest is 2.0)" in line
        for line in problems
    )
    assert any("speedy 1.0 has no extra 'turbo'" in line for line in problems)
    assert any(
        line.startswith("error: linux: 'winwheel' cannot be installed: ")
        and "no wheel with a supported tag" in line
        for line in problems
    )
    assert "Traceback" not in result.err
    assert "3 errors, 1 warnings:" in result.out
    # the summary repeats them sorted, whatever order the work finished in
    recap = result.out.split("3 errors, 1 warnings:\n", 1)[1].splitlines()
    assert len(recap) == 4
    assert recap[:3] == sorted(recap[:3]) and all(
        line.startswith("  error: ") for line in recap[:3]
    )
    assert recap[3] == "  warning: speedy 1.0 has no extra 'turbo'"
    # the good ones are all there
    assert files_in(index, "speedy") == {"speedy-1.0-py3-none-any.whl"}
    assert files_in(index, "winwheel") == {"winwheel-1.0-cp311-cp311-win_amd64.whl"}
    assert files_in(index, "cyc-a") and files_in(index, "cyc-b")


def test_large_wheels_are_resolved_from_pep658_metadata_small_ones_from_the_file(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    blob = random.Random(3).randbytes(1536 * 1024)  # incompressible: a 1.5 MiB wheel
    upstream.add(build_wheel(dists, "large", "1.0", requires=["small"], extra_members={"b": blob}))
    upstream.add(build_wheel(dists, "small", "1.0"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    assert mirror(run_morgan, upstream, index, "large =", environments=environments).code == 0
    fetched = sorted(path for path in upstream.requests if path.endswith(".metadata"))
    if upstream.mode == "json":  # sizes known: only the large wheel's metadata comes first
        assert fetched == ["/files/large-1.0-py3-none-any.whl.metadata"]
    else:  # HTML gives no sizes, so every wheel with metadata has it fetched first
        assert fetched == [
            "/files/large-1.0-py3-none-any.whl.metadata",
            "/files/small-1.0-py3-none-any.whl.metadata",
        ]
    assert files_in(index, "small") == {"small-1.0-py3-none-any.whl"}
    # the second run reads both from the tree: pages only
    upstream.requests.clear()
    assert mirror(run_morgan, upstream, index, "large =", environments=environments).code == 0
    assert all(path.startswith("/simple/") for path in upstream.requests)


def test_a_verified_but_unreadable_distribution_is_not_kept(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    """A zip bomb (METADATA inflating to 64 MiB) matches its hash but is refused and removed."""
    dists = tmp_path / "dists"
    bomb = build_wheel(dists, "bomb", "1.0", metadata="Metadata-Version: 2.1\n" + " " * (64 << 20))
    upstream.add(bomb, metadata=False)
    upstream.add(build_wheel(dists, "fine", "1.0"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(run_morgan, upstream, index, "bomb =\nfine =", environments=environments)
    assert result.code == 1
    assert bomb.stat().st_size < 1 << 20  # tiny on the wire
    # refused as pip would refuse it; with no other version, 'bomb' cannot be installed
    assert "error: linux: 'bomb' cannot be installed: " in result.err
    assert f"bomb 1.0 was skipped ({bomb.name}: " in result.err and "Traceback" not in result.err
    assert not list(index.glob("bomb/bomb-*"))
    assert files_in(index, "fine") == {"fine-1.0-py3-none-any.whl"}
    listed = json.loads((index / "index.json").read_text())["projects"]
    assert {"name": "bomb"} not in listed


def test_a_very_deep_chain_is_walked_without_recursion(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    """400 projects each needing the next: cold, then warm (where the files are in the tree)."""
    dists = tmp_path / "dists"
    for number in range(400):
        requires = [f"link{number + 1}"] if number < 399 else []
        upstream.add(build_wheel(dists, f"link{number}", "1.0", requires=requires))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    for _ in range(2):
        result = mirror(run_morgan, upstream, index, "link0 =", environments=environments)
        assert result.code == 0, result.err
        assert "mirrored 400 projects, 400 files" in result.out


def test_unchanged_files_are_trusted_and_verify_rehashes_them(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path / "dists", "demo", "1.0")
    upstream.add(wheel)
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    assert mirror(run_morgan, upstream, index, "demo =", environments=environments).code == 0
    path = index / "demo" / wheel.name
    before = path.stat()
    # same size, same mtime, other bytes: only a full re-hash can tell
    path.write_bytes(b"\0" * before.st_size)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    trusted = mirror(run_morgan, upstream, index, "demo =", environments=environments)
    assert (
        trusted.code == 0 and "0 downloaded" in trusted.out and "1 already present" in trusted.out
    )
    assert path.read_bytes() == b"\0" * before.st_size  # not read, so not noticed

    verified = mirror(
        run_morgan, upstream, index, "demo =", environments=environments, args=["--verify"]
    )
    assert verified.code == 0, verified
    assert "1 downloaded" in verified.out
    assert "content differs from its .hash sidecar" in verified.err
    assert path.read_bytes() == wheel.read_bytes()

    # a file whose mtime changed (as any write changes it) is re-hashed without being asked
    path.write_bytes(b"\1" * before.st_size)
    again = mirror(run_morgan, upstream, index, "demo =", environments=environments)
    assert again.code == 0 and "1 downloaded" in again.out
    assert path.read_bytes() == wheel.read_bytes()


def test_a_known_page_that_fails_counts_only_if_still_needed(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    """Re-runs fetch every known page at once; one nobody needs any more may fail quietly."""
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "keep", "1.0"))
    upstream.add(build_wheel(dists, "gone", "1.0"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    assert (
        mirror(run_morgan, upstream, index, "keep =\ngone =", environments=environments).code == 0
    )
    del upstream.projects["gone"]  # the index drops it: its page is now a 404

    upstream.requests.clear()
    result = mirror(run_morgan, upstream, index, "keep =", environments=environments)
    assert result.code == 0, result
    assert "/simple/gone/" in upstream.requests  # asked, as a known project
    assert "gone" not in result.err

    result = mirror(run_morgan, upstream, index, "keep =\ngone =", environments=environments)
    assert result.code == 1
    assert result.err.count("project 'gone' is not on the index") == 1


def test_a_version_tried_and_left_is_not_kept_and_not_read_again(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    """app 2.0 needs a project the index lacks: the resolver reads it, backtracks to 1.0,
    and the tree holds only what a resolution picked. Its dependencies stay in the
    project's state, so the re-run neither downloads nor asks for its metadata."""
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "app", "2.0", requires=["ghost"]))
    upstream.add(build_wheel(dists, "app", "1.0"))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(run_morgan, upstream, index, "app =", environments=environments)
    assert result.code == 0, result
    assert files_in(index, "app") == {"app-1.0-py3-none-any.whl"}
    listed = json.loads((index / "app" / "index.json").read_text())["files"]
    assert [f["filename"] for f in listed] == ["app-1.0-py3-none-any.whl"]
    assert not list((index / "app").glob("app-2.0*"))

    upstream.requests.clear()
    again = mirror(run_morgan, upstream, index, "app =", environments=environments)
    assert again.code == 0, again
    assert not [r for r in upstream.requests if "app-2.0" in r]
    assert files_in(index, "app") == {"app-1.0-py3-none-any.whl"}


def test_versions_backtracking_looks_ahead_at_are_read_from_metadata_not_downloaded(
    run_morgan, upstream: FixtureIndex, tmp_path: Path
) -> None:
    """x 2.0 to 1.8 need z>=2, y needs z<2: together, resolvelib backjumps over x and the
    provider looks ahead at x 1.9, 1.8 and 1.7. Those are small wheels, which are
    otherwise read by downloading them; most such versions are left again, so their PEP
    658 metadata is read instead, and only the versions picked are downloaded (x 2.0 for
    the line alone, 1.7 for both lines)."""
    dists = tmp_path / "dists"
    for version in ("2.0", "1.9", "1.8"):
        upstream.add(build_wheel(dists, "x", version, requires=["z>=2"]))
    upstream.add(build_wheel(dists, "x", "1.7"))
    upstream.add(build_wheel(dists, "y", "1.0", requires=["z<2"]))
    for version in ("2.0", "1.0"):
        upstream.add(build_wheel(dists, "z", version))
    index = tmp_path / "index"
    environments = {"linux": ENVIRONMENTS["linux312"]}
    result = mirror(run_morgan, upstream, index, "x =\ny =", environments=environments)
    assert result.code == 0, result
    assert files_in(index, "x") == {"x-2.0-py3-none-any.whl", "x-1.7-py3-none-any.whl"}
    assert files_in(index, "z") == {"z-1.0-py3-none-any.whl", "z-2.0-py3-none-any.whl"}
    asked = [path.rsplit("/", 1)[-1] for path in upstream.requests]
    for left in ("x-1.9-py3-none-any.whl", "x-1.8-py3-none-any.whl"):
        assert f"{left}.metadata" in asked
        assert left not in asked
    assert "x-1.7-py3-none-any.whl" in asked


def test_pages_of_projects_whose_files_are_in_are_written_while_others_download(
    upstream: FixtureIndex, tmp_path: Path
) -> None:
    # Once resolution is done, a project whose chosen files are all in gets its pages
    # at once, while another project's download goes on; nothing unfinished is listed.
    dists = tmp_path / "dists"
    upstream.add(build_wheel(dists, "quick", "1.0"))
    # large enough that its dependencies come from its PEP 658 metadata, not the wheel
    bulk = {"slow/data.bin": random.Random(1).randbytes(METADATA_FIRST_SIZE + 1)}
    slow = build_wheel(dists, "slow", "1.0", extra_members=bulk)
    upstream.add(slow)
    release = threading.Event()
    upstream.held[f"/files/{slow.name}"] = release
    index = tmp_path / "index"
    config = write_config(tmp_path / "morgan.ini", ENVIRONMENTS, "quick =\nslow =\n")
    args = ["-i", str(index), "-c", str(config), "-I", upstream.url, "mirror", "--skip-server-copy"]
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(main(args)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not (index / "quick" / "index.json").is_file():
            assert time.monotonic() < deadline, "quick's pages were not written before slow's file"
            time.sleep(0.02)
        assert not (index / "slow" / "index.json").exists()
        assert not (index / "slow" / slow.name).exists()
    finally:
        release.set()
        runner.join(60)
    assert outcome == [0]
    page = json.loads((index / "slow" / "index.json").read_text())
    assert [f["filename"] for f in page["files"]] == [slow.name]


def test_pages_are_written_by_a_few_threads_of_their_own(
    upstream: FixtureIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each page write is a handful of small system calls, each a turn of the interpreter
    # lock: on the network pool's thirty-odd threads they took a third longer.
    dists = tmp_path / "dists"
    names = [f"project-{n}" for n in range(12)]
    for name in names:
        upstream.add(build_wheel(dists, name, "1.0"))
    writers: list[str] = []
    write_project = Mirrorer._write_project

    def recording(self: Mirrorer, source: object, name: str) -> None:
        writers.append(threading.current_thread().name)
        write_project(self, source, name)  # type: ignore[arg-type]

    monkeypatch.setattr(Mirrorer, "_write_project", recording)
    index = tmp_path / "index"
    config = write_config(tmp_path / "morgan.ini", ENVIRONMENTS, "".join(f"{n} =\n" for n in names))
    args = ["-i", str(index), "-c", str(config), "-I", upstream.url, "mirror", "--skip-server-copy"]
    assert main(args) == 0
    assert len(writers) == len(names)
    assert all(name.startswith("morgan-pages") for name in writers)
    assert len(set(writers)) <= PAGE_WRITERS
    for name in names:
        assert (index / name / "index.json").is_file()
