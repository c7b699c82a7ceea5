"""Resolution, judged by real clients: graphs that only a resolver mirrors right.

Each scenario builds a small graph on the local fixture index, mirrors it for two
environments unlike each other (Linux x86_64 with CPython 3.12, Windows with
CPython 3.11), and checks three things: what ``morgan mirror`` says (exit status,
errors, warnings), which files the tree holds, and what real pip
(``pip download --only-binary=:all: --platform ...``) and uv
(``uv pip compile --python-platform ...``) resolve from the tree alone, as a
``file://`` index, for every environment. Each graph that should mirror is one a
walk taking the newest version per requirement would mirror wrong (the client
checks then fail); the others check that morgan says what cannot be done, and where.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from support import ENVIRONMENTS, PIP_TARGETS, UV_TARGETS, clean_client_env, write_config
from upstream import FixtureIndex

import morgan.index
from morgan.cli import main
from morgan.generate import environment_block

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib

pytestmark = pytest.mark.clients

#: Two client environments whose wheels differ by platform tag.
ENVS = ("linux312", "win311")
#: An environment describing this interpreter, for installing a lock file for real.
HERE = "here"
PROOF_FAILED = "does not install what it should"

Populate = Callable[[FixtureIndex, Path], None]


# -- running morgan and the clients ---------------------------------------------------------


@dataclass
class Mirrored:
    """A tree mirrored from the fixture index, and what ``morgan mirror`` said."""

    index: Path
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        return self.out + self.err

    def files(self, project: str) -> set[str]:
        """The distributions in the project's folder (no sidecars, pages or dotfiles)."""
        folder = self.index / project
        if not folder.is_dir():
            return set()
        return {
            p.name
            for p in folder.iterdir()
            if p.name.endswith((".whl", ".tar.gz", ".zip")) and not p.name.startswith(".")
        }

    def listed(self, project: str) -> set[str]:
        """The files the tree's own page for the project lists (what clients see)."""
        page = json.loads((self.index / project / "index.json").read_text(encoding="utf-8"))
        return {entry["filename"] for entry in page["files"]}


def mirror(
    base: Path,
    mode: str,
    populate: Populate,
    requirements: str,
    *,
    here: bool = False,
) -> Mirrored:
    """Build the graph, serve it in ``mode`` and mirror it for ENVS (and this machine)."""
    index = base / "index"
    with FixtureIndex(mode) as upstream:
        populate(upstream, base / "dists")
        config = write_config(
            index / "morgan.ini", {name: ENVIRONMENTS[name] for name in ENVS}, requirements
        )
        if here:
            config.write_text(environment_block(HERE) + "\n" + config.read_text())
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(
                ["-q", "-i", str(index), "-c", str(config), "-I", upstream.url, "mirror",
                 "--skip-server-copy"]
            )  # fmt: skip
    return Mirrored(index, code, out.getvalue(), err.getvalue())


def assert_clean_success(tree: Mirrored) -> None:
    """Exit 0, no error, and the proof ran (lock files are written just before it) and held."""
    assert tree.code == 0, tree.said
    assert "error:" not in tree.said, tree.said
    assert PROOF_FAILED not in tree.said, tree.said
    for env in ENVS:
        assert (tree.index / f"pylock.{env}.toml").is_file(), tree.said


def uv_binary() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed; install the test extras (pip install -e '.[test]')")
    return found


def version_of(filename: str) -> tuple[str, str]:
    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
    else:
        name, version = parse_sdist_filename(filename)
    return str(name), str(version)


def pip_download(index: Path, env: str, requirements: list[str], dest: Path) -> dict[str, str]:
    """What real pip, pretending to be a client in ``env``, downloads: {project: version}."""
    command = [
        sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir",
        "--disable-pip-version-check", "--index-url", index.as_uri() + "/",
        "--only-binary=:all:", "--implementation", "cp", *PIP_TARGETS[env].split(),
        "-d", str(dest), *requirements,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"pip for {env}: {result.stdout}{result.stderr}"
    return dict(version_of(path.name) for path in dest.iterdir())


def uv_compile(
    index: Path, env: str, requirements: list[str], tmp_path: Path, *extra: str
) -> dict[str, str]:
    """What real uv, resolving for ``env``, pins: {project: version}."""
    source = tmp_path / f"requirements-{env}.in"
    source.write_text("\n".join(requirements) + "\n")
    command = [
        uv_binary(), "pip", "compile", str(source), "--no-config", "--no-cache",
        "--index-url", index.as_uri() + "/", *UV_TARGETS[env], "--no-header", "--quiet",
        # any interpreter will do (--python-version is the target); without one, uv
        # searches the machine for a Python of the target's version, which can take long
        "--python", sys.executable, *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=clean_client_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"uv for {env}: {result.stdout}{result.stderr}"
    return {
        name.strip(): version.strip()
        for name, _, version in (
            line.partition("==") for line in result.stdout.splitlines() if "==" in line
        )
        if not name.startswith(" ")
    }


def assert_clients_resolve(
    tree: Mirrored, requirements: list[str], expected: dict[str, str], tmp_path: Path
) -> None:
    """Real pip and uv, for every environment, resolve ``requirements`` to ``expected``."""
    for env in ENVS:
        dest = tmp_path / f"pip-{env}"
        assert pip_download(tree.index, env, requirements, dest) == expected, env
        assert uv_compile(tree.index, env, requirements, tmp_path) == expected, env


def wheel(index: FixtureIndex, dists: Path, *args: Any, **kwargs: Any) -> None:
    index.add(build_wheel(dists, *args, **kwargs))


def sdist(index: FixtureIndex, dists: Path, *args: Any, **kwargs: Any) -> None:
    index.add(build_sdist(dists, *args, **kwargs))


def scenario(name: str, populate: Populate, requirements: str, *, here: bool = False) -> Any:
    """A module-scoped fixture ``name``: the graph mirrored once per upstream mode."""

    @pytest.fixture(name=name, scope="module", params=["json", "html"])
    def fixture(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Mirrored]:
        base = tmp_path_factory.mktemp(f"{populate.__name__}-{request.param}")
        with pytest.MonkeyPatch.context() as patch:
            # as conftest's quick_backoff, which is function-scoped: a 404 is retried
            patch.setattr(morgan.index, "DEFAULT_BACKOFF", 0.01)
            yield mirror(base, request.param, populate, requirements, here=here)

    return fixture


# -- 1. a conflict that needs backtracking --------------------------------------------------


def flask_graph(index: FixtureIndex, dists: Path) -> None:
    """flask's newest release needs a werkzeug the requirements refuse."""
    wheel(index, dists, "flask", "1.0", requires=["werkzeug<2"])
    wheel(index, dists, "flask", "3.0", requires=["werkzeug>=3"])
    wheel(index, dists, "werkzeug", "1.0")
    wheel(index, dists, "werkzeug", "3.0")


flask_tree = scenario("flask_tree", flask_graph, "flask =\nwerkzeug = <2\n", here=True)


def test_backtracking_mirrors_the_joint_and_each_line(flask_tree: Mirrored) -> None:
    assert_clean_success(flask_tree)
    # joint: flask 1.0 + werkzeug 1.0; 'flask' alone: flask 3.0 + werkzeug 3.0
    assert flask_tree.files("flask") == {"flask-1.0-py3-none-any.whl", "flask-3.0-py3-none-any.whl"}
    assert flask_tree.files("werkzeug") == {
        "werkzeug-1.0-py3-none-any.whl",
        "werkzeug-3.0-py3-none-any.whl",
    }
    assert (flask_tree.index / f"pylock.{HERE}.toml").is_file()


def test_clients_backtrack_to_the_old_flask_in_the_tree(
    flask_tree: Mirrored, tmp_path: Path
) -> None:
    expected = {"flask": "1.0", "werkzeug": "1.0"}
    assert_clients_resolve(flask_tree, ["flask", "werkzeug<2"], expected, tmp_path)


def test_clients_get_the_newest_flask_alone(flask_tree: Mirrored, tmp_path: Path) -> None:
    assert_clients_resolve(flask_tree, ["flask"], {"flask": "3.0", "werkzeug": "3.0"}, tmp_path)


# -- 2. a release whose dependency the index lacks ------------------------------------------


def ghost_graph(index: FixtureIndex, dists: Path) -> None:
    """app 2.0 needs ghost, which the index does not have; app 1.0 needs nothing."""
    wheel(index, dists, "app", "1.0")
    wheel(index, dists, "app", "2.0", requires=["ghost"])


ghost_tree = scenario("ghost_tree", ghost_graph, "app =\n")


def test_a_missing_dependency_falls_back_to_the_older_release(ghost_tree: Mirrored) -> None:
    assert_clean_success(ghost_tree)
    assert "app-1.0-py3-none-any.whl" in ghost_tree.files("app")
    assert not ghost_tree.files("ghost")


def test_clients_install_the_release_whose_dependencies_are_there(
    ghost_tree: Mirrored, tmp_path: Path
) -> None:
    assert_clients_resolve(ghost_tree, ["app"], {"app": "1.0"}, tmp_path)


def test_the_tree_holds_no_release_that_no_resolution_picked(ghost_tree: Mirrored) -> None:
    """The tree is the union of the resolutions (morgan/plan.py): app 2.0 is in none.

    app 2.0 can be installed nowhere (ghost is missing), yet its wheel, small enough to
    be downloaded to read its dependencies instead of fetching its PEP 658 metadata,
    stays in the tree and on the tree's page, where clients meet it first.
    """
    assert ghost_tree.files("app") == {"app-1.0-py3-none-any.whl"}
    assert ghost_tree.listed("app") == {"app-1.0-py3-none-any.whl"}


# -- 3. lines on one project that combine ---------------------------------------------------


def lib_graph(index: FixtureIndex, dists: Path) -> None:
    for version in ("1.0", "2.0", "2.1", "3.0"):
        wheel(index, dists, "lib", version)


# Together they admit only 2.0; alone, 3.0, 2.1 and 3.0: the joint version is one no
# line alone would mirror.
lib_tree = scenario("lib_tree", lib_graph, "lib = >=1\nlib = <3\nlib = !=2.1\n")


def test_lines_on_one_project_are_combined(lib_tree: Mirrored) -> None:
    assert_clean_success(lib_tree)
    assert lib_tree.files("lib") == {
        "lib-2.0-py3-none-any.whl",  # joint
        "lib-2.1-py3-none-any.whl",  # 'lib<3' alone
        "lib-3.0-py3-none-any.whl",  # 'lib>=1' and 'lib!=2.1' alone
    }


@pytest.mark.parametrize(
    ("requirement", "version"),
    [("lib>=1,<3,!=2.1", "2.0"), ("lib>=1", "3.0"), ("lib<3", "2.1"), ("lib!=2.1", "3.0")],
)
def test_clients_get_the_combined_and_each_lines_version(
    lib_tree: Mirrored, tmp_path: Path, requirement: str, version: str
) -> None:
    assert_clients_resolve(lib_tree, [requirement], {"lib": version}, tmp_path)


# -- 4. alternative ranges -------------------------------------------------------------------


def tool_graph(index: FixtureIndex, dists: Path) -> None:
    """Each tool range brings its own dep; helper must step back with the old tool."""
    wheel(index, dists, "tool", "1.0", requires=["dep<2"])
    wheel(index, dists, "tool", "2.0")
    wheel(index, dists, "tool", "3.0")
    wheel(index, dists, "tool", "4.0", requires=["dep>=2"])
    wheel(index, dists, "dep", "1.0")
    wheel(index, dists, "dep", "2.0")
    wheel(index, dists, "helper", "1.0")
    wheel(index, dists, "helper", "2.0", requires=["dep>=2"])


tool_tree = scenario("tool_tree", tool_graph, "tool = <2\ntool = >=3\nhelper =\n")


def test_alternative_ranges_are_each_mirrored_with_the_rest(tool_tree: Mirrored) -> None:
    assert_clean_success(tool_tree)
    assert tool_tree.files("tool") == {"tool-1.0-py3-none-any.whl", "tool-4.0-py3-none-any.whl"}
    assert tool_tree.files("dep") == {"dep-1.0-py3-none-any.whl", "dep-2.0-py3-none-any.whl"}
    # helper 1.0 only comes from resolving the alternative 'tool<2' with the other lines
    assert tool_tree.files("helper") == {
        "helper-1.0-py3-none-any.whl",
        "helper-2.0-py3-none-any.whl",
    }


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        (["tool<2", "helper"], {"tool": "1.0", "dep": "1.0", "helper": "1.0"}),
        (["tool>=3", "helper"], {"tool": "4.0", "dep": "2.0", "helper": "2.0"}),
        (["tool<2"], {"tool": "1.0", "dep": "1.0"}),
        (["tool>=3"], {"tool": "4.0", "dep": "2.0"}),
    ],
)
def test_clients_get_each_alternative(
    tool_tree: Mirrored, tmp_path: Path, requirements: list[str], expected: dict[str, str]
) -> None:
    assert_clients_resolve(tool_tree, requirements, expected, tmp_path)


# -- 5. the newest release has no wheel for one environment ---------------------------------

# pip 23's --platform takes manylinux_2_28 literally (no older levels), so the Linux
# wheel carries the level linux312 states.
LINUX_TAGS = "cp312-cp312-manylinux_2_28_x86_64"
WINDOWS_TAGS = "cp311-cp311-win_amd64"


def native_graph(index: FixtureIndex, dists: Path) -> None:
    """native 2.0 has a wheel for Linux only; 1.0 for both. Both have an sdist."""
    # Metadata 2.2 PKG-INFO: uv reads an sdist's dependencies from it without building.
    wheel(index, dists, "native", "1.0", tags=LINUX_TAGS)
    wheel(index, dists, "native", "1.0", tags=WINDOWS_TAGS)
    sdist(index, dists, "native", "1.0", build_requires=["flit_core>=3"], metadata_version="2.2")
    wheel(index, dists, "native", "2.0", tags=LINUX_TAGS)
    sdist(index, dists, "native", "2.0", build_requires=["flit_core>=3"], metadata_version="2.2")
    wheel(index, dists, "flit-core", "3.9.0")


native_tree = scenario("native_tree", native_graph, "native =\n")


def test_a_wheels_only_resolution_is_mirrored_where_the_default_needs_a_compiler(
    native_tree: Mirrored,
) -> None:
    assert_clean_success(native_tree)
    assert native_tree.files("native") == {
        f"native-2.0-{LINUX_TAGS}.whl",  # linux312's default
        "native-2.0.tar.gz",  # win311's default, to build
        f"native-1.0-{WINDOWS_TAGS}.whl",  # win311 without a compiler
        "native-1.0.tar.gz",
    }
    # the sdists' build requirement, for win311's clients that build 2.0
    assert native_tree.files("flit-core") == {"flit_core-3.9.0-py3-none-any.whl"}
    warning = "win311: clients need a compiler for native 2.0 (no wheel of that version for them)"
    assert f"warning: {warning}" in native_tree.err
    assert f"  warning: {warning}" in native_tree.out  # the summary
    assert "linux312: clients need a compiler" not in native_tree.said


def test_pip_without_a_compiler_finds_the_older_wheel(
    native_tree: Mirrored, tmp_path: Path
) -> None:
    assert pip_download(native_tree.index, "win311", ["native"], tmp_path / "w") == {
        "native": "1.0"
    }
    assert pip_download(native_tree.index, "linux312", ["native"], tmp_path / "l") == {
        "native": "2.0"
    }


def test_uv_finds_the_newest_sdist_and_the_older_wheel(
    native_tree: Mirrored, tmp_path: Path
) -> None:
    index = native_tree.index
    assert uv_compile(index, "win311", ["native"], tmp_path) == {"native": "2.0"}
    binary = ("--only-binary", ":all:")
    assert uv_compile(index, "win311", ["native"], tmp_path, *binary) == {"native": "1.0"}
    assert uv_compile(index, "linux312", ["native"], tmp_path, *binary) == {"native": "2.0"}


# -- 6. a conflict with no solution upstream ------------------------------------------------


def no_solution_graph(index: FixtureIndex, dists: Path) -> None:
    wheel(index, dists, "a", "1.0", requires=["b<1"])
    wheel(index, dists, "b", "2.0")


no_solution_tree = scenario("no_solution_tree", no_solution_graph, "a =\n")


def test_a_conflict_without_solution_is_one_error_naming_the_chain(
    no_solution_tree: Mirrored,
) -> None:
    assert no_solution_tree.code == 1, no_solution_tree.said
    errors = [line for line in no_solution_tree.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, no_solution_tree.err
    (error,) = errors
    assert "linux312" in error
    assert "win311" in error
    assert "'a' cannot be installed" in error
    assert "a 1.0 depends on b<1" in error
    assert "newest is 2.0" in error
    assert "1 errors" in no_solution_tree.out
    assert not no_solution_tree.files("b")


# -- 7. build requirements -------------------------------------------------------------------


def unbuildable_sdist_graph(index: FixtureIndex, dists: Path) -> None:
    """maturinish has a wheel everywhere; only its sdist needs a setuptools the index lacks."""
    wheel(index, dists, "maturinish", "1.0")
    sdist(index, dists, "maturinish", "1.0", build_requires=["setuptools>=77"])
    wheel(index, dists, "setuptools", "70.0")


unbuildable_tree = scenario("unbuildable_tree", unbuildable_sdist_graph, "maturinish =\n")


def test_an_sdist_nobody_builds_warns_about_its_build_requirements(
    unbuildable_tree: Mirrored, tmp_path: Path
) -> None:
    assert_clean_success(unbuildable_tree)
    assert unbuildable_tree.files("maturinish") == {
        "maturinish-1.0-py3-none-any.whl",
        "maturinish-1.0.tar.gz",
    }
    assert not unbuildable_tree.files("setuptools")
    warnings = [line for line in unbuildable_tree.err.splitlines() if "warning:" in line]
    for env in ENVS:
        (warning,) = [w for w in warnings if f"warning: {env}: building" in w]
        assert f"{env}: building maturinish-1.0.tar.gz cannot be installed" in warning
        assert "its build requirements say setuptools>=77" in warning
        assert "newest is 70.0" in warning
        assert warning.endswith("(clients there install its wheel, so none needs to build it)")
    assert_clients_resolve(unbuildable_tree, ["maturinish"], {"maturinish": "1.0"}, tmp_path)


def needs_build_graph(index: FixtureIndex, dists: Path) -> None:
    """needsbuild has only an sdist, whose build needs a buildtool the index lacks."""
    sdist(index, dists, "needsbuild", "1.0", build_requires=["buildtool>=5"])
    wheel(index, dists, "buildtool", "1.0")


needs_build_tree = scenario("needs_build_tree", needs_build_graph, "needsbuild =\n")


def test_an_sdist_clients_must_build_fails_on_its_build_requirements(
    needs_build_tree: Mirrored,
) -> None:
    assert needs_build_tree.code == 1, needs_build_tree.said
    errors = [line for line in needs_build_tree.err.splitlines() if line.startswith("error:")]
    assert len(errors) == len(ENVS), needs_build_tree.err
    for env in ENVS:
        (error,) = [e for e in errors if e.startswith(f"error: {env}: ")]
        assert "building needsbuild-1.0.tar.gz cannot be installed" in error
        assert "its build requirements say buildtool>=5" in error
        assert "newest is 1.0" in error
        assert "clients there install its wheel" not in error
    assert f"{len(ENVS)} errors" in needs_build_tree.out
    assert not needs_build_tree.files("buildtool")


# -- 8. lock files ---------------------------------------------------------------------------


def load_lock(path: Path) -> dict[str, Any]:
    lock: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    return lock


def test_each_lock_names_the_joint_resolution_with_the_trees_bytes(
    flask_tree: Mirrored,
) -> None:
    for env in (*ENVS, HERE):
        lock = load_lock(flask_tree.index / f"pylock.{env}.toml")
        assert {p["name"]: p["version"] for p in lock["packages"]} == {
            "flask": "1.0",
            "werkzeug": "1.0",
        }, env
        for package in lock["packages"]:
            files = [
                *package.get("wheels", []),
                *([package["sdist"]] if "sdist" in package else []),
            ]
            assert files, package
            for entry in files:
                path = flask_tree.index / entry["path"]
                data = path.read_bytes()
                assert len(data) == entry["size"], entry
                assert hashlib.sha256(data).hexdigest() == entry["hashes"]["sha256"], entry


def test_uv_installs_this_machines_lock_offline(flask_tree: Mirrored, tmp_path: Path) -> None:
    env = clean_client_env()
    venv = tmp_path / "venv"
    subprocess.run(
        [uv_binary(), "venv", "--no-config", "--no-cache", "--offline", "-q",
         "--python", sys.executable, str(venv)],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    lock = flask_tree.index / f"pylock.{HERE}.toml"
    result = subprocess.run(
        [uv_binary(), "pip", "install", "--no-config", "--no-cache", "--offline",
         "--preview-features", "pylock", "--python", str(python), "-r", str(lock)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(python), "-c", script],
        check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert json.loads(out) == {"flask": "1.0", "werkzeug": "1.0"}
