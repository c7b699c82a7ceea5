"""How morgan talks HTTP to indexes and registries: hosts, credentials, proxies.

The index client (``morgan.index``) and the upload client (``morgan.upload``) read
hosts, ``.netrc`` entries and proxy settings the same way, so that a setup that works
for one works for the other, and both as pip does.
"""

from __future__ import annotations

import base64
import logging
import netrc
import os
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import urllib3

log = logging.getLogger(__name__)

# Honours NO_PROXY the way urllib does; not in typeshed, but public since Python 2.
_proxy_bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


def host_port(parts: urllib.parse.SplitResult) -> str:
    """The netloc without credentials, keeping an IPv6 literal's brackets.

    A port out of range or not a number is kept as written, never raised over: this
    also names hosts in messages about URLs that are wrong.
    """
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = _port(parts)
    return f"{host}:{port}" if port else host


def host_key(url: str | urllib.parse.SplitResult) -> str:
    """``scheme://host:port`` of a URL, to tell whether two URLs go to the same server
    (and so may share its credentials); "" for a URL that does not parse."""
    try:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else url
    except ValueError:
        return ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{_port(parts)}"


def _port(parts: urllib.parse.SplitResult) -> str:
    try:
        return str(parts.port or "")
    except ValueError:  # out of range or not a number: the text after the host's colon
        return parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]


def basic_auth(user: str, password: str) -> str:
    """The value of an Authorization header for HTTP basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def netrc_credentials(
    host: str, *, environ: Mapping[str, str] | None = None, path: Path | None = None
) -> tuple[str, str] | None:
    """The login and password a ``.netrc`` file holds for a host (or its ``default``).

    The file is ``path``, else the one ``$NETRC`` names, else ``~/.netrc``, as pip and
    requests read it (without Python's owner and mode check on ``~/.netrc``). A file
    missing, unreadable or unparsable gives None: the request goes without credentials.
    """
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("NETRC") or Path.home() / ".netrc")
    try:
        found = netrc.netrc(str(path)).authenticators(host)
    except FileNotFoundError:
        return None
    except (OSError, netrc.NetrcParseError) as error:
        log.warning("%s: not read (%s)", path, error)
        return None
    if not found:
        return None
    login, _, password = found
    return login or "", password or ""


class PoolManagers:
    """The urllib3 pool manager for each URL: direct, or through the proxy that
    ``HTTP_PROXY`` / ``HTTPS_PROXY`` name for its scheme unless ``NO_PROXY`` lists its host.

    The proxies are read once, when made: the environment does not change during a run.
    A proxy's manager is made when first needed, with the same arguments as the direct one.
    """

    def __init__(self, **arguments: Any) -> None:
        self._arguments = arguments
        self._direct = urllib3.PoolManager(**arguments)
        self._proxy_urls = urllib.request.getproxies_environment()
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str | urllib.parse.SplitResult) -> urllib3.PoolManager:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else url
        proxy = self._proxy_urls.get(parts.scheme)
        if not proxy or _proxy_bypass(parts.hostname or ""):
            return self._direct
        with self._lock:
            manager = self._proxies.get(proxy)
            if manager is None:
                manager = urllib3.ProxyManager(
                    proxy, proxy_headers=_proxy_headers(proxy), **self._arguments
                )
                self._proxies[proxy] = manager
            return manager

    def clear(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        with self._lock:
            for manager in self._proxies.values():
                manager.clear()


def _proxy_headers(proxy: str) -> dict[str, str] | None:
    """Proxy-Authorization for a proxy URL's user: urllib3 does not send it by itself."""
    parts = urllib.parse.urlsplit(proxy)
    if not parts.username:
        return None
    login = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    return urllib3.make_headers(proxy_basic_auth=login)
