"""Resolution over a frozen in-memory index: pip's rules, per environment, with backtracking.

Like resolvelib's own tests, nothing here touches a socket: a ``MemoryIndex`` answers
the two questions a resolution asks (a project's files, a file's dependencies).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from memory_index import MemoryIndex
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from support import ENVIRONMENTS

from morgan import resolve as resolve_module
from morgan.environments import Environment
from morgan.errors import DistributionError, UpstreamError
from morgan.metadata import Dependencies
from morgan.models import ReleaseFile
from morgan.plan import EnvironmentPlan, applicable_lines, plan_environment, prove
from morgan.provider import EnvironmentView, Findings, ProjectRequirement
from morgan.resolve import ResolutionFailure, Task, resolve
from morgan.selection import SelectionOptions

LINUX = Environment.from_ini_section("linux", ENVIRONMENTS["linux312"])
WINDOWS = Environment.from_ini_section("win", ENVIRONMENTS["win311"])
OLD = Environment.from_ini_section("old", ENVIRONMENTS["linux39"])


def view_of(index: MemoryIndex, environment: Environment = LINUX) -> EnvironmentView:
    return EnvironmentView(index, environment, Findings())


def requirements(*lines: str) -> tuple[ProjectRequirement, ...]:
    return tuple(ProjectRequirement.from_requirement(Requirement(line)) for line in lines)


def pins(index: MemoryIndex, *lines: str, env: Environment = LINUX, wheels_only: bool = False):
    task = Task("test", requirements(*lines), wheels_only=wheels_only)
    resolution = resolve(view_of(index, env), task)
    return {name: str(pin.version) for name, pin in resolution.pins.items()}


def failure(index: MemoryIndex, *lines: str, env: Environment = LINUX) -> ResolutionFailure:
    with pytest.raises(ResolutionFailure) as caught:
        resolve(view_of(index, env), Task("the requirements together", requirements(*lines)))
    return caught.value


def flask_like() -> MemoryIndex:
    """flask's newest release needs a werkzeug the requirements refuse: only backtracking
    to flask 1.0 satisfies both."""
    return (
        MemoryIndex()
        .add("flask-1.0-py3-none-any.whl", ["werkzeug<2", "click"])
        .add("flask-3.0-py3-none-any.whl", ["werkzeug>=3", "click>=8"])
        .add("werkzeug-1.0-py3-none-any.whl")
        .add("werkzeug-3.0-py3-none-any.whl")
        .add("click-7.0-py3-none-any.whl")
        .add("click-8.0-py3-none-any.whl")
    )


# -- backtracking ----------------------------------------------------------------------------


def test_conflicting_pins_backtrack_to_an_older_release() -> None:
    index = flask_like()
    assert pins(index, "flask", "werkzeug<2") == {"click": "8.0", "flask": "1.0", "werkzeug": "1.0"}
    assert pins(index, "flask") == {"click": "8.0", "flask": "3.0", "werkzeug": "3.0"}


def test_a_release_whose_dependency_the_index_lacks_is_passed_over() -> None:
    index = MemoryIndex().add("app-2.0-py3-none-any.whl", ["ghost"]).add("app-1.0-py3-none-any.whl")
    assert pins(index, "app") == {"app": "1.0"}


def test_no_solution_names_the_chain_in_pips_words() -> None:
    index = flask_like()
    error = failure(index, "flask>=3", "werkzeug<2")
    assert error.environment == "linux"
    assert "flask 3.0 depends on werkzeug>=3" in error.causes
    assert "the requirements say werkzeug<2" in error.causes
    assert str(error).startswith("linux: the requirements together cannot be installed: ")
    assert "\n" not in str(error)


def test_a_missing_project_is_named_as_the_cause() -> None:
    index = MemoryIndex().add("app-1.0-py3-none-any.whl", ["ghost>=1"])
    error = failure(index, "app")
    assert "app 1.0 depends on ghost>=1" in error.causes
    assert any("project 'ghost' is not on the index" in cause for cause in error.causes)


# -- pip's rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("yanky", "1.0"),  # a yanked release is passed over...
        ("yanky==2.0", "2.0"),  # ...unless pinned exactly
        ("yanky>=2.0,==2.0", "2.0"),  # any non-wildcard == clause is an exact pin
        ("yanky<3", "1.0"),
    ],
)
def test_yanked_files_only_for_an_exact_pin(line: str, expected: str) -> None:
    """PEP 592; and a wildcard pin on a yanked-only series finds nothing."""
    index = (
        MemoryIndex()
        .add("yanky-1.0-py3-none-any.whl")
        .add("yanky-2.0-py3-none-any.whl", yanked="broken")
    )
    assert pins(index, line)["yanky"] == expected
    assert "every matching file is yanked" in str(failure(index, "yanky==2.*"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [("pre", "1.0"), ("pre>=2.0a1", "2.0a1"), ("pre>1.0", "2.0a1"), ("onlypre", "1.0b1")],
)
def test_pre_releases_only_when_named_or_alone(line: str, expected: str) -> None:
    index = (
        MemoryIndex()
        .add("pre-1.0-py3-none-any.whl")
        .add("pre-2.0a1-py3-none-any.whl")
        .add("onlypre-1.0b1-py3-none-any.whl")
    )
    assert pins(index, line)[canonicalize_name(line.split(">", maxsplit=1)[0])] == expected


def test_requires_python_splits_versions_between_environments() -> None:
    index = (
        MemoryIndex()
        .add("lib-1.0-py3-none-any.whl", requires_python=">=3.8")
        .add("lib-2.0-py3-none-any.whl", requires_python=">=3.10")
    )
    assert pins(index, "lib", env=OLD) == {"lib": "1.0"}
    assert pins(index, "lib", env=LINUX) == {"lib": "2.0"}


def test_markers_are_evaluated_per_environment() -> None:
    index = (
        MemoryIndex()
        .add("app-1.0-py3-none-any.whl", ['winonly; sys_platform == "win32"', "common"])
        .add("winonly-1.0-py3-none-any.whl")
        .add("common-1.0-py3-none-any.whl")
    )
    assert set(pins(index, "app", env=WINDOWS)) == {"app", "common", "winonly"}
    assert set(pins(index, "app", env=LINUX)) == {"app", "common"}


def test_an_extra_is_its_own_node_pinned_to_its_base() -> None:
    index = (
        MemoryIndex()
        .add("lib-1.0-py3-none-any.whl", ['speedy; extra == "fast"'], extras=["fast"])
        .add("lib-2.0-py3-none-any.whl", ['speedy>=2; extra == "fast"'], extras=["fast"])
        .add("speedy-1.0-py3-none-any.whl")
    )
    # lib 2.0's extra needs a speedy that does not exist: both lib and lib[fast] go to 1.0
    assert pins(index, "lib[fast]") == {"lib": "1.0", "speedy": "1.0"}
    assert pins(index, "lib") == {"lib": "2.0"}
    # a plain requirement beside the extra agrees with it on one version
    assert pins(index, "lib[fast]", "lib>=1") == {"lib": "1.0", "speedy": "1.0"}


def test_a_missing_extra_is_noted_not_fatal() -> None:
    index = MemoryIndex().add("lib-1.0-py3-none-any.whl")
    view = view_of(index)
    resolution = resolve(view, Task("t", requirements("lib[turbo]")))
    assert set(resolution.pins) == {"lib"}
    assert view.findings.missing_extras == {("lib", "1.0", "turbo")}


def test_wheel_tags_decide_per_environment_and_sdists_always_count() -> None:
    index = (
        MemoryIndex()
        .add("native-2.0-cp312-cp312-manylinux_2_28_x86_64.whl")
        .add("native-2.0.tar.gz")
        .add("native-1.0-cp311-cp311-win_amd64.whl")
        .add("native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
        .add("native-1.0.tar.gz")
    )
    assert pins(index, "native", env=WINDOWS) == {"native": "2.0"}  # the sdist counts
    assert pins(index, "native", env=WINDOWS, wheels_only=True) == {"native": "1.0"}
    resolution = resolve(view_of(index, WINDOWS), Task("t", requirements("native")))
    assert [p.name for p in resolution.needs_building] == ["native"]
    linux = resolve(view_of(index, LINUX), Task("t", requirements("native")))
    assert linux.needs_building == []
    assert linux.pins["native"].metadata_file.file.filename.endswith("manylinux_2_28_x86_64.whl")


def test_a_distribution_with_unusable_metadata_is_skipped_as_pip_skips_it() -> None:
    index = MemoryIndex().add("lib-1.0-py3-none-any.whl").add("lib-2.0-py3-none-any.whl")
    index.broken["lib-2.0-py3-none-any.whl"] = DistributionError("lib-2.0.whl", "a zip bomb")
    view = view_of(index)
    assert resolve(view, Task("t", requirements("lib"))).pins["lib"].version.public == "1.0"
    assert view.findings.refused == {("lib", "2.0"): "lib-2.0.whl: a zip bomb"}


def test_a_transfer_failure_keeps_the_version_with_dependencies_unknown() -> None:
    # pip online would take 2.0: so does the plan, and the failed file is the run's error
    index = MemoryIndex().add("lib-1.0-py3-none-any.whl").add("lib-2.0-py3-none-any.whl")
    index.broken["lib-2.0-py3-none-any.whl"] = UpstreamError("memory:///x", "HTTP 503")
    assert pins(index, "lib") == {"lib": "2.0"}


def test_every_version_refused_is_said_in_the_failure() -> None:
    index = MemoryIndex().add("lib-1.0-py3-none-any.whl")
    index.broken["lib-1.0-py3-none-any.whl"] = DistributionError("lib-1.0.whl", "a zip bomb")
    error = failure(index, "lib")
    assert "lib 1.0 was skipped (lib-1.0.whl: a zip bomb)" in error.causes


# -- what an environment's plan holds --------------------------------------------------------


def plan(
    index: MemoryIndex, text: str, env: Environment = LINUX, **options: bool
) -> EnvironmentPlan:
    lines = [Requirement(line) for line in text.strip().splitlines()]
    view = view_of(index, env)
    return plan_environment(
        view, applicable_lines(lines, env, "morgan.ini"), SelectionOptions(**options)
    )


def versions(plan: EnvironmentPlan) -> set[str]:
    return {f"{name} {version}" for name, version in plan.pins()}


def test_plan_holds_the_joint_resolution_and_each_line_alone() -> None:
    result = plan(flask_like(), "flask\nwerkzeug<2")
    assert not result.errors
    joint = result.joint[0]
    assert {n: str(p.version) for n, p in joint.pins.items()}["flask"] == "1.0"
    assert versions(result) == {
        "flask 1.0", "werkzeug 1.0", "click 8.0",  # joint
        "flask 3.0", "werkzeug 3.0",  # 'flask' alone
    }  # fmt: skip


def test_lines_on_one_project_combine() -> None:
    index = MemoryIndex()
    for version in ("1.0", "2.0", "2.1", "3.0"):
        index.add(f"lib-{version}-py3-none-any.whl")
    result = plan(index, "lib>=1\nlib<3\nlib!=2.0")
    assert [str(r.pins["lib"].version) for r in result.joint] == ["2.1"]
    # alone: >=1 → 3.0, <3 → 2.1, !=2.0 → 3.0
    assert versions(result) == {"lib 2.1", "lib 3.0"}


def test_lines_that_cannot_hold_together_are_alternatives() -> None:
    index = MemoryIndex().add("dep-1.0-py3-none-any.whl")
    for version in ("1.0", "2.0", "3.0", "4.0"):
        index.add(f"tool-{version}-py3-none-any.whl", ["dep"])
    result = plan(index, "tool<2\ntool>=3\ndep")
    assert not result.errors
    assert [str(r.pins["tool"].version) for r in result.joint] == ["1.0", "4.0"]
    assert all("dep" in r.pins for r in result.joint)
    assert [r.task.label for r in result.joint] == [
        "the requirements together with tool<2",
        "the requirements together with tool>=3",
    ]


def test_a_line_impossible_alone_is_one_error_and_the_rest_is_resolved() -> None:
    result = plan(flask_like(), "flask\nghost")
    assert [str(e) for e in result.errors] == [
        "linux: 'ghost' cannot be installed: the requirements say ghost; "
        "project 'ghost' is not on the index (memory:///ghost/)"
    ]
    # the joint resolution of what is left is that of 'flask' alone
    assert str(result.joint[0].pins["flask"].version) == "3.0"
    assert "flask 3.0" in versions(result)


def test_no_solution_upstream_is_an_error_but_each_line_alone_is_mirrored() -> None:
    result = plan(flask_like(), "flask>=3\nwerkzeug<2")
    assert len(result.errors) == 1
    assert "flask 3.0 depends on werkzeug>=3" in str(result.errors[0])
    assert not result.joint
    assert {"flask 3.0", "werkzeug 1.0", "werkzeug 3.0"} <= versions(result)


def test_wheels_only_where_a_default_needs_an_sdist() -> None:
    index = (
        MemoryIndex()
        .add("native-2.0.tar.gz")
        .add("native-1.0-cp311-cp311-win_amd64.whl")
        .add("native-1.0.tar.gz")
        .add("pure-1.0.tar.gz")
    )
    result = plan(index, "native\npure", env=WINDOWS)
    assert ("native", "2.0") in result.needs_compiler
    assert {"native 2.0", "native 1.0", "pure 1.0"} <= versions(result)
    # pure has no wheel at all: said, not an error
    assert result.no_wheel and "pure" in result.no_wheel[0]
    assert not result.errors


class _Meeting(MemoryIndex):
    """Answers for the files in ``meet`` only once all of them have been asked for:
    searches that ran one after the other would wait here until they give up."""

    def __init__(self, meet: Sequence[str]) -> None:
        super().__init__()
        self.asked_for = {filename: threading.Event() for filename in meet}

    def dependencies(self, name: NormalizedName, file: ReleaseFile) -> Dependencies:
        asked = self.asked_for.get(file.file.filename)
        if asked is not None:
            asked.set()
            for other in self.asked_for.values():
                if not other.wait(10):
                    raise AssertionError(f"{file.file.filename}: asked for alone")
        return super().dependencies(name, file)


def test_wheels_only_searches_run_side_by_side_and_keep_their_order() -> None:
    # Each search waits for older versions' metadata one after the other; an environment's
    # searches wait together, and the plan holds them in the order of their tasks.
    index = _Meeting(["native-1.0-cp311-cp311-win_amd64.whl", "other-1.0-py3-none-any.whl"])
    index.add("native-2.0.tar.gz").add("native-1.0-cp311-cp311-win_amd64.whl")
    index.add("other-2.0.tar.gz").add("other-1.0-py3-none-any.whl")
    result = plan(index, "native\nother", env=WINDOWS)
    assert not result.errors and not result.no_wheel
    searched = [r.task.label for r in result.resolutions if r.task.wheels_only]
    assert searched == [
        "'native' (wheels only)",
        "'other' (wheels only)",
        "the requirements together (wheels only)",
    ]
    assert {"native 1.0", "other 1.0"} <= versions(result)


def test_build_requirements_are_resolved_like_an_isolated_build() -> None:
    index = (
        MemoryIndex()
        .add("app-1.0.tar.gz", build=["flit-core>=3"])
        .add("flit_core-3.9-py3-none-any.whl")
        .add("flit_core-2.0-py3-none-any.whl")
    )
    result = plan(index, "app")
    assert versions(result) == {"app 1.0", "flit-core 3.9"}
    assert any(r.task.label == "building app-1.0.tar.gz" for r in result.resolutions)


def test_build_requirements_no_client_needs_are_only_a_warning() -> None:
    index = (
        MemoryIndex()
        .add("maturinish-1.0-py3-none-any.whl")
        .add("maturinish-1.0.tar.gz", build=["setuptools>=77"])
        .add("setuptools-70.0-py3-none-any.whl")
        .add("needsbuild-1.0.tar.gz", build=["setuptools>=77"])
    )
    result = plan(index, "maturinish")
    assert not result.errors
    (warning,) = result.warnings
    assert str(warning).startswith("linux: building maturinish-1.0.tar.gz cannot be installed: ")
    assert "its build requirements say setuptools>=77" in str(warning)
    assert "clients there install its wheel" in str(warning)

    result = plan(index, "needsbuild")
    (error,) = result.errors
    assert "building needsbuild-1.0.tar.gz cannot be installed" in str(error)


def test_all_versions_resolves_each_version_alone() -> None:
    index = (
        MemoryIndex()
        .add("lib-1.0-py3-none-any.whl", ["dep<2"])
        .add("lib-2.0-py3-none-any.whl", ["dep>=2"])
        .add("dep-1.0-py3-none-any.whl")
        .add("dep-2.0-py3-none-any.whl")
    )
    result = plan(index, "lib", all_versions=True)
    assert versions(result) == {"lib 1.0", "lib 2.0", "dep 1.0", "dep 2.0"}


def test_the_proof_fails_when_the_tree_lacks_what_a_task_needs() -> None:
    upstream = flask_like()
    result = plan(upstream, "flask\nwerkzeug<2")
    # a "tree" that lost werkzeug 1.0
    tree = flask_like()
    del tree.projects["werkzeug"]["werkzeug-1.0-py3-none-any.whl"]
    errors = prove(view_of(tree), result)
    assert errors
    assert all(e.startswith("the mirror does not install what it should: linux: ") for e in errors)
    assert prove(view_of(flask_like()), result) == []


def test_requires_python_from_the_metadata_counts_when_the_page_has_none() -> None:
    index = MemoryIndex().add("lib-1.0-py3-none-any.whl").add("lib-2.0-py3-none-any.whl")
    index.projects["lib"]["lib-2.0-py3-none-any.whl"] = Dependencies(requires_python=">=3.10")
    view = view_of(index, OLD)
    assert resolve(view, Task("t", requirements("lib"))).pins["lib"].version.public == "1.0"
    assert "requires Python >=3.10, not 3.9.18" in view.findings.refused[("lib", "2.0")]
    assert pins(index, "lib", env=LINUX) == {"lib": "2.0"}


def test_a_search_too_long_gives_up_naming_the_conflicts_met_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resolve_module, "MAX_ROUNDS", 3)
    error = failure(flask_like(), "flask", "werkzeug<2")
    assert error.causes[0] == "gave up after 3 rounds of backtracking, most often over these"
    assert "flask 3.0 depends on werkzeug>=3" in error.causes[1:]


def test_a_plan_keeps_each_resolution_once_also_when_restored() -> None:
    # a resolution is compared with those of its own task only; a restored plan (saved
    # plans build it whole) knows the ones it was given
    index = MemoryIndex().add("a-1.0-py3-none-any.whl").add("a-2.0-py3-none-any.whl")
    view = view_of(index)
    task = Task("'a'", (ProjectRequirement.from_requirement(Requirement("a")),))
    newest = resolve(view, task)
    pinned = resolve(view, Task("'a'", (ProjectRequirement.from_requirement(Requirement("a<2")),)))
    restored = EnvironmentPlan(environment=LINUX, resolutions=[newest], to_prove=[newest])
    restored.add(resolve(view, task))  # equal to the one it holds
    assert restored.resolutions == [newest] and restored.to_prove == [newest]
    restored.add(pinned)  # same label, other requirements: another task
    assert restored.resolutions == [newest, pinned]
