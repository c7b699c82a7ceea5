"""morgan/server.py under attack and under load, over real sockets.

The server runs as users run it, in a subprocess. First, fuzzed requests
(hypothesis, derandomized so that every run sends the same ones): request lines,
paths with every encoding trick, and duplicated, huge or malformed headers each
get one well-formed HTTP answer with a sensible status, and no answer ever holds
a byte of what is not public (a secret outside the index; morgan.ini, stray
``.hash`` files, ``.part`` downloads, dotfiles and symlinks leading out, inside
it). Then floods: held-open, half-sent and trickling connections, clients that
hang up mid-download, slow readers, password guessing and a wheel with a huge
zip directory. Other clients must still be answered, the server must live on,
and its threads, descriptors and memory must stay bounded (limits checked from
/proc; times appear only as generous liveness bounds).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import random
import re
import socket
import ssl
import struct
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import builders
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import (
    JSON_V1,
    PIP_ACCEPT,
    ServerProcess,
    Tree,
    find_python,
    make_cert,
    make_tree,
    raw_exchange,
    sha256_hex,
    status_of,
    wait_until,
)
from support import skip_unless_ci

from morgan import server as server_module

#: A generous bound for anything to happen; never a measure of speed.
LIVENESS = 60.0
MIB = 1024  # in kB, the unit of /proc/PID/status

SECRETS = {
    "outside": b"ZQX-OUTSIDE-SECRET-4b1d",
    "ini": b"ZQX-INI-SECRET-90ae",
    "hash": b"ZQX-HASH-SIDECAR-SECRET-77c2",
    "part": b"ZQX-PART-SECRET-d00d",
    "dotfile": b"ZQX-DOTFILE-SECRET-5eed",
    "wheel": b"ZQX-WHEEL-METADATA-SECRET-3f3f",
    "json": b"ZQX-JSON-SECRET-a11a",
}
BIG_BYTES = 8 * 1024 * 1024
HUGE_BYTES = 64 * 1024 * 1024  # more than socket buffers hold: its readers stay mid-download
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# The tree: the standard test mirror, plus secrets and hazards
# ---------------------------------------------------------------------------


class AttackTree:
    """The tree, with every servable body by URL path below /simple/ (not a dataclass, so
    that hypothesis does not print 8 MiB of bytes with a failing example)."""

    def __init__(self, tree: Tree, public: dict[str, bytes], big: Path, huge: Path) -> None:
        self.tree, self.public, self.big, self.huge = tree, public, big, huge

    @property
    def root(self) -> Path:
        return self.tree.root

    def __repr__(self) -> str:
        return f"AttackTree({self.root})"


def make_attack_tree(base: Path) -> AttackTree:
    tree = make_tree(base)
    root, outside = tree.root, tree.outside
    (outside / "attack-secret.txt").write_bytes(SECRETS["outside"])
    with (root / "morgan.ini").open("ab") as stream:
        stream.write(b"token = " + SECRETS["ini"] + b"\n")
    (root / "alpha" / "orphan-1.0.tar.gz.hash").write_bytes(b"sha256=" + SECRETS["hash"])
    (root / "alpha" / ".alpha-2.0.tar.gz.Zq9.part").write_bytes(SECRETS["part"])
    (root / "alpha" / ".env").write_bytes(SECRETS["dotfile"])
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(SECRETS["dotfile"])
    # Symlinks that lead out of the index: a file, a wheel, a project folder, a sidecar.
    leaked = outside / "leakdir"
    leaked.mkdir()
    summary = SECRETS["wheel"].decode()
    wheel = builders.build_wheel(
        leaked,
        "leak",
        "1.0",
        metadata=f"Metadata-Version: 2.1\nName: leak\nVersion: 1.0\nSummary: {summary}\n",
    )
    (leaked / "attack-secret.txt").write_bytes(SECRETS["outside"])
    (root / "alpha" / "leak-1.0.tar.gz").symlink_to(outside / "attack-secret.txt")
    (root / "alpha" / "leak-1.0-py3-none-any.whl").symlink_to(wheel)
    (root / "leak").symlink_to(leaked, target_is_directory=True)
    sneaky = root / "sneaky"
    sneaky.mkdir()
    own = builders.build_wheel(sneaky, "sneaky", "1.0")
    (sneaky / (own.name + ".metadata")).symlink_to(outside / "attack-secret.txt")
    listed = {"files": [{"filename": own.name, "requires-python": SECRETS["json"].decode()}]}
    (outside / "index.json").write_text(json.dumps(listed))
    (sneaky / "index.json").symlink_to(outside / "index.json")
    # FIFOs, where files are expected: opening one to read would wait for a writer forever.
    os.mkfifo(root / "alpha" / "fifo-1.0.tar.gz")
    os.mkfifo(sneaky / (own.name + ".hash"))
    fifos = root / "fifos"
    fifos.mkdir()
    piped = builders.build_wheel(fifos, "fifos", "1.0")
    for suffix in (".hash", ".metadata"):
        os.mkfifo(fifos / (piped.name + suffix))
    os.mkfifo(fifos / "index.json")
    # Large files: random bytes, and a sparse one too large for socket buffers.
    (root / "big").mkdir()
    big = root / "big" / "big-1.0.tar.gz"
    big.write_bytes(random.Random(7).randbytes(BIG_BYTES))
    Path(f"{big}.hash").write_text(f"sha256={sha256_hex(big.read_bytes())}")
    (root / "huge").mkdir()
    huge = root / "huge" / "huge-1.0.tar.gz"
    with huge.open("wb") as stream:
        stream.truncate(HUGE_BYTES)
    Path(f"{huge}.hash").write_text("sha256=" + "0" * 64)

    public = {}
    for project, dists in tree.dists.items():
        for dist in dists:
            public[f"{project}/{dist.filename}"] = dist.path.read_bytes()
            if dist.metadata is not None:
                public[f"{project}/{dist.filename}.metadata"] = dist.metadata
    public[f"sneaky/{own.name}"] = own.read_bytes()
    public[f"fifos/{piped.name}"] = piped.read_bytes()
    for project, served in (("sneaky", own), ("fifos", piped)):
        with zipfile.ZipFile(served) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            public[f"{project}/{served.name}.metadata"] = archive.read(member)
    public["big/big-1.0.tar.gz"] = big.read_bytes()
    for body in public.values():
        for secret in SECRETS.values():
            assert secret not in body
    return AttackTree(tree, public, big, huge)


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> AttackTree:
    return make_attack_tree(tmp_path_factory.mktemp("attack"))


def python_for(version: str) -> str:
    """The interpreter to run the server with: this one, or the oldest supported one."""
    if version == "current":
        return sys.executable
    found = find_python(version)
    if found is None:
        skip_unless_ci(f"no Python {version} on this machine")
    return found


#: The server on this Python, and again on the oldest Python it supports, if present.
PYTHONS = ["current", "3.7"]


@pytest.fixture(scope="module", params=PYTHONS)
def server(attack: AttackTree, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with ServerProcess(attack.root, python=python_for(request.param)) as running:
        yield running


USERS = {"alice": "wonderland", "bob": "pässwörd"}


@pytest.fixture(scope="module")
def auth_server(
    attack: AttackTree, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("auth")
    users = folder / "users"
    users.write_text(
        "".join(f"{u}:{server_module.hash_password(p, 1000)}\n" for u, p in USERS.items()),
        encoding="utf-8",
    )
    with ServerProcess(attack.root, "--auth-file", str(users), logs=folder) as running:
        yield running


# ---------------------------------------------------------------------------
# Reading answers
# ---------------------------------------------------------------------------

PAGE_TYPES = (JSON_V1, "application/vnd.pypi.simple.v1+html", "text/html")
FUZZ_STATUSES = {200, 206, 301, 304, 400, 401, 404, 405, 406, 414, 416, 431, 501, 505}


class _Replay:
    """Bytes already received, as http.client.HTTPResponse wants a socket."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self.data)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def first_answer(reply: bytes, head: bool) -> Answer:
    """The first response in ``reply``, parsed strictly (status line, headers, framing)."""
    response = http.client.HTTPResponse(_Replay(reply), method="HEAD" if head else "GET")  # type: ignore[arg-type]
    try:
        response.begin()
        body = b"" if head else response.read()
        return Answer(response.status, response.headers, body)
    finally:
        response.close()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, shut our side, read the whole reply (whatever the server did)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=LIVENESS) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # it answered and closed before taking everything: read what it said
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def assert_reveals_nothing(reply: bytes) -> None:
    for name, secret in SECRETS.items():
        assert secret not in reply, f"the {name} secret was served"
    assert b"Traceback" not in reply
    assert b"hunter2" not in reply  # morgan.ini of the standard test tree


def check_answer(attack: AttackTree, request: bytes, reply: bytes, head: bool) -> Answer | None:
    """Every request that holds something gets one well-formed answer that reveals nothing."""
    assert_reveals_nothing(reply)
    if not request.lstrip(b"\r\n"):
        return None  # nothing was asked
    assert reply, f"no answer to {request[:300]!r}"
    answer = first_answer(reply, head)
    assert answer.status in FUZZ_STATUSES, (answer.status, request[:300], reply[:300])
    location = answer.headers.get("Location")
    if location is not None:
        assert location.startswith("/") and not location.startswith("//"), location
        assert not re.search(r"[\x00-\x20\x7f]", location), location
    content_type = answer.headers.get("Content-Type", "")
    if answer.status in (200, 206) and content_type not in PAGE_TYPES and answer.body:
        served = attack.public.values()
        if answer.status == 200:
            assert any(answer.body == body for body in served), request[:300]
        else:
            assert any(answer.body in body for body in served), request[:300]
    return answer


# ---------------------------------------------------------------------------
# Fuzzing: request lines, headers, paths, ranges, credentials
# ---------------------------------------------------------------------------

METHODS = [b"GET"] * 4 + [b"HEAD", b"POST", b"OPTIONS", b"CONNECT", b"get", b"BREW", b"G\x00T"]
VERSIONS = [b"HTTP/1.1"] * 4 + [
    b"HTTP/1.0",
    b"HTTP/0.9",
    b"HTTP/2.0",
    b"HTTP/1.10",
    b"HTTP/1",
    b"http/1.1",
    b"HTTP/01.1",
    b"HTTP/1.1 x",
    b"",
    b"HTTP/1.1\x00",
    b"HTTP/\xff",
]
PRIVATE_NAMES = [
    "morgan.ini",
    "server.py",
    "index.json",
    "index.html",
    ".env",
    ".git",
    "config",
    "orphan-1.0.tar.gz.hash",
    "alpha-1.0-py3-none-any.whl.hash",
    ".alpha-2.0.tar.gz.Zq9.part",
    "leak-1.0.tar.gz",
    "leak-1.0-py3-none-any.whl",
    "leak-1.0-py3-none-any.whl.metadata",
    "sneaky-1.0-py3-none-any.whl.metadata",
    "leak",
    "leakdir",
    "escaped",
    "outside",
    "attack-secret.txt",
    "secret.txt",
    "fifo-1.0.tar.gz",
    "fifos-1.0-py3-none-any.whl.hash",
    "notes.txt",
    ".hidden",
    "etc",
    "passwd",
]
PUBLIC_FILES = [
    "alpha-1.0.tar.gz",
    "alpha-1.0-py3-none-any.whl",
    "alpha-1.0-py3-none-any.whl.metadata",
    "beta-1.2-py3-none-any.whl",
    "sneaky-1.0-py3-none-any.whl",
    "fifos-1.0-py3-none-any.whl.metadata",
]
PUBLIC_NAMES = [
    "",
    "simple",
    "alpha",
    "Alpha",
    "ALPHA",
    "beta",
    "sneaky",
    "big",
    "zope_interface",
    "zope.interface",
    *PUBLIC_FILES,
]
TRICKS = [
    "..",
    ".",
    "...",
    "%2e%2e",
    "%2E%2e",
    ".%2e",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "..%2f",
    "..%5c",
    "..\\",
    "%00",
    "\x00",
    "%",
    "%zz",
    "%2",
    "~",
    "C:",
    "C:\\",
    "%ff",
    "\u2025",
    "\uff0e\uff0e",
    "?",
    "#",
    ";",
    "*",
]
SEPARATORS = [b"/"] * 6 + [b"\\", b"%2f", b"%2F", b"%5c", b"//", b"/./", b"/../"]
PREFIXES = (
    [b"/"] * 3
    + [b"/simple/"] * 3
    + [
        b"",
        b"*",
        b"//",
        b"http://127.0.0.1/",
        b"HTTP://127.0.0.1/simple/",
        b"https://evil.example/",
        b"/simple//",
        b"\\",
        b"/simple/../",
    ]
)
SUFFIXES = [b""] * 4 + [
    b"/",
    b"?format=json",
    b"?format=application/vnd.pypi.simple.v1+json",
    b"?format=%ff",
    b"?format=",
    b"?x=%00&format=html",
    b"#frag",
    b"?",
]


PROJECT_NAMES = [
    "alpha",
    "Alpha",
    "beta",
    "sneaky",
    "fifos",
    "big",
    "legacy",
    "zope_interface",
    "Zope.Interface",
    "leak",
    "escaped",
    "simple",
    ".git",
    ".hidden",
    "NotNormalized",
    "empty-project",
    "..",
    "%2e%2e",
]
FILE_NAMES = PUBLIC_FILES + PRIVATE_NAMES + ["", "..", "%2e%2e", "%00", "alpha-1.0.tar.gz%00"]


@st.composite
def segments(draw: st.DrawFn, names: tuple[str, ...] = ()) -> bytes:
    """One path segment: a name that matters or random text, encoded in some way."""
    if names:
        text = draw(st.sampled_from(names))
    else:
        text = draw(
            st.one_of(
                st.sampled_from(PUBLIC_NAMES + PRIVATE_NAMES + TRICKS),
                st.text(max_size=10),
                st.binary(max_size=10).map(lambda data: data.decode("latin-1")),
            )
        )
    data = text.encode("utf-8")
    mode = draw(st.sampled_from(["raw"] * 4 + ["some", "all", "double"]))
    if mode == "raw":
        return data
    if mode == "double":
        return b"".join(b"%%25%02X" % byte for byte in data)
    chosen = draw(st.lists(st.booleans(), min_size=len(data), max_size=len(data)))
    if mode == "all":
        chosen = [True] * len(data)
    lower = draw(st.booleans())
    return b"".join(
        (b"%%%02x" if lower else b"%%%02X") % byte if pick else bytes([byte])
        for byte, pick in zip(data, chosen)
    )


@st.composite
def targets(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # project and file names, each perhaps encoded
        parts = [draw(segments(tuple(PROJECT_NAMES))), draw(segments(tuple(FILE_NAMES)))]
        parts = parts[: draw(st.integers(1, 2))]
    else:
        parts = draw(st.lists(segments(), max_size=5))
    separators = draw(
        st.lists(st.sampled_from(SEPARATORS), min_size=len(parts), max_size=len(parts))
    )
    path = b"".join(part + separator for part, separator in zip(parts, separators))
    if parts and draw(st.booleans()):
        path = path[: -len(separators[-1])]
    padding = draw(st.sampled_from([0] * 12 + [5000, 9000, 40000, 70000]))
    return draw(st.sampled_from(PREFIXES)) + path + b"a" * padding + draw(st.sampled_from(SUFFIXES))


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


HEADER_VALUES: dict[bytes, list[bytes]] = {
    b"Host": [b"127.0.0.1", b"", b"x" * 3000, b"a b", b"[::1]:99999", b"\xff"],
    b"Range": [
        b"bytes=0-0",
        b"bytes=0-",
        b"bytes=-1",
        b"bytes=-0",
        b"bytes=5-1",
        b"bytes=0-1,4-5",
        b"bytes=",
        b"bytes=-",
        b"bytes=--1",
        b"items=0-1",
        b"bytes=99999999999999999999999999999-",
        b"bytes=0-99999999999999999999999999999999999",
        b"bytes=1-2-3",
        b"bytes = 1 - 2",
        b"BYTES=0-3",
        b"bytes=\x00-1",
        b"bytes=" + b"1" * 5000 + b"-",
        b"bytes=-" + b"9" * 40,
    ],
    b"Accept": [
        b"*/*",
        JSON_V1.encode(),
        PIP_ACCEPT.encode(),
        b"text/html;q=0",
        b"application/json",
        b"*/*;q=nan",
        b"*/*;q=inf",
        b"*/*;q=1e400",
        b"text/*;q=-1",
        b";;;,,,",
        b"/",
        b"a/b/c",
        b"application/vnd.pypi.simple.latest+json;q=0.5, */*;q=0.1",
        b", ".join(b"text/html;q=0.%d" % (i % 10) for i in range(2000)),
    ],
    b"Authorization": [
        b"Basic",
        b"Basic ",
        b"Basic !!!",
        basic(b"alice", b"x"),
        b"Basic " + base64.b64encode(b"nocolon"),
        basic(b"\xff\xfe", b"\x00"),
        b"Bearer x",
        b"Digest username=x",
        b"Basic " + b"A" * 20000,
        b"Basic =====",
    ],
    b"If-None-Match": [b"*", b'"x"', b'W/"x"', b"W/", b'"', b",,,", b'"p' + b"0" * 32 + b'"'],
    b"If-Modified-Since": [
        b"Thu, 01 Jan 1970 00:00:00 GMT",
        b"Fri, 31 Dec 9999 23:59:59 GMT",
        b"Mon, 32 Foo 2020 99:99:99 GMT",
        b"0",
        b"-1",
        b"99999999999999999999",
        b"Sun, 06 Nov 1994 08:49:37 +9999",
        b"\xff",
    ],
    b"If-Range": [b'"x"', b"W/", b"*", b"Thu, 01 Jan 1970 00:00:00 GMT", b"garbage"],
    b"Content-Length": [b"0", b"5", b"-1", b"abc", b"99999999999999999999", b"0, 0"],
    b"Transfer-Encoding": [b"chunked", b"gzip, chunked", b"identity", b"\x00"],
    b"Connection": [b"close", b"keep-alive", b"Upgrade", b"", b"close, close"],
    b"Expect": [b"100-continue", b"x"],
}
HEADER_NAMES = [*HEADER_VALUES, b"Cookie", b"User-Agent", b"X-\x00", b"X Y", b"", b"\xff"]


@st.composite
def header_lines(draw: st.DrawFn) -> list[bytes]:
    lines = []
    host = draw(st.sampled_from(["one", "one", "one", "none", "two"]))
    if host != "none":
        lines.append(b"Host: 127.0.0.1")
    if host == "two":
        lines.append(b"Host: other")
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(HEADER_NAMES) | st.binary(min_size=1, max_size=12))
        value = draw(st.sampled_from(HEADER_VALUES.get(name, [b"x"])) | st.binary(max_size=30))
        separator = draw(st.sampled_from([b": "] * 6 + [b":", b" : ", b":\t", b"::", b""]))
        fold = draw(st.sampled_from([b""] * 9 + [b" "]))
        lines.append(fold + name + separator + value)
    lines += [b"X-Dup: 1"] * draw(st.sampled_from([0] * 8 + [99, 101, 400]))
    big = draw(st.sampled_from([0] * 8 + [8000, 33000, 70000]))
    if big:
        lines.append(b"X-Big: " + b"a" * big)
    return lines


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(request bytes, whether it is a HEAD) with anything wrong that a client may send."""
    method = draw(st.sampled_from(METHODS) | st.binary(max_size=6))
    space = draw(st.sampled_from([b" "] * 8 + [b"  ", b"\t"]))
    if draw(st.integers(0, 9)) == 0:
        line = draw(st.binary(max_size=120))  # anything at all
    else:
        line = method + space + draw(targets()) + space + draw(st.sampled_from(VERSIONS))
    end = draw(st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r"]))
    lead = draw(st.sampled_from([b""] * 6 + [b"\r\n", b"\n\n", b"\r\n\r\n\r\n"]))
    body = draw(st.sampled_from([b""] * 6 + [b"abc", b"0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"]))
    head = b"".join(line + end for line in [line, *draw(header_lines())])
    return lead + head + b"\r\n" + body, method == b"HEAD"


@settings(FUZZ, max_examples=400)
@given(request=requests())
def test_fuzzed_requests_get_one_sound_answer(
    server: ServerProcess, attack: AttackTree, request: tuple[bytes, bool]
) -> None:
    data, head = request
    reply = exchange(server.port, data)
    check_answer(attack, data, reply, head)


@settings(FUZZ, max_examples=400)
@given(target=targets(), head=st.booleans())
def test_fuzzed_paths_reach_only_public_things(
    server: ServerProcess, attack: AttackTree, target: bytes, head: bool
) -> None:
    method = b"HEAD" if head else b"GET"
    data = b"%s %s HTTP/1.1\r\nHost: x\r\nAccept: %s\r\n\r\n" % (
        method,
        target,
        PIP_ACCEPT.encode(),
    )
    answer = check_answer(attack, data, exchange(server.port, data), head)
    assert answer is not None
    assert answer.status in (200, 301, 400, 404, 406, 414), (target, answer.status)


RANGE_TARGETS = [
    "big/big-1.0.tar.gz",
    "alpha/alpha-1.0.tar.gz",
    "alpha/alpha-1.0-py3-none-any.whl.metadata",  # a sidecar file
    "sneaky/sneaky-1.0-py3-none-any.whl.metadata",  # read from the wheel: bytes in memory
]


@st.composite
def range_values(draw: st.DrawFn) -> bytes:
    numbers = st.one_of(st.integers(0, BIG_BYTES + 10), st.sampled_from([0, 1, 2**64, 10**40]))
    first = draw(st.none() | numbers)
    last = draw(st.none() | numbers)
    text = b"bytes=%s-%s" % (
        b"" if first is None else str(first).encode(),
        b"" if last is None else str(last).encode(),
    )
    return draw(st.sampled_from([text] * 4 + HEADER_VALUES[b"Range"]))


CONDITIONS = {
    b"Range": st.none() | range_values(),
    b"If-Range": st.none() | st.sampled_from([*HEADER_VALUES[b"If-Range"], b"ETAG"]),
    b"If-None-Match": st.none() | st.sampled_from([*HEADER_VALUES[b"If-None-Match"], b"ETAG"]),
    b"If-Modified-Since": st.none() | st.sampled_from(HEADER_VALUES[b"If-Modified-Since"]),
}


@settings(FUZZ, max_examples=200)
@given(target=st.sampled_from(RANGE_TARGETS), headers=st.fixed_dictionaries(CONDITIONS))
def test_fuzzed_ranges_and_conditions_give_the_right_bytes(
    server: ServerProcess, attack: AttackTree, target: str, headers: dict[bytes, bytes | None]
) -> None:
    full = attack.public[target]
    etag = first_answer(
        exchange(server.port, b"HEAD /simple/%s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode()),
        head=True,
    ).headers["ETag"]
    lines = [
        name + b": " + (etag.encode() if value == b"ETAG" else value)
        for name, value in headers.items()
        if value is not None
    ]
    data = b"GET /simple/%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (
        target.encode(),
        b"".join(line + b"\r\n" for line in lines),
    )
    answer = check_answer(attack, data, exchange(server.port, data), head=False)
    assert answer is not None
    assert answer.status in (200, 206, 304, 416), answer.status
    if answer.status == 200:
        assert answer.body == full
    elif answer.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", answer.headers["Content-Range"])
        assert match, answer.headers["Content-Range"]
        first, last, size = (int(group) for group in match.groups())
        assert size == len(full)
        assert answer.body == full[first : last + 1]
        assert headers[b"Range"] is not None
    elif answer.status == 416:
        assert answer.headers["Content-Range"] == f"bytes */{len(full)}"
    else:
        assert answer.body == b""
        assert headers[b"If-None-Match"] or headers[b"If-Modified-Since"]


def assert_unharmed(running: ServerProcess) -> None:
    """Run after the fuzzers: no traceback logged, no 500, alive and answering."""
    assert running.alive()
    assert "Traceback" not in running.stderr()
    assert '" 500 ' not in running.stderr()
    assert running.request("/simple/").status in (200, 401)


def test_no_fuzzed_request_made_the_server_fail(server: ServerProcess) -> None:
    assert_unharmed(server)
    for project, wheel in (
        ("sneaky", "sneaky-1.0-py3-none-any.whl"),
        ("fifos", "fifos-1.0-py3-none-any.whl"),
    ):
        page = server.request(f"/simple/{project}/", {"Accept": JSON_V1})
        assert page.status == 200
        assert [f["filename"] for f in page.json()["files"]] == [wheel]
        metadata = server.request(f"/simple/{project}/{wheel}.metadata")
        assert metadata.status == 200
        assert metadata.body.startswith(b"Metadata-Version: ")


CREDENTIALS = [(u.encode(), p.encode("utf-8")) for u, p in USERS.items()]


@st.composite
def authorizations(draw: st.DrawFn) -> bytes:
    scheme = draw(st.sampled_from([b"Basic "] * 6 + [b"basic ", b"BASIC  ", b" Basic ", b"Basic"]))
    user, password = draw(st.sampled_from(CREDENTIALS))
    user = draw(st.sampled_from([user] * 3 + [b"mallory", b"", b"alice ", user.upper()]))
    password = draw(
        st.sampled_from([password] * 3 + [b"", password + b"x", b"wonderland", b":"])
        | st.binary(max_size=12)
    )
    encoded = base64.b64encode(user + b":" + password)
    encoded = draw(
        st.sampled_from(
            [encoded] * 4 + [encoded.rstrip(b"="), encoded + b"=", b" " + encoded, encoded[:-1]]
        )
    )
    return draw(st.sampled_from([scheme + encoded] * 4 + HEADER_VALUES[b"Authorization"]))


def proves(header: bytes) -> bool:
    """Whether a header names a user and the right password, read as the server must."""
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return False
    return decoded in {user + b":" + password for user, password in CREDENTIALS}


@settings(FUZZ, max_examples=200)
@given(
    header=authorizations(), path=st.sampled_from(["/simple/", "/simple/alpha/alpha-1.0.tar.gz"])
)
def test_fuzzed_credentials_let_in_exactly_the_users(
    auth_server: ServerProcess, attack: AttackTree, header: bytes, path: str
) -> None:
    data = b"GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % (path.encode(), header)
    answer = check_answer(attack, data, exchange(auth_server.port, data), head=False)
    assert answer is not None
    assert answer.status == (200 if proves(header) else 401), header


def test_the_secrets_are_reachable_only_through_the_file_system(attack: AttackTree) -> None:
    """The fuzzers prove nothing unless the secrets really are where the names lead."""
    root = attack.root
    assert (root / "alpha" / "leak-1.0.tar.gz").read_bytes() == SECRETS["outside"]
    assert SECRETS["ini"] in (root / "morgan.ini").read_bytes()
    assert (root / "leak" / "attack-secret.txt").read_bytes() == SECRETS["outside"]
    assert (root / "sneaky" / "sneaky-1.0-py3-none-any.whl.metadata").read_bytes() == (
        SECRETS["outside"]
    )
    assert SECRETS["json"] in (root / "sneaky" / "index.json").read_bytes()


def test_no_fuzzed_credentials_made_the_server_fail(auth_server: ServerProcess) -> None:
    assert_unharmed(auth_server)


# ---------------------------------------------------------------------------
# Load: held, half-sent and trickling connections
# ---------------------------------------------------------------------------


def connect(port: int, **options: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for option, value in options.items():
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), value)
    sock.settimeout(LIVENESS)
    try:
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) the connection, without waiting.

    (With a timeout set, recv would first wait for data, MSG_DONTWAIT or not.)
    """
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass  # whatever it said before closing
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
    return True


def close_all(sockets: list[socket.socket], reset: bool = False) -> None:
    for sock in sockets:
        if reset:  # an abortive close: the server sees a reset, not an end of stream
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    sockets.clear()


def run_clients(count: int, job: Callable[[int], None]) -> None:
    """Run ``job(n)`` for n in range(count) on as many threads; re-raise the first failure."""
    failures: list[BaseException] = []

    def guarded(number: int) -> None:
        try:
            job(number)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LIVENESS * 2)
        assert not thread.is_alive(), "a client hung"
    if failures:
        raise failures[0]


def download(server: ServerProcess, path: str) -> bytes:
    connection = server.connection(timeout=LIVENESS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200, response.status
        return response.read()
    finally:
        connection.close()


def ordinary_clients(server: ServerProcess, attack: AttackTree, count: int = 10) -> None:
    """Clients that want pages and files, and must get them, whatever else is going on."""

    def job(number: int) -> None:
        page = server.request("/simple/alpha/", {"Accept": JSON_V1})
        assert page.status == 200
        assert "alpha-1.0.tar.gz" in {f["filename"] for f in page.json()["files"]}
        path = ["alpha/alpha-1.0.tar.gz", "beta/beta-1.2-py3-none-any.whl"][number % 2]
        assert download(server, f"/simple/{path}") == attack.public[path]

    run_clients(count, job)


def test_held_open_connections_hold_no_threads(attack: AttackTree) -> None:
    """200 connections held open (half idle, half mid-request) while others are served."""
    with ServerProcess(attack.root, "--quiet", "--threads", "8") as server:
        ordinary_clients(server, attack, 2)
        before = server.status("VmRSS", "Threads")
        held: list[socket.socket] = []
        try:
            for number in range(200):
                held.append(connect(server.port))
                if number % 2:
                    held[-1].sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\nAccept: ")
            ordinary_clients(server, attack, 20)
            during = server.status("VmRSS", "Threads")
            assert during["Threads"] <= 8 + 2, during  # the workers and the loop
            assert not any(closed_by_server(sock) for sock in held)  # nobody was pushed out
        finally:
            close_all(held)
        ordinary_clients(server, attack, 4)
        after = server.status("VmRSS", "Threads")
        assert after["VmRSS"] - before["VmRSS"] < 32 * MIB, (before, during, after)
        assert server.alive()


@pytest.mark.parametrize("version", PYTHONS)
def test_slow_headers_are_cut_off_at_a_total_deadline(attack: AttackTree, version: str) -> None:
    """Slow-loris: a header byte every 0.2 s never ends the head; --timeout 2 still does.

    A timeout per received byte would keep these forever. Others are served meanwhile,
    and clients that stop in the middle of their headers are closed too.
    """
    arguments = ["--quiet", "--timeout", "2"]
    with ServerProcess(attack.root, *arguments, python=python_for(version)) as server:
        trickling = [connect(server.port) for _ in range(50)]
        silent = [connect(server.port) for _ in range(50)]
        stop = threading.Event()
        cut_off: set[int] = set()
        try:
            for sock in trickling + silent:
                sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")

            def trickle() -> None:
                while not stop.is_set() and len(cut_off) < len(trickling):
                    for number, sock in enumerate(trickling):
                        if number in cut_off:
                            continue
                        try:
                            sock.send(b"z")
                        except OSError:
                            cut_off.add(number)
                            continue
                        if closed_by_server(sock):
                            cut_off.add(number)
                    stop.wait(0.2)

            thread = threading.Thread(target=trickle)
            thread.start()
            try:
                ordinary_clients(server, attack, 10)
                wait_until(
                    lambda: len(cut_off) == len(trickling),
                    LIVENESS,
                    "every trickling client cut off",
                )
            finally:
                stop.set()
                thread.join()
            wait_until(
                lambda: all(closed_by_server(sock) for sock in silent),
                LIVENESS,
                "every silent client closed",
            )
            ordinary_clients(server, attack, 4)
        finally:
            close_all(trickling)
            close_all(silent)
        assert server.alive()
        assert "Traceback" not in server.stderr()


def test_overlong_heads_are_refused_without_reading_them_whole(attack: AttackTree) -> None:
    """Request line, header count and head size are bounded; each gets its status."""
    with ServerProcess(attack.root, "--quiet") as server:
        cases = [
            (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"X-Many: " + b"b" * 1000 + b"\r\n") * 60, 431),
        ]
        for request, status in cases:
            assert status_of(exchange(server.port, request)) == status
        # An endless header line, sent without pause: the server stops taking it.
        with connect(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            with pytest.raises(OSError):
                for _ in range(10000):  # 40 MB at most
                    sock.sendall(b"a" * 4096)
        assert server.alive()
        assert server.request("/simple/").status == 200


# ---------------------------------------------------------------------------
# Load: downloads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", PYTHONS)
def test_clients_hanging_up_mid_download_harm_nothing(attack: AttackTree, version: str) -> None:
    """90 clients drop an 8 MiB download part-way (half with a reset); all is cleaned up."""
    path = "/simple/big/big-1.0.tar.gz"
    request = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
    with ServerProcess(attack.root, "--quiet", python=python_for(version)) as server:
        assert download(server, path) == attack.public["big/big-1.0.tar.gz"]
        before = server.status("VmRSS", "Threads")
        files_before = server.open_files()
        amounts = [0, 1, 1000, 100_000, 1_000_000, 4_000_000]

        def hang_up(number: int) -> None:
            with connect(server.port) as sock:
                sock.sendall(request)
                wanted, got = amounts[number % len(amounts)], 0
                while got < wanted:
                    chunk = sock.recv(min(65536, wanted - got))
                    assert chunk
                    got += len(chunk)
                if number % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        for _ in range(3):
            run_clients(30, hang_up)
        wait_until(
            lambda: server.open_files() <= files_before,
            LIVENESS,
            "the server closed every abandoned connection and file",
        )
        ordinary_clients(server, attack, 10)
        after = server.status("VmRSS", "Threads")
        assert after["VmRSS"] - before["VmRSS"] < 32 * MIB, (before, after)
        assert server.alive()
        assert "Traceback" not in server.stderr()


def test_fifty_clients_download_the_largest_file_at_once(attack: AttackTree) -> None:
    expected = hashlib.sha256(attack.public["big/big-1.0.tar.gz"]).hexdigest()
    with ServerProcess(attack.root, "--quiet") as server:
        assert server.request("/simple/big/").status == 200
        before = server.status("VmRSS")

        def fetch(number: int) -> None:
            body = download(server, "/simple/big/big-1.0.tar.gz")
            assert hashlib.sha256(body).hexdigest() == expected

        run_clients(50, fetch)
        after = server.status("VmRSS", "VmHWM")
        assert after["VmHWM"] - before["VmRSS"] < 48 * MIB, (before, after)
        assert server.alive()


def test_slow_readers_hold_no_thread(attack: AttackTree) -> None:
    """30 clients that stop reading mid-download, with 2 worker threads: others still served."""
    request = b"GET /simple/huge/huge-1.0.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n"
    with ServerProcess(attack.root, "--quiet", "--threads", "2") as server:
        readers: list[socket.socket] = []
        try:
            for _ in range(30):
                readers.append(connect(server.port, SO_RCVBUF=16384))
                readers[-1].sendall(request)
                assert readers[-1].recv(12) == b"HTTP/1.1 200"
            ordinary_clients(server, attack, 10)
            assert (
                download(server, "/simple/big/big-1.0.tar.gz")
                == attack.public["big/big-1.0.tar.gz"]
            )
            assert server.status("Threads")["Threads"] <= 2 + 2
        finally:
            close_all(readers)
        assert server.alive()


def test_at_the_connection_limit_idle_ones_make_room_then_503(attack: AttackTree) -> None:
    huge = b"GET /simple/huge/huge-1.0.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n"
    with ServerProcess(
        attack.root, "--quiet", "--max-connections", "20", "--threads", "2"
    ) as server:
        idle = [connect(server.port) for _ in range(20)]
        busy: list[socket.socket] = []
        try:
            # An idle connection is closed to make room for one with a request.
            assert server.request("/simple/").status == 200
            wait_until(
                lambda: any(closed_by_server(sock) for sock in idle),
                LIVENESS,
                "an idle connection closed to make room",
            )
            close_all(idle)
            # When every connection is busy, a newcomer is told to come back later.
            for _ in range(20):
                busy.append(connect(server.port, SO_RCVBUF=16384))
                busy[-1].sendall(huge)
                assert busy[-1].recv(12) == b"HTTP/1.1 200"
            reply = raw_exchange(server.port, b"GET /simple/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(reply) == 503
            assert b"Retry-After: " in reply
        finally:
            close_all(idle)
            close_all(busy, reset=True)
        wait_until(
            lambda: status_of(raw_get_simple(server.port)) == 200,
            LIVENESS,
            "answers again once the busy clients left",
        )
        assert server.alive()


def test_a_low_open_file_limit_means_fewer_connections_not_failures(attack: AttackTree) -> None:
    """With 100 descriptors in all, 150 clients at once: the server fits its connection
    limit to the system's; clients over it wait (or are told 503) and are all answered."""
    arguments = ["--quiet", "--threads", "4"]
    with ServerProcess(attack.root, *arguments, open_files=100) as server:
        assert "at most 32 connections" in server.stderr()
        expected = attack.public["alpha/alpha-1.0.tar.gz"]

        def fetch(number: int) -> None:
            request = b"GET /simple/alpha/alpha-1.0.tar.gz HTTP/1.0\r\n\r\n"
            gate.wait(LIVENESS)
            for _ in range(1000):
                try:
                    reply = raw_exchange(server.port, request)
                except ConnectionError:
                    reply = b""  # closed to make room before it was read: try again
                if reply and status_of(reply) == 200:
                    assert reply.endswith(expected)
                    return
                if reply:
                    assert status_of(reply) == 503  # come back later
                threading.Event().wait(0.05)
            raise AssertionError("never answered")

        gate = threading.Barrier(150)
        run_clients(150, fetch)
        assert server.alive()
        assert "Traceback" not in server.stderr()


def raw_get_simple(port: int) -> bytes:
    return raw_exchange(port, b"GET /simple/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


# ---------------------------------------------------------------------------
# Load: password guessing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("same", [False, True], ids=["different", "same"])
def test_password_guessing_is_shed_and_known_users_still_get_in(
    attack: AttackTree, tmp_path: Path, same: bool
) -> None:
    """60 wrong passwords at once, all different or all the same: a few are checked (401),
    the rest get 503 at once instead of holding threads while they wait for PBKDF2; a
    user already let in is not kept waiting."""
    users = tmp_path / "users"
    users.write_text(
        "alice:" + server_module.hash_password("wonderland", 600_000) + "\n"
        "bob:" + server_module.hash_password("builder", 1000) + "\n"
    )
    with ServerProcess(attack.root, "--quiet", "--auth-file", str(users)) as server:
        bob = {"Authorization": "Basic " + base64.b64encode(b"bob:builder").decode()}
        assert server.request("/simple/", bob).status == 200  # remembered from now on
        gate = threading.Barrier(60)
        statuses: list[int] = []

        def guess(number: int) -> None:
            header = base64.b64encode(b"alice:guess-%d" % (0 if same else number)).decode()
            connection = server.connection(timeout=LIVENESS)
            try:
                gate.wait(LIVENESS)
                connection.request("GET", "/simple/", headers={"Authorization": "Basic " + header})
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            finally:
                connection.close()

        guessing = threading.Thread(target=run_clients, args=(60, guess))
        guessing.start()
        try:
            for _ in range(5):
                assert server.request("/simple/", bob).status == 200
        finally:
            guessing.join(LIVENESS * 3)
        assert not guessing.is_alive()
        assert set(statuses) <= {401, 503}, statuses
        assert 401 in statuses
        assert 503 in statuses
        assert server.alive()


# ---------------------------------------------------------------------------
# TLS under the same treatment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", PYTHONS)
def test_tls_stalls_and_hang_ups_harm_nobody(
    attack: AttackTree, tmp_path: Path, version: str
) -> None:
    """Connections that never finish a handshake, or stop inside one, or drop a download:
    HTTPS clients are still served, and threads and memory stay bounded."""
    python = python_for(version)
    cert, key = make_cert(tmp_path)
    arguments = ["--quiet", "--certfile", str(cert), "--keyfile", str(key), "--threads", "4"]
    with ServerProcess(attack.root, *arguments, python=python, logs=tmp_path / "logs") as server:
        server.ssl_context = ssl.create_default_context(cafile=str(cert))
        big = attack.public["big/big-1.0.tar.gz"]
        assert download(server, "/simple/big/big-1.0.tar.gz") == big
        before = server.status("VmRSS")
        stalled: list[socket.socket] = []
        try:
            for number in range(100):
                stalled.append(connect(server.port))
                if number % 2:  # the start of a ClientHello, and nothing more
                    stalled[-1].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")

            def hang_up(number: int) -> None:
                with connect(server.port) as raw:
                    sock = server.ssl_context.wrap_socket(raw, server_hostname="localhost")  # type: ignore[union-attr]
                    with sock:
                        sock.sendall(b"GET /simple/big/big-1.0.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n")
                        got, wanted = 0, [1, 100_000, 2_000_000][number % 3]
                        while got < wanted:
                            got += len(sock.recv(65536))
                        if number % 2:
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )

            run_clients(20, hang_up)
            ordinary_clients(server, attack, 10)
            run_clients(
                10, lambda _: assert_equal(download(server, "/simple/big/big-1.0.tar.gz"), big)
            )
            assert server.status("Threads")["Threads"] <= 4 + 2
        finally:
            close_all(stalled)
        after = server.status("VmRSS")
        assert after["VmRSS"] - before["VmRSS"] < 32 * MIB, (before, after)
        assert server.alive()
        assert "Traceback" not in server.stderr()


def assert_equal(left: bytes, right: bytes) -> None:
    assert left == right


def test_many_clients_asking_for_a_new_large_file_cost_one_hashing(tmp_path: Path) -> None:
    """30 clients at once want the page of a project whose 256 MiB file was dropped in by
    hand (no sidecar): it is read once to hash it, not once per client."""
    tree = make_tree(tmp_path)
    herd = tree.root / "herd"
    herd.mkdir()
    size = 256 * 1024 * 1024
    with (herd / "herd-1.0.tar.gz").open("wb") as stream:
        stream.truncate(size)  # sparse: zeros from the page cache, no disk
    with ServerProcess(tree.root, "--quiet") as server:
        before = server.bytes_read()
        gate = threading.Barrier(30)
        digests: list[str] = []

        def page(number: int) -> None:
            connection = server.connection(timeout=LIVENESS)
            try:
                gate.wait(LIVENESS)
                connection.request("GET", "/simple/herd/", headers={"Accept": JSON_V1})
                response = connection.getresponse()
                assert response.status == 200
                digests.append(json.loads(response.read())["files"][0]["hashes"]["sha256"])
            finally:
                connection.close()

        run_clients(30, page)
        assert set(digests) == {hashlib.sha256(bytes(size)).hexdigest()}
        assert server.bytes_read() - before < 2 * size


# ---------------------------------------------------------------------------
# A hand-dropped wheel with a huge zip directory
# ---------------------------------------------------------------------------


def zip_local(name: bytes, method: int, data: bytes, plain: bytes) -> bytes:
    """A local file header and its data (``plain`` is the uncompressed content)."""
    fields = (20, 0, method, 0, 0, zlib.crc32(plain), len(data), len(plain), len(name), 0)
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + name + data


def zip_entry(name: bytes, method: int, data: bytes, plain: bytes, at: int) -> bytes:
    """A central directory entry for a member whose local header is at ``at``."""
    sizes = (zlib.crc32(plain), len(data), len(plain), len(name), 0, 0, 0, 0, 0, at)
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, *sizes) + name


def write_wide_wheel(path: Path, members: int, metadata: bytes) -> None:
    """A wheel whose directory lists ``members`` files before its METADATA (all but the
    METADATA share one small stored member, so the file is mostly directory)."""
    name, version = path.name.split("-")[:2]
    info = f"{name}-{version}.dist-info/METADATA".encode()
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = deflater.compress(metadata) + deflater.flush()
    small = b"x = 1\n"
    first = zip_local(info, 8, packed, metadata)
    second = zip_local(b"pkg/a.py", 0, small, small)
    directory = [
        zip_entry(b"pkg/m%07d.py" % number, 0, small, small, len(first))
        for number in range(members)
    ]
    directory.append(zip_entry(info, 8, packed, metadata, 0))
    listing = b"".join(directory)
    start = len(first) + len(second)
    ending = b""
    count = len(directory)
    if count > 0xFFFF:  # ZIP64: the counts go in a record of their own
        ending = struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(listing), start
        )
        ending += struct.pack("<4sLQL", b"PK\x06\x07", 0, start + len(listing), 1)
        count = 0xFFFF
    ending += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(listing), start, 0)
    path.write_bytes(first + second + listing + ending)


def test_a_wheel_with_a_huge_zip_directory_is_read_with_flat_memory(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    metadata = builders.core_metadata("beta", "9.0", requires_python=">=3.8").encode()
    wide = tree.root / "beta" / "beta-9.0-py3-none-any.whl"
    write_wide_wheel(wide, 400_000, metadata)
    assert wide.stat().st_size > 20 * 1024 * 1024
    lying = tree.root / "beta" / "beta-9.1-py3-none-any.whl"
    data = bytearray(wide.read_bytes()[-22 - 1000 :])  # a directory that is not there
    data[-22:] = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 9, 9, 2**31, 0, 0)
    lying.write_bytes(bytes(data))
    with ServerProcess(tree.root, "--quiet") as server:
        assert server.request("/simple/").status == 200
        before = server.status("VmRSS")
        page = server.request("/simple/beta/", {"Accept": JSON_V1}).json()
        files = {f["filename"]: f for f in page["files"]}
        assert files[wide.name]["core-metadata"] == {"sha256": sha256_hex(metadata)}
        assert files[wide.name]["requires-python"] == ">=3.8"
        for _ in range(3):
            served = server.request(f"/simple/beta/{wide.name}.metadata")
            assert (served.status, served.body) == (200, metadata)
        assert files[lying.name]["core-metadata"] is False
        assert server.request(f"/simple/beta/{lying.name}.metadata").status == 404
        after = server.status("VmHWM")
        assert after["VmHWM"] - before["VmRSS"] < 32 * MIB, (before, after)


def test_the_limits_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--threads", "--max-connections"):
        assert server_module.main(["-i", str(tmp_path), "-p", "0", flag, "0"]) == 2
        assert "must be at least 1" in capsys.readouterr().err


def test_pipelined_requests_are_answered_in_order(
    server: ServerProcess, attack: AttackTree
) -> None:
    """Several requests in one packet, then one cut short by the end of the stream."""
    heads = [
        b"GET /simple/alpha/alpha-1.0.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\nHEAD /simple/alpha/ HTTP/1.1\r\nHost: x\r\n\r\n",  # an empty line first
        b"GET /simple/nothing-here/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /simple/beta/beta-1.2-py3-none-any.whl HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /simple/ HTTP/1.1\r\nHo",
    ]
    reply = _Unclosed(exchange(server.port, b"".join(heads)))
    statuses = []
    for method in ("GET", "HEAD", "GET", "GET", "GET"):
        response = http.client.HTTPResponse(reply, method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        statuses.append(response.status)
        if method == "GET" and response.status == 200:
            assert body in (
                attack.public["alpha/alpha-1.0.tar.gz"],
                attack.public["beta/beta-1.2-py3-none-any.whl"],
            )
    assert statuses == [200, 200, 404, 200, 400]
    assert reply.stream.read() == b""


class _Unclosed:
    """One reply read response after response (HTTPResponse closes what it has read)."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def readline(self, limit: int = -1) -> bytes:
        return self.stream.readline(limit)

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def readinto(self, buffer: Any) -> int:
        return self.stream.readinto(buffer)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_wheel_metadata_is_read_whatever_the_compression(tmp_path: Path, compression: int) -> None:
    """The server's own zip reading (no zipfile): every method zipfile writes, a comment,
    bytes in front of the archive, and the same wheel with its METADATA damaged."""
    metadata = builders.core_metadata("demo", "1.0", requires_python=">=3.8").encode() * 50
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=compression) as archive:
        archive.writestr("demo/__init__.py", "x = 1\n")
        archive.writestr("other-1.0.dist-info/METADATA", b"Name: other\n")
        archive.writestr("demo-1.0.dist-info/METADATA", metadata)
        archive.comment = b"a comment at the end"
    assert server_module.read_wheel_metadata(str(wheel)) == metadata
    shifted = tmp_path / "shifted" / wheel.name
    shifted.parent.mkdir()
    shifted.write_bytes(b"#!/bin/sh\nexit 0\n" + wheel.read_bytes())
    assert server_module.read_wheel_metadata(str(shifted)) == metadata
    data = bytearray(wheel.read_bytes())
    at = data.rindex(b"demo-1.0.dist-info/METADATA", 0, data.index(b"PK\x01\x02"))
    data[at + 40] ^= 0xFF  # a byte of the member's data
    damaged = tmp_path / "damaged" / wheel.name
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data))
    assert server_module.read_wheel_metadata(str(damaged)) is None


def test_a_bug_in_the_connection_loop_costs_one_connection(
    attack: AttackTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the loop's head parsing fails once; that client is dropped, the rest go on."""
    options = server_module.build_parser().parse_args(
        ["-i", str(attack.root), "-H", "127.0.0.1", "-p", "0", "--quiet"]
    )
    httpd = server_module.make_server(options)
    errors: list[str] = []
    monkeypatch.setattr(server_module, "log_line", errors.append)
    real_find_head = server_module.find_head
    calls = []

    def find_head_failing_once(buffer: bytearray) -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_find_head(buffer)

    monkeypatch.setattr(server_module, "find_head", find_head_failing_once)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.server_address[1]
        assert raw_exchange(port, b"GET /simple/ HTTP/1.0\r\n\r\n") == b""  # the unlucky one
        assert status_of(raw_exchange(port, b"GET /simple/ HTTP/1.0\r\n\r\n")) == 200
        assert any("RuntimeError: boom" in error for error in errors)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(LIVENESS)
