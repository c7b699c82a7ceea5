"""Plans kept between runs (morgan/saved_plans.py): reused only when nothing they
were made from changed, and never trusted past a change, an error or a bad file.

Each test mirrors a small graph from the local fixture index, then runs again
after changing one input (a page, the configuration, the tree, the saved file)
and checks both what the run did (resolved again, or not) and that the tree is
what a run without saved plans would have made.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import build_wheel
from support import ENVIRONMENTS, tree_snapshot, write_config
from upstream import FixtureIndex

import morgan.mirror
import morgan.plan
from morgan.cli import main
from morgan.saved_plans import PLANS_FILE

ENVS = ("linux312", "win311")


class Run:
    """One upstream, one tree, and ``morgan mirror`` run on them again and again."""

    def __init__(self, upstream: FixtureIndex, base: Path, requirements: str) -> None:
        self.upstream = upstream
        self.dists = base / "dists"
        self.index = base / "index"
        self.config = base / "morgan.ini"
        self.set_requirements(requirements)

    def set_requirements(self, requirements: str) -> None:
        write_config(self.config, {name: ENVIRONMENTS[name] for name in ENVS}, requirements)

    def wheel(self, *args: Any, **kwargs: Any) -> None:
        self.upstream.add(build_wheel(self.dists, *args, **kwargs))

    def __call__(self, *, index: Path | None = None) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(
                ["-v", "-i", str(index or self.index), "-c", str(self.config), "-I",
                 self.upstream.url, "mirror", "--skip-server-copy"]
            )  # fmt: skip
        return code, out.getvalue()

    def files(self, project: str) -> set[str]:
        return {p.name for p in (self.index / project).glob("*.whl")}


@pytest.fixture(params=["json", "html"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    with FixtureIndex(request.param) as upstream:
        yield Run(upstream, tmp_path, "app =\nlib = <2\n")


@pytest.fixture
def count_plans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The environments resolved (not taken from saved plans) by each run."""
    planned: list[str] = []
    original = morgan.plan.plan_environment

    def counting(view: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(view.environment.name)
        return original(view, *args, **kwargs)

    monkeypatch.setattr(morgan.mirror, "plan_environment", counting)
    return planned


def backtracking_graph(run: Run) -> None:
    """app 2.0 needs lib>=2, which the requirements refuse: app 1.0 jointly, 2.0 alone."""
    run.wheel("app", "1.0", requires=["lib<2"])
    run.wheel("app", "2.0", requires=["lib>=2"])
    run.wheel("lib", "1.0")
    run.wheel("lib", "2.0")


def assert_holds_a_fresh_run(run: Run, tmp_path: Path) -> None:
    """The tree holds all that a run without saved plans makes of the same upstream and
    config (and maybe more: what earlier runs mirrored stays), with the same lock files."""
    index = tmp_path / "fresh"
    code, said = run(index=index)
    assert code == 0, said
    fresh = tree_snapshot(index, state=False)
    ours = tree_snapshot(run.index, state=False)
    for path, data in fresh.items():
        if path.endswith((".whl", ".tar.gz", ".metadata")) or path.startswith("pylock."):
            assert ours.get(path) == data, path


def test_a_rerun_with_nothing_changed_resolves_nothing(
    run: Run, count_plans: list[str], tmp_path: Path
) -> None:
    backtracking_graph(run)
    code, said = run()
    assert code == 0, said
    assert sorted(count_plans) == sorted(ENVS)
    assert (run.index / PLANS_FILE).is_file()
    before = tree_snapshot(run.index)

    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert count_plans == []
    assert "its plans stand" in said
    assert "its lock files and proof stand" in said
    assert tree_snapshot(run.index) == before
    assert run.files("app") == {"app-1.0-py3-none-any.whl", "app-2.0-py3-none-any.whl"}


def test_the_warnings_of_a_reused_plan_are_said_again(run: Run, count_plans: list[str]) -> None:
    backtracking_graph(run)
    run.wheel("tool", "1.0", requires=['lib; extra == "fast"'], extras=["fast"])
    run.set_requirements("app =\nlib = <2\ntool[fast,none] =\n")
    code, first = run()
    assert code == 0, first
    warning = "tool 1.0 has no extra 'none'"
    assert warning in first
    count_plans.clear()
    code, again = run()
    assert code == 0 and count_plans == [], again
    assert warning in again


def test_a_new_release_upstream_is_resolved_again(
    run: Run, count_plans: list[str], tmp_path: Path
) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    run.wheel("lib", "1.5")  # the joint resolution now takes lib 1.5
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert sorted(count_plans) == sorted(ENVS)
    assert "lib-1.5-py3-none-any.whl" in run.files("lib")
    assert_holds_a_fresh_run(run, tmp_path)


def test_a_project_that_was_missing_and_now_exists_is_resolved_again(
    run: Run, count_plans: list[str]
) -> None:
    """A 404 is an input too: app 2.0 needed ghost, which the index did not have."""
    run.wheel("app", "1.0")
    run.wheel("app", "2.0", requires=["ghost"])
    run.set_requirements("app =\n")
    assert run()[0] == 0
    assert run.files("app") == {"app-1.0-py3-none-any.whl"}
    run.wheel("ghost", "1.0")
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert count_plans, "the plans were reused although ghost appeared"
    assert "app-2.0-py3-none-any.whl" in run.files("app")
    assert run.files("ghost") == {"ghost-1.0-py3-none-any.whl"}


def test_another_configuration_is_resolved_again(run: Run, count_plans: list[str]) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    run.set_requirements("app =\nlib = <2\n\n# a comment changes nothing\n")
    count_plans.clear()
    assert run()[0] == 0
    assert count_plans == []
    run.set_requirements("app = <2\n")
    code, said = run()
    assert code == 0, said
    assert sorted(count_plans) == sorted(ENVS)


def test_a_changed_tree_is_repaired_locked_and_proven_again(
    run: Run, count_plans: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    before = tree_snapshot(run.index)
    (run.index / "lib" / "lib-1.0-py3-none-any.whl").unlink()
    (run.index / "pylock.win311.toml").unlink()
    proofs: list[int] = []
    original = morgan.mirror.Mirrorer._prove

    def counting(self: morgan.mirror.Mirrorer, *args: Any) -> None:
        proofs.append(1)
        original(self, *args)

    monkeypatch.setattr(morgan.mirror.Mirrorer, "_prove", counting)
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert count_plans == []  # the upstream did not change: the plans stand
    assert proofs == [1]  # the tree did: it is proven again
    assert tree_snapshot(run.index) == before
    proofs.clear()
    assert run()[0] == 0
    assert proofs == []


@pytest.mark.parametrize(
    "damage",
    [
        "not json",
        json.dumps({"format": 1}),
        json.dumps([1, 2]),
        "SAME_WITH_A_PIN_NOT_ON_THE_PAGE",
        "SAME_WITH_AN_INDEX_OUT_OF_RANGE",
        "SAME_WITH_A_PROJECT_OUTSIDE",
        "SAME_WITH_WRONG_TYPES",
    ],
)
def test_a_damaged_plans_file_is_ignored(
    run: Run, count_plans: list[str], damage: str, tmp_path: Path
) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    path = run.index / PLANS_FILE
    if damage.startswith("SAME"):
        document = json.loads(path.read_text())
        plan = document["plans"]["linux312"]
        if damage.endswith("NOT_ON_THE_PAGE"):
            plan["resolutions"][0]["pins"][0][3] = ["../../outside-1.0-py3-none-any.whl"]
        elif damage.endswith("PROJECT_OUTSIDE"):
            plan["resolutions"][0]["pins"][0][0] = "../../outside"
        elif damage.endswith("OUT_OF_RANGE"):
            plan["joint"] = [999]
        else:
            plan["resolutions"][0]["pins"] = {"app": 3}
        damage = json.dumps(document)
    path.write_text(damage)
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert "Traceback" not in said
    assert sorted(count_plans) == sorted(ENVS)
    assert not (tmp_path / "outside-1.0-py3-none-any.whl").exists()
    assert_holds_a_fresh_run(run, tmp_path)


def test_a_run_with_an_error_saves_no_plans(run: Run, count_plans: list[str]) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    path = run.index / PLANS_FILE
    clean = path.read_bytes()
    run.set_requirements("app = >=2\nlib = <2\n")  # no solution together
    code, said = run()
    assert code == 1, said
    assert path.read_bytes() == clean  # still the last clean run's, for its own config
    count_plans.clear()
    assert run()[0] == 1
    assert sorted(count_plans) == sorted(ENVS)
    run.set_requirements("app =\nlib = <2\n")  # back: the clean run's plans stand again
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert count_plans == []


# -- the kept copies of pages (.morgan-page) -----------------------------------------------


def page_requests(run: Run, since: int) -> list[tuple[str, bool]]:
    """(path, conditional) of the project-page requests since request number ``since``."""
    found = []
    for path, headers in zip(
        run.upstream.requests[since:], run.upstream.request_headers[since:], strict=True
    ):
        if path.startswith("/simple/") and path.endswith("/"):
            found.append((path, "If-None-Match" in headers or "If-Modified-Since" in headers))
    return found


def test_a_rerun_whose_plans_stand_reads_no_kept_page(run: Run, count_plans: list[str]) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    kept = sorted(run.index.glob("*/.morgan-page"))
    assert [p.parent.name for p in kept] == ["app", "lib"]
    state = json.loads((run.index / "app" / ".morgan-state.json").read_text())
    assert "body" not in state["page"] and state["page"]["digest"]
    for path in kept:  # never read: damaging them changes nothing
        path.write_bytes(b"damaged")
    since = len(run.upstream.requests)
    count_plans.clear()
    code, said = run()
    assert code == 0, said
    assert count_plans == []
    assert all(conditional for _, conditional in page_requests(run, since))


def test_a_lost_or_damaged_kept_page_is_fetched_again_when_needed(
    run: Run, count_plans: list[str], tmp_path: Path
) -> None:
    backtracking_graph(run)
    assert run()[0] == 0
    (run.index / "app" / ".morgan-page").unlink()
    (run.index / "lib" / ".morgan-page").write_bytes(b"damaged")
    run.set_requirements("app =\nlib = <2\n# resolved again: the pages are read\nlib = >=1\n")
    since = len(run.upstream.requests)
    code, said = run()
    assert code == 0, said
    assert sorted(count_plans) == sorted(ENVS * 2)
    refetched = sorted(path for path, conditional in page_requests(run, since) if not conditional)
    assert refetched == ["/simple/app/", "/simple/lib/"]
    assert (run.index / "lib" / ".morgan-page").read_bytes() != b"damaged"
    assert_holds_a_fresh_run(run, tmp_path)


def test_a_state_from_before_kept_pages_is_read_and_rewritten(run: Run) -> None:
    """Earlier versions kept the page's body inside .morgan-state.json."""
    backtracking_graph(run)
    assert run()[0] == 0
    folder = run.index / "app"
    state_path = folder / ".morgan-state.json"
    state = json.loads(state_path.read_text())
    body = (folder / ".morgan-page").read_bytes()
    state["page"] = {
        key: state["page"][key] for key in ("url", "content_type", "etag", "last_modified")
    }
    state["page"]["body"] = body.decode("utf-8")
    state_path.write_text(json.dumps(state))
    (folder / ".morgan-page").unlink()
    (run.index / PLANS_FILE).unlink()  # resolved again: the old copy is what a 304 stands on
    since = len(run.upstream.requests)
    code, said = run()
    assert code == 0, said
    assert ("/simple/app/", True) in page_requests(run, since)
    assert ("/simple/app/", False) not in page_requests(run, since)
    assert (folder / ".morgan-page").read_bytes() == body
    assert "body" not in json.loads(state_path.read_text())["page"]


def test_states_a_crash_left_empty_or_zeroed_are_states_lost(run: Run, tmp_path: Path) -> None:
    # The states, kept pages and plans are caches written without a sync: after a power
    # loss they may be empty or full of zeros. The next run treats them as lost.
    backtracking_graph(run)
    assert run()[0] == 0
    before = tree_snapshot(run.index, state=False)
    (run.index / "app" / ".morgan-state.json").write_bytes(b"")
    (run.index / "lib" / ".morgan-state.json").write_bytes(b"\0" * 4096)
    (run.index / PLANS_FILE).write_bytes(b"\0" * 100)
    code, said = run()
    assert code == 0, said
    assert "Traceback" not in said
    assert tree_snapshot(run.index, state=False) == before
    for project in ("app", "lib"):
        state = json.loads((run.index / project / ".morgan-state.json").read_text())
        assert state["verified"]  # checked again, and recorded
    assert_holds_a_fresh_run(run, tmp_path)
