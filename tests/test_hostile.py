"""A malicious or broken index: hostile names, archive bombs, absurd metadata, malformed pages.

Whatever the index serves, morgan writes nothing outside the mirror, holds no
archive member or header in memory beyond a fixed bound, and reports each
problem as one line naming its cause while the rest of the run goes on.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import struct
import subprocess
import sys
import tarfile
import textwrap
import urllib.parse
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel, core_metadata
from packaging.markers import Marker, UndefinedComparison
from packaging.requirements import Requirement
from support import ENVIRONMENTS, write_config
from upstream import FixtureIndex

from morgan import metadata
from morgan.config import MirrorConfig
from morgan.environments import Environment
from morgan.errors import ConfigError, DistributionError, PageError, UnsafeNameError
from morgan.layout import check_filename, path_hazard, project_dir
from morgan.metadata import (
    MAX_MEMBER_BYTES,
    MAX_REQUIREMENTS,
    parse_core_metadata,
    parse_pyproject,
    parse_requirement,
    parse_requires_txt,
    read_sdist_dependencies,
    read_wheel_metadata,
)
from morgan.models import DistributionFile, ReleaseFile
from morgan.simple import parse_html_page, parse_json_page, parse_project_page

PAGE = "https://index.example/simple/demo/"
SHA = "a" * 64
GIB = 1024**3
LINUX = Environment.from_ini_section(
    "linux", {"python_version": "3.12", "sys_platform": "linux", "platform_machine": "x86_64"}
)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, text
    return text


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- hostile names: the tree ------------------------------------------------------------------

HOSTILE_NAMES = [
    "../demo-2.0.tar.gz",
    "../../demo-2.0.tar.gz",
    "..\\demo-2.0.tar.gz",
    "sub/demo-2.0.tar.gz",
    "/etc/demo-2.0.tar.gz",
    "demo-2.0.tar.gz\x00.whl",
    "demo-2.0\x00.tar.gz",
    "C:demo-2.0.tar.gz",
    "demo-2.0.tar.gz:stream",
    "demo-2.0\n.tar.gz",
    "demo-\r2.0.tar.gz",
    "demo-2.0\x1b[2J.tar.gz",
    "demo-2.0\x85.tar.gz",
    "..",
    ".",
    "...",
    # fullwidth solidus, reverse solidus, colon and a two-dot leader: paths once normalized
    "..\uff0fdemo-2.0.tar.gz",
    "\uff3cdemo-2.0.tar.gz",
    "C\uff1ademo-2.0.tar.gz",
    "\u2025",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_path_hazards(name: str) -> None:
    assert path_hazard(name) is not None
    with pytest.raises(UnsafeNameError) as caught:
        check_filename(name)
    assert one_line(caught.value).startswith("refusing name ")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("INDEX.HTML", "replace a file of the tree"),
        ("Index.Json", "replace a file of the tree"),
        ("demo-1.0.tar.gz.HASH", "sidecar"),
        ("demo-1.0-py3-none-any.whl.Metadata", "sidecar"),
        ("\uff0edemo-1.0.tar.gz", "hide"),  # a fullwidth full stop: hidden once normalized
        ("demo-1.0.tar.gz.", "Windows"),
        ("demo-1.0.tar.gz ", "Windows"),
        ('demo-1.0"x.tar.gz', "Windows"),
        ("demo|1.0.tar.gz", "Windows"),
        ("nul.tar.gz", "device name"),
        ("COM1.whl", "device name"),
        ("demo-\ud800.tar.gz", "not valid Unicode"),
    ],
)
def test_names_that_would_clash_on_other_systems(name: str, reason: str) -> None:
    with pytest.raises(UnsafeNameError, match=reason) as caught:
        check_filename(name)
    one_line(caught.value)


@pytest.mark.parametrize(
    "name", ["demo-1.0.tar.gz", "con-1.0.tar.gz", "Demo_Pkg-1.0+local.zip", "x..y-1.0.tar.gz"]
)
def test_ordinary_names_are_no_hazard(name: str) -> None:
    assert path_hazard(name) is None
    assert check_filename(name) == name


@pytest.mark.parametrize(
    "project", ["..", "../etc", "a/b", "a\\b", "C:", "/", "", "a\x00", "\uff0e\uff0e", "Demo"]
)
def test_project_names_that_are_paths_are_refused(tmp_path: Path, project: str) -> None:
    with pytest.raises(UnsafeNameError, match="not a normalized project name"):
        project_dir(tmp_path, project)


@pytest.mark.parametrize("line", ["../../etc", "a/b", "C:\\x", "..", "/abs", "a\x00b"])
def test_dependency_names_that_are_paths_are_unusable_requirements(line: str) -> None:
    # A dependency becomes a project folder only through a valid PEP 508 name.
    with pytest.raises(DistributionError, match="declares an unusable requirement") as caught:
        parse_requirement(line, "evil.whl")
    assert one_line(caught.value).startswith("evil.whl: ")


# -- hostile names: the page parsers ----------------------------------------------------------


def json_page(entries: list[dict[str, Any]], name: str = "demo", version: str = "1.1") -> bytes:
    return json.dumps({"meta": {"api-version": version}, "name": name, "files": entries}).encode()


def html_page(hrefs: list[str], head: str = "") -> bytes:
    links = "".join(f'<a href="{html.escape(h)}">x</a><br/>' for h in hrefs)
    return f"<html><head>{head}</head><body>{links}</body></html>".encode()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_json_page_naming_a_path_is_refused(name: str) -> None:
    entries = [
        {"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "hashes": {"sha256": SHA}},
        {"filename": name, "url": "x", "hashes": {"sha256": SHA}},
    ]
    with pytest.raises(PageError, match="refusing the page") as caught:
        parse_json_page(json_page(entries), PAGE, "demo")
    assert repr(name)[:60] in one_line(caught.value)


def entry_href(name: str) -> str:
    if not name.strip("."):
        return "/files/" + "%2E" * len(name)
    return "/files/" + urllib.parse.quote(name, safe="")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_html_page_naming_a_path_is_refused(name: str) -> None:
    # The file name of a link is the last segment of its URL path, percent-decoded.
    href = entry_href(name) + f"#sha256={SHA}"
    with pytest.raises(PageError, match="refusing the page") as caught:
        parse_html_page(html_page(["demo-1.0.tar.gz", href]), PAGE, "demo")
    one_line(caught.value)


def test_html_dot_segments_are_resolved_not_files() -> None:
    # Literal dot segments are resolved by URL joining; only the real file remains.
    body = html_page(["..", "../", "./", "../../demo-1.0.tar.gz", "%2E%2E/demo-1.1.tar.gz"])
    page = parse_html_page(body, PAGE, "demo")
    assert [f.filename for f in page.files] == ["demo-1.0.tar.gz", "demo-1.1.tar.gz"]
    with pytest.raises(PageError, match="only dots"):
        parse_html_page(html_page(["%2E%2E"]), PAGE, "demo")


def test_path_in_the_url_but_not_the_name_is_fine() -> None:
    entries = [{"filename": "demo-1.0.tar.gz", "url": "../../../../etc/passwd", "hashes": {}}]
    (file,) = parse_json_page(json_page(entries), PAGE, "demo").files
    # where the bytes come from is the index's business; where they go is the name's
    assert file.filename == "demo-1.0.tar.gz"
    assert check_filename(file.filename) == file.filename


def test_page_whose_name_normalizes_elsewhere_is_refused() -> None:
    for name in ("../demo", "demo/..", "dem0", "other"):
        with pytest.raises(PageError, match="not 'demo'") as caught:
            parse_json_page(json_page([], name=name), PAGE, "demo")
        one_line(caught.value)
    # spellings that normalize to the project are the project
    for name in ("Demo", "DEMO", "demo"):
        assert parse_json_page(json_page([], name=name), PAGE, "demo").name == "demo"


def test_huge_hostile_name_gives_a_short_message() -> None:
    name = "../" + "x" * 1_000_000
    entries = [{"filename": name, "url": "x", "hashes": {}}]
    with pytest.raises(PageError) as caught:
        parse_json_page(json_page(entries), PAGE, "demo")
    assert len(one_line(caught.value)) < 400


# -- end to end: an index serving hostile pages -----------------------------------------------


class CraftedIndex(FixtureIndex):
    """The fixture index, with some project pages replaced by hand-written bodies."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        #: project -> (body, Content-Type), served instead of the generated page
        self.crafted: dict[str, tuple[bytes, str]] = {}

    def craft(self, project: str, entries: list[dict[str, Any]], **json_fields: Any) -> None:
        """A page of ``entries`` (filename, url, sha256) in this index's format."""
        if self.mode == "json":
            document = {"meta": {"api-version": "1.1"}, "name": project, **json_fields}
            document["files"] = [
                {"filename": e["filename"], "url": e["url"], "hashes": {"sha256": e["sha256"]}}
                for e in entries
            ]
            self.crafted[project] = (json.dumps(document).encode(), JSON_TYPE)
        else:
            links = "".join(
                f'<a href="{html.escape(e["url"])}#sha256={e["sha256"]}">x</a><br/>\n'
                for e in entries
            )
            self.crafted[project] = (f"<html><body>{links}</body></html>".encode(), "text/html")

    def _answer(self, handler: Any, **options: Any) -> None:
        path = handler.path.split("?", 1)[0]
        project = path[len("/simple/") : -1] if path.startswith("/simple/") else ""
        if project in self.crafted:
            body, content_type = self.crafted[project]
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        super()._answer(handler, **options)


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(params=["json", "html"])
def crafted(request: pytest.FixtureRequest) -> Any:
    with CraftedIndex(request.param) as index:
        yield index


def entry(path: Path, name: str | None = None, mode: str = "json") -> dict[str, Any]:
    """A page entry for ``path``'s bytes, listed under ``name`` (served at /files/<name>)."""
    filename = name or path.name
    quoted = urllib.parse.quote(filename, safe="")
    if not filename.strip("."):
        quoted = "%2E" * len(filename)  # literal dot segments would be resolved away
    url = "/files/" + (quoted if mode == "html" else path.name)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"filename": filename, "url": url, "sha256": sha256}


def run_mirror(run_morgan: Any, index: FixtureIndex, tmp_path: Path, requirements: str) -> Any:
    config = write_config(
        tmp_path / "index" / "morgan.ini", {"l": ENVIRONMENTS["linux39"]}, requirements
    )
    return run_morgan(
        "-i", str(tmp_path / "index"), "-c", str(config), "-I", index.url, "mirror",
        "--skip-server-copy",
    )  # fmt: skip


def outside(tmp_path: Path) -> set[str]:
    """Everything in and next to the test's folder, except the mirror itself."""
    return {p.name for p in tmp_path.parent.iterdir()} | {
        name for name in tree(tmp_path) if not name.startswith("index")
    }


@pytest.mark.parametrize(
    "hostile",
    [
        "../demo-2.0.tar.gz",
        "../../escaped-demo-2.0.tar.gz",
        "..\\demo-2.0.tar.gz",
        "ABSOLUTE",
        "demo-2.0.tar.gz\x00.whl",
        "C:demo-2.0.tar.gz",
        "demo-2.0\n.tar.gz",
        "..",
        "\uff0e\uff0e\uff0fdemo-2.0.tar.gz",
    ],
)
def test_mirror_refuses_a_page_naming_a_path(
    run_morgan: Any, crafted: CraftedIndex, tmp_path: Path, hostile: str
) -> None:
    if hostile == "ABSOLUTE":
        hostile = str(tmp_path / "absolute-demo-2.0.tar.gz")
    dists = tmp_path / "dists"
    good = build_sdist(dists, "demo", "1.0")
    crafted.add(good)
    crafted.add(build_wheel(dists, "fine", "1.0"))
    crafted.craft("demo", [entry(good, mode=crafted.mode), entry(good, hostile, mode=crafted.mode)])
    before = outside(tmp_path)

    result = run_mirror(run_morgan, crafted, tmp_path, "demo =\nfine =")

    assert result.code == 1, result
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if "refusing the page" in line]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("error: l: 'demo' cannot be installed: ")
    assert "demo: cannot read its page: " in errors[0]
    assert "lists a file named" in errors[0]
    # the rest of the run went on
    assert (tmp_path / "index" / "fine" / "fine-1.0-py3-none-any.whl").is_file()
    assert not (tmp_path / "index" / "demo").exists()
    assert outside(tmp_path) == before


def test_mirror_refuses_a_chosen_file_whose_name_cannot_be_stored(
    run_morgan: Any, crafted: CraftedIndex, tmp_path: Path
) -> None:
    # Not a path, so the page is read; but the newest version's name is too long to store.
    dists = tmp_path / "dists"
    good = build_sdist(dists, "demo", "1.0")
    crafted.add(good)
    crafted.add(build_wheel(dists, "fine", "1.0"))
    long_name = "demo-2.0+" + "a" * 200 + ".tar.gz"
    crafted.craft("demo", [entry(good), entry(good, long_name, mode=crafted.mode)])
    before = outside(tmp_path)

    result = run_mirror(run_morgan, crafted, tmp_path, "demo =\nfine =")

    assert result.code == 1, result
    assert "Traceback" not in result.err
    assert "is longer than 200 bytes" in result.err
    assert (tmp_path / "index" / "fine" / "fine-1.0-py3-none-any.whl").is_file()
    assert not list((tmp_path / "index").rglob("*aaaa*"))
    assert outside(tmp_path) == before


def test_mirror_refuses_a_distribution_whose_dependencies_are_named_like_paths(
    run_morgan: Any, crafted: CraftedIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    crafted.add(
        build_wheel(dists, "evil", "1.0", requires=["../../escape", "C:\\x", "ok"]), metadata=False
    )
    crafted.add(build_wheel(dists, "ok", "1.0"))
    before = outside(tmp_path)

    result = run_mirror(run_morgan, crafted, tmp_path, "evil =")

    # pip and uv refuse a distribution whose requirements they cannot read: so does morgan.
    assert result.code == 1, result
    assert "Traceback" not in result.err
    assert "evil-1.0-py3-none-any.whl: declares an unusable requirement '../../escape'" in (
        result.err
    )
    assert not (tmp_path / "index" / "evil" / "evil-1.0-py3-none-any.whl").exists()
    assert not list(tmp_path.rglob("escape"))
    assert outside(tmp_path) == before


# -- bombs: built by hand, tiny on disk, gigabytes inflated ------------------------------------


def deflate_zeros(size: int) -> bytes:
    """A raw deflate stream of ``size`` zero bytes, about 1/1000 of that, made in a blink.

    After a full flush the compressor forgets its history, so every 16 MiB block
    of zeros compresses to the same bytes: compress one, repeat it.
    """
    block = 1 << 24
    assert size % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return unit * (size // block) + compressor.flush()


def gzip_stream(prefix: bytes, zeros: int) -> bytes:
    """A gzip stream of ``prefix`` then ``zeros`` zero bytes (its trailer is never reached)."""
    block = 1 << 24
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    unit = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert unit == repeat
    return head + unit * (zeros // block)


def handmade_zip(
    members: list[tuple[bytes, bytes, int, int]],
    *,
    method: int = zipfile.ZIP_DEFLATED,
    flags: int = 0,
    directory_size: int | None = None,
) -> bytes:
    """A zip of members given as (name, compressed data, file_size, crc).

    Sizes, CRC, compression method and flags are whatever the caller claims;
    ``directory_size`` makes the end record lie about the central directory.
    """
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for name, compressed, file_size, crc in members:
        header = struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(compressed),
            file_size, len(name), 0,
        )  # fmt: skip
        local += [header, name, compressed]
        central += [
            struct.pack(
                "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 0x031E, 20, flags, method, 0, 0x21, crc,
                len(compressed), file_size, len(name), 0, 0, 0, 0, 0o100644 << 16, offset,
            ),
            name,
        ]  # fmt: skip
        offset += len(header) + len(name) + len(compressed)
    directory = b"".join(central)
    size = len(directory) if directory_size is None else directory_size
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members) % 65536, len(members) % 65536, size,
        offset, 0,
    )  # fmt: skip
    return b"".join(local) + directory + end


#: Run in a fresh interpreter: the outcome, and the most memory it ever held. The peak
#: is the kernel's VmHWM, which starts afresh at exec (ru_maxrss would carry over the
#: size of the forking pytest process); without /proc, tracemalloc's peak stands in.
CHILD = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    from pathlib import Path
    limit = 1024 ** 3  # a regression fails with MemoryError instead of swapping the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        status = open("/proc/self/status").read()
    except OSError:
        status = ""
        tracemalloc.start()
    from morgan import metadata
    from morgan.errors import MorganError
    kind, path = sys.argv[1], Path(sys.argv[2])
    try:
        if kind == "wheel":
            result = repr(metadata.read_wheel_metadata(path, "bomb")[:40])
        elif kind == "sdist":
            result = repr(metadata.read_sdist_dependencies(path))[:200]
        else:
            result = repr(metadata.parse_core_metadata(path.read_bytes(), path.name))[:200]
        outcome = {"result": result}
    except MorganError as error:
        outcome = {"error": type(error).__name__, "message": str(error)}
    if status:
        status = open("/proc/self/status").read()
        peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    else:
        peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    outcome["peak_mib"] = peak
    print(json.dumps(outcome))
    """
)
#: What the child may use at most: the interpreter, packaging, one bounded member and slack.
MEMORY_BOUND_MIB = 200


def read_in_child(kind: str, path: Path) -> dict[str, Any]:
    pytest.importorskip("resource")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout)
    assert outcome["peak_mib"] < MEMORY_BOUND_MIB, outcome
    return outcome


def test_wheel_zip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    compressed = deflate_zeros(3 * GIB)
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    path.write_bytes(handmade_zip([(b"bomb-1.0.dist-info/METADATA", compressed, 3 * GIB, 0)]))
    assert path.stat().st_size < 4 * 1024 * 1024  # 3 GiB inflated from under 4 MiB

    outcome = read_in_child("wheel", path)
    assert outcome["error"] == "DistributionError"
    assert outcome["message"] == (
        "bomb-1.0-py3-none-any.whl: 'bomb-1.0.dist-info/METADATA' is larger than "
        f"{MAX_MEMBER_BYTES} bytes; not read"
    )


def test_zip_header_claiming_a_small_size_does_not_inflate_more(tmp_path: Path) -> None:
    # The directory says 100 bytes; the data would inflate to 1 GiB.
    compressed = deflate_zeros(GIB)
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    path.write_bytes(handmade_zip([(b"bomb-1.0.dist-info/METADATA", compressed, 100, 0)]))
    outcome = read_in_child("wheel", path)
    assert outcome["error"] == "DistributionError"
    assert "unreadable wheel (Bad CRC-32" in outcome["message"]
    # with the CRC of what the header claims, zipfile hands out exactly the claimed bytes
    crc = zlib.crc32(bytes(100))
    path.write_bytes(handmade_zip([(b"bomb-1.0.dist-info/METADATA", compressed, 100, crc)]))
    assert read_wheel_metadata(path, "bomb") == bytes(100)


def test_zip_header_claiming_a_huge_size_reads_what_is_there(tmp_path: Path) -> None:
    data = core_metadata("bomb", "1.0", requires=["six"]).encode()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = compressor.compress(data) + compressor.flush()
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    path.write_bytes(
        handmade_zip([(b"bomb-1.0.dist-info/METADATA", compressed, 3 * GIB, zlib.crc32(data))])
    )
    assert read_wheel_metadata(path, "bomb") == data


def test_zip_directory_bomb_is_refused_before_zipfile_reads_it(tmp_path: Path) -> None:
    # Half a million entries in a 25 MB directory: zipfile would build an object for each
    # (about 300 MB) before anyone could count them.
    entries = [(b"f%d" % i, b"\x03\x00", 0, 0) for i in range(500_000)]
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    path.write_bytes(handmade_zip(entries))
    outcome = read_in_child("wheel", path)
    assert outcome == {
        "error": "DistributionError",
        "message": f"bomb-1.0-py3-none-any.whl: has more than {metadata.MAX_MEMBERS} members",
        "peak_mib": outcome["peak_mib"],
    }


@pytest.mark.parametrize("claimed", [metadata.MAX_ZIP_DIRECTORY_BYTES + 1, 2**32 - 2])
def test_zip_directory_claiming_gigabytes_is_refused(tmp_path: Path, claimed: int) -> None:
    path = tmp_path / "bomb-1.0.zip"
    path.write_bytes(
        handmade_zip([(b"bomb-1.0/PKG-INFO", b"\x03\x00", 0, 0)], directory_size=claimed)
    )
    with pytest.raises(DistributionError, match=f"zip directory claims {claimed} bytes"):
        read_sdist_dependencies(path)


def test_zip64_directory_claiming_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb-1.0-py3-none-any.whl"
    plain = handmade_zip([(b"bomb-1.0.dist-info/METADATA", b"\x03\x00", 0, 0)])
    end = plain[-22:]
    zip64_end = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, 2**40, 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, len(plain) - 22, 1)
    path.write_bytes(plain[:-22] + zip64_end + locator + end)
    with pytest.raises(DistributionError, match=f"zip directory claims {2**40} bytes"):
        read_wheel_metadata(path, "bomb")


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info.tobuf(format=tarfile.GNU_FORMAT)


@pytest.mark.parametrize("member", ["bomb-1.0/PKG-INFO", "bomb-1.0/pyproject.toml"])
def test_tar_member_bomb_is_refused_in_bounded_memory(tmp_path: Path, member: str) -> None:
    path = tmp_path / "bomb-1.0.tar.gz"
    path.write_bytes(gzip_stream(tar_header(member, 3 * GIB), 3 * GIB))
    assert path.stat().st_size < 4 * 1024 * 1024
    outcome = read_in_child("sdist", path)
    assert outcome["message"] == (
        f"bomb-1.0.tar.gz: '{member}' is larger than {MAX_MEMBER_BYTES} bytes; not read"
    )


@pytest.mark.parametrize(
    "kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK]
)
def test_tar_header_bomb_is_refused_in_bounded_memory(tmp_path: Path, kind: bytes) -> None:
    # tarfile reads a pax or long-name header whole: 2 GiB of it must never be read.
    path = tmp_path / "bomb-1.0.tar.gz"
    path.write_bytes(gzip_stream(tar_header("././@header", 2 * GIB, kind), 2 * GIB))
    outcome = read_in_child("sdist", path)
    assert outcome["message"] == (
        f"bomb-1.0.tar.gz: has a tar header of {2 * GIB} bytes, more than "
        f"{metadata.MAX_TAR_HEADER_BYTES}; not read"
    )


def test_tar_sparse_member_is_refused(tmp_path: Path) -> None:
    # GNU sparse maps are read block by block without end; no sdist has sparse files
    path = tmp_path / "bomb-1.0.tar.gz"
    path.write_bytes(gzip_stream(tar_header("bomb-1.0/PKG-INFO", 512, tarfile.GNUTYPE_SPARSE), 0))
    with pytest.raises(DistributionError, match="sparse tar member") as caught:
        read_sdist_dependencies(path)
    one_line(caught.value)


def test_tar_with_too_many_members_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    header = tar_header("many-1.0/f.txt", 0)
    path = tmp_path / "many-1.0.tar.gz"
    with path.open("wb") as out:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        out.write(compressor.compress(header * (metadata.MAX_MEMBERS + 1) + bytes(1024)))
        out.write(compressor.flush())
    assert path.stat().st_size < 1024 * 1024
    outcome = read_in_child("sdist", path)
    assert outcome["message"] == f"many-1.0.tar.gz: has more than {metadata.MAX_MEMBERS} members"


def test_tar_header_chain_is_refused(tmp_path: Path) -> None:
    # Each pax header makes tarfile read the next one inside the first: a chain recurses.
    record = b"20 comment=xxxxxxxx\n"
    pax = tar_header("././@PaxHeader", len(record), tarfile.XHDTYPE) + record.ljust(512, b"\0")
    path = tmp_path / "chain-1.0.tar.gz"
    path.write_bytes(gzip_stream(pax * 5000, 0))
    with pytest.raises(DistributionError, match="nested too deeply") as caught:
        read_sdist_dependencies(path)
    one_line(caught.value)


def write_tar(path: Path, members: list[tuple[str, bytes, bytes, str]]) -> Path:
    """A tar.gz of (name, data, type, link target) members."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return path


GOOD = core_metadata("demo", "1.0", requires=["good"]).encode()


@pytest.mark.parametrize(
    ("name", "kind", "target"),
    [
        ("demo-1.0/PKG-INFO", tarfile.SYMTYPE, "/etc/passwd"),
        ("demo-1.0/PKG-INFO", tarfile.LNKTYPE, "/etc/passwd"),
        ("demo-1.0/PKG-INFO", tarfile.SYMTYPE, "../../../../etc/passwd"),
        ("demo-1.0/pyproject.toml", tarfile.SYMTYPE, "/etc/passwd"),
        ("demo-1.0/demo.egg-info/requires.txt", tarfile.LNKTYPE, "demo-1.0/setup.py"),
    ],
)
def test_tar_links_are_refused_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, kind: bytes, target: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = write_tar(
        work / "demo-1.0.tar.gz",
        [(name, b"", kind, target), ("demo-1.0/PKG-INFO", GOOD, tarfile.REGTYPE, "")],
    )
    before = tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="morgan.metadata"):
        deps = read_sdist_dependencies(path)
    assert [str(r) for r in deps.requires] == ["good"]
    assert f"not reading {name!r}, which is a link" in caplog.text
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "name", ["/demo-1.0/PKG-INFO", "../demo-1.0/PKG-INFO", "demo-1.0/../../PKG-INFO"]
)
def test_tar_members_with_absolute_or_parent_paths_are_not_read(tmp_path: Path, name: str) -> None:
    evil = core_metadata("demo", "1.0", requires=["evil"]).encode()
    path = write_tar(tmp_path / "demo-1.0.tar.gz", [(name, evil, tarfile.REGTYPE, "")])
    before = tree(tmp_path)
    assert read_sdist_dependencies(path).requires == ()
    assert tree(tmp_path) == before


def test_zip_symlinks_are_refused_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sdist = tmp_path / "demo-1.0.zip"
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    for path, name in ((sdist, "demo-1.0/PKG-INFO"), (wheel, "demo-1.0.dist-info/METADATA")):
        with zipfile.ZipFile(path, "w") as archive:
            link = zipfile.ZipInfo(name)
            link.external_attr = 0o120777 << 16
            archive.writestr(link, "/etc/passwd")
    with caplog.at_level(logging.WARNING, logger="morgan.metadata"):
        assert read_sdist_dependencies(sdist).requires == ()
    assert "which is a link" in caplog.text
    with pytest.raises(DistributionError, match="is a link; not read"):
        read_wheel_metadata(wheel, "demo")


BROKEN_MEMBERS: dict[str, dict[str, Any]] = {
    # deflate data that is garbage: zlib.error
    "garbage": {"members": [(b"NAME", b"\xff\xff\xff\xff", 10, 0)]},
    # a compression method zipfile does not know: NotImplementedError
    "method": {"members": [(b"NAME", b"x", 1, 0)], "method": 99},
    # an encrypted member: RuntimeError
    "encrypted": {"members": [(b"NAME", b"x", 1, 0)], "flags": 0x1},
    # a name flagged as UTF-8 that is not: UnicodeDecodeError
    "utf8": {"members": [(b"NAME\xff", b"\x03\x00", 0, 0)], "flags": 0x800},
    # not a zip at all behind a zip signature
    "truncated": {"members": []},
}


@pytest.mark.parametrize("kind", list(BROKEN_MEMBERS))
def test_broken_zips_are_one_line_errors(tmp_path: Path, kind: str) -> None:
    for path, member in (
        (tmp_path / "demo-1.0-py3-none-any.whl", b"demo-1.0.dist-info/METADATA"),
        (tmp_path / "demo-1.0.zip", b"demo-1.0/PKG-INFO"),
    ):
        spec = dict(BROKEN_MEMBERS[kind])
        spec["members"] = [(member + n[4:], *rest) for n, *rest in spec["members"]]
        content = handmade_zip(**spec)
        path.write_bytes(content[:-10] if kind == "truncated" else content)
        with pytest.raises(DistributionError, match=r"unreadable|no \.dist-info") as caught:
            if path.suffix == ".whl":
                read_wheel_metadata(path, "demo")
            else:
                read_sdist_dependencies(path)
        assert one_line(caught.value).startswith(path.name + ": ")


# -- absurd metadata -------------------------------------------------------------------------


def test_hundred_thousand_requirements_are_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "many.metadata"
    path.write_text(core_metadata("many", "1.0", requires=[f"dep{i}>=1" for i in range(100_000)]))
    outcome = read_in_child("core", path)
    assert (
        outcome["message"] == f"many.metadata: declares more than {MAX_REQUIREMENTS} requirements"
    )


def test_hundred_thousand_extras_are_refused() -> None:
    text = core_metadata("many", "1.0", extras=[f"x{i}" for i in range(100_000)])
    with pytest.raises(DistributionError, match=f"more than {MAX_REQUIREMENTS} extras"):
        parse_core_metadata(text.encode(), "many.whl")


def nested_marker(depth: int) -> str:
    return "dep; " + "(" * depth + 'python_version >= "3"' + ")" * depth


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_marker_is_refused(depth: int) -> None:
    text = core_metadata("deep", "1.0", requires=["fine", nested_marker(depth)])
    with pytest.raises(DistributionError, match="deeper than 32 levels") as caught:
        parse_core_metadata(text.encode(), "deep-1.0-py3-none-any.whl")
    assert one_line(caught.value).startswith("deep-1.0-py3-none-any.whl: ")


def test_nesting_packaging_can_parse_is_read() -> None:
    (requirement,) = parse_core_metadata(
        core_metadata("deep", "1.0", requires=[nested_marker(32)]).encode(), "x"
    ).requires
    assert requirement.marker is not None
    assert requirement.marker.evaluate(LINUX.marker_environment())


def _packaging_recurses(text: str) -> Requirement:
    raise RecursionError("maximum recursion depth exceeded")


@pytest.mark.parametrize("detector", ["morgan", "packaging", "recursion"])
def test_too_deep_a_requirement_is_refused_whoever_detects_it(
    detector: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The contract holds whether morgan's bound, packaging's own limit (26.4 and later
    refuse 200 levels) or a RecursionError (older packaging) catches the nesting."""
    if detector != "morgan":
        monkeypatch.setattr(metadata, "MAX_NESTING", 100_000)
        monkeypatch.setattr(metadata, "MAX_REQUIREMENT_LENGTH", 1_000_000)
    if detector == "recursion":
        monkeypatch.setattr(metadata, "Requirement", _packaging_recurses)
    line = nested_marker(5_000)

    # the wheel path (core metadata), the sdist path (requires.txt) and the config agree
    with pytest.raises(DistributionError, match="declares an unusable requirement") as caught:
        parse_core_metadata(core_metadata("deep", "1.0", requires=[line]).encode(), "deep.whl")
    assert one_line(caught.value).startswith("deep.whl: declares an unusable requirement 'dep; (")
    sdist = build_sdist(tmp_path, "deep", "1.0", requires_txt=line + "\n")
    with pytest.raises(DistributionError, match="declares an unusable requirement") as caught:
        read_sdist_dependencies(sdist)
    one_line(caught.value)
    config = write_config(tmp_path / "morgan.ini", ENVIRONMENTS, "dep = " + line[len("dep") :])
    with pytest.raises(ConfigError, match="not a valid PEP 508 specifier") as config_error:
        MirrorConfig.from_file(str(config))
    one_line(config_error.value)


def test_enormous_requirement_line_is_refused() -> None:
    with pytest.raises(DistributionError, match="longer than 8192 characters"):
        parse_requirement("x" * 10_000_000, "huge.whl")


def test_requires_txt_section_marker_nested_is_refused() -> None:
    text = "[:" + "(" * 5000 + 'os_name == "nt"' + ")" * 5000 + "]\nsix\n"
    with pytest.raises(DistributionError, match="deeper than 32 levels"):
        parse_requires_txt(text, "requires.txt")


@pytest.mark.parametrize(
    "document",
    [
        "a = " + "[" * 100_000 + "]" * 100_000,
        "a = " + "{b = " * 100_000 + "1" + "}" * 100_000,
    ],
)
def test_deeply_nested_pyproject_is_refused(document: str) -> None:
    with pytest.raises(DistributionError, match="nested too deeply") as caught:
        parse_pyproject(document.encode(), "demo-1.0.tar.gz/pyproject.toml")
    one_line(caught.value)


def test_pyproject_with_absurdly_many_requirements_is_refused() -> None:
    extras = "\n".join(f'x{i} = ["dep{i}"]' for i in range(MAX_REQUIREMENTS + 1))
    document = f'[project]\nname = "x"\n[project.optional-dependencies]\n{extras}\n'
    with pytest.raises(DistributionError, match="more than 10000 requirements"):
        parse_pyproject(document.encode(), "pyproject.toml")


def test_pyproject_of_absurd_size_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big-1.0.tar.gz"
    text = "# " + "x" * MAX_MEMBER_BYTES + "\n"
    write_tar(path, [("big-1.0/pyproject.toml", text.encode(), tarfile.REGTYPE, "")])
    with pytest.raises(DistributionError, match=r"pyproject\.toml' is larger than"):
        read_sdist_dependencies(path)


def test_pyproject_invalid_extra_names_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    # 'a"b' once made an invalid marker that escaped as InvalidRequirement
    document = (
        '[project]\nname = "x"\ndependencies = ["six"]\n'
        '[project.optional-dependencies]\n"a\\"b" = ["evil"]\n"-" = ["evil"]\nok = ["good"]\n'
    )
    with caplog.at_level(logging.WARNING, logger="morgan.metadata"):
        _, project = parse_pyproject(document.encode(), "pyproject.toml")
    assert project is not None
    assert [str(r) for r in project.requires] == ["six", 'good; extra == "ok"']
    assert project.extras == {"ok"}
    assert "invalid extra name" in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        'dep; python_version ~= "3"',  # ~= needs two release segments
        'dep; "a" == "b"',  # no variable at all
        'dep; "x" in extras',  # a lock-file variable
        "dep>=" + "9" * 5000,  # more digits than int() accepts
        'dep; python_version > "1.' + "9" * 5000 + '"',
    ],
)
def test_requirements_no_environment_can_evaluate_are_unusable(line: str) -> None:
    text = core_metadata("x", "1", requires=[line, "ok"]).encode()
    with pytest.raises(DistributionError, match="declares an unusable requirement") as caught:
        parse_core_metadata(text, "x.whl")
    assert one_line(caught.value).startswith("x.whl: ")


def test_marker_undefined_in_one_environment_is_a_distribution_error() -> None:
    # Fine where platform_release is a version, undefined where it is unknown ("").
    marker = Marker('"5.0" ~= platform_release')
    with pytest.raises(UndefinedComparison):
        marker.evaluate(LINUX.marker_environment())
    with pytest.raises(DistributionError) as caught:
        LINUX.evaluate_marker(marker, source="demo-1.0.whl")
    assert one_line(caught.value).startswith("demo-1.0.whl (for linux): marker ")


def test_non_utf8_requirements_are_still_read() -> None:
    data = (
        b"Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: attrs\n"
        b'Requires-Dist: six; platform_version == "caf\xe9"\n'
    )
    # packaging sets the whole field aside (it once read as no dependencies at all)
    assert [str(r) for r in parse_core_metadata(data, "x").requires] == [
        "attrs",
        'six; platform_version == "caf\xe9"',
    ]


def test_enormous_requires_python_is_ignored() -> None:
    assert LINUX.allows_python(">=3," * 100_000 + ">=3")
    assert LINUX.allows_python(">=1." + "9" * 1000)  # parsed: 1.999... < 3.12 holds
    assert LINUX.allows_python(">=" + "9" * 5000)  # unparsable: ignored, as pip does


# -- end to end: an index serving hostile distributions ---------------------------------------


def test_mirror_reports_hostile_distributions_and_completes_the_rest(
    run_morgan: Any, crafted: CraftedIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    zbomb = dists / "zbomb-1.0-py3-none-any.whl"
    zbomb.write_bytes(handmade_zip([(b"zbomb-1.0.dist-info/METADATA", deflate_zeros(GIB), GIB, 0)]))
    crafted.add(zbomb, metadata=False)
    tbomb = dists / "tbomb-1.0.tar.gz"
    tbomb.write_bytes(gzip_stream(tar_header("tbomb-1.0/PKG-INFO", GIB), GIB))
    crafted.add(tbomb)
    deep = build_wheel(dists, "deep", "1.0", requires=[nested_marker(10_000)])
    crafted.add(deep)  # read from its PEP 658 metadata first, then from the file
    linked = dists / "linked-1.0.tar.gz"
    write_tar(
        linked,
        [
            ("linked-1.0/PKG-INFO", b"", tarfile.SYMTYPE, "/etc/passwd"),
            ("linked-1.0/pyproject.toml", b"", tarfile.LNKTYPE, "/etc/shadow"),
        ],
    )
    crafted.add(linked)
    crafted.add(build_wheel(dists, "fine", "1.0", requires=["dep"]))
    crafted.add(build_wheel(dists, "dep", "1.0"))
    for name in ("setuptools", "wheel"):  # what an sdist without metadata needs to build
        crafted.add(build_wheel(dists, name, "70.0"))
    before = outside(tmp_path)

    result = run_mirror(run_morgan, crafted, tmp_path, "zbomb =\ntbomb =\ndeep =\nlinked =\nfine =")

    assert result.code == 1, result
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert any("zbomb-1.0.dist-info/METADATA' is larger than" in e for e in errors), errors
    assert any("tbomb-1.0/PKG-INFO' is larger than" in e for e in errors), errors
    assert any("deeper than 32 levels" in e for e in errors), errors
    assert "not reading 'linked-1.0/PKG-INFO', which is a link" in result.err
    index = tmp_path / "index"
    assert (index / "fine" / "fine-1.0-py3-none-any.whl").is_file()
    assert (index / "dep" / "dep-1.0-py3-none-any.whl").is_file()
    assert len(errors) == 3, errors
    assert (index / "setuptools").is_dir()  # linked's build requirements, read without links
    assert outside(tmp_path) == before


def mirror_odd_marker(run_morgan: Any, upstream: FixtureIndex, tmp_path: Path) -> Any:
    dists = tmp_path / "dists"
    # "5.0" ~= platform_release is undefined where platform_release is unknown (""), as here
    upstream.add(build_wheel(dists, "odd", "1.0", requires=['dep; "5.0" ~= platform_release']))
    upstream.add(build_wheel(dists, "fine", "1.0"))
    result = run_mirror(run_morgan, upstream, tmp_path, "odd =\nfine =")
    assert result.code == 1, result
    assert "Traceback" not in result.err
    assert (tmp_path / "index" / "fine" / "fine-1.0-py3-none-any.whl").is_file()
    return result


def test_mirror_survives_a_marker_undefined_in_an_environment(
    run_morgan: Any, upstream: FixtureIndex, tmp_path: Path
) -> None:
    mirror_odd_marker(run_morgan, upstream, tmp_path)


def test_mirror_says_which_marker_cannot_be_evaluated(
    run_morgan: Any, upstream: FixtureIndex, tmp_path: Path
) -> None:
    result = mirror_odd_marker(run_morgan, upstream, tmp_path)
    assert "odd-1.0-py3-none-any.whl (for l): marker " in result.err
    assert "cannot be evaluated" in result.err
    assert "unexpected error" not in result.err


# -- malformed pages ---------------------------------------------------------------------------


def files_of(page_body: bytes, parse: Any = parse_html_page, project: str = "demo") -> list[str]:
    return [f.filename for f in parse(page_body, PAGE, project).files]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # anchors without href, with an empty one, and unterminated tags
        (b'<a>demo-1.0.tar.gz</a><a href>x</a><a href="demo-1.0.tar.gz">', ["demo-1.0.tar.gz"]),
        (b'<html><body><a href="demo-1.0.tar.gz"', []),
        (b'<a href="demo-1.0.tar.gz"><a href="demo-1.1.tar.gz', ["demo-1.0.tar.gz"]),
        (b"<a href='demo-1.0.tar.gz'><b><i></a></p></div>", ["demo-1.0.tar.gz"]),
        (b'<a href=demo-1.0.tar.gz data-yanked data-requires-python=">=3">', ["demo-1.0.tar.gz"]),
        (b"<!-- <a href='demo-1.0.tar.gz'> never closed", []),
        (b"<![CDATA[", []),
        (b"\x00<a href='demo-1.0.tar.gz'>", ["demo-1.0.tar.gz"]),
    ],
)
def test_broken_html_is_read_as_far_as_it_goes(body: bytes, expected: list[str]) -> None:
    assert files_of(body) == expected


@pytest.mark.parametrize(
    "fragment",
    [
        "sha256=zz" + "a" * 62,  # not hex
        "sha256=" + "a" * 63,  # too short
        "sha256=",  # empty
        "md5=" + "a" * 64,  # a sha256-length md5
        "sha256=" + "a" * 64 + "%0A",
    ],
)
def test_bad_hash_fragment_drops_the_file_with_a_warning(
    fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = html_page([f"demo-1.0.tar.gz#{fragment}", f"demo-0.9.tar.gz#sha256={SHA}"])
    with caplog.at_level(logging.WARNING, logger="morgan.simple"):
        assert files_of(body) == ["demo-0.9.tar.gz"]
    assert "'demo-1.0.tar.gz', whose hash fragment is malformed" in caplog.text


def test_bad_json_hashes_drop_the_file(caplog: pytest.LogCaptureFixture) -> None:
    entries = [
        {"filename": "demo-1.0.tar.gz", "url": "a", "hashes": {"sha256": "nothex\n"}},
        {"filename": "demo-0.9.tar.gz", "url": "b", "hashes": {"shake_128": "ab", "md5": "c" * 32}},
    ]
    with caplog.at_level(logging.WARNING, logger="morgan.simple"):
        page = parse_json_page(json_page(entries), PAGE, "demo")
    # the shake digest (no fixed length, so no check) is dropped; md5 stays
    assert [(f.filename, dict(f.hashes)) for f in page.files] == [
        ("demo-0.9.tar.gz", {"md5": "c" * 32})
    ]
    assert "whose hashes are malformed" in caplog.text


def test_bad_metadata_hash_means_no_pep658_metadata() -> None:
    entries = [
        {"filename": "demo-1.0.tar.gz", "url": "a", "hashes": {}, "core-metadata": {"sha256": "x"}}
    ]
    (file,) = parse_json_page(json_page(entries), PAGE, "demo").files
    assert file.metadata_hashes is None


@pytest.mark.parametrize("requires_python", [">=3.8,<", "banana", ">=3" * 10_000, "~=3", "\x00"])
def test_bad_requires_python_is_kept_and_ignored(requires_python: str) -> None:
    body = f'<a href="demo-1.0.tar.gz" data-requires-python="{html.escape(requires_python)}">'
    (file,) = parse_html_page(body.encode(), PAGE, "demo").files
    assert file.requires_python == requires_python
    assert LINUX.allows_python(file.requires_python)  # pip ignores what it cannot parse


@pytest.mark.parametrize("version", ["2.0", "10.0", "0.1", "99999999999.0"])
def test_unknown_major_api_version_is_refused(version: str) -> None:
    for body, parse in (
        (json_page([], version=version), parse_json_page),
        (html_page([], head=f'<meta name="pypi:repository-version" content="{version}">'),
         parse_html_page),
    ):  # fmt: skip
        with pytest.raises(PageError, match=f"simple API version {version} is not supported"):
            parse(body, PAGE, "demo")


@pytest.mark.parametrize("version", ["1.2", "1.999999"])
def test_newer_minor_api_version_is_read_with_a_warning(
    version: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="morgan.simple"):
        parse_json_page(json_page([], version=version), PAGE, "demo")
    assert (
        f"api-version {version} is newer than this morgan knows; reading it as 1.1" in caplog.text
    )


@pytest.mark.parametrize(
    "version", ["1." + "9" * 5000, "1.1\n2.0", "\u0661.\u0661", "v1.1", None, 1.1]
)
def test_unreadable_api_version_is_a_page_error(version: Any) -> None:
    body = json.dumps({"meta": {"api-version": version}, "name": "demo", "files": []}).encode()
    with pytest.raises(PageError) as caught:
        parse_json_page(body, PAGE, "demo")
    assert len(one_line(caught.value)) < 300


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-beta.tar.gz",  # not PEP 440 (and "beta" is no project)
        "demo-latest.tar.gz",
        "demo-1.0.0.0.0-py3-none-any.whl.zip",
        "demo-2004d.tar.gz",
        "demo-1." + "9" * 5000 + ".tar.gz",  # PEP 440, but more digits than int() accepts
        "demo-1.0-py3-none.whl",
        "other-1.0.tar.gz",  # another project's file
        "demo_extra-1.0.tar.gz",
        "demo-1.0.exe",
    ],
)
def test_files_that_are_no_candidates_are_skipped(filename: str) -> None:
    file = DistributionFile(filename=filename, url="https://x/" + filename)
    assert ReleaseFile.from_file(file, "demo") is None


def test_invalid_json_is_a_page_error() -> None:
    for body in (b"{", b"\xff", b"[" * 1_000_000, b'{"a": 1' + b"9" * 10_000 + b"}"):
        with pytest.raises(PageError, match="invalid JSON") as caught:
            parse_project_page(body, "application/vnd.pypi.simple.v1+json", PAGE, "demo")
        one_line(caught.value)


def test_mirror_reads_what_it_can_of_malformed_pages(
    run_morgan: Any, crafted: CraftedIndex, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    messy = build_sdist(dists, "messy", "1.0")
    crafted.add(messy)
    newer = build_wheel(dists, "newer", "1.0")
    crafted.add(newer)
    crafted.add(build_wheel(dists, "broken", "1.0"))
    crafted.add(build_wheel(dists, "liar", "1.0"))
    crafted.add(build_wheel(dists, "future", "1.0"))
    for name in ("setuptools", "wheel"):  # what messy's sdist needs to build
        crafted.add(build_wheel(dists, name, "70.0"))
    good = entry(messy)
    junk = [
        {**good, "filename": "messy-1.0-beta.tar.gz", "url": "/files/messy-1.0-beta.tar.gz"},
        {**good, "filename": "other-9.0.tar.gz", "url": "/files/other-9.0.tar.gz"},
        {**good, "filename": "messy-9.0.tar.gz", "url": "/files/messy-9.0.tar.gz", "sha256": "x"},
    ]
    crafted.craft("messy", [good, *junk])
    if crafted.mode == "json":
        crafted.crafted["broken"] = (
            b'{"meta": {"api-version": "1.1"}, "name": "broken", ',
            JSON_TYPE,
        )
        crafted.craft("liar", [entry(newer)], name="../newer")
        document = {"meta": {"api-version": "1.7"}, "name": "newer", "files": []}
        document["files"] = [{"filename": newer.name, "url": "/files/" + newer.name,
                              "hashes": {"sha256": entry(newer)["sha256"]}}]  # fmt: skip
        crafted.crafted["newer"] = (json.dumps(document).encode(), JSON_TYPE)
        crafted.crafted["future"] = (json_page([], name="future", version="2.0"), JSON_TYPE)
    else:
        crafted.crafted["broken"] = (b"<html><a href='/files/broken-1.0\xff", "text/html")
        crafted.crafted["liar"] = (b"<html><a>liar-1.0-py3-none-any.whl</a>", "text/html")
        meta = '<meta name="pypi:repository-version" content="{}">'
        crafted.crafted["newer"] = (
            (meta.format("1.7") + f'<a href="/files/{newer.name}">x</a>').encode(),
            "text/html",
        )
        crafted.crafted["future"] = (meta.format("2.0").encode(), "text/html")
    before = outside(tmp_path)

    result = run_mirror(
        run_morgan, crafted, tmp_path, "messy =\nnewer =\nbroken =\nliar =\nfuture ="
    )

    assert result.code == 1, result
    assert "Traceback" not in result.err
    index = tmp_path / "index"
    assert {p.name for p in (index / "messy").iterdir() if p.name.endswith(".tar.gz")} == {
        "messy-1.0.tar.gz"
    }
    assert (index / "newer" / newer.name).is_file()
    assert "api-version 1.7 is newer than this morgan knows" in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    cannot = "error: l: '{}' cannot be installed: ".format
    assert any(e.startswith(cannot("future")) and "future: cannot read its page" in e
               and "2.0 is not supported" in e for e in errors), errors  # fmt: skip
    assert any(e.startswith(cannot("broken")) for e in errors), errors
    # JSON: a page for another project; HTML: a page without a single link
    assert any(e.startswith(cannot("liar")) for e in errors), errors
    assert len(errors) == 3, errors
    assert outside(tmp_path) == before
