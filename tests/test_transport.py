from __future__ import annotations

import base64
import logging
import urllib.parse
from pathlib import Path

import pytest
import urllib3

from morgan.transport import PoolManagers, basic_auth, host_key, host_port, netrc_credentials


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No proxies and no NETRC from the machine; HOME is an empty folder."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


# -- hosts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@Host.Example/simple/", "host.example"),
        ("https://host.example:8443/", "host.example:8443"),
        ("http://[::1]/", "[::1]"),
        ("http://u:pw@[::1]:8080/", "[::1]:8080"),
        ("https://host.example:99999/", "host.example:99999"),
        ("https://host.example:port/", "host.example:port"),
        ("https://u:p@[::1]:x/", "[::1]:x"),
        ("https://host.example:1:2/", "host.example:1:2"),
    ],
)
def test_host_port(url: str, expected: str) -> None:
    assert host_port(urllib.parse.urlsplit(url)) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://User:pw@Host.Example/simple/", "https://host.example:"),
        ("https://host.example:8443/x", "https://host.example:8443"),
        ("http://[::1]:8080/simple/", "http://::1:8080"),
        ("http://[2001:DB8::1]/", "http://2001:db8::1:"),
        ("https://host.example:99999/", "https://host.example:99999"),
        ("https://host.example:port/", "https://host.example:port"),
        ("https://[::1]:x/", "https://::1:x"),
        ("http://[::1", ""),  # does not parse: matches nothing
    ],
)
def test_host_key(url: str, expected: str) -> None:
    assert host_key(url) == expected
    if expected:
        assert host_key(urllib.parse.urlsplit(url)) == expected


def test_host_key_tells_servers_apart() -> None:
    assert host_key("https://h.example/a/") == host_key("https://H.EXAMPLE/b/")
    assert host_key("https://h.example/") != host_key("http://h.example/")
    assert host_key("https://h.example/") != host_key("https://h.example:8443/")
    assert host_key("https://h.example:99999/") != host_key("https://h.example:9999/")


# -- credentials --------------------------------------------------------------------


def test_basic_auth() -> None:
    value = basic_auth("alice", "s3cr@t:pw")
    scheme, token = value.split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == "alice:s3cr@t:pw"


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_netrc_from_home(clean_environment: Path) -> None:
    _write(clean_environment / ".netrc", "machine h.example login alice password pw\n")
    assert netrc_credentials("h.example") == ("alice", "pw")
    assert netrc_credentials("other.example") is None


def test_netrc_variable_wins_over_home(
    clean_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(clean_environment / ".netrc", "machine h.example login home password pw1\n")
    named = _write(tmp_path / "named", "machine h.example login named password pw2\n")
    monkeypatch.setenv("NETRC", str(named))
    assert netrc_credentials("h.example") == ("named", "pw2")
    monkeypatch.setenv("NETRC", "")  # empty is unset
    assert netrc_credentials("h.example") == ("home", "pw1")


def test_netrc_environ_and_path_arguments(clean_environment: Path, tmp_path: Path) -> None:
    _write(clean_environment / ".netrc", "machine h.example login home password pw1\n")
    named = _write(tmp_path / "named", "machine h.example login named password pw2\n")
    given = _write(tmp_path / "given", "default login given password pw3\n")
    assert netrc_credentials("h.example", environ={"NETRC": str(named)}) == ("named", "pw2")
    assert netrc_credentials("h.example", environ={}) == ("home", "pw1")
    assert netrc_credentials("h.example", environ={"NETRC": str(named)}, path=given) == (
        "given",
        "pw3",
    )


def test_netrc_is_read_whatever_its_mode(clean_environment: Path) -> None:
    """As pip and requests read it: ``netrc.netrc()`` alone refuses a ~/.netrc others
    may read, and would send no credentials."""
    _write(clean_environment / ".netrc", "machine h.example login alice password pw\n", 0o644)
    assert netrc_credentials("h.example") == ("alice", "pw")


def test_netrc_missing_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert netrc_credentials("h.example") is None
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    assert netrc_credentials("h.example") is None


@pytest.mark.parametrize("kind", ["unparsable", "folder"])
def test_netrc_unreadable_is_none_and_said(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "netrc"
    if kind == "folder":
        path.mkdir()
    else:
        _write(path, "machine h.example login alice password pw\nbogus x\n")
    monkeypatch.setenv("NETRC", str(path))
    with caplog.at_level(logging.WARNING, logger="morgan.transport"):
        assert netrc_credentials("h.example") is None
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith(f"{path}: not read (")


# -- proxies ------------------------------------------------------------------------


def test_no_proxy_means_direct() -> None:
    pools = PoolManagers()
    try:
        manager = pools.for_url("https://h.example/simple/")
        assert not isinstance(manager, urllib3.ProxyManager)
        assert pools.for_url("http://other.example/") is manager
    finally:
        pools.clear()


def test_proxy_per_scheme_and_no_proxy_bypass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example,.internal")
    pools = PoolManagers(num_pools=4)
    try:
        proxied = pools.for_url("http://h.example/simple/")
        assert isinstance(proxied, urllib3.ProxyManager)
        assert proxied.proxy is not None and proxied.proxy.host == "proxy.example"
        assert proxied.proxy_headers == {}
        assert pools.for_url(urllib.parse.urlsplit("http://other.example/")) is proxied
        for bypassed in ("http://direct.example/", "http://a.internal:8080/"):
            assert not isinstance(pools.for_url(bypassed), urllib3.ProxyManager), bypassed
        # HTTP_PROXY is for http URLs only
        assert not isinstance(pools.for_url("https://h.example/"), urllib3.ProxyManager)
    finally:
        pools.clear()


def test_a_proxy_url_user_is_sent_as_proxy_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://bob:p%40ss@proxy.example:3128")
    pools = PoolManagers()
    try:
        proxied = pools.for_url("https://h.example/")
        assert isinstance(proxied, urllib3.ProxyManager)
        assert proxied.proxy_headers == {"proxy-authorization": basic_auth("bob", "p@ss")}
    finally:
        pools.clear()


def test_the_environment_is_read_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    pools = PoolManagers()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    try:
        assert not isinstance(pools.for_url("https://h.example/"), urllib3.ProxyManager)
    finally:
        pools.clear()
