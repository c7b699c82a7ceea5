from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from upstream import FixtureIndex

import morgan.index
from morgan.cli import main
from morgan.index import IndexClient


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait milliseconds, not seconds, so fault tests stay quick."""
    monkeypatch.setattr(morgan.index, "DEFAULT_BACKOFF", 0.01)


@pytest.fixture
def no_proxies_no_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No proxy variables and no ``.netrc`` of the machine's: HOME is an empty folder
    (returned, for a test to put its own ``.netrc`` in)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def client(index: FixtureIndex) -> Iterator[IndexClient]:
    """A client of the test module's own ``index`` fixture that never retries or waits."""
    made = IndexClient(index.url, retries=0, backoff=0)
    yield made
    made.close()


@pytest.fixture(params=["json", "html"])
def upstream(request: pytest.FixtureRequest) -> Iterator[FixtureIndex]:
    """A local upstream index, once speaking PEP 691 JSON and once HTML only."""
    with FixtureIndex(request.param) as index:
        yield index


class MorganRun:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"MorganRun(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run_morgan(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the morgan CLI in-process; returns its exit code and output."""

    def run(*args: str) -> MorganRun:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return MorganRun(code, captured.out, captured.err)

    return run
