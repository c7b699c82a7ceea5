"""The mirrorer's side of the air-gap transfer: manifest, why, dry run, prune, export."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

import pytest
from builders import build_wheel
from support import ENVIRONMENTS, GRAPH_REQUIREMENTS, populate_graph, write_config
from upstream import Faults, FixtureIndex

ENVS = {name: ENVIRONMENTS[name] for name in ("linux312", "win311")}


def mirror(run_morgan, upstream: FixtureIndex, index: Path, requirements: str, *args: str):  # type: ignore[no-untyped-def]
    config = write_config(index / "morgan.ini", ENVS, requirements)
    return run_morgan(
        "-i", str(index), "-c", str(config), "-I", upstream.url, "mirror", "--skip-server-copy",
        *args,
    )  # fmt: skip


def listing(index: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``index``, hidden ones too: (size, mtime_ns)."""
    found = {}
    for path in sorted(index.rglob("*")):
        status = path.lstat()
        found[str(path.relative_to(index))] = (status.st_size, status.st_mtime_ns)
    return found


def served_files(index: Path) -> dict[str, bytes]:
    """What a client can be served: every file but hidden ones, the manifest and config."""
    return {
        str(path.relative_to(index)): path.read_bytes()
        for path in sorted(index.rglob("*"))
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(index).parts)
        and path.name not in ("manifest.json", "morgan.ini")
    }


def config_line(index: Path, text: str) -> int:
    lines = (index / "morgan.ini").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(text))


@pytest.fixture
def graph(upstream: FixtureIndex, tmp_path: Path) -> FixtureIndex:
    populate_graph(upstream, tmp_path / "dists")
    return upstream


# -- the manifest ----------------------------------------------------------------------


def test_the_manifest_lists_every_file_with_its_digest_and_why(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    document = json.loads((index / "manifest.json").read_bytes())
    assert document["manifest-version"] == 1
    assert document["environments"] == ["linux312", "win311"]
    config = (index / "morgan.ini").read_bytes()
    assert document["config-sha256"] == hashlib.sha256(config).hexdigest()
    listed = {**document["files"], **document["index-files"]}
    assert set(listed) == set(served_files(index))  # everything served, nothing else
    for path, data in served_files(index).items():
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
        assert listed[path]["size"] == len(data), path
    files = document["files"]
    assert all(path.endswith((".whl", ".tar.gz")) for path in files)
    assert "app/index.json" in document["index-files"]
    assert "lib/lib-2.0-py3-none-any.whl.metadata" in document["index-files"]

    app = files["app/app-1.0-py3-none-any.whl"]
    assert (app["project"], app["version"]) == ("app", "1.0")
    assert app["environments"] == ["linux312", "win311"]
    line = config_line(index, "app")
    assert {
        "environment": "linux312",
        "reason": "requirement",
        "requirement": "app[fancy]",
        "line": line,
    } in app["why"]
    speedy = files["speedy/speedy-1.0-py3-none-any.whl"]
    assert {
        "environment": "win311",
        "reason": "dependency",
        "of": "deepdep 1.0",
        "requirement": "speedy",
    } in speedy["why"]
    # a marker keeps winonly out of the Linux environment
    assert files["winonly/winonly-1.0-py3-none-any.whl"]["environments"] == ["win311"]
    flit = files["flit-core/flit_core-3.9.0-py3-none-any.whl"]
    assert {
        "environment": "linux312",
        "reason": "build",
        "of": "app/app-1.0.tar.gz",
        "requirement": "flit-core>=3",
    } in flit["why"]


def test_a_warm_run_leaves_the_manifest_as_it_was(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    before = (index / "manifest.json").stat().st_mtime_ns
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    assert (index / "manifest.json").stat().st_mtime_ns == before


def test_a_file_no_longer_needed_stays_listed_without_a_reason(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    assert mirror(run_morgan, graph, index, "app =").code == 0
    files = json.loads((index / "manifest.json").read_bytes())["files"]
    yanky = files["yanky/yanky-1.0-py3-none-any.whl"]
    assert (yanky["environments"], yanky["why"]) == ([], [])
    assert files["app/app-1.0-py3-none-any.whl"]["why"]


# -- why --------------------------------------------------------------------------------


def test_why_names_the_chains_of_a_dependency_and_of_a_build_requirement(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    line = config_line(index, "app")
    said = run_morgan("-i", str(index), "why", "Speedy")
    assert said.code == 0, said
    chain = f"speedy 1.0 <- deepdep 1.0 <- extrasdep 1.0 <- app 1.0 <- morgan.ini line {line}"
    assert said.out.splitlines() == [
        "linux312:",
        f"  {chain} (app[fancy])",
        "win311:",
        f"  {chain} (app[fancy])",
    ]
    said = run_morgan("why", "flit_core", "-i", str(index))  # options after the command too
    assert said.code == 0, said
    assert (
        f"  flit-core 3.9.0 <- building app-1.0.tar.gz <- app 1.0 <- morgan.ini line {line} "
        "(app[fancy])" in said.out.splitlines()
    )
    assert "building native-1.0.tar.gz <- native 1.0" in said.out


def test_why_says_when_a_project_is_not_in_the_mirror(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    said = run_morgan("-i", str(index), "why", "speedy")
    assert said.code == 1
    assert "no manifest here; run `morgan mirror`" in said.err
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    said = run_morgan("-i", str(index), "why", "requests")
    assert (said.code, said.out) == (1, "")
    assert said.err.strip() == "morgan: requests is not in the mirror (see manifest.json)"
    (index / "manifest.json").write_text("{not json")
    said = run_morgan("-i", str(index), "why", "speedy")
    assert said.code == 1 and "not valid JSON" in said.err and "Traceback" not in said.err


# -- dry run ----------------------------------------------------------------------------

TOTAL = re.compile(r"in all: \d+ projects; add (\d+) files \(([^)]*)\)")
DOWNLOADED = re.compile(r"(\d+) downloaded \(([^)]*)\)")


def test_a_dry_run_writes_nothing_and_says_what_the_run_then_downloads(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    before = listing(index)
    dry = mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS, "--dry-run")
    assert dry.code == 0, dry
    after = listing(index)
    del before["morgan.ini"], after["morgan.ini"]  # rewritten by the test, not the run
    assert after == before
    assert f"dry run: nothing written to {index}" in dry.out
    # the sdists' build requirements are only in the archives: read, then thrown away
    assert "metadata read from the file (downloaded, then discarded): app-1.0.tar.gz" in dry.out
    if graph.mode == "json":  # the wheels' PEP 658 metadata is announced: no wheel is fetched
        said = [line.split(": ")[1] for line in dry.out.splitlines() if "then discarded" in line]
        assert [text.split(" (")[0] for text in said] == ["app-1.0.tar.gz", "native-1.0.tar.gz"]
    predicted = TOTAL.search(dry.out)
    assert predicted, dry.out
    real = mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS)
    assert real.code == 0, real
    done = DOWNLOADED.search(real.out)
    assert done, real.out
    assert predicted.group(1) == done.group(1)
    if graph.mode == "json":  # HTML pages do not give sizes
        assert predicted.group(2) == done.group(2)
    else:
        assert "of unknown size" in predicted.group(2)
    assert "keep 3 files" in dry.out  # lib 2.0, cyc-a, cyc-b


def test_a_dry_run_names_what_is_no_longer_needed(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    dry = mirror(run_morgan, graph, index, "lib =", "--dry-run")
    assert dry.code == 0, dry
    assert "add 0 files" in dry.out
    assert "no longer needed: 2 files" in dry.out  # cyc-a and cyc-b


def test_a_dry_run_of_a_new_index_creates_nothing(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "morgan.ini", ENVS, "lib =")
    index = tmp_path / "index"
    said = run_morgan(
        "-i", str(index), "-c", str(config), "-I", graph.url, "mirror", "--dry-run"
    )  # fmt: skip
    assert said.code == 0, said
    assert not index.exists()
    assert "in all: 1 projects; add 1 files" in said.out  # lib 2.0 (1.0 is for Python 3.9)


def test_a_dry_run_fails_as_the_run_would(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    said = mirror(run_morgan, graph, index, "lib >= 9", "--dry-run")
    assert said.code == 1
    assert "error:" in said.out
    assert set(listing(index)) == {"morgan.ini"}


# -- prune ------------------------------------------------------------------------------


def test_prune_leaves_the_tree_a_fresh_mirror_would_have(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    smaller = GRAPH_REQUIREMENTS.replace("native =", "").replace("cyc-a =", "")
    said = run_morgan("-i", str(index), "prune")
    assert (said.code, said.out) == (0, "removed 0 files no longer needed (0 B)\n")
    assert mirror(run_morgan, graph, index, smaller).code == 0
    before = listing(index)
    dry = run_morgan("-i", str(index), "prune", "--dry-run")
    assert dry.code == 0, dry
    assert listing(index) == before
    named = sorted(line.split()[0] for line in dry.out.splitlines() if line.startswith("  "))
    assert named == sorted(
        [
            "cyc-a/cyc_a-1.0-py3-none-any.whl",
            "cyc-b/cyc_b-1.0-py3-none-any.whl",
            "native/native-1.0-cp311-cp311-win_amd64.whl",
            "native/native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
            "native/native-1.0.tar.gz",
        ]
    )
    assert dry.out.splitlines()[-1].startswith("would remove 5 files no longer needed")
    pruned = run_morgan("prune", "-i", str(index))
    assert pruned.code == 0, pruned
    assert not (index / "native").exists() and not (index / "cyc-a").exists()

    fresh = tmp_path / "fresh"
    assert mirror(run_morgan, graph, fresh, smaller).code == 0
    assert served_files(index) == served_files(fresh)
    assert (index / "manifest.json").read_bytes() == (fresh / "manifest.json").read_bytes()
    assert run_morgan("-i", str(index), "verify").code == 0


def test_prune_waits_for_a_mirror_of_the_changed_config(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    write_config(index / "morgan.ini", ENVS, "lib =")
    before = listing(index)
    said = run_morgan("-i", str(index), "prune")
    assert said.code == 2
    assert "run `morgan mirror` first, then prune" in said.err
    assert listing(index) == before


def test_prune_never_removes_a_path_out_of_the_tree(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    outside = tmp_path / "precious-1.0-py3-none-any.whl"
    outside.write_bytes(b"keep me")
    document = json.loads((index / "manifest.json").read_bytes())
    document["files"]["../precious-1.0-py3-none-any.whl"] = {
        "sha256": "0" * 64, "size": 7, "project": "precious", "version": "1.0",
        "environments": [], "why": [],
    }  # fmt: skip
    (index / "manifest.json").write_text(json.dumps(document))
    before = listing(index)
    said = run_morgan("-i", str(index), "prune")
    assert said.code == 1
    assert 'holds ".."' in said.err and said.err.count("\n") == 1
    assert outside.read_bytes() == b"keep me"
    assert listing(index) == before


def test_prune_checks_every_path_before_it_removes_any(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    assert mirror(run_morgan, graph, index, "lib =").code == 0  # cyc-a, cyc-b: unneeded
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "zz-1.0-py3-none-any.whl").write_bytes(b"keep me")
    (index / "zz").symlink_to(elsewhere)  # sorts after cyc-a: checked first all the same
    document = json.loads((index / "manifest.json").read_bytes())
    document["files"]["zz/zz-1.0-py3-none-any.whl"] = {
        "sha256": hashlib.sha256(b"keep me").hexdigest(), "size": 7, "project": "zz",
        "version": "1.0", "environments": [], "why": [],
    }  # fmt: skip
    (index / "manifest.json").write_text(json.dumps(document))
    before = listing(index)
    said = run_morgan("-i", str(index), "prune")
    assert said.code == 2, said
    assert "zz is not a folder of the tree" in said.err
    assert listing(index) == before
    assert (elsewhere / "zz-1.0-py3-none-any.whl").read_bytes() == b"keep me"


def test_prune_waits_for_a_run_without_errors(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    graph.faults = Faults(always={"/simple/cyc-a/": "503"})
    failed = mirror(run_morgan, graph, index, "lib =\ncyc-a =", "--timeout", "0.5")
    assert failed.code == 1, failed
    before = listing(index)
    said = run_morgan("-i", str(index), "prune")
    assert said.code == 2
    assert "written by a run that ended with errors" in said.err
    assert listing(index) == before


# -- export -----------------------------------------------------------------------------


def bundle_members(path: Path) -> tuple[dict[str, object], list[str]]:
    with tarfile.open(path) as tar:
        names = tar.getnames()
        header = tar.extractfile(names[0])
        assert header is not None
        return json.loads(header.read()), names


def test_export_is_deterministic_and_complete(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, GRAPH_REQUIREMENTS).code == 0
    first, second = tmp_path / "one.tar", tmp_path / "two.tar"
    said = run_morgan("-i", str(index), "export", "-o", str(first))
    assert said.code == 0, said
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in said.out and f"size {first.stat().st_size} bytes" in said.out
    assert run_morgan("export", "-i", str(index), "--output", str(second)).code == 0
    assert first.read_bytes() == second.read_bytes()

    document, names = bundle_members(first)
    assert names[0] == "morgan-bundle.json" and names[-1] == "manifest.json"
    assert document["base"] is None and document["removed"] == []
    members = document["members"]
    assert isinstance(members, list)
    assert [m["path"] for m in members] == names[1:]
    assert set(names[1:-1]) == set(served_files(index))
    assert (
        document["manifest"] == hashlib.sha256((index / "manifest.json").read_bytes()).hexdigest()
    )
    with tarfile.open(first) as tar:
        for member in tar.getmembers():
            assert member.isreg() and (member.uid, member.gid, member.mode) == (0, 0, 0o644)
    # distributions first, pages and sidecars next, root files, the manifest last
    kinds = [0 if n.endswith((".whl", ".tar.gz")) else 1 if "/" in n else 2 for n in names[1:-1]]
    assert kinds == sorted(kinds)


def test_export_since_carries_only_what_changed(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    old = tmp_path / "old-manifest.json"
    old.write_bytes((index / "manifest.json").read_bytes())
    graph.add(build_wheel(tmp_path / "dists", "newproj", "1.0"))
    assert mirror(run_morgan, graph, index, "lib =\nnewproj =").code == 0
    bundle = tmp_path / "delta.tar"
    said = run_morgan("-i", str(index), "export", "--since", str(old), "-o", str(bundle))
    assert said.code == 0, said
    document, names = bundle_members(bundle)
    assert document["base"] == hashlib.sha256(old.read_bytes()).hexdigest()
    assert names[1:] == [
        "newproj/newproj-1.0-py3-none-any.whl",
        "newproj/index.html",
        "newproj/index.json",
        "newproj/newproj-1.0-py3-none-any.whl.hash",
        "newproj/newproj-1.0-py3-none-any.whl.metadata",
        "index.html",
        "index.json",
        "pylock.linux312.toml",
        "pylock.win311.toml",
        "manifest.json",
    ]
    assert document["removed"] == []


def test_export_refuses_a_tree_that_differs_from_its_manifest(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    wheel = index / "lib" / "lib-2.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF
    wheel.write_bytes(bytes(data))
    bundle = tmp_path / "out" / "bundle.tar"
    said = run_morgan("-i", str(index), "export", "-o", str(bundle))
    assert said.code == 1
    assert said.err.strip() == (
        "morgan: lib/lib-2.0-py3-none-any.whl: its bytes differ from manifest.json; "
        "run `morgan verify`"
    )
    assert not bundle.exists() and list(bundle.parent.iterdir()) == []


def test_export_never_reads_through_a_link(run_morgan, graph: FixtureIndex, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    secret = tmp_path / "elsewhere" / "zz-1.0-py3-none-any.whl"
    secret.parent.mkdir()
    secret.write_bytes(b"secret")
    (index / "zz").symlink_to(secret.parent)
    document = json.loads((index / "manifest.json").read_bytes())
    document["files"]["zz/zz-1.0-py3-none-any.whl"] = {
        "sha256": hashlib.sha256(b"secret").hexdigest(), "size": 6, "project": "zz",
        "version": "1.0", "environments": [], "why": [],
    }  # fmt: skip
    (index / "manifest.json").write_text(json.dumps(document))
    bundle = tmp_path / "out.tar"
    said = run_morgan("-i", str(index), "export", "-o", str(bundle))
    assert said.code == 1
    assert "zz/zz-1.0-py3-none-any.whl: its folder is not a folder of the tree" in said.err
    assert not bundle.exists()


def test_a_dry_run_hashes_a_file_changed_since_it_was_verified(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    wheel = index / "lib" / "lib-2.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[50] ^= 0xFF
    wheel.write_bytes(bytes(data))  # same size, other bytes
    dry = mirror(run_morgan, graph, index, "lib =", "--dry-run")
    assert "in all: 1 projects; add 1 files" in dry.out, dry.out
    real = mirror(run_morgan, graph, index, "lib =")
    assert "1 downloaded" in real.out, real.out


def test_export_refuses_to_write_into_the_index(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    said = run_morgan("-i", str(index), "export", "-o", str(index / "lib" / "b.tar"))
    assert said.code == 2 and "outside the index" in said.err
    said = run_morgan("-i", str(index), "export")
    assert said.code == 2 and "export needs -o BUNDLE.tar" in said.err


def test_the_bundle_manifest_digests_match_the_members(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "app =").code == 0
    bundle = tmp_path / "b.tar"
    assert run_morgan("-i", str(index), "export", "-o", str(bundle)).code == 0
    document, _ = bundle_members(bundle)
    with tarfile.open(bundle) as tar:
        for member in document["members"]:  # type: ignore[attr-defined]
            stream = tar.extractfile(member["path"])
            assert stream is not None
            data = stream.read()
            assert len(data) == member["size"]
            assert hashlib.sha256(data).hexdigest() == member["sha256"]


# -- verify -----------------------------------------------------------------------------


def test_verify_names_a_flipped_byte_a_missing_file_and_an_extra_one(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "app = [fancy]").code == 0
    assert run_morgan("-i", str(index), "verify").code == 0
    wheel = index / "lib" / "lib-2.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[10] ^= 0x01
    wheel.write_bytes(bytes(data))
    (index / "speedy" / "speedy-1.0-py3-none-any.whl").unlink()
    (index / "speedy" / "notes.txt").write_text("dropped here")
    said = run_morgan("verify", "-i", str(index))
    assert said.code == 1
    problems = [line for line in said.out.splitlines() if ": " in line and "verified" not in line]
    assert problems == [  # sorted by path
        "corrupt: lib/lib-2.0-py3-none-any.whl (sha256 differs from the manifest)",
        "unlisted: speedy/notes.txt",
        "missing: speedy/speedy-1.0-py3-none-any.whl",
    ]
    assert wheel.exists()  # verify never deletes


def test_a_warm_run_lists_a_server_copied_since(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =").code == 0
    assert "server.py" not in json.loads((index / "manifest.json").read_bytes())["index-files"]
    config = str(index / "morgan.ini")
    said = run_morgan("-i", str(index), "-c", config, "-I", graph.url, "mirror")
    assert said.code == 0, said
    assert "server.py" in json.loads((index / "manifest.json").read_bytes())["index-files"]
    assert run_morgan("-i", str(index), "verify").code == 0


def test_a_clean_run_after_a_failed_one_writes_a_complete_manifest(
    run_morgan, graph: FixtureIndex, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    graph.faults = Faults(always={"/simple/cyc-a/": "503"})
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =", "--timeout", "0.5").code == 1
    assert json.loads((index / "manifest.json").read_bytes())["complete"] is False
    graph.faults = Faults()
    assert mirror(run_morgan, graph, index, "lib =\ncyc-a =").code == 0
    assert json.loads((index / "manifest.json").read_bytes())["complete"] is True
