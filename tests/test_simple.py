"""Simple-API pages: PEP 691 JSON and PEP 503 HTML parse to the same model."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morgan.errors import MorganError, PageError, UnsupportedAPIVersionError
from morgan.models import DistributionFile, ProjectPage
from morgan.simple import (
    ACCEPT,
    check_api_version,
    parse_html_page,
    parse_json_page,
    parse_project_page,
)

PAGE = "https://index.example/simple/demo/"
SHA = "a" * 64
META_SHA = "b" * 64

# Each file once as the facts, then as a JSON entry and an HTML anchor saying the same.
FILES: list[dict[str, Any]] = [
    {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": "../../files/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.8",
        "yanked": False,
        "core-metadata": {"sha256": META_SHA},
        "size": 1234,
        "upload-time": "2024-01-02T03:04:05.000000Z",
    },
    {
        "filename": "demo-1.0.tar.gz",
        "url": "https://files.example/packages/demo-1.0.tar.gz",
        "hashes": {"sha256": SHA},
        "requires-python": ">=3.8,<4",
        "yanked": "broken build",
        "size": 99,
    },
    {
        "filename": "demo-0.9-py3-none-any.whl",
        "url": "demo-0.9-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "yanked": True,
        "core-metadata": True,
    },
    {
        "filename": "demo-0.8.zip",
        "url": "/files/demo-0.8.zip",
        "hashes": {},
    },
]


def json_body(files: list[dict[str, Any]], *, name: str = "demo", version: str = "1.1") -> bytes:
    return json.dumps({"meta": {"api-version": version}, "name": name, "files": files}).encode()


def html_anchor(entry: dict[str, Any]) -> str:
    href = entry["url"]
    for algorithm, digest in entry["hashes"].items():
        href += f"#{algorithm}={digest}"
    attributes = [f'href="{html.escape(href)}"']
    if entry.get("requires-python"):
        attributes.append(f'data-requires-python="{html.escape(entry["requires-python"])}"')
    yanked = entry.get("yanked", False)
    if yanked is True:
        attributes.append("data-yanked")
    elif yanked:
        attributes.append(f'data-yanked="{html.escape(yanked)}"')
    metadata = entry.get("core-metadata")
    if metadata is True:
        attributes.append('data-core-metadata="true"')
    elif metadata:
        attributes.append(f'data-core-metadata="sha256={metadata["sha256"]}"')
    if "size" in entry:
        attributes.append(f'data-size="{entry["size"]}"')
    if "upload-time" in entry:
        attributes.append(f'data-upload-time="{entry["upload-time"]}"')
    return f"<a {' '.join(attributes)}>{html.escape(entry['filename'])}</a><br/>"


def html_body(files: list[dict[str, Any]], *, version: str | None = "1.1", head: str = "") -> bytes:
    meta = f'<meta name="pypi:repository-version" content="{version}">' if version else ""
    anchors = "\n".join(html_anchor(entry) for entry in files)
    return (
        f"<!DOCTYPE html><html><head>{meta}{head}<title>Links for demo</title></head>"
        f"<body><h1>Links for demo</h1>\n{anchors}\n</body></html>"
    ).encode()


def test_json_and_html_give_the_same_page() -> None:
    from_json = parse_json_page(json_body(FILES), PAGE, "demo")
    from_html = parse_html_page(html_body(FILES), PAGE, "demo")
    assert from_json == from_html
    assert from_json.api_version == "1.1"
    assert from_json.name == "demo"
    assert from_json.url == PAGE


def test_page_model_values() -> None:
    page = parse_json_page(json_body(FILES), PAGE, "demo")
    wheel, sdist, yanked, bare = page.files
    assert wheel == DistributionFile(
        filename="demo-1.0-py3-none-any.whl",
        url="https://index.example/files/demo-1.0-py3-none-any.whl",
        hashes={"sha256": SHA},
        requires_python=">=3.8",
        yanked=False,
        metadata_hashes={"sha256": META_SHA},
        size=1234,
        upload_time="2024-01-02T03:04:05.000000Z",
    )
    assert wheel.metadata_url == "https://index.example/files/demo-1.0-py3-none-any.whl.metadata"
    assert wheel.is_wheel and not wheel.is_yanked
    assert sdist.url == "https://files.example/packages/demo-1.0.tar.gz"
    assert sdist.is_yanked and sdist.yanked_reason == "broken build"
    assert sdist.metadata_hashes is None
    assert yanked.url == "https://index.example/simple/demo/demo-0.9-py3-none-any.whl"
    assert yanked.is_yanked and yanked.yanked_reason is None
    assert yanked.metadata_hashes == {}
    assert bare.url == "https://index.example/files/demo-0.8.zip"
    assert bare.hashes == {}
    assert (bare.size, bare.upload_time, bare.requires_python) == (None, None, None)


@pytest.mark.parametrize("parse", [parse_json_page, parse_html_page])
def test_same_page_under_either_project_spelling(parse: Any) -> None:
    body = json_body(FILES, name="Demo") if parse is parse_json_page else html_body(FILES)
    page = parse(body, PAGE, "DEMO")
    assert page.name == "demo"
    assert len(page.files) == len(FILES)


# -- HTML details ------------------------------------------------------------------------------

HTML_CASES = [
    # requires-python, HTML-escaped
    ('<a href="x-1.0.tar.gz" data-requires-python="&gt;=3.8">x</a>', "requires_python", ">=3.8"),
    (
        '<a href="x-1.0.tar.gz" data-requires-python="&gt;=3.8,&lt;4,!=3.9.*">x</a>',
        "requires_python",
        ">=3.8,<4,!=3.9.*",
    ),
    ('<a href="x-1.0.tar.gz" data-requires-python="">x</a>', "requires_python", None),
    # yanked with and without reason
    ('<a href="x-1.0.tar.gz" data-yanked>x</a>', "yanked", True),
    ('<a href="x-1.0.tar.gz" data-yanked="">x</a>', "yanked", True),
    ('<a href="x-1.0.tar.gz" data-yanked="bad &amp; wrong">x</a>', "yanked", "bad & wrong"),
    ('<a href="x-1.0.tar.gz">x</a>', "yanked", False),
    # PEP 658 / 714 metadata, either attribute name, true or a hash
    ('<a href="x-1.0.tar.gz" data-core-metadata="true">x</a>', "metadata_hashes", {}),
    ('<a href="x-1.0.tar.gz" data-core-metadata="TRUE">x</a>', "metadata_hashes", {}),
    ('<a href="x-1.0.tar.gz" data-dist-info-metadata="true">x</a>', "metadata_hashes", {}),
    (
        f'<a href="x-1.0.tar.gz" data-core-metadata="sha256={META_SHA}">x</a>',
        "metadata_hashes",
        {"sha256": META_SHA},
    ),
    (
        f'<a href="x-1.0.tar.gz" data-dist-info-metadata="SHA256={META_SHA.upper()}">x</a>',
        "metadata_hashes",
        {"sha256": META_SHA},
    ),
    ('<a href="x-1.0.tar.gz" data-core-metadata="false">x</a>', "metadata_hashes", None),
    ('<a href="x-1.0.tar.gz">x</a>', "metadata_hashes", None),
    # hashes from the fragment, lowercased; the URL loses its fragment
    (f'<a href="x-1.0.tar.gz#SHA256={SHA.upper()}">x</a>', "hashes", {"sha256": SHA}),
    (f'<a href="x-1.0.tar.gz#md5={"c" * 32}">x</a>', "hashes", {"md5": "c" * 32}),
    # a fragment that is no digest hashlib can check is dropped (pip's #egg= links)
    ('<a href="x-1.0.tar.gz#egg=x">x</a>', "hashes", {}),
    ('<a href="x-1.0.tar.gz#blake3=abc">x</a>', "hashes", {}),
    ('<a href="x-1.0.tar.gz#shake_128=abcd">x</a>', "hashes", {}),
    ('<a href="x-1.0.tar.gz#sha256">x</a>', "hashes", {}),
    ('<a href="x-1.0.tar.gz">x</a>', "hashes", {}),
    (f'<a href="x-1.0.tar.gz#sha256={SHA}">x</a>', "url", PAGE + "x-1.0.tar.gz"),
    # URLs against the page, absolute paths and other hosts
    ('<a href="../../f/x-1.0.tar.gz">x</a>', "url", "https://index.example/f/x-1.0.tar.gz"),
    ('<a href="/f/x-1.0.tar.gz">x</a>', "url", "https://index.example/f/x-1.0.tar.gz"),
    ('<a href="//cdn.example/x-1.0.tar.gz">x</a>', "url", "https://cdn.example/x-1.0.tar.gz"),
    ('<a href=" x-1.0.tar.gz ">x</a>', "url", PAGE + "x-1.0.tar.gz"),
    # the file name comes from the URL, unquoted
    ('<a href="x-1.0%2Blocal.tar.gz">whatever</a>', "filename", "x-1.0+local.tar.gz"),
    ('<a href="x-1.0.tar.gz?download=1">x</a>', "filename", "x-1.0.tar.gz"),
    # PEP 700 facts as data attributes
    ('<a href="x-1.0.tar.gz" data-size="2048">x</a>', "size", 2048),
    ('<a href="x-1.0.tar.gz" data-size="-1">x</a>', "size", None),
    ('<a href="x-1.0.tar.gz" data-size="big">x</a>', "size", None),
    (
        '<a href="x-1.0.tar.gz" data-upload-time="2024-01-01T00:00:00Z">x</a>',
        "upload_time",
        "2024-01-01T00:00:00Z",
    ),
]


@pytest.mark.parametrize(("anchor", "field", "expected"), HTML_CASES)
def test_html_attributes(anchor: str, field: str, expected: Any) -> None:
    page = parse_html_page(f"<html><body>{anchor}</body></html>".encode(), PAGE, "x")
    (file,) = page.files
    assert getattr(file, field) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<base href="https://mirror.example/pkgs/">', "https://mirror.example/pkgs/x-1.0.tar.gz"),
        ('<base href="/other/">', "https://index.example/other/x-1.0.tar.gz"),
        ('<base href="sub/">', PAGE + "sub/x-1.0.tar.gz"),
        ('<base href="/first/"><base href="/second/">', "https://index.example/first/x-1.0.tar.gz"),
        ("<base>", PAGE + "x-1.0.tar.gz"),
    ],
)
def test_html_base_href(head: str, expected: str) -> None:
    body = f'<html><head>{head}</head><body><a href="x-1.0.tar.gz">x</a></body></html>'
    (file,) = parse_html_page(body.encode(), PAGE, "x").files
    assert file.url == expected


def test_html_ignores_anchors_without_href() -> None:
    body = b'<a name="top">top</a><a href="">empty</a><a href="x-1.0.tar.gz">x</a><a href="/">/</a>'
    page = parse_html_page(body, PAGE, "x")
    assert [f.filename for f in page.files] == ["x-1.0.tar.gz"]


def test_html_without_meta_is_api_1_0() -> None:
    page = parse_html_page(html_body(FILES, version=None), PAGE, "demo")
    assert page.api_version == "1.0"
    assert len(page.files) == len(FILES)


def test_html_not_utf8() -> None:
    with pytest.raises(PageError, match="not UTF-8"):
        parse_html_page(b"<a href='x-1.0.tar.gz'>\xff</a>", PAGE, "x")


# -- JSON details ------------------------------------------------------------------------------

JSON_CASES: list[tuple[dict[str, Any], str, Any]] = [
    ({"core-metadata": {"sha256": META_SHA}}, "metadata_hashes", {"sha256": META_SHA}),
    ({"dist-info-metadata": {"sha256": META_SHA}}, "metadata_hashes", {"sha256": META_SHA}),
    ({"dist-info-metadata": True}, "metadata_hashes", {}),
    ({"core-metadata": True}, "metadata_hashes", {}),
    ({"core-metadata": False}, "metadata_hashes", None),
    ({"core-metadata": {"SHA256": META_SHA.upper()}}, "metadata_hashes", {"sha256": META_SHA}),
    ({}, "metadata_hashes", None),
    ({"yanked": True}, "yanked", True),
    ({"yanked": False}, "yanked", False),
    ({"yanked": "security hole"}, "yanked", "security hole"),
    ({"yanked": 1}, "yanked", True),
    ({"yanked": None}, "yanked", False),
    ({}, "yanked", False),
    ({"requires-python": ">=3.8"}, "requires_python", ">=3.8"),
    ({"requires-python": None}, "requires_python", None),
    ({"requires-python": 3}, "requires_python", None),
    ({"size": 10}, "size", 10),
    ({"size": 0}, "size", 0),
    ({"size": -1}, "size", None),
    ({"size": True}, "size", None),
    ({"size": "10"}, "size", None),
    ({"upload-time": "2024-01-02T03:04:05Z"}, "upload_time", "2024-01-02T03:04:05Z"),
    ({"upload-time": 1700000000}, "upload_time", None),
    ({"hashes": {"SHA256": SHA.upper(), "bogus": 1}}, "hashes", {"sha256": SHA}),
    ({"url": "https://other.example/x.tar.gz"}, "url", "https://other.example/x.tar.gz"),
    ({"url": "/x/x-1.0.tar.gz"}, "url", "https://index.example/x/x-1.0.tar.gz"),
]


@pytest.mark.parametrize(("extra", "field", "expected"), JSON_CASES)
def test_json_fields(extra: dict[str, Any], field: str, expected: Any) -> None:
    entry = {"filename": "x-1.0.tar.gz", "url": "x-1.0.tar.gz", "hashes": {"sha256": SHA}}
    entry.update(extra)
    (file,) = parse_json_page(json_body([entry], name="x"), PAGE, "x").files
    assert getattr(file, field) == expected


@pytest.mark.parametrize(
    "entry",
    [
        "x-1.0.tar.gz",
        None,
        {"url": "x-1.0.tar.gz", "hashes": {}},
        {"filename": "x-1.0.tar.gz", "hashes": {}},
        {"filename": "x-1.0.tar.gz", "url": "x-1.0.tar.gz"},
        {"filename": "x-1.0.tar.gz", "url": "x-1.0.tar.gz", "hashes": ["sha256"]},
        {"filename": 1, "url": "x-1.0.tar.gz", "hashes": {}},
    ],
)
def test_json_bad_file_entries_are_skipped_with_a_warning(
    entry: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"filename": "x-2.0.tar.gz", "url": "x-2.0.tar.gz", "hashes": {}}
    with caplog.at_level(logging.WARNING, logger="morgan.simple"):
        page = parse_json_page(json_body([entry, good], name="x"), PAGE, "x")
    assert [f.filename for f in page.files] == ["x-2.0.tar.gz"]
    assert any("ignoring a file entry" in r.getMessage() for r in caplog.records)


# -- API versions ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.1"])
def test_other_major_version_is_refused(version: str) -> None:
    with pytest.raises(UnsupportedAPIVersionError) as caught:
        parse_json_page(json_body(FILES, version=version), PAGE, "demo")
    assert caught.value.version == version
    assert isinstance(caught.value, PageError)
    assert PAGE in str(caught.value)
    with pytest.raises(UnsupportedAPIVersionError):
        parse_html_page(html_body(FILES, version=version), PAGE, "demo")


@pytest.mark.parametrize("parse", [parse_json_page, parse_html_page])
def test_newer_minor_version_is_read_with_a_warning(
    parse: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        json_body(FILES, version="1.5")
        if parse is parse_json_page
        else html_body(FILES, version="1.5")
    )
    with caplog.at_level(logging.WARNING, logger="morgan.simple"):
        page = parse(body, PAGE, "demo")
    assert page.api_version == "1.5"
    assert len(page.files) == len(FILES)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1.5" in warnings[0].getMessage()


@pytest.mark.parametrize("version", ["1.0", "1.1", " 1.1 "])
def test_known_versions_are_silent(version: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="morgan.simple"):
        check_api_version(version, PAGE)
    assert caplog.records == []


@pytest.mark.parametrize("version", ["1", "latest", "1.1.1", ""])
def test_malformed_api_version(version: str) -> None:
    with pytest.raises(PageError, match=r"not MAJOR\.MINOR"):
        check_api_version(version, PAGE)


# -- refused JSON pages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"\xff\xfe\x00", "invalid JSON"),
        (b"[]", "not an object"),
        (b'"files"', "not an object"),
        (b"null", "not an object"),
        (b'{"name": "demo", "files": []}', "api-version"),
        (b'{"meta": {"api-version": 1.0}, "name": "demo", "files": []}', "api-version"),
        (b'{"meta": "1.0", "name": "demo", "files": []}', "api-version"),
        (b'{"meta": {"api-version": "1.0"}, "files": []}', "no project name"),
        (b'{"meta": {"api-version": "1.0"}, "name": "demo"}', "no list of files"),
        (b'{"meta": {"api-version": "1.0"}, "name": "demo", "files": {}}', "no list of files"),
        (b'{"meta": {"api-version": "1.0"}, "name": "other", "files": []}', "'other'"),
    ],
)
def test_bad_json_pages(body: bytes, fragment: str) -> None:
    with pytest.raises(PageError) as caught:
        parse_json_page(body, PAGE, "demo")
    assert caught.value.url == PAGE
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_page_of_another_project_is_refused() -> None:
    with pytest.raises(PageError, match="not 'demo'"):
        parse_json_page(json_body(FILES, name="evil"), PAGE, "demo")


# -- Content-Type dispatch ---------------------------------------------------------------------

JSON_PAGE = json_body(FILES)
HTML_PAGE = html_body(FILES)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (JSON_PAGE, "application/vnd.pypi.simple.v1+json"),
        (JSON_PAGE, "Application/Vnd.PyPI.Simple.V1+JSON; charset=utf-8"),
        (HTML_PAGE, "text/html"),
        (HTML_PAGE, "text/html; charset=utf-8"),
        (HTML_PAGE, "application/vnd.pypi.simple.v1+html"),
        (HTML_PAGE, ""),
    ],
)
def test_content_type_dispatch(body: bytes, content_type: str) -> None:
    page = parse_project_page(body, content_type, PAGE, "demo")
    assert page == parse_json_page(JSON_PAGE, PAGE, "demo")


def test_content_type_decides_the_parser() -> None:
    # JSON read as HTML has no anchors; HTML read as JSON is invalid JSON.
    assert parse_project_page(JSON_PAGE, "text/html", PAGE, "demo").files == ()
    with pytest.raises(PageError, match="invalid JSON"):
        parse_project_page(HTML_PAGE, "application/vnd.pypi.simple.v1+json", PAGE, "demo")


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/octet-stream"]
)
def test_unexpected_content_type(content_type: str) -> None:
    with pytest.raises(PageError, match="unexpected Content-Type"):
        parse_project_page(JSON_PAGE, content_type, PAGE, "demo")


def test_accept_header_prefers_json() -> None:
    parts = [p.strip() for p in ACCEPT.split(",")]
    assert parts[0] == "application/vnd.pypi.simple.v1+json"
    assert any(p.startswith("text/html") for p in parts)


# -- hostile input -----------------------------------------------------------------------------


def _only_morgan_errors(parse: Any, body: bytes) -> None:
    try:
        page = parse(body, PAGE, "demo")
    except MorganError:
        return
    assert isinstance(page, ProjectPage)
    for file in page.files:
        assert isinstance(file, DistributionFile)
        assert isinstance(file.url, str)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_morgan_errors(body: bytes) -> None:
    _only_morgan_errors(parse_json_page, body)
    _only_morgan_errors(parse_html_page, body)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=2000))
def test_arbitrary_text_raises_only_morgan_errors(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    _only_morgan_errors(parse_json_page, body)
    _only_morgan_errors(parse_html_page, body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    *("filename", "url", "hashes", "sha256", "yanked", "requires-python", "size"),
                    *("upload-time", "core-metadata", "dist-info-metadata", "meta", "api-version"),
                ]
            )
            | st.text(max_size=10),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)
SAFE_URLS = st.sampled_from(
    ["demo-1.0.tar.gz", "../x/demo-1.0-py3-none-any.whl", "https://h.example/a/b.zip", "", "#"]
)


@settings(max_examples=300, deadline=None)
@given(
    files=st.lists(
        st.fixed_dictionaries(
            {"filename": st.text(max_size=20), "url": SAFE_URLS},
            optional={
                "hashes": JSON_VALUES,
                "yanked": JSON_VALUES,
                "requires-python": JSON_VALUES,
                "size": JSON_VALUES,
                "upload-time": JSON_VALUES,
                "core-metadata": JSON_VALUES,
                "dist-info-metadata": JSON_VALUES,
            },
        )
        | JSON_VALUES,
        max_size=5,
    ),
    name=st.sampled_from(["demo", "Demo", "other"]),
    version=st.sampled_from(["1.0", "1.1", "1.9", "2.0", "x"]),
)
def test_structured_json_raises_only_morgan_errors(files: Any, name: str, version: str) -> None:
    _only_morgan_errors(parse_json_page, json_body(files, name=name, version=version))


ATTRIBUTE_VALUES = st.text(alphabet="ab01=-<>&;.\"' /#:", max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    anchors=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    *("href", "data-yanked", "data-requires-python", "data-core-metadata"),
                    *("data-dist-info-metadata", "data-size", "data-upload-time"),
                ]
            ),
            ATTRIBUTE_VALUES,
            max_size=7,
        ),
        max_size=5,
    )
)
def test_structured_html_raises_only_morgan_errors(anchors: list[dict[str, str]]) -> None:
    links = "".join(
        "<a " + " ".join(f'{k}="{html.escape(v)}"' for k, v in a.items()) + ">f</a>"
        for a in anchors
    )
    _only_morgan_errors(parse_html_page, f"<html><body>{links}</body></html>".encode())


# Inputs on which the parsers once let a foreign exception escape (urllib's ValueError,
# RecursionError, html.parser's AssertionError, int() of a non-decimal digit).


def test_deeply_nested_json_is_a_page_error() -> None:
    with pytest.raises(PageError):
        parse_json_page(b"[" * 100_000, PAGE, "demo")


def test_json_unsplittable_url_does_not_escape() -> None:
    entry = {"filename": "demo-1.0.tar.gz", "url": "http://[broken/demo-1.0.tar.gz", "hashes": {}}
    _only_morgan_errors(parse_json_page, json_body([entry]))


def test_html_unsplittable_href_does_not_escape() -> None:
    _only_morgan_errors(parse_html_page, b'<a href="http://[broken/demo-1.0.tar.gz">x</a>')


def test_html_unsplittable_base_does_not_escape() -> None:
    _only_morgan_errors(parse_html_page, b'<base href="http://[x"><a href="demo-1.0.tar.gz">x</a>')


def test_html_non_decimal_digit_size_does_not_escape() -> None:
    _only_morgan_errors(parse_html_page, '<a href="demo-1.0.tar.gz" data-size="²">x</a>'.encode())


def test_html_marked_section_does_not_escape() -> None:
    _only_morgan_errors(parse_html_page, b"<html><![foo[ x ]]><a href='demo-1.0.tar.gz'>x</a>")


@pytest.mark.parametrize("body", [b"<![foo[", b'<a href="a-1.0.tar.gz">a</a><![foo[ bar ]]>'])
def test_a_marked_section_html_parser_cannot_read_is_a_page_error(body: bytes) -> None:
    """Python 3.9's html.parser asks its subclass to raise; later ones raise ValueError."""
    with pytest.raises(PageError, match="unparsable HTML"):
        parse_html_page(body, "https://example.org/simple/a/", "a")
